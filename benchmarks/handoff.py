"""Where the time of a lock hand-off goes, from the holder's ``unlock()`` to the next holder running.

    python3 -m benchmarks.handoff [--handoffs 300] [--frontend blocking|asyncio|both] [--json out.json]

Uses ``ZOOKEEPER_PEERS`` when set, else starts a local 3-node ensemble.  One holder (this
process) and one waiter (a process of its own, its own session) share a write lock.  Each
round: the holder takes the lock, the waiter queues behind it and waits (its ``exists`` watch
set), the holder releases, the waiter is granted, releases, and the next round starts.  Both
processes stamp the hand-off with ``time.monotonic()`` (one clock for every process of a Linux
host) at each step the release passes on its way to the waiter's caller:

1. ``unlock()`` called in the holder;
2. the release transaction handed to the holder's socket (kazoo's connection thread, ``_submit``);
3. the holder's reply processed (the release's round trip, for reference);
4. the notification read by the waiter's connection thread (``_read_watch_event``);
5. the watch callback running (on the connection thread itself with zksync.connect's handler,
   else kazoo's callback thread; for asyncio also the event loop running the hand-over
   ``call_soon_threadsafe`` posted);
6. the waiting step woken (``Wait`` returns in the machine's driver);
7. ``lock()`` returned in the waiter.

Reported per step: median and 90th percentile of the gap to the step before (ms), and the
waiter's CPU seconds per acquisition.  Kazoo internals are wrapped only to read the clock.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import itertools
import json
import multiprocessing
import statistics
import sys
import time
from typing import Any

from kazoo.client import KazooClient
from kazoo.protocol.serialization import Transaction

import zksync
import zksync.aio
from zksync._core.effects import Wait
from zksync._drive import aio as aio_driver
from zksync._drive import blocking as blocking_driver

from .suite import ensemble_hosts, step

ROOT = "/zksync-bench-handoff"
STEPS = ("sent", "notified", "callback", "loop", "woken", "returned")
LABELS = {
    "sent": "unlock() called -> release on the holder's socket",
    "notified": "on the socket -> notification read by the waiter's connection thread",
    "callback": "connection thread -> watch callback (where the handler runs it)",
    "loop": "callback -> event loop runs the wake-up (asyncio only)",
    "woken": "-> the waiting step woken (Wait returns)",
    "returned": "woken -> lock() returned to the caller",
}


def stamp_reads(client: KazooClient, into: dict[str, float]) -> None:
    connection = client._connection
    original = connection._read_watch_event

    def stamped(buffer: Any, offset: Any) -> Any:
        into["notified"] = time.monotonic()
        return original(buffer, offset)

    connection._read_watch_event = stamped


def stamp_sends(client: KazooClient, into: dict[str, float]) -> None:
    connection = client._connection
    original = connection._submit

    def stamped(request: Any, timeout: Any, xid: Any = None) -> Any:
        if isinstance(request, Transaction):
            into["sent"] = time.monotonic()
        return original(request, timeout, xid)

    connection._submit = stamped


def stamp_driver(frontend: str, into: dict[str, float]) -> None:
    """Stamp the driver's watch callback, the loop's hand-over and the end of each Wait."""
    module: Any = blocking_driver if frontend == "blocking" else aio_driver
    run_class = module._Run
    watch = run_class.watch

    @functools.wraps(watch)  # keeps the driver's marks (where the handler runs the callback)
    def watched(self: Any, event: Any) -> None:
        into["callback"] = time.monotonic()
        watch(self, event)

    run_class.watch = watched
    if frontend == "asyncio":
        on_loop = run_class._watched

        def handed(self: Any, event: Any) -> None:
            into["loop"] = time.monotonic()
            on_loop(self, event)

        run_class._watched = handed
        execute_async = run_class.execute

        async def executed_async(self: Any, effect: Any) -> Any:
            outcome = await execute_async(self, effect)
            if isinstance(effect, Wait):
                into["woken"] = time.monotonic()
            return outcome

        run_class.execute = executed_async
    else:
        execute = run_class.execute

        def executed(self: Any, effect: Any) -> Any:
            outcome = execute(self, effect)
            if isinstance(effect, Wait):
                into["woken"] = time.monotonic()
            return outcome

        run_class.execute = executed


def waiter_main(hosts: str, path: str, frontend: str, commands: Any, answers: Any) -> None:
    stamps: dict[str, float] = {}
    client = zksync.connect(hosts, session_timeout=30)
    stamp_reads(client, stamps)
    stamp_driver(frontend, stamps)
    if frontend == "asyncio":
        loop = asyncio.new_event_loop()
        mutex: Any = zksync.aio.RWMutex(client, path)

        def acquire() -> None:
            loop.run_until_complete(mutex.lock(timeout=30))

        def release() -> None:
            loop.run_until_complete(mutex.unlock())
    else:
        blocking = zksync.RWMutex(client, path)

        def acquire() -> None:
            blocking.lock(timeout=30)

        def release() -> None:
            blocking.unlock()

    answers.put("ready")
    cpu = 0.0
    while commands.get() == "go":
        stamps.clear()
        answers.put("queued")  # the holder watches the queue for our node, then our watch
        before = time.process_time()
        acquire()
        stamps["returned"] = time.monotonic()
        cpu += time.process_time() - before
        release()
        answers.put(dict(stamps))
    answers.put({"cpu_s": cpu})
    client.stop()
    client.close()


def queued(client: KazooClient, path: str) -> bool:
    """The waiter's node is in the queue (its watch follows one round trip later)."""
    return len(client.get_children(path)) >= 2


def run_frontend(hosts: str, frontend: str, handoffs: int) -> dict[str, Any]:
    path = f"{ROOT}/{frontend}-{time.monotonic_ns()}"
    holder_client = zksync.connect(hosts, session_timeout=30)
    sent: dict[str, float] = {}
    stamp_sends(holder_client, sent)
    holder = zksync.RWMutex(holder_client, path)
    context = multiprocessing.get_context("spawn")
    commands, answers = context.Queue(), context.Queue()
    waiter = context.Process(target=waiter_main, args=(hosts, path, frontend, commands, answers), daemon=True)
    waiter.start()
    assert answers.get(timeout=60) == "ready"
    gaps: dict[str, list[float]] = {name: [] for name in STEPS}
    totals: list[float] = []
    release_rtt: list[float] = []
    try:
        for _ in range(handoffs + 20):  # the first 20 warm up
            holder.lock(timeout=30)
            commands.put("go")
            assert answers.get(timeout=30) == "queued"
            deadline = time.monotonic() + 30
            while not queued(holder_client, path):
                if time.monotonic() > deadline:
                    raise RuntimeError("the waiter did not queue")
                time.sleep(0.001)
            time.sleep(0.01)  # its exists watch is set by now (one round trip after its listing)
            called = time.monotonic()
            holder.unlock()
            replied = time.monotonic()
            stamps = answers.get(timeout=30)
            stamps["called"] = called
            stamps["sent"] = sent.get("sent", called)
            release_rtt.append(replied - stamps["sent"])
            order = ["called", *[s for s in STEPS if s in stamps]]
            for before, after in itertools.pairwise(order):
                gaps[after].append(stamps[after] - stamps[before])
            totals.append(stamps["returned"] - called)
        commands.put("stop")
        tail = answers.get(timeout=30)
    finally:
        waiter.join(30)
        holder_client.stop()
        holder_client.close()
    keep = slice(20, None)
    summary: dict[str, Any] = {"frontend": frontend, "handoffs": handoffs, "steps": {}}
    for name in STEPS:
        values = gaps[name][keep] if len(gaps[name]) > 20 else []
        if values:
            summary["steps"][name] = {"median_ms": _ms(statistics.median(values)), "p90_ms": _ms(_p(values, 0.9))}
    summary["total"] = {"median_ms": _ms(statistics.median(totals[keep])), "p90_ms": _ms(_p(totals[keep], 0.9))}
    summary["release_round_trip"] = {"median_ms": _ms(statistics.median(release_rtt[keep]))}
    summary["waiter_cpu_ms_per_acquisition"] = tail["cpu_s"] * 1000 / (handoffs + 20)
    return summary


def _p(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _ms(seconds: float) -> float:
    return round(seconds * 1000, 3)


def markdown(results: list[dict[str, Any]]) -> str:
    lines = [
        "| step | " + " | ".join(f"{r['frontend']} median / p90 (ms)" for r in results) + " |",
        "|---|" + "---|" * len(results),
    ]
    for name in STEPS:
        cells = []
        for r in results:
            s = r["steps"].get(name)
            cells.append(f"{s['median_ms']:.3f} / {s['p90_ms']:.3f}" if s else "-")
        lines.append(f"| {LABELS[name]} | " + " | ".join(cells) + " |")
    lines.append(
        "| **unlock() -> lock() returned** | "
        + " | ".join(f"**{r['total']['median_ms']:.3f} / {r['total']['p90_ms']:.3f}**" for r in results)
        + " |"
    )
    lines.append(
        "| the holder's release round trip (reference) | "
        + " | ".join(f"{r['release_round_trip']['median_ms']:.3f}" for r in results)
        + " |"
    )
    lines.append(
        "| waiter CPU per acquisition (ms) | "
        + " | ".join(f"{r['waiter_cpu_ms_per_acquisition']:.3f}" for r in results)
        + " |"
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--handoffs", type=int, default=300)
    parser.add_argument("--frontend", choices=("blocking", "asyncio", "both"), default="both")
    parser.add_argument("--json", help="write the results to this file")
    args = parser.parse_args(argv)
    frontends = ("blocking", "asyncio") if args.frontend == "both" else (args.frontend,)
    results = []
    with ensemble_hosts() as (hosts, _):
        for frontend in frontends:
            step(f"hand-off, {frontend}")
            results.append(run_frontend(hosts, frontend, args.handoffs))
    print(markdown(results))
    if args.json:
        with open(args.json, "w") as out:
            json.dump(results, out, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
