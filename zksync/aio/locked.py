"""One node operation under an ``RWMutex``, for asyncio: :mod:`zksync.locked` as coroutines,
on the same nodes and with the same rules.

    >>> await zksync.aio.locked.set(client, "/app/config-lock", "/app/config", b"v2", timeout=10)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from kazoo.client import KazooClient
from kazoo.protocol.states import ZnodeStat
from kazoo.security import ACL

from .._core.effects import Machine
from .._core.locked import LockedCalls, WatchFn
from .._drive.aio import run
from .._session import session_for

__all__ = ["create", "delete", "exists", "get", "get_children", "set"]

T = TypeVar("T")


async def _run(
    client: KazooClient,
    lock_path: str,
    naming: str,
    lock_acl: list[ACL] | None,
    call: Callable[[LockedCalls], Machine[T]],
) -> T:
    session = session_for(client, LockedCalls.recipe)
    return await run(call(LockedCalls.at(session, lock_path, naming, lock_acl)), session)


async def create(
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
    return await _run(
        client, lock_path, naming, lock_acl, lambda c: c.create(path, value, acl, ephemeral, sequence, timeout)
    )


async def delete(
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
    await _run(client, lock_path, naming, lock_acl, lambda c: c.delete(path, version, timeout))


async def set(
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
    return await _run(client, lock_path, naming, lock_acl, lambda c: c.set(path, value, version, timeout))


async def get(
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
    return await _run(client, lock_path, naming, lock_acl, lambda c: c.get(path, watch, timeout))


async def get_children(
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
    return await _run(client, lock_path, naming, lock_acl, lambda c: c.get_children(path, watch, timeout))


async def exists(
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
    return await _run(client, lock_path, naming, lock_acl, lambda c: c.exists(path, watch, timeout))
