"""The Watcher for asyncio: the blocking :class:`zksync.Watcher` with ``async for`` and
awaitable calls, on the same core.

    async with zksync.aio.Watcher(client, "/app/config", "/app/config-lock", "data") as watcher:
        await watcher.wait_watching(timeout=10)
        async for event in watcher.subscribe(timeout=60):
            apply(event.data)

The watcher runs as a task on the event loop it was made on; a waiting subscriber is a future,
with no thread of its own.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from kazoo.client import KazooClient
from kazoo.security import ACL

from .._core.watcher import DEFAULT_BUFFER, END, RECIPE, WatchEvent
from .._drive.aio import run
from ..errors import InvalidState
from ..watcher import WatcherBase, WatchSubscriptionBase

__all__ = ["WatchSubscription", "Watcher"]

_running: set[asyncio.Task[None]] = set()  # a task is only weakly held by its loop


class WatchSubscription(WatchSubscriptionBase):
    """One subscriber's events, in order (see :class:`zksync.WatchSubscription`): ``async for``,
    or ``await get()``."""

    async def get(self, timeout: float | None = None) -> WatchEvent:
        """The next event, waiting up to ``timeout`` seconds (None: until an event or the end);
        errors as in :meth:`zksync.WatchSubscription.get`."""
        event = await run(self._core.next(timeout), self._session)
        if event is END:
            raise self._ended()
        assert isinstance(event, WatchEvent)
        return event

    def __aiter__(self) -> AsyncIterator[WatchEvent]:
        return self

    async def __anext__(self) -> WatchEvent:
        event = await run(self._core.next(self._core.timeout), self._session)
        if event is END:
            raise StopAsyncIteration
        assert isinstance(event, WatchEvent)
        return event

    def __enter__(self) -> WatchSubscription:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Watcher(WatcherBase):
    """A watch on ``watch_path`` set under a read lock on ``lock_path`` (see
    :class:`zksync.Watcher`), run as a task of the running event loop: make it in a coroutine."""

    def __init__(
        self, client: KazooClient, watch_path: str, lock_path: str, kind: str, acl: list[ACL] | None = None
    ) -> None:
        super().__init__(client, watch_path, lock_path, kind, acl)
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            raise InvalidState(
                "zksync.aio.Watcher runs on the event loop: make it inside a coroutine", path=self.path, recipe=RECIPE
            ) from None
        self._task = loop.create_task(run(self._core.run(), self._session), name=f"zksync-watcher {self.path}")
        _running.add(self._task)
        self._task.add_done_callback(_running.discard)

    def subscribe(self, buffer: int = DEFAULT_BUFFER, timeout: float | None = None) -> WatchSubscription:
        """A new subscriber, for the events from now on (see :meth:`zksync.Watcher.subscribe`)."""
        return WatchSubscription(self._core.subscribe(buffer, timeout), self._session)

    async def wait_watching(self, timeout: float | None = None) -> None:
        """Return once the watch is set (see :meth:`zksync.Watcher.wait_watching`)."""
        await run(self._core.wait_watching(timeout), self._session)

    async def close(self) -> None:
        """Stop setting the watch, end every subscription (after what each has buffered) and
        wait (for a session timeout at most) until the watcher's task is done."""
        self._core.close()
        if self._task is not asyncio.current_task():
            await asyncio.wait({self._task}, timeout=max(1.0, self._session.session_timeout))

    async def __aenter__(self) -> Watcher:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
