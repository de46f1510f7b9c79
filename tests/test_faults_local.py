"""Faults made with the local ensemble itself (killing and freezing members) and a lost
create reply.  The Toxiproxy suite covers network faults between clients and members."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from kazoo.client import KazooClient
from kazoo.exceptions import ConnectionLoss

from zksync import Barrier, DoubleBarrier, RWMutex, Timeout
from zksync._core.queue import find_own
from zksync._core.requests import Requests
from zksync._drive.blocking import run
from zksync._session import session_for
from zksync._util import Deadline
from zksync.testing import Ensemble
from zksync.testing.timing import scaled, sleep

from .conftest import assert_still_exclusive, settle, tree, wait_until

Factory = Callable[..., KazooClient]


@pytest.fixture
def ensemble(zk_ensemble: Any) -> Iterator[Ensemble]:
    if not isinstance(zk_ensemble, Ensemble):
        pytest.skip("needs the local ensemble (ZOOKEEPER_PEERS names an external one)")
    yield zk_ensemble
    for index in range(zk_ensemble.size):  # whatever a test did, leave every member serving
        zk_ensemble.resume(index)
        zk_ensemble.start_member(index, wait=False)
    zk_ensemble.wait_ready(scaled(90))
    for index in range(zk_ensemble.size):
        zk_ensemble.wait_member(index, scaled(60))


def follower(ensemble: Ensemble) -> int:
    return next(i for i in range(ensemble.size) if ensemble.mode(i) == "follower")


def others(ensemble: Ensemble, index: int) -> str:
    return ",".join(f"{ensemble.host}:{m.client_port}" for i, m in enumerate(ensemble.members) if i != index)


def only(ensemble: Ensemble, index: int) -> str:
    host, port = ensemble.address(index)
    return f"{host}:{port}"


def lose_next_create_reply(client: KazooClient) -> list[str]:
    """The next create reaches the server, but the client is told the connection was lost."""
    original = client.create_async
    made: list[str] = []

    def create_async(*args: Any, **kwargs: Any) -> Any:
        client.create_async = original  # once
        real = original(*args, **kwargs)
        fake = client.handler.async_result()

        def relay(result: Any) -> None:
            value = result.get()
            made.append(value[0] if isinstance(value, tuple) else value)
            fake.set_exception(ConnectionLoss())

        real.rawlink(relay)
        return fake

    client.create_async = create_async
    return made


def test_lost_create_reply_finds_its_own_node_and_leaves_no_orphan(
    zk_client_factory: Factory, zk_client: KazooClient
) -> None:
    client = zk_client_factory()
    mutex = RWMutex(client, "/lock")
    mutex.lock(timeout=scaled(1))
    mutex.unlock()  # /lock exists now
    made = lose_next_create_reply(client)
    lease = mutex.lock(timeout=scaled(5))
    assert made and lease.node == made[0]  # adopted the node the lost create made
    assert len(zk_client.get_children("/lock")) == 1
    mutex.unlock()
    assert zk_client.get_children("/lock") == []
    other = RWMutex(zk_client_factory(), "/lock")
    other.lock(timeout=scaled(5))
    other.unlock()


def test_a_node_with_our_guid_made_by_another_session_is_deleted_not_adopted(
    zk_client_factory: Factory, zk_client: KazooClient
) -> None:
    guid = "ab" * 16
    stranger = zk_client_factory()
    stranger.create(f"/lock/write-{guid}-", ephemeral=True, sequence=True, makepath=True)
    session = session_for(zk_client_factory())
    assert run(find_own(Requests(session, "RWMutex", "/lock"), "/lock", guid, Deadline(scaled(5))), session) is None
    assert zk_client.get_children("/lock") == []


def test_holder_cut_off_past_the_session_timeout_is_told_before_a_waiter_acquires(
    ensemble: Ensemble, zk_chroot: str, zk_client_factory: Factory, pool: ThreadPoolExecutor
) -> None:
    index = follower(ensemble)
    holder_client = zk_client_factory(hosts=only(ensemble, index), timeout=scaled(4))
    holder = RWMutex(holder_client, "/lock")
    lease = holder.lock(timeout=scaled(5))
    told: list[float] = []
    lease.add_lost_callback(lambda _: told.append(time.monotonic()))
    waiter = RWMutex(zk_client_factory(hosts=others(ensemble, index), timeout=scaled(4)), "/lock")
    waiting = pool.submit(waiter.lock, scaled(30))
    wait_until(lambda: len(waiter.queue()) == 2)
    ensemble.pause(index)  # the holder's only member freezes: the holder is cut off
    new_lease = settle(waiting, 40)
    acquired = time.monotonic()
    assert told, "the holder was not told before the waiter acquired"
    assert told[0] <= acquired
    assert lease.lost and new_lease.fencing_token > lease.fencing_token
    ensemble.resume(index)
    waiter.unlock()


def test_holder_cut_off_briefly_keeps_the_lock(ensemble: Ensemble, zk_client_factory: Factory) -> None:
    index = follower(ensemble)
    client = zk_client_factory(
        hosts=f"{only(ensemble, index)},{others(ensemble, index)}", timeout=scaled(8), randomize_hosts=False
    )
    holder = RWMutex(client, "/lock")
    lease = holder.lock(timeout=scaled(5))
    ensemble.kill(index)  # the holder's member crashes: it reconnects to another one
    wait_until(lambda: client.connected and client._connection._socket is not None, 20, "reconnected")
    sleep(0.5)
    assert lease.valid
    lease.check()
    assert_still_exclusive(holder, zk_client_factory(hosts=others(ensemble, index)))


def test_waiter_timing_out_while_disconnected_removes_its_node_once_reconnected(
    ensemble: Ensemble, zk_client_factory: Factory, zk_client: KazooClient
) -> None:
    index = follower(ensemble)
    holder = RWMutex(zk_client_factory(hosts=others(ensemble, index)), "/lock")
    holder.lock(timeout=scaled(5))
    waiter_client = zk_client_factory(hosts=only(ensemble, index), timeout=scaled(10))
    waiter = RWMutex(waiter_client, "/lock")
    result: list[BaseException] = []
    thread = threading.Thread(target=lambda: _capture(result, waiter.lock, scaled(2.0)))
    thread.start()
    wait_until(lambda: len(holder.queue()) == 2)
    session = waiter_client.client_id[0]
    ensemble.kill(index)  # the waiter is disconnected while it waits
    thread.join(scaled(10))
    assert result and isinstance(result[0], Timeout)
    assert len(holder.queue()) == 2  # its node is still there: it could not be deleted yet
    ensemble.start_member(index, timeout=scaled(60))
    wait_until(lambda: len(holder.queue()) == 1, 20, "the waiter's node removed after reconnecting")
    # same session: the node was deleted by the client, not by expiry (the restarted member may
    # drop the connection once more while it catches up, so wait for it rather than look once)
    wait_until(lambda: waiter_client.connected, 20, "the waiter connected again")
    assert waiter_client.client_id[0] == session
    holder.unlock()


def _capture(into: list[BaseException], call: Callable[..., Any], *args: Any) -> None:
    try:
        call(*args)
    except BaseException as exc:
        into.append(exc)


def test_barrier_waiter_survives_its_member_crashing_and_is_released_after(
    ensemble: Ensemble, zk_client_factory: Factory, pool: ThreadPoolExecutor
) -> None:
    index = follower(ensemble)
    setter = Barrier(zk_client_factory(hosts=others(ensemble, index)), "/b")
    setter.set()
    waiter = pool.submit(
        Barrier(zk_client_factory(hosts=only(ensemble, index), timeout=scaled(10)), "/b").wait, scaled(30)
    )
    sleep(0.3)
    ensemble.kill(index)
    sleep(1.0)
    assert not waiter.done()  # the empty watch event of the disconnect does not release it
    ensemble.start_member(index, timeout=scaled(60))
    sleep(1.0)
    assert not waiter.done()
    setter.unset()
    settle(waiter, 20)


def test_double_barrier_round_completes_across_a_member_crash(
    ensemble: Ensemble, zk_client_factory: Factory, pool: ThreadPoolExecutor, zk_client: KazooClient
) -> None:
    index = follower(ensemble)
    near = [
        DoubleBarrier(zk_client_factory(hosts=others(ensemble, index)), "/db", 3, identifier=f"n{i}") for i in range(2)
    ]
    far = DoubleBarrier(zk_client_factory(hosts=only(ensemble, index), timeout=scaled(10)), "/db", 3, identifier="far")
    entering = [pool.submit(b.enter, scaled(30)) for b in [*near, far]]
    wait_until(lambda: zk_client.exists("/db") and len(zk_client.get_children("/db")) >= 2)
    ensemble.kill(index)
    sleep(0.5)
    ensemble.start_member(index, timeout=scaled(60))
    for f in entering:
        settle(f, 40)
    for f in [pool.submit(b.exit, scaled(30)) for b in [*near, far]]:
        settle(f, 40)
    assert tree(zk_client) == {"/db"}


def test_leader_killed_while_writers_queue_still_serves_every_writer_once(
    ensemble: Ensemble, zk_client_factory: Factory, pool: ThreadPoolExecutor
) -> None:
    inside = []
    overlap = []
    guard = threading.Lock()

    def writer(i: int) -> None:
        mutex = RWMutex(zk_client_factory(timeout=scaled(8)), "/lock")
        with mutex.write(timeout=scaled(40)):
            with guard:
                inside.append(i)
                if len(inside) > 1:
                    overlap.append(list(inside))
            sleep(0.2)
            with guard:
                inside.remove(i)

    futures = [pool.submit(writer, i) for i in range(5)]
    sleep(0.3)
    ensemble.kill(ensemble.leader())
    for f in futures:
        settle(f, 60)
    assert overlap == []


def test_a_lost_create_that_lands_late_leaves_no_orphan_and_blocks_nobody(
    zk_client_factory: Factory, zk_client: KazooClient
) -> None:
    client = zk_client_factory()
    mutex = RWMutex(client, "/lock")
    mutex.lock(timeout=scaled(1))
    mutex.unlock()
    original = client.create_async

    def create_async(*args: Any, **kwargs: Any) -> Any:
        client.create_async = original  # once: fail now, land the request a unit of test time later
        threading.Timer(scaled(1.0), lambda: original(*args, **kwargs)).start()
        failed = client.handler.async_result()
        failed.set_exception(ConnectionLoss())
        return failed

    client.create_async = create_async
    lease = mutex.lock(timeout=scaled(5))
    assert lease.tainted
    wait_until(lambda: len(zk_client.get_children("/lock")) == 2, 10, "the late duplicate landed")
    other = RWMutex(zk_client_factory(), "/lock")
    mutex.unlock()
    other.lock(timeout=scaled(5))  # the duplicate (same GUID, later sequence) does not block anybody
    other.unlock()
    wait_until(lambda: zk_client.get_children("/lock") == [], 20, "the duplicate swept away")
    assert client.connected  # removed by its owner, not by a session ending


def test_giving_up_after_a_lost_create_reply_still_removes_the_node_it_made(
    zk_client_factory: Factory, zk_client: KazooClient
) -> None:
    """The create landed but its reply was lost, and the connection did not come back before
    the deadline: the acquire times out, and the node must not stay behind (a read node left
    there would block every writer for as long as the session lives)."""
    client = zk_client_factory()
    mutex = RWMutex(client, "/lock")
    mutex.rlock(timeout=scaled(1))
    mutex.runlock()  # /lock exists now
    made = lose_next_create_reply(client)
    session = mutex._session
    original = session.wait_connected
    calls: list[int] = []
    acquiring = threading.get_ident()

    def still_disconnected_after_the_create(deadline: Any) -> bool:
        if threading.get_ident() != acquiring:
            return original(deadline)  # other threads (the clean-up) see the connection as it is
        calls.append(1)
        return original(deadline) if len(calls) == 1 else False  # the one before the create passes

    session.wait_connected = still_disconnected_after_the_create  # type: ignore[method-assign]
    try:
        with pytest.raises(Timeout):
            mutex.rlock(timeout=scaled(1))
    finally:
        session.wait_connected = original  # type: ignore[method-assign]
    assert made  # the create did land
    wait_until(lambda: zk_client.get_children("/lock") == [], timeout=10, what="the landed node removed")
    writer = RWMutex(zk_client_factory(), "/lock")
    writer.lock(timeout=scaled(5))
    writer.unlock()


def test_a_collection_replica_whose_member_restarts_catches_up_with_every_change(
    ensemble: Ensemble, zk_client_factory: Factory
) -> None:
    from zksync import Collection

    index = follower(ensemble)
    writer = Collection(zk_client_factory(hosts=others(ensemble, index)), "/fortunes", member="writer")
    writer.open(timeout=scaled(10))
    writer.put("kept", 0)
    writer.put("changed", 0)
    writer.put("deleted", 0)
    reader_client = zk_client_factory(hosts=only(ensemble, index), timeout=scaled(30))
    reader = Collection(reader_client, "/fortunes", member="reader").open(timeout=scaled(10))
    changes = reader.changes(timeout=scaled(30))
    ensemble.kill(index)  # the reader's only member goes down: it keeps its replica, and says how old
    wait_until(lambda: reader.stale > 0.0, 10, "the reader disconnected")
    for n in range(1, 11):
        writer.put("changed", n)
    writer.delete("deleted")
    writer.put("new", "while it was down")
    assert reader.get("changed") == 0 and reader.get("deleted") == 0
    ensemble.start_member(index, timeout=scaled(60))  # back with the same session: a resync
    reader.wait_for("new", timeout=scaled(30))
    wait_until(lambda: reader.stale == 0.0, 30, "the replica caught up")
    assert dict(reader.items()) == {"kept": 0, "changed": 10, "new": "while it was down"}
    missed = {c.key: (c.old, c.new) for c in (changes.get(timeout=scaled(10)) for _ in range(3)) if c is not None}
    assert missed == {"changed": (0, 10), "deleted": (0, None), "new": (None, "while it was down")}
    assert reader_client.client_id is not None and sorted(writer.members()) == ["reader", "writer"]
    changes.close()
