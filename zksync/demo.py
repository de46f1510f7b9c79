"""A runnable demonstration: worker processes meet at a DoubleBarrier and share an RWMutex.

    python3 -m zksync.demo [--workers N] [--rounds R]

A local 3-node ensemble is started unless ``ZOOKEEPER_PEERS`` names one already running.
Each worker is a separate process with its own ZooKeeper session.  The workers enter a
double barrier together, then take read locks to look at a shared counter znode and the
write lock to increment it (read-modify-write).  The increment also checks the lease's
fencing token against the last one stored with the counter.  At the end the counter must
equal the number of writes performed: no update was lost.  Exit status 0 means it did.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import itertools
import json
import multiprocessing
import os
import secrets
import sys
import time
from collections.abc import Iterator, Sequence
from multiprocessing.process import BaseProcess
from typing import TypeAlias

from kazoo.client import KazooClient
from kazoo.exceptions import NoNodeError, NotEmptyError

import zksync
from zksync.testing import Ensemble, EnsembleError

DEMO_ROOT = "/zksync-demo"
SESSION_TIMEOUT = 10.0
LOCK_TIMEOUT = 10.0
BARRIER_TIMEOUT = 30.0
READ_HOLD = 0.1
WRITE_HOLD = 0.05

WriteCounts: TypeAlias = "ctypes.Array[ctypes.c_int]"


def say(who: str, message: str) -> None:
    sys.stdout.write(f"[{who}] {message}\n")
    sys.stdout.flush()


# ---- the shared counter -------------------------------------------------------------------
def encode_counter(count: int, token: int) -> bytes:
    return json.dumps({"count": count, "token": token}).encode()


def decode_counter(data: bytes) -> tuple[int, int]:
    """The counter's value and the fencing token of the write that set it."""
    state = json.loads(data.decode())
    return int(state["count"]), int(state["token"])


def increment(client: KazooClient, counter_path: str, token: int) -> tuple[int, int]:
    """Read, pause, write back plus one; returns (old, new).  Refuses a stale fencing token."""
    data, _ = client.get(counter_path)
    count, last_token = decode_counter(data)
    if token <= last_token:
        raise RuntimeError(f"stale fencing token {token}: the counter was last written with {last_token}")
    time.sleep(WRITE_HOLD)
    client.set(counter_path, encode_counter(count + 1, token))
    return count, count + 1


def readers_holding(mutex: zksync.RWMutex) -> int:
    """How many read locks are granted right now (the readers at the head of the queue)."""
    return sum(1 for _ in itertools.takewhile(lambda entry: entry[0] == "read", mutex.queue()))


# ---- a worker process ---------------------------------------------------------------------
def run_worker(index: int, hosts: str, path: str, workers: int, rounds: int, writes: WriteCounts) -> int:
    name = f"worker-{index}"
    counter_path = f"{path}/counter"
    client = zksync.connect(hosts, session_timeout=SESSION_TIMEOUT)
    try:
        say(name, f"connected (pid {os.getpid()}, session 0x{client.client_id[0]:x})")
        barrier = zksync.DoubleBarrier(client, f"{path}/start", participants=workers, identifier=name)
        barrier.enter(timeout=BARRIER_TIMEOUT)
        say(name, "entered barrier")
        try:
            mutex = zksync.RWMutex(client, f"{path}/lock")
            for round_number in range(1, rounds + 1):
                with mutex.read(timeout=LOCK_TIMEOUT) as lease:
                    count, _ = decode_counter(client.get(counter_path)[0])
                    holders = readers_holding(mutex)
                    say(
                        name,
                        f"read lock (shared, {holders} reader(s) holding) token={lease.fencing_token} "
                        f"round {round_number}: counter is {count}",
                    )
                    time.sleep(READ_HOLD)
                with mutex.write(timeout=LOCK_TIMEOUT) as lease:
                    old, new = increment(client, counter_path, lease.fencing_token)
                    writes[index] += 1
                    say(name, f"write lock token={lease.fencing_token} counter {old} -> {new}")
        finally:
            barrier.exit(timeout=BARRIER_TIMEOUT)
        say(name, f"left barrier after {writes[index]} write(s)")
        return 0
    finally:
        client.stop()
        client.close()


def worker_process(index: int, hosts: str, path: str, workers: int, rounds: int, writes: WriteCounts) -> None:
    try:
        code = run_worker(index, hosts, path, workers, rounds, writes)
    except Exception as exc:
        say(f"worker-{index}", f"FAILED: {type(exc).__name__}: {exc}")
        code = 1
    sys.exit(code)


# ---- the parent ---------------------------------------------------------------------------
@contextlib.contextmanager
def zookeeper() -> Iterator[str]:
    """The hosts of ZOOKEEPER_PEERS, or of a local 3-node ensemble run for the block."""
    peers = os.environ.get("ZOOKEEPER_PEERS", "").strip()
    if peers:
        say("demo", f"using ZOOKEEPER_PEERS={peers}")
        yield peers
        return
    started = time.monotonic()
    with Ensemble(3) as ensemble:
        say("demo", f"local 3-node ensemble at {ensemble.hosts} ({time.monotonic() - started:.1f}s to start)")
        yield ensemble.hosts
    say("demo", "ensemble stopped")


def wait_all(processes: Sequence[BaseProcess], timeout: float) -> list[str]:
    """Join the processes; kill those still running after ``timeout`` seconds and name them."""
    deadline = time.monotonic() + timeout
    for process in processes:
        process.join(max(0.0, deadline - time.monotonic()))
    hung = [process for process in processes if process.is_alive()]
    for process in hung:
        process.terminate()
        process.join(2.0)
        if process.is_alive():
            process.kill()
            process.join()
    return [process.name for process in hung]


def remove_tree(client: KazooClient, path: str) -> None:
    with contextlib.suppress(NoNodeError):
        client.delete(path, recursive=True)
    with contextlib.suppress(NoNodeError, NotEmptyError):
        client.delete(DEMO_ROOT)


def run_demo(hosts: str, workers: int, rounds: int) -> bool:
    path = f"{DEMO_ROOT}/{secrets.token_hex(8)}"
    counter_path = f"{path}/counter"
    client = zksync.connect(hosts, session_timeout=SESSION_TIMEOUT)
    try:
        client.create(counter_path, encode_counter(0, 0), makepath=True)
        say("demo", f"{workers} workers x {rounds} rounds under {path}")

        context = multiprocessing.get_context("spawn")
        writes: WriteCounts = context.RawArray(ctypes.c_int, workers)
        processes = [
            context.Process(
                target=worker_process, name=f"worker-{index}", args=(index, hosts, path, workers, rounds, writes)
            )
            for index in range(workers)
        ]
        for process in processes:
            process.start()
        hung = wait_all(processes, timeout=2 * BARRIER_TIMEOUT + 2 * rounds * LOCK_TIMEOUT + SESSION_TIMEOUT)

        failed = [process.name for process in processes if process.exitcode != 0 and process.name not in hung]
        performed = sum(writes)
        count, last_token = decode_counter(client.get(counter_path)[0])
        problems = []
        if hung:
            problems.append(f"killed after hanging: {', '.join(hung)}")
        if failed:
            problems.append(f"failed: {', '.join(failed)}")
        if count != performed:
            problems.append(f"counter is {count} but {performed} writes were performed (lost updates)")
        if performed != workers * rounds:
            problems.append(f"{performed} of {workers * rounds} writes were performed")
        if problems:
            say("demo", "FAILED: " + "; ".join(problems))
            return False
        say(
            "demo",
            f"OK: {workers} workers, {performed} writes, counter = {count}, no lost update "
            f"(last fencing token {last_token})",
        )
        return True
    finally:
        remove_tree(client, path)
        client.stop()
        client.close()


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python3 -m zksync.demo", description=__doc__.split("\n")[0])
    parser.add_argument("--workers", type=positive_int, default=4, help="worker processes (default 4)")
    parser.add_argument("--rounds", type=positive_int, default=3, help="read+write rounds per worker (default 3)")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    workers: int = args.workers
    rounds: int = args.rounds
    started = time.monotonic()
    try:
        with zookeeper() as hosts:
            ok = run_demo(hosts, workers, rounds)
    except (EnsembleError, zksync.ZkSyncError) as exc:
        say("demo", f"FAILED: {type(exc).__name__}: {exc}")
        ok = False
    say("demo", f"{'success' if ok else 'failure'} in {time.monotonic() - started:.1f}s")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
