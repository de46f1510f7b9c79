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
import os
import socket
from collections.abc import AsyncIterator

from kazoo.client import KazooClient
from kazoo.protocol.states import ZnodeStat
from kazoo.security import ACL

from .._core.barrier import BarrierCore, DoubleBarrierCore
from .._core.lock import LeaseBase, LockEngine
from .._core.queue import READ, WRITE, Kind
from .._core.requests import Requests
from .._drive.aio import Expired, run, within
from .._session import session_for
from .._util import check_acl, check_name, check_path, check_timeout
from ..barrier import check_participants
from ..errors import LockLost
from .sync import Subscription, Sync

__all__ = ["Barrier", "DoubleBarrier", "Lease", "RWMutex", "Subscription", "Sync"]


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


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


class RWMutex:
    """A distributed readers-writer lock at ``path``, for asyncio (see :class:`zksync.RWMutex`:
    same nodes, same rules; the two exclude each other)."""

    recipe = "RWMutex"

    def __init__(self, client: KazooClient, path: str, acl: list[ACL] | None = None) -> None:
        self.path = check_path(path, self.recipe)
        self.acl = check_acl(acl, self.recipe)
        self._session = session_for(client, self.recipe)
        self._engine = LockEngine(Requests(self._session, self.recipe, self.path), self.acl, Lease)

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

    @property
    def lease(self) -> Lease | None:
        return self._engine.lease

    @property
    def fencing_token(self) -> int | None:
        lease = self._engine.lease
        return lease.fencing_token if lease is not None else None

    @property
    def held(self) -> str | None:
        lease = self._engine.lease
        return lease.mode if lease is not None else None

    def check(self) -> None:
        """Raise :class:`~zksync.LockLost` if the held lock was lost, NotHeld if none is held."""
        self._engine.check()

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


class Barrier:
    """A barrier that holds waiters back while it is set (see :class:`zksync.Barrier`)."""

    recipe = "Barrier"

    def __init__(self, client: KazooClient, path: str, acl: list[ACL] | None = None) -> None:
        self.path = check_path(path, self.recipe)
        self.acl = check_acl(acl, self.recipe)
        self._session = session_for(client, self.recipe)
        self._core = BarrierCore(Requests(self._session, self.recipe, self.path), self.acl)

    async def set(self) -> bool:
        return await run(self._core.set(), self._session)

    async def unset(self) -> bool:
        return await run(self._core.unset(), self._session)

    async def is_set(self) -> bool:
        return await run(self._core.is_set(), self._session)

    async def wait(self, timeout: float | None = None) -> None:
        """Return once the barrier is not set; :class:`~zksync.Timeout` after ``timeout``."""
        await run(self._core.wait(timeout), self._session)


class DoubleBarrier:
    """N participants enter together and leave together (see :class:`zksync.DoubleBarrier`)."""

    recipe = "DoubleBarrier"

    def __init__(
        self,
        client: KazooClient,
        path: str,
        participants: int,
        identifier: str | None = None,
        acl: list[ACL] | None = None,
    ) -> None:
        self.path = check_path(path, self.recipe)
        self.participants = check_participants(participants, self.path, self.recipe)
        if identifier is None:
            identifier = f"{socket.gethostname()}-{os.getpid()}"
        self.identifier = check_name(identifier, "identifier", self.recipe)
        self.acl = check_acl(acl, self.recipe)
        self._session = session_for(client, self.recipe)
        requests = Requests(self._session, self.recipe, self.path)
        self._core = DoubleBarrierCore(requests, self.participants, self.identifier, self.acl)

    @property
    def entered(self) -> bool:
        return self._core.entered

    @property
    def node(self) -> str | None:
        return self._core.node

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
