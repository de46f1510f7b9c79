"""The blocking driver: runs a machine on the calling thread.

Requests go out through kazoo's async calls and the thread waits for each reply for the time
the deadline leaves; a :class:`~zksync._core.effects.Wait` blocks on one event that the
machine's watches and every connection state change set.
"""

from __future__ import annotations

import threading
from typing import Any, TypeVar

from kazoo.handlers.threading import KazooTimeoutError
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
from .._handler import inline
from .._session import SessionWatch
from .._util import Deadline
from . import kazoo as io

T = TypeVar("T")


class _Run(io.RunState):
    """The I/O state of one machine while it runs: its wake-up event and last watch event."""

    def __init__(self, session: SessionWatch) -> None:
        super().__init__(session)
        self.event = threading.Event()
        self.session_wake = self.news_wake = self.event.set

    @inline  # records and wakes, nothing more: may run on the connection thread
    def watch(self, event: WatchedEvent) -> None:
        self.last = event
        self.event.set()

    def reply(self, pending: IAsyncResult, deadline: Deadline, abandon_cleanup: bool = False) -> Any:
        wait = self.session.session_timeout if deadline.try_once else deadline.remaining()
        try:
            return pending.get(timeout=wait)
        except KazooTimeoutError:
            if abandon_cleanup:
                io.delete_if_created(self.session.client, pending)
            raise NoAnswer() from None

    def execute(self, effect: Effect) -> Any:
        if isinstance(effect, Send):
            if getattr(effect.request, "watch", None) is WATCH:
                self.listen()
            pending = io.start(self.session.client, effect.request, self.watch)
            return self.reply(pending, effect.deadline, effect.abandon_cleanup)
        if isinstance(effect, Wait):
            self.listen()
            woken = self.event.wait(effect.deadline.remaining())
            self.event.clear()
            return Wake(self.last) if woken else None
        if isinstance(effect, SendMany):
            started = [io.start(self.session.client, request, self.watch) for request in effect.requests]
            outcomes: list[Any] = []
            for pending in started:
                try:
                    outcomes.append(self.reply(pending, effect.deadline))
                except Exception as exc:
                    outcomes.append(exc)
            return outcomes
        if isinstance(effect, AwaitConnected):
            return self.session.wait_connected(effect.deadline)
        if isinstance(effect, Release):
            pending = io.release_node(self.session, effect.node, effect.handoff)
            if pending is not None and effect.wait > 0:
                pending.wait(min(effect.wait, self.session.session_timeout))
            return None
        handled, outcome = self.local(effect)
        if handled:
            return outcome
        raise TypeError(f"not an effect: {effect!r}")


def run(machine: Machine[T], session: SessionWatch) -> T:
    """Run ``machine`` to its end on this thread and return its result (or raise its error)."""
    io_state = _Run(session)
    value: Any = None
    error: BaseException | None = None
    try:
        while True:
            try:
                effect = machine.throw(error) if error is not None else machine.send(value)
            except StopIteration as stop:
                return stop.value  # type: ignore[no-any-return]
            try:
                value, error = io_state.execute(effect), None
            except BaseException as exc:  # the machine decides: it may clean up, then re-raise
                value, error = None, exc
    finally:
        io_state.close()
        machine.close()
