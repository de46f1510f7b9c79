"""zksync.acl's helpers, and no secret in kazoo's debug log."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from kazoo.client import KazooClient
from kazoo.security import make_acl, make_digest_acl

from zksync import AccessDenied, InvalidArgument, RWMutex, acl
from zksync.testing.timing import scaled

Factory = Callable[..., KazooClient]
PASSWORD = "s3cr3t-Pa55"


def test_the_helpers_make_the_entries_kazoo_makes() -> None:
    assert acl.digest("alice", PASSWORD, "rwcda") == make_digest_acl("alice", PASSWORD, all=True)
    assert acl.digest("alice", PASSWORD, "r") == make_digest_acl("alice", PASSWORD, read=True)
    assert acl.world("r") == make_acl("world", "anyone", read=True)
    assert acl.x509("CN=alice", "rw") == make_acl("x509", "CN=alice", read=True, write=True)
    assert acl.sasl("alice", "cd") == make_acl("sasl", "alice", create=True, delete=True)
    assert acl.ip("10.0.0.0/8", "a") == make_acl("ip", "10.0.0.0/8", admin=True)
    assert acl.creator() == make_acl("auth", "", all=True)
    assert acl.digest_credentials("alice", PASSWORD) == ("digest", f"alice:{PASSWORD}")
    sasl = {"mechanism": "DIGEST-MD5", "username": "alice", "password": PASSWORD}
    assert acl.sasl_credentials("alice", PASSWORD) == sasl


@pytest.mark.parametrize("perms", ["", "rx", "rr", "READ", 7, None])
def test_a_bad_permission_string_is_refused(perms: object) -> None:
    with pytest.raises(InvalidArgument, match="permissions"):
        acl.world(perms)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("make", "words"),
    [
        (lambda: acl.digest("al:ice", PASSWORD), "cannot hold ':'"),
        (lambda: acl.digest("", PASSWORD), "user name"),
        (lambda: acl.digest("alice", ""), "password"),
        (lambda: acl.digest_credentials("alice", None), "password"),  # type: ignore[arg-type]
        (lambda: acl.x509(" CN=alice"), "x509 subject"),
        (lambda: acl.sasl(""), "SASL principal"),
        (lambda: acl.sasl_credentials("alice", PASSWORD, "GSSAPI"), "mechanism"),
        (lambda: acl.sasl_credentials("alice", ""), "password"),
    ],
)
def test_bad_identities_are_refused_without_echoing_a_password(make: Callable[[], object], words: str) -> None:
    with pytest.raises(InvalidArgument, match=words) as raised:
        make()
    assert PASSWORD not in str(raised.value)


def test_a_digest_acl_holds_against_another_user(zk_client_factory: Factory) -> None:
    alice = zk_client_factory(auth_data=[acl.digest_credentials("alice", PASSWORD)])
    bob = zk_client_factory(auth_data=[acl.digest_credentials("bob", "other")])
    guarded = [acl.digest("alice", PASSWORD), acl.digest("bob", "other", "r")]
    with RWMutex(alice, "/lock", acl=guarded).write(timeout=scaled(5)) as lease:
        with pytest.raises(AccessDenied):
            RWMutex(bob, "/lock").break_lock(timeout=scaled(5))
        assert bob.get_children("/lock") == [lease.node.rsplit("/", 1)[1]]


def test_a_creator_acl_becomes_the_creating_identity(zk_client_factory: Factory) -> None:
    alice = zk_client_factory(auth_data=[acl.digest_credentials("alice", PASSWORD)])
    with RWMutex(alice, "/mine", acl=[acl.creator(), acl.world("r")]).write(timeout=scaled(5)) as lease:
        entries, _ = alice.get_acls(lease.node)
    assert acl.digest("alice", PASSWORD) in entries


def test_no_password_reaches_the_log(zk_client_factory: Factory, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(1)  # everything kazoo says, down to its BLATHER level
    client = zk_client_factory(auth_data=[acl.digest_credentials("alice", PASSWORD)])
    client.add_auth("digest", f"alice:{PASSWORD}")  # the Auth request after connecting, too
    client.create("/x", acl=[acl.digest("alice", PASSWORD)])
    session_password = client.client_id[1]
    lines = [record.getMessage() for record in caplog.records]
    assert any("Auth(" in line for line in lines)  # kazoo did log its requests...
    assert any("Connect(" in line for line in lines)
    text = "\n".join(lines)
    assert PASSWORD not in text  # ...but not the digest password
    assert repr(session_password)[2:-1] not in text  # nor the session's password, raw
    assert session_password.hex() not in text  # or in hex
