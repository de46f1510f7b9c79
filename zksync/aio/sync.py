"""The sync service for asyncio: the blocking :class:`zksync.Sync`'s calls, as coroutines.

    sync = zksync.aio.Sync(client, "my-run")
    seq = await sync.signal_and_wait("ready", target=10, timeout=60)
    await sync.publish("addresses", {"id": seq, "addr": "10.0.0.5:9000"})
    async for payload in sync.subscribe("addresses", timeout=30): ...

Cancelling a coroutine that waits at a barrier ends its wait and nothing else: a signal that
was made stays made (it counts for everyone).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from kazoo.client import KazooClient

from .._core.effects import Machine
from .._core.sync import END
from .._core.sync import Subscription as SubscriptionCore
from .._drive.aio import run
from .._session import SessionWatch
from ..sync import SyncBase, namespace_from_env

__all__ = ["Subscription", "Sync"]


class Subscription:
    """An async iterator over a topic's payloads in publish order; it ends when closed, or
    when no new payload arrives within its timeout."""

    def __init__(self, core: SubscriptionCore, session: SessionWatch) -> None:
        self._core = core
        self._session = session

    def close(self) -> None:
        self._core.close()

    def __aiter__(self) -> AsyncIterator[Any]:
        return self

    async def __anext__(self) -> Any:
        payload = await run(self._core.next(), self._session)
        if payload is END:
            raise StopAsyncIteration
        return payload


class Sync(SyncBase):
    """The sync service of one run (``namespace``) for one instance (see :class:`zksync.Sync`)."""

    @classmethod
    def from_env(cls, client: KazooClient | None = None) -> Sync:
        from .. import connect

        namespace, instance, count = namespace_from_env()
        return cls(client or connect(), namespace, instance, count)

    async def _run(self, machine: Machine[Any]) -> Any:
        return await run(machine, self._session)

    async def join(self, timeout: float | None = None) -> None:
        await self._run(self._core.join(self._core.deadline(timeout)))

    async def leave(self) -> None:
        await self._run(self._core.leave())

    async def signal_entry(self, state: str, timeout: float | None = None) -> int:
        seq: int = await self._run(self._core.signal_entry(state, timeout))
        return seq

    async def barrier(self, state: str, target: int, timeout: float | None = None) -> None:
        """Return once at least ``target`` signals of ``state`` were made (errors as in
        :meth:`zksync.Sync.barrier`)."""
        await self._run(self._core.barrier(state, target, timeout))

    async def signal_and_wait(self, state: str, target: int, timeout: float | None = None) -> int:
        seq: int = await self._run(self._core.signal_and_wait(state, target, timeout))
        return seq

    async def abort(self, state: str, reason: str = "aborted") -> None:
        await self._run(self._core.abort(state, reason))

    async def publish(self, topic: str, payload: Any, timeout: float | None = None) -> int:
        seq: int = await self._run(self._core.publish(topic, payload, timeout))
        return seq

    def subscribe(self, topic: str, start: int = 1, timeout: float | None = None) -> Subscription:
        """``async for payload in sync.subscribe(topic):`` payloads in publish order from ``start``."""
        return Subscription(self._core.subscription(topic, start, timeout), self._session)

    async def publish_and_wait(
        self, topic: str, payload: Any, state: str, target: int, timeout: float | None = None
    ) -> int:
        seq: int = await self._run(self._core.publish_and_wait(topic, payload, state, target, timeout))
        return seq

    async def publish_subscribe(
        self, topic: str, payload: Any, timeout: float | None = None
    ) -> tuple[int, Subscription]:
        seq = await self.publish(topic, payload, timeout)
        return seq, self.subscribe(topic, 1, timeout)

    async def exchange(self, key: str, data: Any, participants: int, timeout: float | None = None) -> dict[str, Any]:
        result: dict[str, Any] = await self._run(self._core.exchange(key, data, participants, timeout))
        return result

    async def counts(self) -> dict[str, int]:
        result: dict[str, int] = await self._run(self._core.counts())
        return result

    async def cleanup(self, timeout: float | None = None) -> None:
        await self._run(self._core.cleanup(timeout))
