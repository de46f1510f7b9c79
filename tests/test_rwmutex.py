"""RWMutex against the real ensemble: ordering, no herd, deadlines, cleanup, fencing."""

from __future__ import annotations

import re
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from kazoo.client import KazooClient

from zksync import AlreadyHeld, LockLost, NotHeld, RWMutex, Timeout
from zksync.testing.timing import scaled, sleep

from .conftest import RequestCounter, WatchCounter, close_session_of, settle, tree, wait_until
from .frontends import use_frontend

Factory = Callable[..., KazooClient]


@pytest.fixture(params=["blocking", "asyncio"], autouse=True)
def frontend(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Every scenario of this file runs on both front-ends (see tests/frontends.py)."""
    return use_frontend(request, sys.modules[__name__], monkeypatch)


Gates = Callable[[], threading.Event]


def queue_names(client: KazooClient, path: str = "/lock") -> list[str]:
    return [name for _, name in RWMutex(client, path).queue()]


def enqueue(
    pool: ThreadPoolExecutor,
    client: KazooClient,
    queue_len_before: int,
    mode: str,
    log: list[str],
    label: str,
    hold: threading.Event | None = None,
    timeout: float = 30,
) -> Any:
    """Start an acquire (``timeout`` in units of test time) in a thread and return once its node
    is in the queue."""
    mutex = RWMutex(client, "/lock")

    def run() -> RWMutex:
        lease = mutex.lock(scaled(timeout)) if mode == "write" else mutex.rlock(scaled(timeout))
        log.append(f"{label} acquired {lease.fencing_token}")
        if hold is not None:
            hold.wait(scaled(30))
            # logged before the release: the next holder is told as soon as the release commits,
            # possibly before unlock() has its own answer
            log.append(f"{label} releasing")
            mutex.unlock() if mode == "write" else mutex.runlock()
        return mutex

    future = pool.submit(run)
    wait_until(lambda: len(queue_names(client)) > queue_len_before, what=f"{label} queued")
    return future


def queue_behind_a_writer(factory: Factory, pool: ThreadPoolExecutor, gates: Gates, mode: str) -> Any:
    """A writer holds /lock and ten clients queue behind it in ``mode``, each with a watch
    counter; they hold until the returned gate opens."""
    holder = RWMutex(factory(), "/lock")
    holder.lock(timeout=scaled(5))
    clients = [factory() for _ in range(10)]
    counters = [WatchCounter(c) for c in clients]
    log: list[str] = []
    gate = gates()
    futures = [enqueue(pool, c, i + 1, mode, log, f"{mode[0]}{i}", gate) for i, c in enumerate(clients)]
    return holder, counters, log, gate, futures


NODE_NAMES = {
    "zksync": r"_c_[0-9a-f]{32}-write-\d{10}",
    "kazoo": r"[0-9a-f]{32}__lock__\d{10}",
    "curator": r"_c_[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}-__WRIT__\d{10}",
    "mutex": r"_c_[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}-lock-\d{10}",
}


@pytest.mark.parametrize("naming", sorted(NODE_NAMES))
def test_uncontended_write_lock_cycle_takes_three_requests_in_every_naming(naming: str, zk_client: KazooClient) -> None:
    mutex = RWMutex(zk_client, "/lock", naming=naming)
    mutex.lock(timeout=scaled(5))  # the first cycle also creates /lock
    (name,) = zk_client.get_children("/lock")
    assert re.fullmatch(NODE_NAMES[naming], name), name  # the name the other library makes
    mutex.unlock()
    counter = RequestCounter(zk_client)
    for _ in range(5):
        mutex.lock(timeout=scaled(5))
        mutex.unlock()
    counter.close()
    # the release is one transaction: setData (the hand-off mark) and delete
    assert counter.calls == ["Create2", "GetChildren", "Transaction"] * 5
    assert tree(zk_client) == {"/lock"}


def test_a_writer_handed_the_lock_by_a_releasing_writer_does_not_list_the_queue_again(
    zk_client_factory: Factory, pool: ThreadPoolExecutor
) -> None:
    holder = RWMutex(zk_client_factory(), "/lock")
    held = holder.lock(timeout=scaled(5))
    waiting_client = zk_client_factory()
    counter = RequestCounter(waiting_client)
    waiter = RWMutex(waiting_client, "/lock")
    acquired = pool.submit(waiter.lock, scaled(10))
    wait_until(lambda: counter.calls == ["Create2", "GetChildren", "Exists"], what="waiter watching the holder")
    holder.unlock()
    lease = settle(acquired)
    assert counter.calls == ["Create2", "GetChildren", "Exists"]  # 3 requests, then the release
    assert lease.fencing_token > held.fencing_token
    waiter.unlock()
    assert counter.calls[-1] == "Transaction"


def test_a_waiter_ahead_that_gives_up_hands_nothing_over(
    zk_client_factory: Factory, zk_client: KazooClient, pool: ThreadPoolExecutor
) -> None:
    holder = RWMutex(zk_client_factory(), "/lock")
    holder.lock(timeout=scaled(5))
    impatient = RWMutex(zk_client_factory(), "/lock")
    gave_up = pool.submit(impatient.lock, scaled(1.0))
    wait_until(lambda: len(queue_names(zk_client)) == 2, what="impatient queued")
    patient = RWMutex(zk_client_factory(), "/lock")
    acquired = pool.submit(patient.lock, scaled(20))
    wait_until(lambda: len(queue_names(zk_client)) == 3, what="patient queued")
    with pytest.raises(Timeout):
        settle(gave_up)
    sleep(0.5)  # the patient waiter saw its predecessor vanish and watches the holder now
    assert not acquired.done() and holder.lease is not None and holder.lease.valid
    assert len(queue_names(zk_client)) == 2
    holder.unlock()
    settle(acquired).check()
    patient.unlock()


def test_a_releasing_reader_does_not_hand_a_writer_the_lock_while_another_reader_holds(
    zk_client_factory: Factory, zk_client: KazooClient, pool: ThreadPoolExecutor
) -> None:
    first, second = RWMutex(zk_client_factory(), "/lock"), RWMutex(zk_client_factory(), "/lock")
    first.rlock(timeout=scaled(5))
    second.rlock(timeout=scaled(5))
    writer = RWMutex(zk_client_factory(), "/lock")
    acquired = pool.submit(writer.lock, scaled(20))
    wait_until(lambda: len(queue_names(zk_client)) == 3, what="writer queued")
    second.runlock()  # the writer's immediate predecessor, released as a holder
    sleep(0.5)
    assert not acquired.done()
    first.runlock()
    settle(acquired).check()
    writer.unlock()


def test_writers_are_served_in_arrival_order(
    zk_client_factory: Factory, pool: ThreadPoolExecutor, gates: Gates
) -> None:
    first = RWMutex(zk_client_factory(), "/lock")
    first.lock(timeout=scaled(5))
    log: list[str] = []
    release = gates()
    futures = [enqueue(pool, zk_client_factory(), i + 1, "write", log, f"w{i}", release) for i in range(5)]
    sleep(0.3)
    assert log == []  # nobody gets in while the first writer holds
    release.set()
    first.unlock()
    for future in futures:
        settle(future)
    acquired = [entry.split()[0] for entry in log if "acquired" in entry]
    assert acquired == ["w0", "w1", "w2", "w3", "w4"]
    tokens = [int(entry.split()[2]) for entry in log if "acquired" in entry]
    assert tokens == sorted(tokens) and len(set(tokens)) == 5


def test_reader_behind_a_waiting_writer_waits_for_it(
    zk_client_factory: Factory, pool: ThreadPoolExecutor, gates: Gates
) -> None:
    reader = RWMutex(zk_client_factory(), "/lock")
    reader.rlock(timeout=scaled(5))
    log: list[str] = []
    writer_go = gates()
    writer = enqueue(pool, zk_client_factory(), 1, "write", log, "writer", writer_go)
    late_reader = enqueue(pool, zk_client_factory(), 2, "read", log, "late-reader", gates())
    sleep(0.5)
    assert log == []  # the late reader does not overtake the waiting writer
    reader.runlock()
    wait_until(lambda: "writer acquired" in " ".join(log), what="writer acquired")
    sleep(0.3)
    assert not any("late-reader" in entry for entry in log)
    writer_go.set()
    settle(writer)
    wait_until(lambda: any("late-reader acquired" in e for e in log), what="late reader acquired")
    assert [e.split()[0] for e in log][:3] == ["writer", "writer", "late-reader"]
    late_reader.cancel()


def test_readers_hold_the_lock_together(zk_client_factory: Factory) -> None:
    mutexes = [RWMutex(zk_client_factory(), "/lock") for _ in range(4)]
    leases = [m.rlock(timeout=scaled(5)) for m in mutexes]
    assert all(lease.valid for lease in leases)
    writer = RWMutex(zk_client_factory(), "/lock")
    with pytest.raises(Timeout):
        writer.lock(timeout=scaled(0.5))
    for m in mutexes:
        m.runlock()
    writer.lock(timeout=scaled(5))
    writer.unlock()


def test_release_of_a_writer_wakes_exactly_one_of_ten_waiting_writers(
    zk_client_factory: Factory, pool: ThreadPoolExecutor, gates: Gates
) -> None:
    holder, counters, log, go, futures = queue_behind_a_writer(zk_client_factory, pool, gates, "write")
    assert sum(c.count for c in counters) == 0
    holder.unlock()
    wait_until(lambda: len(log) == 1, what="one waiter acquired")
    sleep(0.5)
    assert sum(c.count for c in counters) == 1  # one notification, to the one that can proceed
    assert log == ["w0 acquired " + log[0].split()[2]]
    go.set()
    for future in futures:
        settle(future)
    # every further release also woke exactly the next writer
    assert sum(c.count for c in counters) == 10


def test_release_of_a_writer_wakes_the_ten_readers_behind_it_and_no_one_else(
    zk_client_factory: Factory, pool: ThreadPoolExecutor, gates: Gates
) -> None:
    holder, counters, log, hold, readers = queue_behind_a_writer(zk_client_factory, pool, gates, "read")
    writer_client = zk_client_factory()
    writer_counter = WatchCounter(writer_client)
    writer = enqueue(pool, writer_client, 11, "write", log, "w", gates())
    holder.unlock()
    wait_until(lambda: len(log) == 10, what="all ten readers acquired")
    sleep(0.3)
    assert sum(c.count for c in counters) == 10
    assert writer_counter.count == 0  # the writer behind them was not woken
    hold.set()
    for r in readers:
        settle(r)
    wait_until(lambda: any(e.startswith("w acquired") for e in log), what="writer acquired")
    writer.cancel()


def test_timeout_is_a_deadline_not_restarted_when_the_predecessor_changes(
    zk_client_factory: Factory, pool: ThreadPoolExecutor
) -> None:
    holder = RWMutex(zk_client_factory(), "/lock")
    holder.lock(timeout=scaled(5))
    impatient = RWMutex(zk_client_factory(), "/lock")
    first_waiter = pool.submit(impatient.lock, scaled(1.5))
    wait_until(lambda: len(queue_names(holder._session.client)) == 2)
    patient = RWMutex(zk_client_factory(), "/lock")
    started = time.monotonic()
    with pytest.raises(Timeout):
        patient.lock(timeout=scaled(3.0))  # its predecessor leaves at ~1.5 s; a restarted wait would end at ~4.5 s
    elapsed = time.monotonic() - started
    with pytest.raises(Timeout):
        settle(first_waiter)
    assert elapsed < scaled(4.0)
    assert len(queue_names(holder._session.client)) == 1  # both timed-out waiters removed their nodes
    holder.unlock()


def test_a_waiter_that_times_out_leaves_no_node(zk_client_factory: Factory, zk_client: KazooClient) -> None:
    holder = RWMutex(zk_client_factory(), "/lock")
    holder.lock(timeout=scaled(5))
    for mode in ("write", "read"):
        waiter = RWMutex(zk_client_factory(), "/lock")
        with pytest.raises(Timeout):
            waiter.lock(timeout=scaled(0.3)) if mode == "write" else waiter.rlock(timeout=scaled(0.3))
        assert waiter.held is None
    assert len(queue_names(zk_client)) == 1
    holder.unlock()
    assert tree(zk_client) == {"/lock"}


def test_zero_timeout_tries_once(zk_client: KazooClient, zk_client_factory: Factory) -> None:
    mutex = RWMutex(zk_client, "/lock")
    assert mutex.lock(timeout=0).valid
    other = RWMutex(zk_client_factory(), "/lock")
    with pytest.raises(Timeout):
        other.lock(timeout=0)
    mutex.unlock()


def test_not_reentrant_second_acquire_raises_instead_of_deadlocking(zk_client: KazooClient) -> None:
    mutex = RWMutex(zk_client, "/lock")
    mutex.lock(timeout=scaled(5))
    with pytest.raises(AlreadyHeld):
        mutex.lock(timeout=scaled(5))
    with pytest.raises(AlreadyHeld):
        mutex.rlock(timeout=scaled(5))
    with pytest.raises(NotHeld):
        mutex.runlock()
    mutex.unlock()
    with pytest.raises(NotHeld):
        mutex.unlock()
    assert len(queue_names(zk_client)) == 0


def test_acquire_in_progress_on_another_thread_counts_as_held(
    zk_client_factory: Factory, pool: ThreadPoolExecutor
) -> None:
    holder = RWMutex(zk_client_factory(), "/lock")
    holder.lock(timeout=scaled(5))
    shared = RWMutex(zk_client_factory(), "/lock")
    waiting = pool.submit(shared.lock, scaled(10))
    wait_until(lambda: len(queue_names(holder._session.client)) == 2)
    with pytest.raises(AlreadyHeld):
        shared.rlock(timeout=scaled(1))
    holder.unlock()
    settle(waiting)
    shared.unlock()


def test_fencing_tokens_grow_with_every_acquisition(zk_client_factory: Factory) -> None:
    mutexes = [RWMutex(zk_client_factory(), "/lock") for _ in range(3)]
    tokens = []
    for round_ in range(3):
        for m in mutexes:
            with m.write(timeout=scaled(5)) if round_ != 1 else m.read(timeout=scaled(5)) as lease:
                tokens.append(lease.fencing_token)
                assert m.fencing_token == lease.fencing_token
    assert tokens == sorted(tokens) and len(set(tokens)) == len(tokens)


def test_context_manager_releases_on_error(zk_client: KazooClient) -> None:
    mutex = RWMutex(zk_client, "/lock")
    with pytest.raises(KeyError), mutex.write(timeout=scaled(5)):
        raise KeyError("boom")
    assert mutex.held is None
    assert queue_names(zk_client) == []


def test_holder_whose_session_expires_is_told_and_the_next_token_is_greater(
    zk_client_factory: Factory, zk_hosts: str, zk_chroot: str
) -> None:
    holder_client = zk_client_factory()
    holder = RWMutex(holder_client, "/lock")
    lease = holder.lock(timeout=scaled(5))
    told: list[float] = []
    lease.add_lost_callback(lambda _: told.append(time.monotonic()))
    # close the holder's session from a second connection that uses the same session id
    close_session_of(holder_client, f"{zk_hosts}{zk_chroot}")
    waiter = RWMutex(zk_client_factory(), "/lock")
    new_lease = waiter.lock(timeout=scaled(15))
    acquired = time.monotonic()
    assert lease.wait_lost(scaled(10))
    assert told and told[0] <= acquired + scaled(0.5)  # told no later than (about) the waiter's grant
    with pytest.raises(LockLost):
        lease.check()
    with pytest.raises(LockLost):
        holder.check()
    assert new_lease.fencing_token > lease.fencing_token
    holder.unlock()  # releasing a lost lease is allowed and harmless
    waiter.unlock()


def test_with_block_raises_lock_lost_when_the_lock_was_lost_inside(
    zk_client_factory: Factory, zk_hosts: str, zk_chroot: str
) -> None:
    client = zk_client_factory()
    mutex = RWMutex(client, "/lock")
    with pytest.raises(LockLost), mutex.write(timeout=scaled(5)) as lease:
        close_session_of(client, f"{zk_hosts}{zk_chroot}")
        assert lease.wait_lost(scaled(10))
    assert mutex.held is None


def test_a_child_of_no_known_naming_holds_off_readers_and_writers_and_is_reported_once(
    zk_client: KazooClient, caplog: pytest.LogCaptureFixture
) -> None:
    zk_client.create("/lock/left-behind-by-someone", makepath=True)
    mutex = RWMutex(zk_client, "/lock")
    with caplog.at_level("WARNING", logger="zksync.lock"):
        for _ in range(2):
            with pytest.raises(Timeout):
                mutex.lock(timeout=scaled(0.3))
            with pytest.raises(Timeout):
                mutex.rlock(timeout=scaled(0.3))
    warnings = [r.getMessage() for r in caplog.records if "fits no known lock naming" in r.getMessage()]
    assert len(warnings) == 1 and "/lock/left-behind-by-someone" in warnings[0]
    assert zk_client.get_children("/lock") == ["left-behind-by-someone"]  # our attempts left nothing
    assert ("write", "left-behind-by-someone") in mutex.queue()
    assert mutex.break_lock() == 1  # the operator's tool removes it, and the lock is free
    mutex.lock(timeout=scaled(5))
    mutex.unlock()
