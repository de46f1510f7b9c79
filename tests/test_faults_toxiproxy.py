"""Network faults between clients and members, injected with the real Toxiproxy server.

Every client here connects through the proxies ``zkN`` in front of the members it is allowed
to use, so a test cuts off exactly the clients it means to: ``hosts_of(1)`` is a client that
can only reach member 1.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from kazoo.client import KazooClient

from zksync import Barrier, ConnectionLost, DoubleBarrier, RWMutex, Timeout, ZkSyncError
from zksync.testing import Ensemble
from zksync.testing.timing import scaled, sleep
from zksync.testing.toxi import ProxiedEnsemble

from .conftest import assert_still_exclusive, settle, tree, wait_until
from .frontends import use_frontend

Factory = Callable[..., KazooClient]


@pytest.fixture(params=["blocking", "asyncio"], autouse=True)
def frontend(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Every scenario of this file runs on both front-ends (see tests/frontends.py)."""
    return use_frontend(request, sys.modules[__name__], monkeypatch)


def through(factory: Factory, faults: ProxiedEnsemble, *members: int, timeout: float = 4) -> KazooClient:
    """A client of ``members`` only, with a session timeout of ``timeout`` units of test time."""
    return factory(hosts=faults.hosts_of(*members), timeout=scaled(timeout), randomize_hosts=False)


def test_lost_create_reply_leaves_no_orphan_and_others_still_acquire(
    zk_faults: ProxiedEnsemble, zk_client_factory: Factory, zk_client: KazooClient
) -> None:
    client = through(zk_client_factory, zk_faults, 1, 2)
    mutex = RWMutex(client, "/lock")
    mutex.lock(timeout=scaled(5))
    mutex.unlock()
    # member 1 still receives requests but its answers never come back
    zk_faults.proxy(1).add_toxic(name="mute", type="timeout", stream="downstream", attributes={"timeout": 0})
    lease = mutex.lock(timeout=scaled(20))  # the create's reply is lost; the client moves to member 2
    zk_faults.heal()
    assert zk_client.get_children("/lock") == [lease.node.rsplit("/", 1)[1]]  # its own node, adopted
    mutex.unlock()
    assert zk_client.get_children("/lock") == []
    other = RWMutex(through(zk_client_factory, zk_faults, 3), "/lock")
    other.lock(timeout=scaled(5))
    other.unlock()


def test_a_create_that_lands_after_its_acquire_gave_up_and_loses_its_answer_leaves_no_node(
    zk_faults: ProxiedEnsemble, zk_client_factory: Factory, zk_client: KazooClient
) -> None:
    # seen in a fault run: answers delayed past the acquire's timeout, then the connection
    # dropped before the create's answer came back; the node had landed, its session lived on,
    # and it blocked the lock for everybody until the session ended
    client = through(zk_client_factory, zk_faults, 1, 2, timeout=8)
    mutex = RWMutex(client, "/lock")
    mutex.lock(timeout=scaled(5))
    mutex.unlock()
    session = client.client_id[0]
    zk_faults.proxy(1).add_toxic(name="slow", type="latency", stream="downstream", attributes={"latency": 2000})
    with pytest.raises(Timeout):
        mutex.lock(timeout=0.5)  # the create reaches the server at once; its answer is 2 s away
    wait_until(lambda: zk_client.get_children("/lock"), 5, "the abandoned create landing")
    zk_faults.reset(1)  # the connection goes before the answer arrives; the client moves to member 2
    wait_until(lambda: client.connected, 20, "the client reconnecting")
    assert client.client_id[0] == session  # the same session: its nodes live on unless deleted
    wait_until(lambda: zk_client.get_children("/lock") == [], 20, "the abandoned create's node removed")
    zk_faults.heal()
    other = RWMutex(through(zk_client_factory, zk_faults, 3), "/lock")
    other.lock(timeout=scaled(5))
    other.unlock()


def test_holder_partitioned_past_the_session_timeout_is_told_before_the_waiter_acquires(
    zk_faults: ProxiedEnsemble, zk_client_factory: Factory, pool: ThreadPoolExecutor
) -> None:
    holder = RWMutex(through(zk_client_factory, zk_faults, 1), "/lock")
    lease = holder.lock(timeout=scaled(5))
    told: list[float] = []
    lease.add_lost_callback(lambda _: told.append(time.monotonic()))
    waiter = RWMutex(through(zk_client_factory, zk_faults, 2, 3), "/lock")
    waiting = pool.submit(waiter.lock, scaled(30))
    wait_until(lambda: len(waiter.queue()) == 2)
    zk_faults.partition(1)
    new_lease = settle(waiting, 40)
    acquired = time.monotonic()
    assert told and told[0] <= acquired
    assert new_lease.fencing_token > lease.fencing_token
    zk_faults.heal()
    waiter.unlock()


def test_holder_partitioned_briefly_moves_to_another_member_and_keeps_the_lock(
    zk_faults: ProxiedEnsemble, zk_client_factory: Factory
) -> None:
    client = through(zk_client_factory, zk_faults, 1, 2, timeout=8)
    holder = RWMutex(client, "/lock")
    lease = holder.lock(timeout=scaled(5))
    states: list[str] = []
    client.add_listener(states.append)
    with zk_faults.cut(1):
        wait_until(lambda: "CONNECTED" in states, 20, "reconnected through member 2")
    assert lease.valid, lease.lost_reason
    assert_still_exclusive(holder, through(zk_client_factory, zk_faults, 3))


def test_waiter_partitioned_while_waiting_times_out_and_its_node_goes_once_reconnected(
    zk_faults: ProxiedEnsemble, zk_client_factory: Factory
) -> None:
    holder = RWMutex(through(zk_client_factory, zk_faults, 2, 3), "/lock")
    holder.lock(timeout=scaled(5))
    waiter_client = through(zk_client_factory, zk_faults, 1, timeout=10)
    waiter = RWMutex(waiter_client, "/lock")
    failure: list[BaseException] = []

    def wait() -> None:
        try:
            waiter.lock(timeout=scaled(2.0))
        except BaseException as exc:
            failure.append(exc)

    thread = threading.Thread(target=wait)
    thread.start()
    wait_until(lambda: len(holder.queue()) == 2)
    zk_faults.partition(1)
    started = time.monotonic()
    thread.join(scaled(10))
    assert failure and isinstance(failure[0], Timeout)
    assert time.monotonic() - started < scaled(4.0)  # the deadline held although the client was cut off
    zk_faults.heal()
    wait_until(lambda: len(holder.queue()) == 1, 20, "the waiter's node removed after healing")
    holder.unlock()


@pytest.mark.parametrize("latency_ms", [100, 500, 2000])
def test_latency_on_some_members_keeps_mutual_exclusion_and_timeouts(
    zk_faults: ProxiedEnsemble, zk_client_factory: Factory, pool: ThreadPoolExecutor, latency_ms: int
) -> None:
    zk_faults.latency(1, latency_ms, jitter=latency_ms // 5)
    inside: list[int] = []
    overlaps: list[list[int]] = []
    errors: list[BaseException] = []
    guard = threading.Lock()

    made: list[KazooClient] = []

    def worker(i: int, members: tuple[int, ...]) -> None:
        made.append(through(zk_client_factory, zk_faults, *members, timeout=8))
        mutex = RWMutex(made[-1], "/lock")
        for _ in range(3 if latency_ms < 1000 else 1):
            try:
                with mutex.write(timeout=scaled(20)) as lease:
                    with guard:
                        inside.append(i)
                        if len(inside) > 1 and not lease.lost:
                            overlaps.append(list(inside))
                    sleep(0.05)
                    with guard:
                        inside.remove(i)
            except ZkSyncError as exc:  # timeouts and losses are allowed; overlaps are not
                errors.append(exc)

    futures = [pool.submit(worker, i, (1,) if i < 2 else (2, 3)) for i in range(4)]
    for f in futures:
        settle(f, 120)
    assert overlaps == []
    for client in made:
        client.stop()  # under seconds of latency a client's own clean-up may never get through
    slow = RWMutex(through(zk_client_factory, zk_faults, 1, timeout=8), "/lock")
    blocker = RWMutex(through(zk_client_factory, zk_faults, 2), "/lock")
    blocker.lock(timeout=scaled(30))
    started = time.monotonic()
    with pytest.raises((Timeout, ConnectionLost)):
        slow.lock(timeout=scaled(1.0))
    assert time.monotonic() - started < scaled(1.0 + 1.5)  # honoured within the cleanup allowance
    blocker.unlock()


def test_quorum_loss_stops_progress_with_clear_errors_and_restoring_it_resumes(
    zk_faults: ProxiedEnsemble, zk_client_factory: Factory, zk_ensemble: Any
) -> None:
    if not isinstance(zk_ensemble, Ensemble):
        pytest.skip("needs the local ensemble to stop members")
    client = through(zk_client_factory, zk_faults, 1, 2, 3, timeout=8)
    mutex = RWMutex(client, "/lock")
    mutex.lock(timeout=scaled(5))
    mutex.unlock()
    stopped = [*[i for i in range(zk_ensemble.size) if i != zk_ensemble.leader()][:1], zk_ensemble.leader()]
    for index in stopped:
        zk_ensemble.kill(index)
    try:
        with pytest.raises((Timeout, ConnectionLost)):
            mutex.lock(timeout=scaled(2))
        assert mutex.held is None
        with pytest.raises((Timeout, ConnectionLost)):
            Barrier(client, "/b").set()
    finally:
        for index in stopped:
            zk_ensemble.start_member(index, wait=False)
        zk_ensemble.wait_ready(scaled(90))
    mutex.lock(timeout=scaled(30))
    mutex.unlock()


def test_double_barrier_member_partitioned_during_exit_lets_the_others_leave_once_its_session_ends(
    zk_faults: ProxiedEnsemble, zk_client_factory: Factory, pool: ThreadPoolExecutor, zk_client: KazooClient
) -> None:
    stay = [DoubleBarrier(through(zk_client_factory, zk_faults, 2, 3), "/db", 3, identifier=f"s{i}") for i in range(2)]
    cut = DoubleBarrier(through(zk_client_factory, zk_faults, 1, timeout=4), "/db", 3, identifier="cut")
    for f in [pool.submit(b.enter, scaled(20)) for b in [*stay, cut]]:
        settle(f)
    zk_faults.partition(1)
    exits = [pool.submit(b.exit, scaled(30)) for b in stay]
    sleep(1.0)
    assert not any(f.done() for f in exits)  # the cut-off member has not left yet
    for f in exits:
        settle(f, 40)  # its session expires and it counts as gone
    zk_faults.heal()
    assert wait_until(lambda: tree(zk_client) == {"/db"}, 20)


def test_barrier_setter_partitioned_waiters_keep_waiting_until_unset_after_healing(
    zk_faults: ProxiedEnsemble, zk_client_factory: Factory, pool: ThreadPoolExecutor
) -> None:
    setter = Barrier(through(zk_client_factory, zk_faults, 1, timeout=4), "/b")
    setter.set()
    waiters = [
        pool.submit(Barrier(through(zk_client_factory, zk_faults, 2, 3), "/b").wait, scaled(60)) for _ in range(3)
    ]
    zk_faults.partition(1)
    sleep(6)  # longer than the setter's session timeout (4)
    assert not any(w.done() for w in waiters)
    zk_faults.heal()
    wait_until(lambda: setter._session.is_connected(), 20, "setter reconnected")
    assert setter.unset() is True
    for w in waiters:
        settle(w, 20)


def test_connection_flapping_never_lets_two_writers_in_and_never_loses_a_wake_up(
    zk_faults: ProxiedEnsemble, zk_client_factory: Factory, pool: ThreadPoolExecutor
) -> None:
    accepted: list[tuple[int, int]] = []
    highest = [0]
    inside: list[int] = []
    overlaps: list[list[int]] = []
    stale_writes: list[tuple[int, int]] = []
    guard = threading.Lock()
    stop = threading.Event()

    def write(i: int, token: int) -> None:  # a resource that fences
        with guard:
            if token < highest[0]:
                return
            highest[0] = token
            accepted.append((i, token))

    rotations = [(1, 2, 3)[i % 3 :] + (1, 2, 3)[: i % 3] for i in range(4)]
    mutexes = [RWMutex(through(zk_client_factory, zk_faults, *members, timeout=6), "/lock") for members in rotations]

    def worker(i: int) -> int:
        mutex = mutexes[i]  # connected before the flapping starts
        done = 0
        while not stop.is_set():
            try:
                with mutex.write(timeout=scaled(30)) as lease:
                    with guard:
                        inside.append(i)
                        if len(inside) > 1:
                            overlaps.append(list(inside))
                    write(i, lease.fencing_token)
                    if lease.lost:
                        with guard:
                            stale_writes.append((i, lease.fencing_token))
                    sleep(0.01)
                    with guard:
                        inside.remove(i)
                done += 1
            except ZkSyncError:
                with guard:
                    if i in inside:
                        inside.remove(i)
        return done

    futures = [pool.submit(worker, i) for i in range(4)]
    for flap in range(15):
        member = flap % 3 + 1
        zk_faults.partition(member)
        sleep(0.4)
        zk_faults.unpartition(member)
        sleep(0.2)
    stop.set()
    counts = [settle(f, 90) for f in futures]  # nobody is stuck: no lost wake-up
    assert overlaps == []
    assert sum(counts) > 0
    tokens = [t for _, t in accepted]
    assert tokens == sorted(tokens)


def test_sync_instance_partitioned_past_its_session_makes_waiters_fail_with_its_id(
    zk_faults: ProxiedEnsemble, zk_client_factory: Factory, pool: ThreadPoolExecutor
) -> None:
    from zksync import ParticipantLost, Sync

    near = [
        Sync(through(zk_client_factory, zk_faults, 2, 3), "run", instance_id=f"n{i}", instance_count=3)
        for i in range(2)
    ]
    far = Sync(through(zk_client_factory, zk_faults, 1, timeout=4), "run", instance_id="far", instance_count=3)
    for s in [*near, far]:
        s.join()
    waiters = [pool.submit(s.signal_and_wait, "done", 3, scaled(60)) for s in near]
    zk_faults.partition(1)  # "far" never signals: its session expires behind the partition
    for w in waiters:
        with pytest.raises(ParticipantLost) as info:
            settle(w, 40)
        assert info.value.instances == ["far"]
    zk_faults.heal()
