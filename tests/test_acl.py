"""ACLs: a client without the credential can neither release nor change another's state.

Every test runs twice: with digest users on the plaintext ensemble, and with x509 identities
(client certificates) on the TLS ensemble."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pytest
from kazoo.client import KazooClient
from kazoo.security import ACL, make_acl, make_digest_acl

from zksync import AccessDenied, Barrier, DoubleBarrier, RWMutex, acl
from zksync.testing.timing import scaled

Factory = Callable[..., KazooClient]


@dataclass
class Identities:
    scheme: str
    make_alice: Callable[[], KazooClient]  # another client of alice's
    mallory: KazooClient  # authenticated as somebody else (x509), or not at all (digest)
    owner_only: ACL  # all permissions to alice

    @property
    def guard(self) -> list[ACL]:
        """Everything to alice, reading to the world."""
        return [self.owner_only, make_acl("world", "anyone", read=True)]


@pytest.fixture(params=["digest", "x509"])
def ids(request: pytest.FixtureRequest) -> Identities:
    if request.param == "digest":
        plain: Factory = request.getfixturevalue("zk_client_factory")
        return Identities(
            "digest",
            lambda: plain(auth_data=[acl.digest_credentials("alice", "secret")]),
            plain(),
            make_digest_acl("alice", "secret", all=True),
        )
    tls: Factory = request.getfixturevalue("zk_tls_client_factory")
    return Identities("x509", lambda: tls("alice"), tls("mallory"), acl.x509("CN=alice"))


@pytest.fixture
def alice(ids: Identities) -> KazooClient:
    return ids.make_alice()


@pytest.fixture
def mallory(ids: Identities) -> KazooClient:
    return ids.mallory


@pytest.fixture
def guard(ids: Identities) -> list[ACL]:
    return ids.guard


def snapshot(client: KazooClient, path: str) -> list[str]:
    return sorted(client.get_children(path))


def test_acl_is_applied_to_the_recipe_nodes(alice: KazooClient, guard: list[ACL], ids: Identities) -> None:
    mutex = RWMutex(alice, "/guarded/lock", acl=guard)
    lease = mutex.lock(timeout=scaled(5))
    for path in ("/guarded", "/guarded/lock", lease.node):
        acls, _ = alice.get_acls(path)
        assert {a.id.scheme for a in acls} == {ids.scheme, "world"}, path
    mutex.unlock()


def test_without_the_credential_a_lock_can_be_neither_broken_nor_taken(
    alice: KazooClient, mallory: KazooClient, guard: list[ACL]
) -> None:
    owner = RWMutex(alice, "/lock", acl=guard)
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
    alice: KazooClient, mallory: KazooClient, guard: list[ACL], ids: Identities
) -> None:
    owner = Barrier(alice, "/gates/b", acl=guard)
    owner.set()  # creates /gates with the ACL too: the parent decides who may set and unset
    assert {a.id.scheme for a in alice.get_acls("/gates")[0]} == {ids.scheme, "world"}
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
    alice: KazooClient, mallory: KazooClient, guard: list[ACL]
) -> None:
    Barrier(alice, "/b", acl=guard).set()  # the parent (the test's root) is open to all
    assert Barrier(mallory, "/b").unset() is True  # deleting a node is the parent's permission
    assert not Barrier(alice, "/b").is_set()


def test_without_the_credential_one_cannot_enter_or_remove_a_participant(
    alice: KazooClient, mallory: KazooClient, guard: list[ACL]
) -> None:
    owner = DoubleBarrier(alice, "/db", 1, identifier="alice", acl=guard)
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
    alice: KazooClient, guard: list[ACL], ids: Identities
) -> None:
    stuck = DoubleBarrier(ids.make_alice(), "/db", 1, identifier="stuck", acl=guard)
    stuck.enter(timeout=scaled(5))
    operator = DoubleBarrier(alice, "/db", 1)
    assert operator.present() == ["stuck"]
    assert operator.evict("stuck", timeout=scaled(5)) == 1
    assert operator.present() == []


def test_without_the_credential_one_can_neither_join_nor_write_a_collection_but_may_follow_it(
    alice: KazooClient, mallory: KazooClient, guard: list[ACL], ids: Identities
) -> None:
    from zksync import Collection

    owner = Collection(alice, "/fortunes", acl=guard, member="alice").open(timeout=scaled(10))
    owner.put("fortune-alice-1", "luck")
    for path in ("/fortunes", "/fortunes/rows", "/fortunes/members", "/fortunes/members/alice"):
        assert {a.id.scheme for a in alice.get_acls(path)[0]} == {ids.scheme, "world"}, path
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
    private = [ids.owner_only]
    Collection(alice, "/private", acl=private, member="alice").open(timeout=scaled(10)).close()
    with pytest.raises(AccessDenied):
        Collection(mallory, "/private", join=False).open(timeout=scaled(10))


def test_without_the_credential_a_locked_write_is_refused_and_lands_nowhere(
    alice: KazooClient, mallory: KazooClient, guard: list[ACL]
) -> None:
    from zksync import locked

    locked.create(alice, "/lk", "/data", b"v1", acl=guard, lock_acl=guard, timeout=scaled(5))
    with pytest.raises(AccessDenied):  # the lock's ACL refuses mallory's lock node
        locked.set(mallory, "/lk", "/data", b"evil", timeout=scaled(5))
    with pytest.raises(AccessDenied):
        locked.delete(mallory, "/lk", "/data", timeout=scaled(5))
    with pytest.raises(AccessDenied):  # a locked read takes a read lock, which is a create too
        locked.get(mallory, "/lk", "/data", timeout=scaled(5))
    assert mallory.get("/data")[0] == b"v1"  # the node's own ACL lets the world read it
    assert alice.get_children("/lk") == []
    assert locked.get(alice, "/lk", "/data", timeout=scaled(5))[0] == b"v1"


def test_without_the_credential_a_watcher_under_a_guarded_lock_stops_with_access_denied(
    alice: KazooClient, mallory: KazooClient, guard: list[ACL]
) -> None:
    from zksync import Watcher

    with Watcher(alice, "/watched", "/watched-lock", "data", acl=guard) as owner:
        owner.wait_watching(timeout=scaled(10))
        intruder = Watcher(mallory, "/watched", "/watched-lock", "data")
        try:
            with pytest.raises(AccessDenied):
                intruder.wait_watching(timeout=scaled(10))
            assert isinstance(intruder.error, AccessDenied)
        finally:
            intruder.close()
    assert alice.get_children("/watched-lock") == []
