"""A kazoo client used with the recipes is freed once it is stopped, closed and dropped.

A service that replaces its client after a session expiry makes a new client each time: every
old one, with whatever the recipes hung on it, must go.  The clients here are made with
``zksync.connect`` (the factory fixture keeps its clients until the test ends).
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time
import types
import weakref
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from kazoo.client import KazooClient

import zksync
import zksync.aio
from zksync import Barrier, DoubleBarrier, RWMutex, Sync
from zksync._session import session_for
from zksync.testing.toxi import ProxiedEnsemble

from .conftest import wait_until


@pytest.fixture
def make_client(zk_hosts: str, zk_chroot: str, zk_session_timeout: float) -> Callable[[], KazooClient]:
    def make() -> KazooClient:
        return zksync.connect(f"{zk_hosts}{zk_chroot}", session_timeout=zk_session_timeout)

    return make


def collected(ref: weakref.ref[Any], within: float) -> bool:
    """Collect until ``ref`` dies (True) or ``within`` seconds pass (False): a bounded timer
    (the suspension timer, a deferred delete) may hold the client for its own delay."""
    deadline = time.monotonic() + within
    while True:
        gc.collect()
        if ref() is None:
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)


def holders(ref: weakref.ref[Any]) -> str:
    """What still refers to the object (for the failure message)."""
    target = ref()
    if target is None:
        return "nothing"
    found = [type(r).__name__ for r in gc.get_referrers(target) if not isinstance(r, types.FrameType)]
    del target
    return ", ".join(sorted(set(found)))


def stop(client: KazooClient) -> None:
    client.stop()
    client.close()


def used_and_dropped(make_client: Callable[[], KazooClient], use: Callable[[KazooClient], Any]) -> weakref.ref[Any]:
    """A client made, used, stopped and closed here; only a weak reference to it leaves."""
    client = make_client()
    use(client)
    ref = weakref.ref(client)
    stop(client)
    return ref


def use_locks_and_barriers(client: KazooClient) -> None:
    mutex = RWMutex(client, "/gc/lock")
    mutex.lock(timeout=10)
    mutex.unlock()
    mutex.rlock(timeout=10)
    mutex.runlock()
    with mutex.write(timeout=10) as lease:
        assert lease.valid
    with mutex.read(timeout=10):
        pass

    barrier = Barrier(client, "/gc/barrier")
    assert barrier.set()
    assert barrier.is_set()
    assert barrier.unset()
    barrier.wait(timeout=10)

    double = DoubleBarrier(client, "/gc/double", 1)
    double.enter(timeout=10)
    double.exit(timeout=10)


def use_sync(client: KazooClient) -> None:
    use_sync_object(Sync(client, "gc-run", instance_id="only"))


def use_sync_object(sync: Sync) -> None:
    assert sync.signal_and_wait("ready", 1, timeout=10) == 1
    assert sync.publish("news", {"n": 1}, timeout=10) == 1
    subscription = sync.subscribe("news", timeout=5)
    assert next(subscription) == {"n": 1}
    subscription.close()
    sync.barrier("ready", 1, timeout=10)


def test_a_plain_client_is_freed(make_client: Callable[[], KazooClient], zk_session_timeout: float) -> None:
    """The baseline: kazoo itself lets a stopped, closed client go."""
    ref = used_and_dropped(make_client, lambda client: client.exists("/"))
    assert collected(ref, max(5.0, zk_session_timeout)), holders(ref)


def test_a_client_used_with_the_locks_and_barriers_is_freed(
    make_client: Callable[[], KazooClient], zk_session_timeout: float
) -> None:
    ref = used_and_dropped(make_client, use_locks_and_barriers)
    assert collected(ref, max(5.0, zk_session_timeout)), holders(ref)


def test_a_client_used_with_sync_is_freed(make_client: Callable[[], KazooClient], zk_session_timeout: float) -> None:
    ref = used_and_dropped(make_client, use_sync)
    assert collected(ref, max(5.0, zk_session_timeout)), holders(ref)


def use_everything_from_asyncio(client: KazooClient) -> None:
    async def scenario() -> None:
        mutex = zksync.aio.RWMutex(client, "/gc/lock")
        async with mutex.write(timeout=10) as lease:
            assert not await lease.wait_lost(0)
        async with zksync.aio.DoubleBarrier(client, "/gc/double", 1):
            pass
        barrier = zksync.aio.Barrier(client, "/gc/barrier")
        await barrier.wait(timeout=10)
        sync = zksync.aio.Sync(client, "gc-aio", instance_id="only")
        assert await sync.signal_and_wait("ready", 1, timeout=10) == 1
        await sync.publish("news", 1)
        async for payload in sync.subscribe("news", timeout=1):
            assert payload == 1

    asyncio.run(scenario())


def test_a_client_used_from_asyncio_is_freed(make_client: Callable[[], KazooClient], zk_session_timeout: float) -> None:
    ref = used_and_dropped(make_client, use_everything_from_asyncio)
    assert collected(ref, max(5.0, zk_session_timeout)), holders(ref)


def test_clients_replaced_one_after_another_do_not_pile_up(
    make_client: Callable[[], KazooClient], zk_session_timeout: float
) -> None:
    """A service that makes a new client after each loss keeps one client, not all of them."""
    refs = []
    for _ in range(3):
        client = make_client()
        use_locks_and_barriers(client)
        refs.append(weakref.ref(client))
        stop(client)
        del client
    for ref in refs:
        assert collected(ref, max(5.0, zk_session_timeout)), holders(ref)


@pytest.fixture
def kazoo_logs_without_exceptions() -> Iterator[None]:
    """kazoo logs "Connection dropped: %s" with the exception as an argument; pytest keeps the
    test's log records, the exception its traceback, the traceback kazoo's connection handler,
    and that the client.  Log the exception's text instead, for the test that cuts a client off."""

    def to_text(record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(str(a) if isinstance(a, BaseException) else a for a in record.args)
        return True

    logger = logging.getLogger("kazoo.client")
    logger.addFilter(to_text)
    yield
    logger.removeFilter(to_text)


@pytest.mark.usefixtures("kazoo_logs_without_exceptions")
def test_a_client_stopped_while_cut_off_is_freed(
    zk_faults: ProxiedEnsemble, zk_chroot: str, zk_session_timeout: float
) -> None:
    """Stopped while suspended, with a release deferred until the connection is back and the
    suspension timer running: neither keeps the client."""
    client = zksync.connect(
        f"{zk_faults.hosts_of(1)}{zk_chroot}", session_timeout=zk_session_timeout, randomize_hosts=False
    )
    mutex = RWMutex(client, "/gc/cut")
    mutex.lock(timeout=10)
    zk_faults.partition(1)
    deadline = time.monotonic() + 2 * zk_session_timeout
    while client.state != "SUSPENDED":
        assert time.monotonic() < deadline, "the client was not suspended"
        time.sleep(0.02)
    session = session_for(client)
    mutex.unlock()  # deferred: the connection is down
    assert session._deferred_deletes and session._timer is not None
    ref = weakref.ref(client)
    stop(client)
    del client, mutex, session
    assert collected(ref, max(5.0, zk_session_timeout)), holders(ref)


def test_a_delayed_cleanup_runs_while_the_session_lives(make_client: Callable[[], KazooClient]) -> None:
    client = make_client()
    done: list[bool] = []
    session_for(client).call_later(0.05, lambda: done.append(client.exists("/") is not None))
    wait_until(lambda: done, timeout=5, what="the delayed call")
    assert done == [True]
    stop(client)


def test_a_delayed_cleanup_does_not_keep_a_stopped_client(
    make_client: Callable[[], KazooClient], zk_session_timeout: float
) -> None:
    """What a delayed cleanup holds is let go when the session ends, not when its delay ends."""
    client = make_client()
    ran: list[bool] = []
    call_in_an_hour(client, ran)
    ref = weakref.ref(client)
    stop(client)
    del client
    assert collected(ref, max(5.0, zk_session_timeout)), holders(ref)
    assert not ran


def call_in_an_hour(client: KazooClient, ran: list[bool]) -> None:
    """A delayed call whose callback holds the client."""
    session_for(client).call_later(3600, lambda: ran.append(client.exists("/") is not None))


def test_a_sync_that_left_is_freed_while_its_client_lives(make_client: Callable[[], KazooClient]) -> None:
    """A long-lived client serving many runs one after another must not keep every Sync."""
    client = make_client()
    sync = Sync(client, "gc-left", instance_id="only")
    use_sync_object(sync)
    sync.leave()
    ref = weakref.ref(sync)
    del sync
    try:
        assert collected(ref, 5.0), holders(ref)
    finally:
        stop(client)
