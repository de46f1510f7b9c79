"""A zksync RWMutex and kazoo's own lock recipes on one path, on the real ensemble.

zksync reads kazoo's node names (``<hex>__lock__<seq>``, ``<hex>__rlock__<seq>``) as writers
and readers of the queue, so a zksync client waits for a kazoo holder as for one of its own;
with ``naming="kazoo"`` it makes those names, so kazoo's recipes wait for zksync holders too.
The same pairs as separate processes (a holder killed) are in ``test_interop_peers.py``.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import pytest
from kazoo.client import KazooClient
from kazoo.exceptions import LockTimeout

import zksync
from zksync.testing.timing import scaled, sleep

from .conftest import settle, wait_until

Factory = Callable[..., KazooClient]


def test_a_zksync_writer_waits_for_a_kazoo_lock_holder_and_gets_in_after_it(
    zk_client_factory: Factory, pool: ThreadPoolExecutor
) -> None:
    kazoo_lock = zk_client_factory().Lock("/shared", "kazoo-holder")
    assert kazoo_lock.acquire(timeout=scaled(5))
    mutex = zksync.RWMutex(zk_client_factory(), "/shared")
    with pytest.raises(zksync.Timeout):
        mutex.rlock(timeout=scaled(0.5))  # a reader waits for a writer, whoever made it
    waiting = pool.submit(mutex.lock, scaled(10))
    sleep(0.3)
    assert not waiting.done()
    kazoo_lock.release()
    settle(waiting).check()
    mutex.unlock()


def test_zksync_readers_share_with_a_kazoo_read_lock_and_a_writer_waits_for_both(
    zk_client_factory: Factory, pool: ThreadPoolExecutor
) -> None:
    kazoo_reader = zk_client_factory().ReadLock("/shared", "kazoo-reader")
    assert kazoo_reader.acquire(timeout=scaled(5))
    reader = zksync.RWMutex(zk_client_factory(), "/shared")
    reader.rlock(timeout=scaled(5))  # readers share, across libraries
    writer = zksync.RWMutex(zk_client_factory(), "/shared")
    waiting = pool.submit(writer.lock, scaled(10))
    sleep(0.3)
    reader.runlock()
    sleep(0.3)
    assert not waiting.done()  # the kazoo reader still holds
    kazoo_reader.release()
    settle(waiting).check()
    writer.unlock()


def test_a_zksync_writer_queued_behind_kazoo_waiters_keeps_its_place_in_line(
    zk_client_factory: Factory, zk_client: KazooClient, pool: ThreadPoolExecutor
) -> None:
    holder = zk_client_factory().Lock("/shared", "kazoo-holder")
    assert holder.acquire(timeout=scaled(5))
    queued = zk_client_factory().WriteLock("/shared", "kazoo-queued")
    queued_waiting = pool.submit(queued.acquire, True, scaled(10))
    sleep(0.3)
    late = zksync.RWMutex(zk_client_factory(), "/shared")
    late_waiting = pool.submit(late.lock, scaled(10))
    sleep(0.3)
    holder.release()
    assert settle(queued_waiting)  # the kazoo writer that came first
    sleep(0.3)
    assert not late_waiting.done()  # arrival order holds across the two libraries
    queued.release()
    settle(late_waiting).check()
    late.unlock()
    assert zk_client.get_children("/shared") == []


def test_kazoo_locks_wait_for_a_zksync_writer_that_makes_kazoo_names(
    zk_client_factory: Factory, zk_client: KazooClient, pool: ThreadPoolExecutor
) -> None:
    writer = zksync.RWMutex(zk_client_factory(), "/shared", naming="kazoo")
    writer.lock(timeout=scaled(5))
    kazoo_writer = zk_client_factory().WriteLock("/shared", "kazoo-writer")
    kazoo_reader = zk_client_factory().ReadLock("/shared", "kazoo-reader")
    waiting = [pool.submit(kazoo_writer.acquire, True, scaled(10))]
    wait_until(lambda: len(zk_client.get_children("/shared")) == 2, what="the kazoo writer queued")
    waiting.append(pool.submit(kazoo_reader.acquire, True, scaled(10)))
    wait_until(lambda: len(zk_client.get_children("/shared")) == 3, what="the kazoo reader queued")
    sleep(0.3)
    assert not any(w.done() for w in waiting)
    writer.unlock()
    assert settle(waiting[0])  # the kazoo writer came first: arrival order
    sleep(0.3)
    assert not waiting[1].done()
    kazoo_writer.release()
    assert settle(waiting[1])
    kazoo_reader.release()


def test_a_kazoo_read_lock_shares_with_a_zksync_reader_that_makes_kazoo_names(zk_client_factory: Factory) -> None:
    reader = zksync.RWMutex(zk_client_factory(), "/shared", naming="kazoo")
    reader.rlock(timeout=scaled(5))
    kazoo_reader = zk_client_factory().ReadLock("/shared", "kazoo-reader")
    assert kazoo_reader.acquire(timeout=scaled(5))
    kazoo_writer = zk_client_factory().WriteLock("/shared", "kazoo-writer")  # kazoo's Lock ignores readers
    with pytest.raises(LockTimeout):
        kazoo_writer.acquire(timeout=scaled(0.5))  # kazoo's writer sees our reader
    kazoo_reader.release()
    reader.runlock()
    assert kazoo_writer.acquire(timeout=scaled(5))
    kazoo_writer.release()
