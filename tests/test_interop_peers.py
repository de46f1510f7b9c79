"""zksync and other libraries' recipes on one path, the others running as real programs.

The peers (tests/peers/) are Apache Curator's ``InterProcessReadWriteLock`` and
``InterProcessMutex``, go-zookeeper's ``zk.Lock``, the Go original zksync's ``RWMutex`` and
``Barrier``, and kazoo's ``Lock``, ``WriteLock`` and ``ReadLock``, each in its own process with
its own session on the real ensemble.  Each lock peer is paired with the naming family of
``zksync.RWMutex`` that makes the peer's node names, and every pair is put through the same
scenarios: either side holds and the other waits, readers share and writers wait for them,
arrival order holds across the two, and a holder that dies hands the lock on.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import pytest
from kazoo.client import KazooClient

import zksync
from zksync.testing.timing import scaled, sleep

from .conftest import close_session_of, settle, wait_until
from .peers import Peer

Factory = Callable[..., KazooClient]
StartPeer = Callable[..., Peer]

SEQ = r"\d{10}"
HEX = "[0-9a-f]{32}"
UUID = "[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
KILLED_SESSION = 4.0  # seconds (scaled): the session timeout of a holder that is killed

# node names of each peer recipe: (writer, reader)
PEER_NAMES: dict[str, tuple[str, str | None]] = {
    "curator-rw": (rf"_c_{UUID}-__WRIT__{SEQ}", rf"_c_{UUID}-__READ__{SEQ}"),
    "curator-mutex": (rf"_c_{UUID}-lock-{SEQ}", None),
    "zk-lock": (rf"_c_{HEX}-lock-{SEQ}", None),
    "go-rwmutex": (rf"_c_{HEX}-write-{SEQ}", rf"_c_{HEX}-read-{SEQ}"),
    "kazoo-lock": (rf"{HEX}__lock__{SEQ}", None),
    "kazoo-rw": (rf"{HEX}__lock__{SEQ}", rf"{HEX}__rlock__{SEQ}"),
}
# node names of each naming family of zksync.RWMutex: (writer, reader)
FAMILY_NAMES: dict[str, tuple[str, str | None]] = {
    "zksync": PEER_NAMES["go-rwmutex"],
    "kazoo": PEER_NAMES["kazoo-rw"],
    "curator": PEER_NAMES["curator-rw"],
    "mutex": (rf"_c_(?:{HEX}|{UUID})-lock-{SEQ}", None),
}


@dataclass(frozen=True)
class Pair:
    recipe: str  # the peer's
    naming: str  # zksync's
    peer_reads_ours: bool = True  # the peer understands zksync's node names when it waits

    @property
    def shared(self) -> bool:
        """Both sides have read locks."""
        return PEER_NAMES[self.recipe][1] is not None and FAMILY_NAMES[self.naming][1] is not None

    def __str__(self) -> str:
        return f"{self.recipe}-with-{self.naming}"


PAIRS = [
    Pair("curator-rw", "curator"),
    Pair("curator-mutex", "mutex"),
    Pair("zk-lock", "mutex"),
    # zk.Lock (v1.0.3 on) reads a sequence only after "lock-" or "__": it errs as soon as it
    # lists the queue with one of the Go original's names in it, so only zksync waits here
    # (see the test at the end)
    Pair("zk-lock", "zksync", peer_reads_ours=False),
    Pair("go-rwmutex", "zksync"),
    Pair("kazoo-lock", "kazoo"),
    Pair("kazoo-rw", "kazoo"),
]
BOTH_WAYS = [pair for pair in PAIRS if pair.peer_reads_ours]
SHARED = [pair for pair in PAIRS if pair.shared]
LOCK_RECIPES = list(PEER_NAMES)
READ_RECIPES = [recipe for recipe, (_, reader) in PEER_NAMES.items() if reader is not None]


def pairs(chosen: list[Pair]) -> pytest.MarkDecorator:
    return pytest.mark.parametrize("pair", chosen, ids=str)


def name_of(node: str) -> str:
    return node.rsplit("/", 1)[-1]


def assert_named(name: str, pattern: str | None) -> None:
    assert pattern is not None and re.fullmatch(pattern, name), f"{name!r} is not named like {pattern!r}"


def mutex(factory: Factory, pair: Pair, path: str = "/shared", **client_options: float) -> zksync.RWMutex:
    return zksync.RWMutex(factory(**client_options), path, naming=pair.naming)


# ---- the peers among themselves ----------------------------------------------------------


@pytest.mark.parametrize("recipe", LOCK_RECIPES)
def test_two_peers_of_one_recipe_exclude_each_other(peer: StartPeer, recipe: str) -> None:
    first, second = peer(recipe), peer(recipe)
    assert_named(first.ok("lock"), PEER_NAMES[recipe][0])
    second.send("lock")
    second.assert_waiting()
    assert first.ok("unlock") == ""
    assert_named(second.expect_ok(second.reply()), PEER_NAMES[recipe][0])
    assert second.ok("unlock") == ""
    assert second.children() == []


@pytest.mark.parametrize("recipe", READ_RECIPES)
def test_peer_readers_share_and_a_peer_writer_waits_for_both(peer: StartPeer, recipe: str) -> None:
    readers = [peer(recipe), peer(recipe)]
    writer = peer(recipe)
    for reader in readers:
        assert_named(reader.ok("rlock"), PEER_NAMES[recipe][1])
    writer.send("lock")
    writer.assert_waiting()
    readers[0].ok("unlock")
    writer.assert_waiting()
    readers[1].ok("unlock")
    assert_named(writer.expect_ok(writer.reply()), PEER_NAMES[recipe][0])


def test_a_go_original_barrier_holds_peer_waiters_until_it_is_unset(peer: StartPeer) -> None:
    setter, waiter = peer("go-barrier", "/gate"), peer("go-barrier", "/gate")
    assert waiter.ok("wait") == ""  # not set: returns at once
    assert setter.ok("set") == ""
    assert setter.request("set").startswith("err ")  # the node exists
    waiter.send("wait")
    waiter.assert_waiting()
    assert setter.ok("unset") == ""
    assert waiter.expect_ok(waiter.reply()) == ""
    assert setter.request("unset").startswith("err ")  # no node


# ---- a peer and zksync on one lock ---------------------------------------------------------


@pairs(PAIRS)
def test_a_peer_holder_keeps_zksync_out_until_it_unlocks(
    peer: StartPeer, zk_client_factory: Factory, pool: ThreadPoolExecutor, pair: Pair
) -> None:
    holder = peer(pair.recipe)
    holder.ok("lock")
    waiter = mutex(zk_client_factory, pair)
    if pair.shared:
        with pytest.raises(zksync.Timeout):
            waiter.rlock(timeout=scaled(0.5))  # a reader waits for the peer's writer too
    waiting = pool.submit(waiter.lock, scaled(10))
    sleep(0.5)
    assert not waiting.done()
    holder.ok("unlock")
    lease = settle(waiting)
    assert_named(name_of(lease.node), FAMILY_NAMES[pair.naming][0])
    waiter.unlock()


@pairs(BOTH_WAYS)
def test_a_zksync_holder_keeps_the_peer_out_until_it_unlocks(
    peer: StartPeer, zk_client_factory: Factory, pair: Pair
) -> None:
    holder = mutex(zk_client_factory, pair)
    lease = holder.lock(timeout=scaled(5))
    assert_named(name_of(lease.node), FAMILY_NAMES[pair.naming][0])
    waiter = peer(pair.recipe)
    waiter.send("lock")
    waiter.assert_waiting(1)
    holder.unlock()
    assert_named(waiter.expect_ok(waiter.reply()), PEER_NAMES[pair.recipe][0])
    waiter.ok("unlock")


@pairs(SHARED)
@pytest.mark.parametrize("writer_side", ["peer", "zksync"])
def test_peer_and_zksync_readers_share_and_a_writer_of_either_waits_for_both(
    peer: StartPeer, zk_client_factory: Factory, pool: ThreadPoolExecutor, pair: Pair, writer_side: str
) -> None:
    peer_reader = peer(pair.recipe)
    assert_named(peer_reader.ok("rlock"), PEER_NAMES[pair.recipe][1])
    reader = mutex(zk_client_factory, pair)
    lease = reader.rlock(timeout=scaled(5))  # readers share, across implementations
    assert_named(name_of(lease.node), FAMILY_NAMES[pair.naming][1])
    if writer_side == "peer":
        peer_writer = peer(pair.recipe)
        peer_writer.send("lock")
        peer_writer.assert_waiting()
        peer_reader.ok("unlock")
        peer_writer.assert_waiting()  # zksync's reader still holds
        reader.runlock()
        peer_writer.expect_ok(peer_writer.reply())
    else:
        writer = mutex(zk_client_factory, pair)
        waiting = pool.submit(writer.lock, scaled(10))
        sleep(0.5)
        reader.runlock()
        sleep(0.5)
        assert not waiting.done()  # the peer's reader still holds
        peer_reader.ok("unlock")
        settle(waiting)
        writer.unlock()


@pairs(SHARED)
@pytest.mark.parametrize("holder_side", ["peer", "zksync"])
def test_a_writer_of_one_keeps_readers_of_the_other_out(
    peer: StartPeer, zk_client_factory: Factory, pool: ThreadPoolExecutor, pair: Pair, holder_side: str
) -> None:
    if holder_side == "peer":
        peer_writer = peer(pair.recipe)
        peer_writer.ok("lock")
        reader = mutex(zk_client_factory, pair)
        waiting = pool.submit(reader.rlock, scaled(10))
        sleep(0.5)
        assert not waiting.done()
        peer_writer.ok("unlock")
        settle(waiting)
        reader.runlock()
    else:
        writer = mutex(zk_client_factory, pair)
        writer.lock(timeout=scaled(5))
        peer_reader = peer(pair.recipe)
        peer_reader.send("rlock")
        peer_reader.assert_waiting(1)
        writer.unlock()
        assert_named(peer_reader.expect_ok(peer_reader.reply()), PEER_NAMES[pair.recipe][1])


@pairs(BOTH_WAYS)
def test_a_zksync_waiter_queued_between_two_peers_gets_in_before_the_later_peer(
    peer: StartPeer, zk_client_factory: Factory, pool: ThreadPoolExecutor, pair: Pair
) -> None:
    holder, late = peer(pair.recipe), peer(pair.recipe)
    holder.ok("lock")
    admin = zk_client_factory()
    queued = mutex(zk_client_factory, pair)
    waiting = pool.submit(queued.lock, scaled(10))
    wait_until(lambda: len(admin.get_children("/shared")) == 2, what="zksync's node queued")
    late.send("lock")  # behind zksync's node
    late.assert_waiting()
    holder.ok("unlock")
    settle(waiting)
    late.assert_waiting()  # arrival order holds across the two implementations
    queued.unlock()
    late.expect_ok(late.reply())


@pairs(BOTH_WAYS)
def test_a_peer_waiter_queued_between_two_zksync_clients_gets_in_before_the_later_one(
    peer: StartPeer, zk_client_factory: Factory, pool: ThreadPoolExecutor, pair: Pair
) -> None:
    holder = mutex(zk_client_factory, pair)
    holder.lock(timeout=scaled(5))
    admin = zk_client_factory()
    queued = peer(pair.recipe)
    queued.send("lock")
    queued.assert_waiting()
    wait_until(lambda: len(admin.get_children("/shared")) == 2, what="the peer's node queued")
    late = mutex(zk_client_factory, pair)
    waiting = pool.submit(late.lock, scaled(10))
    sleep(0.5)
    holder.unlock()
    queued.expect_ok(queued.reply())
    sleep(0.5)
    assert not waiting.done()  # arrival order holds across the two implementations
    queued.ok("unlock")
    settle(waiting)
    late.unlock()


@pairs(PAIRS)
def test_killing_the_peer_holder_hands_the_lock_to_zksync_once_its_session_expires(
    peer: StartPeer, zk_client_factory: Factory, pool: ThreadPoolExecutor, pair: Pair
) -> None:
    holder = peer(pair.recipe, session_timeout=scaled(KILLED_SESSION))
    holder.ok("lock")
    waiter = mutex(zk_client_factory, pair)
    waiting = pool.submit(waiter.lock, scaled(10 + KILLED_SESSION))
    sleep(0.5)
    holder.kill()  # SIGKILL: nothing released, the session ends only when it expires
    assert not waiting.done()
    settle(waiting)
    waiter.unlock()


@pairs(BOTH_WAYS)
def test_expiring_the_zksync_holders_session_hands_the_lock_to_the_peer(
    peer: StartPeer, zk_client_factory: Factory, zk_hosts: str, pair: Pair
) -> None:
    client = zk_client_factory()
    holder = zksync.RWMutex(client, "/shared", naming=pair.naming)
    lease = holder.lock(timeout=scaled(5))
    waiter = peer(pair.recipe)
    waiter.send("lock")
    waiter.assert_waiting()
    close_session_of(client, zk_hosts)  # as an expiry would: the holder's ephemeral node goes
    assert waiter.expect_ok(waiter.reply(15)) != name_of(lease.node)
    assert lease.wait_lost(timeout=scaled(10))


# ---- what the peers do with names they cannot read -----------------------------------------


def test_zk_lock_reports_an_error_when_it_has_to_read_the_go_originals_names(
    peer: StartPeer, zk_client_factory: Factory
) -> None:
    holder = zksync.RWMutex(zk_client_factory(), "/shared", naming="zksync")
    holder.lock(timeout=scaled(5))
    waiter = peer("zk-lock")
    answer = waiter.request("lock")
    assert answer.startswith("err ") and "invalid syntax" in answer, answer
    # and zk.Lock leaves its own node behind: it stays in the queue until that session ends
    assert [name for name in waiter.children() if "-lock-" in name] != []
    holder.unlock()


def test_the_go_originals_reader_passes_over_a_kazoo_holder_and_its_writer_refuses_it(peer: StartPeer) -> None:
    kazoo_holder = peer("kazoo-lock")
    kazoo_holder.ok("lock")
    go_reader, go_writer = peer("go-rwmutex"), peer("go-rwmutex")
    # a reader counts only names with "write-" in them as writers: the kazoo holder is not one
    assert_named(go_reader.ok("rlock"), PEER_NAMES["go-rwmutex"][1])
    go_reader.ok("unlock")
    assert go_writer.request("lock") == "err not a valid lock"  # ErrMalformedLock
    # and the failed attempt leaves its node behind, until that session ends
    assert len([name for name in kazoo_holder.children() if "-write-" in name]) == 1
    go_writer.close()
    assert len(kazoo_holder.children()) == 1


# ---- the Go original's Barrier and zksync.Barrier ---------------------------------------


def test_a_barrier_the_peer_sets_is_set_for_zksync_and_the_peers_unset_releases_zksync_waiters(
    peer: StartPeer, zk_client_factory: Factory, pool: ThreadPoolExecutor
) -> None:
    setter = peer("go-barrier", "/gate")
    setter.ok("set")
    barrier = zksync.Barrier(zk_client_factory(), "/gate")
    assert barrier.is_set()
    assert barrier.set() is False  # already set, by the peer
    with pytest.raises(zksync.Timeout):
        barrier.wait(timeout=scaled(0.5))
    waiting = pool.submit(barrier.wait, scaled(10))
    sleep(0.5)
    assert not waiting.done()
    setter.ok("unset")
    settle(waiting)
    assert not barrier.is_set()


def test_a_barrier_zksync_sets_is_set_for_the_peer_and_zksyncs_unset_releases_peer_waiters(
    peer: StartPeer, zk_client_factory: Factory
) -> None:
    barrier = zksync.Barrier(zk_client_factory(), "/gate")
    assert barrier.set() is True
    other, waiter = peer("go-barrier", "/gate"), peer("go-barrier", "/gate")
    assert other.request("set").startswith("err ")  # the node exists: set already
    waiter.send("wait")
    waiter.assert_waiting(1)
    assert barrier.unset() is True
    assert waiter.expect_ok(waiter.reply()) == ""
    assert other.ok("set") == ""  # and the peer can set it again
    assert barrier.is_set()
