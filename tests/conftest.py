"""Shared helpers.  The fixtures (zk_ensemble, zk_client, zk_client_factory, ...) come from
the zksync pytest plugin (zksync.testing.plugin), registered by the package's entry point."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from kazoo.client import KazooClient

from zksync.testing.timing import scaled, sleep

from .peers import PEERS, Peer, Peers


def tree(client: KazooClient, path: str = "/") -> set[str]:
    """Every node below ``path`` (the client's chroot when it has one)."""
    found: set[str] = set()
    for child in client.get_children(path):
        full = f"{path.rstrip('/')}/{child}"
        found.add(full)
        found |= tree(client, full)
    return found


ROOT = Path(__file__).resolve().parent.parent


def run_benchmark(zk_hosts: str, module: str, *args: str, timeout: float) -> subprocess.CompletedProcess[str]:
    """``python -m benchmarks.<module> args`` from the project root against the test ensemble
    (``ZOOKEEPER_PEERS``), its output captured; ``timeout`` in seconds."""
    return subprocess.run(
        [sys.executable, "-m", f"benchmarks.{module}", *args],
        cwd=ROOT,
        env=dict(os.environ, ZOOKEEPER_PEERS=zk_hosts),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def wait_until(predicate: Callable[[], Any], timeout: float = 10.0, what: str = "condition") -> Any:
    """The first true value of ``predicate``, polled for ``timeout`` units of test time."""
    limit = scaled(timeout)
    deadline = time.monotonic() + limit
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not reached within {limit:g}s")
        sleep(0.02)


class RequestCounter:
    """Counts the requests a kazoo client sends (pings excluded), by request type."""

    def __init__(self, client: KazooClient) -> None:
        self.client = client
        self.calls: list[str] = []
        self._original = client._call

        def counting(request: Any, async_object: Any) -> Any:
            self.calls.append(type(request).__name__)
            return self._original(request, async_object)

        client._call = counting

    @property
    def count(self) -> int:
        return len(self.calls)

    def reset(self) -> None:
        self.calls.clear()

    def close(self) -> None:
        self.client._call = self._original


class WatchCounter:
    """Counts watch notifications a kazoo client receives from the server."""

    def __init__(self, client: KazooClient) -> None:
        self.count = 0
        self._lock = threading.Lock()
        conn = client._connection
        original = conn._read_watch_event

        def counting(buffer: Any, offset: Any) -> Any:
            with self._lock:
                self.count += 1
            return original(buffer, offset)

        conn._read_watch_event = counting


@pytest.fixture
def gates() -> Iterator[Callable[[], threading.Event]]:
    """``gates()`` makes an event that test threads wait on; all are opened after the test."""
    made: list[threading.Event] = []

    def make() -> threading.Event:
        made.append(threading.Event())
        return made[-1]

    yield make
    for event in made:
        event.set()


@pytest.fixture
def pool(gates: Callable[[], threading.Event]) -> Iterator[ThreadPoolExecutor]:
    executor = ThreadPoolExecutor(max_workers=32)
    yield executor
    executor.shutdown(wait=False, cancel_futures=True)


def settle(future: Future[Any], timeout: float = 30.0) -> Any:
    """The result of ``future``, given ``timeout`` units of test time."""
    return future.result(timeout=scaled(timeout))


def assert_still_exclusive(holder: Any, other_client: KazooClient) -> None:
    """``holder`` (an RWMutex holding the write lock) keeps others out until it unlocks."""
    from zksync import RWMutex, Timeout

    waiter = RWMutex(other_client, holder.path)
    with pytest.raises(Timeout):
        waiter.lock(timeout=scaled(1))
    holder.unlock()
    waiter.lock(timeout=scaled(5))
    waiter.unlock()


def close_session_of(client: KazooClient, hosts: str, attempts: int = 5) -> None:
    """End ``client``'s session from outside, as an expiry would: a second connection with the
    same session id and password closes it.  The two connections may push each other off the
    server while they fight over the session (the thief then sees a connection loss): try again."""
    from kazoo.exceptions import ConnectionLoss, SessionExpiredError
    from kazoo.handlers.threading import KazooTimeoutError

    from zksync.testing.timing import scaled

    session_id, password = client.client_id
    for attempt in range(attempts):
        thief = KazooClient(hosts=hosts, client_id=(session_id, password), timeout=scaled(4))
        try:
            thief.start(timeout=scaled(10))
        except SessionExpiredError:
            return  # an earlier attempt closed it after all
        except (ConnectionLoss, KazooTimeoutError):
            if attempt == attempts - 1:
                raise
            continue
        finally:
            thief.stop()
            thief.close()
        return


@pytest.fixture
def peer(
    request: pytest.FixtureRequest, zk_hosts: str, zk_chroot: str, zk_session_timeout: float
) -> Iterator[Callable[..., Peer]]:
    """``peer(recipe, path="/shared", session_timeout=None)`` starts a peer program (see
    tests/peers.py) on ``zk_chroot + path``; all are closed after the test, and a failed test's
    report shows their stderr."""
    peers = Peers(zk_hosts, zk_chroot, zk_session_timeout, [])
    request.node.stash[PEERS] = peers
    try:
        yield peers.start
    finally:
        peers.close()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    report: Any = yield
    if report.when == "call" and report.failed:
        peers = item.stash.get(PEERS, None)
        if peers is not None:
            report.sections.extend(peers.report())
    return report  # type: ignore[no-any-return]
