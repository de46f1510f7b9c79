"""ACLs: a client without the credential can neither release nor change another's state."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from kazoo.client import KazooClient
from kazoo.security import make_acl, make_digest_acl

from zksync import AccessDenied, Barrier, DoubleBarrier, RWMutex
from zksync.testing.timing import scaled

Factory = Callable[..., KazooClient]

ALICE = [make_digest_acl("alice", "secret", all=True), make_acl("world", "anyone", read=True)]


@pytest.fixture
def alice(zk_client_factory: Factory) -> KazooClient:
    return zk_client_factory(auth_data=[("digest", "alice:secret")])


@pytest.fixture
def mallory(zk_client_factory: Factory) -> KazooClient:
    return zk_client_factory()


def snapshot(client: KazooClient, path: str) -> list[str]:
    return sorted(client.get_children(path))


def test_acl_is_applied_to_the_recipe_nodes(alice: KazooClient) -> None:
    mutex = RWMutex(alice, "/guarded/lock", acl=ALICE)
    lease = mutex.lock(timeout=scaled(5))
    for path in ("/guarded", "/guarded/lock", lease.node):
        acls, _ = alice.get_acls(path)
        assert {a.id.scheme for a in acls} == {"digest", "world"}, path
    mutex.unlock()


def test_without_the_credential_a_lock_can_be_neither_broken_nor_taken(
    alice: KazooClient, mallory: KazooClient
) -> None:
    owner = RWMutex(alice, "/lock", acl=ALICE)
    lease = owner.lock(timeout=scaled(5))
    before = snapshot(alice, "/lock")
    with pytest.raises(AccessDenied):
        RWMutex(mallory, "/lock").break_lock(timeout=scaled(5))
    with pytest.raises(AccessDenied):
        RWMutex(mallory, "/lock").lock(timeout=scaled(5))
    assert snapshot(alice, "/lock") == before
    assert lease.valid
    owner.unlock()


def test_without_the_credential_a_barrier_can_be_neither_unset_nor_set(
    alice: KazooClient, mallory: KazooClient
) -> None:
    owner = Barrier(alice, "/gates/b", acl=ALICE)
    owner.set()  # creates /gates with the ACL too: the parent decides who may set and unset
    assert {a.id.scheme for a in alice.get_acls("/gates")[0]} == {"digest", "world"}
    with pytest.raises(AccessDenied):
        Barrier(mallory, "/gates/b").unset()
    assert owner.is_set()
    assert Barrier(mallory, "/gates/b").is_set()  # reading is allowed by the ACL
    owner.unset()
    with pytest.raises(AccessDenied):
        Barrier(mallory, "/gates/b").set()
    assert not owner.is_set()
    assert alice.get_children("/gates") == []


def test_a_barrier_under_an_open_parent_can_be_unset_by_anybody_whatever_its_own_acl(
    alice: KazooClient, mallory: KazooClient
) -> None:
    Barrier(alice, "/b", acl=ALICE).set()  # the parent (the test's root) is open to all
    assert Barrier(mallory, "/b").unset() is True  # deleting a node is the parent's permission
    assert not Barrier(alice, "/b").is_set()


def test_without_the_credential_one_cannot_enter_or_remove_a_participant(
    alice: KazooClient, mallory: KazooClient
) -> None:
    owner = DoubleBarrier(alice, "/db", 1, identifier="alice", acl=ALICE)
    owner.enter(timeout=scaled(5))
    before = snapshot(alice, "/db")
    with pytest.raises(AccessDenied):
        DoubleBarrier(mallory, "/db", 1, identifier="mallory").enter(timeout=scaled(5))
    with pytest.raises(AccessDenied):  # exiting on alice's behalf
        DoubleBarrier(mallory, "/db", 1).evict("alice", timeout=scaled(5))
    assert snapshot(alice, "/db") == before
    assert DoubleBarrier(mallory, "/db", 1).present() == ["alice"]
    owner.exit(timeout=scaled(5))


def test_with_the_credential_an_operator_can_evict_a_stuck_participant(
    alice: KazooClient, zk_client_factory: Factory
) -> None:
    stuck = DoubleBarrier(
        zk_client_factory(auth_data=[("digest", "alice:secret")]), "/db", 1, identifier="stuck", acl=ALICE
    )
    stuck.enter(timeout=scaled(5))
    operator = DoubleBarrier(alice, "/db", 1)
    assert operator.present() == ["stuck"]
    assert operator.evict("stuck", timeout=scaled(5)) == 1
    assert operator.present() == []


def test_without_the_credential_one_can_neither_join_nor_write_a_collection_but_may_follow_it(
    alice: KazooClient, mallory: KazooClient
) -> None:
    from zksync import Collection

    owner = Collection(alice, "/fortunes", acl=ALICE, member="alice").open(timeout=scaled(10))
    owner.put("fortune-alice-1", "luck")
    for path in ("/fortunes", "/fortunes/rows", "/fortunes/members", "/fortunes/members/alice"):
        assert {a.id.scheme for a in alice.get_acls(path)[0]} == {"digest", "world"}, path
    before = sorted(alice.get_children("/fortunes/members"))
    with pytest.raises(AccessDenied, match="join=False"):
        Collection(mallory, "/fortunes", member="mallory").open(timeout=scaled(10))  # joining writes
    assert sorted(alice.get_children("/fortunes/members")) == before
    # the ACL lets everybody read: a reader follows the collection without joining it
    reader = Collection(mallory, "/fortunes", member="mallory", join=False).open(timeout=scaled(10))
    assert not reader.joined and reader.get("fortune-alice-1") == "luck"
    owner.put("fortune-alice-2", "more luck")
    assert reader.wait_for("fortune-alice-2", timeout=scaled(10)) == "more luck"
    rows = {name: alice.get_children(f"/fortunes/rows/{name}") for name in alice.get_children("/fortunes/rows")}
    with pytest.raises(AccessDenied):
        reader.put("fortune-mallory-1", "mine")  # and nobody else writes
    with pytest.raises(AccessDenied):
        reader.delete("fortune-alice-1")
    assert {name: alice.get_children(f"/fortunes/rows/{name}") for name in rows} == rows
    assert owner.get("fortune-alice-1") == "luck" and reader.get("fortune-alice-1") == "luck"
    assert reader.members() == ["alice"]
    reader.close()
    owner.close()
    # and a collection nobody else may read cannot be followed at all
    private = [make_digest_acl("alice", "secret", all=True)]
    Collection(alice, "/private", acl=private, member="alice").open(timeout=scaled(10)).close()
    with pytest.raises(AccessDenied):
        Collection(mallory, "/private", join=False).open(timeout=scaled(10))
