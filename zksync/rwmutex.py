"""RWMutex: shared readers, exclusive writers, served in arrival order.

Queue rules (see :mod:`zksync._queue`): a writer waits for its immediate predecessor, a
reader for the nearest writer ahead of it.  So writers are served in arrival order, a reader
that arrives behind a waiting writer waits for it (no writer starvation), and a release wakes
only the clients that watch the released node.

One ``RWMutex`` object is one participant: it holds at most one lock (read or write) at a
time.  It is **not reentrant**: ``lock()`` or ``rlock()`` while this object holds, or is
acquiring, raises :class:`~zksync.errors.AlreadyHeld` at once instead of deadlocking.  Give each
thread of control its own object.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterator

from kazoo.client import KazooClient
from kazoo.protocol.states import ZnodeStat
from kazoo.security import ACL

from ._ops import Ops
from ._queue import Attempt, exclusive_rule, ordered, parse, release_node, shared_rule, sweep_later
from ._util import Deadline, check_acl, check_path, check_timeout
from .errors import AlreadyHeld, LockLost, NotHeld

log = logging.getLogger("zksync.rwmutex")

READ = "read"
WRITE = "write"


class Lease:
    """A held lock.  It stays valid until released or lost.

    ``fencing_token`` is the czxid of the lock node: every later acquisition of the same lock
    has a strictly greater token, so a guarded resource can refuse a stale holder's writes.
    """

    def __init__(self, path: str, mode: str, node: str, stat: ZnodeStat, session_id: int | None) -> None:
        self.path = path
        self.mode = mode
        self.node = node
        self.fencing_token: int = stat.czxid
        self.session_id = session_id
        self.acquired_at = time.time()
        self._lost = threading.Event()
        self._released = False
        self.lost_reason: str | None = None
        self._callbacks: list[Callable[[Lease], None]] = []
        self._lock = threading.Lock()
        self.tainted = False  # set when the create's reply was lost (see _queue.sweep_later)

    @property
    def lost(self) -> bool:
        return self._lost.is_set()

    @property
    def valid(self) -> bool:
        """Held and not lost."""
        return not self._released and not self._lost.is_set()

    def wait_lost(self, timeout: float | None = None) -> bool:
        """Block until the lease is lost (True) or the timeout passes (False)."""
        return self._lost.wait(check_timeout(timeout))

    def check(self) -> None:
        """Raise :class:`LockLost` if the lock can no longer be trusted."""
        if self._lost.is_set():
            raise LockLost(f"lock lost: {self.lost_reason}", path=self.path, recipe="RWMutex")
        if self._released:
            raise NotHeld("lock was released", path=self.path, recipe="RWMutex")

    def add_lost_callback(self, callback: Callable[[Lease], None]) -> None:
        """Call ``callback(lease)`` when the lease is lost (at once if it already is).

        Callbacks run on a zksync thread and must not block for long.
        """
        with self._lock:
            if not self._lost.is_set():
                self._callbacks.append(callback)
                return
        callback(self)

    def _mark_lost(self, reason: str) -> None:
        with self._lock:
            if self._lost.is_set() or self._released:
                return
            self.lost_reason = reason
            self._lost.set()
            callbacks, self._callbacks = self._callbacks, []
        log.warning("%s lock on %s lost: %s", self.mode, self.path, reason)
        for callback in callbacks:
            try:
                callback(self)
            except Exception:
                log.exception("lock-lost callback raised")

    def __repr__(self) -> str:
        state = "lost" if self.lost else "released" if self._released else "held"
        return f"<Lease {self.mode} {self.path} token={self.fencing_token} {state}>"


class RWMutex:
    """A distributed readers-writer lock at ``path`` (the lock nodes are its children)."""

    recipe = "RWMutex"

    def __init__(self, client: KazooClient, path: str, acl: list[ACL] | None = None) -> None:
        self.path = check_path(path, self.recipe)
        self.acl = check_acl(acl, self.recipe)
        self._ops = Ops(client, self.recipe, self.path)
        self._state = threading.Lock()
        self._busy = False
        self._lease: Lease | None = None
        self._lost_token: int | None = None

    # ---- acquiring ---------------------------------------------------------------------
    def lock(self, timeout: float | None = None) -> Lease:
        """Acquire the write lock; raises :class:`Timeout` after ``timeout`` seconds."""
        return self._acquire(WRITE, timeout)

    def rlock(self, timeout: float | None = None) -> Lease:
        """Acquire a read lock; raises :class:`Timeout` after ``timeout`` seconds."""
        return self._acquire(READ, timeout)

    def unlock(self) -> None:
        """Release the write lock."""
        self._release(WRITE)

    def runlock(self) -> None:
        """Release the read lock."""
        self._release(READ)

    @contextlib.contextmanager
    def write(self, timeout: float | None = None) -> Iterator[Lease]:
        """``with m.write(timeout):`` holds the write lock for the block.

        If the lock was lost during the block and the block raised nothing, leaving it raises
        :class:`LockLost`: the critical section was not protected throughout.
        """
        with self._held(WRITE, timeout) as lease:
            yield lease

    @contextlib.contextmanager
    def read(self, timeout: float | None = None) -> Iterator[Lease]:
        """``with m.read(timeout):`` holds a read lock for the block (see :meth:`write`)."""
        with self._held(READ, timeout) as lease:
            yield lease

    # ---- state -------------------------------------------------------------------------
    @property
    def lease(self) -> Lease | None:
        """The lease this object holds, or None."""
        return self._lease

    @property
    def fencing_token(self) -> int | None:
        lease = self._lease
        return lease.fencing_token if lease is not None else None

    @property
    def held(self) -> str | None:
        """``"read"``, ``"write"`` or None."""
        lease = self._lease
        return lease.mode if lease is not None else None

    def check(self) -> None:
        """Raise :class:`LockLost` if the held lock was lost, :class:`NotHeld` if none is held."""
        lease = self._lease
        if lease is None:
            raise NotHeld("no lock is held by this RWMutex", path=self.path, recipe=self.recipe)
        lease.check()

    def queue(self, timeout: float | None = None) -> list[tuple[str, str]]:
        """The current queue as ``(kind, node name)`` pairs, holders first."""
        deadline = Deadline(check_timeout(timeout)) if timeout is not None else self._ops.default_deadline()
        children = self._ops.get_children(self.path, deadline, missing_ok=True)
        return [(e.kind, e.name) for e in ordered(children)]

    def break_lock(self, timeout: float | None = None) -> int:
        """Delete every lock node under ``path`` (an operator's tool for a stuck lock).

        Needs DELETE permission on ``path``; returns how many nodes were removed.
        """
        deadline = Deadline(check_timeout(timeout)) if timeout is not None else self._ops.default_deadline()
        removed = 0
        for _, name in self.queue(deadline.remaining()):
            if self._ops.delete(f"{self.path}/{name}", deadline):
                removed += 1
        return removed

    # ---- internals ---------------------------------------------------------------------
    @contextlib.contextmanager
    def _held(self, mode: str, timeout: float | None) -> Iterator[Lease]:
        lease = self._acquire(mode, timeout)
        try:
            yield lease
        except BaseException:
            self._release(mode)
            raise
        lost = lease.lost
        self._release(mode)
        if lost:
            raise LockLost(f"lock lost inside the block: {lease.lost_reason}", path=self.path, recipe=self.recipe)

    def _acquire(self, mode: str, timeout: float | None) -> Lease:
        deadline = Deadline(check_timeout(timeout))
        self._ops.ensure_usable()
        with self._state:
            if self._busy or self._lease is not None:
                held = self._lease.mode if self._lease is not None else "a lock (acquiring)"
                raise AlreadyHeld(
                    f"this RWMutex already holds {held}; it is not reentrant", path=self.path, recipe=self.recipe
                )
            self._busy = True
        try:
            return self._take(mode, deadline)
        finally:
            with self._state:
                self._busy = False

    def _take(self, mode: str, deadline: Deadline) -> Lease:
        session = self._ops.session
        attempt = Attempt(self._ops, self.path, mode, exclusive_rule if mode == WRITE else shared_rule, self.acl)
        holder: list[Lease] = []

        def on_lost(reason: str) -> None:
            if holder:
                holder[0]._mark_lost(reason)
                release_node(self._ops, holder[0].node, wait=0)
            else:
                attempt.lost = True

        token = session.on_lost(on_lost)
        try:
            while True:
                place = attempt.take_place(deadline)
                lease = Lease(self.path, mode, place.path, place.stat, session.session_id)
                lease.tainted = place.tainted
                holder.append(lease)
                if not attempt.lost:
                    break
                holder.clear()  # lost between the grant and now: go round again
        except BaseException:
            session.cancel_lost(token)
            raise
        self._lease, self._lost_token = lease, token
        return lease

    def _release(self, mode: str) -> None:
        with self._state:
            lease = self._lease
            if lease is None or lease.mode != mode:
                what = "the write lock" if mode == WRITE else "a read lock"
                raise NotHeld(f"this RWMutex does not hold {what}", path=self.path, recipe=self.recipe)
            self._lease = None
            token, self._lost_token = self._lost_token, None
        if token is not None:
            self._ops.session.cancel_lost(token)
        handoff = not lease.lost  # a lost lease's node is already being removed plainly
        lease._released = True
        release_node(self._ops, lease.node, handoff=handoff)
        if lease.tainted:
            own = parse(lease.node.rsplit("/", 1)[1])
            if own is not None:
                sweep_later(self._ops, self.path, own.guid)
