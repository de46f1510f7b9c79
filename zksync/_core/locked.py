"""Writes that land only while a lock is held, and reads made under a read lock: the Go
library's ``Locked*`` helpers, and transactions on a held lease.

A write under a lock is sent as one transaction whose first step checks the holder's own lock
node (its version, too).  The node exists exactly while the lock is held by this session, so
the write lands only then: a holder whose session has expired, or whose lock was broken, gets
:class:`~zksync.errors.LockLost` and nothing is written, even when it has not heard of the loss
yet.  (The Go original, like a plain "lock, then write", writes whatever happened meanwhile.)
A write whose reply is lost with the connection raises
:class:`~zksync.errors.ConnectionLost`: like any ZooKeeper write, it may or may not have
landed, and it is never sent twice.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from kazoo import exceptions as kz
from kazoo.protocol.states import WatchedEvent, ZnodeStat
from kazoo.security import ACL

from .._util import Deadline, check_acl, check_path, check_timeout
from ..errors import InvalidArgument, LockLost, NoNode, SessionExpired, translate
from .effects import Check, Create, Delete, Machine, Multi, SetData
from .lock import L, LeaseBase, LockEngine
from .queue import READ, WRITE, naming_for
from .requests import Requests, Session, failed_step

T = TypeVar("T")
Op = Create | Delete | SetData | Check
Read = Callable[[Requests, Deadline], Machine[T]]
WatchFn = Callable[[WatchedEvent], None]


def commit_held(requests: Requests, lease: LeaseBase, ops: Sequence[Op], deadline: Deadline) -> Machine[list[Any]]:
    """Send ``ops`` in one transaction that lands only while ``lease``'s node exists; returns
    each op's result (a created path, a stat, True)."""
    lease.check()
    guarded = Multi((Check(lease.node, lease.node_version), *ops))
    try:
        results = yield from requests.commit(guarded, deadline)
    except SessionExpired as exc:  # our session, and its lock node with it, is gone
        lease._mark_lost("session expired")
        raise LockLost(
            "the session expired: the lock is no longer held, and nothing was written",
            path=lease.path,
            recipe=lease.recipe,
        ) from exc
    first = results[0]
    if isinstance(first, Exception) and not isinstance(first, (kz.RolledBackError, kz.RuntimeInconsistency)):
        lease._mark_lost("its lock node is gone (found by a write under the lock)")
        raise LockLost(
            f"the lock node {lease.node} is gone: the lock is no longer held, and nothing was written",
            path=lease.path,
            recipe=lease.recipe,
        )
    failure = failed_step(results)
    if failure is not None:
        with translate(requests.path, requests.recipe):
            raise failure
    return list(results[1:])


def write_locked(engine: LockEngine[L], requests: Requests, ops: Sequence[Op], timeout: float | None) -> Machine[Any]:
    """Take the write lock, commit ``ops`` under it, release; the result of the last op.
    ``timeout`` covers the whole call."""
    deadline = Deadline(check_timeout(timeout))
    lease = yield from engine.acquire(WRITE, deadline.remaining())
    try:
        results = yield from commit_held(requests, lease, ops, deadline)
    except BaseException:
        yield from engine.release(WRITE)
        raise
    yield from engine.release(WRITE)
    return results[-1]


def read_locked(engine: LockEngine[L], requests: Requests, read: Read[T], timeout: float | None) -> Machine[T]:
    """Take a read lock (the write lock, for a naming without readers), run ``read``, release."""
    deadline = Deadline(check_timeout(timeout))
    kind = READ if READ.name in engine.naming.prefixes else WRITE
    yield from engine.acquire(kind, deadline.remaining())
    try:
        value = yield from read(requests, deadline)
    except BaseException:
        yield from engine.release(kind)
        raise
    yield from engine.release(kind)
    return value


class LockedCalls:
    """One plain node operation under the lock at ``engine.path``, as machines; arguments are
    checked before anything is sent."""

    recipe = "locked"

    def __init__(self, engine: LockEngine[Any]) -> None:
        self.engine = engine

    @classmethod
    def at(cls, session: Session, lock_path: object, naming: object, lock_acl: object) -> LockedCalls:
        """The calls under the lock at ``lock_path`` (an ``RWMutex`` path of the given naming)."""
        path = check_path(lock_path, cls.recipe)
        family = naming_for(naming, path, cls.recipe)
        return cls(LockEngine(Requests(session, "RWMutex", path), check_acl(lock_acl, cls.recipe), LeaseBase, family))

    def _on(self, path: object) -> Requests:
        return Requests(self.engine.requests.session, self.recipe, check_path(path, self.recipe))

    def create(
        self, path: str, value: bytes, acl: list[ACL] | None, ephemeral: bool, sequence: bool, timeout: float | None
    ) -> Machine[str]:
        on = self._on(path)
        op = Create(on.path, _value(value), check_acl(acl, self.recipe), bool(ephemeral), bool(sequence))
        created: str = yield from write_locked(self.engine, on, (op,), timeout)
        return created

    def delete(self, path: str, version: int, timeout: float | None) -> Machine[None]:
        on = self._on(path)
        yield from write_locked(self.engine, on, (Delete(on.path, _version(version)),), timeout)

    def set(self, path: str, value: bytes, version: int, timeout: float | None) -> Machine[ZnodeStat]:
        on = self._on(path)
        stat: ZnodeStat = yield from write_locked(
            self.engine, on, (SetData(on.path, _value(value), _version(version)),), timeout
        )
        return stat

    def get(self, path: str, watch: WatchFn | None, timeout: float | None) -> Machine[tuple[bytes, ZnodeStat]]:
        on, watch = self._on(path), _watch(watch)

        def read(r: Requests, deadline: Deadline) -> Machine[tuple[bytes, ZnodeStat]]:
            found = yield from r.get(r.path, deadline, watch=watch)
            if found is None:
                raise NoNode("no such node", path=r.path, recipe=self.recipe)
            return found

        return (yield from read_locked(self.engine, on, read, timeout))

    def get_children(self, path: str, watch: WatchFn | None, timeout: float | None) -> Machine[list[str]]:
        on, watch = self._on(path), _watch(watch)

        def read(r: Requests, deadline: Deadline) -> Machine[list[str]]:
            return (yield from r.get_children(r.path, deadline, watch=watch))

        return (yield from read_locked(self.engine, on, read, timeout))

    def exists(self, path: str, watch: WatchFn | None, timeout: float | None) -> Machine[ZnodeStat | None]:
        on, watch = self._on(path), _watch(watch)

        def read(r: Requests, deadline: Deadline) -> Machine[ZnodeStat | None]:
            return (yield from r.exists(r.path, deadline, watch=watch))

        return (yield from read_locked(self.engine, on, read, timeout))


class TransactionBase:
    """Writes collected for one transaction on a held lease (see :func:`commit_held`)."""

    recipe = "transaction"

    def __init__(self, lease: LeaseBase, requests: Requests) -> None:
        self.lease = lease
        self.requests = requests
        self.ops: list[Op] = []

    def create(
        self,
        path: str,
        value: bytes = b"",
        acl: list[ACL] | None = None,
        ephemeral: bool = False,
        sequence: bool = False,
    ) -> None:
        path = check_path(path, self.recipe)
        self.ops.append(Create(path, _value(value), check_acl(acl, self.recipe), bool(ephemeral), bool(sequence)))

    def delete(self, path: str, version: int = -1) -> None:
        self.ops.append(Delete(check_path(path, self.recipe), _version(version)))

    def set_data(self, path: str, value: bytes, version: int = -1) -> None:
        self.ops.append(SetData(check_path(path, self.recipe), _value(value), _version(version)))

    def check(self, path: str, version: int) -> None:
        self.ops.append(Check(check_path(path, self.recipe), _version(version)))

    def _commit(self, timeout: float | None) -> Machine[list[Any]]:
        self.lease.check()
        if not self.ops:
            raise InvalidArgument("an empty transaction", path=self.lease.path, recipe=self.recipe)
        deadline = Deadline(check_timeout(timeout)) if timeout is not None else self.requests.default_deadline()
        return (yield from commit_held(self.requests, self.lease, tuple(self.ops), deadline))


def _value(value: object) -> bytes:
    if not isinstance(value, bytes):
        raise InvalidArgument(f"a node's value must be bytes, got {type(value).__name__}", recipe="locked")
    return value


def _version(version: object) -> int:
    if isinstance(version, bool) or not isinstance(version, int) or version < -1:
        raise InvalidArgument(f"version must be an int >= -1 (-1: any), got {version!r}", recipe="locked")
    return version


def _watch(watch: object) -> WatchFn | None:
    if watch is not None and not callable(watch):
        raise InvalidArgument(f"watch must be a callable taking a WatchedEvent, got {watch!r}", recipe="locked")
    return watch
