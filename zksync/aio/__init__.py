"""zksync for asyncio: the same recipes, as coroutines, on the same ``KazooClient``.

    >>> import zksync, zksync.aio
    >>> client = zksync.connect()
    >>> mutex = zksync.aio.RWMutex(client, "/app/lock")
    >>> async with mutex.write(timeout=10) as lease:
    ...     await storage.write(data, fencing_token=lease.fencing_token)

The recipes' logic is the one the blocking API runs (``zksync._core``); here it runs on the
event loop.  kazoo's replies and watch events reach the loop with ``call_soon_threadsafe``; a
waiting coroutine holds no thread.  Cancelling a coroutine that waits for a lock or a barrier
is like its timeout: its node is removed (once the connection is back, if it is suspended).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any, cast

from kazoo.protocol.states import ZnodeStat

from .._core.lock import LeaseBase, held_requests
from .._core.locked import TransactionBase
from .._core.queue import READ, WRITE, Kind
from .._drive.aio import Expired, run, within
from .._session import SessionWatch
from .._util import check_timeout
from ..barrier import BarrierBase, DoubleBarrierBase
from ..errors import LockLost
from ..rwmutex import RWMutexBase
from . import locked
from .collection import Changes, Collection
from .sync import Subscription, Sync
from .watcher import Watcher, WatchSubscription

__all__ = [
    "Barrier",
    "Changes",
    "Collection",
    "DoubleBarrier",
    "Lease",
    "RWMutex",
    "Subscription",
    "Sync",
    "Transaction",
    "WatchSubscription",
    "Watcher",
    "locked",
]


class Lease(LeaseBase):
    """A held lock (see :class:`zksync.Lease`); its loss can be awaited."""

    def __init__(self, path: str, mode: str, node: str, stat: ZnodeStat, session_id: int | None) -> None:
        super().__init__(path, mode, node, stat, session_id)
        self._loss_waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = []

    def _notify_lost(self) -> None:  # on the thread that saw the loss
        with self._lock:
            waiters, self._loss_waiters = self._loss_waiters, []
        for loop, future in waiters:
            try:
                loop.call_soon_threadsafe(_resolve, future)
            except RuntimeError:  # that loop is closed
                pass

    async def wait_lost(self, timeout: float | None = None) -> bool:
        """Wait until the lease is lost (True) or ``timeout`` seconds pass (False)."""
        timeout = check_timeout(timeout)
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        with self._lock:
            if self._lost:
                return True
            self._loss_waiters.append((loop, future))
        try:
            await within(future, timeout)
            return True
        except Expired:
            return False
        finally:
            with self._lock:
                if (loop, future) in self._loss_waiters:
                    self._loss_waiters.remove((loop, future))

    def transaction(self) -> Transaction:
        """Writes that land together, and only while this lease holds its lock (see
        :meth:`zksync.Lease.transaction`); ``async with lease.transaction() as t:`` commits
        on leaving the block."""
        return Transaction(self, held_requests(self))


class Transaction(TransactionBase):
    """Writes under a held lease, committed with ``await t.commit()``."""

    async def commit(self, timeout: float | None = None) -> list[Any]:
        return await run(self._commit(timeout), cast(SessionWatch, self.requests.session))

    async def __aenter__(self) -> Transaction:
        return self

    async def __aexit__(self, kind: type[BaseException] | None, *rest: object) -> None:
        if kind is None:
            await self.commit()


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


class RWMutex(RWMutexBase[Lease]):
    """A distributed readers-writer lock at ``path``, for asyncio (see :class:`zksync.RWMutex`:
    same nodes, same rules; the two exclude each other)."""

    lease_type = Lease

    async def lock(self, timeout: float | None = None) -> Lease:
        """Acquire the write lock; :class:`~zksync.Timeout` after ``timeout`` seconds."""
        return await run(self._engine.acquire(WRITE, timeout), self._session)

    async def rlock(self, timeout: float | None = None) -> Lease:
        """Acquire a read lock; :class:`~zksync.Timeout` after ``timeout`` seconds."""
        return await run(self._engine.acquire(READ, timeout), self._session)

    async def unlock(self) -> None:
        await run(self._engine.release(WRITE), self._session)

    async def runlock(self) -> None:
        await run(self._engine.release(READ), self._session)

    def write(self, timeout: float | None = None) -> contextlib.AbstractAsyncContextManager[Lease]:
        """``async with m.write(timeout) as lease:`` holds the write lock for the block; leaving
        a block during which the lock was lost raises :class:`~zksync.LockLost`."""
        return self._held(WRITE, timeout)

    def read(self, timeout: float | None = None) -> contextlib.AbstractAsyncContextManager[Lease]:
        """``async with m.read(timeout) as lease:`` holds a read lock for the block."""
        return self._held(READ, timeout)

    async def queue(self, timeout: float | None = None) -> list[tuple[str, str]]:
        return await run(self._engine.queue(timeout), self._session)

    async def break_lock(self, timeout: float | None = None) -> int:
        return await run(self._engine.break_lock(timeout), self._session)

    @contextlib.asynccontextmanager
    async def _held(self, kind: Kind, timeout: float | None) -> AsyncIterator[Lease]:
        lease = await run(self._engine.acquire(kind, timeout), self._session)
        try:
            yield lease
        except BaseException:
            await run(self._engine.release(kind), self._session)
            raise
        lost = lease.lost
        await run(self._engine.release(kind), self._session)
        if lost:
            raise LockLost(f"lock lost inside the block: {lease.lost_reason}", path=self.path, recipe=self.recipe)


class Barrier(BarrierBase):
    """A barrier that holds waiters back while it is set (see :class:`zksync.Barrier`)."""

    async def set(self) -> bool:
        return await run(self._core.set(), self._session)

    async def unset(self) -> bool:
        return await run(self._core.unset(), self._session)

    async def is_set(self) -> bool:
        return await run(self._core.is_set(), self._session)

    async def wait(self, timeout: float | None = None) -> None:
        """Return once the barrier is not set; :class:`~zksync.Timeout` after ``timeout``."""
        await run(self._core.wait(timeout), self._session)


class DoubleBarrier(DoubleBarrierBase):
    """N participants enter together and leave together (see :class:`zksync.DoubleBarrier`)."""

    async def enter(self, timeout: float | None = None) -> None:
        await run(self._core.enter(timeout), self._session)

    async def exit(self, timeout: float | None = None) -> None:
        await run(self._core.exit(timeout), self._session)

    async def present(self, timeout: float | None = None) -> list[str]:
        return await run(self._core.present(timeout), self._session)

    async def evict(self, identifier: str, timeout: float | None = None) -> int:
        return await run(self._core.evict(identifier, timeout), self._session)

    async def __aenter__(self) -> DoubleBarrier:
        await self.enter()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.exit()
