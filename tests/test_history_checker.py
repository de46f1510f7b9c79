"""The history checker must catch each kind of unsafe behaviour (and pass a clean history)."""

from __future__ import annotations

from typing import Any

import pytest

from zksync.testing.history import LIVENESS_PREFIX, PROGRESS, check


def ev(t: float, proc: str, recipe: str, type_: str, **fields: Any) -> dict[str, Any]:
    return {"t": t, "proc": proc, "recipe": recipe, "type": type_, **fields}


def grant(t: float, proc: str, token: int, mode: str = "write", path: str = "/lock") -> list[dict[str, Any]]:
    return [
        ev(t - 0.01, proc, "lock", "acquire", phase="invoke", path=path, mode=mode, timeout=4),
        ev(t, proc, "lock", "acquire", phase="ok", path=path, mode=mode, token=token),
    ]


def release(t: float, proc: str, token: int, path: str = "/lock") -> list[dict[str, Any]]:
    return [
        ev(t, proc, "lock", "release", phase="invoke", path=path, token=token),
        ev(t + 0.01, proc, "lock", "release", phase="ok", path=path, token=token),
    ]


def write(t: float, proc: str, token: int, accepted: bool = True) -> dict[str, Any]:
    return ev(t, proc, "lock", "write", path="/lock", token=token, accepted=accepted)


def test_a_clean_history_passes() -> None:
    h = [*grant(1, "a", 10), write(1.1, "a", 10), *release(1.2, "a", 10)]
    h += [*grant(1.3, "b", 12), write(1.4, "b", 12), *release(1.5, "b", 12)]
    h += grant(2, "r1", 13, "read") + grant(2.1, "r2", 14, "read") + release(2.5, "r1", 13) + release(2.6, "r2", 14)
    report = check(h)
    assert report.ok, report.summary()
    assert report.operations["lock.acquire.ok"] == 4


def test_overlapping_writers_are_caught() -> None:
    h = grant(1, "a", 10) + grant(1.5, "b", 12) + release(2, "a", 10) + release(2.5, "b", 12)
    assert len(check(h).violations["writers_overlap"]) == 1


def test_a_holder_told_of_the_loss_before_the_next_grant_does_not_overlap() -> None:
    h = [*grant(1, "a", 10), ev(1.4, "a", "lock", "lost", path="/lock", token=10)]
    h += grant(1.5, "b", 12) + release(2, "a", 10) + release(2.5, "b", 12)
    assert check(h).ok


def test_reader_overlapping_a_writer_is_caught() -> None:
    h = grant(1, "w", 10) + grant(1.2, "r", 11, "read") + release(2, "w", 10) + release(2.1, "r", 11)
    assert len(check(h).violations["reader_writer_overlap"]) == 1


def test_write_accepted_from_a_holder_after_a_newer_grant_is_caught() -> None:
    h = [*grant(1, "a", 10), ev(1.4, "a", "lock", "lost", path="/lock", token=10)]
    h += [*grant(1.5, "b", 12), write(1.6, "a", 10, accepted=True)]
    assert len(check(h).violations["stale_write_accepted"]) == 1
    h[-1]["accepted"] = False  # the fenced resource refused it: fine
    assert not check(h).violations["stale_write_accepted"]


def test_tokens_must_grow_with_grants() -> None:
    h = grant(1, "a", 10) + release(1.2, "a", 10) + grant(1.3, "b", 9) + release(1.4, "b", 9)
    assert len(check(h).violations["token_order"]) == 1


def test_barrier_released_while_set_is_caught() -> None:
    h = [
        ev(1, "c", "barrier", "set", phase="invoke", path="/b", timeout=4),
        ev(1.1, "c", "barrier", "set", phase="ok", path="/b"),
        ev(1.2, "w", "barrier", "wait", phase="invoke", path="/b", timeout=3),
        ev(1.3, "w", "barrier", "wait", phase="ok", path="/b"),
        ev(2, "c", "barrier", "unset", phase="invoke", path="/b", timeout=4),
    ]
    assert len(check(h).violations["barrier_released_early"]) == 1
    h[3]["t"] = 2.05  # released after the unset: fine
    assert check(sorted(h, key=lambda e: e["t"])).ok


def test_double_barrier_entered_before_everybody_arrived_is_caught() -> None:
    h = [
        ev(1, "a", "double", "enter", phase="invoke", path="/r1", timeout=4),
        ev(1.1, "b", "double", "enter", phase="invoke", path="/r1", timeout=4),
        ev(1.2, "a", "double", "enter", phase="ok", path="/r1"),
        ev(1.3, "c", "double", "enter", phase="invoke", path="/r1", timeout=4),
    ]
    assert len(check(h).violations["double_barrier_entered_early"]) == 1


def test_double_barrier_left_while_a_member_was_inside_is_caught_unless_its_session_ended() -> None:
    h = []
    for p in "ab":
        h += [
            ev(1, p, "double", "enter", phase="invoke", path="/r1", timeout=4),
            ev(1.1, p, "double", "enter", phase="ok", path="/r1"),
        ]
    h += [
        ev(2, "a", "double", "exit", phase="invoke", path="/r1", timeout=4),
        ev(2.1, "a", "double", "exit", phase="ok", path="/r1"),
        ev(3, "b", "double", "exit", phase="invoke", path="/r1", timeout=4),
    ]
    assert len(check(h).violations["double_barrier_left_early"]) == 1
    h.append(ev(2.05, "b", "session", "lost"))
    assert check(sorted(h, key=lambda e: e["t"])).ok


def test_calls_blocked_past_their_timeout_and_hangs_are_caught() -> None:
    h = [
        ev(1, "a", "barrier", "wait", phase="invoke", path="/b", timeout=1),
        ev(6, "a", "barrier", "wait", phase="fail", path="/b"),
        ev(7, "b", "double", "hang", op="double.enter"),
    ]
    assert len(check(h, slack=3).violations["blocked_past_timeout"]) == 2


def test_orphans_are_reported() -> None:
    report = check([ev(1, "checker", "end", "orphans", paths=["/lock/write-x-0000000001"])])
    assert report.violations["orphans"] == ["/lock/write-x-0000000001"]
    assert not report.ok


# ---- liveness after heal, and throughput per stage ---------------------------------------
def stage(t: float, name: str, **fields: Any) -> dict[str, Any]:
    return ev(t, "nemesis", "run", "stage", stage=name, **fields)


def success(t: float, label: str, proc: str = "p") -> list[dict[str, Any]]:
    """One successful operation that counts as progress for ``label``."""
    if label == "lock":
        return grant(t, proc, int(t * 1000)) + release(t + 0.01, proc, int(t * 1000))
    if label in ("rw.read", "rw.write"):
        mode = label.split(".")[1]
        return [
            ev(t - 0.01, proc, "lock", "acquire", phase="invoke", path="/rw", mode=mode, workload="rw", timeout=4),
            ev(t, proc, "lock", "acquire", phase="ok", path="/rw", mode=mode, workload="rw", token=int(t * 1000)),
            *release(t + 0.01, proc, int(t * 1000), path="/rw"),
        ]
    if label == "barrier":
        return [
            ev(t - 0.01, proc, "barrier", "wait", phase="invoke", path="/b", timeout=3),
            ev(t, proc, "barrier", "wait", phase="ok", path="/b"),
        ]
    assert label == "double"
    path = f"/double/r{int(t * 1000):05d}"
    out = []
    for p in ("a", "b", "c"):
        out.append(ev(t - 0.03, p, "double", "enter", phase="invoke", path=path, timeout=4))
    for p in ("a", "b", "c"):
        out.append(ev(t - 0.02, p, "double", "enter", phase="ok", path=path))
    for p in ("a", "b", "c"):
        out.append(ev(t - 0.01, p, "double", "exit", phase="invoke", path=path, timeout=4))
    out.append(ev(t, "a", "double", "exit", phase="ok", path=path))
    return out


def run_history(progress_after_heal: dict[str, float], quiet_at: float = 100.0) -> list[dict[str, Any]]:
    """Faults from 0 to 90, healing to ``quiet_at``, quiet for 20 s; one success per label
    during faults, and one per label at the given delay after the quiet stage's start."""
    h = [stage(0, "faults"), stage(90, "healing")]
    h.append(stage(quiet_at, "quiet", within=8.0, expect=list(PROGRESS)))
    h.append(stage(quiet_at + 20, "stopping"))
    for i, label in enumerate(PROGRESS):
        h += success(10 + i, label, proc=f"f{i}")
    for i, (label, delay) in enumerate(progress_after_heal.items()):
        h += success(quiet_at + delay + 0.1 * i, label, proc=f"q{label}")  # one after the other
    h.append(ev(quiet_at + 25, "checker", "end", "orphans", paths=[]))
    return sorted(h, key=lambda e: e["t"])


def test_progress_of_every_recipe_after_heal_passes() -> None:
    report = check(run_history({label: 1.0 for label in PROGRESS}))
    assert report.ok, report.summary()
    assert report.liveness_violations == 0 and report.safety_violations == 0
    assert report.recovery == {label: pytest.approx(1.0 + 0.1 * i) for i, label in enumerate(PROGRESS)}


@pytest.mark.parametrize("stuck", PROGRESS)
def test_a_recipe_without_progress_after_heal_fails_the_run(stuck: str) -> None:
    report = check(run_history({label: 2.0 for label in PROGRESS if label != stuck}))
    assert not report.ok
    assert report.safety_violations == 0 and report.liveness_violations == 1
    assert report.violations[LIVENESS_PREFIX + stuck], report.summary()
    assert report.recovery[stuck] is None
    assert "VIOLATIONS FOUND" in report.summary()


@pytest.mark.parametrize("late", PROGRESS)
def test_progress_later_than_two_session_timeouts_after_heal_is_a_violation(late: str) -> None:
    delays = {label: 1.0 for label in PROGRESS if label != late}
    delays[late] = 8.5  # the last one: 8.5 s after the quiet stage started
    report = check(run_history(delays))
    assert report.counts() == {kind: int(kind == LIVENESS_PREFIX + late) for kind in report.violations}
    assert "8.90s after it" in report.violations[LIVENESS_PREFIX + late][0]


def test_progress_before_the_quiet_stage_does_not_count_for_it() -> None:
    h = run_history({label: 1.0 for label in PROGRESS if label != "double"})
    h += success(99.5, "double", proc="early")  # during healing, before the quiet stage started
    report = check(sorted(h, key=lambda e: e["t"]))
    assert report.liveness_violations == 1 and report.violations[LIVENESS_PREFIX + "double"]


def test_only_the_expected_recipes_are_judged_and_no_quiet_stage_means_no_liveness_verdict() -> None:
    h = [stage(0, "faults"), stage(5, "quiet", within=8.0, expect=["lock"]), *success(6, "lock")]
    report = check(h)
    assert report.ok and set(report.recovery) == {"lock"}
    assert check(success(6, "barrier")).ok  # an old history, without stages


def test_successful_operations_per_minute_of_each_stage() -> None:
    h = [stage(0, "faults"), stage(30, "healing"), stage(40, "quiet", within=8.0, expect=[]), stage(55, "stopping")]
    for i in range(6):  # 6 lock grants in 30 s of faults: 12 a minute
        h += success(1 + 4 * i, "lock", proc=f"l{i}")
    h += success(2, "rw.read") + success(3, "rw.write", proc="w")  # 2 a minute each
    h += success(33, "lock", proc="during-healing")  # counted in neither stage
    for i in range(5):  # 5 in 15 s of quiet: 20 a minute
        h += success(41 + 2 * i, "double") + success(41.5 + 2 * i, "barrier", proc=f"b{i}")
    h += success(56, "lock", proc="while-stopping")
    report = check(sorted(h, key=lambda e: e["t"]))
    assert report.ok, report.summary()
    assert report.seconds("faults") == 30 and report.seconds("quiet") == 15
    faults, quiet = report.per_minute("faults"), report.per_minute("quiet")
    assert faults == {"lock": 12.0, "rw.read": 2.0, "rw.write": 2.0, "barrier": 0.0, "double": 0.0}
    assert quiet == {"lock": 0.0, "rw.read": 0.0, "rw.write": 0.0, "barrier": 20.0, "double": 20.0}
    assert report.per_minute("nonexistent") == dict.fromkeys(PROGRESS, 0.0)
    assert "per minute of faults (30s): lock=12.0" in report.summary()


def test_a_failed_or_unfinished_operation_is_no_progress() -> None:
    h = [stage(0, "quiet", within=8.0, expect=["double", "barrier"])]
    h += [ev(0.5, "a", "double", "enter", phase="invoke", path="/r", timeout=4)]
    h += [ev(1, "a", "double", "enter", phase="ok", path="/r"), ev(2, "a", "double", "exit", phase="fail", path="/r")]
    h += [ev(1, "w", "barrier", "wait", phase="invoke", path="/b", timeout=3)]
    h += [ev(4, "w", "barrier", "wait", phase="fail", path="/b")]
    report = check(h)
    assert report.liveness_violations == 2
