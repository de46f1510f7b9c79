"""Barrier and DoubleBarrier against the real ensemble."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import pytest
from kazoo.client import KazooClient

from zksync import AlreadyHeld, Barrier, DoubleBarrier, ForeignLayout, InvalidState, NotHeld, Timeout, ZkSyncError
from zksync.testing.timing import scaled, sleep

from .conftest import RequestCounter, WatchCounter, settle, tree, wait_until
from .frontends import use_frontend

Factory = Callable[..., KazooClient]


@pytest.fixture(params=["blocking", "asyncio"], autouse=True)
def frontend(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Every scenario of this file runs on both front-ends (see tests/frontends.py)."""
    return use_frontend(request, sys.modules[__name__], monkeypatch)


# ---- Barrier --------------------------------------------------------------------------------
def test_set_unset_report_whether_they_changed_anything(zk_client: KazooClient) -> None:
    barrier = Barrier(zk_client, "/b")
    assert not barrier.is_set()
    assert barrier.set() is True
    assert barrier.set() is False
    assert barrier.is_set()
    assert barrier.unset() is True
    assert barrier.unset() is False
    assert not barrier.is_set()


def test_the_barrier_is_the_node_at_its_path_as_in_the_go_original(zk_client: KazooClient) -> None:
    barrier = Barrier(zk_client, "/gates/deploy")
    barrier.set()
    assert tree(zk_client) == {"/gates", "/gates/deploy"}  # parents made as needed, no child
    assert zk_client.get_children("/gates/deploy") == []
    barrier.unset()
    assert tree(zk_client) == {"/gates"}
    zk_client.create("/gates/deploy")  # set by anybody who creates the node, as Go's Set does
    assert barrier.is_set()


def test_a_barrier_in_the_earlier_layout_reads_as_set_and_unset_removes_it(zk_client: KazooClient) -> None:
    zk_client.create("/b/set", makepath=True)  # how this library marked a set barrier before
    barrier = Barrier(zk_client, "/b")
    assert barrier.is_set()
    assert barrier.unset() is True
    assert tree(zk_client) == set()


def test_unset_refuses_a_node_with_children_and_changes_nothing(zk_client: KazooClient) -> None:
    zk_client.create("/b/someone-elses", makepath=True)
    with pytest.raises(InvalidState, match="not a barrier node"):
        Barrier(zk_client, "/b").unset()
    assert tree(zk_client) == {"/b", "/b/someone-elses"}


def test_wait_returns_at_once_when_not_set(zk_client: KazooClient) -> None:
    Barrier(zk_client, "/b").wait(timeout=0)


def test_unset_releases_every_waiter_with_one_notification_each(
    zk_client_factory: Factory, pool: ThreadPoolExecutor
) -> None:
    setter = Barrier(zk_client_factory(), "/b")
    setter.set()
    clients = [zk_client_factory() for _ in range(10)]
    counters = [WatchCounter(c) for c in clients]
    waiters = [pool.submit(Barrier(c, "/b").wait, scaled(20)) for c in clients]
    sleep(0.5)
    assert not any(w.done() for w in waiters)
    setter.unset()
    for w in waiters:
        settle(w)
    assert sum(c.count for c in counters) == 10


def test_wait_times_out_while_set_and_leaves_nothing_behind(zk_client: KazooClient, zk_client_factory: Factory) -> None:
    Barrier(zk_client, "/b").set()
    before = tree(zk_client)
    with pytest.raises(Timeout):
        Barrier(zk_client_factory(), "/b").wait(timeout=scaled(0.3))
    assert tree(zk_client) == before


def test_setter_disconnecting_does_not_release_waiters(zk_client_factory: Factory, pool: ThreadPoolExecutor) -> None:
    setter_client = zk_client_factory()
    Barrier(setter_client, "/b").set()
    waiter = pool.submit(Barrier(zk_client_factory(), "/b").wait, 20)
    setter_client.stop()
    setter_client.close()
    sleep(1.0)
    assert not waiter.done()  # the barrier node is persistent
    Barrier(zk_client_factory(), "/b").unset()
    settle(waiter)


# ---- DoubleBarrier --------------------------------------------------------------------------
def test_a_double_barrier_refuses_the_go_originals_layout_and_leaves_it_as_it_was(
    zk_client: KazooClient, zk_client_factory: Factory
) -> None:
    go = zk_client_factory()
    go.create("/db/go-worker-1", ephemeral=True, makepath=True)  # a Go round in progress: bare ids
    go.create("/db/go-worker-2", ephemeral=True)
    before = tree(zk_client)
    with pytest.raises(ForeignLayout, match="Go zksync DoubleBarrier") as info:
        DoubleBarrier(zk_client_factory(), "/db", 2, identifier="py").enter(timeout=scaled(5))
    assert info.value.names == ["go-worker-1", "go-worker-2"]
    wait_until(lambda: tree(zk_client) == before, what="our node removed")
    go.create("/db/ready")  # the Go original's ready: no data, never removed
    for participants in (1, 3):
        with pytest.raises(ForeignLayout, match="ready"):
            DoubleBarrier(zk_client_factory(), "/db", participants, identifier="py").enter(timeout=scaled(5))
        wait_until(lambda: tree(zk_client) == before | {"/db/ready"}, what="our node removed")


def enter_all(pool: ThreadPoolExecutor, barriers: list[DoubleBarrier], timeout: float = 20) -> list[Future[Any]]:
    """Every barrier's ``enter`` started in the pool, given ``timeout`` units of test time."""
    return [pool.submit(b.enter, scaled(timeout)) for b in barriers]


def participants(client: KazooClient, path: str = "/db") -> list[str]:
    if client.exists(path) is None:
        return []
    return [c for c in client.get_children(path) if c != "ready"]


def test_enter_returns_only_when_all_have_entered_and_exit_only_when_all_have_left(
    zk_client_factory: Factory, pool: ThreadPoolExecutor, zk_client: KazooClient
) -> None:
    barriers = [DoubleBarrier(zk_client_factory(), "/db", 3, identifier=f"p{i}") for i in range(3)]
    first = enter_all(pool, barriers[:2])
    sleep(0.5)
    assert not any(f.done() for f in first)
    last = pool.submit(barriers[2].enter, scaled(20))
    for f in [*first, last]:
        settle(f)
    assert all(b.entered for b in barriers)
    early = [pool.submit(b.exit, scaled(20)) for b in barriers[:2]]
    sleep(0.5)
    assert not any(f.done() for f in early)  # one member is still inside
    barriers[2].exit(timeout=scaled(20))
    for f in early:
        settle(f)
    assert tree(zk_client) == {"/db"}  # no participant node and no ready node left


def test_with_statement_enters_and_exits(
    zk_client_factory: Factory, pool: ThreadPoolExecutor, zk_client: KazooClient
) -> None:
    def member(i: int) -> None:
        with DoubleBarrier(zk_client_factory(), "/db", 2, identifier=f"m{i}"):
            pass

    for f in [pool.submit(member, i) for i in range(2)]:
        settle(f)
    assert tree(zk_client) == {"/db"}


def test_more_than_n_arrivals_only_n_enter_and_the_rest_wait_for_the_next_round(
    zk_client_factory: Factory, pool: ThreadPoolExecutor, zk_client: KazooClient
) -> None:
    barriers = [DoubleBarrier(zk_client_factory(), "/db", 2, identifier=f"p{i}") for i in range(3)]
    futures = []
    for b in barriers:
        futures.append(pool.submit(b.enter, scaled(20)))
        wait_until(lambda: len(participants(zk_client)) == len(futures), what="participant queued")
    settle(futures[0])
    settle(futures[1])
    sleep(0.5)
    assert not futures[2].done()  # the third waits: it is not a member of this round
    assert barriers[0].entered and barriers[1].entered and not barriers[2].entered
    for f in [pool.submit(b.exit, scaled(20)) for b in barriers[:2]]:
        settle(f)
    fourth = DoubleBarrier(zk_client_factory(), "/db", 2, identifier="p3")
    fourth.enter(timeout=scaled(20))  # a new round: the third and the fourth
    settle(futures[2])
    for f in [pool.submit(b.exit, scaled(20)) for b in (barriers[2], fourth)]:
        settle(f)
    assert tree(zk_client) == {"/db"}


def test_a_stale_ready_node_from_a_crashed_round_never_lets_a_new_round_through_early(
    zk_client: KazooClient, zk_client_factory: Factory, pool: ThreadPoolExecutor
) -> None:
    zk_client.create("/db/ready", json.dumps({"members": [1, 2]}).encode(), makepath=True)
    lone = DoubleBarrier(zk_client_factory(), "/db", 2, identifier="lone")
    with pytest.raises(Timeout):
        lone.enter(timeout=scaled(1.0))  # alone, it must not pass the stale ready node
    assert not lone.entered
    pair = [DoubleBarrier(zk_client_factory(), "/db", 2, identifier=f"p{i}") for i in range(2)]
    for f in enter_all(pool, pair):
        settle(f)
    for f in [pool.submit(b.exit, scaled(20)) for b in pair]:
        settle(f)
    assert tree(zk_client) == {"/db"}


def test_re_entering_after_a_timeout_works_and_leaves_no_extra_node(
    zk_client_factory: Factory, pool: ThreadPoolExecutor, zk_client: KazooClient
) -> None:
    early = DoubleBarrier(zk_client_factory(), "/db", 2, identifier="early")
    with pytest.raises(Timeout):
        early.enter(timeout=scaled(0.5))
    assert participants(zk_client) == []
    late = DoubleBarrier(zk_client_factory(), "/db", 2, identifier="late")
    for f in enter_all(pool, [early, late]):
        settle(f)
    assert len(participants(zk_client)) == 2
    for f in [pool.submit(b.exit, scaled(20)) for b in (early, late)]:
        settle(f)
    assert tree(zk_client) == {"/db"}


def test_a_participant_that_crashes_after_entering_does_not_block_the_others_exit(
    zk_client_factory: Factory, pool: ThreadPoolExecutor, zk_client: KazooClient
) -> None:
    crasher_client = zk_client_factory()
    barriers = [DoubleBarrier(zk_client_factory(), "/db", 3, identifier=f"p{i}") for i in range(2)]
    crasher = DoubleBarrier(crasher_client, "/db", 3, identifier="crasher")
    for f in enter_all(pool, [*barriers, crasher]):
        settle(f)
    exits = [pool.submit(b.exit, scaled(20)) for b in barriers]
    sleep(0.5)
    assert not any(f.done() for f in exits)
    crasher_client.stop()  # its session ends and its node goes with it
    for f in exits:
        settle(f)
    assert tree(zk_client) == {"/db"}


def test_the_lowest_member_crashing_during_exit_does_not_block_the_others(
    zk_client_factory: Factory, pool: ThreadPoolExecutor, zk_client: KazooClient
) -> None:
    clients = [zk_client_factory() for _ in range(3)]
    barriers = [DoubleBarrier(c, "/db", 3, identifier=f"p{i}") for i, c in enumerate(clients)]
    futures = []
    for b in barriers:  # enter one after the other so p0 has the lowest sequence
        futures.append(pool.submit(b.enter, scaled(20)))
        wait_until(lambda: len(participants(zk_client)) == len(futures))
    for f in futures:
        settle(f)
    monitor = pool.submit(barriers[0].exit, scaled(20))
    other = pool.submit(barriers[1].exit, scaled(20))
    wait_until(lambda: len(participants(zk_client)) == 2, what="p1 left")  # p0 waits as monitor
    clients[0].stop()  # the monitor crashes
    sleep(0.3)
    assert not other.done()  # p2 is still inside
    barriers[2].exit(timeout=scaled(20))
    settle(other)
    with pytest.raises(ZkSyncError):  # its client was stopped under it
        settle(monitor)
    assert wait_until(lambda: tree(zk_client) == {"/db"}, what="clean tree")


def test_double_barrier_state_errors(zk_client: KazooClient) -> None:
    barrier = DoubleBarrier(zk_client, "/db", 1)
    with pytest.raises(NotHeld):
        barrier.exit(timeout=scaled(1))
    barrier.enter(timeout=scaled(5))
    with pytest.raises(AlreadyHeld):
        barrier.enter(timeout=scaled(5))
    barrier.exit(timeout=scaled(5))
    assert tree(zk_client) == {"/db"}


def test_a_member_enters_with_three_requests_and_leaves_with_two_without_listing(
    zk_client_factory: Factory, pool: ThreadPoolExecutor, zk_client: KazooClient
) -> None:
    clients = [zk_client_factory() for _ in range(3)]
    barriers = [DoubleBarrier(c, "/db", 3, identifier=f"p{i}") for i, c in enumerate(clients)]
    counter = RequestCounter(clients[1])  # neither the monitor (p0) nor the arrival completing the count
    futures = [pool.submit(barriers[0].enter, scaled(20))]
    wait_until(lambda: len(participants(zk_client)) == 1, what="p0 queued")
    futures.append(pool.submit(barriers[1].enter, scaled(20)))
    wait_until(lambda: len(counter.calls) == 2, what="p1 waits for ready")
    futures.append(pool.submit(barriers[2].enter, scaled(20)))
    for f in futures:
        settle(f)
    # numbered 1 of 3, it cannot complete the count: no count read; woken by the creation of ready
    assert counter.calls == ["Create2", "Exists", "GetData"]
    counter.reset()
    exits = [pool.submit(b.exit, scaled(20)) for b in barriers]
    for f in exits:
        settle(f)
    assert counter.calls == ["Delete", "Exists"]  # woken by the monitor's mark
    assert tree(zk_client) == {"/db"}


def test_twenty_members_leave_together_through_one_monitor(
    zk_client_factory: Factory, pool: ThreadPoolExecutor, zk_client: KazooClient
) -> None:
    clients = [zk_client_factory() for _ in range(20)]
    counters = [RequestCounter(c) for c in clients]
    barriers = [DoubleBarrier(c, "/db", 20, identifier=f"p{i}") for i, c in enumerate(clients)]
    for f in enter_all(pool, barriers):
        settle(f)
    listings = sum(c.calls.count("GetChildren") for c in counters)
    assert listings <= 5  # the last arrival lists; one racing it may too (listing on every arrival: 20)
    for c in counters:
        c.reset()
    for f in [pool.submit(b.exit, scaled(20)) for b in barriers]:
        settle(f)
    assert sum(c.calls.count("GetChildren") for c in counters) == 1  # the monitor, once
    assert tree(zk_client) == {"/db"}
