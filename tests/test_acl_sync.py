"""ACLs on the sync service: Sync(acl=...) guards every node of its run; another identity can
neither join, publish, abort nor clean up (AccessDenied, nothing changed), and reads follow the
read permission."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from kazoo.client import KazooClient

from zksync import AccessDenied, Sync, acl
from zksync.testing.timing import scaled

Factory = Callable[..., KazooClient]
GUARD = [acl.digest("alice", "alice-pw"), acl.digest("bob", "bob-pw", "r")]


def tree(client: KazooClient, path: str) -> dict[str, bytes]:
    out = {path: client.get(path)[0]}
    for name in client.get_children(path):
        out.update(tree(client, f"{path}/{name}"))
    return out


@pytest.fixture
def owner(zk_client_factory: Factory) -> Sync:
    client = zk_client_factory(auth_data=[acl.digest_credentials("alice", "alice-pw")])
    sync = Sync(client, "guarded-run", "alice", acl=GUARD)
    sync.signal_entry("ready", timeout=scaled(10))
    sync.publish("addresses", {"who": "alice"}, timeout=scaled(10))
    return sync


def test_every_node_of_the_run_carries_the_acl(owner: Sync) -> None:
    paths = tree(owner.client, owner.root)
    assert len(paths) > 5
    for path in paths:
        entries, _ = owner.client.get_acls(path)
        assert entries == GUARD, path
    parent = owner.root.rsplit("/", 1)[0]  # the runs' common parent stays open to other runs
    assert owner.client.get_acls(parent)[0] != GUARD


def test_another_identity_can_read_but_not_join_publish_abort_or_clean_up(
    owner: Sync, zk_client_factory: Factory
) -> None:
    before = tree(owner.client, owner.root)
    bob = zk_client_factory(auth_data=[acl.digest_credentials("bob", "bob-pw")])
    intruder = Sync(bob, "guarded-run", "bob")
    assert intruder.counts() == {"ready": 1}  # bob may read
    assert next(iter(intruder.subscribe("addresses", timeout=scaled(10)))) == {"who": "alice"}
    for attempt in (
        lambda: intruder.join(timeout=scaled(5)),
        lambda: intruder.publish("addresses", {"who": "bob"}, timeout=scaled(5)),
        lambda: intruder.abort("ready", "bob says no"),
    ):
        with pytest.raises(AccessDenied):
            attempt()
    assert tree(owner.client, owner.root) == before
    owner.leave()  # cleaning up waits for an empty run; then the ACL refuses bob's deletes
    before = tree(owner.client, owner.root)
    with pytest.raises(AccessDenied):
        intruder.cleanup(timeout=scaled(5))
    assert tree(owner.client, owner.root) == before


def test_without_read_permission_the_run_cannot_be_read(owner: Sync, zk_client_factory: Factory) -> None:
    carol = zk_client_factory(auth_data=[acl.digest_credentials("carol", "carol-pw")])
    with pytest.raises(AccessDenied):
        Sync(carol, "guarded-run", "carol").counts()


def test_the_owner_cleans_up_its_guarded_run(owner: Sync) -> None:
    owner.cleanup(timeout=scaled(10))
    assert owner.client.exists(owner.root) is None
