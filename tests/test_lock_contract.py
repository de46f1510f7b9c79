"""The contract every lock kind keeps, on every front-end and in every naming family: one test
body, run over each (kind, front-end, naming) case on the real ensemble.  A new lock kind,
front-end or naming joins by adding a parameter, and must pass all of it.  The non-default
namings run on the blocking front-end (the naming is core logic, shared by both)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any

import pytest
from kazoo.client import KazooClient

import zksync
from zksync._core.queue import NAMINGS
from zksync.testing.timing import scaled, sleep

from .conftest import settle, tree, wait_until
from .frontends import FRONTENDS

Factory = Callable[..., KazooClient]


@dataclass(frozen=True)
class Kind:
    name: str
    acquire: str
    release: str
    block: str
    exclusive: bool

    def take(self, mutex: Any, timeout: float | None = 10) -> Any:
        return getattr(mutex, self.acquire)(timeout)

    def give(self, mutex: Any) -> None:
        getattr(mutex, self.release)()

    def held(self, mutex: Any, timeout: float | None = 10) -> AbstractContextManager[Any]:
        manager: AbstractContextManager[Any] = getattr(mutex, self.block)(timeout)
        return manager


KINDS = [Kind("write", "lock", "unlock", "write", True), Kind("read", "rlock", "runlock", "read", False)]


CASES = [
    pytest.param((kind, frontend, naming), id=f"{kind.name}-{frontend}-{naming}")
    for kind in KINDS
    for frontend in sorted(FRONTENDS)
    for naming in NAMINGS
    if (frontend == "blocking" or naming == "zksync") and (kind.exclusive or "read" in NAMINGS[naming].prefixes)
]


@pytest.fixture(params=CASES)
def case(request: pytest.FixtureRequest) -> tuple[Kind, str, str]:
    chosen: tuple[Kind, str, str] = request.param
    return chosen


@pytest.fixture
def kind(case: tuple[Kind, str, str]) -> Kind:
    return case[0]


@pytest.fixture
def make(case: tuple[Kind, str, str]) -> Callable[[KazooClient], Any]:
    _, frontend, naming = case
    cls = FRONTENDS[frontend]["RWMutex"]

    def mutex(client: KazooClient) -> Any:
        return cls(client, "/contract", naming=naming)

    return mutex


@pytest.fixture
def mutexes(make: Callable[[KazooClient], Any], zk_client_factory: Factory) -> Iterator[list[Any]]:
    yield [make(zk_client_factory()) for _ in range(5)]


def test_holders_never_exceed_what_the_kind_allows(kind: Kind, mutexes: list[Any], pool: ThreadPoolExecutor) -> None:
    inside = 0
    most = 0
    count = threading.Lock()
    all_in = threading.Barrier(len(mutexes), timeout=5)  # shared kinds: everybody holds at once

    def participant(mutex: Any) -> int:
        nonlocal inside, most
        tokens = []
        for round_ in range(3):
            with kind.held(mutex, 30) as lease:
                with count:
                    inside += 1
                    most = max(most, inside)
                tokens.append(lease.fencing_token)
                if not kind.exclusive and round_ == 0:
                    all_in.wait()
                sleep(0.01)
                with count:
                    inside -= 1
        assert tokens == sorted(tokens)
        return len(tokens)

    done = [pool.submit(participant, m) for m in mutexes]
    assert sum(settle(d, 60) for d in done) == 3 * len(mutexes)
    assert most == (1 if kind.exclusive else len(mutexes))


def test_a_writer_excludes_the_kind_and_a_reader_excludes_only_writers(
    kind: Kind, mutexes: list[Any], pool: ThreadPoolExecutor
) -> None:
    holder, other = mutexes[0], mutexes[1]
    with kind.held(holder):
        writer = pool.submit(KINDS[0].take, other, 10)
        sleep(0.3)
        assert not writer.done()  # nobody writes while anybody holds
    settle(writer)
    KINDS[0].give(other)
    with KINDS[0].held(holder), pytest.raises(zksync.Timeout):
        kind.take(other, 0.3)  # a writer keeps out every kind
    assert other.held is None


def test_the_deadline_is_kept_and_leaves_no_node_behind(kind: Kind, mutexes: list[Any], zk_client: KazooClient) -> None:
    writer, waiter = mutexes[0], mutexes[1]
    KINDS[0].take(writer)
    started = time.monotonic()
    with pytest.raises(zksync.Timeout):
        kind.take(waiter, 0.5)
    assert 0.5 <= time.monotonic() - started < scaled(5)
    assert len(zk_client.get_children("/contract")) == 1
    KINDS[0].give(writer)
    kind.take(waiter, 5)  # the object that timed out is usable again
    kind.give(waiter)
    assert tree(zk_client) == {"/contract"}


def test_misuse_is_refused_and_changes_nothing(kind: Kind, mutexes: list[Any], zk_client: KazooClient) -> None:
    mutex = mutexes[0]
    with pytest.raises(zksync.NotHeld):
        kind.give(mutex)
    kind.take(mutex)
    with pytest.raises(zksync.AlreadyHeld):
        kind.take(mutex)  # not reentrant: refused at once, not a deadlock
    other = KINDS[1] if kind.exclusive else KINDS[0]
    with pytest.raises(zksync.NotHeld):
        other.give(mutex)
    assert len(zk_client.get_children("/contract")) == 1
    kind.give(mutex)
    with pytest.raises(zksync.NotHeld):
        kind.give(mutex)
    assert zk_client.get_children("/contract") == []


def test_leaving_the_block_by_an_error_releases(kind: Kind, mutexes: list[Any], zk_client: KazooClient) -> None:
    mutex = mutexes[0]
    with pytest.raises(KeyError), kind.held(mutex):
        raise KeyError("boom")
    assert mutex.held is None
    wait_until(lambda: zk_client.get_children("/contract") == [], what="node released")


def test_a_lease_knows_its_lock_and_is_invalid_once_released(kind: Kind, mutexes: list[Any]) -> None:
    mutex = mutexes[0]
    lease = kind.take(mutex)
    assert lease.valid and lease.mode == kind.name and mutex.held == kind.name
    assert mutex.fencing_token == lease.fencing_token
    lease.check()
    kind.give(mutex)
    assert not lease.valid
    with pytest.raises(zksync.NotHeld):
        lease.check()
