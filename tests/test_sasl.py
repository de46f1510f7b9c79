"""SASL identities (DIGEST-MD5, on the TLS ensemble): connect(sasl_options=...), ACLs naming a
SASL user that hold against another one, and a refused authentication that is an AccessDenied
at once."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable

import pytest
from kazoo.client import KazooClient

import zksync
from zksync import AccessDenied, DoubleBarrier, RWMutex, acl
from zksync.testing import Ensemble
from zksync.testing.plugin import SASL_USERS
from zksync.testing.timing import scaled

Factory = Callable[..., KazooClient]
try:
    import puresasl  # noqa: F401  # kazoo's SASL needs it
except ImportError:
    if os.environ.get("CI", "").lower() == "true":
        raise
    pytest.skip("pure-sasl is not installed (bash .ci/setup installs the test extra)", allow_module_level=True)


def sasl(name: str) -> dict[str, str]:
    return acl.sasl_credentials(name, SASL_USERS[name])


def test_a_sasl_acl_holds_against_another_sasl_user(zk_tls_client_factory: Factory) -> None:
    # both hold the same certificate: only their SASL identities differ
    alice = zk_tls_client_factory("client", sasl_options=sasl("alice"))
    bob = zk_tls_client_factory("client", sasl_options=sasl("bob"))
    guarded = [acl.sasl("alice"), acl.sasl("bob", "r")]
    owner = RWMutex(alice, "/lock", acl=guarded)
    lease = owner.lock(timeout=scaled(5))
    assert alice.get_acls(lease.node)[0] == guarded
    before = sorted(bob.get_children("/lock"))  # bob may read
    with pytest.raises(AccessDenied):
        RWMutex(bob, "/lock").break_lock(timeout=scaled(5))
    with pytest.raises(AccessDenied):
        RWMutex(bob, "/lock").lock(timeout=scaled(5))
    assert sorted(alice.get_children("/lock")) == before and lease.valid
    owner.unlock()


def test_another_sasl_user_can_neither_enter_nor_evict(zk_tls_client_factory: Factory) -> None:
    alice = zk_tls_client_factory("client", sasl_options=sasl("alice"))
    bob = zk_tls_client_factory("client", sasl_options=sasl("bob"))
    inside = DoubleBarrier(alice, "/db", 1, identifier="alice", acl=[acl.sasl("alice"), acl.world("r")])
    inside.enter(timeout=scaled(5))
    with pytest.raises(AccessDenied):
        DoubleBarrier(bob, "/db", 1, identifier="bob").enter(timeout=scaled(5))
    with pytest.raises(AccessDenied):
        DoubleBarrier(bob, "/db", 1).evict("alice", timeout=scaled(5))
    assert DoubleBarrier(bob, "/db", 1).present() == ["alice"]
    inside.exit(timeout=scaled(5))


def test_a_wrong_sasl_password_is_access_denied_at_once_and_never_shown(
    zk_tls_ensemble: Ensemble, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    files = zk_tls_ensemble.client_credentials("client").kazoo_options()
    wrong = acl.sasl_credentials("alice", "wrong-pw")
    words = r"refused this client's SASL authentication \(DIGEST-MD5 as 'alice'\)"
    with pytest.raises(AccessDenied, match=words) as raised:
        zksync.connect(zk_tls_ensemble.hosts, timeout=60, sasl_options=wrong, **files)
    assert "time-out" not in str(raised.value) and "wrong-pw" not in str(raised.value)
    assert "wrong-pw" not in caplog.text
