"""The Watcher's machine driven by hand, without a server: which request it sends next, and
what it makes of a notification, a dropped watch, an unanswered request, a close or the
session's end.  tests/test_watcher.py shows the same on the real ensemble."""

from __future__ import annotations

from typing import Any

import pytest
from kazoo.exceptions import NoNodeError
from kazoo.protocol.states import EventType, KeeperState, WatchedEvent, ZnodeStat

from zksync import SessionExpired
from zksync._core.effects import (
    WATCH,
    AwaitConnected,
    Create,
    Exists,
    Forget,
    Get,
    GetChildren,
    Listen,
    NoAnswer,
    Release,
    Wait,
    Wake,
)
from zksync._core.watcher import END, Read, SubscriptionCore, WatcherCore, change, relevant

from .machines import Script, Session

WRITER = f"write-{'a' * 32}-0000000001"


def stat(mzxid: int = 10, czxid: int = 5) -> ZnodeStat:
    return ZnodeStat(czxid, mzxid, 0, 0, 1, 0, 0, 0, 2, 0, mzxid)


def notified(kind: str, path: str = "/watched") -> Wake:
    return Wake(WatchedEvent(kind, KeeperState.CONNECTED, path))


def started(kind: str = "data") -> tuple[WatcherCore, Script, Session, SubscriptionCore]:
    """A watcher's machine past its start (waiting for the connection, answered)."""
    session = Session()
    core = WatcherCore(session, "/watched", "/lock", kind, None)
    subscription = core.subscribe(10, None)
    script = Script(core.run())
    script.expect(Listen)
    script.answer()
    script.expect(AwaitConnected)
    script.answer(True)
    return core, script, session, subscription


def read_lock(script: Script, seq: int, ahead: tuple[str, ...] = ()) -> str:
    """Answer the read lock's create and listing; returns our node's path."""
    script.expect(AwaitConnected)
    script.answer(True)
    create = script.expect(Create, ephemeral=True, sequence=True)
    assert create.path.startswith("/lock/_c_") and create.path.endswith("-read-")  # the Go original's reader
    name = f"{create.path.rsplit('/', 1)[1]}{seq:010d}"
    script.answer((f"/lock/{name}", stat()))
    script.expect(GetChildren, path="/lock")
    script.answer([*ahead, name])
    return f"/lock/{name}"


def data_round(script: Script, seq: int, value: bytes, node_stat: ZnodeStat) -> None:
    """One uncontended round of a data watch, up to the wait for the notification."""
    node = read_lock(script, seq)
    script.expect(Forget)
    script.answer()
    script.expect(Get, path="/watched", watch=WATCH)
    assert script.effect.deadline.try_once  # a reply is awaited for one session timeout at most
    script.answer((value, node_stat))
    script.expect(Release, node=node, handoff=True)
    script.answer()
    script.expect(Wait)


def received(subscription: SubscriptionCore) -> list[Any]:
    """What the subscription holds now (its events, then END or its error)."""
    out: list[Any] = []
    while True:
        script = Script(subscription.next(0))
        script.expect(Listen)
        try:
            script.answer()
        except Exception as exc:
            return [*out, exc]
        if not script.done:
            return out  # it would wait
        out.append(script.result)
        if script.result is END:
            return out


def test_a_notification_is_reported_with_what_the_round_after_it_read_under_the_read_lock() -> None:
    core, script, _, subscription = started()
    data_round(script, 1, b"v0", stat(10))
    assert core.watching and received(subscription) == []  # the first read is no event
    script.answer(notified(EventType.CHANGED))
    data_round(script, 2, b"v1", stat(11))
    (event,) = received(subscription)
    assert (event.type, event.data, event.zxid, event.after_reconnect) == ("CHANGED", b"v1", 11, False)


def test_a_dropped_watch_is_set_again_once_connected_and_an_unanswered_lock_request_tried_again() -> None:
    core, script, session, subscription = started()
    data_round(script, 1, b"v0", stat(10))
    session.disconnections += 1  # kazoo dropped the watch with the connection
    script.answer(Wake(WatchedEvent(EventType.NONE, KeeperState.CONNECTING, None)))
    script.expect(AwaitConnected)
    script.answer(True)
    node = f"{script.expect(Create).path.rsplit('/', 1)[1]}0000000002"
    script.answer((f"/lock/{node}", stat()))
    script.expect(GetChildren, path="/lock")
    script.fail(NoAnswer())  # no reply within a session timeout: the acquisition fails
    script.expect(Release, node=f"/lock/{node}")  # and removes its node
    script.answer()
    script.expect(AwaitConnected)  # the watcher waits for the connection, then tries again
    script.answer(True)
    data_round(script, 3, b"changed meanwhile", stat(12))
    (event,) = received(subscription)
    assert (event.type, event.data, event.after_reconnect) == ("CHANGED", b"changed meanwhile", True)
    assert core.error is None


def test_a_dropped_watch_over_a_node_that_did_not_change_reports_nothing() -> None:
    _, script, session, subscription = started()
    data_round(script, 1, b"v0", stat(10))
    session.disconnections += 1
    script.answer(Wake(None))  # the connection changed; its empty notification may come later
    data_round(script, 2, b"v0", stat(10))
    assert received(subscription) == []


def test_a_lock_nodes_late_notification_starts_no_round_and_a_stray_one_on_the_path_a_comparing_one() -> None:
    _, script, _, subscription = started("children")
    node = read_lock(script, 1)
    script.expect(Forget)
    script.answer()
    script.expect(GetChildren, path="/watched", include_stat=True)
    script.answer((["a"], stat()))
    script.expect(Release, node=node)
    script.answer()
    script.answer(notified(EventType.DELETED, f"/lock/{WRITER}"))
    script.expect(Wait)  # still waiting: not about the watched node
    script.answer(notified(EventType.CHANGED))  # a children watch cannot send it (a data watch left over)
    read_lock(script, 2)
    script.expect(Forget)
    script.answer()
    script.expect(GetChildren, path="/watched")
    script.answer((["a", "b"], stat(10, 5)._replace(pzxid=20)))
    script.expect(Release)
    script.answer()
    (event,) = received(subscription)
    assert (event.type, event.children, event.zxid, event.after_reconnect) == ("CHILD", ("a", "b"), 20, False)


def test_a_data_watch_on_a_missing_node_watches_its_creation() -> None:
    _, script, _, subscription = started()
    read_lock(script, 1)
    script.expect(Forget)
    script.answer()
    script.expect(Get, path="/watched", watch=WATCH)
    script.fail(NoNodeError())
    script.expect(Exists, path="/watched", watch=WATCH)
    script.answer(None)
    script.expect(Release)
    script.answer()
    script.answer(notified(EventType.CREATED))
    data_round(script, 2, b"born", stat(30, 30))
    (event,) = received(subscription)
    assert (event.type, event.data) == ("CREATED", b"born")


def test_closing_while_the_read_lock_waits_behind_a_writer_removes_its_node_and_ends_cleanly() -> None:
    core, script, session, subscription = started()
    node = read_lock(script, 2, ahead=(WRITER,))
    script.expect(Forget)
    script.answer()
    script.expect(Exists, path=f"/lock/{WRITER}", watch=WATCH)
    script.answer(stat())
    script.expect(Wait)
    core.close()
    script.answer(Wake(None))  # the close wakes it
    script.expect(Release, node=node)
    script.answer()
    assert script.done and core.error is None and core.ended
    assert received(subscription) == [END]
    assert session.lost == {}  # the read attempt unregistered itself


def test_the_session_ending_while_waiting_ends_every_subscription_after_its_buffer() -> None:
    core, script, session, subscription = started()
    data_round(script, 1, b"v0", stat(10))
    script.answer(notified(EventType.CHANGED))
    data_round(script, 2, b"v1", stat(11))
    session.expirations += 1
    script.answer(Wake(None))
    assert script.done and isinstance(core.error, SessionExpired)
    event, error = received(subscription)
    assert event.data == b"v1" and isinstance(error, SessionExpired) and error.__cause__ is core.error
    assert isinstance(subscription.error, SessionExpired)


@pytest.mark.parametrize("buffer", [1, 3])
def test_a_full_buffer_counts_what_it_misses_and_the_next_event_says_how_many(buffer: int) -> None:
    core, script, _, _ = started()
    slow = core.subscribe(buffer, None)
    data_round(script, 1, b"0", stat(10))
    for i in range(1, buffer + 4):  # three more than it holds
        script.answer(notified(EventType.CHANGED))
        data_round(script, i + 1, b"%d" % i, stat(10 + i))
    assert slow.missed == 3
    events = received(slow)
    assert [(e.data, e.missed) for e in events] == [(b"%d" % i, 0) for i in range(1, buffer + 1)]
    script.answer(notified(EventType.CHANGED))
    data_round(script, 99, b"next", stat(99))
    assert [(e.data, e.missed) for e in received(slow)] == [(b"next", 3)]


MISSING, NODE = Read(None), Read(stat(10, 5))


@pytest.mark.parametrize(
    ("kind", "before", "after", "expected"),
    [
        ("data", NODE, NODE, None),
        ("data", NODE, Read(stat(11, 5)), "CHANGED"),
        ("data", NODE, MISSING, "DELETED"),
        ("data", MISSING, NODE, "CREATED"),
        ("data", MISSING, MISSING, None),
        ("data", NODE, Read(stat(40, 40)), "CREATED"),  # deleted and made again
        ("exists", NODE, Read(stat(11, 5)), "CHANGED"),
        ("children", NODE, Read(stat(10, 5)._replace(mzxid=11)), None),  # its data changed, not its children
        ("children", NODE, Read(stat(10, 5)._replace(pzxid=12)), "CHILD"),
    ],
)
def test_reading_again_finds_the_change_between_two_reads(
    kind: str, before: Read, after: Read, expected: str | None
) -> None:
    assert change(kind, before, after) == expected


@pytest.mark.parametrize(
    ("kind", "known", "event_type", "expected"),
    [
        ("data", MISSING, "CREATED", True),
        ("data", MISSING, "DELETED", False),  # a late copy: nothing was there to delete
        ("data", NODE, "CHANGED", True),
        ("data", NODE, "DELETED", True),
        ("data", NODE, "CREATED", False),
        ("exists", NODE, "CHANGED", True),
        ("children", NODE, "CHILD", True),
        ("children", NODE, "CHANGED", False),  # from a data watch left over
        ("children", MISSING, "CHILD", False),
    ],
)
def test_a_notification_counts_only_if_the_watch_set_can_have_sent_it(
    kind: str, known: Read, event_type: str, expected: bool
) -> None:
    assert relevant(kind, event_type, known) is expected
