"""pytest plugin: a real ZooKeeper ensemble for your tests, in one fixture.

Installed with zksync (entry point ``pytest11``).  Fixtures:

``zk_ensemble``  (session) the ensemble: a local one started on loopback, or the one named by
                 ``ZOOKEEPER_PEERS`` (then member control — kill, pause — is unavailable).
``zk_hosts``     its connection string.
``zk_client``    a started kazoo client, chrooted to a fresh path for this test.
``zk_proxied``   (session) a :class:`~zksync.testing.toxi.ProxiedEnsemble`: a Toxiproxy proxy
                 ``zkN`` in front of each member — the server named by ``TOXIPROXY``, else a
                 local ``toxiproxy-server``.  Without one the test is skipped, or fails when
                 ``CI=true``.
``zk_faults``    the same, healed (every toxic removed) after each test.
``zk_toxiproxy`` (session) the API (host:port) of that Toxiproxy server.
``zk_client_factory``  ``zk_client_factory(**kazoo_options)`` makes more such clients (same
                 chroot; ``timeout`` is kazoo's session timeout, default
                 ``--zk-session-timeout``); all are closed after the test.
``zk_tls_ensemble``  (session) a local :class:`~zksync.testing.Ensemble` serving mutual TLS
                 only (``tls=True``); ``zk_tls_ensemble.client_credentials("alice")`` gives a
                 client certificate ``CN=alice``.  It also accepts the SASL (DIGEST-MD5) users
                 of :data:`SASL_USERS`.
``zk_tls_client_factory``  ``zk_tls_client_factory("alice", **options)``: a client of it holding
                 that certificate, chrooted to a fresh path of this test.
``zk_tls_proxied``  (session) Toxiproxy proxies ``tls-zkN`` in front of its members.

Options (command line or ini): ``--zk-size`` (members of the local ensemble, default 3),
``--zk-session-timeout`` (seconds, default 10: kazoo's own default).  ``ZKSYNC_TIME_SCALE`` (see
:mod:`zksync.testing.timing`) multiplies that timeout, the local ensemble's tick (and so the
session timeouts its members allow) and its start-up wait on slow machines; a value that is not a
number > 0 stops the run at once.  When a test fails, the tail of every member's log is attached
to its report.
"""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from kazoo.client import KazooClient

from .. import connect
from .cleanup import delete_tree
from .ensemble import DEFAULT_TICK_TIME, Ensemble, EnsembleError
from .timing import TimeScaleError, scaled, time_scale
from .toxi import ProxiedEnsemble, ToxiproxyServer, find_server

CONNECT_WAIT = 15.0  # seconds (scaled) a test client may take to connect
# SASL (DIGEST-MD5) users of the TLS ensemble, for tests of SASL identities
SASL_USERS = {"alice": "alice-sasl-password", "bob": "bob-sasl-password"}


class ExternalEnsemble:
    """An ensemble somebody else runs (``ZOOKEEPER_PEERS``): addresses only."""

    def __init__(self, hosts: str) -> None:
        self.hosts = hosts
        self.size = len(hosts.split(","))

    def log_tail(self, lines: int = 30) -> str:
        return "(external ensemble: no logs here)"


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("zksync", "ZooKeeper ensemble for tests")
    group.addoption("--zk-size", type=int, default=None, help="members of the local ensemble (default 3)")
    group.addoption(
        "--zk-session-timeout", type=float, default=None, help="session timeout of test clients in seconds (default 10)"
    )
    parser.addini("zk_size", "members of the local ensemble", default="3")
    parser.addini("zk_session_timeout", "session timeout of test clients (seconds)", default="10")


def pytest_configure(config: pytest.Config) -> None:
    try:
        time_scale()
    except TimeScaleError as exc:
        raise pytest.UsageError(str(exc)) from None


def _option(config: pytest.Config, name: str) -> str:
    value = config.getoption(f"--{name.replace('_', '-')}")
    return str(value) if value is not None else str(config.getini(name))


@pytest.fixture(scope="session")
def zk_ensemble(request: pytest.FixtureRequest) -> Iterator[Ensemble | ExternalEnsemble]:
    peers = os.environ.get("ZOOKEEPER_PEERS", "").strip()
    if peers:
        yield ExternalEnsemble(peers)
        return
    ensemble = Ensemble(size=int(_option(request.config, "zk_size")), tick_time=_tick_time())
    ensemble.start(timeout=scaled(90))
    try:
        yield ensemble
    finally:
        ensemble.stop()


def _tick_time() -> int:
    # a slower tick on a slow machine: the members' session timeout bounds (2 and 20 ticks) and
    # their election and sync limits stretch with the tests' own timeouts
    return max(1, round(DEFAULT_TICK_TIME * time_scale()))


@pytest.fixture(scope="session")
def zk_hosts(zk_ensemble: Ensemble | ExternalEnsemble) -> str:
    return zk_ensemble.hosts


@pytest.fixture
def zk_session_timeout(request: pytest.FixtureRequest) -> float:
    return scaled(float(_option(request.config, "zk_session_timeout")))


@pytest.fixture
def zk_chroot(request: pytest.FixtureRequest, zk_hosts: str) -> Iterator[str]:
    """A fresh path for this test; removed afterwards."""
    admin = connect(zk_hosts, timeout=scaled(CONNECT_WAIT))
    chroot = _fresh_chroot(request, admin)
    try:
        yield chroot
    finally:
        _remove_chroot(admin, chroot)


def _fresh_chroot(request: pytest.FixtureRequest, admin: KazooClient) -> str:
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", request.node.name)[:80]
    chroot = f"/zksync-tests/{name}-{uuid.uuid4().hex[:8]}"
    try:
        admin.ensure_path(chroot)
    except BaseException:
        admin.stop()
        admin.close()
        raise
    return chroot


def _remove_chroot(admin: KazooClient, chroot: str) -> None:
    try:
        delete_tree(admin, chroot)  # pipelined: a test may leave 100,000 nodes
    except Exception:  # an ACL'd node a test left behind: the chroot is unique anyway
        pass
    admin.stop()
    admin.close()


@pytest.fixture
def zk_client_factory(zk_hosts: str, zk_chroot: str, zk_session_timeout: float) -> Iterator[Callable[..., KazooClient]]:
    made: list[KazooClient] = []

    def make(hosts: str | None = None, **options: Any) -> KazooClient:
        # ``timeout`` is kazoo's: the session timeout (zksync.connect's own ``timeout`` is the wait
        # for the first connection, and its name for the session timeout is ``session_timeout``)
        if "session_timeout" in options:
            options["timeout"] = options.pop("session_timeout")
        session_timeout = options.pop("timeout", zk_session_timeout)
        client = connect(
            f"{hosts or zk_hosts}{zk_chroot}", timeout=scaled(CONNECT_WAIT), session_timeout=session_timeout, **options
        )
        made.append(client)
        return client

    yield make
    _close_all(made)


def _close_all(clients: list[KazooClient]) -> None:
    for client in clients:
        try:
            client.stop()
            client.close()
        except Exception:
            pass


@pytest.fixture
def zk_client(zk_client_factory: Callable[..., KazooClient]) -> KazooClient:
    return zk_client_factory()


@pytest.fixture(scope="session")
def zk_toxiproxy() -> Iterator[str]:
    """The API (host:port) of the session's Toxiproxy server: ``TOXIPROXY``, else a local one."""
    api = os.environ.get("TOXIPROXY", "").strip()
    if api:
        yield api
        return
    binary = find_server()
    if binary is None:
        _unavailable("toxiproxy-server not found (run .ci/setup, or set TOXIPROXY_SERVER or TOXIPROXY)")
    with ToxiproxyServer(binary=binary) as server:
        yield server.api


def _unavailable(reason: str) -> None:
    """Skip the test for want of a tool; in CI (``CI=true``) that is a failure."""
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(reason)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def zk_proxied(zk_ensemble: Ensemble | ExternalEnsemble, zk_toxiproxy: str) -> Iterator[ProxiedEnsemble]:
    external_peers = bool(os.environ.get("ZOOKEEPER_PEERS", "").strip())
    # with TOXIPROXY and ZOOKEEPER_PEERS (the docker-compose / Vagrant layout) its zkN proxies
    # already front the ensemble
    reuse = external_peers and bool(os.environ.get("TOXIPROXY", "").strip())
    proxied = ProxiedEnsemble(zk_toxiproxy, None if reuse else zk_ensemble.hosts.split(","))
    yield proxied
    proxied.close(destroy=not reuse)


@pytest.fixture(scope="session")
def zk_tls_ensemble(request: pytest.FixtureRequest) -> Iterator[Ensemble]:
    """A local ensemble serving mutual TLS only, TLS between its members too (always local:
    its tests make certificates with its CA)."""
    try:
        ensemble = Ensemble(
            size=int(_option(request.config, "zk_size")), tick_time=_tick_time(), tls=True, sasl_users=SASL_USERS
        )
    except EnsembleError as exc:
        _unavailable(f"no TLS ensemble: {exc}")
    ensemble.start(timeout=scaled(90))
    try:
        yield ensemble
    finally:
        ensemble.stop()


@pytest.fixture
def zk_tls_chroot(request: pytest.FixtureRequest, zk_tls_ensemble: Ensemble) -> Iterator[str]:
    """A fresh path on the TLS ensemble for this test; removed afterwards."""
    admin = connect(zk_tls_ensemble.hosts, timeout=scaled(CONNECT_WAIT), **_admin_credentials(zk_tls_ensemble))
    chroot = _fresh_chroot(request, admin)
    try:
        yield chroot
    finally:
        _remove_chroot(admin, chroot)


def _admin_credentials(ensemble: Ensemble) -> dict[str, str]:
    return ensemble.client_credentials("zksync-tests").kazoo_options()


@pytest.fixture
def zk_tls_client_factory(
    zk_tls_ensemble: Ensemble, zk_tls_chroot: str, zk_session_timeout: float
) -> Iterator[Callable[..., KazooClient]]:
    """``zk_tls_client_factory(name="client", hosts=None, **options)``: a client of the TLS
    ensemble (or of ``hosts``, such as proxies in front of it) holding the certificate
    ``CN=name``, chrooted to this test's path; closed after the test."""
    made: list[KazooClient] = []

    def make(name: str = "client", hosts: str | None = None, **options: Any) -> KazooClient:
        session_timeout = options.pop("session_timeout", zk_session_timeout)
        credentials = {**zk_tls_ensemble.client_credentials(name).kazoo_options(), **options}
        client = connect(
            f"{hosts or zk_tls_ensemble.hosts}{zk_tls_chroot}",
            timeout=scaled(CONNECT_WAIT),
            session_timeout=session_timeout,
            **credentials,
        )
        made.append(client)
        return client

    yield make
    _close_all(made)


@pytest.fixture(scope="session")
def zk_tls_proxied(zk_tls_ensemble: Ensemble, zk_toxiproxy: str) -> Iterator[ProxiedEnsemble]:
    """Toxiproxy proxies ``tls-zkN`` in front of the TLS ensemble's members (TCP: TLS passes
    through them unchanged), on the session's Toxiproxy server beside ``zk_proxied``'s."""
    proxied = ProxiedEnsemble(zk_toxiproxy, zk_tls_ensemble.hosts.split(","), prefix="tls-")
    yield proxied
    proxied.close()


@pytest.fixture
def zk_faults(zk_proxied: ProxiedEnsemble) -> Iterator[ProxiedEnsemble]:
    zk_proxied.heal()
    yield zk_proxied
    zk_proxied.heal()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    report: Any = yield
    if report.when == "call" and report.failed:
        ensemble = getattr(item, "funcargs", {}).get("zk_ensemble")
        if ensemble is not None:
            report.sections.append(("ZooKeeper logs", ensemble.log_tail()))
    return report  # type: ignore[no-any-return]
