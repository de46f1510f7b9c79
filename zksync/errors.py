"""The zksync error hierarchy, and the one place kazoo's exceptions are translated.

::

    ZkSyncError
     +-- InvalidArgument        (also ValueError)   bad path, timeout, count, stopped client
     +-- InvalidState           (also RuntimeError) unlock without lock, enter twice, ...
     |    +-- AlreadyHeld
     |    +-- NotHeld
     |    +-- ForeignLayout     the path holds another library's nodes this recipe cannot share
     +-- Timeout                (also TimeoutError) a deadline passed; nothing is left behind
     +-- AccessDenied           (also PermissionError) the znode's ACL refused the request
     +-- ConnectionLost         (also ConnectionError) the ensemble could not be reached
     |    +-- SessionExpired    the session is gone, and every ephemeral node with it
     |    +-- TLSError          the TLS handshake failed (the reason is in the message)
     +-- NodeError              a plain node operation was refused (zksync.locked, transactions)
     |    +-- NoNode            (also LookupError) the node does not exist
     |    +-- NodeExists        the node exists already
     |    +-- BadVersion        the node's version is not the one given
     |    +-- NotEmpty          the node has children
     +-- LockLost               a held lock (or barrier membership) can no longer be trusted
     +-- ParticipantLost        (Sync) an instance left without signalling a state
     +-- BarrierAborted         (Sync) somebody aborted the state

    Timeout
     +-- SyncTimeout            (Sync) a Sync barrier timed out; names the missing

Every error carries the ``path`` it concerns (``None`` when there is none) and the
``recipe`` that raised it, so a log line says what was being coordinated.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from kazoo import exceptions as kz
from kazoo.handlers.threading import KazooTimeoutError

__all__ = [
    "AccessDenied",
    "AlreadyHeld",
    "BadVersion",
    "ConnectionLost",
    "ForeignLayout",
    "InvalidArgument",
    "InvalidState",
    "LockLost",
    "NoNode",
    "NodeError",
    "NodeExists",
    "NotEmpty",
    "NotHeld",
    "SessionExpired",
    "TLSError",
    "Timeout",
    "ZkSyncError",
    "translate",
]


class ZkSyncError(Exception):
    """Root of every error zksync raises."""

    def __init__(self, message: str, *, path: str | None = None, recipe: str | None = None) -> None:
        super().__init__(message)
        self.path = path
        self.recipe = recipe

    def __str__(self) -> str:
        text = super().__str__()
        where = [part for part in (self.recipe, self.path) if part]
        return f"{text} ({' '.join(where)})" if where else text


class InvalidArgument(ZkSyncError, ValueError):
    """An argument is malformed; nothing was sent to ZooKeeper."""


class InvalidState(ZkSyncError, RuntimeError):
    """The call does not fit the recipe's current state."""


class AlreadyHeld(InvalidState):
    """This recipe object already holds (or is acquiring) what was asked for again."""


class NotHeld(InvalidState):
    """Release of something this recipe object does not hold."""


class ForeignLayout(InvalidState):
    """The recipe's path holds nodes laid out by another library (for example the Go
    original's DoubleBarrier), which this recipe cannot share; ``names`` lists a few of them."""

    def __init__(self, message: str, names: list[str], **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.names = names


class Timeout(ZkSyncError, TimeoutError):
    """The deadline passed before the call could complete."""


class AccessDenied(ZkSyncError, PermissionError):
    """ZooKeeper refused the request because of the node's ACL (or failed authentication)."""


class ConnectionLost(ZkSyncError, ConnectionError):
    """The client is not connected and the call could not be completed."""


class SessionExpired(ConnectionLost):
    """The ZooKeeper session expired (or the client was closed): ephemeral nodes are gone."""


class TLSError(ConnectionLost):
    """No TLS session could be set up with the ensemble: a certificate was refused, missing or
    expired, or one side speaks plaintext.  The message says which, and with which member."""


class NodeError(ZkSyncError):
    """ZooKeeper refused an operation on a node for what the node is (or is not)."""


class NoNode(NodeError, LookupError):
    """The node (or, for a create, its parent) does not exist."""


class NodeExists(NodeError):
    """The node to create exists already."""


class BadVersion(NodeError):
    """The node's version is not the one the operation was conditioned on."""


class NotEmpty(NodeError):
    """The node to delete has children."""


class LockLost(ZkSyncError):
    """A held lock can no longer be trusted: the session expired, or the connection was
    suspended for so long that the server may already have expired it."""


class ParticipantLost(ZkSyncError):
    """Instances that joined are gone without signalling the state a barrier waits for."""

    def __init__(self, message: str, instances: list[str], **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.instances = instances


class BarrierAborted(ZkSyncError):
    """Somebody aborted the state this barrier waits for."""

    def __init__(self, message: str, reason: str, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.reason = reason


class SyncTimeout(Timeout):
    """A barrier timed out; ``missing`` names joined instances that had not signalled."""

    def __init__(self, message: str, missing: list[str], **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.missing = missing


@contextlib.contextmanager
def translate(path: str | None = None, recipe: str | None = None) -> Iterator[None]:
    """Re-raise kazoo exceptions as the most specific zksync error, keeping the cause."""
    try:
        yield
    except ZkSyncError:
        raise
    except (kz.NoAuthError, kz.AuthFailedError, kz.InvalidACLError) as exc:
        raise AccessDenied(_describe(exc, "access denied by ACL"), path=path, recipe=recipe) from exc
    except (kz.SessionExpiredError, kz.ConnectionClosedError) as exc:
        raise SessionExpired(_describe(exc, "session expired or client closed"), path=path, recipe=recipe) from exc
    except (kz.ConnectionLoss, kz.OperationTimeoutError) as exc:
        raise ConnectionLost(_describe(exc, "connection to ZooKeeper lost"), path=path, recipe=recipe) from exc
    except KazooTimeoutError as exc:
        raise Timeout(_describe(exc, "timed out"), path=path, recipe=recipe) from exc
    except kz.NoNodeError as exc:
        raise NoNode(_describe(exc, "no such node"), path=path, recipe=recipe) from exc
    except kz.NodeExistsError as exc:
        raise NodeExists(_describe(exc, "the node exists"), path=path, recipe=recipe) from exc
    except kz.BadVersionError as exc:
        raise BadVersion(_describe(exc, "the node's version differs"), path=path, recipe=recipe) from exc
    except kz.NotEmptyError as exc:
        raise NotEmpty(_describe(exc, "the node has children"), path=path, recipe=recipe) from exc
    except (kz.BadArgumentsError, kz.MarshallingError) as exc:
        raise InvalidArgument(_describe(exc, "rejected by ZooKeeper"), path=path, recipe=recipe) from exc
    except kz.ZookeeperError as exc:
        raise ZkSyncError(_describe(exc, type(exc).__name__), path=path, recipe=recipe) from exc
    except kz.KazooException as exc:
        raise ZkSyncError(_describe(exc, type(exc).__name__), path=path, recipe=recipe) from exc


def _describe(exc: BaseException, default: str) -> str:
    text = str(exc)
    return f"{default}: {text}" if text and text != default else default
