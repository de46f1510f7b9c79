"""zksync.aio as asyncio code: cancellation, loss as an awaitable, many waiters without threads.

The blocking suite's scenarios also run on this front-end (tests/frontends.py); here are the
cases only a coroutine has.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

import pytest
from kazoo.client import KazooClient

import zksync
import zksync.aio
from zksync.testing.toxi import ProxiedEnsemble

from .conftest import close_session_of, tree, wait_until

Factory = Callable[..., KazooClient]
T = TypeVar("T")


def run(coroutine: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coroutine)


async def until(predicate: Callable[[], Any], timeout: float = 10.0, what: str = "condition") -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError(f"{what} not reached within {timeout}s")
        await asyncio.sleep(0.02)


def test_cancelling_a_waiting_lock_removes_its_node_and_the_next_writer_gets_in(
    zk_client_factory: Factory, zk_client: KazooClient
) -> None:
    async def scenario() -> None:
        holder = zksync.aio.RWMutex(zk_client_factory(), "/lock")
        await holder.lock(timeout=5)
        waiter = zksync.aio.RWMutex(zk_client_factory(), "/lock")
        waiting = asyncio.create_task(waiter.lock(timeout=30))
        await until(lambda: len(zk_client.get_children("/lock")) == 2, what="waiter queued")
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiting
        assert len(zk_client.get_children("/lock")) == 1  # removed before the cancellation returned
        assert waiter.held is None
        other = zksync.aio.RWMutex(zk_client_factory(), "/lock")
        acquiring = asyncio.create_task(other.lock(timeout=10))
        await until(lambda: len(zk_client.get_children("/lock")) == 2, what="other queued")
        await holder.unlock()
        lease = await acquiring
        assert lease.valid
        await other.unlock()
        # the cancelled object is usable again
        async with waiter.write(timeout=5) as again:
            assert again.fencing_token > lease.fencing_token

    run(scenario())
    assert tree(zk_client) == {"/lock"}


def test_cancelling_a_double_barrier_entry_removes_the_member(
    zk_client_factory: Factory, zk_client: KazooClient
) -> None:
    async def scenario() -> None:
        first = zksync.aio.DoubleBarrier(zk_client_factory(), "/db", 2, identifier="first")
        entering = asyncio.create_task(first.enter(timeout=30))
        await until(lambda: zk_client.exists("/db") and zk_client.get_children("/db"), what="first arrived")
        entering.cancel()
        with pytest.raises(asyncio.CancelledError):
            await entering
        assert zk_client.get_children("/db") == []
        assert not first.entered
        # a new round with two members still works, the cancelled object among them
        second = zksync.aio.DoubleBarrier(zk_client_factory(), "/db", 2, identifier="second")
        await asyncio.gather(first.enter(timeout=10), second.enter(timeout=10))
        await asyncio.gather(first.exit(timeout=10), second.exit(timeout=10))

    run(scenario())
    assert tree(zk_client) == {"/db"}


def test_cancelling_a_barrier_wait_returns_at_once_and_leaves_nothing(zk_client: KazooClient) -> None:
    async def scenario() -> None:
        barrier = zksync.aio.Barrier(zk_client, "/b")
        assert await barrier.set()
        waiting = asyncio.create_task(barrier.wait(timeout=30))
        await asyncio.sleep(0.3)
        assert not waiting.done()
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(waiting, 2)
        assert await barrier.unset()
        await barrier.wait(timeout=5)

    run(scenario())
    assert tree(zk_client) == set()  # unset removed the barrier node itself


def test_a_lost_lease_is_awaitable_and_leaving_the_block_raises_lock_lost(
    zk_client_factory: Factory, zk_hosts: str, zk_chroot: str
) -> None:
    client = zk_client_factory()

    async def scenario() -> None:
        mutex = zksync.aio.RWMutex(client, "/lock")
        with pytest.raises(zksync.LockLost):
            async with mutex.write(timeout=5) as lease:
                assert not await lease.wait_lost(0.1)
                watcher = asyncio.create_task(lease.wait_lost(15))
                await asyncio.to_thread(close_session_of, client, f"{zk_hosts}{zk_chroot}")
                assert await watcher
                with pytest.raises(zksync.LockLost):
                    lease.check()
        assert mutex.held is None

    run(scenario())


def test_a_thousand_coroutines_wait_on_one_lock_without_a_thread_each(
    zk_client_factory: Factory, zk_client: KazooClient
) -> None:
    waiters = 1000
    client = zk_client_factory()

    async def scenario() -> tuple[int, int, list[int]]:
        holder = zksync.aio.RWMutex(client, "/lock")
        await holder.lock(timeout=5)
        before = threading.active_count()
        order: list[int] = []
        inside = 0
        most_inside = 0

        async def one(i: int) -> None:
            nonlocal inside, most_inside
            mutex = zksync.aio.RWMutex(client, "/lock")
            async with mutex.write(timeout=300) as lease:
                inside += 1
                most_inside = max(most_inside, inside)
                order.append(lease.fencing_token)
                await asyncio.sleep(0)
                inside -= 1

        tasks = [asyncio.create_task(one(i)) for i in range(waiters)]
        await until(
            lambda: zk_client.get_children("/lock") and len(zk_client.get_children("/lock")) == waiters + 1,
            timeout=120,
            what="every waiter queued",
        )
        during = threading.active_count()
        await holder.unlock()
        await asyncio.wait_for(asyncio.gather(*tasks), 300)
        assert most_inside == 1
        return before, during, order

    before, during, order = run(scenario())
    assert during <= before + 2, f"{during - before} threads started for {waiters} waiting coroutines"
    assert len(order) == waiters and order == sorted(order)
    assert zk_client.get_children("/lock") == []


def test_a_waiter_cancelled_while_partitioned_has_its_node_removed_once_the_connection_is_back(
    zk_faults: ProxiedEnsemble, zk_client_factory: Factory, zk_client: KazooClient
) -> None:
    near = zk_client_factory(hosts=zk_faults.hosts_of(1), timeout=8, randomize_hosts=False)
    holder = zksync.RWMutex(zk_client_factory(), "/lock")
    holder.lock(timeout=5)
    states: list[str] = []
    near.add_listener(states.append)

    async def scenario() -> None:
        waiter = zksync.aio.RWMutex(near, "/lock")
        waiting = asyncio.create_task(waiter.lock(timeout=60))
        await until(lambda: len(zk_client.get_children("/lock")) == 2, what="waiter queued")
        zk_faults.partition(1)
        await until(lambda: "SUSPENDED" in states, what="waiter's connection suspended")
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(waiting, 5)  # cancellation does not wait for the connection
        assert len(zk_client.get_children("/lock")) == 2  # not yet: the waiter cannot reach anyone
        zk_faults.heal()

    run(scenario())
    wait_until(lambda: len(zk_client.get_children("/lock")) == 1, 20, "cancelled waiter's node removed")
    assert near.connected  # within the session timeout: the same session, so the node had to be deleted
    holder.unlock()


def test_many_coroutines_wait_on_one_collection_without_a_thread_each_and_a_cancelled_one_leaves_nothing(
    zk_client_factory: Factory,
) -> None:
    async def scenario() -> None:
        writer = await zksync.aio.Collection(zk_client_factory(), "/fortunes", member="writer").open(timeout=10)
        async with zksync.aio.Collection(zk_client_factory(), "/fortunes", member="reader") as reader:
            threads = threading.active_count()
            waiting = [asyncio.create_task(reader.wait_for(f"k{n}", timeout=30)) for n in range(200)]
            cancelled = asyncio.create_task(reader.wait_for("never", timeout=30))
            changes = reader.changes(timeout=10)
            await asyncio.sleep(0.1)
            assert threading.active_count() == threads  # futures, not threads
            cancelled.cancel()
            with pytest.raises(asyncio.CancelledError):
                await cancelled
            async with writer.transaction() as transaction:
                for n in range(200):
                    transaction.insert(f"k{n}", n)
            assert await asyncio.gather(*waiting) == list(range(200))
            assert not reader._follower.wakers  # every waiter, the cancelled one too, is gone
            first = await changes.get()
            assert first is not None and first.new == 0 and first.old is None
            changes.close()  # what it had buffered is still given, then the end
            assert [c.new async for c in changes] == list(range(1, 200))
        await writer.close()

    run(scenario())
