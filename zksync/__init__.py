"""zksync: ZooKeeper coordination recipes for Python, on top of kazoo.

    >>> import zksync
    >>> client = zksync.connect()                       # ZOOKEEPER_PEERS or 127.0.0.1:2181
    >>> with zksync.RWMutex(client, "/app/lock").write(timeout=10) as lease:
    ...     storage.write(data, fencing_token=lease.fencing_token)

Every recipe takes any started ``kazoo.client.KazooClient``.
"""

from __future__ import annotations

import os
from typing import Any

from kazoo.client import KazooClient

from . import locked
from ._collection_queue import QueuedWrite
from ._handler import default_handler
from ._session import install_timeout_probe
from .barrier import Barrier, DoubleBarrier
from .collection import Changed, Changes, Collection
from .errors import (
    AccessDenied,
    AlreadyHeld,
    BadVersion,
    ConnectionLost,
    ForeignLayout,
    InvalidArgument,
    InvalidState,
    LockLost,
    NodeError,
    NodeExists,
    NoNode,
    NotEmpty,
    NotHeld,
    SessionExpired,
    Timeout,
    ZkSyncError,
)
from .rwmutex import Lease, RWMutex, Transaction
from .sync import BarrierAborted, ParticipantLost, Subscription, Sync, SyncTimeout
from .watcher import Watcher, WatchEvent, WatchSubscription

__all__ = [
    "AccessDenied",
    "AlreadyHeld",
    "BadVersion",
    "Barrier",
    "BarrierAborted",
    "Changed",
    "Changes",
    "Collection",
    "ConnectionLost",
    "DoubleBarrier",
    "ForeignLayout",
    "InvalidArgument",
    "InvalidState",
    "Lease",
    "LockLost",
    "NoNode",
    "NodeError",
    "NodeExists",
    "NotEmpty",
    "NotHeld",
    "ParticipantLost",
    "QueuedWrite",
    "RWMutex",
    "SessionExpired",
    "Subscription",
    "Sync",
    "SyncTimeout",
    "Timeout",
    "Transaction",
    "WatchEvent",
    "WatchSubscription",
    "Watcher",
    "ZkSyncError",
    "connect",
    "default_hosts",
    "locked",
]

__version__ = "0.1.0"


def default_hosts() -> str:
    """``ZOOKEEPER_PEERS`` (comma-separated host:port) if set, else ``127.0.0.1:2181``."""
    return os.environ.get("ZOOKEEPER_PEERS", "").strip() or "127.0.0.1:2181"


def connect(hosts: str | None = None, *, timeout: float = 15.0, **kazoo_options: Any) -> KazooClient:
    """A started kazoo client for ``hosts`` (default: :func:`default_hosts`).

    ``kazoo_options`` go to :class:`~kazoo.client.KazooClient` unchanged (``timeout`` there
    is the session timeout: pass it as ``session_timeout=``).  Without a ``handler=`` the client
    gets kazoo's threading handler waiting on its socket with ``poll(2)``
    (:class:`zksync._handler.PollingHandler`: less CPU per request than kazoo's default).
    Raises :class:`ConnectionLost` when no member answers within ``timeout`` seconds; nothing
    is left running then.
    """
    if hosts is not None and (not isinstance(hosts, str) or not hosts.strip()):
        raise InvalidArgument(f"hosts must be a non-empty 'host:port,...' string, got {hosts!r}")
    if "session_timeout" in kazoo_options:
        kazoo_options["timeout"] = kazoo_options.pop("session_timeout")
    if kazoo_options.get("handler") is None:
        handler = default_handler()  # kazoo's threading handler, waiting with poll(2): see zksync._handler
        if handler is not None:
            kazoo_options["handler"] = handler
    client = KazooClient(hosts=hosts or default_hosts(), **kazoo_options)
    install_timeout_probe(client)
    try:
        client.start(timeout=timeout)
    except Exception as exc:
        client.stop()
        client.close()
        raise ConnectionLost(f"could not connect to ZooKeeper at {client.hosts}: {exc}") from exc
    return client
