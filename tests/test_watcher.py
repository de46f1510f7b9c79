"""Watcher against the real ensemble: each kind of watch, the read lock, slow subscribers, one
watch for many subscribers, reconnects, session expiry, close, bad arguments."""

from __future__ import annotations

import sys
import weakref
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from kazoo.client import KazooClient

import zksync
from zksync import InvalidArgument, InvalidState, RWMutex, SessionExpired, Timeout, Watcher
from zksync.testing.timing import scaled, sleep
from zksync.testing.toxi import ProxiedEnsemble

from .conftest import RequestCounter, WatchCounter, close_session_of, settle, tree, wait_until
from .frontends import use_frontend
from .test_client_gc import collected, holders

Factory = Callable[..., KazooClient]
WATCHED, LOCK = "/watched", "/watched-lock"


@pytest.fixture(params=["blocking", "asyncio"], autouse=True)
def frontend(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Every scenario of this file runs on both front-ends (see tests/frontends.py)."""
    return use_frontend(request, sys.modules[__name__], monkeypatch)


@pytest.fixture
def watcher_of(zk_client_factory: Factory) -> Iterator[Callable[..., Any]]:
    """``watcher_of(client, kind)``: a Watcher on /watched under /watched-lock whose watch is
    set; closed after the test (before its client)."""
    made: list[Any] = []

    def make(client: KazooClient, kind: str = "data") -> Any:
        watcher = Watcher(client, WATCHED, LOCK, kind)
        made.append(watcher)
        watcher.wait_watching(timeout=scaled(10))
        return watcher

    yield make
    for watcher in made:
        watcher.close()


def lock_queue(client: KazooClient) -> list[str]:
    return [kind for kind, _ in RWMutex(client, LOCK).queue()]


def next_event(subscription: Any) -> Any:
    return subscription.get(timeout=scaled(10))


# ---- what each kind reports ------------------------------------------------------------
CHANGES: dict[str, list[tuple[Callable[[KazooClient], Any], str, Callable[[Any], Any], Any]]] = {
    "data": [
        (lambda c: c.set(WATCHED, b"v1"), "CHANGED", lambda e: e.data, b"v1"),
        (lambda c: c.delete(WATCHED), "DELETED", lambda e: e.stat, None),
        (lambda c: c.create(WATCHED, b"v2"), "CREATED", lambda e: e.data, b"v2"),
    ],
    "exists": [
        (lambda c: c.set(WATCHED, b"v1"), "CHANGED", lambda e: e.stat.version, 1),
        (lambda c: c.delete(WATCHED), "DELETED", lambda e: e.stat, None),
        (lambda c: c.create(WATCHED), "CREATED", lambda e: e.stat.version, 0),
    ],
    "children": [
        (lambda c: c.create(f"{WATCHED}/a"), "CHILD", lambda e: e.children, ("a",)),
        (lambda c: c.create(f"{WATCHED}/b"), "CHILD", lambda e: e.children, ("a", "b")),
        (lambda c: c.delete(f"{WATCHED}/a"), "CHILD", lambda e: e.children, ("b",)),
        (lambda c: c.delete(f"{WATCHED}/b"), "CHILD", lambda e: e.children, ()),
        (lambda c: c.delete(WATCHED), "DELETED", lambda e: e.stat, None),
        (lambda c: c.create(WATCHED), "CREATED", lambda e: e.children, ()),
    ],
}


@pytest.mark.parametrize("kind", sorted(CHANGES))
def test_each_kind_of_watch_reports_the_changes_another_client_makes(
    kind: str, zk_client_factory: Factory, zk_client: KazooClient, watcher_of: Callable[..., Any]
) -> None:
    zk_client.create(WATCHED, b"v0")
    subscription = watcher_of(zk_client_factory(), kind).subscribe()
    for change, expected_type, payload, expected in CHANGES[kind]:
        change(zk_client)
        event = next_event(subscription)
        assert (event.type, event.path, payload(event), event.missed) == (expected_type, WATCHED, expected, 0)
        stat = zk_client.exists(WATCHED)
        assert event.zxid == (None if stat is None else stat.pzxid if kind == "children" else stat.mzxid)
        assert not event.after_reconnect
    with pytest.raises(Timeout):
        subscription.get(timeout=scaled(0.3))  # one event per change, no more


def test_a_data_watch_on_a_missing_node_reports_its_creation(
    zk_client_factory: Factory, zk_client: KazooClient, watcher_of: Callable[..., Any]
) -> None:
    subscription = watcher_of(zk_client_factory(), "data").subscribe()
    zk_client.create(WATCHED, b"born", makepath=True)
    event = next_event(subscription)
    assert (event.type, event.data) == ("CREATED", b"born")
    zk_client.set(WATCHED, b"grown")
    assert next_event(subscription).data == b"grown"  # from then on, a data watch


# ---- the read lock ---------------------------------------------------------------------
def test_a_writer_holding_the_write_lock_delays_setting_the_watch_again_until_it_releases(
    zk_client_factory: Factory, zk_client: KazooClient, watcher_of: Callable[..., Any]
) -> None:
    zk_client.create(WATCHED, b"v0")
    subscription = watcher_of(zk_client_factory(), "data").subscribe()
    writer = RWMutex(zk_client, LOCK)
    writer.lock(timeout=scaled(5))
    zk_client.set(WATCHED, b"half written")  # fires the watch: the watcher queues for the read lock
    wait_until(lambda: lock_queue(zk_client) == ["write", "read"], what="the watcher queued behind the writer")
    zk_client.set(WATCHED, b"complete")  # no watch is set now: nothing is notified
    with pytest.raises(Timeout):
        subscription.get(timeout=scaled(0.5))  # the event waits for the read, the read for the lock
    writer.unlock()
    event = next_event(subscription)
    assert (event.type, event.data) == ("CHANGED", b"complete")  # read once the writer was done
    with pytest.raises(Timeout):
        subscription.get(timeout=scaled(0.3))
    assert lock_queue(zk_client) == []  # the read lock was released after setting the watch


# ---- subscribers -----------------------------------------------------------------------
def test_a_slow_subscriber_is_told_how_many_it_missed_while_a_fast_one_misses_nothing(
    zk_client_factory: Factory, zk_client: KazooClient, watcher_of: Callable[..., Any]
) -> None:
    zk_client.create(WATCHED, b"0")
    watcher = watcher_of(zk_client_factory(), "data")
    slow = watcher.subscribe(buffer=2)  # subscribed first: offered each event before the fast one
    fast = watcher.subscribe()
    for i in range(1, 7):
        zk_client.set(WATCHED, b"%d" % i)
        event = next_event(fast)
        assert (event.data, event.missed) == (b"%d" % i, 0)
    assert slow.missed == 4  # events 3 to 6 found its buffer full
    assert [(e.data, e.missed) for e in (next_event(slow), next_event(slow))] == [(b"1", 0), (b"2", 0)]
    zk_client.set(WATCHED, b"7")
    assert next_event(fast).data == b"7"
    event = next_event(slow)
    assert (event.data, event.missed) == (b"7", 4)  # the gap, told with the event after it
    assert (slow.missed, fast.missed) == (4, 0)


def test_two_subscribers_share_one_watch_and_an_event_costs_four_requests(
    zk_client_factory: Factory, zk_client: KazooClient, watcher_of: Callable[..., Any]
) -> None:
    zk_client.create(WATCHED, b"0")
    watcher_client = zk_client_factory()
    watcher = watcher_of(watcher_client, "data")
    first, second = watcher.subscribe(), watcher.subscribe()
    notifications = WatchCounter(watcher_client)
    requests = RequestCounter(watcher_client)
    for i in range(1, 4):
        zk_client.set(WATCHED, b"%d" % i)
        assert next_event(first).data == next_event(second).data == b"%d" % i
    requests.close()
    assert notifications.count == 3  # one notification per change
    # per event: the read lock (create, list), the read that sets the watch again, the release
    assert requests.calls == ["Create2", "GetChildren", "GetData", "Transaction"] * 3


def test_a_get_that_times_out_loses_nothing_and_iteration_has_its_own_timeout(
    zk_client_factory: Factory, zk_client: KazooClient, watcher_of: Callable[..., Any]
) -> None:
    zk_client.create(WATCHED, b"0")
    subscription = watcher_of(zk_client_factory(), "data").subscribe(timeout=scaled(0.3))
    with pytest.raises(Timeout):
        subscription.get(timeout=scaled(0.3))
    zk_client.set(WATCHED, b"1")
    assert next(subscription).data == b"1"
    with pytest.raises(Timeout):
        next(subscription)  # iteration waits for the subscription's timeout, then raises


# ---- reconnects and the session's end --------------------------------------------------
def test_a_watcher_partitioned_from_its_member_for_less_than_the_session_reports_the_change_made_meanwhile(
    zk_faults: ProxiedEnsemble, zk_client_factory: Factory, zk_client: KazooClient, watcher_of: Callable[..., Any]
) -> None:
    zk_client.create(WATCHED, b"before")
    client = zk_client_factory(hosts=zk_faults.hosts_of(1, 2), timeout=scaled(8), randomize_hosts=False)
    session = client.client_id[0]
    states: list[str] = []
    client.add_listener(states.append)
    subscription = watcher_of(client, "data").subscribe()
    zk_faults.partition(1)
    zk_client.set(WATCHED, b"during")  # its notification is lost with the partitioned connection
    wait_until(lambda: "CONNECTED" in states, 20, "reconnected through member 2")
    event = subscription.get(timeout=scaled(20))
    assert (event.type, event.data, event.after_reconnect) == ("CHANGED", b"during", True)
    zk_faults.heal()
    zk_client.set(WATCHED, b"after")
    event = next_event(subscription)
    assert (event.data, event.after_reconnect) == (b"after", False)
    assert client.client_id[0] == session  # the same session all along


def test_a_watcher_whose_member_refuses_it_for_a_while_reports_after_healing_the_change_made_meanwhile(
    zk_faults: ProxiedEnsemble, zk_client_factory: Factory, zk_client: KazooClient, watcher_of: Callable[..., Any]
) -> None:
    zk_client.create(WATCHED, b"before")
    client = zk_client_factory(hosts=zk_faults.hosts_of(1), timeout=scaled(10))
    session = client.client_id[0]
    states: list[str] = []
    client.add_listener(states.append)
    watcher = watcher_of(client, "data")
    subscription = watcher.subscribe()
    zk_faults.reset(1)  # its connection is closed, and new ones refused
    wait_until(lambda: "SUSPENDED" in states, 20, "the watcher's client disconnected")
    zk_client.set(WATCHED, b"during")
    with pytest.raises(Timeout):
        subscription.get(timeout=scaled(0.5))  # nothing can be known while cut off
    zk_faults.heal()
    event = subscription.get(timeout=scaled(20))
    assert (event.type, event.data, event.after_reconnect) == ("CHANGED", b"during", True)
    assert client.client_id[0] == session and watcher.error is None
    zk_client.set(WATCHED, b"after")
    assert next_event(subscription).data == b"after"


def test_a_watcher_queued_behind_a_writer_when_its_connection_drops_takes_the_read_lock_once_back(
    zk_faults: ProxiedEnsemble, zk_client_factory: Factory, zk_client: KazooClient, watcher_of: Callable[..., Any]
) -> None:
    zk_client.create(WATCHED, b"v0")
    client = zk_client_factory(hosts=zk_faults.hosts_of(1), timeout=scaled(10))
    session = client.client_id[0]
    states: list[str] = []
    client.add_listener(states.append)
    subscription = watcher_of(client, "data").subscribe()
    writer = RWMutex(zk_client, LOCK)
    writer.lock(timeout=scaled(5))
    zk_client.set(WATCHED, b"half written")
    wait_until(lambda: lock_queue(zk_client) == ["write", "read"], what="the watcher queued behind the writer")
    zk_faults.reset(1)
    wait_until(lambda: "SUSPENDED" in states, 20, "the watcher's client disconnected")
    zk_client.set(WATCHED, b"complete")
    writer.unlock()  # while the watcher cannot hear of it
    zk_faults.heal()
    event = subscription.get(timeout=scaled(20))
    assert (event.type, event.data) == ("CHANGED", b"complete")
    wait_until(lambda: lock_queue(zk_client) == [], what="the read lock released")
    assert client.client_id[0] == session


def test_session_expiry_ends_every_subscription_with_session_expired_after_what_it_buffered(
    zk_client_factory: Factory,
    zk_client: KazooClient,
    watcher_of: Callable[..., Any],
    zk_hosts: str,
    zk_chroot: str,
) -> None:
    zk_client.create(WATCHED, b"0")
    client = zk_client_factory()
    watcher = watcher_of(client, "data")
    reader, idle = watcher.subscribe(), watcher.subscribe()
    zk_client.set(WATCHED, b"1")
    assert next_event(reader).data == b"1"  # idle has it buffered
    close_session_of(client, f"{zk_hosts}{zk_chroot}")
    with pytest.raises(SessionExpired):
        next_event(reader)
    assert next_event(idle).data == b"1"
    received = []
    with pytest.raises(SessionExpired):
        for event in idle:
            received.append(event)
    assert received == []
    assert isinstance(reader.error, SessionExpired) and isinstance(idle.error, SessionExpired)
    assert isinstance(watcher.error, SessionExpired) and watcher.closed
    with pytest.raises(SessionExpired):
        next_event(watcher.subscribe())  # a late subscriber learns it at once


def test_closing_the_watcher_ends_iteration_and_stops_setting_the_watch(
    zk_client_factory: Factory, zk_client: KazooClient, watcher_of: Callable[..., Any], pool: ThreadPoolExecutor
) -> None:
    zk_client.create(WATCHED, b"0")
    watcher_client = zk_client_factory()
    watcher = watcher_of(watcher_client, "data")
    iterated, dropped, kept = watcher.subscribe(), watcher.subscribe(), watcher.subscribe()
    zk_client.set(WATCHED, b"1")
    assert next_event(iterated).data == b"1"  # dropped and kept have it buffered
    iterating = pool.submit(list, iterated)
    dropped.close()  # its own close drops what it buffered
    assert list(dropped) == []
    notifications, requests = WatchCounter(watcher_client), RequestCounter(watcher_client)
    watcher.close()
    assert settle(iterating) == []  # the iteration that waited ends cleanly
    assert [e.data for e in kept] == [b"1"]  # the watcher's close: what was buffered, then the end
    with pytest.raises(InvalidState):
        kept.get(timeout=scaled(1))
    assert watcher.closed and watcher.error is None
    zk_client.set(WATCHED, b"2")
    wait_until(lambda: notifications.count == 1, what="the last watch set fired")
    sleep(0.3)  # time for a round that must not come
    assert requests.calls == []
    assert tree(zk_client) == {WATCHED, LOCK}


def test_bad_arguments_raise_invalid_argument_and_change_nothing(
    zk_client_factory: Factory, zk_client: KazooClient
) -> None:
    counter = RequestCounter(zk_client)
    stopped = zk_client_factory()
    stopped.stop()
    bad: list[tuple[Any, ...]] = [
        (zk_client, WATCHED, LOCK, "everything"),
        (zk_client, WATCHED, LOCK, None),
        (zk_client, "watched", LOCK, "data"),
        (zk_client, WATCHED, "/", "data"),
        (zk_client, WATCHED, WATCHED, "children"),
        (zk_client, f"{LOCK}/x", LOCK, "data"),
        (zk_client, WATCHED, LOCK, "data", ["not an ACL"]),
        (zk_client, WATCHED, LOCK, "data", []),
        ("not a client", WATCHED, LOCK, "data"),
        (stopped, WATCHED, LOCK, "data"),
    ]
    for arguments in bad:
        with pytest.raises(InvalidArgument):
            Watcher(*arguments)
    assert counter.calls == [] and tree(zk_client) == set()
    watcher = Watcher(zk_client_factory(), WATCHED, LOCK, "data")
    cases: list[tuple[Any, Any]] = [(0, None), (-1, None), (True, None), ("10", None), (10, -1), (10, "soon")]
    for buffer, timeout in cases:
        with pytest.raises(InvalidArgument):
            watcher.subscribe(buffer, timeout)
    subscription = watcher.subscribe()
    with pytest.raises(InvalidArgument):
        subscription.get(timeout=-1)
    with pytest.raises(InvalidArgument):
        watcher.wait_watching(timeout=float("nan"))
    watcher.close()


def test_a_client_whose_watchers_were_closed_or_left_running_is_freed(
    zk_hosts: str, zk_chroot: str, zk_session_timeout: float
) -> None:
    client = zksync.connect(f"{zk_hosts}{zk_chroot}", session_timeout=zk_session_timeout)
    client.create(WATCHED, b"0")
    closed, running = Watcher(client, WATCHED, LOCK, "data"), Watcher(client, WATCHED, LOCK, "children")
    closed.wait_watching(timeout=scaled(10))
    running.wait_watching(timeout=scaled(10))
    subscription = running.subscribe()
    client.set(WATCHED, b"1")  # fires the data watch; the closed watcher's is left set on the server
    closed.close()
    ref = weakref.ref(client)
    client.stop()
    client.close()
    with pytest.raises(SessionExpired):
        next_event(subscription)  # the running watcher ended with its client
    del client, closed, running, subscription
    assert collected(ref, max(5.0, zk_session_timeout)), holders(ref)
