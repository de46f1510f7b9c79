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
``zk_client_factory``  ``zk_client_factory(**kazoo_options)`` makes more such clients (same
                 chroot; ``timeout`` is kazoo's session timeout, default
                 ``--zk-session-timeout``); all are closed after the test.

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
from .ensemble import DEFAULT_TICK_TIME, Ensemble
from .timing import TimeScaleError, scaled, time_scale
from .toxi import ProxiedEnsemble, ToxiproxyServer, find_server

CONNECT_WAIT = 15.0  # seconds (scaled) a test client may take to connect


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
    # a slower tick on a slow machine: the members' session timeout bounds (2 and 20 ticks) and
    # their election and sync limits stretch with the tests' own timeouts
    tick_time = max(1, round(DEFAULT_TICK_TIME * time_scale()))
    ensemble = Ensemble(size=int(_option(request.config, "zk_size")), tick_time=tick_time)
    ensemble.start(timeout=scaled(90))
    try:
        yield ensemble
    finally:
        ensemble.stop()


@pytest.fixture(scope="session")
def zk_hosts(zk_ensemble: Ensemble | ExternalEnsemble) -> str:
    return zk_ensemble.hosts


@pytest.fixture
def zk_session_timeout(request: pytest.FixtureRequest) -> float:
    return scaled(float(_option(request.config, "zk_session_timeout")))


@pytest.fixture
def zk_chroot(request: pytest.FixtureRequest, zk_hosts: str) -> Iterator[str]:
    """A fresh path for this test; removed afterwards."""
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", request.node.name)[:80]
    chroot = f"/zksync-tests/{name}-{uuid.uuid4().hex[:8]}"
    admin = connect(zk_hosts, timeout=scaled(CONNECT_WAIT))
    try:
        admin.ensure_path(chroot)
        yield chroot
    finally:
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
    for client in made:
        try:
            client.stop()
            client.close()
        except Exception:
            pass


@pytest.fixture
def zk_client(zk_client_factory: Callable[..., KazooClient]) -> KazooClient:
    return zk_client_factory()


@pytest.fixture(scope="session")
def zk_proxied(zk_ensemble: Ensemble | ExternalEnsemble) -> Iterator[ProxiedEnsemble]:
    external_peers = bool(os.environ.get("ZOOKEEPER_PEERS", "").strip())
    api = os.environ.get("TOXIPROXY", "").strip()
    if api:
        # the docker-compose / Vagrant layout: its zkN proxies already front the ensemble
        proxied = ProxiedEnsemble(api, None if external_peers else zk_ensemble.hosts.split(","))
        yield proxied
        proxied.close(destroy=not external_peers)
        return
    binary = find_server()
    if binary is None:
        reason = "toxiproxy-server not found (run .ci/setup, or set TOXIPROXY_SERVER or TOXIPROXY)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    with ToxiproxyServer(binary=binary) as server:
        proxied = ProxiedEnsemble(server.api, zk_ensemble.hosts.split(","))
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
