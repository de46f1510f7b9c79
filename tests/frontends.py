"""The blocking API over ``zksync.aio``, so that one scenario runs on both front-ends.

Every call is a coroutine run on one event loop in a background thread; the test thread blocks
on its result.  Several test threads calling at once are several coroutines on that loop: the
recipes under test really run as asyncio code, with no thread of their own per waiter.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import sys
import threading
from collections.abc import Coroutine, Iterator
from concurrent.futures import Future
from types import ModuleType
from typing import Any, TypeVar

import pytest
from kazoo.client import KazooClient
from kazoo.security import ACL

import zksync
import zksync.aio
import zksync.aio.collection

T = TypeVar("T")


class LoopThread:
    """An event loop running in a daemon thread."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="test-event-loop", daemon=True)
        self.thread.start()

    def call(self, coroutine: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result()

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


_loop: LoopThread | None = None


def loop() -> LoopThread:
    global _loop
    if _loop is None:
        _loop = LoopThread()
    return _loop


class Lease:
    """An asyncio lease, with ``wait_lost`` blocking like the blocking API's."""

    def __init__(self, lease: zksync.aio.Lease) -> None:
        self.aio = lease

    def __getattr__(self, name: str) -> Any:
        return getattr(self.aio, name)

    def wait_lost(self, timeout: float | None = None) -> bool:
        return loop().call(self.aio.wait_lost(timeout))

    def transaction(self) -> Transaction:
        return Transaction(self.aio.transaction())


class Transaction:
    """An asyncio lease's transaction, committed like the blocking API's."""

    def __init__(self, transaction: zksync.aio.Transaction) -> None:
        self.aio = transaction

    def __getattr__(self, name: str) -> Any:
        return getattr(self.aio, name)

    def commit(self, timeout: float | None = None) -> list[Any]:
        return loop().call(self.aio.commit(timeout))

    def __enter__(self) -> Transaction:
        return self

    def __exit__(self, kind: type[BaseException] | None, *rest: object) -> None:
        if kind is None:
            self.commit()


class _Locked:
    """``zksync.aio.locked`` called like ``zksync.locked``."""

    def __getattr__(self, name: str) -> Any:
        call = getattr(zksync.aio.locked, name)

        def blocking(*args: Any, **kwargs: Any) -> Any:
            return loop().call(call(*args, **kwargs))

        return blocking


@contextlib.contextmanager
def _blocking(manager: contextlib.AbstractAsyncContextManager[T]) -> Iterator[T]:
    value = loop().call(manager.__aenter__())
    try:
        yield value
    except BaseException:
        kind, error, trace = sys.exc_info()
        if not loop().call(manager.__aexit__(kind, error, trace)):
            raise
    else:
        loop().call(manager.__aexit__(None, None, None))


class RWMutex:
    recipe = "RWMutex"

    def __init__(self, client: KazooClient, path: str, acl: list[ACL] | None = None, naming: str = "zksync") -> None:
        self.aio = zksync.aio.RWMutex(client, path, acl, naming)
        self.path = self.aio.path
        self._session = self.aio._session

    def lock(self, timeout: float | None = None) -> Lease:
        return Lease(loop().call(self.aio.lock(timeout)))

    def rlock(self, timeout: float | None = None) -> Lease:
        return Lease(loop().call(self.aio.rlock(timeout)))

    def unlock(self) -> None:
        loop().call(self.aio.unlock())

    def runlock(self) -> None:
        loop().call(self.aio.runlock())

    @contextlib.contextmanager
    def write(self, timeout: float | None = None) -> Iterator[Lease]:
        with _blocking(self.aio.write(timeout)) as lease:
            yield Lease(lease)

    @contextlib.contextmanager
    def read(self, timeout: float | None = None) -> Iterator[Lease]:
        with _blocking(self.aio.read(timeout)) as lease:
            yield Lease(lease)

    @property
    def lease(self) -> Lease | None:
        lease = self.aio.lease
        return Lease(lease) if lease is not None else None

    @property
    def fencing_token(self) -> int | None:
        return self.aio.fencing_token

    @property
    def held(self) -> str | None:
        return self.aio.held

    def check(self) -> None:
        self.aio.check()

    def queue(self, timeout: float | None = None) -> list[tuple[str, str]]:
        return loop().call(self.aio.queue(timeout))

    def break_lock(self, timeout: float | None = None) -> int:
        return loop().call(self.aio.break_lock(timeout))


class Barrier:
    recipe = "Barrier"

    def __init__(self, client: KazooClient, path: str, acl: list[ACL] | None = None) -> None:
        self.aio = zksync.aio.Barrier(client, path, acl)
        self.path = self.aio.path
        self._session = self.aio._session

    def set(self) -> bool:
        return loop().call(self.aio.set())

    def unset(self) -> bool:
        return loop().call(self.aio.unset())

    def is_set(self) -> bool:
        return loop().call(self.aio.is_set())

    def wait(self, timeout: float | None = None) -> None:
        loop().call(self.aio.wait(timeout))


class DoubleBarrier:
    recipe = "DoubleBarrier"

    def __init__(
        self,
        client: KazooClient,
        path: str,
        participants: int,
        identifier: str | None = None,
        acl: list[ACL] | None = None,
    ) -> None:
        self.aio = zksync.aio.DoubleBarrier(client, path, participants, identifier, acl)
        self.path = self.aio.path
        self.participants = self.aio.participants
        self.identifier = self.aio.identifier
        self._session = self.aio._session

    @property
    def entered(self) -> bool:
        return self.aio.entered

    @property
    def node(self) -> str | None:
        return self.aio.node

    def enter(self, timeout: float | None = None) -> None:
        loop().call(self.aio.enter(timeout))

    def exit(self, timeout: float | None = None) -> None:
        loop().call(self.aio.exit(timeout))

    def present(self, timeout: float | None = None) -> list[str]:
        return loop().call(self.aio.present(timeout))

    def evict(self, identifier: str, timeout: float | None = None) -> int:
        return loop().call(self.aio.evict(identifier, timeout))

    def __enter__(self) -> DoubleBarrier:
        self.enter()
        return self

    def __exit__(self, *exc: object) -> None:
        self.exit()


class Subscription:
    def __init__(self, subscription: zksync.aio.Subscription) -> None:
        self.aio = subscription

    def close(self) -> None:
        self.aio.close()

    def __iter__(self) -> Iterator[Any]:
        return self

    def __next__(self) -> Any:
        try:
            return loop().call(self.aio.__anext__())
        except StopAsyncIteration:
            raise StopIteration from None


class Sync:
    recipe = "Sync"

    def __init__(
        self, client: KazooClient, namespace: str, instance_id: str | None = None, instance_count: int | None = None
    ) -> None:
        self.aio = zksync.aio.Sync(client, namespace, instance_id, instance_count)
        self.client = client
        self.namespace, self.instance_id, self.root = self.aio.namespace, self.aio.instance_id, self.aio.root
        self.instance_count = self.aio.instance_count
        self._core = self.aio._core

    def _run(self, machine: Any) -> Any:
        return loop().call(self.aio._run(machine))

    def join(self, timeout: float | None = None) -> None:
        loop().call(self.aio.join(timeout))

    def leave(self) -> None:
        loop().call(self.aio.leave())

    def signal_entry(self, state: str, timeout: float | None = None) -> int:
        return loop().call(self.aio.signal_entry(state, timeout))

    def barrier(self, state: str, target: int, timeout: float | None = None) -> None:
        loop().call(self.aio.barrier(state, target, timeout))

    def barrier_async(self, state: str, target: int, timeout: float | None = None) -> Future[None]:
        return asyncio.run_coroutine_threadsafe(self.aio.barrier(state, target, timeout), loop().loop)

    def signal_and_wait(self, state: str, target: int, timeout: float | None = None) -> int:
        return loop().call(self.aio.signal_and_wait(state, target, timeout))

    def abort(self, state: str, reason: str = "aborted") -> None:
        loop().call(self.aio.abort(state, reason))

    def publish(self, topic: str, payload: Any, timeout: float | None = None) -> int:
        return loop().call(self.aio.publish(topic, payload, timeout))

    def subscribe(self, topic: str, start: int = 1, timeout: float | None = None) -> Subscription:
        return Subscription(self.aio.subscribe(topic, start, timeout))

    def publish_and_wait(self, topic: str, payload: Any, state: str, target: int, timeout: float | None = None) -> int:
        return loop().call(self.aio.publish_and_wait(topic, payload, state, target, timeout))

    def publish_subscribe(self, topic: str, payload: Any, timeout: float | None = None) -> tuple[int, Subscription]:
        seq, subscription = loop().call(self.aio.publish_subscribe(topic, payload, timeout))
        return seq, Subscription(subscription)

    def exchange(self, key: str, data: Any, participants: int, timeout: float | None = None) -> dict[str, Any]:
        return loop().call(self.aio.exchange(key, data, participants, timeout))

    def counts(self) -> dict[str, int]:
        return loop().call(self.aio.counts())

    def cleanup(self, timeout: float | None = None) -> None:
        loop().call(self.aio.cleanup(timeout))

    @classmethod
    def from_env(cls, client: KazooClient | None = None) -> Sync:
        bridged = cls.__new__(cls)
        bridged.aio = zksync.aio.Sync.from_env(client)
        bridged.client = bridged.aio.client
        bridged.namespace, bridged.instance_id = bridged.aio.namespace, bridged.aio.instance_id
        bridged.root, bridged.instance_count = bridged.aio.root, bridged.aio.instance_count
        bridged._core = bridged.aio._core
        return bridged


class WatchSubscription:
    def __init__(self, subscription: zksync.aio.WatchSubscription) -> None:
        self.aio = subscription

    @property
    def missed(self) -> int:
        return self.aio.missed

    @property
    def error(self) -> zksync.ZkSyncError | None:
        return self.aio.error

    def get(self, timeout: float | None = None) -> zksync.WatchEvent:
        return loop().call(self.aio.get(timeout))

    def close(self) -> None:
        self.aio.close()

    def __iter__(self) -> Iterator[zksync.WatchEvent]:
        return self

    def __next__(self) -> zksync.WatchEvent:
        try:
            return loop().call(self.aio.__anext__())
        except StopAsyncIteration:
            raise StopIteration from None

    def __enter__(self) -> WatchSubscription:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Watcher:
    recipe = "Watcher"

    def __init__(
        self, client: KazooClient, watch_path: str, lock_path: str, kind: str, acl: list[ACL] | None = None
    ) -> None:
        async def make() -> zksync.aio.Watcher:
            return zksync.aio.Watcher(client, watch_path, lock_path, kind, acl)

        self.aio = loop().call(make())
        self.path, self.lock_path, self.kind = self.aio.path, self.aio.lock_path, self.aio.kind
        self._session = self.aio._session

    @property
    def watching(self) -> bool:
        return self.aio.watching

    @property
    def closed(self) -> bool:
        return self.aio.closed

    @property
    def error(self) -> zksync.ZkSyncError | None:
        return self.aio.error

    def subscribe(self, buffer: int = 10, timeout: float | None = None) -> WatchSubscription:
        return WatchSubscription(self.aio.subscribe(buffer, timeout))

    def wait_watching(self, timeout: float | None = None) -> None:
        loop().call(self.aio.wait_watching(timeout))

    def close(self) -> None:
        loop().call(self.aio.close())

    def __enter__(self) -> Watcher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class CollectionChanges:
    def __init__(self, changes: zksync.aio.Changes) -> None:
        self.aio = changes

    def get(self, timeout: float | None = None) -> Any:
        return loop().call(self.aio.get(timeout))

    def close(self) -> None:
        self.aio.close()

    def __iter__(self) -> Iterator[Any]:
        return self

    def __next__(self) -> Any:
        try:
            return loop().call(self.aio.__anext__())
        except StopAsyncIteration:
            raise StopIteration from None

    def __enter__(self) -> CollectionChanges:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class CollectionTransaction:
    def __init__(self, transaction: zksync.aio.collection.Transaction) -> None:
        self.aio = transaction

    def put(self, key: str, value: Any, version: int | None = None) -> CollectionTransaction:
        self.aio.put(key, value, version)
        return self

    def insert(self, key: str, value: Any) -> CollectionTransaction:
        self.aio.insert(key, value)
        return self

    def delete(self, key: str, version: int | None = None) -> CollectionTransaction:
        self.aio.delete(key, version)
        return self

    def commit(self, timeout: float | None = None) -> list[int | None]:
        return loop().call(self.aio.commit(timeout))

    def __enter__(self) -> CollectionTransaction:
        return self

    def __exit__(self, kind: type[BaseException] | None, *rest: object) -> None:
        if kind is None:
            self.commit()


class Collection:
    """``zksync.aio.Collection`` called like ``zksync.Collection``: coroutines are run on the
    loop, the replica's plain reads are called as they are."""

    recipe = "Collection"

    def __init__(self, client: KazooClient, path: str, *args: Any, **kwargs: Any) -> None:
        self.aio = zksync.aio.Collection(client, path, *args, **kwargs)
        self.path = self.aio.path
        self._session = self.aio._session
        self._core = self.aio._core

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self.aio, name)
        if not inspect.iscoroutinefunction(attribute):
            return attribute

        def blocking(*args: Any, **kwargs: Any) -> Any:
            return loop().call(attribute(*args, **kwargs))

        return blocking

    def open(self, timeout: float | None = None) -> Collection:
        loop().call(self.aio.open(timeout))
        return self

    def changes(self, timeout: float | None = None) -> CollectionChanges:
        return CollectionChanges(self.aio.changes(timeout))

    def transaction(self) -> CollectionTransaction:
        return CollectionTransaction(self.aio.transaction())

    @property
    def stale(self) -> float:
        return self.aio.stale

    def __len__(self) -> int:
        return len(self.aio)

    def __contains__(self, key: object) -> bool:
        return key in self.aio

    def __iter__(self) -> Iterator[str]:
        return iter(self.aio)

    def __enter__(self) -> Collection:
        return self.open()

    def __exit__(self, *exc: object) -> None:
        loop().call(self.aio.close())


FRONTENDS: dict[str, dict[str, Any]] = {
    "blocking": {
        "RWMutex": zksync.RWMutex,
        "Barrier": zksync.Barrier,
        "DoubleBarrier": zksync.DoubleBarrier,
        "Sync": zksync.Sync,
        "locked": zksync.locked,
        "Watcher": zksync.Watcher,
        "Collection": zksync.Collection,
    },
    "asyncio": {
        "RWMutex": RWMutex,
        "Barrier": Barrier,
        "DoubleBarrier": DoubleBarrier,
        "Sync": Sync,
        "locked": _Locked(),
        "Watcher": Watcher,
        "Collection": Collection,
    },
}


def use_frontend(request: pytest.FixtureRequest, module: ModuleType, monkeypatch: pytest.MonkeyPatch) -> str:
    """Bind the recipe names of a test module to the front-end of this test's parameter."""
    name: str = request.param
    for recipe, implementation in FRONTENDS[name].items():
        if hasattr(module, recipe):
            monkeypatch.setattr(module, recipe, implementation)
    return name
