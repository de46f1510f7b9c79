"""The vocabulary between the recipes' logic and the drivers that do its I/O.

A recipe step is a generator (a *machine*): it yields an effect and receives the effect's
outcome (``gen.send``), or has the outcome's exception thrown in (``gen.throw``)::

    stat = yield Send(Exists(path, watch=WATCH), deadline)    # a reply, or a kazoo exception
    wake = yield Wait(deadline)                               # a watch or connection change
    back = yield AwaitConnected(deadline)                     # True once connected again

No machine starts a thread, sleeps or calls kazoo.  A driver (``zksync._drive``: blocking
threads, or asyncio) runs it: it sends the requests through a ``KazooClient``, delivers watch
events and connection changes, and waits for the time the deadline leaves.  So the rules,
their fixes and their tests serve every front-end, and a test can drive a machine by hand.

Requests mirror ZooKeeper's operations.  ``watch`` is ``None`` (no watch), :data:`WATCH` (the
running machine's own wake-up: it sees the event as the result of its next :class:`Wait`) or a
callable of a background owner.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Generator
from dataclasses import dataclass
from typing import Any, TypeVar

from kazoo.protocol.states import WatchedEvent
from kazoo.security import ACL

from .._util import Deadline

T = TypeVar("T")


class _Watch:
    """Marker: route this request's watch to the running machine's wake-up."""

    def __repr__(self) -> str:
        return "WATCH"


WATCH = _Watch()
WatchSpec = None | _Watch | Callable[[WatchedEvent], None]


# ---- requests ----------------------------------------------------------------------------
@dataclass(frozen=True)
class Create:
    path: str
    value: bytes = b""
    acl: list[ACL] | None = None
    ephemeral: bool = False
    sequence: bool = False
    makepath: bool = True


@dataclass(frozen=True)
class Delete:
    path: str
    version: int = -1


@dataclass(frozen=True)
class SetData:
    path: str
    value: bytes
    version: int = -1


@dataclass(frozen=True)
class Check:
    path: str
    version: int


@dataclass(frozen=True)
class Exists:
    path: str
    watch: WatchSpec = None


@dataclass(frozen=True)
class Get:
    path: str
    watch: WatchSpec = None


@dataclass(frozen=True)
class GetChildren:
    """The child names; with ``include_stat``, ``(names, stat)`` (the parent's stat, whose
    ``pzxid`` is the zxid of the last change of its children)."""

    path: str
    watch: WatchSpec = None
    include_stat: bool = False


@dataclass(frozen=True)
class SyncPath:
    """ZooKeeper's ``sync``: bring the member we read from up to date with the leader."""

    path: str


@dataclass(frozen=True)
class EnsurePath:
    path: str
    acl: list[ACL] | None = None


@dataclass(frozen=True)
class Multi:
    """A transaction: every step lands, or none does; the reply lists each step's result."""

    ops: tuple[Create | Delete | SetData | Check, ...]


Request = Create | Delete | SetData | Check | Exists | Get | GetChildren | SyncPath | EnsurePath | Multi


# ---- effects -----------------------------------------------------------------------------
@dataclass(frozen=True)
class Send:
    """Send one request and wait for its reply until ``deadline`` (with a try-once deadline:
    for one session timeout).  The driver raises :class:`NoAnswer` when none came in time;
    with ``abandon_cleanup``, whatever an abandoned ephemeral create makes later is deleted."""

    request: Request
    deadline: Deadline
    abandon_cleanup: bool = False


@dataclass(frozen=True)
class SendMany:
    """Send requests pipelined (all at once), then collect every reply; the outcome is a list
    holding each reply or the exception it failed with (:class:`NoAnswer` past the deadline)."""

    requests: tuple[Request, ...]
    deadline: Deadline


@dataclass(frozen=True)
class Forget:
    """Drop the watch event remembered from before (the next :class:`Wait` reports a fresh one)."""


@dataclass(frozen=True)
class Wait:
    """Wait until a watch of this machine fires or the connection state changes: the outcome is
    a :class:`Wake`, or None when the deadline passed first."""

    deadline: Deadline


@dataclass(frozen=True)
class Wake:
    event: WatchedEvent | None  # the last watch event since Forget; None: a connection change


@dataclass(frozen=True)
class AwaitConnected:
    """True once the client is connected (and the session trusted), False at the deadline."""

    deadline: Deadline


class WakeHub:
    """The wake-up functions of the machines that wait for news from one source (a cache kept
    by a background watch, say).  Thread-safe; a wake-up function never blocks."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._wakes: set[Callable[[], None]] = set()

    def add(self, wake: Callable[[], None]) -> None:
        with self._lock:
            self._wakes.add(wake)

    def remove(self, wake: Callable[[], None]) -> None:
        with self._lock:
            self._wakes.discard(wake)

    def listened(self) -> bool:
        with self._lock:
            return bool(self._wakes)

    def wake_all(self) -> None:
        with self._lock:
            wakes = list(self._wakes)
        for wake in wakes:
            wake()


@dataclass(frozen=True)
class Listen:
    """From now until the machine ends, news on ``hub`` wakes its :class:`Wait` too."""

    hub: WakeHub


@dataclass(frozen=True)
class Release:
    """Delete our node, waiting up to ``wait`` seconds for the answer (deferred to the next
    connection when disconnected).  With ``handoff``, the delete is preceded by a data change
    in the same transaction (see :mod:`zksync._core.queue`).  Never fails."""

    node: str
    wait: float
    handoff: bool = False


@dataclass(frozen=True)
class Sweep:
    """Remove, now and once more after a session timeout, any child of ``parent`` whose name
    carries ``guid`` (late duplicates of a create whose reply was lost).  Returns at once."""

    parent: str
    guid: str


Effect = Send | SendMany | Forget | Wait | AwaitConnected | Listen | Release | Sweep
Machine = Generator[Effect, Any, T]


class NoAnswer(Exception):
    """Raised into a machine by a driver: no reply came before the deadline (the request may
    still be answered later)."""
