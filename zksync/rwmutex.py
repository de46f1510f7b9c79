"""RWMutex: shared readers, exclusive writers, served in arrival order.

Queue rules (see :mod:`zksync._queue`): a writer waits for its immediate predecessor, a
reader for the nearest writer ahead of it.  So writers are served in arrival order, a reader
that arrives behind a waiting writer waits for it (no writer starvation), and a release wakes
only the clients that watch the released node.

One ``RWMutex`` object is one participant: it holds at most one lock (read or write) at a
time.  It is **not reentrant**: ``lock()`` or ``rlock()`` while this object holds, or is
acquiring, raises :class:`~zksync.errors.AlreadyHeld` at once instead of deadlocking.  Give each
thread of control its own object.

``naming`` picks the names of the nodes this object makes, so that another library locking the
same path sees them: ``"zksync"`` (the default: the Go original's ``_c_<hex>-write-<seq>`` and
``-read-``), ``"kazoo"`` (``<hex>__lock__<seq>``,
``__rlock__``), ``"curator"`` (``InterProcessReadWriteLock``'s ``_c_<uuid>-__WRIT__<seq>``,
``__READ__``) or ``"mutex"`` (``_c_<uuid>-lock-<seq>``, the name of Curator's
``InterProcessMutex`` and go-zookeeper's ``zk.Lock``: write locks only, ``rlock()`` raises
:class:`~zksync.errors.InvalidArgument`).  Whatever it makes, it reads every family as a
contender of the right kind.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from typing import Any, Generic, TypeVar, cast

from kazoo.client import KazooClient
from kazoo.protocol.states import ZnodeStat
from kazoo.security import ACL

from ._core.lock import LeaseBase, LockEngine, held_requests
from ._core.locked import TransactionBase
from ._core.queue import READ as READ_KIND
from ._core.queue import WRITE as WRITE_KIND
from ._core.queue import Kind, naming_for
from ._core.requests import Requests
from ._drive.blocking import run
from ._session import SessionWatch, session_for
from ._util import check_acl, check_path, check_timeout
from .errors import LockLost

READ = READ_KIND.name
WRITE = WRITE_KIND.name


class Lease(LeaseBase):
    """A held lock.  It stays valid until released or lost.

    ``fencing_token`` is the czxid of the lock node: every later acquisition of the same lock
    has a strictly greater token, so a guarded resource can refuse a stale holder's writes.
    """

    def __init__(self, path: str, mode: str, node: str, stat: ZnodeStat, session_id: int | None) -> None:
        super().__init__(path, mode, node, stat, session_id)
        self._lost_event = threading.Event()

    def _notify_lost(self) -> None:
        self._lost_event.set()

    def wait_lost(self, timeout: float | None = None) -> bool:
        """Block until the lease is lost (True) or the timeout passes (False)."""
        return self._lost_event.wait(check_timeout(timeout))

    def transaction(self) -> Transaction:
        """Writes that land together, and only while this lease still holds its lock::

            with lease.transaction() as t:   # committed on leaving the block
                t.set_data("/app/config", b"v2")
                t.create("/app/config-history/v2", b"...")

        Committed as one ZooKeeper transaction whose first step checks our lock node: when the
        lock is gone (expired session, broken lock), :class:`LockLost` and nothing is written."""
        return Transaction(self, held_requests(self))


class Transaction(TransactionBase):
    """Writes under a held lease (see :meth:`Lease.transaction`)."""

    def commit(self, timeout: float | None = None) -> list[Any]:
        """Send the writes; each one's result (a created path, a stat, True)."""
        return run(self._commit(timeout), cast(SessionWatch, self.requests.session))

    def __enter__(self) -> Transaction:
        return self

    def __exit__(self, kind: type[BaseException] | None, *rest: object) -> None:
        if kind is None:
            self.commit()


L = TypeVar("L", bound=LeaseBase)


class RWMutexBase(Generic[L]):
    """What both front-ends' RWMutex share: the checked arguments, the engine, the state."""

    recipe = "RWMutex"
    lease_type: type[L]

    def __init__(self, client: KazooClient, path: str, acl: list[ACL] | None = None, naming: str = "zksync") -> None:
        self.path = check_path(path, self.recipe)
        self.acl = check_acl(acl, self.recipe)
        family = naming_for(naming, self.path, self.recipe)
        self.naming = family.name
        self._session = session_for(client, self.recipe)
        requests = Requests(self._session, self.recipe, self.path)
        self._engine = LockEngine(requests, self.acl, self.lease_type, family)

    @property
    def lease(self) -> L | None:
        """The lease this object holds, or None."""
        return self._engine.lease

    @property
    def fencing_token(self) -> int | None:
        lease = self._engine.lease
        return lease.fencing_token if lease is not None else None

    @property
    def held(self) -> str | None:
        """``"read"``, ``"write"`` or None."""
        lease = self._engine.lease
        return lease.mode if lease is not None else None

    def check(self) -> None:
        """Raise :class:`LockLost` if the held lock was lost, :class:`NotHeld` if none is held."""
        self._engine.check()


class RWMutex(RWMutexBase[Lease]):
    """A distributed readers-writer lock at ``path`` (the lock nodes are its children)."""

    lease_type = Lease

    # ---- acquiring ---------------------------------------------------------------------
    def lock(self, timeout: float | None = None) -> Lease:
        """Acquire the write lock; raises :class:`Timeout` after ``timeout`` seconds."""
        return run(self._engine.acquire(WRITE_KIND, timeout), self._session)

    def rlock(self, timeout: float | None = None) -> Lease:
        """Acquire a read lock; raises :class:`Timeout` after ``timeout`` seconds."""
        return run(self._engine.acquire(READ_KIND, timeout), self._session)

    def unlock(self) -> None:
        """Release the write lock."""
        run(self._engine.release(WRITE_KIND), self._session)

    def runlock(self) -> None:
        """Release the read lock."""
        run(self._engine.release(READ_KIND), self._session)

    @contextlib.contextmanager
    def write(self, timeout: float | None = None) -> Iterator[Lease]:
        """``with m.write(timeout):`` holds the write lock for the block.

        If the lock was lost during the block and the block raised nothing, leaving it raises
        :class:`LockLost`: the critical section was not protected throughout.
        """
        with self._held(WRITE_KIND, timeout) as lease:
            yield lease

    @contextlib.contextmanager
    def read(self, timeout: float | None = None) -> Iterator[Lease]:
        """``with m.read(timeout):`` holds a read lock for the block (see :meth:`write`)."""
        with self._held(READ_KIND, timeout) as lease:
            yield lease

    # ---- state -------------------------------------------------------------------------
    def queue(self, timeout: float | None = None) -> list[tuple[str, str]]:
        """The current queue as ``(kind, node name)`` pairs, holders first."""
        return run(self._engine.queue(timeout), self._session)

    def break_lock(self, timeout: float | None = None) -> int:
        """Delete every lock node under ``path`` (an operator's tool for a stuck lock).

        Needs DELETE permission on ``path``; returns how many nodes were removed.
        """
        return run(self._engine.break_lock(timeout), self._session)

    # ---- internals ---------------------------------------------------------------------
    @contextlib.contextmanager
    def _held(self, kind: Kind, timeout: float | None) -> Iterator[Lease]:
        lease = run(self._engine.acquire(kind, timeout), self._session)
        try:
            yield lease
        except BaseException:
            run(self._engine.release(kind), self._session)
            raise
        lost = lease.lost
        run(self._engine.release(kind), self._session)
        if lost:
            raise LockLost(f"lock lost inside the block: {lease.lost_reason}", path=self.path, recipe=self.recipe)
