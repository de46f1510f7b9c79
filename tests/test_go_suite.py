"""The Go original zksync's own test cases (mutex_test.go, barrier_test.go), run against this
library on the real ensemble, on both front-ends, with the Go suite's time bounds: 3 s for
the lock cases ("how long to wait before assuming a reader is blocked") and 50 ms for a
barrier's release, each stretched only by ZKSYNC_TIME_SCALE.  Every bound is given to the
recipe as its timeout, or to the wait for a result: a case fails when the bound is missed.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import wait as wait_all

import pytest
from kazoo.client import KazooClient

from zksync import Barrier, RWMutex, Timeout
from zksync.testing.timing import scaled, sleep
from zksync.testing.toxi import ProxiedEnsemble

from .frontends import use_frontend

Factory = Callable[..., KazooClient]

LOCK_BOUND = 3.0  # seconds: mutex_test.go's timeout
BARRIER_BOUND = 0.05  # seconds: barrier_test.go's timeout
SESSION = 4.0  # seconds: the session timeout of a holder whose exit is tested (Go: zkTimeout)


@pytest.fixture(params=["blocking", "asyncio"], autouse=True)
def frontend(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Every case runs on both front-ends (see tests/frontends.py)."""
    return use_frontend(request, sys.modules[__name__], monkeypatch)


# ---- mutex_test.go ------------------------------------------------------------------------
def test_read_lock_simple_creation(zk_client: KazooClient) -> None:
    RWMutex(zk_client, "/TestReadLockSimpleCreation").rlock(timeout=scaled(LOCK_BOUND))


def test_write_lock_simple_creation(zk_client: KazooClient) -> None:
    RWMutex(zk_client, "/TestWriteLockSimpleCreation").lock(timeout=scaled(LOCK_BOUND))


def test_multiple_read_locks_dont_block(zk_client_factory: Factory, pool: ThreadPoolExecutor) -> None:
    readers = [RWMutex(zk_client_factory(), "/TestMultipleReadLocksDontBlock") for _ in range(5)]
    futures = [pool.submit(r.rlock, scaled(LOCK_BOUND)) for r in readers]
    done, _ = wait_all(futures, timeout=scaled(LOCK_BOUND))
    assert len(done) == 5 and all(f.exception() is None for f in done)


def test_write_lock_blocks_read_locks(zk_client_factory: Factory) -> None:
    path = "/TestWriteLockBlocksReadLocks"
    RWMutex(zk_client_factory(), path).lock(timeout=scaled(LOCK_BOUND))
    with pytest.raises(Timeout):
        RWMutex(zk_client_factory(), path).rlock(timeout=scaled(LOCK_BOUND))


def test_releasing_write_lock_unblocks_readers(zk_client_factory: Factory, pool: ThreadPoolExecutor) -> None:
    path = "/TestReleasingWriteLockUnblocksReaders"
    writer = RWMutex(zk_client_factory(), path)
    writer.lock(timeout=scaled(LOCK_BOUND))
    reading = pool.submit(RWMutex(zk_client_factory(), path).rlock, scaled(10 * LOCK_BOUND))
    writer.unlock()
    reading.result(timeout=scaled(LOCK_BOUND))


def test_releasing_write_lock_unblocks_writers(zk_client_factory: Factory, pool: ThreadPoolExecutor) -> None:
    path = "/TestReleasingWriteLockUnblocksWriters"
    first = RWMutex(zk_client_factory(), path)
    first.lock(timeout=scaled(LOCK_BOUND))
    writing = pool.submit(RWMutex(zk_client_factory(), path).lock, scaled(10 * LOCK_BOUND))
    first.unlock()
    writing.result(timeout=scaled(LOCK_BOUND))


def test_write_locks_go_in_order(zk_client_factory: Factory, pool: ThreadPoolExecutor) -> None:
    path = "/TestWriteLocksGoInOrder"
    first = RWMutex(zk_client_factory(), path)
    first.lock(timeout=scaled(LOCK_BOUND))
    executed: list[int] = []

    def writer(mutex: RWMutex, ident: int) -> None:
        mutex.lock(timeout=scaled(10 * LOCK_BOUND))
        executed.append(ident)
        mutex.unlock()

    writers = [RWMutex(zk_client_factory(), path) for _ in range(5)]
    futures = []
    for ident, mutex in enumerate(writers):
        futures.append(pool.submit(writer, mutex, ident))
        sleep(0.02)  # as the Go case: 20 ms between the requests
    first.unlock()
    done, _ = wait_all(futures, timeout=scaled(LOCK_BOUND))
    assert len(done) == 5 and all(f.exception() is None for f in done)
    assert executed == [0, 1, 2, 3, 4]


def test_rwmutex_clean_exit_releases_lock(zk_client_factory: Factory, pool: ThreadPoolExecutor) -> None:
    path = "/TestRWMutexCleanExitReleasesLock"
    holder_client = zk_client_factory(timeout=scaled(SESSION))
    RWMutex(holder_client, path).lock(timeout=scaled(LOCK_BOUND))
    waiting = pool.submit(RWMutex(zk_client_factory(), path).lock, scaled(10 * LOCK_BOUND + SESSION))
    sleep(LOCK_BOUND)
    assert not waiting.done()  # "wlock 2 acquired lock while it was still active"
    holder_client.stop()  # Go: writeConn1.Close()
    holder_client.close()
    waiting.result(timeout=scaled(SESSION + LOCK_BOUND))


def test_rwmutex_random_disconnect(
    zk_faults: ProxiedEnsemble, zk_client_factory: Factory, pool: ThreadPoolExecutor
) -> None:
    path = "/TestRWMutexRandomDisconnect"
    bad = zk_client_factory(hosts=zk_faults.hosts_of(1), timeout=scaled(SESSION), randomize_hosts=False)
    RWMutex(bad, path).lock(timeout=scaled(LOCK_BOUND))
    good = zk_client_factory(hosts=zk_faults.hosts_of(2), randomize_hosts=False)
    waiting = pool.submit(RWMutex(good, path).lock, scaled(3 * SESSION + LOCK_BOUND))
    zk_faults.partition(1)  # Go: the bad connection's proxy disabled
    waiting.result(timeout=scaled(3 * SESSION))


# ---- barrier_test.go ----------------------------------------------------------------------
def test_barrier_set(zk_client: KazooClient) -> None:
    assert Barrier(zk_client, "/TestBarrierSet").set()


def test_barrier_unset(zk_client: KazooClient) -> None:
    barrier = Barrier(zk_client, "/TestBarrierUnset")
    assert barrier.set()
    assert barrier.unset()


def test_barrier_is_blocking(zk_client: KazooClient) -> None:
    barrier = Barrier(zk_client, "/TestBarrierIsBlocking")
    barrier.set()
    with pytest.raises(Timeout):  # "barrier did not block for at least 50ms"
        barrier.wait(timeout=scaled(BARRIER_BOUND))


def test_barrier_unset_unblocks(zk_client: KazooClient) -> None:
    barrier = Barrier(zk_client, "/TestBarrierUnsetUnblocks")
    barrier.set()
    with pytest.raises(Timeout):
        barrier.wait(timeout=scaled(BARRIER_BOUND))
    barrier.unset()
    barrier.wait(timeout=scaled(BARRIER_BOUND))  # "barrier was unset, but still blocked"


def test_multiple_conns_see_same_barrier(zk_client_factory: Factory, pool: ThreadPoolExecutor) -> None:
    path = "/TestMultipleConnsSeeSameBarrier"
    one, two = Barrier(zk_client_factory(), path), Barrier(zk_client_factory(), path)
    assert one.set()
    waiting = [pool.submit(b.wait, scaled(10)) for b in (one, two)]
    done, _ = wait_all(waiting, timeout=scaled(BARRIER_BOUND))
    assert not done  # "barrier did not block both clients"
    one.unset()
    done, _ = wait_all(waiting, timeout=scaled(BARRIER_BOUND))
    assert len(done) == 2 and all(f.exception() is None for f in done)
