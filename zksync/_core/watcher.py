"""Watcher: one ZooKeeper watch on a node, set under a read lock, set again after every event,
and each event fanned out to the watcher's subscribers.

A *round* takes a read lock on ``lock_path`` (the lock engine's ``read`` kind, so a writer that
holds the write lock there delays it), sets the watch with one read of ``watch_path`` (``get``,
``exists`` or ``getChildren``; a data or children watch on a missing node becomes an ``exists``
watch, which fires when it is created) and releases the lock.  The watcher then waits for the
notification; each notification starts the next round, and the event given to the subscribers
carries what that round read: the node's stat, and its data or children.  A round costs four
requests when the lock is free: create, getChildren (the lock), the read, the release.

Connection and session.  kazoo drops every watch of a client when its connection is suspended
(it fires an empty event); the session watch counts these drops (``disconnections``).  After
one, the watcher waits for the connection, runs a round again and compares what it reads with
the round before: a change made while it was disconnected, whose notification was lost, is
reported then (``after_reconnect``).  A round that fails on a lost connection, or on a request
left unanswered for a session timeout, is tried again once the connection is back.  The
watcher ends when the session does (``expirations``, a new session id, or the client stopped):
subscribers receive what is buffered, then :class:`~zksync.SessionExpired`.

Subscribers.  Each has a bounded buffer; an event that finds it full is counted, not queued, and
the next event it receives says how many it missed.  The watch is the watcher's, one on the
server however many subscribe; closing the watcher ends every subscription after its buffer.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from dataclasses import dataclass, replace
from typing import Any, Protocol, TypeVar

from kazoo import exceptions as kz
from kazoo.protocol.states import EventType, WatchedEvent, ZnodeStat
from kazoo.security import ACL

from .._util import Deadline, check_timeout
from ..errors import ConnectionLost, InvalidArgument, InvalidState, SessionExpired, Timeout, ZkSyncError
from .effects import WATCH, AwaitConnected, Effect, Forget, GetChildren, Listen, Machine, Send, SendMany, Wait, WakeHub
from .lock import LeaseBase, LockEngine
from .queue import READ
from .requests import Requests, Session

log = logging.getLogger("zksync.watcher")

T = TypeVar("T")

RECIPE = "Watcher"
KINDS = ("data", "exists", "children")
DEFAULT_BUFFER = 10
CONNECTION_SLICE = 0.5  # seconds: a wait for the connection looks for a close this often
END = object()  # what :meth:`SubscriptionCore.next` returns once a subscription ended cleanly

# kazoo's event type names
CREATED: str = EventType.CREATED
DELETED: str = EventType.DELETED
CHANGED: str = EventType.CHANGED
CHILD: str = EventType.CHILD
NONE: str = EventType.NONE


class WatchSession(Session, Protocol):
    """What the watcher asks of the session besides what every machine may ask."""

    @property
    def disconnections(self) -> int: ...

    @property
    def expirations(self) -> int: ...


@dataclass(frozen=True)
class WatchEvent:
    """One change of the watched node, as one subscriber receives it.

    ``type`` is kazoo's name for it: ``"CREATED"``, ``"DELETED"``, ``"CHANGED"`` (its data) or
    ``"CHILD"`` (its children).  ``stat``, ``data`` (a data watch) and ``children`` (a children
    watch, sorted) are what the watcher read when it set the watch again after the event, under
    the read lock; ``stat`` is None when the node did not exist then.  That read may already
    include later changes: a watch is one-shot, and what changes before it is set again is seen
    together.  ``zxid`` is the transaction of the newest change the read reflects (the node's
    ``mzxid``; ``pzxid`` for a children watch; None without a node).  ``missed`` counts the
    events this subscriber missed just before this one, its buffer being full.
    ``after_reconnect`` marks a change found by reading again after a lost connection (its
    notification, if there was one, was lost with the connection)."""

    type: str
    path: str
    stat: ZnodeStat | None
    zxid: int | None
    data: bytes | None = None
    children: tuple[str, ...] | None = None
    missed: int = 0
    after_reconnect: bool = False


@dataclass(frozen=True)
class Read:
    """What one round read: the stat (None: no node), and the data or the children."""

    stat: ZnodeStat | None
    data: bytes | None = None
    children: tuple[str, ...] | None = None


def check_kind(kind: object) -> str:
    if not isinstance(kind, str) or kind not in KINDS:
        raise InvalidArgument(f"kind must be one of {', '.join(map(repr, KINDS))}, got {kind!r}", recipe=RECIPE)
    return kind


def check_buffer(buffer: object) -> int:
    if isinstance(buffer, bool) or not isinstance(buffer, int) or buffer < 1:
        raise InvalidArgument(f"buffer must be an int >= 1, got {buffer!r}", recipe=RECIPE)
    return buffer


def check_paths(watch_path: str, lock_path: str) -> None:
    """The watched node must not be the lock's node or one of its lock nodes: the read lock's
    own nodes would fire the watch."""
    if watch_path == lock_path or watch_path.startswith(f"{lock_path}/"):
        raise InvalidArgument(
            f"watch_path {watch_path!r} must lie outside lock_path {lock_path!r}", path=watch_path, recipe=RECIPE
        )


def relevant(kind: str, event_type: str, known: Read) -> bool:
    """Can the watch the last round set have sent this notification?  On a missing node only
    its creation; on an existing one its deletion and its changes (of its children, for a
    children watch).  Anything else is a late copy from a watch set before it (the data watch
    left by an ``exists`` that found the node created between two reads)."""
    if known.stat is None:
        return event_type == CREATED
    if event_type == DELETED:
        return True
    return event_type == (CHILD if kind == "children" else CHANGED)


def change(kind: str, before: Read, after: Read) -> str | None:
    """The event type that takes ``before`` to ``after``, or None when nothing changed."""
    if before.stat is None or after.stat is None:
        if before.stat is None and after.stat is None:
            return None
        return CREATED if before.stat is None else DELETED
    if after.stat.czxid != before.stat.czxid:
        return CREATED  # deleted and created again
    if kind == "children":
        return CHILD if after.stat.pzxid != before.stat.pzxid else None
    return CHANGED if after.stat.mzxid != before.stat.mzxid else None


def fresh(error: ZkSyncError) -> ZkSyncError:
    """A new instance of ``error`` to raise in one more place, caused by the original (one
    exception object raised by several subscribers would pile up their tracebacks)."""
    try:
        again = type(error)(str(error.args[0]) if error.args else str(error), path=error.path, recipe=error.recipe)
    except TypeError:  # a class with arguments of its own
        return error
    again.__cause__ = error
    return again


class _ReadLease(LeaseBase):
    recipe = RECIPE


class _Closed(Exception):
    """Thrown into the watcher's machine (and the engine's) when the watcher is closed."""


class SubscriptionCore:
    """One subscriber's buffer, missed count and end, shared by both front-ends."""

    def __init__(self, owner: WatcherCore, buffer: int, timeout: float | None) -> None:
        self.owner = owner
        self.buffer = buffer
        self.timeout = timeout
        self.missed = 0  # events missed in all
        self.error: ZkSyncError | None = None
        self.hub = WakeHub()  # wakes a reader waiting for an event or the end
        self._lock = threading.Lock()
        self._events: deque[WatchEvent] = deque()
        self._gap = 0  # events missed since the last one buffered
        self._ended = False
        self._closed = False

    @property
    def ended(self) -> bool:
        return self._ended

    def offer(self, event: WatchEvent) -> None:
        """Buffer ``event`` (on the watcher's thread); never blocks."""
        with self._lock:
            if self._ended:
                return
            if len(self._events) >= self.buffer:
                self._gap += 1
                self.missed += 1
                return
            self._events.append(replace(event, missed=self._gap))
            self._gap = 0
        self.hub.wake_all()

    def end(self, error: ZkSyncError | None) -> None:
        """No more events: what is buffered is still given, then the end (or ``error``)."""
        with self._lock:
            if self._ended:
                return
            self._ended, self.error = True, error
        self.hub.wake_all()

    def close(self) -> None:
        """End now, dropping what is buffered."""
        with self._lock:
            self._closed = True
            self._events.clear()
        self.end(None)
        self.owner.forget(self)

    def next(self, timeout: float | None) -> Machine[Any]:
        """The next event; :data:`END` once ended cleanly; the watcher's error once it stopped
        with one; :class:`Timeout` when none came within ``timeout`` seconds (None: no limit)."""
        deadline = Deadline(check_timeout(timeout))
        yield Listen(self.hub)
        while True:
            with self._lock:
                if self._events:
                    return self._events.popleft()
                ended, error = self._ended, self.error
            if ended:
                if error is not None and not self._closed:
                    raise fresh(error)
                return END
            if (yield Wait(deadline)) is None:
                raise Timeout("timed out waiting for a watch event", path=self.owner.path, recipe=RECIPE)


class WatcherCore:
    """The state and the machine of one watcher (see the module doc)."""

    def __init__(
        self, session: WatchSession, watch_path: str, lock_path: str, kind: str, acl: list[ACL] | None
    ) -> None:
        self.session = session
        self.path = watch_path
        self.lock_path = lock_path
        self.kind = kind
        self.reads = Requests(session, RECIPE, watch_path)
        self.engine = LockEngine(Requests(session, RECIPE, lock_path), acl, _ReadLease)
        self.error: ZkSyncError | None = None
        self.watching = False  # the watch was set at least once, and the watcher goes on
        self.state_hub = WakeHub()  # wakes those waiting for the watch to be set, or the end
        self._stop_hub = WakeHub()  # wakes the machine when the watcher is closed
        self._lock = threading.Lock()
        self._subscriptions: list[SubscriptionCore] = []
        self._closing = False
        self._ended = False
        self._session_id: int | None = None
        self._expirations = session.expirations

    @property
    def ended(self) -> bool:
        """Closed, or stopped by an error: no more events."""
        return self._closing or self._ended

    # ---- subscribers -------------------------------------------------------------------
    def subscribe(self, buffer: int, timeout: float | None) -> SubscriptionCore:
        subscription = SubscriptionCore(self, check_buffer(buffer), check_timeout(timeout))
        with self._lock:
            ended = self.ended
            if not ended:
                self._subscriptions.append(subscription)
        if ended:
            subscription.end(self.error)
        return subscription

    def forget(self, subscription: SubscriptionCore) -> None:
        with self._lock:
            if subscription in self._subscriptions:
                self._subscriptions.remove(subscription)

    def close(self) -> None:
        """Stop setting the watch; every subscription ends after what it has buffered."""
        with self._lock:
            if self._closing:
                return
            self._closing = True
            subscriptions, self._subscriptions = self._subscriptions, []
        for subscription in subscriptions:
            subscription.end(None)
        self._stop_hub.wake_all()
        self.state_hub.wake_all()

    def wait_watching(self, timeout: float | None) -> Machine[None]:
        """Return once the watch is set (changes from then on are reported); the watcher's
        error if it stopped first, :class:`InvalidState` if it was closed, :class:`Timeout`."""
        deadline = Deadline(check_timeout(timeout))
        yield Listen(self.state_hub)
        while True:
            if self._ended and self.error is not None and not self._closing:
                raise fresh(self.error)
            if self.ended:
                raise InvalidState("the watcher was closed", path=self.path, recipe=RECIPE)
            if self.watching:
                return
            if (yield Wait(deadline)) is None:
                raise Timeout("timed out waiting for the watch to be set", path=self.path, recipe=RECIPE)

    # ---- the machine -------------------------------------------------------------------
    def run(self) -> Machine[None]:
        """The watcher's life, for a driver to run to its end.  It never raises: what stopped
        it is left in :attr:`error` (None when it was closed) and given to the subscribers."""
        error: ZkSyncError | None = None
        try:
            yield Listen(self._stop_hub)
            yield from self._follow()
        except _Closed:
            pass
        except ZkSyncError as exc:
            error = exc
            if self.session.stopped() and not isinstance(exc, SessionExpired):
                error = SessionExpired("the kazoo client was stopped", path=self.path, recipe=RECIPE)
                error.__cause__ = exc
        except Exception as exc:
            log.exception("watcher on %s failed", self.path)
            error = ZkSyncError(f"the watcher failed: {exc!r}", path=self.path, recipe=RECIPE)
        finally:  # a driver's cancellation (asyncio) ends it like a close
            self._finish(error)

    def _follow(self) -> Machine[None]:
        yield from self._guarded(self.reads.await_connection(Deadline(None)))
        self._session_id = self.session.session_id
        known: Read | None = None
        trigger: WatchedEvent | None = None  # None: compare what the round reads with the last read
        dropped = False  # the watch was dropped with the connection
        while True:
            read, epoch, retried = yield from self._round()
            if known is not None:
                self._report(trigger, known, read, after_reconnect=dropped or retried)
            known = read
            if not self.watching:
                self.watching = True
                self.state_hub.wake_all()
            trigger, dropped = yield from self._next_trigger(known, epoch)

    def _round(self) -> Machine[tuple[Read, int, bool]]:
        """Take the read lock, set the watch with one read, release the lock.  Returns the
        read, the count of disconnections it was made in, and whether it had to wait for the
        connection: it is tried again after a lost connection or an unanswered request, and when
        the lock was lost while held (then the read is not trusted)."""
        retried = False
        while True:
            self._check_stop()
            try:
                lease = yield from self._guarded(self.engine.acquire(READ, None))
                try:
                    yield Forget()
                    epoch = self.session.disconnections
                    read = yield from self._guarded(self._arm())
                finally:
                    yield from self.engine.release(READ)
            except SessionExpired:
                raise
            except (ConnectionLost, Timeout) as exc:
                # (the text, not the exception: a kept log record would keep its traceback's frames)
                log.info("watcher on %s: %s; trying again once connected", self.path, str(exc))
                yield from self._guarded(self.reads.await_connection(Deadline(None)))
                retried = True
                continue
            if not lease.lost:
                return read, epoch, retried
            retried = True

    def _arm(self) -> Machine[Read]:
        """The read that sets the watch (under the read lock)."""
        deadline = Deadline(None)
        while True:
            if self.kind == "data":
                found = yield from self.reads.get(self.path, deadline, watch=WATCH)
                if found is not None:
                    return Read(found[1], data=found[0])
            elif self.kind == "children":
                try:
                    names, stat = yield from self.reads.call(
                        GetChildren(self.path, WATCH, include_stat=True), deadline, expected=(kz.NoNodeError,)
                    )
                    return Read(stat, children=tuple(sorted(names)))
                except kz.NoNodeError:
                    pass
            stat = yield from self.reads.exists(self.path, deadline, watch=WATCH)
            if stat is None or self.kind == "exists":
                return Read(stat)
            # created between the two reads: read it with its own watch

    def _next_trigger(self, known: Read, epoch: int) -> Machine[tuple[WatchedEvent | None, bool]]:
        """Wait for the notification of the watch just set: ``(event, False)``; for its loss
        with the connection: ``(None, True)``; for a notification on the path that this watch
        cannot have sent (see :func:`relevant`; the driver keeps only the last one, so it may
        hide another): ``(None, False)``.  Without an event, the next round compares."""
        while True:
            wake = yield Wait(Deadline(None))
            self._check_stop()
            event = wake.event if wake is not None else None
            ours = event is not None and event.path == self.path and event.type != NONE
            if ours and event is not None and relevant(self.kind, event.type, known):
                return event, False
            if self.session.disconnections != epoch or (event is not None and event.type == NONE):
                return None, True
            if ours:
                return None, False
            # a wake-up about something else (a lock node's late notification, a connection change)

    def _report(self, trigger: WatchedEvent | None, known: Read, read: Read, after_reconnect: bool) -> None:
        if trigger is not None:
            self._fan_out(self._event(trigger.type, read, after_reconnect=False))
            return
        found = change(self.kind, known, read)
        if found is not None:
            self._fan_out(self._event(found, read, after_reconnect))

    def _event(self, event_type: str, read: Read, after_reconnect: bool) -> WatchEvent:
        stat = read.stat
        zxid = None if stat is None else stat.pzxid if self.kind == "children" else stat.mzxid
        return WatchEvent(event_type, self.path, stat, zxid, read.data, read.children, 0, after_reconnect)

    def _fan_out(self, event: WatchEvent) -> None:
        with self._lock:
            subscriptions = list(self._subscriptions)
        for subscription in subscriptions:
            subscription.offer(event)

    def _finish(self, error: ZkSyncError | None) -> None:
        with self._lock:
            self._ended = True
            self.watching = False
            self.error = None if self._closing else error
            subscriptions, self._subscriptions = self._subscriptions, []
        for subscription in subscriptions:
            subscription.end(self.error)
        self.state_hub.wake_all()
        if self.error is not None:
            log.warning("watcher on %s stopped: %s", self.path, str(self.error))

    # ---- stopping the engine's machines ------------------------------------------------
    def _stop_reason(self) -> BaseException | None:
        if self._closing:
            return _Closed()
        session = self.session
        if session.stopped():
            return SessionExpired("the kazoo client was stopped", path=self.path, recipe=RECIPE)
        if session.expirations != self._expirations:
            return SessionExpired("the ZooKeeper session expired", path=self.path, recipe=RECIPE)
        current = session.session_id
        if self._session_id is None:
            self._session_id = current  # (None when the connection dropped as the watcher started)
        elif current is not None and current != self._session_id:
            return SessionExpired("the session was replaced by a new one", path=self.path, recipe=RECIPE)
        return None

    def _check_stop(self) -> None:
        stop = self._stop_reason()
        if stop is not None:
            raise stop

    def _guarded(self, inner: Machine[T]) -> Machine[T]:
        """Run ``inner`` (a machine of the lock engine or the request layer) so that a close
        or the session's end stops it at its next wait: the reason is thrown into it there, and
        it cleans up (removes its lock node) as it does on a timeout.  Its requests wait for
        their replies for a session timeout at most, its waits for the connection are cut into
        slices, so nothing keeps it from seeing the close."""
        value: Any = None
        error: BaseException | None = None
        interrupted = False
        while True:
            try:
                effect = inner.throw(error) if error is not None else inner.send(value)
            except StopIteration as stop:
                return stop.value  # type: ignore[no-any-return]
            value, error = None, None
            try:
                value = yield from self._carry_out(effect)
            except BaseException as exc:  # a cancellation too: the inner machine cleans up
                error = exc
            if not interrupted and isinstance(effect, (Wait, AwaitConnected)):
                reason = self._stop_reason()
                if reason is not None:
                    interrupted, value, error = True, None, reason

    def _carry_out(self, effect: Effect) -> Machine[Any]:
        if isinstance(effect, (Send, SendMany)) and effect.deadline.unbounded:
            return (yield replace(effect, deadline=Deadline(0)))  # a reply waits one session timeout
        if isinstance(effect, AwaitConnected):
            while True:
                remaining = effect.deadline.remaining()
                step = CONNECTION_SLICE if remaining is None else min(CONNECTION_SLICE, remaining)
                if (yield AwaitConnected(Deadline(step))):
                    return True
                if effect.deadline.expired() or self._stop_reason() is not None:
                    return False
        return (yield effect)


__all__ = [
    "DEFAULT_BUFFER",
    "END",
    "KINDS",
    "RECIPE",
    "Read",
    "SubscriptionCore",
    "WatchEvent",
    "WatchSession",
    "WatcherCore",
    "check_buffer",
    "check_kind",
    "check_paths",
]
