"""zksync.locked (the Go library's Locked* helpers) and transactions on a held lease, on the
real ensemble and on both front-ends: writes land only while the lock is held."""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable
from typing import Any

import pytest
from kazoo.client import KazooClient
from kazoo.protocol.states import EventType, WatchedEvent

from zksync import BadVersion, InvalidArgument, LockLost, NodeExists, NoNode, NotEmpty, NotHeld, RWMutex, Timeout
from zksync import locked as locked  # bound to the front-end of each test (see tests/frontends.py)
from zksync.testing.timing import scaled

from .conftest import RequestCounter, close_session_of, tree, wait_until
from .frontends import use_frontend

Factory = Callable[..., KazooClient]


@pytest.fixture(params=["blocking", "asyncio"], autouse=True)
def frontend(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Every scenario of this file runs on both front-ends (see tests/frontends.py)."""
    return use_frontend(request, sys.modules[__name__], monkeypatch)


def test_locked_calls_write_and_read_under_the_lock_and_leave_it_free(zk_client: KazooClient) -> None:
    zk_client.ensure_path("/data")
    assert locked.create(zk_client, "/lock", "/data/a", b"1", timeout=scaled(5)) == "/data/a"
    made = locked.create(zk_client, "/lock", "/data/seq-", b"", sequence=True, timeout=scaled(5))
    assert made.startswith("/data/seq-") and len(made) == len("/data/seq-") + 10
    stat = locked.set(zk_client, "/lock", "/data/a", b"2", timeout=scaled(5))
    assert stat.version == 1
    data, stat = locked.get(zk_client, "/lock", "/data/a", timeout=scaled(5))
    assert (data, stat.version) == (b"2", 1)
    assert sorted(locked.get_children(zk_client, "/lock", "/data", timeout=scaled(5))) == ["a", made[6:]]
    stat = locked.exists(zk_client, "/lock", "/data/a", timeout=scaled(5))
    assert stat is not None and stat.version == 1
    locked.delete(zk_client, "/lock", "/data/a", version=1, timeout=scaled(5))
    assert locked.exists(zk_client, "/lock", "/data/a", timeout=scaled(5)) is None
    assert zk_client.get_children("/lock") == []  # every lock taken was released


def test_a_locked_write_is_one_transaction_beside_the_lock_cycle(zk_client: KazooClient) -> None:
    zk_client.create("/data", b"0")
    locked.set(zk_client, "/lock", "/data", b"1", timeout=scaled(5))  # the first call also creates /lock
    counter = RequestCounter(zk_client)
    locked.set(zk_client, "/lock", "/data", b"2", timeout=scaled(5))
    counter.close()
    # the lock (create, list), the write with the check of our lock node, the release
    assert counter.calls == ["Create2", "GetChildren", "Transaction", "Transaction"]


def test_a_locked_write_waits_for_the_writer_that_holds_the_lock(
    zk_client: KazooClient, zk_client_factory: Factory
) -> None:
    zk_client.create("/data", b"0")
    holder = RWMutex(zk_client_factory(), "/lock")
    holder.lock(timeout=scaled(5))
    with pytest.raises(Timeout):
        locked.set(zk_client, "/lock", "/data", b"1", timeout=scaled(0.5))
    assert zk_client.get("/data")[0] == b"0"
    with pytest.raises(Timeout):  # a reader waits for the writer too
        locked.get(zk_client, "/lock", "/data", timeout=scaled(0.5))
    holder.unlock()
    locked.set(zk_client, "/lock", "/data", b"1", timeout=scaled(5))
    assert zk_client.get("/data")[0] == b"1"
    assert zk_client.get_children("/lock") == []


def test_a_holder_whose_lock_was_broken_writes_nothing_though_it_had_not_heard(
    zk_client: KazooClient, zk_client_factory: Factory
) -> None:
    zk_client.create("/data", b"0")
    mutex = RWMutex(zk_client_factory(), "/lock")
    lease = mutex.lock(timeout=scaled(5))
    assert RWMutex(zk_client, "/lock").break_lock() == 1  # an operator removes the lock node
    assert lease.valid  # nothing has told the holder yet
    with pytest.raises(LockLost, match="nothing was written"), lease.transaction() as t:
        t.set_data("/data", b"stale")
        t.create("/data/child")
    assert zk_client.get("/data")[0] == b"0" and zk_client.get_children("/data") == []
    assert lease.lost  # and now it knows
    with pytest.raises(LockLost):
        lease.transaction().commit()


def test_a_holder_whose_session_expired_cannot_write_through_its_lease(
    zk_client: KazooClient, zk_client_factory: Factory, zk_hosts: str, zk_chroot: str
) -> None:
    zk_client.create("/data", b"0")
    holder_client = zk_client_factory()
    lease = RWMutex(holder_client, "/lock").lock(timeout=scaled(5))
    close_session_of(holder_client, f"{zk_hosts}{zk_chroot}")
    wait_until(lambda: zk_client.get_children("/lock") == [], what="the expired session's lock node gone")
    transaction = lease.transaction()
    transaction.set_data("/data", b"stale")
    with pytest.raises(LockLost):
        transaction.commit(timeout=scaled(10))
    assert zk_client.get("/data")[0] == b"0"


def test_a_lease_transaction_lands_whole_or_not_at_all(zk_client: KazooClient) -> None:
    zk_client.create("/data", b"0")
    zk_client.create("/taken")
    mutex = RWMutex(zk_client, "/lock")
    with mutex.write(timeout=scaled(5)) as lease:
        t = lease.transaction()
        t.set_data("/data", b"1")
        t.create("/taken")
        with pytest.raises(NodeExists):
            t.commit()
        assert zk_client.get("/data")[0] == b"0"  # the first write was rolled back with the second
        assert lease.valid
        with lease.transaction() as t:
            t.set_data("/data", b"1", version=0)
            t.create("/data/new", b"x")
            t.check("/taken", 0)
        assert zk_client.get("/data")[0] == b"1" and zk_client.get("/data/new")[0] == b"x"
    with pytest.raises(NotHeld):
        lease.transaction()  # released


def test_refused_operations_raise_node_errors_and_release_the_lock(zk_client: KazooClient) -> None:
    zk_client.create("/data/child", makepath=True)
    with pytest.raises(NodeExists):
        locked.create(zk_client, "/lock", "/data", timeout=scaled(5))
    with pytest.raises(NoNode):
        locked.create(zk_client, "/lock", "/missing/parent/node", timeout=scaled(5))
    with pytest.raises(NoNode):
        locked.delete(zk_client, "/lock", "/missing", timeout=scaled(5))
    with pytest.raises(NotEmpty):
        locked.delete(zk_client, "/lock", "/data", timeout=scaled(5))
    with pytest.raises(BadVersion):
        locked.set(zk_client, "/lock", "/data", b"x", version=7, timeout=scaled(5))
    with pytest.raises(NoNode) as info:
        locked.get(zk_client, "/lock", "/missing", timeout=scaled(5))
    assert isinstance(info.value, LookupError) and info.value.path == "/missing"
    assert zk_client.get_children("/lock") == []
    assert tree(zk_client) == {"/data", "/data/child", "/lock"}


def test_the_watch_variants_report_the_next_change(zk_client: KazooClient, zk_client_factory: Factory) -> None:
    zk_client.create("/data", b"0")
    seen: list[WatchedEvent] = []
    fired = threading.Event()

    def watch(event: WatchedEvent) -> None:
        seen.append(event)
        fired.set()

    locked.get(zk_client, "/lock", "/data", watch=watch, timeout=scaled(5))
    locked.exists(zk_client, "/lock", "/later", watch=watch, timeout=scaled(5))
    locked.get_children(zk_client, "/lock", "/data", watch=watch, timeout=scaled(5))
    other = zk_client_factory()
    locked.set(other, "/lock", "/data", b"1", timeout=scaled(5))
    other.create("/later")
    other.create("/data/child")
    wait_until(lambda: len(seen) == 3, what="three watch events")
    assert {(e.type, e.path) for e in seen} == {
        (EventType.CHANGED, "/data"),
        (EventType.CREATED, "/later"),
        (EventType.CHILD, "/data"),
    }


def test_a_naming_without_readers_reads_under_the_write_lock(
    zk_client: KazooClient, zk_client_factory: Factory
) -> None:
    zk_client.create("/data", b"0")
    holder = RWMutex(zk_client_factory(), "/lock", naming="mutex")
    holder.lock(timeout=scaled(5))
    with pytest.raises(Timeout):
        locked.get(zk_client, "/lock", "/data", naming="mutex", timeout=scaled(0.5))
    holder.unlock()
    assert locked.get(zk_client, "/lock", "/data", naming="mutex", timeout=scaled(5))[0] == b"0"


BAD_CALLS: list[tuple[str, Callable[[KazooClient], Any]]] = [
    ("value", lambda c: locked.create(c, "/lock", "/data", "text")),  # type: ignore[arg-type]
    ("version", lambda c: locked.set(c, "/lock", "/data", b"x", version=-2)),
    ("version", lambda c: locked.delete(c, "/lock", "/data", version=True)),
    ("watch", lambda c: locked.get(c, "/lock", "/data", watch="no")),  # type: ignore[arg-type]
    ("path", lambda c: locked.set(c, "/lock", "relative", b"x")),
    ("path", lambda c: locked.get(c, "relative/lock", "/data")),
    ("naming", lambda c: locked.get(c, "/lock", "/data", naming="go")),
    ("timeout", lambda c: locked.get(c, "/lock", "/data", timeout=-1)),
]


@pytest.mark.parametrize("what, call", BAD_CALLS, ids=[f"{w}-{i}" for i, (w, _) in enumerate(BAD_CALLS)])
def test_bad_arguments_are_refused_before_anything_is_sent(
    zk_client: KazooClient, what: str, call: Callable[[KazooClient], Any]
) -> None:
    zk_client.create("/data", b"0")
    with pytest.raises(InvalidArgument, match=what):
        call(zk_client)
    assert tree(zk_client) == {"/data"}


def test_an_empty_or_malformed_transaction_is_refused_and_changes_nothing(zk_client: KazooClient) -> None:
    with RWMutex(zk_client, "/lock").write(timeout=scaled(5)) as lease:
        t = lease.transaction()
        with pytest.raises(InvalidArgument, match="empty"):
            t.commit()
        with pytest.raises(InvalidArgument, match="bytes"):
            t.set_data("/lock", "text")  # type: ignore[arg-type]
        before = tree(zk_client)
    assert before == tree(zk_client) | {lease.node}
