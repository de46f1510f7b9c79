"""Histories of coordination operations, and the checker that judges them.

A history is a list of events (dicts, one JSON object per line on disk), each with ``t``
(seconds since the run started, one clock for every process of the run), ``proc`` (who),
``recipe`` and ``type``; operations have a ``phase``: ``invoke`` then ``ok`` or ``fail``.

=================  =====================================================================
recipe / type      fields
=================  =====================================================================
lock acquire       ``path``, ``mode`` (read/write), ``timeout``, ``workload`` (``lock``: the
                   exclusive lock, ``rw``: the readers-writer lock); on ok: ``token``
lock lost          ``path``, ``token``: the holder was told it lost the lock
lock write         ``path``, ``token``, ``accepted``: a write to the fenced resource
lock release       ``path``, ``token`` (invoke marks the end of the holder's interval)
barrier set/unset  ``path``
barrier wait       ``path``, ``timeout``
double enter/exit  ``path`` (one path per round), ``round``, ``timeout``
double open        ``round``: this member opened the round (advanced the shared round counter)
session lost       the client's session expired (kazoo's LOST)
session            ``members``: a new client could not connect through these members (the
  connect_failed   harness tries the next ones)
worker restart     ``error``: a worker failed outside any recorded operation and was restarted
hang               ``op``: a call still blocked ``slack`` seconds after its timeout
fault start/end    ``kind``, ``target``
orphans            ``paths``: ephemeral nodes left once every client was idle
run stage          ``stage``: the run entered a stage (``faults``, ``healing``, ``quiet``,
                   ``stopping``); ``quiet`` also gives ``within`` (seconds) and ``expect``
                   (the progress labels that must make progress, see below)
=================  =====================================================================

A stage lasts from its event to the next stage's event (the last one to the end of the
history).  ``faults`` is the fault schedule; ``healing`` is the time taken to undo every fault
(proxies restored, every member serving again); ``quiet`` runs with no fault at all.

**Safety** violations are the unsafe behaviours above.  **Liveness** is judged on the quiet
stage: each progress label in ``expect`` must have a successful operation within ``within``
seconds of the quiet stage's start, else ``no_progress_after_heal:<label>``.  Progress
labels (:data:`PROGRESS`): ``lock`` (exclusive lock acquired), ``rw.read`` / ``rw.write`` (read
/ write lock of the readers-writer workload acquired), ``barrier`` (a barrier wait released),
``double`` (a DoubleBarrier exit completed: the member went through a whole round).  The same
labels count the successful operations per minute of each stage (:attr:`Report.per_minute`).

:func:`check` returns a :class:`Report`; any violation makes ``report.ok`` False.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

Event = dict[str, Any]

SAFETY_KINDS = (
    "writers_overlap",
    "reader_writer_overlap",
    "stale_write_accepted",
    "token_order",
    "barrier_released_early",
    "double_barrier_entered_early",
    "double_barrier_left_early",
    "blocked_past_timeout",
    "orphans",
)
PROGRESS = ("lock", "rw.read", "rw.write", "barrier", "double")
PROGRESS_WHAT = {
    "lock": "lock acquire",
    "rw.read": "rw read acquire",
    "rw.write": "rw write acquire",
    "barrier": "barrier wait",
    "double": "double exit",
}
LIVENESS_PREFIX = "no_progress_after_heal:"
LIVENESS_KINDS = tuple(LIVENESS_PREFIX + label for label in PROGRESS)
VIOLATION_KINDS = SAFETY_KINDS + LIVENESS_KINDS
STAGES = ("faults", "healing", "quiet", "stopping")


@dataclass
class Report:
    operations: Counter[str] = field(default_factory=Counter)
    faults: Counter[str] = field(default_factory=Counter)
    violations: dict[str, list[str]] = field(default_factory=lambda: {k: [] for k in VIOLATION_KINDS})
    stages: dict[str, tuple[float, float]] = field(default_factory=dict)  # stage -> (start, end)
    progress: dict[str, Counter[str]] = field(default_factory=dict)  # stage -> progress label -> count
    recovery: dict[str, float | None] = field(default_factory=dict)  # label -> first progress after heal (s)

    @property
    def ok(self) -> bool:
        return not any(self.violations.values())

    def counts(self) -> dict[str, int]:
        return {kind: len(found) for kind, found in self.violations.items()}

    @property
    def safety_violations(self) -> int:
        return sum(len(found) for kind, found in self.violations.items() if not kind.startswith(LIVENESS_PREFIX))

    @property
    def liveness_violations(self) -> int:
        return sum(len(found) for kind, found in self.violations.items() if kind.startswith(LIVENESS_PREFIX))

    def seconds(self, stage: str) -> float:
        start, end = self.stages.get(stage, (0.0, 0.0))
        return max(0.0, end - start)

    def per_minute(self, stage: str) -> dict[str, float]:
        """Successful operations per minute of ``stage``, per progress label (0 for a stage
        that did not happen)."""
        seconds = self.seconds(stage)
        counted = self.progress.get(stage, Counter())
        return {label: (60.0 * counted[label] / seconds if seconds > 0 else 0.0) for label in PROGRESS}

    def summary(self, title: str = "") -> str:
        lines = [f"== {title} ==" if title else "== history =="]
        lines.append(
            f"operations: {sum(self.operations.values())}  "
            + "  ".join(f"{k}={v}" for k, v in sorted(self.operations.items()))
        )
        lines.append(
            f"faults: {sum(self.faults.values())}  " + "  ".join(f"{k}={v}" for k, v in sorted(self.faults.items()))
        )
        for stage in ("faults", "quiet"):
            if stage in self.stages:
                rates = self.per_minute(stage)
                lines.append(
                    f"per minute of {stage} ({self.seconds(stage):.0f}s): "
                    + "  ".join(f"{label}={rates[label]:.1f}" for label in PROGRESS)
                )
        if self.recovery:
            lines.append(
                "first progress after heal (s): "
                + "  ".join(f"{k}={'-' if v is None else f'{v:.2f}'}" for k, v in self.recovery.items())
            )
        lines.append(
            f"violations: safety={self.safety_violations} liveness={self.liveness_violations}  "
            + "  ".join(f"{k}={v}" for k, v in self.counts().items())
        )
        for kind, found in self.violations.items():
            for text in found[:3]:
                lines.append(f"  {kind}: {text}")
        lines.append("OK" if self.ok else "VIOLATIONS FOUND")
        return "\n".join(lines)


def load(path: str | Path) -> list[Event]:
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def dump(events: Iterable[Event], path: str | Path) -> None:
    with open(path, "w") as f:
        for event in events:
            f.write(json.dumps(event, sort_keys=True) + "\n")


@dataclass
class _Hold:
    proc: str
    path: str
    mode: str
    token: int
    start: float
    end: float


def check(events: list[Event], slack: float = 3.0) -> Report:
    events = sorted(events, key=lambda e: e["t"])
    report = Report()
    end_of_run = events[-1]["t"] if events else 0.0
    for e in events:
        if e.get("phase") in ("ok", "fail"):
            report.operations[f"{e['recipe']}.{e['type']}.{e['phase']}"] += 1
        if e["type"] == "fault" and e.get("phase") == "start":
            report.faults[e["kind"]] += 1
    _check_blocking(events, slack, report)
    holds = _holds(events, end_of_run)
    _check_locks(events, holds, report)
    _check_barrier(events, report)
    _check_double_barrier(events, report)
    for e in events:
        if e["type"] == "orphans":
            report.violations["orphans"].extend(e.get("paths", []))
    _stages(events, end_of_run, report)
    _count_progress(events, report)
    _check_liveness(events, report)
    return report


def progress_label(e: Event) -> str | None:
    """The progress label of a successful operation (see the module docstring), else None."""
    if e.get("phase") != "ok":
        return None
    if e["recipe"] == "lock" and e["type"] == "acquire":
        workload = e.get("workload", "lock")
        return "lock" if workload == "lock" else f"{workload}.{e.get('mode')}"
    if e["recipe"] == "barrier" and e["type"] == "wait":
        return "barrier"
    if e["recipe"] == "double" and e["type"] == "exit":
        return "double"
    return None


def _stage_events(events: list[Event]) -> list[Event]:
    return [e for e in events if e["recipe"] == "run" and e["type"] == "stage"]


def _stages(events: list[Event], end_of_run: float, report: Report) -> None:
    marks = _stage_events(events)
    for i, e in enumerate(marks):
        end = marks[i + 1]["t"] if i + 1 < len(marks) else end_of_run
        report.stages.setdefault(e["stage"], (e["t"], end))


def _count_progress(events: list[Event], report: Report) -> None:
    for stage, (start, end) in report.stages.items():
        counted: Counter[str] = Counter()
        for e in events:
            if start <= e["t"] < end:
                label = progress_label(e)
                if label is not None:
                    counted[label] += 1
        report.progress[stage] = counted


def _check_liveness(events: list[Event], report: Report) -> None:
    """Every expected label makes progress within ``within`` seconds of the quiet stage's start."""
    quiet = next((e for e in _stage_events(events) if e["stage"] == "quiet"), None)
    if quiet is None:
        return
    start, within = quiet["t"], float(quiet.get("within", 8.0))
    expect = list(quiet.get("expect", PROGRESS))
    first: dict[str, float] = {}
    for e in events:
        if e["t"] >= start:
            label = progress_label(e)
            if label is not None and label not in first:
                first[label] = e["t"]
    for label in expect:
        t = first.get(label)
        report.recovery[label] = None if t is None else round(t - start, 4)
        if t is None or t - start > within:
            late = "none at all" if t is None else f"the first {t - start:.2f}s after it"
            report.violations.setdefault(LIVENESS_PREFIX + label, []).append(
                f"no {PROGRESS_WHAT.get(label, label)} succeeded within {within:g}s of the quiet phase's "
                f"start at {start:.2f} ({late})"
            )


def _check_blocking(events: list[Event], slack: float, report: Report) -> None:
    pending: dict[tuple[str, str, str], Event] = {}
    for e in events:
        key = (e["proc"], e["recipe"], e["type"])
        if e.get("phase") == "invoke":
            pending[key] = e
        elif e.get("phase") in ("ok", "fail") and key in pending:
            start = pending.pop(key)
            timeout = start.get("timeout")
            if timeout is not None and e["t"] - start["t"] > timeout + slack:
                report.violations["blocked_past_timeout"].append(
                    f"{e['proc']} {e['recipe']}.{e['type']} took {e['t'] - start['t']:.1f}s (timeout {timeout}s)"
                )
        elif e["type"] == "hang":
            report.violations["blocked_past_timeout"].append(f"{e['proc']} {e.get('op')} never returned")


def _holds(events: list[Event], end_of_run: float) -> list[_Hold]:
    """Each granted lock, from its grant to its release, or to the moment the holder was
    told it lost the lock, whichever came first."""
    open_holds: dict[tuple[str, str], _Hold] = {}
    holds: list[_Hold] = []
    for e in events:
        if e["recipe"] != "lock":
            continue
        key = (e["proc"], e.get("path", ""))
        if e["type"] == "acquire" and e.get("phase") == "ok":
            hold = _Hold(e["proc"], e["path"], e["mode"], int(e["token"]), e["t"], end_of_run)
            open_holds[key] = hold
            holds.append(hold)
        elif (e["type"] == "lost" or (e["type"] == "release" and e.get("phase") == "invoke")) and key in open_holds:
            hold = open_holds.pop(key)
            hold.end = min(hold.end, e["t"])
    return holds


def _check_locks(events: list[Event], holds: list[_Hold], report: Report) -> None:
    by_path: dict[str, list[_Hold]] = defaultdict(list)
    for hold in holds:
        by_path[hold.path].append(hold)
    for path, items in by_path.items():
        items.sort(key=lambda h: h.start)
        for i, a in enumerate(items):
            for b in items[i + 1 :]:
                if b.start >= a.end:
                    continue  # b starts after a ended (sorted by start: later ones may still overlap a)
                if a.proc == b.proc or (a.mode == "read" and b.mode == "read"):
                    continue
                kind = "writers_overlap" if a.mode == b.mode == "write" else "reader_writer_overlap"
                report.violations[kind].append(
                    f"{path}: {a.proc}({a.mode} {a.token}) [{a.start:.2f},{a.end:.2f}] and "
                    f"{b.proc}({b.mode} {b.token}) from {b.start:.2f}"
                )
        writes = [h for h in items if h.mode == "write"]
        highest = -1
        for hold in writes:
            if hold.token <= highest:
                report.violations["token_order"].append(
                    f"{path}: {hold.proc} granted token {hold.token} at {hold.start:.2f} after {highest}"
                )
            highest = max(highest, hold.token)
    grants = [(h.start, h.token, h.path, h.proc) for h in holds if h.mode == "write"]
    for e in events:
        if e["recipe"] == "lock" and e["type"] == "write" and e.get("accepted"):
            newer = [
                g for g in grants if g[2] == e["path"] and g[1] > e["token"] and g[0] < e["t"] and g[3] != e["proc"]
            ]
            if newer:
                report.violations["stale_write_accepted"].append(
                    f"{e['path']}: {e['proc']} wrote with token {e['token']} at {e['t']:.2f} after "
                    f"{newer[0][3]} was granted {newer[0][1]} at {newer[0][0]:.2f}"
                )


def _check_barrier(events: list[Event], report: Report) -> None:
    set_spans: dict[str, list[tuple[float, float]]] = defaultdict(list)
    set_at: dict[str, float] = {}
    end = events[-1]["t"] if events else 0.0
    for e in events:
        if e["recipe"] != "barrier":
            continue
        if e["type"] == "set" and e.get("phase") == "ok" and e.get("changed", True):
            set_at[e["path"]] = e["t"]
        elif e["type"] == "unset" and e.get("phase") == "invoke" and e["path"] in set_at:
            set_spans[e["path"]].append((set_at.pop(e["path"]), e["t"]))
    for path, start in set_at.items():
        set_spans[path].append((start, end))
    invoked: dict[str, Event] = {}
    for e in events:
        if e["recipe"] != "barrier" or e["type"] != "wait":
            continue
        if e.get("phase") == "invoke":
            invoked[e["proc"]] = e
        elif e.get("phase") == "ok" and e["proc"] in invoked:
            start = invoked.pop(e["proc"])["t"]
            for lo, hi in set_spans.get(e["path"], []):
                if lo <= start and e["t"] < hi:
                    report.violations["barrier_released_early"].append(
                        f"{e['path']}: {e['proc']} waited from {start:.2f} and returned at {e['t']:.2f} "
                        f"while set [{lo:.2f},{hi:.2f}]"
                    )
                    break


def _check_double_barrier(events: list[Event], report: Report) -> None:
    enter_invoke: dict[str, dict[str, float]] = defaultdict(dict)
    enter_ok: dict[str, dict[str, float]] = defaultdict(dict)
    exit_invoke: dict[str, dict[str, float]] = defaultdict(dict)
    exit_ok: dict[str, dict[str, float]] = defaultdict(dict)
    lost: dict[str, list[float]] = defaultdict(list)
    for e in events:
        if e["recipe"] == "session" and e["type"] == "lost":
            lost[e["proc"]].append(e["t"])
        if e["recipe"] != "double":
            continue
        table = {
            ("enter", "invoke"): enter_invoke,
            ("enter", "ok"): enter_ok,
            ("exit", "invoke"): exit_invoke,
            ("exit", "ok"): exit_ok,
        }.get((e["type"], e.get("phase", "")))
        if table is not None:
            table[e["path"]][e["proc"]] = e["t"]
    for path, oks in enter_ok.items():
        last_arrival = max(enter_invoke[path].values())
        for proc, t in oks.items():
            if t < last_arrival:
                late = max(enter_invoke[path], key=lambda p: enter_invoke[path][p])
                report.violations["double_barrier_entered_early"].append(
                    f"{path}: {proc} entered at {t:.2f} before {late} arrived at {last_arrival:.2f}"
                )
    for path, oks in exit_ok.items():
        for proc, t in oks.items():
            for other, entered in enter_ok[path].items():
                if other == proc:
                    continue
                left = exit_invoke[path].get(other, float("inf"))
                if t < left and not any(entered <= lt for lt in lost[other]):
                    report.violations["double_barrier_left_early"].append(
                        f"{path}: {proc} left at {t:.2f} while {other} was still inside (exit at {left:.2f})"
                    )
