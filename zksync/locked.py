"""One node operation under an ``RWMutex``: the Go library's ``Locked*`` helpers.

    >>> zksync.locked.set(client, "/app/config-lock", "/app/config", b"v2", timeout=10)
    >>> data, stat = zksync.locked.get(client, "/app/config-lock", "/app/config", timeout=10)

Writes (``create``, ``delete``, ``set``) take the write lock at ``lock_path``; reads (``get``,
``get_children``, ``exists``, each with ``watch=`` like Go's ``W`` variants) take a read lock.
Each write goes out as one transaction with a check of the holder's own lock node, so it lands
only while the lock is still held: a holder whose session expired in the meantime gets
:class:`~zksync.LockLost` and nothing is written.  ``timeout`` covers the whole call, waiting
for the lock included.  ``naming`` and ``lock_acl`` are the lock's (see :class:`zksync.RWMutex`).
A refused operation raises :class:`~zksync.NoNode`, :class:`~zksync.NodeExists`,
:class:`~zksync.BadVersion` or :class:`~zksync.NotEmpty`.

For several writes under one held lock, use :meth:`zksync.Lease.transaction`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from kazoo.client import KazooClient
from kazoo.protocol.states import ZnodeStat
from kazoo.security import ACL

from ._core.effects import Machine
from ._core.locked import LockedCalls, WatchFn
from ._drive.blocking import run
from ._session import session_for

__all__ = ["create", "delete", "exists", "get", "get_children", "set"]

T = TypeVar("T")


def _run(
    client: KazooClient,
    lock_path: str,
    naming: str,
    lock_acl: list[ACL] | None,
    call: Callable[[LockedCalls], Machine[T]],
) -> T:
    session = session_for(client, LockedCalls.recipe)
    return run(call(LockedCalls.at(session, lock_path, naming, lock_acl)), session)


def create(
    client: KazooClient,
    lock_path: str,
    path: str,
    value: bytes = b"",
    *,
    acl: list[ACL] | None = None,
    ephemeral: bool = False,
    sequence: bool = False,
    timeout: float | None = None,
    naming: str = "zksync",
    lock_acl: list[ACL] | None = None,
) -> str:
    """Create ``path`` under the write lock; returns the path created (with its sequence)."""
    return _run(client, lock_path, naming, lock_acl, lambda c: c.create(path, value, acl, ephemeral, sequence, timeout))


def delete(
    client: KazooClient,
    lock_path: str,
    path: str,
    *,
    version: int = -1,
    timeout: float | None = None,
    naming: str = "zksync",
    lock_acl: list[ACL] | None = None,
) -> None:
    """Delete ``path`` under the write lock (only at ``version``, unless -1)."""
    _run(client, lock_path, naming, lock_acl, lambda c: c.delete(path, version, timeout))


def set(
    client: KazooClient,
    lock_path: str,
    path: str,
    value: bytes,
    *,
    version: int = -1,
    timeout: float | None = None,
    naming: str = "zksync",
    lock_acl: list[ACL] | None = None,
) -> ZnodeStat:
    """Set ``path``'s value under the write lock; returns its new stat."""
    return _run(client, lock_path, naming, lock_acl, lambda c: c.set(path, value, version, timeout))


def get(
    client: KazooClient,
    lock_path: str,
    path: str,
    *,
    watch: WatchFn | None = None,
    timeout: float | None = None,
    naming: str = "zksync",
    lock_acl: list[ACL] | None = None,
) -> tuple[bytes, ZnodeStat]:
    """``path``'s value and stat, read under a read lock; :class:`~zksync.NoNode` if missing."""
    return _run(client, lock_path, naming, lock_acl, lambda c: c.get(path, watch, timeout))


def get_children(
    client: KazooClient,
    lock_path: str,
    path: str,
    *,
    watch: WatchFn | None = None,
    timeout: float | None = None,
    naming: str = "zksync",
    lock_acl: list[ACL] | None = None,
) -> list[str]:
    """``path``'s child names, read under a read lock."""
    return _run(client, lock_path, naming, lock_acl, lambda c: c.get_children(path, watch, timeout))


def exists(
    client: KazooClient,
    lock_path: str,
    path: str,
    *,
    watch: WatchFn | None = None,
    timeout: float | None = None,
    naming: str = "zksync",
    lock_acl: list[ACL] | None = None,
) -> ZnodeStat | None:
    """``path``'s stat, or None, read under a read lock (``watch`` fires on its creation too)."""
    return _run(client, lock_path, naming, lock_acl, lambda c: c.exists(path, watch, timeout))
