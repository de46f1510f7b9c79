"""The asyncio driver: runs a machine as a coroutine on the running event loop.

kazoo answers on its own threads; every reply, watch event and connection change is handed to
the loop with ``call_soon_threadsafe`` and resolves a future the coroutine awaits.  No thread
is started for a waiting coroutine: a thousand waiters are a thousand futures.

Cancellation is one more outcome: a ``CancelledError`` raised while the coroutine awaits is
thrown into the machine, which cleans up as it does on a timeout (its node is deleted, at once
or once the connection is back) and re-raises it.
"""

from __future__ import annotations

import asyncio
import sys
from typing import Any, TypeVar

from kazoo.interfaces import IAsyncResult
from kazoo.protocol.states import WatchedEvent

from .._core.effects import (
    WATCH,
    AwaitConnected,
    Effect,
    Machine,
    NoAnswer,
    Release,
    Send,
    SendMany,
    Wait,
    Wake,
)
from .._core.queue import CLEANUP_WAIT
from .._handler import inline
from .._session import SessionWatch
from .._util import Deadline
from ..errors import SessionExpired
from . import kazoo as io

T = TypeVar("T")

CONNECTION_POLL = 0.5  # seconds between looks at the connection while waiting for it


class Expired(Exception):
    """Set on a future by :func:`within` when its time is up."""


def _expire(future: asyncio.Future[Any]) -> None:
    if not future.done():
        future.set_exception(Expired())


async def within(future: asyncio.Future[T], timeout: float | None) -> T:
    """Await ``future`` for at most ``timeout`` seconds (None: no limit); :class:`Expired` when
    the time is up.  Unlike ``asyncio.wait_for`` on Python 3.11, a cancellation that arrives
    together with the result is never swallowed: the caller is cancelled all the same."""
    handle = None if timeout is None else future.get_loop().call_later(max(0.0, timeout), _expire, future)
    try:
        return await future
    finally:
        if handle is not None:
            handle.cancel()


def _settle(future: asyncio.Future[Any], result: IAsyncResult) -> None:
    if future.done():
        return
    exc = result.exception
    if exc is not None:
        future.set_exception(exc)
    else:
        future.set_result(result.value)


def _resolve(future: asyncio.Future[Any] | None) -> None:
    if future is not None and not future.done():
        future.set_result(None)


class _Run(io.RunState):
    """The I/O state of one machine while it runs on ``loop``."""

    def __init__(self, session: SessionWatch, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__(session)
        self.loop = loop
        self.woken = False
        self.pending: asyncio.Future[None] | None = None  # a Wait in progress
        self.connection: asyncio.Future[None] | None = None  # an AwaitConnected in progress
        self.session_wake = self.session_changed
        self.news_wake = self.poke

    # ---- called on kazoo's threads -------------------------------------------------------
    def _post(self, callback: Any, *args: Any) -> None:
        try:
            self.loop.call_soon_threadsafe(callback, *args)
        except RuntimeError:  # the loop is closed: nobody waits any more
            pass

    @inline  # records and wakes, nothing more: may run on the connection thread
    def watch(self, event: WatchedEvent) -> None:
        self._post(self._watched, event)

    def session_changed(self) -> None:
        self._post(self._session_changed)

    def poke(self) -> None:
        self._post(self._poked)

    # ---- on the loop ---------------------------------------------------------------------
    def _watched(self, event: WatchedEvent) -> None:
        self.last = event
        self.woken = True
        _resolve(self.pending)

    def _poked(self) -> None:
        self.woken = True
        _resolve(self.pending)

    def _session_changed(self) -> None:
        self.woken = True
        _resolve(self.pending)
        _resolve(self.connection)

    def bridge(self, pending: IAsyncResult) -> asyncio.Future[Any]:
        future: asyncio.Future[Any] = self.loop.create_future()
        pending.rawlink(inline(lambda result: self._post(_settle, future, result)))  # no completion-thread hop
        return future

    async def reply(self, pending: IAsyncResult, deadline: Deadline, abandon_cleanup: bool = False) -> Any:
        wait = self.session.session_timeout if deadline.try_once else deadline.remaining()
        try:
            return await within(self.bridge(pending), wait)
        except Expired:
            if abandon_cleanup:
                io.delete_if_created(self.session.client, pending)
            raise NoAnswer() from None
        except asyncio.CancelledError:
            if abandon_cleanup:
                await self.undo_create(pending)
            raise

    async def undo_create(self, pending: IAsyncResult) -> None:
        """A cancelled coroutine's create: like a timed-out one, whatever it made is deleted,
        and the cancellation completes once that is done (or after a bounded wait)."""
        try:
            created = await within(self.bridge(pending), CLEANUP_WAIT)
        except (Expired, asyncio.CancelledError):
            io.delete_if_created(self.session.client, pending)  # whenever it lands
            if isinstance(sys.exc_info()[1], asyncio.CancelledError):
                raise
            return
        except Exception:  # the create failed: nothing was made
            return
        deleting = io.release_node(self.session, created[0] if isinstance(created, tuple) else created)
        if deleting is not None:
            try:
                await within(self.bridge(deleting), CLEANUP_WAIT)
            except Exception:  # the release reports its own failures (deferred delete)
                pass

    async def wait(self, deadline: Deadline) -> Wake | None:
        self.listen()
        if not self.woken:
            self.pending = self.loop.create_future()
            try:
                await within(self.pending, deadline.remaining())
            except Expired:
                return None
            finally:
                self.pending = None
        self.woken = False
        return Wake(self.last)

    async def wait_connected(self, deadline: Deadline) -> bool:
        self.listen()
        while True:
            if self.session.stopped():
                raise SessionExpired("the client was stopped")
            if self.session.link_up():
                return True
            remaining = deadline.remaining()
            if remaining is not None and remaining <= 0:
                return False
            self.connection = self.loop.create_future()
            try:
                step = CONNECTION_POLL if remaining is None else min(CONNECTION_POLL, remaining)
                await within(self.connection, step)
            except Expired:
                pass
            finally:
                self.connection = None

    async def execute(self, effect: Effect) -> Any:
        if isinstance(effect, Send):
            if getattr(effect.request, "watch", None) is WATCH:
                self.listen()
            pending = io.start(self.session.client, effect.request, self.watch)
            return await self.reply(pending, effect.deadline, effect.abandon_cleanup)
        if isinstance(effect, Wait):
            return await self.wait(effect.deadline)
        if isinstance(effect, SendMany):
            started = [io.start(self.session.client, request, self.watch) for request in effect.requests]
            outcomes: list[Any] = []
            for pending in started:
                try:
                    outcomes.append(await self.reply(pending, effect.deadline))
                except Exception as exc:
                    outcomes.append(exc)
            return outcomes
        if isinstance(effect, AwaitConnected):
            return await self.wait_connected(effect.deadline)
        if isinstance(effect, Release):
            released = io.release_node(self.session, effect.node, effect.handoff)
            if released is not None and effect.wait > 0:
                try:
                    await within(self.bridge(released), min(effect.wait, self.session.session_timeout))
                except Exception:  # the release reports its own failures (deferred delete)
                    pass
            return None
        handled, outcome = self.local(effect)
        if handled:
            return outcome
        raise TypeError(f"not an effect: {effect!r}")


async def run(machine: Machine[T], session: SessionWatch) -> T:
    """Run ``machine`` to its end as a coroutine and return its result (or raise its error)."""
    state = _Run(session, asyncio.get_running_loop())
    value: Any = None
    error: BaseException | None = None
    try:
        while True:
            try:
                effect = machine.throw(error) if error is not None else machine.send(value)
            except StopIteration as stop:
                return stop.value  # type: ignore[no-any-return]
            try:
                value, error = await state.execute(effect), None
            except BaseException as exc:  # cancellation too: the machine cleans up, then re-raises
                value, error = None, exc
    finally:
        state.close()
        machine.close()
