"""zksync against kazoo's recipes, on one ensemble, in one run.

    python3 -m benchmarks.suite [--quick] [--out DIR] [--sizes 10,100,1000] [--sync-sizes 10,100,1000,10000]
                                [--no-curator]

Uses ``ZOOKEEPER_PEERS`` when set, else starts a local 3-node ensemble.  Measures:

1. floors: one synchronous create, one get, and pipelined creates (the write floor, writes/s);
2. the uncontended write-lock cycle, zksync ``RWMutex`` against kazoo ``Lock``, next to the
   create + getChildren + delete floor, alternating in blocks;
3. a lock contended by 8 clients (one process and session each) for a fixed duration;
4. a readers-writer lock with 3 readers and 1 writer (one process each);
5. ``DoubleBarrier`` enter + exit with N participants, zksync against kazoo;
6. ``Sync.signal_and_wait`` with N participants;
7. resident memory of one process hosting 100 ``Sync`` participants.

Apache Curator 5.9.0 runs in 2., 3., 4. and 5. as well (``InterProcessMutex``,
``InterProcessReadWriteLock``, ``DistributedDoubleBarrier``): CuratorBench
(tests/peers/curator, built by ``.ci/build-peers``; see benchmarks/curator.py), one JVM per
round hosting all its clients, released by the same ready/go protocol.  Without Java or the
built program (or with ``--no-curator``) it says why in one line and the run goes on without.

Every participant has its own session.  Requests are counted by each client (``_call``; for
Curator, its tracer) and by the servers (``mntr`` zk_packets_received, pings and session
set-up included).
Writes results.json, results.md and scaling.png to ``--out`` (default benchmarks/results/).

    python3 -m benchmarks.suite --frontends [--quick] [--out DIR] [--repeats 3]

compares zksync's two front-ends instead, blocking (``zksync.RWMutex``...) against asyncio
(``zksync.aio.RWMutex``...), on the same workers: the lock contended by 8 clients in alternating
blocks (5 of 3 s each; quick: 2 of 2 s), ``DoubleBarrier`` enter + exit and
``Sync.signal_and_wait`` with N=1000 participants (quick: 50; ``--sizes``, ``--sync-sizes``),
``--repeats`` rounds each (3; quick: 1).  Reports wall time or acquisitions/s, requests per
operation, CPU seconds per operation (each worker's ``time.process_time()`` over its timed window)
and the workers' thread counts.  Writes frontends.json and frontends.md to ``--out``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import multiprocessing
import os
import statistics
import sys
import threading
import time
import traceback
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, suppress
from multiprocessing.context import SpawnProcess
from pathlib import Path
from typing import Any, NamedTuple

from kazoo.client import KazooClient

import zksync
import zksync.aio
from zksync.testing import Ensemble, timing
from zksync.testing.cleanup import delete_tree
from zksync.testing.ensemble import four_letter

from . import curator
from .curator import CuratorError
from .lock_cycle import count_requests, floor_cycle_for, timed

DEFAULT_OUT = Path(__file__).resolve().parent / "results"
ROOT = "/zksync-bench-suite"
WRITE_REQUESTS = {"Create", "Create2", "CreateContainer", "CreateTTL", "Delete", "SetData", "Transaction"}
SESSION_TIMEOUT = 30.0
# the CuratorBench command once run() has found it (None: Curator is left out of the run)
CURATOR: list[str] | None = None

Result = dict[str, Any]


# ---- ensemble and counting -------------------------------------------------------------


@contextmanager
def ensemble_hosts() -> Iterator[tuple[str, str]]:
    peers = os.environ.get("ZOOKEEPER_PEERS", "").strip()
    if peers:
        yield peers, "ZOOKEEPER_PEERS"
        return
    # a 2 s tick (syncLimit 10 s) keeps the quorum when thousands of client threads share the CPUs
    with Ensemble(3, tick_time=2000) as ensemble:
        yield ensemble.hosts, "local Ensemble(3, tick_time=2000)"


def server_packets(hosts: str) -> int | None:
    """Sum of zk_packets_received over the members (None when a member does not answer)."""
    total = 0
    for member in hosts.split(","):
        host, _, port = member.strip().rpartition(":")
        try:
            answer = four_letter(host, int(port), "mntr")
        except OSError:
            return None
        for line in answer.splitlines():
            if line.startswith("zk_packets_received\t"):
                total += int(line.split("\t", 1)[1])
    return total


def packet_delta(before: int | None, after: int | None) -> int | None:
    return None if before is None or after is None else after - before


def writes_in(calls: list[str]) -> int:
    return sum(1 for c in calls if c in WRITE_REQUESTS)


def rss_kib() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def close_all(clients: list[KazooClient]) -> None:
    def close(client: KazooClient) -> None:
        try:
            client.stop()
            client.close()
        except Exception:
            pass

    with ThreadPoolExecutor(max_workers=32) as pool:
        list(pool.map(close, clients))


# extra KazooClient options for each client a worker makes (the green worker sets a handler)
CLIENT_OPTIONS: Callable[[], dict[str, Any]] = dict


def connect_all(hosts: str, count: int) -> list[KazooClient]:
    """``count`` started clients; on a failure, closes those made and says how far it got."""
    start = time.monotonic()
    made: list[KazooClient] = []
    failures: list[str] = []
    lock = threading.Lock()

    def one(_: int) -> None:
        try:
            client = zksync.connect(hosts, timeout=120, session_timeout=SESSION_TIMEOUT, **CLIENT_OPTIONS())
        except Exception as exc:
            with lock:
                failures.append(repr(exc))
            return
        with lock:
            made.append(client)

    with ThreadPoolExecutor(max_workers=min(8, count)) as pool:
        list(pool.map(one, range(count)))
    if failures:
        close_all(made)
        raise RuntimeError(
            f"{len(made)}/{count} clients of this process connected in "
            f"{time.monotonic() - start:.0f} s; {len(failures)} failed, first: {failures[0]}"
        )
    return made


# ---- worker processes ------------------------------------------------------------------

AIO_IMPLS = {"zksync-aio", "zksync-aio-db", "zksync-aio-sync"}  # run on one asyncio event loop per process
SYNC_IMPLS = {"sync", "zksync-aio-sync"}
THREAD_SAMPLE_S = 0.05  # how often an asyncio worker's loop looks at its thread count (and at each end)


class Window:
    """What one worker process spends over its timed window: CPU seconds (user + system of the
    whole process, every thread: ``time.process_time()``, split with ``os.times()``) and its
    thread count (``threading.active_count()``) at the start and at its highest sample."""

    def __init__(self) -> None:
        self.threads_before = threading.active_count()
        self.threads_peak = self.threads_before
        self.cpu = time.process_time()
        self.times = os.times()

    def sample(self) -> None:
        count = threading.active_count()
        if count > self.threads_peak:
            self.threads_peak = count

    async def sample_every(self, interval: float) -> None:
        while True:
            self.sample()
            await asyncio.sleep(interval)

    def stop(self) -> Result:
        cpu = time.process_time() - self.cpu
        times = os.times()
        self.sample()
        return {
            "cpu_s": cpu,
            "cpu_user_s": times.user - self.times.user,
            "cpu_system_s": times.system - self.times.system,
            "threads_before": self.threads_before,
            "threads_peak": self.threads_peak,
        }


def lock_worker(params: Result, ready: Any, go: Any, report: Callable[[Result], None]) -> Result | None:
    client = zksync.connect(params["hosts"], session_timeout=SESSION_TIMEOUT)
    loop: asyncio.AbstractEventLoop | None = None
    cycles: Callable[[float, Window], int]  # acquire + release until ``end``, sampling the window
    if params["impl"] == "zksync-aio":  # the cycles run as one coroutine on this process's event loop
        loop = asyncio.new_event_loop()
        acycle = async_lock_cycle(client, params)

        async def acycles(end: float, window: Window) -> int:
            done = 0
            while time.monotonic() < end:
                await acycle()
                done += 1
                window.sample()
            return done

        loop.run_until_complete(acycle())
        cycles = lambda end, window: loop.run_until_complete(acycles(end, window))  # noqa: E731
    else:
        acquire, release = lock_calls(client, params)

        def cycles(end: float, window: Window) -> int:
            done = 0
            while time.monotonic() < end:
                acquire()
                release()
                done += 1
                window.sample()
            return done

        acquire()
        release()
    calls = count_requests(client)
    ready.put(params["index"])
    go.wait(300)
    window = Window()
    start = time.monotonic()
    acquisitions = cycles(start + params["duration"], window)
    result = {
        "mode": params["mode"],
        "acquisitions": acquisitions,
        "elapsed_s": time.monotonic() - start,
        **window.stop(),
        "requests": len(calls),
    }
    client.stop()
    client.close()
    if loop is not None:
        loop.close()
    return result


def async_lock_cycle(client: KazooClient, params: Result) -> Callable[[], Awaitable[None]]:
    """One acquire + release of a ``zksync.aio.RWMutex`` (write or read, by ``mode``)."""
    mutex = zksync.aio.RWMutex(client, params["path"])
    write = params["mode"] == "write"

    async def cycle() -> None:
        if write:
            await mutex.lock(30)
            await mutex.unlock()
        else:
            await mutex.rlock(30)
            await mutex.runlock()

    return cycle


def lock_calls(client: KazooClient, params: Result) -> tuple[Callable[[], Any], Callable[[], Any]]:
    """Acquire and release, on the calling thread, for the blocking lock impls."""
    impl, mode, path = params["impl"], params["mode"], params["path"]
    acquire: Callable[[], Any]
    release: Callable[[], Any]
    if impl == "zksync":
        mutex = zksync.RWMutex(client, path)
        acquire = (lambda: mutex.lock(30)) if mode == "write" else (lambda: mutex.rlock(30))
        release = mutex.unlock if mode == "write" else mutex.runlock
    else:
        ident = f"w{params['index']}"
        if params.get("kind") == "rw":
            lock = client.WriteLock(path, ident) if mode == "write" else client.ReadLock(path, ident)
        else:
            lock = client.Lock(path, ident)
        acquire = lambda: lock.acquire(timeout=30)  # noqa: E731
        release = lock.release
    return acquire, release


def participants_worker(params: Result, ready: Any, go: Any, report: Callable[[Result], None]) -> Result | None:
    clients = connect_all(params["hosts"], params["count"])
    join_calls = [count_requests(c) for c in clients]
    join_start = time.monotonic()
    loop: asyncio.AbstractEventLoop | None = None
    if params["impl"] in AIO_IMPLS:  # every participant a coroutine on this process's one event loop
        loop = asyncio.new_event_loop()
        coroutines = loop.run_until_complete(async_participants(clients, params))
    else:  # every participant on a thread of its own
        actions = blocking_participants(clients, params)
    join_s = time.monotonic() - join_start
    join_requests = sum(len(c) for c in join_calls)
    calls = [count_requests(c) for c in clients]
    ready.put(params["first"])
    go.wait(600)
    timeout = params["timeout"]
    finished: list[float] = []
    errors: list[str] = []
    window = Window()
    if loop is not None:
        loop.run_until_complete(run_coroutines(coroutines, timeout, finished, errors, window))
        done, errs = list(finished), list(errors)
    else:
        lock = threading.Lock()

        def one(action: Callable[[float], None]) -> None:
            try:
                action(timeout)
            except BaseException as exc:
                with lock:
                    errors.append(repr(exc))
                return
            with lock:
                finished.append(time.time())

        threads = [threading.Thread(target=one, args=(a,), daemon=True) for a in actions]
        for thread in threads:
            thread.start()
        window.sample()
        deadline = time.monotonic() + timeout + 5
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        with lock:
            done = list(finished)
            errs = list(errors)
    measured = window.stop()
    all_calls = [c for per_client in calls for c in per_client]
    result = {
        "count": len(clients),
        "finished": len(done),
        "last_finish": max(done) if done else None,
        "errors": errs[:5],
        "error_count": len(errs),
        "requests": len(all_calls),
        "writes": writes_in(all_calls),
        "kinds": dict(Counter(all_calls)),
        "join_requests": join_requests,
        "join_s": join_s,
        **measured,
        "complete": len(done) == len(clients),
    }
    report(result)
    params["close"].wait(timeout + 60)
    if result["complete"]:
        close_all(clients)
        if loop is not None:
            loop.close()
    else:
        os._exit(0)  # participants still blocked inside a recipe: leave without waiting for them
    return None


def blocking_participants(clients: list[KazooClient], params: Result) -> list[Callable[[float], None]]:
    """One action per client for the blocking impls, each to run on its own thread (Sync
    participants have joined when this returns)."""
    impl, n, first = params["impl"], params["n"], params["first"]
    actions: list[Callable[[float], None]] = []
    syncs: list[zksync.Sync] = []
    for k, client in enumerate(clients):
        ident = f"p{first + k}"
        if impl == "floor-db":  # the writes a double barrier cannot avoid: one create, one delete

            def run_floor_db(timeout: float, c: KazooClient = client) -> None:
                node = c.create(f"{params['path']}/p-", ephemeral=True, sequence=True, makepath=True)
                c.delete(node)

            actions.append(run_floor_db)
        elif impl == "floor-sync":  # the write a signal cannot avoid: one create

            def run_floor_sync(timeout: float, c: KazooClient = client) -> None:
                c.create(f"{params['path']}/e-", sequence=True, makepath=True)

            actions.append(run_floor_sync)
        elif impl == "zksync-db":
            barrier = zksync.DoubleBarrier(client, params["path"], n, identifier=ident)

            def run_db(timeout: float, b: zksync.DoubleBarrier = barrier) -> None:
                deadline = time.monotonic() + timeout
                b.enter(timeout)
                b.exit(max(0.1, deadline - time.monotonic()))

            actions.append(run_db)
        elif impl == "kazoo-db":
            kbarrier = client.DoubleBarrier(params["path"], n, identifier=ident)

            def run_kdb(timeout: float, b: Any = kbarrier) -> None:
                b.enter()
                b.leave()

            actions.append(run_kdb)
        elif impl == "sync":
            sync = zksync.Sync(client, params["namespace"], instance_id=ident, instance_count=n)
            syncs.append(sync)

            def run_sync(timeout: float, s: zksync.Sync = sync) -> None:
                s.signal_and_wait("ready", n, timeout)

            actions.append(run_sync)
        else:
            raise ValueError(f"no participants impl {impl!r}")
    if syncs:
        with ThreadPoolExecutor(max_workers=16) as pool:
            list(pool.map(lambda s: s.join(120), syncs))
    return actions


async def async_participants(
    clients: list[KazooClient], params: Result
) -> list[Callable[[float], Coroutine[Any, Any, None]]]:
    """One coroutine function per client for the asyncio impls (Sync participants have joined,
    together on the loop, when this returns)."""
    impl, n, first = params["impl"], params["n"], params["first"]
    actions: list[Callable[[float], Coroutine[Any, Any, None]]] = []
    syncs: list[zksync.aio.Sync] = []
    for k, client in enumerate(clients):
        ident = f"p{first + k}"
        if impl == "zksync-aio-db":
            barrier = zksync.aio.DoubleBarrier(client, params["path"], n, identifier=ident)

            async def run_db(timeout: float, b: zksync.aio.DoubleBarrier = barrier) -> None:
                deadline = time.monotonic() + timeout
                await b.enter(timeout)
                await b.exit(max(0.1, deadline - time.monotonic()))

            actions.append(run_db)
        elif impl == "zksync-aio-sync":
            sync = zksync.aio.Sync(client, params["namespace"], instance_id=ident, instance_count=n)
            syncs.append(sync)

            async def run_sync(timeout: float, s: zksync.aio.Sync = sync) -> None:
                await s.signal_and_wait("ready", n, timeout)

            actions.append(run_sync)
        else:
            raise ValueError(f"no asyncio participants impl {impl!r}")
    await asyncio.gather(*(s.join(120) for s in syncs))
    return actions


async def run_coroutines(
    actions: list[Callable[[float], Coroutine[Any, Any, None]]],
    timeout: float,
    finished: list[float],
    errors: list[str],
    window: Window,
) -> None:
    """Run every participant at once (``asyncio.gather`` of them all, each failure kept apart)
    and stop waiting after ``timeout`` + 5 s; the window samples the thread count meanwhile, and
    as each participant ends."""

    async def one(action: Callable[[float], Coroutine[Any, Any, None]]) -> None:
        try:
            await action(timeout)
        except Exception as exc:
            errors.append(repr(exc))
            return
        finally:
            window.sample()
        finished.append(time.time())

    sampler = asyncio.ensure_future(window.sample_every(THREAD_SAMPLE_S))
    everyone = asyncio.gather(*(one(a) for a in actions))
    await asyncio.wait([everyone], timeout=timeout + 5)  # those still waiting are left as they are
    sampler.cancel()
    with suppress(asyncio.CancelledError):
        await sampler


def memory_worker(params: Result, ready: Any, go: Any, report: Callable[[Result], None]) -> Result | None:
    n = params["n"]
    before = rss_kib()
    clients = connect_all(params["hosts"], n)
    syncs = [zksync.Sync(c, params["namespace"], instance_id=f"m{k}", instance_count=n) for k, c in enumerate(clients)]
    errors: list[str] = []

    def one(s: zksync.Sync) -> None:
        try:
            s.signal_and_wait("ready", n, 120)
        except BaseException as exc:
            errors.append(repr(exc))

    threads = [threading.Thread(target=one, args=(s,)) for s in syncs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(150)
    timing.sleep(0.5)
    after = rss_kib()
    ready.put(0)
    result = {
        "participants": n,
        "rss_before_kib": before,
        "rss_after_kib": after,
        "delta_kib": after - before,
        "per_participant_kib": (after - before) / n,
        "errors": errors[:5],
    }
    close_all(clients)
    return result


WORKERS: dict[str, Callable[[Result, Any, Any, Callable[[Result], None]], Result | None]] = {
    "lock": lock_worker,
    "participants": participants_worker,
    "memory": memory_worker,
}


def worker_main(kind: str, params: Result, ready: Any, results: Any, go: Any, close: Any) -> None:
    params["close"] = close
    os.nice(10)  # the servers, not the many client threads, get the CPUs first
    threading.stack_size(512 * 1024)  # hundreds of clients, three kazoo threads each
    reported = [False]

    def report(result: Result) -> None:
        results.put(result)
        results.close()
        results.join_thread()
        reported[0] = True

    try:
        result = WORKERS[kind](params, ready, go, report)
        if result is not None:
            report(result)
    except BaseException as exc:
        if not reported[0]:
            ready.put(None)
            report({"error": repr(exc), "trace": traceback.format_exc()[-2000:]})


def run_processes(
    kind: str, hosts: str, params: list[Result], timeout: float, setup_timeout: float = 240.0
) -> tuple[list[Result], float, int | None, Result]:
    """Start one process per ``params``; once all are set up, release them together.
    Returns their results, the release time (time.time()), the server packets in between,
    and what went wrong (processes that never reported)."""
    ctx = multiprocessing.get_context("spawn")
    ready = ctx.Queue()
    results = ctx.Queue()
    go = ctx.Event()
    close = ctx.Event()  # set once every process has reported: nobody's teardown lands in a round
    procs: list[SpawnProcess] = [
        ctx.Process(target=worker_main, args=(kind, p, ready, results, go, close), daemon=True) for p in params
    ]
    for proc in procs:
        proc.start()
    problems: Result = {}
    setup_deadline = time.monotonic() + setup_timeout
    arrived = 0
    while arrived < len(procs) and time.monotonic() < setup_deadline:
        try:
            ready.get(timeout=1.0)
            arrived += 1
        except Exception:
            if not any(p.is_alive() for p in procs):
                break
    if arrived < len(procs):
        problems["not_ready"] = len(procs) - arrived
    before = server_packets(hosts)
    t0 = time.time()
    go.set()
    collected: list[Result] = []
    deadline = time.monotonic() + timeout + 30
    while len(collected) < len(procs) and time.monotonic() < deadline:
        try:
            collected.append(results.get(timeout=1.0))
        except Exception:
            if not any(p.is_alive() for p in procs) and results.empty():
                break
    after = server_packets(hosts)
    close.set()
    if len(collected) < len(procs):
        problems["not_reported"] = len(procs) - len(collected)
    for proc in procs:
        proc.join(max(5.0, deadline - time.monotonic() + 60))
    for proc in procs:
        if proc.is_alive():
            proc.kill()
            proc.join(10)
            problems["killed"] = problems.get("killed", 0) + 1
    return collected, t0, packet_delta(before, after), problems


# ---- scenarios -------------------------------------------------------------------------


def floors(client: KazooClient, root: str, samples: int, pipelined: int) -> Result:
    base = f"{root}/floors"
    client.ensure_path(base)
    client.create(f"{base}/read", b"x" * 16)
    created: list[str] = []

    def one_create() -> None:
        created.append(client.create(f"{base}/c-", ephemeral=True, sequence=True))

    def one_get() -> None:
        client.get(f"{base}/read")

    timed(20, one_create)
    timed(20, one_get)
    create_samples = timed(samples, one_create)
    get_samples = timed(samples, one_get)
    rates = []
    for repeat in range(3):
        client.ensure_path(f"{base}/pipe{repeat}")
        start = time.perf_counter()
        pending = [client.create_async(f"{base}/pipe{repeat}/n-", sequence=True) for _ in range(pipelined)]
        for result in pending:
            result.get(timeout=120)
        rates.append(pipelined / (time.perf_counter() - start))
    delete_tree(client, base)
    return {
        "create_median_ms": statistics.median(create_samples) * 1000,
        "get_median_ms": statistics.median(get_samples) * 1000,
        "pipelined_creates": pipelined,
        "pipelined_repeats_writes_per_s": rates,
        "write_floor_writes_per_s": statistics.median(rates),
    }


def timed_block(body: Callable[[], None]) -> Callable[[int], list[float]]:
    return lambda count: timed(count, body)


def uncontended(client: KazooClient, hosts: str, root: str, cycles: int) -> Result:
    mutex = zksync.RWMutex(client, f"{root}/zlock")
    klock = client.Lock(f"{root}/klock", "bench")
    floor_cycle = floor_cycle_for(client, root)

    def zksync_cycle() -> None:
        mutex.lock(5)
        mutex.unlock()

    def kazoo_cycle() -> None:
        klock.acquire(timeout=5)
        klock.release()

    bodies = {"zksync": zksync_cycle, "kazoo": kazoo_cycle, "floor": floor_cycle}
    for _ in range(20):
        for body in bodies.values():
            body()
    calls = count_requests(client)
    # each impl's block: ``count`` cycles, timed one by one; Curator's run in its JVM (warmed up
    # there), its requests counted by Curator's tracer
    blocks: dict[str, Callable[[int], list[float]]] = {name: timed_block(body) for name, body in bodies.items()}
    out: Result = {}
    traced: Counter[str] = Counter()  # Curator's requests by kind
    bench: curator.Bench | None = None
    if CURATOR is not None:
        try:
            bench = curator.Bench(CURATOR, hosts, f"{root}/clock", "uncontended", 240, session_timeout=SESSION_TIMEOUT)
        except CuratorError as exc:
            out["curator_error"] = str(exc)
    if bench is not None:

        def curator_block(count: int, bench: curator.Bench = bench) -> list[float]:
            bench.send(f"go {count}")
            answer = bench.result(120)
            traced.update(answer["kinds"])
            return [ms / 1000 for ms in answer["samples_ms"]]

        blocks["curator"] = curator_block
    samples: dict[str, list[float]] = {name: [] for name in blocks}
    requests = {name: 0 for name in blocks}
    packets: dict[str, int | None] = {name: 0 for name in blocks}
    block = min(50, cycles)
    try:
        for _ in range(max(1, cycles // block)):
            for name, run_block in list(blocks.items()):
                before_calls = len(calls)
                before = server_packets(hosts)
                try:
                    samples[name] += run_block(block)
                except CuratorError as exc:  # Curator left out of the remaining blocks
                    out["curator_error"] = str(exc)
                    del blocks[name]
                    continue
                delta = packet_delta(before, server_packets(hosts))
                current = packets[name]
                packets[name] = None if delta is None or current is None else current + delta
                requests[name] += len(calls) - before_calls
    finally:
        if bench is not None:
            bench.close()
    if "curator" in samples:
        requests["curator"] = sum(traced.values())
    floor_med = statistics.median(samples["floor"])
    out.update(
        {
            "cycles": len(samples["zksync"]),
            "block": block,
            "floor_median_ms": floor_med * 1000,
            "floor_requests_per_cycle": requests["floor"] / len(samples["floor"]),
        }
    )
    for name in ("zksync", "kazoo", "curator"):
        if not samples.get(name):
            continue
        med = statistics.median(samples[name])
        count = len(samples[name])
        ordered = sorted(samples[name])
        pk = packets[name]
        out[name] = {
            "median_ms": med * 1000,
            "mean_ms": statistics.fmean(samples[name]) * 1000,
            "p90_ms": ordered[int(0.9 * (count - 1))] * 1000,
            "p99_ms": ordered[int(0.99 * (count - 1))] * 1000,
            "cycles": count,
            "requests_per_cycle_client": requests[name] / count,
            "server_packets_per_cycle": None if pk is None else pk / count,
            "over_floor": med / floor_med,
        }
    if "curator" in out:
        out["curator"]["requests_counted_by"] = "Curator's tracer (completed operations)"
        out["curator"]["request_kinds_per_cycle"] = {k: v / out["curator"]["cycles"] for k, v in sorted(traced.items())}
    out["request_kinds"] = sorted(set(calls))
    return out


def window_totals(good: list[Result]) -> Result:
    """The workers' timed windows together: CPU seconds summed, thread counts per process."""
    return {
        "cpu_s": sum(r["cpu_s"] for r in good),
        "cpu_user_s": sum(r["cpu_user_s"] for r in good),
        "cpu_system_s": sum(r["cpu_system_s"] for r in good),
        "threads_before_by_process": [r["threads_before"] for r in good],
        "threads_peak_by_process": [r["threads_peak"] for r in good],
    }


def lock_round(hosts: str, root: str, impl: str, kind: str, modes: list[str], duration: float) -> Result:
    if impl == "curator":
        return curator_lock_round(hosts, root, kind, modes, duration)
    path = f"{root}/{kind}-{impl}-{uuid.uuid4().hex[:6]}"
    params = [
        {"hosts": hosts, "impl": impl, "mode": mode, "path": path, "duration": duration, "index": i, "kind": kind}
        for i, mode in enumerate(modes)
    ]
    results, _, packets, problems = run_processes("lock", hosts, params, timeout=duration + 60)
    errors = [r["error"] for r in results if "error" in r]
    good = [r for r in results if "error" not in r]
    acquisitions = sum(r["acquisitions"] for r in good)
    elapsed = max((r["elapsed_s"] for r in good), default=duration)
    requests = sum(r["requests"] for r in good)
    by_mode = {m: sum(r["acquisitions"] for r in good if r["mode"] == m) / elapsed for m in set(modes)}
    window = window_totals(good)
    return {
        "impl": impl,
        "clients": len(modes),
        "duration_s": elapsed,
        "acquisitions": acquisitions,
        "acquisitions_per_s": acquisitions / elapsed,
        "acquisitions_per_s_by_mode": by_mode,
        "requests_per_acquisition_client": requests / acquisitions if acquisitions else None,
        "server_packets_per_acquisition": None if packets is None or not acquisitions else packets / acquisitions,
        **window,
        "cpu_ms_per_acquisition": window["cpu_s"] * 1000 / acquisitions if acquisitions else None,
        "errors": errors + ([json.dumps(problems)] if problems else []),
    }


def curator_lock_round(hosts: str, root: str, kind: str, modes: list[str], duration: float) -> Result:
    """``lock_round`` for Curator: one JVM, a session and a lock object per client (an
    InterProcessMutex each, or an InterProcessReadWriteLock's read or write lock), a thread per
    client; CPU is the JVM's over the timed window, requests are those Curator traced."""
    assert CURATOR is not None
    path = f"{root}/{kind}-curator-{uuid.uuid4().hex[:6]}"
    writers, readers = modes.count("write"), modes.count("read")
    scenario, options = (
        ("contended", {"clients": writers}) if kind == "lock" else ("rw", {"readers": readers, "writers": writers})
    )
    errors: list[str] = []
    answer: Result | None = None
    packets: int | None = None
    try:
        bench = curator.Bench(
            CURATOR, hosts, path, scenario, 240, seconds=duration, session_timeout=SESSION_TIMEOUT, **options
        )
    except CuratorError as exc:
        errors.append(str(exc))
    else:
        try:
            before = server_packets(hosts)
            bench.send("go")
            answer = bench.result(duration + 90)
            packets = packet_delta(before, server_packets(hosts))
        except CuratorError as exc:
            errors.append(str(exc))
        finally:
            if not bench.close():
                errors.append("CuratorBench did not close its sessions in time (killed)")
    if answer is None:
        return {
            "impl": "curator",
            "clients": len(modes),
            "duration_s": duration,
            "acquisitions": 0,
            "acquisitions_per_s": 0.0,
            "acquisitions_per_s_by_mode": {m: 0.0 for m in set(modes)},
            "requests_per_acquisition_client": None,
            "server_packets_per_acquisition": None,
            "cpu_s": 0.0,
            "cpu_user_s": 0.0,
            "cpu_system_s": 0.0,
            "threads_before_by_process": [],
            "threads_peak_by_process": [],
            "cpu_ms_per_acquisition": None,
            "errors": errors,
        }
    acquisitions = answer["acquisitions"]
    elapsed = answer["elapsed_s"]
    return {
        "impl": "curator",
        "clients": answer["clients"],
        "duration_s": elapsed,
        "acquisitions": acquisitions,
        "acquisitions_per_s": acquisitions / elapsed,
        "acquisitions_per_s_by_mode": {m: answer["acquisitions_by_mode"].get(m, 0) / elapsed for m in set(modes)},
        "requests_per_acquisition_client": answer["requests"] / acquisitions if acquisitions else None,
        "request_kinds": answer["kinds"],
        "server_packets_per_acquisition": None if packets is None or not acquisitions else packets / acquisitions,
        "cpu_s": answer["cpu_s"],
        "cpu_user_s": answer["cpu_user_s"] or 0.0,
        "cpu_system_s": answer["cpu_system_s"] or 0.0,
        "threads_before_by_process": [answer["threads_before"]],
        "threads_peak_by_process": [answer["threads_peak"]],
        "cpu_ms_per_acquisition": answer["cpu_s"] * 1000 / acquisitions if acquisitions else None,
        "errors": errors + answer["errors"],
    }


def alternating_lock_rounds(
    hosts: str,
    root: str,
    kind: str,
    modes: list[str],
    duration: float,
    blocks: int,
    impls: tuple[str, ...] = ("zksync", "kazoo"),
) -> Result:
    """The impls (zksync, kazoo, Curator) in alternating blocks (each ``duration / blocks`` long),
    summed: a noisy spell on a shared machine then falls on all rather than on one."""
    rounds: dict[str, list[Result]] = {impl: [] for impl in impls}
    for _ in range(blocks):
        for impl in rounds:
            rounds[impl].append(lock_round(hosts, root, impl, kind, modes, duration / blocks))
    merged: Result = {}
    for impl, parts in rounds.items():
        elapsed = sum(r["duration_s"] for r in parts)
        acquisitions = sum(r["acquisitions"] for r in parts)
        requests = sum((r["requests_per_acquisition_client"] or 0) * r["acquisitions"] for r in parts)
        packets = [r["server_packets_per_acquisition"] for r in parts]
        by_mode = {
            m: sum(r["acquisitions_per_s_by_mode"].get(m, 0) * r["duration_s"] for r in parts) / elapsed
            for m in set(modes)
        }
        merged[impl] = {
            "impl": impl,
            "clients": len(modes),
            "blocks": blocks,
            "duration_s": elapsed,
            "acquisitions": acquisitions,
            "acquisitions_per_s": acquisitions / elapsed if elapsed else 0.0,
            "acquisitions_per_s_by_mode": by_mode,
            "acquisitions_per_s_blocks": [r["acquisitions_per_s"] for r in parts],
            "requests_per_acquisition_client": requests / acquisitions if acquisitions else None,
            "server_packets_per_acquisition": None
            if None in packets or not acquisitions
            else sum(p * r["acquisitions"] for p, r in zip(packets, parts)) / acquisitions,
            "cpu_s": sum(r["cpu_s"] for r in parts),
            "cpu_user_s": sum(r["cpu_user_s"] for r in parts),
            "cpu_system_s": sum(r["cpu_system_s"] for r in parts),
            "cpu_ms_per_acquisition": sum(r["cpu_s"] for r in parts) * 1000 / acquisitions if acquisitions else None,
            "cpu_ms_per_acquisition_blocks": [r["cpu_ms_per_acquisition"] for r in parts],
            "threads_before_max": max((t for r in parts for t in r["threads_before_by_process"]), default=None),
            "threads_peak_max": max((t for r in parts for t in r["threads_peak_by_process"]), default=None),
            "errors": [e for r in parts for e in r["errors"]],
        }
    return merged


def spread(n: int, min_processes: int, max_per_process: int) -> list[int]:
    processes = min(n, max(min_processes, math.ceil(n / max_per_process)))
    sizes = [n // processes] * processes
    for i in range(n % processes):
        sizes[i] += 1
    return sizes


GREEN_FROM = 5000  # participant rounds this large run on gevent workers, when gevent is installed


def green_available() -> bool:
    try:
        import gevent  # type: ignore[import-untyped]  # noqa: F401
    except ImportError:
        return False
    return True


def run_green_processes(
    hosts: str, params: list[Result], timeout: float, setup_timeout: float
) -> tuple[list[Result], float, int | None, Result]:
    """run_processes for ``benchmarks.green`` workers: the same protocol over stdin/stdout
    (parameters in; "ready" out; "go" in; the result out; "close" in)."""
    import queue
    import subprocess

    root = Path(__file__).resolve().parent.parent
    lines: queue.Queue[tuple[int, str]] = queue.Queue()
    procs = []
    for k, p in enumerate(params):
        proc = subprocess.Popen(
            [sys.executable, "-m", "benchmarks.green"],
            cwd=root,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert proc.stdin is not None and proc.stdout is not None
        proc.stdin.write(json.dumps(p) + "\n")
        proc.stdin.flush()

        def pump(k: int = k, out: Any = proc.stdout) -> None:
            for line in out:
                lines.put((k, line.strip()))

        threading.Thread(target=pump, daemon=True).start()
        procs.append(proc)

    def send(word: str) -> None:
        for proc in procs:
            try:
                assert proc.stdin is not None
                proc.stdin.write(word + "\n")
                proc.stdin.flush()
            except (OSError, ValueError):
                pass

    problems: Result = {}
    collected: list[Result] = []
    ready = 0
    deadline = time.monotonic() + setup_timeout
    while ready < len(procs) and time.monotonic() < deadline:
        try:
            _, line = lines.get(timeout=1.0)
        except queue.Empty:
            continue
        if line == "ready":
            ready += 1
        elif line.startswith("{"):
            collected.append(json.loads(line))  # a worker that failed while setting up
            ready += 1
    if ready < len(procs):
        problems["not_ready"] = len(procs) - ready
    before = server_packets(hosts)
    t0 = time.time()
    send("go")
    deadline = time.monotonic() + timeout + 30
    while len(collected) < len(procs) and time.monotonic() < deadline:
        try:
            _, line = lines.get(timeout=1.0)
        except queue.Empty:
            continue
        if line.startswith("{"):
            collected.append(json.loads(line))
    after = server_packets(hosts)
    send("close")
    if len(collected) < len(procs):
        problems["not_reported"] = len(procs) - len(collected)
    for proc in procs:
        try:
            proc.wait(120)
        except subprocess.TimeoutExpired:
            proc.kill()
            problems["killed"] = problems.get("killed", 0) + 1
    return collected, t0, packet_delta(before, after), problems


ROUND_NAMES = {  # the participants rounds' implementations, as the reports name them
    "zksync-db": "zksync DoubleBarrier",
    "kazoo-db": "kazoo DoubleBarrier",
    "sync": "zksync signal_and_wait",
    "curator-db": "Curator DistributedDoubleBarrier",
    "floor-db": "harness floor: create + delete",
    "floor-sync": "harness floor: one create",
}


def participants_round(
    client: KazooClient,
    hosts: str,
    impl: str,
    n: int,
    timeout: float,
    max_per_process: int,
    allow_green: bool = True,
) -> Result:
    tag = uuid.uuid4().hex[:8]
    path = f"{ROOT}/db-{impl}-{n}-{tag}"
    if impl == "curator-db":
        return curator_participants_round(client, hosts, path, n, timeout)
    namespace = f"bench-{n}-{tag}"
    sizes = spread(n, 10, max_per_process)
    params = []
    first = 0
    for count in sizes:
        params.append(
            {
                "hosts": hosts,
                "impl": impl,
                "n": n,
                "first": first,
                "count": count,
                "path": path,
                "namespace": namespace,
                "timeout": timeout,
            }
        )
        first += count
    started = time.monotonic()
    green = allow_green and impl not in AIO_IMPLS and n >= GREEN_FROM and green_available()
    runner = (
        run_green_processes
        if green
        else (lambda h, p, timeout, setup_timeout: run_processes("participants", h, p, timeout, setup_timeout))
    )
    results, t0, packets, problems = runner(hosts, params, timeout=timeout, setup_timeout=max(240.0, 0.06 * n))
    setup_and_run_s = time.monotonic() - started
    good = [r for r in results if "error" not in r]
    errors = [r["error"] for r in results if "error" in r]
    finished = sum(r["finished"] for r in good)
    last = max((r["last_finish"] for r in good if r["last_finish"] is not None), default=None)
    complete = finished == n and not problems
    requests = sum(r["requests"] for r in good)
    writes = sum(r["writes"] for r in good)
    kinds: Counter[str] = Counter()
    for r in good:
        kinds.update(r["kinds"])
    out: Result = {
        "impl": impl,
        "participants": n,
        "processes": len(sizes),
        "max_clients_per_process": max(sizes),
        "completed": complete,
        "finished": finished,
        "wall_s": (last - t0) if complete and last is not None else None,
        "watchdog_s": timeout,
        "requests_per_participant_client": requests / n if good else None,
        "writes_per_participant_client": writes / n if good else None,
        "server_packets_per_participant": None if packets is None else packets / n,
        "request_kinds_per_participant": {k: v / n for k, v in sorted(kinds.items())},
        "errors": (errors + [e for r in good for e in r["errors"]])[:5],
        "error_count": len(errors) + sum(r["error_count"] for r in good),
        "problems": problems,
        "round_incl_setup_s": setup_and_run_s,
        "workers": "gevent" if green else ("asyncio" if impl in AIO_IMPLS else "threads"),
    }
    window = window_totals(good)
    out.update(window)
    out["cpu_ms_per_participant"] = window["cpu_s"] * 1000 / n if good else None
    if impl in SYNC_IMPLS:
        out["join_requests_per_participant"] = sum(r["join_requests"] for r in good) / n if good else None
        out["join_s_max_process"] = max((r["join_s"] for r in good), default=None)
    cleanup_start = time.monotonic()
    try:
        delete_tree(client, path if impl not in SYNC_IMPLS else f"/zksync-sync/{namespace}")
        out["cleanup"] = "deleted"
    except Exception as exc:
        out["cleanup"] = f"failed: {exc!r}"
    out["cleanup_s"] = time.monotonic() - cleanup_start
    return out


def curator_participants_round(client: KazooClient, hosts: str, path: str, n: int, timeout: float) -> Result:
    """``participants_round`` for Curator's DistributedDoubleBarrier: every member in one JVM, a
    session and a thread each; timed, like the others, from the release (``go``) to the last
    member out (both clocks are this machine's)."""
    assert CURATOR is not None
    started = time.monotonic()
    problems: Result = {}
    errors: list[str] = []
    answer: Result | None = None
    packets: int | None = None
    t0 = time.time()
    try:
        bench = curator.Bench(
            CURATOR,
            hosts,
            path,
            "double",
            max(240.0, 0.06 * n),
            members=n,
            seconds=timeout,
            session_timeout=SESSION_TIMEOUT,
        )
    except CuratorError as exc:
        errors.append(str(exc))
        problems["not_ready"] = 1
    else:
        try:
            before = server_packets(hosts)
            t0 = time.time()
            bench.send("go")
            answer = bench.result(timeout + 30)
            packets = packet_delta(before, server_packets(hosts))
        except CuratorError as exc:
            errors.append(str(exc))
            problems["not_reported"] = 1
        finally:
            if not bench.close():
                problems["killed"] = 1
    setup_and_run_s = time.monotonic() - started
    finished = answer["finished"] if answer else 0
    complete = bool(answer) and finished == n and not problems
    last = answer["last_finish"] if answer else None
    out: Result = {
        "impl": "curator-db",
        "participants": n,
        "processes": 1,
        "max_clients_per_process": n,
        "completed": complete,
        "finished": finished,
        "wall_s": (last - t0) if complete and last is not None else None,
        "watchdog_s": timeout,
        "requests_per_participant_client": answer["requests"] / n if answer else None,
        "writes_per_participant_client": answer["writes"] / n if answer else None,
        "server_packets_per_participant": None if packets is None else packets / n,
        "request_kinds_per_participant": {k: v / n for k, v in sorted(answer["kinds"].items())} if answer else {},
        "requests_counted_by": "Curator's tracer (completed operations)",
        "errors": (errors + (answer["errors"] if answer else []))[:5],
        "error_count": len(errors) + (answer["error_count"] if answer else 0),
        "problems": problems,
        "round_incl_setup_s": setup_and_run_s,
        "workers": "one JVM, a thread per member",
        "cpu_s": answer["cpu_s"] if answer else 0.0,
        "cpu_user_s": (answer["cpu_user_s"] or 0.0) if answer else 0.0,
        "cpu_system_s": (answer["cpu_system_s"] or 0.0) if answer else 0.0,
        "threads_before_by_process": [answer["threads_before"]] if answer else [],
        "threads_peak_by_process": [answer["threads_peak"]] if answer else [],
        "cpu_ms_per_participant": answer["cpu_s"] * 1000 / n if answer else None,
    }
    if answer:
        for key in ("wall_s_from_go", "enter_s_median", "enter_s_max", "leave_s_median", "leave_s_max"):
            out[key] = answer[key]
    cleanup_start = time.monotonic()
    try:
        delete_tree(client, path)
        out["cleanup"] = "deleted"
    except Exception as exc:
        out["cleanup"] = f"failed: {exc!r}"
    out["cleanup_s"] = time.monotonic() - cleanup_start
    return out


def memory(hosts: str, n: int) -> Result:
    namespace = f"bench-mem-{uuid.uuid4().hex[:8]}"
    results, _, _, problems = run_processes(
        "memory", hosts, [{"hosts": hosts, "n": n, "namespace": namespace}], timeout=300
    )
    out: Result = dict(results[0]) if results else {"error": "no result"}
    out["problems"] = problems
    client = zksync.connect(hosts)
    try:
        delete_tree(client, f"/zksync-sync/{namespace}")
    finally:
        client.stop()
        client.close()
    return out


# ---- targets and report ----------------------------------------------------------------


def target(name: str, met: bool | None, measured: str) -> Result:
    return {"target": name, "status": "n/a" if met is None else ("met" if met else "missed"), "measured": measured}


def by_n(rounds: list[Result], impl: str, n: int) -> Result | None:
    return next((r for r in rounds if r["impl"] == impl and r["participants"] == n), None)


def evaluate(results: Result) -> list[Result]:
    floor_rate = results["floors"]["write_floor_writes_per_s"]
    u = results["uncontended"]["zksync"]
    out = [
        target(
            "uncontended write-lock cycle <= 3 requests",
            u["requests_per_cycle_client"] <= 3,
            f"{u['requests_per_cycle_client']:.2f} requests/cycle",
        ),
        target(
            "uncontended write-lock cycle within 1.2x of create+getChildren+delete",
            u["over_floor"] <= 1.2,
            f"{u['over_floor']:.2f}x",
        ),
    ]
    cz, ck = results["contended"]["zksync"], results["contended"]["kazoo"]
    rpa = cz["requests_per_acquisition_client"]
    out.append(
        target(
            "contended lock (8 clients) <= 4 requests per acquisition",
            None if rpa is None else rpa <= 4,
            "n/a" if rpa is None else f"{rpa:.2f} requests/acquisition",
        )
    )
    # the median of the per-block ratios: a block in which one side stalls does not decide it
    zb = cz.get("acquisitions_per_s_blocks") or [cz["acquisitions_per_s"]]
    kb = ck.get("acquisitions_per_s_blocks") or [ck["acquisitions_per_s"]]
    ratios = [z / k for z, k in zip(zb, kb) if k]
    ratio = statistics.median(ratios) if ratios else None
    blocks = ", ".join(f"{z:.0f}/{k:.0f}" for z, k in zip(zb, kb))
    out.append(
        target(
            "contended lock >= 1.5x kazoo Lock throughput",
            None if ratio is None else ratio >= 1.5,
            "n/a"
            if ratio is None
            else f"{ratio:.2f}x, median of blocks (zksync/kazoo acquisitions/s "
            f"per block: {blocks}; overall {cz['acquisitions_per_s']:.0f} vs "
            f"{ck['acquisitions_per_s']:.0f})",
        )
    )
    out.append(curator_lock_target(results, zb, rpa))
    db = by_n(results["double_barrier"], "zksync-db", 1000)
    if db is None:
        out.append(
            target("DoubleBarrier N=1000 completes within 3x of the write floor (2N writes)", None, "not run at N=1000")
        )
    else:
        floor_s = 2 * 1000 / floor_rate
        if db["completed"]:
            r = db["wall_s"] / floor_s
            out.append(
                target(
                    "DoubleBarrier N=1000 completes within 3x of the write floor (2N writes)",
                    r <= 3,
                    f"{r:.2f}x ({db['wall_s']:.2f} s vs floor {floor_s:.2f} s)"
                    f"{harness_note(db, by_n(results['double_barrier'], 'floor-db', 1000))}",
                )
            )
        else:
            out.append(
                target(
                    "DoubleBarrier N=1000 completes within 3x of the write floor (2N writes)", False, "did not complete"
                )
            )
    out.append(curator_barrier_target(results, db))
    s1 = by_n(results["signal_and_wait"], "sync", 1000)
    if s1 is None:
        out.append(target("signal_and_wait N=1000 under 2x the write floor", None, "not run at N=1000"))
    else:
        floor_s = 1000 * s1["writes_per_participant_client"] / floor_rate
        if s1["completed"]:
            r = s1["wall_s"] / floor_s
            out.append(
                target(
                    "signal_and_wait N=1000 under 2x the write floor",
                    r < 2,
                    f"{r:.2f}x ({s1['wall_s']:.2f} s vs floor {floor_s:.2f} s = 1000 x "
                    f"{s1['writes_per_participant_client']:.2f} writes / {floor_rate:.0f} writes/s)"
                    f"{harness_note(s1, by_n(results['signal_and_wait'], 'floor-sync', 1000))}",
                )
            )
        else:
            out.append(target("signal_and_wait N=1000 under 2x the write floor", False, "did not complete"))
    s2 = by_n(results["signal_and_wait"], "sync", 10000)
    out.append(
        target(
            "signal_and_wait N=10000 completes",
            None if s2 is None else bool(s2["completed"]),
            "not run at N=10000"
            if s2 is None
            else (
                f"completed in {s2['wall_s']:.1f} s"
                if s2["completed"]
                else f"did not complete: {s2['finished']}/10000 finished; {s2['errors'][:2]} {s2['problems']}"
            ),
        )
    )
    return out


CURATOR_LOCK_TARGET = "contended lock (8 clients) >= 1.0x Curator InterProcessMutex throughput, at <= 4 requests"
CURATOR_DB_TARGET = "DoubleBarrier N=1000 zksync wall time <= 1.0x Curator DistributedDoubleBarrier's"


def curator_lock_target(results: Result, zksync_blocks: list[float], rpa: float | None) -> Result:
    """zksync's contended throughput over Curator's (the median of the per-block ratios), met at
    >= 1.0x with zksync at <= 4 requests per acquisition."""
    cc = results["contended"].get("curator")
    if cc is None:
        skipped = results["meta"].get("curator", {}).get("skipped", "not in this run")
        return target(CURATOR_LOCK_TARGET, None, f"Curator not run: {skipped}")
    cb = cc.get("acquisitions_per_s_blocks") or [cc["acquisitions_per_s"]]
    ratios = [z / c for z, c in zip(zksync_blocks, cb) if c]
    if not ratios:
        return target(CURATOR_LOCK_TARGET, None, f"Curator made no acquisitions: {'; '.join(cc['errors'])[:300]}")
    ratio = statistics.median(ratios)
    blocks = ", ".join(f"{z:.0f}/{c:.0f}" for z, c in zip(zksync_blocks, cb))
    cz = results["contended"]["zksync"]
    return target(
        CURATOR_LOCK_TARGET,
        ratio >= 1.0 and rpa is not None and rpa <= 4,
        f"{ratio:.2f}x, median of blocks (zksync/Curator acquisitions/s per block: {blocks}; overall "
        f"{cz['acquisitions_per_s']:.0f} vs {cc['acquisitions_per_s']:.0f}); zksync {fmt(rpa)} requests/acquisition; "
        f"server packets/acquisition {fmt(cz['server_packets_per_acquisition'])} vs "
        f"{fmt(cc['server_packets_per_acquisition'])}",
    )


def curator_barrier_target(results: Result, db: Result | None) -> Result:
    """zksync's DoubleBarrier N=1000 wall time over Curator's DistributedDoubleBarrier's."""
    cdb = by_n(results["double_barrier"], "curator-db", 1000)
    if cdb is None:
        skipped = results["meta"].get("curator", {}).get("skipped", "not in this run")
        ran = any(r["impl"] == "curator-db" for r in results["double_barrier"])
        return target(CURATOR_DB_TARGET, None, "not run at N=1000" if ran else f"Curator not run: {skipped}")
    if db is None:
        return target(CURATOR_DB_TARGET, None, "zksync not run at N=1000")
    if not db["completed"]:
        return target(CURATOR_DB_TARGET, False, "zksync did not complete")
    if not cdb["completed"]:
        return target(CURATOR_DB_TARGET, None, f"Curator did not complete: {'; '.join(cdb['errors'][:2])[:300]}")
    ratio = db["wall_s"] / cdb["wall_s"]
    return target(
        CURATOR_DB_TARGET,
        ratio <= 1.0,
        f"{ratio:.2f}x ({db['wall_s']:.2f} s vs {cdb['wall_s']:.2f} s; zksync: {db['processes']} processes of up to "
        f"{db['max_clients_per_process']} sessions, Curator: one JVM of 1000 sessions)",
    )


def harness_note(measured: Result, floor: Result | None) -> str:
    """The same round against the harness floor: the recipe's unavoidable writes made by the same
    processes and sessions (what 1000 Python sessions on this machine cost by themselves)."""
    if floor is None or not floor["completed"] or not floor["wall_s"]:
        return ""
    return f"; {measured['wall_s'] / floor['wall_s']:.2f}x the harness floor ({floor['wall_s']:.2f} s)"


def fmt(value: Any, digits: int = 2) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def markdown(results: Result) -> str:
    f = results["floors"]
    about = results["meta"].get("curator")
    with_curator = "curator" in results["contended"]
    lines = [
        f"# zksync vs kazoo{' vs Curator' if with_curator else ''} — {results['meta']['started']}",
        "",
        f"Ensemble: {results['meta']['ensemble']}; {'quick' if results['meta']['quick'] else 'full'} run, "
        f"{results['meta']['wall_s']:.0f} s.",
    ]
    if about is not None:
        lines.append(f"Curator: {about['about']}." if about["run"] else f"Curator: skipped, {about['skipped']}.")
    lines += [
        "",
        "## Targets",
        "",
        "| target | status | measured |",
        "|---|---|---|",
    ]
    lines += [f"| {t['target']} | {t['status']} | {t['measured']} |" for t in results["targets"]]
    lines += [
        "",
        "## Floors",
        "",
        "| measure | value |",
        "|---|---|",
        f"| synchronous create, median | {f['create_median_ms']:.2f} ms |",
        f"| get, median | {f['get_median_ms']:.2f} ms |",
        f"| pipelined creates ({f['pipelined_creates']} outstanding), write floor | "
        f"{f['write_floor_writes_per_s']:.0f} writes/s |",
    ]
    u = results["uncontended"]
    lines += [
        "",
        f"## Uncontended write-lock cycle ({u['cycles']} cycles each, blocks of {u['block']})",
        "",
        "| | median ms | mean ms | p90 ms | p99 ms | requests/cycle (client) | server packets/cycle | / floor |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name in ("zksync", "kazoo", "curator"):
        if name not in u:
            continue
        v = u[name]
        lines.append(
            f"| {LOCK_NAMES[name]} | {v['median_ms']:.2f} | {fmt(v.get('mean_ms'))} | {v['p90_ms']:.2f} | "
            f"{fmt(v.get('p99_ms'))} | {v['requests_per_cycle_client']:.2f}{'*' if name == 'curator' else ''} | "
            f"{fmt(v['server_packets_per_cycle'])} | {v['over_floor']:.2f}x |"
        )
    lines.append(
        f"| floor: create + getChildren + delete | {u['floor_median_ms']:.2f} | | | | "
        f"{u['floor_requests_per_cycle']:.2f} | | 1.00x |"
    )
    if "curator_error" in u:
        lines += ["", f"Curator: {u['curator_error'][:500]}"]
    for key, title in (
        ("contended", "Contended write lock, 8 clients (processes; Curator: threads of one JVM)"),
        ("rwmutex", "Readers-writer lock, 3 reader + 1 writer clients (processes; Curator: threads of one JVM)"),
    ):
        lines += [
            "",
            f"## {title}",
            "",
            "| | acquisitions/s | by mode | requests/acquisition (client) | server packets/acquisition | "
            "CPU ms/acquisition (clients) | errors |",
            "|---|---|---|---|---|---|---|",
        ]
        for name in ("zksync", "kazoo", "curator"):
            if name not in results[key]:
                continue
            v = results[key][name]
            modes = ", ".join(f"{m} {r:.0f}" for m, r in sorted(v["acquisitions_per_s_by_mode"].items()))
            lines.append(
                f"| {LOCK_NAMES[name]} | {v['acquisitions_per_s']:.0f} | {modes} | "
                f"{fmt(v['requests_per_acquisition_client'])}{'*' if name == 'curator' else ''} | "
                f"{fmt(v['server_packets_per_acquisition'])} | {fmt(v.get('cpu_ms_per_acquisition'))} | "
                f"{'; '.join(v['errors'])[:500] or '—'} |"
            )
    lines += [
        "",
        "## DoubleBarrier enter + exit, and Sync.signal_and_wait",
        "",
        "| recipe | N | processes | completed | wall s | requests/participant (client) | "
        "writes/participant | server packets/participant | CPU ms/participant (clients) | errors |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results["double_barrier"] + results["signal_and_wait"]:
        status = "yes" if r["completed"] else f"did not complete ({r['finished']}/{r['participants']})"
        errs = "; ".join(r["errors"][:2]) or "—"
        if r["problems"]:
            errs += f" {json.dumps(r['problems'])}"
        star = "*" if r["impl"] == "curator-db" else ""
        lines.append(
            f"| {ROUND_NAMES[r['impl']]} | {r['participants']} | {r['processes']} | {status} | {fmt(r['wall_s'])} | "
            f"{fmt(r['requests_per_participant_client'])}{star} | {fmt(r['writes_per_participant_client'])}{star} | "
            f"{fmt(r['server_packets_per_participant'])} | {fmt(r.get('cpu_ms_per_participant'))} | {errs} |"
        )
    sync_rounds = [r for r in results["signal_and_wait"] if "join_requests_per_participant" in r]
    if sync_rounds:
        lines += [
            "",
            "signal_and_wait is timed from a common start after every participant has joined "
            "(presence set up); joining is reported apart:",
            "",
            "| N | join requests/participant | join time (slowest process) s |",
            "|---|---|---|",
        ]
        for r in sync_rounds:
            lines.append(
                f"| {r['participants']} | {fmt(r['join_requests_per_participant'])} | {fmt(r['join_s_max_process'])} |"
            )
    m = results["memory"]
    lines += ["", "## Memory", ""]
    if "delta_kib" in m:
        lines.append(
            f"One process hosting {m['participants']} participants (client + Sync + one signal_and_wait "
            f"each): RSS {m['rss_before_kib'] / 1024:.1f} MiB before, {m['rss_after_kib'] / 1024:.1f} MiB "
            f"after: +{m['delta_kib'] / 1024:.1f} MiB, {m['per_participant_kib']:.0f} KiB per participant."
        )
    else:
        lines.append(f"failed: {m.get('error')}")
    lines += [
        "",
        "## How the floors are computed",
        "",
        "- write floor: pipelined creates from one client (all sent, then all awaited), median of 3 runs;",
        "- DoubleBarrier floor: 2N writes (one create and one delete per participant) at the write floor;",
        "- signal_and_wait floor: N x (writes per participant, counted by the clients during the round: "
        "Create/Delete/SetData/multi requests, including creates that fail with NodeExists) at the write floor;",
        "- lock floor: one synchronous create + getChildren + delete of an ephemeral-sequential node, "
        "timed in blocks alternating with the lock cycles;",
        "- harness floors: the same processes and sessions as the recipe's round, each participant making only "
        "the writes the recipe cannot avoid (create + delete for DoubleBarrier, one create for a signal), "
        "from the same common start;",
        "- lock rounds: zksync, kazoo (and Curator, when run) alternate in blocks, summed (acquisitions/s per "
        "block in results.json).",
    ]
    if with_curator:
        lines += [
            f"- Curator {curator.VERSION} (tests/peers/curator, CuratorBench.java) runs in the same blocks and "
            "rounds: one JVM per round hosting every client, each with its own CuratorFramework (session) and "
            "lock or barrier object, a thread each, connected and warmed up before the common start; zksync and "
            "kazoo use a process per lock client and, for the barriers, processes of up to 100 sessions;",
            "- CPU: the client processes' CPU over the timed window (Python: `time.process_time()` of each worker, "
            "summed; Curator: the JVM's `getProcessCpuTime()`, every thread, JIT and GC included);",
            "- \\* Curator's requests are the operations its tracer saw complete (a failed call, such as a getData "
            "of a predecessor just deleted or a barrier member's create of a ready node that exists, is not "
            "traced): a lower bound; server packets count them all.",
        ]
    lines.append("")
    return "\n".join(lines)


LOCK_NAMES = {"zksync": "zksync", "kazoo": "kazoo", "curator": "Curator"}


def plot(results: Result, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_wall, ax_req) = plt.subplots(1, 2, figsize=(12, 4.5))
    series = [
        ("zksync DoubleBarrier", results["double_barrier"], "zksync-db", "o-"),
        ("kazoo DoubleBarrier", results["double_barrier"], "kazoo-db", "s--"),
        ("Curator DistributedDoubleBarrier", results["double_barrier"], "curator-db", "D-."),
        ("harness floor: create + delete", results["double_barrier"], "floor-db", "k:"),
        ("zksync signal_and_wait", results["signal_and_wait"], "sync", "^-"),
        ("harness floor: one create", results["signal_and_wait"], "floor-sync", "c:"),
    ]
    for label, rounds, impl, style in series:
        rs = sorted((r for r in rounds if r["impl"] == impl), key=lambda r: r["participants"])
        done = [r for r in rs if r["completed"]]
        if done:
            ax_wall.plot([r["participants"] for r in done], [r["wall_s"] for r in done], style, label=label)
        failed = [r for r in rs if not r["completed"]]
        if failed:
            ax_wall.plot(
                [r["participants"] for r in failed],
                [r["watchdog_s"] for r in failed],
                "x",
                markersize=10,
                label=f"{label}: did not complete (watchdog)",
            )
        counted = [r for r in rs if r["completed"] and r["requests_per_participant_client"] is not None]
        if counted:
            ax_req.plot(
                [r["participants"] for r in counted],
                [r["requests_per_participant_client"] for r in counted],
                style,
                label=label,
            )
    for ax, title, ylabel in ((ax_wall, "wall time", "seconds"), (ax_req, "requests per participant", "requests")):
        ax.set_xscale("log")
        ax.set_xlabel("participants N")
        ax.set_ylabel(ylabel)
        ax.set_title(title)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    ax_wall.set_yscale("log")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# ---- front-ends: blocking against asyncio ----------------------------------------------

# (blocking impl, asyncio impl) of each scenario; the same worker functions run both
FRONTEND_LOCK = ("zksync", "zksync-aio")
FRONTEND_DB = ("zksync-db", "zksync-aio-db")
FRONTEND_SYNC = ("sync", "zksync-aio-sync")


class Shape(NamedTuple):
    n: int  # participants of the DoubleBarrier and signal_and_wait rounds
    lock_blocks: int  # lock blocks per front-end
    lock_block_s: float
    repeats: int  # participants rounds per front-end


FRONTENDS = {"quick": Shape(50, 2, 2.0, 1), "full": Shape(1000, 5, 3.0, 3)}


def median_or_none(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def frontend_lock(hosts: str, root: str, blocks: int, block_s: float) -> Result:
    """The contended write lock (8 processes, one session each), blocking and asyncio in
    alternating blocks; the ratios are medians of the per-block ratios."""
    merged = alternating_lock_rounds(hosts, root, "lock", ["write"] * 8, blocks * block_s, blocks, FRONTEND_LOCK)
    blocking, aio = merged[FRONTEND_LOCK[0]], merged[FRONTEND_LOCK[1]]
    pairs = list(zip(blocking["acquisitions_per_s_blocks"], aio["acquisitions_per_s_blocks"]))
    cpu_pairs = list(zip(blocking["cpu_ms_per_acquisition_blocks"], aio["cpu_ms_per_acquisition_blocks"]))
    return {
        "clients": 8,
        "blocks": blocks,
        "block_s": block_s,
        "blocking": blocking,
        "asyncio": aio,
        "throughput_ratio": median_or_none([a / b for b, a in pairs if b]),
        "cpu_per_acquisition_ratio": median_or_none([a / b for b, a in cpu_pairs if a is not None and b]),
    }


def frontend_participants(
    client: KazooClient, hosts: str, impls: tuple[str, str], n: int, repeats: int, max_per_process: int
) -> Result:
    """``repeats`` rounds of N participants on each front-end, alternating (the order flips
    every repeat); the ratios are medians of the per-repeat ratios."""
    rounds: dict[str, list[Result]] = {"blocking": [], "asyncio": []}
    for repeat in range(repeats):
        order = list(zip(("blocking", "asyncio"), impls))
        for frontend, impl in order if repeat % 2 == 0 else reversed(order):
            step(f"{impl} N={n} ({repeat + 1}/{repeats})")
            result = participants_round(client, hosts, impl, n, watchdog(n), max_per_process, allow_green=False)
            rounds[frontend].append(result)
    pairs = list(zip(rounds["blocking"], rounds["asyncio"]))
    return {
        "participants": n,
        "processes": rounds["blocking"][0]["processes"],
        "max_clients_per_process": rounds["blocking"][0]["max_clients_per_process"],
        "repeats": repeats,
        "blocking": participants_summary(rounds["blocking"], n),
        "asyncio": participants_summary(rounds["asyncio"], n),
        "wall_ratio": median_or_none(
            [a["wall_s"] / b["wall_s"] for b, a in pairs if a["completed"] and b["completed"] and b["wall_s"]]
        ),
        "cpu_per_participant_ratio": median_or_none(
            [
                a["cpu_ms_per_participant"] / b["cpu_ms_per_participant"]
                for b, a in pairs
                if a["completed"] and b["completed"] and b["cpu_ms_per_participant"]
            ]
        ),
        "rounds": rounds,
    }


def participants_summary(rounds: list[Result], n: int) -> Result:
    """One front-end's repeats: the median wall time of the completed rounds, the mean of their
    counts and CPU times, the thread counts at their highest."""
    done = [r for r in rounds if r["completed"]]

    def mean(key: str, scale: float = 1.0) -> float | None:
        values = [r[key] for r in done if r[key] is not None]
        return sum(values) * scale / len(values) if values else None

    return {
        "impl": rounds[0]["impl"],
        "rounds": len(rounds),
        "completed": len(done),
        "wall_s_median": median_or_none([r["wall_s"] for r in done]),
        "wall_s_rounds": [r["wall_s"] for r in rounds],
        "requests_per_participant_client": mean("requests_per_participant_client"),
        "writes_per_participant_client": mean("writes_per_participant_client"),
        "server_packets_per_participant": mean("server_packets_per_participant"),
        "cpu_ms_per_participant": mean("cpu_s", 1000 / n),
        "cpu_ms_per_participant_rounds": [r["cpu_ms_per_participant"] for r in rounds],
        "cpu_user_ms_per_participant": mean("cpu_user_s", 1000 / n),
        "cpu_system_ms_per_participant": mean("cpu_system_s", 1000 / n),
        "threads_before_max": max((t for r in rounds for t in r["threads_before_by_process"]), default=None),
        "threads_peak_max": max((t for r in rounds for t in r["threads_peak_by_process"]), default=None),
        "errors": [e for r in rounds for e in r["errors"]][:5]
        + [json.dumps(r["problems"]) for r in rounds if r["problems"]],
    }


def run_frontends(args: argparse.Namespace) -> Result:
    shape = FRONTENDS["quick" if args.quick else "full"]
    if args.repeats:
        shape = shape._replace(repeats=args.repeats)
    db_sizes = args.sizes or [shape.n]
    sync_sizes = args.sync_sizes or [shape.n]
    started = time.monotonic()
    results: Result = {
        "meta": {
            "mode": "frontends",
            "started": time.strftime("%Y-%m-%d %H:%M:%S"),
            "quick": args.quick,
            "sizes": db_sizes,
            "sync_sizes": sync_sizes,
            "lock_blocks": shape.lock_blocks,
            "lock_block_s": shape.lock_block_s,
            "repeats": shape.repeats,
            "python": sys.version.split()[0],
            "cpus": os.cpu_count(),
        }
    }
    with ensemble_hosts() as (hosts, source):
        results["meta"]["ensemble"] = source
        client = zksync.connect(hosts, session_timeout=SESSION_TIMEOUT)
        root = f"{ROOT}/{os.getpid()}-{uuid.uuid4().hex[:6]}"
        client.ensure_path(root)
        try:
            step("contended lock: blocking and asyncio")
            results["contended"] = frontend_lock(hosts, root, shape.lock_blocks, shape.lock_block_s)
            results["double_barrier"] = [
                frontend_participants(client, hosts, FRONTEND_DB, n, shape.repeats, 100) for n in db_sizes
            ]
            results["signal_and_wait"] = [
                frontend_participants(client, hosts, FRONTEND_SYNC, n, shape.repeats, 500) for n in sync_sizes
            ]
        finally:
            try:
                delete_tree(client, root)
            finally:
                client.stop()
                client.close()
    results["meta"]["wall_s"] = time.monotonic() - started
    return results


def frontends_markdown(results: Result) -> str:
    meta = results["meta"]
    lines = [
        f"# zksync blocking vs asyncio front-ends — {meta['started']}",
        "",
        f"Ensemble: {meta['ensemble']}; {'quick' if meta['quick'] else 'full'} run, {meta['wall_s']:.0f} s; "
        f"Python {meta['python']}, {meta['cpus']} CPUs.",
        "",
        "CPU is `time.process_time()` (user + system of the whole worker process, kazoo's threads included) "
        "over each worker's timed window only, summed over the workers and divided by the operations. "
        "Threads: `threading.active_count()` per worker process when its window opens, and its highest "
        "sample in the window (the highest over the processes).",
    ]
    c = results["contended"]
    lines += [
        "",
        f"## Contended write lock, {c['clients']} processes (one session each), "
        f"{c['blocks']} alternating blocks of {c['block_s']:.0f} s",
        "",
        "| front-end | acquisitions/s | per block | requests/acquisition (client) | server packets/acquisition | "
        "CPU ms/acquisition (user + sys) | threads per process (start → peak) | errors |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for frontend, recipe in (("blocking", "zksync.RWMutex"), ("asyncio", "zksync.aio.RWMutex")):
        v = c[frontend]
        per_block = ", ".join(f"{r:.0f}" for r in v["acquisitions_per_s_blocks"])
        lines.append(
            f"| {frontend} ({recipe}) | {v['acquisitions_per_s']:.0f} | {per_block} | "
            f"{fmt(v['requests_per_acquisition_client'])} | {fmt(v['server_packets_per_acquisition'])} | "
            f"{cpu_cell(v['cpu_ms_per_acquisition'], v['cpu_user_s'], v['cpu_system_s'], v['acquisitions'])} | "
            f"{v['threads_before_max']} → {v['threads_peak_max']} | {'; '.join(v['errors']) or '—'} |"
        )
    lines += [
        "",
        f"asyncio / blocking: throughput {fmt(c['throughput_ratio'])}x, CPU per acquisition "
        f"{fmt(c['cpu_per_acquisition_ratio'])}x (medians of the per-block ratios).",
    ]
    for key, title, recipes in (
        ("double_barrier", "DoubleBarrier enter + exit", ("zksync.DoubleBarrier", "zksync.aio.DoubleBarrier")),
        ("signal_and_wait", "Sync.signal_and_wait", ("zksync.Sync", "zksync.aio.Sync")),
    ):
        for r in results[key]:
            lines += [
                "",
                f"## {title}, N={r['participants']} ({r['processes']} processes, up to "
                f"{r['max_clients_per_process']} sessions each; {r['repeats']} round(s) per front-end, alternating)",
                "",
                "| front-end | completed | wall s (median) | per round | requests/participant (client) | "
                "server packets/participant | CPU ms/participant (user + sys), mean | threads per process "
                "(start → peak) | errors |",
                "|---|---|---|---|---|---|---|---|---|",
            ]
            for frontend, recipe, how in (
                ("blocking", recipes[0], "a thread per participant"),
                ("asyncio", recipes[1], "coroutines on one loop per process"),
            ):
                v = r[frontend]
                per_round = ", ".join(fmt(w) for w in v["wall_s_rounds"])
                cpu = fmt(v["cpu_ms_per_participant"])
                if v["cpu_user_ms_per_participant"] is not None:
                    cpu += f" ({v['cpu_user_ms_per_participant']:.2f} + {v['cpu_system_ms_per_participant']:.2f})"
                lines.append(
                    f"| {frontend} ({recipe}, {how}) | {v['completed']}/{v['rounds']} | {fmt(v['wall_s_median'])} | "
                    f"{per_round} | {fmt(v['requests_per_participant_client'])} | "
                    f"{fmt(v['server_packets_per_participant'])} | {cpu} | "
                    f"{v['threads_before_max']} → {v['threads_peak_max']} | {'; '.join(v['errors'][:2]) or '—'} |"
                )
            lines += [
                "",
                f"asyncio / blocking: wall time {fmt(r['wall_ratio'])}x, CPU per participant "
                f"{fmt(r['cpu_per_participant_ratio'])}x (medians of the per-round ratios).",
            ]
    lines += [
        "",
        "## How it is measured",
        "",
        "- one local ensemble and the suite's worker processes for both front-ends; each participant and "
        "each lock client has its own session (KazooClient), the same sessions per process on both;",
        "- lock: 8 worker processes acquire and release for a block's duration; blocking and asyncio "
        "alternate block by block (acquisitions/s per block above);",
        "- DoubleBarrier and signal_and_wait: the suite's participants rounds (up to 100, resp. 500, "
        "sessions per process, at least 10 processes), timed from a common start to the last participant "
        "done; Sync participants join before the start. Blocking: a thread per participant; asyncio: "
        "`asyncio.gather` of every participant of the process on one event loop;",
        "- requests are counted by each client (`_call`); server packets are `mntr` zk_packets_received "
        "(pings included); thread counts include kazoo's three threads per session and the worker's "
        "result-queue thread.",
        "",
    ]
    return "\n".join(lines)


def cpu_cell(per_op_ms: float | None, user_s: float, system_s: float, ops: int) -> str:
    if per_op_ms is None or not ops:
        return "—"
    return f"{per_op_ms:.2f} ({user_s * 1000 / ops:.2f} + {system_s * 1000 / ops:.2f})"


# ---- main ------------------------------------------------------------------------------


def sizes_arg(text: str) -> list[int]:
    values = [int(v) for v in text.split(",") if v.strip()]
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"expected comma-separated positive integers, got {text!r}")
    return values


def watchdog(n: int) -> float:
    return min(240.0, 60.0 + 0.03 * n)


def find_curator(wanted: bool) -> Result:
    """Sets CURATOR when Curator can run here; says in one line why not otherwise."""
    global CURATOR
    CURATOR = None
    if not wanted:
        reason = "--no-curator"
    else:
        argv, about = curator.command()
        if argv is not None:
            CURATOR = argv
            return {"run": True, "about": about}
        reason = about
    print(f"curator: skipped, {reason}", file=sys.stderr, flush=True)
    return {"run": False, "skipped": reason}


def run(args: argparse.Namespace) -> Result:
    quick = args.quick
    sizes = args.sizes or ([10] if quick else [10, 100, 1000])
    sync_sizes = args.sync_sizes or ([10] if quick else [10, 100, 1000, 10000])
    duration = 2.0 if quick else 9.0
    started = time.monotonic()
    results: Result = {
        "meta": {
            "started": time.strftime("%Y-%m-%d %H:%M:%S"),
            "quick": quick,
            "sizes": sizes,
            "sync_sizes": sync_sizes,
            "lock_duration_s": duration,
            "python": sys.version.split()[0],
            "cpus": os.cpu_count(),
            "curator": find_curator(not args.no_curator),
        }
    }
    lock_impls = ("zksync", "kazoo", "curator") if CURATOR else ("zksync", "kazoo")
    db_impls = ("floor-db", "zksync-db", "kazoo-db", "curator-db") if CURATOR else ("floor-db", "zksync-db", "kazoo-db")
    with ensemble_hosts() as (hosts, source):
        results["meta"]["ensemble"] = source
        client = zksync.connect(hosts, session_timeout=SESSION_TIMEOUT)
        root = f"{ROOT}/{os.getpid()}-{uuid.uuid4().hex[:6]}"
        client.ensure_path(root)
        try:
            step("floors")
            results["floors"] = floors(client, root, 50 if quick else 300, 500 if quick else 5000)
            step("uncontended lock cycle")
            results["uncontended"] = uncontended(client, hosts, root, 50 if quick else 500)
            step("contended lock")
            blocks = 1 if quick else 3
            results["contended"] = alternating_lock_rounds(
                hosts, root, "lock", ["write"] * 8, duration, blocks, lock_impls
            )
            step("readers-writer lock")
            results["rwmutex"] = alternating_lock_rounds(
                hosts, root, "rw", ["read", "read", "read", "write"], duration, blocks, lock_impls
            )
            results["double_barrier"] = []
            for n in sizes:
                for impl in db_impls:
                    step(f"{impl} N={n}")
                    results["double_barrier"].append(participants_round(client, hosts, impl, n, watchdog(n), 100))
            results["signal_and_wait"] = []
            for n in sync_sizes:
                for impl in ("floor-sync", "sync"):
                    step(f"{impl} N={n}")
                    results["signal_and_wait"].append(participants_round(client, hosts, impl, n, watchdog(n), 500))
            step("memory")
            results["memory"] = memory(hosts, 10 if quick else 100)
        finally:
            try:
                delete_tree(client, root)
            finally:
                client.stop()
                client.close()
    results["targets"] = evaluate(results)
    results["meta"]["wall_s"] = time.monotonic() - started
    return results


def step(what: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {what}", file=sys.stderr, flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="tiny sizes and short durations")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument(
        "--sizes", type=sizes_arg, help="DoubleBarrier participants (default 10,100,1000; --frontends: 1000)"
    )
    parser.add_argument(
        "--sync-sizes",
        type=sizes_arg,
        help="signal_and_wait participants (default 10,100,1000,10000; --frontends: 1000)",
    )
    parser.add_argument(
        "--no-curator",
        action="store_true",
        help="leave Apache Curator (tests/peers/curator, built by .ci/build-peers) out of the run",
    )
    parser.add_argument(
        "--frontends",
        action="store_true",
        help="compare the blocking and asyncio front-ends instead (frontends.json, frontends.md)",
    )
    parser.add_argument(
        "--repeats", type=int, metavar="R", help="--frontends: participants rounds per front-end (default 3; quick: 1)"
    )
    parser.add_argument(
        "--render",
        type=Path,
        metavar="RESULTS_JSON",
        help="measure nothing: recompute the targets of an earlier results.json and rewrite "
        "results.md and scaling.png beside it",
    )
    args = parser.parse_args()
    if args.repeats is not None and args.repeats < 1:
        parser.error("--repeats must be at least 1")
    if args.frontends:
        results = run_frontends(args)
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "frontends.json").write_text(json.dumps(results, indent=2))
        (args.out / "frontends.md").write_text(frontends_markdown(results))
        print(frontends_markdown(results))
        print(f"written to {args.out}", file=sys.stderr)
        return 0
    if args.render is not None:
        results = json.loads(args.render.read_text())
        results["targets"] = evaluate(results)
        args.out = args.render.parent
    else:
        results = run(args)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(json.dumps(results, indent=2))
    (args.out / "results.md").write_text(markdown(results))
    plot(results, args.out / "scaling.png")
    print(markdown(results))
    print(f"written to {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
