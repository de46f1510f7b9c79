"""The Collection for asyncio: :class:`zksync.Collection` with awaitable writes and waits, on the
same core, layout and replica.

    async with zksync.aio.Collection(client, "/app/fortunes") as fortunes:
        await fortunes.put(f"fortune-{me}-1", "Today is your lucky day")
        await fortunes.update(f"numFortunes-{me}", lambda n: n + 1, default=0)
        for key, text in fortunes.scan("fortune-"):      # from the replica: no await
            ...
        async for change in fortunes.changes(timeout=60):
            ...

Reads from the replica (``get``, ``scan``, ``keys``, ``items``, ``len``, ``stale``) are plain
calls, as in the blocking API.  Writes run the core's machines on the event loop; a coroutine
waiting for a change (``changes()``, ``wait_for``, ``sync``) is a future, woken from kazoo's
threads with ``call_soon_threadsafe``.  Opening sets the collection's watch through
:mod:`zksync._watches`, which waits on a worker thread for the server's answer.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

from .._collection_follow import ChangeQueue, Follower
from .._collection_queue import QueuedWrite
from .._core.collection.service import ABSENT
from .._drive.aio import Expired, run, within
from .._util import Deadline, check_timeout
from ..collection import Changed, CollectionBase, TransactionBase
from ..errors import Timeout

__all__ = ["Changes", "Collection", "Transaction"]


async def wait(follower: Follower, ready: Callable[[], Any], timeout: float | None, what: str) -> Any:
    """The first true ``ready()``, checked after every change of the replica; :class:`Timeout`."""
    loop = asyncio.get_running_loop()
    deadline = Deadline(timeout)
    current: list[asyncio.Future[None]] = []

    def woken() -> None:
        if current and not current[0].done():
            current[0].set_result(None)

    def wake() -> None:  # on kazoo's threads, with the follower's lock held
        try:
            loop.call_soon_threadsafe(woken)
        except RuntimeError:  # the loop is closed: nobody waits any more
            pass

    with follower.cond:
        follower.wakers.add(wake)
    try:
        while True:
            current[:] = [loop.create_future()]
            with follower.cond:
                value = follower.poll(ready)
            if value:
                return value
            left = deadline.remaining()
            if left is not None and left <= 0:
                raise follower.wait_timeout(what)
            try:
                await within(current[0], left)
            except Expired:
                pass
    finally:
        with follower.cond:
            follower.wakers.discard(wake)


class Transaction(TransactionBase):
    """Writes to several keys that land together or not at all (see
    :meth:`Collection.transaction`): ``await tx.commit()`` or ``async with``."""

    async def commit(self, timeout: float | None = None) -> list[int | None]:
        """Send every write at once; each one's new version (None: deleted)."""
        c = self._collection
        assert isinstance(c, Collection)
        c._check_writable()
        await c._after_queued(timeout)
        rows = await run(c._core.commit(self.ops, timeout), c._session)
        c._follower.flush()
        return self._versions(rows)

    async def __aenter__(self) -> Transaction:
        return self

    async def __aexit__(self, kind: type[BaseException] | None, *rest: object) -> None:
        if kind is None:
            await self.commit()


class Changes:
    """The changes of a collection as they reach its replica, in zxid order: ``async for``."""

    def __init__(self, collection: Collection, queue: ChangeQueue, timeout: float | None) -> None:
        self._collection = collection
        self._queue = queue
        self._timeout = timeout

    async def get(self, timeout: float | None = None) -> Changed | None:
        """The next change, None once closed; :class:`~zksync.Timeout` after ``timeout``."""
        (change,) = await wait(self._collection._follower, self._queue.take, timeout, "a change")
        return None if change is None else self._collection._changed(change)

    def __aiter__(self) -> AsyncIterator[Changed]:
        return self

    async def __anext__(self) -> Changed:
        change = await self.get(self._timeout)
        if change is None:
            raise StopAsyncIteration
        return change

    def close(self) -> None:
        self._queue.close()

    async def __aenter__(self) -> Changes:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()


class Collection(CollectionBase):
    """A shared key/value collection at ``path`` with a local replica (see
    :class:`zksync.Collection`), for coroutines."""

    async def open(self, timeout: float | None = None) -> Collection:
        """Join the collection (creating it when new), follow it and load its rows."""
        await asyncio.to_thread(self._follower.start, timeout)
        try:
            await run(self._core.open(timeout), self._session)
        except BaseException:
            self._follower.stop()
            raise
        self._opened()
        return self

    async def close(self, timeout: float | None = None) -> None:
        """Leave the collection; the replica keeps what it had."""
        if self._open:
            self._open = False
            self._close_queue()
            self._follower.stop()
            await run(self._core.close(timeout), self._session)

    async def sync(self, timeout: float | None = None) -> None:
        """Wait until the replica shows every write that had completed anywhere when called
        (see :meth:`zksync.Collection.sync`)."""
        self._check_open()
        follower = self._follower
        deadline = Deadline(timeout)
        await run(self._core.requests.sync(self._core.root, deadline), self._session)
        loop = asyncio.get_running_loop()
        marker: asyncio.Future[int] = loop.create_future()

        def settle(ticket: int) -> None:
            if not marker.done():
                marker.set_result(ticket)

        def passed(ticket: int) -> None:  # on kazoo's event thread
            loop.call_soon_threadsafe(settle, ticket)

        follower.mark(passed)
        try:
            ticket = await within(marker, deadline.remaining())
        except Expired:
            raise follower.marker_timeout() from None
        replica = self._core.replica
        await wait(follower, lambda: replica.answered(ticket), deadline.remaining(), "the replica to catch up")

    def changes(self, timeout: float | None = None) -> Changes:
        """An async iterator over the changes from now on (``timeout``: the most to wait for each)."""
        self._check_open()
        return Changes(self, self._follower.subscribe(), timeout)

    async def wait_for(
        self, key: str, predicate: Callable[[Any], bool] | None = None, timeout: float | None = None
    ) -> Any:
        """Wait until the replica holds ``key`` (with a value ``predicate`` accepts) and return
        the value; :class:`~zksync.Timeout` after ``timeout`` seconds."""
        return (await wait(self._follower, self._ready(key, predicate), timeout, f"{key!r} in the replica"))[0]

    async def refresh(self, timeout: float | None = None) -> None:
        """Read every row again (the watch keeps the replica current; this is for doubt)."""
        self._check_open()
        await run(self._core.load(self._core._deadline(timeout)), self._session)
        self._follower.flush()

    async def put(
        self, key: str, value: Any, version: int | None = None, timeout: float | None = None
    ) -> int | QueuedWrite:
        """Write ``key`` (see :meth:`zksync.Collection.put`); returns the new version, or the
        :class:`QueuedWrite` kept with ``offline="queue"`` (``await asyncio.wrap_future(w)``)."""
        encoded = self.codec.encode(value)
        queued = self._offer("put", key, encoded, version)
        if queued is not None:
            return queued
        await self._after_queued(timeout)
        row = await run(self._core.put(key, encoded, version, timeout), self._session)
        self._follower.flush()
        return row.version

    async def insert(self, key: str, value: Any, timeout: float | None = None) -> int:
        """Write ``key`` only if it does not exist (:class:`~zksync.NodeExists` otherwise)."""
        version = await self.put(key, value, ABSENT, timeout)
        assert isinstance(version, int)  # a conditional write is never queued
        return version

    async def delete(self, key: str, version: int | None = None, timeout: float | None = None) -> bool | QueuedWrite:
        """Delete ``key`` (only at ``version``, when given); False when it was not there (or
        the :class:`QueuedWrite` kept with ``offline="queue"``)."""
        queued = self._offer("delete", key, None, version)
        if queued is not None:
            return queued
        await self._after_queued(timeout)
        deleted = await run(self._core.delete(key, version, timeout), self._session)
        self._follower.flush()
        return deleted

    async def drain(self, timeout: float | None = None) -> None:
        """Wait until every queued write is applied or has failed; :class:`~zksync.Timeout`."""
        queue = self._queue
        if queue is not None and len(queue) and not await asyncio.to_thread(queue.wait_empty, check_timeout(timeout)):
            raise Timeout(f"{len(queue)} queued writes are still waiting", path=self.path, recipe=self.recipe)

    async def _after_queued(self, timeout: float | None) -> None:
        if self._queued_ahead():
            await self.drain(timeout)

    async def update(
        self, key: str, change: Callable[[Any], Any], default: Any = None, timeout: float | None = None
    ) -> Any:
        """Write ``change(current)`` with a compare-and-set until it lands (see
        :meth:`zksync.Collection.update`); returns the value written."""
        self._check_writable()
        await self._after_queued(timeout)
        row = await run(self._core.update(key, self._encoder(change, default), timeout), self._session)
        self._follower.flush()
        assert row is not None
        return self.codec.decode(row.value)

    def transaction(self) -> Transaction:
        return Transaction(self)

    async def members(self, timeout: float | None = None) -> list[str]:
        """The members that have the collection open now."""
        return await run(self._core.members(timeout), self._session)

    async def __aenter__(self) -> Collection:
        return await self.open()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
