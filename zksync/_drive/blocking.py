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
    Forget,
    Listen,
    Machine,
    NoAnswer,
    Release,
    Send,
    SendMany,
    Sweep,
    Wait,
    Wake,
    WakeHub,
)
from .._session import SessionWatch
from .._util import Deadline
from . import kazoo as io

T = TypeVar("T")


class _Run:
    """The I/O state of one machine while it runs: its wake-up event and last watch event."""

    __slots__ = ("event", "hubs", "last", "registered", "session")

    def __init__(self, session: SessionWatch) -> None:
        self.session = session
        self.event = threading.Event()
        self.last: WatchedEvent | None = None
        self.registered = False
        self.hubs: list[WakeHub] = []

    def watch(self, event: WatchedEvent) -> None:
        self.last = event
        self.event.set()

    def listen(self) -> None:
        """Connection changes wake us too (kazoo drops watches, with an empty event, when the
        connection is suspended): registered with the session on first need."""
        if not self.registered:
            self.registered = True
            self.session.add_waker(self.event.set)

    def close(self) -> None:
        if self.registered:
            self.session.remove_waker(self.event.set)
        for hub in self.hubs:
            hub.remove(self.event.set)

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
        if isinstance(effect, Forget):
            self.last = None
            return None
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
        if isinstance(effect, Listen):
            self.hubs.append(effect.hub)
            effect.hub.add(self.event.set)
            return None
        if isinstance(effect, Sweep):
            io.sweep_later(self.session, effect.parent, effect.guid, "zksync")
            return None
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
