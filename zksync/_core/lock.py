"""A held lock, for every lock-like recipe and every front-end: the lease with its fencing
token and loss signalling, acquisition on the queue engine, release with hand-off, the sweep
of a tainted create.

:class:`LockEngine` keeps the state of one participant (one recipe object): it holds at most
one lease at a time and is not reentrant.  Its methods are machines; the blocking and asyncio
front-ends run them and add only their own way of waiting.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from kazoo.protocol.states import ZnodeStat
from kazoo.security import ACL

from .._util import Deadline, check_timeout
from ..errors import AlreadyHeld, InvalidArgument, LockLost, NotHeld
from .effects import Machine, Release, Sweep
from .queue import NAMINGS, RELEASE_WAIT, Attempt, Kind, Naming, ordered, parse
from .requests import Requests

log = logging.getLogger("zksync.lock")
_Self = TypeVar("_Self", bound="LeaseBase")


class LeaseBase:
    """A held lock.  It stays valid until released or lost.

    ``fencing_token`` is the czxid of the lock node: every later acquisition of the same lock
    has a strictly greater token, so a guarded resource can refuse a stale holder's writes.
    """

    recipe = "RWMutex"

    def __init__(self, path: str, mode: str, node: str, stat: ZnodeStat, session_id: int | None) -> None:
        self.path = path
        self.mode = mode
        self.node = node
        self.fencing_token: int = stat.czxid
        self.node_version: int = stat.version  # changes only in the releasing transaction
        self._requests: Requests | None = None  # set by the engine that granted it: for transactions
        self.session_id = session_id
        self.acquired_at = time.time()
        self._lost = False
        self._released = False
        self.lost_reason: str | None = None
        self._callbacks: list[Callable[[Any], None]] = []
        self._lock = threading.Lock()
        self.tainted = False  # set when the create's reply was lost (see queue.protected_create)

    @property
    def lost(self) -> bool:
        return self._lost

    @property
    def valid(self) -> bool:
        """Held and not lost."""
        return not self._released and not self._lost

    def check(self) -> None:
        """Raise :class:`LockLost` if the lock can no longer be trusted."""
        if self._lost:
            raise LockLost(f"lock lost: {self.lost_reason}", path=self.path, recipe=self.recipe)
        if self._released:
            raise NotHeld("lock was released", path=self.path, recipe=self.recipe)

    def add_lost_callback(self: _Self, callback: Callable[[_Self], None]) -> None:
        """Call ``callback(lease)`` when the lease is lost (at once if it already is).

        Callbacks run on a zksync thread and must not block for long.
        """
        with self._lock:
            if not self._lost:
                self._callbacks.append(callback)
                return
        callback(self)

    def _notify_lost(self) -> None:
        """For front-ends: wake whatever waits for the loss (runs on the thread that saw it)."""

    def _mark_lost(self, reason: str) -> None:
        with self._lock:
            if self._lost or self._released:
                return
            self.lost_reason = reason
            self._lost = True
            callbacks, self._callbacks = self._callbacks, []
        log.warning("%s lock on %s lost: %s", self.mode, self.path, reason)
        self._notify_lost()
        for callback in callbacks:
            try:
                callback(self)
            except Exception:
                log.exception("lock-lost callback raised")

    def __repr__(self) -> str:
        state = "lost" if self.lost else "released" if self._released else "held"
        return f"<Lease {self.mode} {self.path} token={self.fencing_token} {state}>"


def held_requests(lease: LeaseBase) -> Requests:
    """The request layer of the engine that granted ``lease``; :class:`NotHeld` once released."""
    if lease._requests is None or lease._released:
        raise NotHeld("this lease is not held", path=lease.path, recipe=lease.recipe)
    return lease._requests


L = TypeVar("L", bound=LeaseBase)


class LockEngine(Generic[L]):
    """The lock state of one participant at ``path`` (the lock nodes are its children)."""

    def __init__(
        self, requests: Requests, acl: list[ACL] | None, lease_type: type[L], naming: Naming = NAMINGS["zksync"]
    ) -> None:
        self.requests = requests
        self.path = requests.path
        self.recipe = requests.recipe
        self.acl = acl
        self.lease_type = lease_type
        self.naming = naming
        self._state = threading.Lock()
        self._busy = False
        self._lease: L | None = None
        self._lost_token: int | None = None

    @property
    def lease(self) -> L | None:
        return self._lease

    def check(self) -> None:
        """Raise :class:`LockLost` if the held lock was lost, :class:`NotHeld` if none is held."""
        lease = self._lease
        if lease is None:
            raise NotHeld(f"no lock is held by this {self.recipe}", path=self.path, recipe=self.recipe)
        lease.check()

    # ---- acquiring ---------------------------------------------------------------------
    def acquire(self, kind: Kind, timeout: float | None) -> Machine[L]:
        """Wait until ``kind`` is granted; :class:`Timeout` after ``timeout`` seconds."""
        deadline = Deadline(check_timeout(timeout))
        if kind.name not in self.naming.prefixes:
            raise InvalidArgument(
                f"naming {self.naming.name!r} has no {kind.name} lock (its nodes are exclusive locks only)",
                path=self.path,
                recipe=self.recipe,
            )
        self.requests.ensure_usable()
        with self._state:
            if self._busy or self._lease is not None:
                held = self._lease.mode if self._lease is not None else "a lock (acquiring)"
                raise AlreadyHeld(
                    f"this {self.recipe} already holds {held}; it is not reentrant", path=self.path, recipe=self.recipe
                )
            self._busy = True
        try:
            return (yield from self._take(kind, deadline))
        finally:
            with self._state:
                self._busy = False

    def _take(self, kind: Kind, deadline: Deadline) -> Machine[L]:
        session = self.requests.session
        attempt = Attempt(self.requests, self.path, kind, self.acl, self.naming)
        holder: list[L] = []

        def on_lost(reason: str) -> None:  # on the session's thread
            if holder:
                holder[0]._mark_lost(reason)
                session.delete_soon(holder[0].node)
            else:
                attempt.lost = True

        token = session.on_lost(on_lost)
        try:
            while True:
                place = yield from attempt.take_place(deadline)
                lease = self.lease_type(self.path, kind.name, place.path, place.stat, session.session_id)
                lease.tainted = place.tainted
                lease._requests = self.requests
                holder.append(lease)
                if not attempt.lost:
                    break
                holder.clear()  # lost between the grant and now: go round again
        except BaseException:
            session.cancel_lost(token)
            raise
        self._lease, self._lost_token = lease, token
        return lease

    # ---- releasing ---------------------------------------------------------------------
    def release(self, kind: Kind) -> Machine[L]:
        """Release the lease of ``kind`` (:class:`NotHeld` if this participant holds none);
        returns the released lease."""
        with self._state:
            lease = self._lease
            if lease is None or lease.mode != kind.name:
                what = f"the {kind.name} lock" if kind.exclusive else f"a {kind.name} lock"
                raise NotHeld(f"this {self.recipe} does not hold {what}", path=self.path, recipe=self.recipe)
            self._lease = None
            token, self._lost_token = self._lost_token, None
        if token is not None:
            self.requests.session.cancel_lost(token)
        handoff = not lease.lost  # a lost lease's node is already being removed plainly
        lease._released = True
        yield Release(lease.node, RELEASE_WAIT, handoff)
        if lease.tainted:
            own = parse(lease.node.rsplit("/", 1)[1])
            if own is not None:
                yield Sweep(self.path, own.guid)
        return lease

    # ---- the queue -----------------------------------------------------------------------
    def queue(self, timeout: float | None = None) -> Machine[list[tuple[str, str]]]:
        """The current queue as ``(kind, node name)`` pairs, holders first."""
        deadline = self._deadline(timeout)
        children = yield from self.requests.get_children(self.path, deadline, missing_ok=True)
        return [(e.kind, e.name) for e in ordered(children)]

    def break_lock(self, timeout: float | None = None) -> Machine[int]:
        """Delete every lock node under ``path``; returns how many were removed."""
        deadline = self._deadline(timeout)
        removed = 0
        for _, name in (yield from self.queue(deadline.remaining())):
            if (yield from self.requests.delete(f"{self.path}/{name}", deadline)):
                removed += 1
        return removed

    def _deadline(self, timeout: float | None) -> Deadline:
        if timeout is None:
            return self.requests.default_deadline()
        return Deadline(check_timeout(timeout))
