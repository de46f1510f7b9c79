"""Uncontended write-lock cycle and release fan-out, measured against a real ensemble.

    python3 -m benchmarks.lock_cycle [--cycles 500] [--waiters 10] [--json out.json]

Uses ``ZOOKEEPER_PEERS`` when set, else starts a local 3-node ensemble.  Reports:

* requests per uncontended write-lock cycle (acquire + release), counted by the client and,
  for a local ensemble, by the servers (``mntr`` zk_packets_received, pings included);
* the cycle's latency next to the floor measured in the same run: one synchronous
  create + getChildren + delete of an ephemeral-sequential node, the minimum any queue lock
  must do;
* watch notifications delivered per release, with ``--waiters`` writers queued, and with as
  many readers queued behind a writer.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from kazoo.client import KazooClient

import zksync
from zksync._core.queue import NAMINGS
from zksync.testing import Ensemble, timing


def count_requests(client: KazooClient) -> list[str]:
    calls: list[str] = []
    original = client._call

    def counting(request: Any, async_object: Any) -> Any:
        calls.append(type(request).__name__)
        return original(request, async_object)

    client._call = counting
    return calls


def count_watch_events(client: KazooClient) -> list[int]:
    box = [0]
    conn = client._connection
    original = conn._read_watch_event

    def counting(buffer: Any, offset: Any) -> Any:
        box[0] += 1
        return original(buffer, offset)

    conn._read_watch_event = counting
    return box


@contextmanager
def hosts_to_use() -> Iterator[tuple[str, Ensemble | None]]:
    peers = os.environ.get("ZOOKEEPER_PEERS", "").strip()
    if peers:
        yield peers, None
        return
    with Ensemble(3) as ensemble:
        yield ensemble.hosts, ensemble


def timed(repeat: int, body: Callable[[], None]) -> list[float]:
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        body()
        samples.append(time.perf_counter() - start)
    return samples


def packets(ensemble: Ensemble | None) -> int | None:
    if ensemble is None:
        return None
    return sum(int(ensemble.mntr(i).get("zk_packets_received", 0)) for i in range(ensemble.size))


def floor_cycle_for(client: KazooClient, root: str) -> Callable[[], None]:
    """The least any queue lock must do per cycle: create an ephemeral-sequential node,
    list the queue, delete the node (synchronous calls, under ``root/floor``)."""
    client.ensure_path(f"{root}/floor")

    def floor_cycle() -> None:
        node = client.create(f"{root}/floor/write-", ephemeral=True, sequence=True)
        client.get_children(f"{root}/floor")
        client.delete(node)

    return floor_cycle


def uncontended(
    client: KazooClient, root: str, cycles: int, ensemble: Ensemble | None, naming: str = "zksync"
) -> dict[str, Any]:
    mutex = zksync.RWMutex(client, f"{root}/lock-{naming}", naming=naming)
    mutex.lock(5)
    mutex.unlock()
    floor_cycle = floor_cycle_for(client, root)

    def lock_cycle() -> None:
        mutex.lock(5)
        mutex.unlock()

    for _ in range(20):  # warm up both paths
        floor_cycle()
        lock_cycle()
    calls = count_requests(client)
    before = packets(ensemble)
    lock_samples = []
    floor_samples = []
    for _ in range(cycles // 50):  # alternate in blocks so both see the same machine load
        lock_samples += timed(50, lock_cycle)
        floor_samples += timed(50, floor_cycle)
    after = packets(ensemble)
    lock_requests = sum(1 for _ in calls) - 3 * len(floor_samples)
    lock_med = statistics.median(lock_samples)
    floor_med = statistics.median(floor_samples)
    return {
        "naming": naming,
        "cycles": len(lock_samples),
        "requests_per_cycle_client": lock_requests / len(lock_samples),
        "request_kinds": sorted(set(calls)),
        "server_packets_per_cycle_incl_floor_and_pings": (
            None if before is None or after is None else (after - before) / len(lock_samples)
        ),
        "lock_cycle_median_ms": lock_med * 1000,
        "floor_cycle_median_ms": floor_med * 1000,
        "lock_over_floor": lock_med / floor_med,
    }


def fan_out(hosts: str, root: str, waiters: int, mode: str) -> dict[str, Any]:
    holder_client = zksync.connect(hosts)
    clients = [zksync.connect(hosts) for _ in range(waiters)]
    counters = [count_watch_events(c) for c in clients]
    holder = zksync.RWMutex(holder_client, f"{root}/{mode}-fan")
    holder.lock(5)
    acquired = threading.Semaphore(0)
    release = threading.Event()
    threads = []

    def wait_one(client: KazooClient) -> None:
        m = zksync.RWMutex(client, f"{root}/{mode}-fan")
        with m.write(60) if mode == "write" else m.read(60):
            acquired.release()
            release.wait(60)

    for client in clients:
        thread = threading.Thread(target=wait_one, args=(client,), daemon=True)
        thread.start()
        threads.append(thread)
        # queued and watching: kazoo registers an exists watch once the server's reply is in
        # (a waiter that had not set its watch at the release would find the node gone instead)
        while not any(client._data_watchers.values()):
            timing.sleep(0.005)
    holder.unlock()
    expected = 1 if mode == "write" else waiters
    for _ in range(expected):
        acquired.acquire(timeout=30)
    timing.sleep(0.5)  # let any stray notification arrive
    first_release = sum(c[0] for c in counters)
    release.set()
    for thread in threads:
        thread.join(60)
    total = sum(c[0] for c in counters)
    for client in [*clients, holder_client]:
        client.stop()
        client.close()
    return {
        "waiters": waiters,
        "mode": mode,
        "notifications_first_release": first_release,
        "notifications_total": total,
        "waiters_that_could_proceed": expected,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cycles", type=int, default=500)
    parser.add_argument("--waiters", type=int, default=10)
    parser.add_argument("--json", help="write the results here as JSON")
    parser.add_argument(
        "--naming",
        action="append",
        choices=list(NAMINGS),
        help="measure the uncontended cycle in this naming family too (repeatable; zksync's own always)",
    )
    args = parser.parse_args()
    namings = [n for n in NAMINGS if n == "zksync" or n in (args.naming or [])]
    with hosts_to_use() as (hosts, ensemble):
        root = f"/zksync-bench/{os.getpid()}"
        client = zksync.connect(hosts)
        try:
            results = {
                "uncontended": uncontended(client, root, max(50, args.cycles), ensemble),
                "fan_out_writers": fan_out(hosts, root, args.waiters, "write"),
                "fan_out_readers": fan_out(hosts, root, args.waiters, "read"),
            }
            results["by_naming"] = {
                n: uncontended(client, root, max(50, args.cycles), ensemble, n) for n in namings if n != "zksync"
            }
            results["by_naming"]["zksync"] = results["uncontended"]
        finally:
            client.delete(root, recursive=True)
            client.stop()
            client.close()
    u = results["uncontended"]
    print("| measure | value |\n|---|---|")
    print(f"| requests per uncontended write-lock cycle (client) | {u['requests_per_cycle_client']:.2f} |")
    print(f"| lock cycle median | {u['lock_cycle_median_ms']:.2f} ms |")
    print(f"| floor (create + getChildren + delete) median | {u['floor_cycle_median_ms']:.2f} ms |")
    print(f"| lock / floor | {u['lock_over_floor']:.2f}x |")
    for naming, n in results["by_naming"].items():
        if naming != "zksync":
            print(
                f"| naming {naming}: requests per cycle, lock / floor | "
                f"{n['requests_per_cycle_client']:.2f}, {n['lock_over_floor']:.2f}x |"
            )
    for key in ("fan_out_writers", "fan_out_readers"):
        f = results[key]
        print(
            f"| notifications on one release, {f['waiters']} waiting {f['mode']}s "
            f"({f['waiters_that_could_proceed']} can proceed) | {f['notifications_first_release']} |"
        )
    if args.json:
        with open(args.json, "w") as out:
            json.dump(results, out, indent=2)


if __name__ == "__main__":
    main()
