"""zksync's Collection replica against kazoo's TreeCache, on one ensemble, in one run.

    python3 -m benchmarks.collection [--quick] [--out DIR] [--keys 100000] [--followers 10] [--writes 200]

Uses ``ZOOKEEPER_PEERS`` when set, else starts a local 3-node ensemble.  Measures:

1. **Following writes.**  Two trees with a collection's layout (``rows/<bb>/<escaped key>`` and
   ``members/``, every bucket made, a few hundred keys in them): ``--followers`` processes (one
   session each) follow the first with ``zksync.Collection``, as many follow the second with
   ``kazoo.recipe.cache.TreeCache``.  One writer (this process, a plain kazoo client) writes
   ``--writes`` times to each tree, in alternating blocks of 10, half of them creating a new key
   and half updating the key just created, waiting after each write until every follower of
   that tree has seen it.  Reported per change and follower: the requests its client sent (by
   type, counted on the client's ``_call``: pings are not sent through it) and the watch
   notifications it received (counted on the connection's ``_read_watch_event``, through which
   every notification comes, zksync's persistent ones included); and the convergence latency,
   from just before the write is sent until the follower's change callback sees the new value
   (``Collection.changes()``, a ``TreeCache`` listener), median and 99th percentile over every
   (write, follower) pair.  Timestamps are ``time.monotonic()``, one clock for every process of a
   Linux host.
2. **Loading.**  A collection of ``--keys`` keys (quick: 5,000) filled through the layout with
   pipelined creates, then loaded in a fresh process: ``Collection(client, path).open()`` until it
   returns (loaded), and ``TreeCache.start()`` until its INITIALIZED event, alternating
   (``--repeats`` times each; quick: 1).  Reports the load time, the requests sent while loading
   and the resident memory the load added (``VmRSS`` after minus before, after ``gc.collect()``)
   per key; then one more load of each under ``tracemalloc`` (not timed): the Python heap the
   replica keeps per key, and the peak while loading (resident memory keeps much of that peak:
   the allocator seldom gives it back).

Writes results.json and results.md to ``--out`` (default benchmarks/results/collection/).
"""

from __future__ import annotations

import argparse
import gc
import json
import multiprocessing
import os
import statistics
import sys
import threading
import time
import traceback
import tracemalloc
import uuid
from collections import Counter
from multiprocessing.context import SpawnProcess
from pathlib import Path
from typing import Any

from kazoo.client import KazooClient
from kazoo.exceptions import NodeExistsError
from kazoo.protocol.states import EVENT_TYPE_MAP
from kazoo.recipe.cache import TreeCache, TreeEvent

import zksync
from zksync._core.collection.layout import BUCKETS, MEMBERS, ROWS, key_of, row_path
from zksync._watches import parse_notification
from zksync.testing.cleanup import delete_tree

from .suite import ensemble_hosts, rss_kib, step

DEFAULT_OUT = Path(__file__).resolve().parent / "results" / "collection"
ROOT = "/zksync-bench-collection"
KINDS = ("zksync", "treecache")
LABELS = {"zksync": "zksync Collection", "treecache": "kazoo TreeCache"}
SESSION_TIMEOUT = 30.0
BLOCK = 10  # writes to one tree before the writer turns to the other
PREFILL = 512  # keys in each followed tree before the writes
ACK_WAIT = 20.0  # seconds the writer waits for every follower to see a write
PIPELINE = 2000  # creates in flight while filling

Result = dict[str, Any]


# ---- counting on one client --------------------------------------------------------------


class ClientCounter:
    """What one kazoo client sends and receives: every request by type (counted on the client's
    ``_call``, which every request but the pings and the connect goes through, zksync's
    ``addWatch`` included), and every watch notification by event type (counted on the
    connection's ``_read_watch_event``, which kazoo calls for every notification the server
    sends; zksync's router wraps the same method to route its persistent watches' notifications,
    so they are all counted here, whichever wrapper comes first)."""

    def __init__(self, client: KazooClient) -> None:
        self.lock = threading.Lock()
        self.requests: Counter[str] = Counter()
        self.events: Counter[str] = Counter()
        original_call = client._call
        conn = client._connection
        original_read = conn._read_watch_event

        def counting_call(request: Any, async_object: Any) -> Any:
            with self.lock:
                self.requests[type(request).__name__] += 1
            return original_call(request, async_object)

        def counting_read(buffer: Any, offset: Any) -> Any:
            try:
                kind, _ = parse_notification(buffer, offset)
                name = str(EVENT_TYPE_MAP.get(kind, kind))
            except Exception:
                name = "unreadable"
            with self.lock:
                self.events[name] += 1
            return original_read(buffer, offset)

        client._call = counting_call
        conn._read_watch_event = counting_read

    def totals(self) -> tuple[int, int]:
        """(requests, notifications) so far."""
        with self.lock:
            return sum(self.requests.values()), sum(self.events.values())

    def copy(self) -> tuple[Counter[str], Counter[str]]:
        with self.lock:
            return Counter(self.requests), Counter(self.events)


# ---- the layout --------------------------------------------------------------------------


def key_name(i: int) -> str:
    return f"key-{i:06d}"


def fill_value(i: int) -> bytes:
    """A row's value as ``Collection.put`` writes it: compact JSON."""
    return json.dumps({"id": i, "name": key_name(i), "score": i % 100}, separators=(",", ":")).encode()


def make_layout(client: KazooClient, path: str) -> None:
    """A collection's nodes (as ``Collection.open`` and ``put`` make them): ``rows``,
    ``members`` and every bucket of ``rows``."""
    client.ensure_path(f"{path}/{ROWS}")
    client.ensure_path(f"{path}/{MEMBERS}")
    pending = [client.create_async(f"{path}/{ROWS}/{b:02x}") for b in range(BUCKETS)]
    for result in pending:
        try:
            result.get(timeout=60)
        except NodeExistsError:
            pass


def fill(client: KazooClient, path: str, keys: int, first: int = 0) -> float:
    """Create ``keys`` rows in the layout, ``PIPELINE`` at a time; the seconds it took."""
    make_layout(client, path)
    start = time.monotonic()
    for base in range(first, first + keys, PIPELINE):
        chunk = range(base, min(first + keys, base + PIPELINE))
        pending = [client.create_async(row_path(path, key_name(i)), fill_value(i)) for i in chunk]
        for result in pending:
            result.get(timeout=120)
    return time.monotonic() - start


def rows_in_cache(cache: TreeCache, path: str) -> int:
    total = 0
    for bucket in cache.get_children(f"{path}/{ROWS}", default=frozenset()):
        total += len(cache.get_children(f"{path}/{ROWS}/{bucket}", default=frozenset()))
    return total


# ---- worker processes ----------------------------------------------------------------------


def follower(params: Result, ready: Any, acks: Any, go: Any, stop: Any, results: Any, close: Any) -> None:
    """One follower of one tree: a Collection or a TreeCache on a client of its own.  Acks
    every write it sees with (kind, index, write); reports what it saw and counted."""
    kind, path, index = params["kind"], params["path"], params["index"]
    seen: dict[int, float] = {}
    marks: dict[int, tuple[int, int]] = {}  # write -> (requests, notifications) when it was seen
    counter: ClientCounter | None = None
    routed = [0]

    def saw(write: Any, when: float) -> None:
        if not isinstance(write, int) or write in seen:
            return
        seen[write] = when
        assert counter is not None
        marks[write] = counter.totals()
        acks.put((kind, index, write))

    client = zksync.connect(params["hosts"], timeout=60, session_timeout=SESSION_TIMEOUT)
    collection: zksync.Collection | None = None
    cache: TreeCache | None = None
    try:
        if kind == "zksync":
            collection = zksync.Collection(client, path).open(60)
            watch = collection._follower.watch
            assert watch is not None
            deliver = watch._callback

            def routed_event(event: Any) -> None:  # what zksync's router hands the collection
                routed[0] += 1
                deliver(event)

            watch._callback = routed_event
            changes = collection.changes()

            def consume() -> None:
                for change in changes:
                    when = time.monotonic()
                    if isinstance(change.new, dict):
                        saw(change.new.get("w"), when)

            threading.Thread(target=consume, name="changes", daemon=True).start()
        else:
            cache = TreeCache(client, path)
            initialized = threading.Event()

            def listen(event: TreeEvent) -> None:
                if event.event_type == TreeEvent.INITIALIZED:
                    initialized.set()
                elif event.event_type in (TreeEvent.NODE_ADDED, TreeEvent.NODE_UPDATED):
                    when = time.monotonic()
                    data = event.event_data
                    if key_of(path, data.path) is None:
                        return
                    try:
                        value = json.loads(data.data)
                    except ValueError:
                        return
                    if isinstance(value, dict):
                        saw(value.get("w"), when)

            cache.listen(listen)
            cache.start()
            if not initialized.wait(120):
                raise RuntimeError("the TreeCache did not initialize")
        counter = ClientCounter(client)
        ready.put((kind, index, time.monotonic()))
        go.wait(600)
        before = counter.copy()
        base = counter.totals()
        routed_before = routed[0]
        stop.wait(3600)
        after = counter.copy()
        results.put(
            {
                "kind": kind,
                "index": index,
                "seen": seen,
                "marks": marks,
                "base": base,
                "requests": dict(after[0] - before[0]),
                "notifications": dict(after[1] - before[1]),
                "routed": routed[0] - routed_before,
            }
        )
    except BaseException as exc:
        ready.put((kind, index, None))
        results.put({"kind": kind, "index": index, "error": repr(exc), "trace": traceback.format_exc()[-2000:]})
    close.wait(120)
    try:
        if collection is not None:
            collection.close(10)
        if cache is not None:
            cache.close()
    finally:
        client.stop()
        client.close()


def loader(params: Result, results: Any) -> None:
    """Load the collection at ``path`` in this fresh process: the time, the requests, and the
    resident memory it added."""
    try:
        results.put(load_once(params["kind"], params["path"], params["hosts"], params.get("trace", False)))
    except BaseException as exc:
        results.put({"kind": params.get("kind"), "error": repr(exc), "trace": traceback.format_exc()[-2000:]})


def load_once(kind: str, path: str, hosts: str, trace: bool) -> Result:
    """One load; with ``trace``, under ``tracemalloc`` (what Python objects the load kept and
    its peak) instead of timed."""
    client = zksync.connect(hosts, timeout=60, session_timeout=SESSION_TIMEOUT)
    counter = ClientCounter(client)  # before the Collection: zksync's router wraps the counter
    initialized = threading.Event()

    def listen(event: TreeEvent) -> None:
        if event.event_type == TreeEvent.INITIALIZED:
            initialized.set()

    collection: zksync.Collection | None = None
    cache: TreeCache | None = None
    try:
        gc.collect()
        before = rss_kib()
        if trace:
            tracemalloc.start()
        start = time.monotonic()
        if kind == "zksync":
            collection = zksync.Collection(client, path).open(600)
            elapsed = time.monotonic() - start
            loaded = len(collection)
        else:
            cache = TreeCache(client, path)
            cache.listen(listen)
            cache.start()
            if not initialized.wait(600):
                raise RuntimeError("the TreeCache did not initialize")
            elapsed = time.monotonic() - start
            loaded = rows_in_cache(cache, path)
        requests, notifications = counter.copy()
        gc.collect()
        after = rss_kib()
        traced: Result = {}
        if trace:
            current, peak = tracemalloc.get_traced_memory()
            tracemalloc.stop()
            traced = {"traced_current_bytes": current, "traced_peak_bytes": peak}
        return {
            "kind": kind,
            "traced": trace,
            **traced,
            "load_s": elapsed,
            "loaded": loaded,
            "rss_before_kib": before,
            "rss_after_kib": after,
            "requests": sum(requests.values()),
            "request_kinds": dict(requests),
            "notifications": sum(notifications.values()),
        }
    finally:
        if collection is not None:
            collection.close(30)
        if cache is not None:
            cache.close()
        client.stop()
        client.close()


# ---- following writes ----------------------------------------------------------------------


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (``q`` in 0..100) of a non-empty list."""
    ordered = sorted(values)
    rank = max(1, min(len(ordered), -(-len(ordered) * q // 100)))
    return ordered[int(rank) - 1]


def latency_summary(samples: list[float]) -> Result:
    if not samples:
        return {"pairs": 0, "median_ms": None, "p99_ms": None, "max_ms": None}
    return {
        "pairs": len(samples),
        "median_ms": statistics.median(samples) * 1000,
        "p99_ms": percentile(samples, 99) * 1000,
        "max_ms": max(samples) * 1000,
    }


def follow_round(hosts: str, root: str, followers: int, writes: int) -> Result:
    """Every follower process of both kinds set up at once, then the writes (see the module doc)."""
    paths = {kind: f"{root}/follow-{kind}" for kind in KINDS}
    client = zksync.connect(hosts, timeout=60, session_timeout=SESSION_TIMEOUT)
    try:
        for path in paths.values():
            fill(client, path, PREFILL)
        ctx = multiprocessing.get_context("spawn")
        ready, acks, results = ctx.Queue(), ctx.Queue(), ctx.Queue()
        go, stop, close = ctx.Event(), ctx.Event(), ctx.Event()
        procs: list[SpawnProcess] = [
            ctx.Process(
                target=follower,
                args=(
                    {"kind": kind, "path": paths[kind], "index": k, "hosts": hosts},
                    ready,
                    acks,
                    go,
                    stop,
                    results,
                    close,
                ),
                daemon=True,
            )
            for kind in KINDS
            for k in range(followers)
        ]
        for proc in procs:
            proc.start()
        clock_gaps: list[float] = []
        failed = 0
        for _ in procs:
            _, _, their_clock = ready.get(timeout=300)
            if their_clock is None:
                failed += 1
            else:
                clock_gaps.append(time.monotonic() - their_clock)
        if failed:
            stop.set()
            close.set()
            errors = [results.get(timeout=30) for _ in range(failed)]
            raise RuntimeError(f"{failed} follower(s) failed to set up: {errors[0]}")
        time.sleep(0.5)  # the last set-up traffic (members joining) passes before counting
        go.set()
        time.sleep(0.2)
        log: list[Result] = []
        acked: Counter[int] = Counter()
        i = 0
        for block_start in range(0, writes, BLOCK):
            for kind in KINDS:
                for j in range(block_start, min(writes, block_start + BLOCK)):
                    create = j % 2 == 0
                    key = key_name(PREFILL + (j if create else j - 1))
                    node = row_path(paths[kind], key)
                    value = json.dumps({"w": i, "key": key}, separators=(",", ":")).encode()
                    sent = time.monotonic()
                    if create:
                        client.create(node, value)
                    else:
                        client.set(node, value)
                    done = time.monotonic()
                    deadline = done + ACK_WAIT
                    while acked[i] < followers and time.monotonic() < deadline:
                        try:
                            _, _, write = acks.get(timeout=max(0.01, deadline - time.monotonic()))
                        except Exception:
                            break
                        acked[write] += 1
                    log.append(
                        {"write": i, "kind": kind, "op": "create" if create else "update", "sent": sent, "done": done}
                    )
                    i += 1
                    time.sleep(0.005)  # the tails of this write (replies not waited for) pass
        time.sleep(0.5)
        stop.set()
        reports = [results.get(timeout=120) for _ in procs]
        close.set()
        for proc in procs:
            proc.join(60)
        for proc in procs:
            if proc.is_alive():
                proc.kill()
                proc.join(10)
    finally:
        for path in paths.values():
            delete_tree(client, path)
        client.stop()
        client.close()
    errors = [r for r in reports if "error" in r]
    if errors:
        raise RuntimeError(f"{len(errors)} follower(s) failed: {errors[0]['error']}\n{errors[0]['trace']}")
    out: Result = {"followers": followers, "writes_per_tree": writes, "prefilled_keys": PREFILL}
    for kind in KINDS:
        out[kind] = summarize_follow(kind, [r for r in reports if r["kind"] == kind], log)
    # a follower's time.monotonic() when it said it was ready, against ours when that arrived:
    # never negative on one clock (what arrived was sent before)
    out["ready_clock_gap_ms"] = {"min": min(clock_gaps) * 1000, "max": max(clock_gaps) * 1000}
    return out


def summarize_follow(kind: str, reports: list[Result], log: list[Result]) -> Result:
    mine = [w for w in log if w["kind"] == kind]
    changes = len(mine) * len(reports)
    requests: Counter[str] = Counter()
    notifications: Counter[str] = Counter()
    latencies: dict[str, list[float]] = {"create": [], "update": []}
    by_op: dict[str, list[int]] = {"create": [0, 0, 0], "update": [0, 0, 0]}  # requests, notifications, pairs
    missing = 0
    for report in reports:
        requests.update(report["requests"])
        notifications.update(report["notifications"])
        previous = tuple(report["base"])
        for w in mine:  # the writes of this tree, in the order they were made
            seen = report["seen"].get(w["write"])
            if seen is None:
                missing += 1
                continue
            latencies[w["op"]].append(seen - w["sent"])
            mark = tuple(report["marks"][w["write"]])
            counts = by_op[w["op"]]
            counts[0] += mark[0] - previous[0]
            counts[1] += mark[1] - previous[1]
            counts[2] += 1
            previous = mark
    every = latencies["create"] + latencies["update"]
    result: Result = {
        "changes": changes,
        "missing": missing,
        "requests_per_change": sum(requests.values()) / changes if changes else None,
        "request_kinds_per_change": {k: v / changes for k, v in sorted(requests.items())} if changes else {},
        "notifications_per_change": sum(notifications.values()) / changes if changes else None,
        "notification_kinds_per_change": {k: v / changes for k, v in sorted(notifications.items())} if changes else {},
        "by_op": {
            op: {
                "requests_per_change": c[0] / c[2] if c[2] else None,
                "notifications_per_change": c[1] / c[2] if c[2] else None,
                "latency": latency_summary(latencies[op]),
            }
            for op, c in by_op.items()
        },
        "latency": latency_summary(every),
    }
    if kind == "zksync":
        routed = sum(r["routed"] for r in reports)
        result["routed_to_collection_per_change"] = routed / changes if changes else None
    return result


# ---- loading ---------------------------------------------------------------------------------


def load_round(hosts: str, root: str, keys: int, repeats: int) -> Result:
    path = f"{root}/loaded"
    client = zksync.connect(hosts, timeout=60, session_timeout=SESSION_TIMEOUT)
    runs: dict[str, list[Result]] = {kind: [] for kind in KINDS}
    traced: dict[str, list[Result]] = {kind: [] for kind in KINDS}
    try:
        fill_s = fill(client, path, keys)
        ctx = multiprocessing.get_context("spawn")
        for round_ in range(repeats + 1):  # the last round under tracemalloc, not timed
            for kind in KINDS:
                results = ctx.Queue()
                params = {"kind": kind, "path": path, "hosts": hosts, "trace": round_ == repeats}
                proc = ctx.Process(target=loader, args=(params, results))
                proc.start()
                report = results.get(timeout=900)
                proc.join(120)
                if "error" in report:
                    raise RuntimeError(f"loading with {kind} failed: {report['error']}\n{report['trace']}")
                if report["loaded"] != keys:
                    raise RuntimeError(f"{kind} loaded {report['loaded']} keys of {keys}")
                (traced if params["trace"] else runs)[kind].append(report)
    finally:
        delete_tree(client, path)
        client.stop()
        client.close()
    out: Result = {"keys": keys, "value_bytes": len(fill_value(keys // 2)), "fill_s": fill_s, "repeats": repeats}
    for kind in KINDS:
        mine = runs[kind]
        per_key = [(r["rss_after_kib"] - r["rss_before_kib"]) * 1024 / keys for r in mine]
        out[kind] = {
            "runs": mine,
            "load_s_median": statistics.median(r["load_s"] for r in mine),
            "rss_per_key_bytes_median": statistics.median(per_key),
            "requests_per_key": statistics.median(r["requests"] for r in mine) / keys,
            "traced_run": traced[kind][0],
            "traced_kept_per_key_bytes": traced[kind][0]["traced_current_bytes"] / keys,
            "traced_peak_per_key_bytes": traced[kind][0]["traced_peak_bytes"] / keys,
        }
    return out


# ---- the report ------------------------------------------------------------------------------


def fmt(value: Any, digits: int = 2) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def ratio(a: Any, b: Any) -> str:
    if a is None or b is None or not b:
        return "—"
    return f"{a / b:.2f}x"


def markdown(results: Result) -> str:
    meta, f, load = results["meta"], results["follow"], results["load"]
    z, t = f["zksync"], f["treecache"]
    lz, lt = load["zksync"], load["treecache"]

    def op(name: str, op: str) -> tuple[Any, Any]:
        return z["by_op"][op][name], t["by_op"][op][name]

    rows: list[tuple[str, tuple[Any, Any], int]] = [
        ("requests per change (per follower)", (z["requests_per_change"], t["requests_per_change"]), 2),
        ("— a new key", op("requests_per_change", "create"), 2),
        ("— an updated key", op("requests_per_change", "update"), 2),
        ("notifications per change (per follower)", (z["notifications_per_change"], t["notifications_per_change"]), 2),
        ("— a new key", op("notifications_per_change", "create"), 2),
        ("— an updated key", op("notifications_per_change", "update"), 2),
        ("convergence latency, median (ms)", (z["latency"]["median_ms"], t["latency"]["median_ms"]), 2),
        ("convergence latency, p99 (ms)", (z["latency"]["p99_ms"], t["latency"]["p99_ms"]), 2),
        (f"load {load['keys']:,} keys (s)", (lz["load_s_median"], lt["load_s_median"]), 3),
        ("requests per key while loading", (lz["requests_per_key"], lt["requests_per_key"]), 3),
        ("resident memory per key (bytes)", (lz["rss_per_key_bytes_median"], lt["rss_per_key_bytes_median"]), 0),
        (
            "Python heap kept per key (bytes, tracemalloc)",
            (lz["traced_kept_per_key_bytes"], lt["traced_kept_per_key_bytes"]),
            0,
        ),
        (
            "Python heap peak while loading, per key (bytes)",
            (lz["traced_peak_per_key_bytes"], lt["traced_peak_per_key_bytes"]),
            0,
        ),
    ]
    lines = [
        "# zksync Collection against kazoo TreeCache",
        "",
        f"{meta['started']}, {'quick' if meta['quick'] else 'full'} run on {meta['ensemble']}, "
        f"{meta['cpus']} CPUs, Python {meta['python']}, kazoo {meta['kazoo']}.  "
        f"{f['followers']} follower processes of each kind (one session each), {f['writes_per_tree']} writes "
        f"to each tree (half new keys, half updates) by one writer, {z['changes']} (write, follower) pairs "
        f"each ({z['missing']} / {t['missing']} not seen).  Loading: {load['keys']:,} keys of "
        f"{load['value_bytes']} bytes, median of {load['repeats']} fresh process(es) each "
        "(the heap rows: one more load of each under tracemalloc).",
        "",
        "| metric | zksync Collection | kazoo TreeCache | ratio (zksync / TreeCache) |",
        "|---|---|---|---|",
    ]
    for name, (a, b), digits in rows:
        lines.append(f"| {name} | {fmt(a, digits)} | {fmt(b, digits)} | {ratio(a, b)} |")
    lines += [
        "",
        "Requests by type per change: zksync "
        + ", ".join(f"{k} {v:.2f}" for k, v in z["request_kinds_per_change"].items())
        + "; TreeCache "
        + ", ".join(f"{k} {v:.2f}" for k, v in t["request_kinds_per_change"].items())
        + ".  Notifications by type per change: zksync "
        + ", ".join(f"{k} {v:.2f}" for k, v in z["notification_kinds_per_change"].items())
        + "; TreeCache "
        + ", ".join(f"{k} {v:.2f}" for k, v in t["notification_kinds_per_change"].items())
        + f".  Notifications zksync's router handed the Collection: {fmt(z['routed_to_collection_per_change'])} "
        "per change.",
        "",
        "Requests are counted on each follower's kazoo client (`_call`; pings do not pass there), "
        "notifications on its connection (`_read_watch_event`, which zksync's persistent watches "
        "arrive through too).  Latency: from just before the write is sent until the follower's change "
        "callback (`Collection.changes()`, a TreeCache listener) sees the value; the writer waits for "
        "every follower before the next write.  Resident memory: VmRSS after the load minus before it "
        "(after `gc.collect()`), so it holds what the allocator kept of the load's peak.",
        "",
    ]
    return "\n".join(lines)


# ---- main --------------------------------------------------------------------------------------


def run(args: argparse.Namespace) -> Result:
    import kazoo

    quick = args.quick
    keys = args.keys if args.keys is not None else (5000 if quick else 100_000)
    writes = args.writes if args.writes is not None else (20 if quick else 200)
    repeats = args.repeats if args.repeats is not None else (1 if quick else 3)
    started = time.monotonic()
    results: Result = {
        "meta": {
            "started": time.strftime("%Y-%m-%d %H:%M:%S"),
            "quick": quick,
            "keys": keys,
            "followers": args.followers,
            "writes_per_tree": writes,
            "load_repeats": repeats,
            "python": sys.version.split()[0],
            "kazoo": getattr(kazoo, "__version__", "?"),
            "cpus": os.cpu_count(),
        }
    }
    with ensemble_hosts() as (hosts, source):
        results["meta"]["ensemble"] = source
        root = f"{ROOT}/{os.getpid()}-{uuid.uuid4().hex[:6]}"
        admin = zksync.connect(hosts, timeout=60, session_timeout=SESSION_TIMEOUT)
        admin.ensure_path(root)
        try:
            step(f"following writes: {args.followers} followers of each kind, {writes} writes to each tree")
            results["follow"] = follow_round(hosts, root, args.followers, writes)
            step(f"loading {keys} keys, {repeats} time(s) each")
            results["load"] = load_round(hosts, root, keys, repeats)
        finally:
            try:
                delete_tree(admin, root)
            finally:
                admin.stop()
                admin.close()
    results["meta"]["wall_s"] = time.monotonic() - started
    return results


def positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small sizes (5,000 keys, 20 writes per tree)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--keys", type=positive, help="keys of the loaded collection (default 100000; quick: 5000)")
    parser.add_argument("--followers", type=positive, default=10, help="follower processes of each kind (10)")
    parser.add_argument("--writes", type=positive, help="writes to each followed tree (default 200; quick: 20)")
    parser.add_argument("--repeats", type=positive, help="loads of each kind (default 3; quick: 1)")
    args = parser.parse_args()
    results = run(args)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(json.dumps(results, indent=2))
    (args.out / "results.md").write_text(markdown(results))
    print(markdown(results))
    print(f"written to {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
