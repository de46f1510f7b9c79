"""zksync: ZooKeeper coordination recipes for Python, on top of kazoo.

    >>> import zksync
    >>> client = zksync.connect()                       # ZOOKEEPER_PEERS or 127.0.0.1:2181
    >>> with zksync.RWMutex(client, "/app/lock").write(timeout=10) as lease:
    ...     storage.write(data, fencing_token=lease.fencing_token)

Every recipe takes any started ``kazoo.client.KazooClient``.
"""

from __future__ import annotations

import os
import time
import warnings
from typing import Any

from kazoo.client import KazooClient
from kazoo.retry import KazooRetry

from . import locked
from ._collection_queue import QueuedWrite
from ._handler import default_handler
from ._redact import redact_secrets
from ._session import install_timeout_probe
from ._tls import HandshakeWatch, resolve_tls_options
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
    TLSError,
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
    "TLSError",
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


# Longest pause between two rounds of reconnection attempts (seconds).  kazoo's own default doubles
# the pause up to an hour, so after an outage of some seconds a client may sleep on long after its
# members are back and lose a session the ensemble would have kept; ZooKeeper's Java client waits
# at most about a second between attempts too.
RECONNECT_MAX_DELAY = 1.0


def connect(hosts: str | None = None, *, timeout: float = 15.0, **kazoo_options: Any) -> KazooClient:
    """A started kazoo client for ``hosts`` (default: :func:`default_hosts`).

    ``kazoo_options`` go to :class:`~kazoo.client.KazooClient` unchanged (``timeout`` there
    is the session timeout: pass it as ``session_timeout=``).  Without a ``handler=`` the client
    gets kazoo's threading handler waiting on its socket with ``poll(2)``
    (:class:`zksync._handler.PollingHandler`: less CPU per request than kazoo's default).
    Without a ``connection_retry=`` it reconnects for ever, with a pause that doubles from 0.1 s
    up to :data:`RECONNECT_MAX_DELAY` (kazoo's default grows to an hour).

    **TLS**: ``ca=`` (the CA file that verifies the members), ``certfile=`` and ``keyfile=`` (this
    client's certificate and key, PEM), or when none is given ``ZOOKEEPER_TLS_CA``,
    ``ZOOKEEPER_TLS_CERT`` and ``ZOOKEEPER_TLS_KEY``, make the client speak TLS, verifying the
    members' certificates and host names (``check_hostname=False`` to skip the names).  Missing,
    unreadable or mismatched files are :class:`InvalidArgument` before anything is sent.
    ``auth_data=[("digest", "user:password")]`` (see :mod:`zksync.acl`) authenticates the session.

    Raises :class:`ConnectionLost` when no member answers within ``timeout`` seconds, and its
    :class:`TLSError` as soon as every member has refused the TLS handshake (or speaks TLS to a
    plaintext client), saying why; nothing is left running then.
    """
    if hosts is not None and (not isinstance(hosts, str) or not hosts.strip()):
        raise InvalidArgument(f"hosts must be a non-empty 'host:port,...' string, got {hosts!r}")
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not timeout > 0:
        raise InvalidArgument(f"timeout must be a number of seconds > 0, got {timeout!r}")
    if "session_timeout" in kazoo_options:
        kazoo_options["timeout"] = kazoo_options.pop("session_timeout")
    tls = resolve_tls_options(kazoo_options)
    if kazoo_options.get("handler") is None:
        handler = default_handler()  # kazoo's threading handler, waiting with poll(2): see zksync._handler
        if handler is not None:
            kazoo_options["handler"] = handler
    if kazoo_options.get("connection_retry") is None:
        sleep = getattr(kazoo_options.get("handler"), "sleep_func", None)
        retry = {"sleep_func": sleep} if sleep is not None else {}
        kazoo_options["connection_retry"] = KazooRetry(
            max_tries=None, delay=0.1, backoff=2, max_delay=RECONNECT_MAX_DELAY, **retry
        )
    client = KazooClient(hosts=hosts or default_hosts(), **kazoo_options)
    redact_secrets(client)
    install_timeout_probe(client)
    with HandshakeWatch(client, tls) as watch:  # until the first session, or the end of trying
        try:
            _wait_for_session(client, watch, timeout)
        except BaseException as exc:
            client.stop()
            client.close()
            if isinstance(exc, ZkSyncError):
                raise
            raise ConnectionLost(f"could not connect to ZooKeeper at {client_hosts(client)}: {exc}") from exc
    return client


def _wait_for_session(client: KazooClient, watch: HandshakeWatch, timeout: float) -> None:
    """Start ``client`` and wait until it has a session (and its SASL authentication, when asked
    for), or until ``watch`` gives up on the handshakes, or ``timeout`` seconds."""
    started = client.start_async()
    deadline = time.monotonic() + timeout
    ready = watch.session_ready
    while not (ready.wait(min(0.05, max(0.0, deadline - time.monotonic()))) and started.is_set()):
        if watch.gave_up.is_set() or time.monotonic() >= deadline:
            break
    if not client.connected or not ready.is_set():
        raise watch.error(client_hosts(client)) or ConnectionLost(
            f"could not connect to ZooKeeper at {client_hosts(client)}: Connection time-out"
        )
    if client.chroot and not client.exists("/"):
        warnings.warn("the chroot path does not exist: create it before use", stacklevel=3)


def client_hosts(client: KazooClient) -> str:
    """The ``host:port,...`` list a client connects to."""
    return ",".join(f"{host}:{port}" for host, port in client.hosts)
