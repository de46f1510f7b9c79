"""TLS to the ensemble: the harness's TLS ensemble, connect()'s TLS files, the clear error of
every failed handshake, Toxiproxy in front of TLS ports, and x509 identities in ACLs."""

from __future__ import annotations

import datetime as dt
import logging
import socket
import ssl
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from kazoo.client import KazooClient

import zksync
from zksync import AccessDenied, InvalidArgument, RWMutex, TLSError, acl
from zksync.testing import Ensemble
from zksync.testing.certs import CertificateAuthority, Credentials
from zksync.testing.timing import scaled
from zksync.testing.toxi import ProxiedEnsemble

Factory = Callable[..., KazooClient]
WAIT = 60.0  # a failed handshake must end long before this: it is a TLSError, not a time-out


def _handshake_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name.startswith("kazoo") and r.levelno >= logging.WARNING]


# ---- the harness's TLS ensemble ----------------------------------------------------------------
def test_a_lock_is_shared_by_two_clients_over_tls(zk_tls_client_factory: Factory) -> None:
    alice, bob = zk_tls_client_factory("alice"), zk_tls_client_factory("bob")
    assert alice.use_ssl and bob.use_ssl
    held = RWMutex(alice, "/lock").write(timeout=scaled(10))
    with held, pytest.raises(zksync.Timeout):
        RWMutex(bob, "/lock").lock(timeout=scaled(0.5))
    with RWMutex(bob, "/lock").write(timeout=scaled(10)):
        assert alice.get_children("/lock")


def test_the_client_port_speaks_tls_only(zk_tls_ensemble: Ensemble) -> None:
    host, port = zk_tls_ensemble.address(0)
    with socket.create_connection((host, port), timeout=5) as sock:
        sock.sendall(b"srvr")  # a four-letter word in plaintext gets no answer (a hang-up, or silence)
        sock.settimeout(2)
        try:
            answer = sock.recv(100)
        except (ConnectionResetError, TimeoutError):
            answer = b""
    assert b"Mode" not in answer
    assert zk_tls_ensemble.mode(0) in ("leader", "follower")  # the same word over TLS is answered


def _speaks_tls(host: str, port: int) -> bool:
    """Whether the port answers a TLS handshake: with a session, or with a TLS alert (a quorum
    port refuses a certificate that does not name this host, and says so in TLS)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    try:
        with socket.create_connection((host, port), timeout=5) as raw, context.wrap_socket(raw):
            return True
    except ssl.SSLError as exc:
        return "ALERT" in (exc.reason or "")
    except OSError:
        return False


def test_the_members_speak_tls_between_themselves(zk_tls_ensemble: Ensemble, zk_ensemble: object) -> None:
    if zk_tls_ensemble.size < 2:
        pytest.skip("one member: no quorum traffic")
    member = zk_tls_ensemble.members[0]
    assert "sslQuorum=true" in (member.directory / "zoo.cfg").read_text()
    assert "Using TLS encrypted quorum communication" in member.log_path.read_text(errors="replace")
    assert _speaks_tls(zk_tls_ensemble.host, member.election_port)
    if isinstance(zk_ensemble, Ensemble) and zk_ensemble.size > 1:  # and a plaintext quorum does not
        assert not _speaks_tls(zk_ensemble.host, zk_ensemble.members[0].election_port)


def test_each_identity_gets_its_own_certificate(zk_tls_ensemble: Ensemble) -> None:
    alice = zk_tls_ensemble.client_credentials("alice")
    assert zk_tls_ensemble.client_credentials("alice") == alice
    assert zk_tls_ensemble.client_credentials("bob").cert != alice.cert
    assert ssl._ssl._test_decode_cert(str(alice.cert))["subject"] == ((("commonName", "alice"),),)  # type: ignore[attr-defined]
    assert alice.subject == "CN=alice"


def test_proxies_work_unchanged_in_front_of_tls_ports(
    zk_tls_proxied: ProxiedEnsemble, zk_tls_client_factory: Factory
) -> None:
    zk_tls_proxied.heal()
    client = zk_tls_client_factory("alice", hosts=zk_tls_proxied.hosts)
    mutex = RWMutex(client, "/lock")
    assert client.exists(mutex.lock(timeout=scaled(10)).node)
    mutex.unlock()
    with zk_tls_proxied.cut(*range(1, zk_tls_proxied.size)):  # every proxy but the last one
        cut_off = zk_tls_client_factory("bob", hosts=zk_tls_proxied.hosts_of(zk_tls_proxied.size))
        with RWMutex(cut_off, "/lock").write(timeout=scaled(10)) as held:
            assert cut_off.exists(held.node)


# ---- connect(): the TLS files ------------------------------------------------------------------
def test_connect_takes_the_tls_files_from_the_environment(
    zk_tls_ensemble: Ensemble, monkeypatch: pytest.MonkeyPatch
) -> None:
    alice = zk_tls_ensemble.client_credentials("alice")
    monkeypatch.setenv("ZOOKEEPER_TLS_CA", str(alice.ca))
    monkeypatch.setenv("ZOOKEEPER_TLS_CERT", str(alice.cert))
    monkeypatch.setenv("ZOOKEEPER_TLS_KEY", str(alice.key))
    client = zksync.connect(zk_tls_ensemble.hosts, timeout=scaled(15))
    try:
        assert client.use_ssl and client.check_hostname and client.verify_certs
        assert client.get_children("/") is not None
    finally:
        client.stop()
        client.close()


def test_arguments_win_over_the_environment(zk_tls_ensemble: Ensemble, monkeypatch: pytest.MonkeyPatch) -> None:
    alice = zk_tls_ensemble.client_credentials("alice")
    monkeypatch.setenv("ZOOKEEPER_TLS_CERT", "/nonexistent/cert.pem")  # not looked at: files are given
    client = zksync.connect(zk_tls_ensemble.hosts, timeout=scaled(15), **alice.kazoo_options())
    try:
        assert client.certfile == str(alice.cert)
    finally:
        client.stop()
        client.close()


@pytest.fixture
def stray(tmp_path: Path) -> Credentials:
    return CertificateAuthority(tmp_path / "other", name="some other CA").issue("mallory", hosts=())


def test_bad_tls_files_are_refused_before_anything_is_sent(
    zk_tls_ensemble: Ensemble, stray: Credentials, tmp_path: Path
) -> None:
    alice = zk_tls_ensemble.client_credentials("alice")
    not_pem = tmp_path / "not-a-ca.pem"
    not_pem.write_text("hello\n")
    cases = {
        "no such file": {"ca": str(tmp_path / "missing.pem")},
        "without its certfile": {"keyfile": str(alice.key)},
        "holds no PEM certificate": {"ca": str(not_pem)},
        "is not the key of the certificate": {"certfile": str(alice.cert), "keyfile": str(stray.key)},
        "use_ssl=False contradicts": {**alice.kazoo_options(), "use_ssl": False},
    }
    for words, options in cases.items():
        with pytest.raises(InvalidArgument, match=words):
            zksync.connect(zk_tls_ensemble.hosts, timeout=WAIT, **options)  # type: ignore[arg-type]


# ---- every failed handshake: a TLSError that says why, and no retry log ------------------------
@pytest.fixture(scope="module")
def plain_member() -> Iterator[Ensemble]:
    with Ensemble(size=1) as ensemble:
        yield ensemble


def _handshake_cases(tls: Ensemble, plain: Ensemble, stray: Credentials) -> dict[str, tuple[str, dict[str, str], str]]:
    alice = tls.client_credentials("alice")
    old = tls.client_credentials(
        "expired",
        not_before=dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc),
        not_after=dt.datetime(2026, 2, 1, tzinfo=dt.timezone.utc),
    )
    hosts = tls.hosts
    return {
        "no client certificate": (hosts, {"ca": str(alice.ca)}, "requires a client certificate and none was given"),
        "server of an unknown CA": (
            hosts,
            {"ca": str(stray.ca), "certfile": str(alice.cert), "keyfile": str(alice.key)},
            "is not signed by a CA this client trusts",
        ),
        "client of an unknown CA": (
            hosts,
            {"ca": str(alice.ca), "certfile": str(stray.cert), "keyfile": str(stray.key)},
            "refused this client's certificate .*signed by a CA the server trusts",
        ),
        "expired client certificate": (hosts, old.kazoo_options(), "refused this client's certificate .* expired on"),
        "server certificate for another host": (
            hosts.replace("127.0.0.1", "localhost"),
            alice.kazoo_options(),
            "not valid for 'localhost'",
        ),
        "plaintext client, TLS port": (hosts, {}, "in plaintext: .*it serves TLS and this client speaks plaintext"),
        "TLS client, plaintext port": (
            plain.hosts,
            alice.kazoo_options(),
            "closed the connection during the handshake",
        ),
    }


CASES = [
    "no client certificate",
    "server of an unknown CA",
    "client of an unknown CA",
    "expired client certificate",
    "server certificate for another host",
    "plaintext client, TLS port",
    "TLS client, plaintext port",
]


@pytest.mark.parametrize("case", CASES)
def test_a_failed_handshake_is_a_tls_error_saying_why(
    case: str,
    zk_tls_ensemble: Ensemble,
    plain_member: Ensemble,
    stray: Credentials,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in ("ZOOKEEPER_TLS_CA", "ZOOKEEPER_TLS_CERT", "ZOOKEEPER_TLS_KEY"):
        monkeypatch.delenv(name, raising=False)
    hosts, options, words = _handshake_cases(zk_tls_ensemble, plain_member, stray)[case]
    caplog.set_level(logging.WARNING)
    with pytest.raises(TLSError, match=words) as raised:
        zksync.connect(hosts, timeout=WAIT, **options)
    assert isinstance(raised.value, zksync.ConnectionLost)
    assert "time-out" not in str(raised.value)
    assert _handshake_warnings(caplog) == []


def test_an_expired_server_certificate_is_a_tls_error(tmp_path: Path) -> None:
    ensemble = Ensemble(size=1, tls=True, directory=tmp_path / "ens")
    ensemble.start()
    try:
        assert ensemble.ca is not None
        ensemble.kill(0)  # the member comes back with an expired certificate of the same CA
        expired = ensemble.ca.issue(
            "zk1",
            hosts=(ensemble.host,),
            not_before=dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc),
            not_after=dt.datetime(2026, 2, 1, tzinfo=dt.timezone.utc),
        )
        expired.key_store(replace=True)
        ensemble.start_member(0, wait=False)
        client_files = ensemble.client_credentials("alice").kazoo_options()
        with pytest.raises(TLSError, match="the server's certificate has expired"):
            _connect_once_listening(ensemble, client_files)
    finally:
        ensemble.stop()


def _connect_once_listening(ensemble: Ensemble, options: dict[str, str]) -> None:
    host, port = ensemble.address(0)
    for _ in range(int(scaled(60) / 0.2)):
        try:
            socket.create_connection((host, port), timeout=1).close()
            break
        except OSError:
            time.sleep(0.2)
    zksync.connect(ensemble.hosts, timeout=WAIT, **options)


def test_one_refusing_member_does_not_stop_a_client_reaching_the_others(
    zk_tls_ensemble: Ensemble, plain_member: Ensemble
) -> None:
    alice = zk_tls_ensemble.client_credentials("alice")
    hosts = f"{plain_member.hosts},{zk_tls_ensemble.hosts}"  # a plaintext member in a TLS list
    client = zksync.connect(hosts, timeout=scaled(30), **alice.kazoo_options())
    try:
        assert client.connected
    finally:
        client.stop()
        client.close()


def test_connect_leaves_nothing_of_its_handshake_watch_behind(zk_tls_client_factory: Factory) -> None:
    client = zk_tls_client_factory("alice")
    assert "create_connection" not in vars(client.handler)
    assert getattr(client._connection._connect, "_zksync_probe", False)  # the timeout probe only
    assert not [f for f in client.logger.filters if type(f).__name__ == "_QuietFilter"]


# ---- x509 identities in ACLs -------------------------------------------------------------------
def test_an_x509_acl_keeps_out_another_certificate_and_changes_nothing(zk_tls_client_factory: Factory) -> None:
    alice, bob = zk_tls_client_factory("alice"), zk_tls_client_factory("bob")
    guarded = [acl.x509("CN=alice", "rwcda"), acl.x509("CN=bob", "r")]
    owner = RWMutex(alice, "/guarded/lock", acl=guarded)
    lease = owner.lock(timeout=scaled(5))
    before = sorted(alice.get_children("/guarded/lock"))
    intruder = RWMutex(bob, "/guarded/lock")
    with pytest.raises(AccessDenied):
        intruder.break_lock(timeout=scaled(5))
    with pytest.raises(AccessDenied):
        intruder.lock(timeout=scaled(5))
    assert sorted(bob.get_children("/guarded/lock")) == before  # bob may read: "r"
    assert lease.valid
    owner.unlock()
    with RWMutex(alice, "/guarded/lock").write(timeout=scaled(5)):
        pass


def test_an_x509_acl_without_read_hides_the_nodes(zk_tls_client_factory: Factory) -> None:
    alice, bob = zk_tls_client_factory("alice"), zk_tls_client_factory("bob")
    with RWMutex(alice, "/private/lock", acl=[acl.x509("CN=alice")]).write(timeout=scaled(5)):
        with pytest.raises(AccessDenied):
            _children(bob, "/private/lock")
        assert _children(alice, "/private/lock")


def _children(client: KazooClient, path: str) -> list[str]:
    with zksync.errors.translate(path):
        return list(client.get_children(path))
