"""The history checker must catch each kind of unsafe behaviour (and pass a clean history)."""

from __future__ import annotations

from typing import Any

from zksync.testing.history import check


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
