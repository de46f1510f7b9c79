"""The request layer, as machines: every ZooKeeper call a recipe makes goes through here.

* each call is bounded by a :class:`Deadline` (kazoo's synchronous calls wait forever while
  the client is disconnected);
* idempotent calls are retried on connection loss, once the connection is back, with
  ``tenacity`` (the only retry loop in the package);
* kazoo's exceptions become zksync errors at this one boundary;
* the *wait step* (wait for a watch, make sure the connection is back, or time out naming the
  recipe) is written here once, for every recipe.

Every method is a generator to be run with ``yield from`` inside a recipe's machine (see
:mod:`zksync._core.effects`); none does I/O itself.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any, Protocol

from kazoo import exceptions as kz
from kazoo.protocol.states import WatchedEvent, ZnodeStat
from kazoo.security import ACL
from tenacity import RetryCallState, Retrying, retry_if_exception_type, wait_none
from tenacity.stop import stop_base

from .._util import Deadline
from ..errors import InvalidArgument, SessionExpired, Timeout, translate
from .effects import (
    AwaitConnected,
    Create,
    Delete,
    EnsurePath,
    Exists,
    Get,
    GetChildren,
    Machine,
    Multi,
    NoAnswer,
    Request,
    Send,
    SendMany,
    SyncPath,
    Wait,
    WatchSpec,
)

RETRYABLE = (kz.ConnectionLoss, kz.OperationTimeoutError)
LostCallback = Callable[[str], None]


class Session(Protocol):
    """What the machines may ask of the session (kept by :mod:`zksync._session`): plain reads
    and registrations, never a blocking call."""

    @property
    def session_timeout(self) -> float: ...

    @property
    def session_id(self) -> int | None: ...

    @property
    def chroot(self) -> str:
        """The client's chroot ("" for none): what a path in a log line is relative to."""
        ...

    def is_connected(self) -> bool: ...

    def stopped(self) -> bool: ...

    def on_lost(self, callback: LostCallback) -> int: ...

    def cancel_lost(self, token: int) -> None: ...

    def delete_soon(self, path: str) -> None: ...


def failed_step(results: list[Any]) -> Exception | None:
    """The step that made a kazoo transaction fail, or None when every step landed (kazoo
    reports the other steps as RolledBackError or RuntimeInconsistency)."""
    return next(
        (
            r
            for r in results
            if isinstance(r, Exception) and not isinstance(r, (kz.RolledBackError, kz.RuntimeInconsistency))
        ),
        None,
    )


class _Expected(Exception):
    """Carries an expected kazoo exception past the translation boundary."""

    def __init__(self, exc: Exception) -> None:
        super().__init__(exc)
        self.exc = exc


class _StopAtDeadline(stop_base):
    def __init__(self, deadline: Deadline) -> None:
        self.deadline = deadline

    def __call__(self, retry_state: RetryCallState) -> bool:
        return self.deadline.expired()


PIPELINE_WINDOW = 1000  # requests of one pipelined call in flight at once (bounds the memory of a big load)


class Requests:
    """ZooKeeper calls for one recipe object, bounded, retried and translated."""

    def __init__(self, session: Session, recipe: str, path: str, acl: list[ACL] | None = None) -> None:
        self.session = session
        self.recipe = recipe
        self.path = path
        self.acl = acl  # for every node created without an ACL of its own (None: the client's default)

    def _with_own_acl(self, op: Any) -> Any:
        return replace(op, acl=self.acl) if isinstance(op, Create) and op.acl is None else op

    def with_acl(self, acl: list[ACL] | None) -> Requests:
        """The same calls, creating nodes with ``acl`` (None: the client's default ACL)."""
        return Requests(self.session, self.recipe, self.path, acl)

    # ---- plumbing ----------------------------------------------------------------------
    def ensure_usable(self) -> None:
        if self.session.stopped():
            raise InvalidArgument(
                "the kazoo client is not started (call client.start() first)", path=self.path, recipe=self.recipe
            )

    def default_deadline(self) -> Deadline:
        """For calls without a timeout argument: give up after one session timeout."""
        return Deadline(max(1.0, self.session.session_timeout))

    def timeout(self, what: str, path: str | None = None) -> Timeout:
        return Timeout(f"timed out {what}", path=path or self.path, recipe=self.recipe)

    def _once(self, request: Request, deadline: Deadline, abandon: bool) -> Machine[Any]:
        try:
            return (yield Send(request, deadline, abandon))
        except NoAnswer:
            # kazoo still holds the request and may send it once reconnected
            raise self.timeout("waiting for ZooKeeper to answer") from None

    def call(
        self,
        request: Request,
        deadline: Deadline,
        *,
        retry: bool = True,
        expected: tuple[type[Exception], ...] = (),
        abandon_cleanup: bool = False,
    ) -> Machine[Any]:
        """Run one request; with ``retry``, repeat it on connection loss until the deadline.

        kazoo exceptions listed in ``expected`` reach the caller as they are (they are
        answers, such as NoNodeError, not failures); all others are translated.
        """
        self.ensure_usable()
        try:
            with translate(self.path, self.recipe):
                try:
                    if not retry:
                        return (yield from self._once(request, deadline, abandon_cleanup))
                    try:  # the common case: answered at the first try, no retry machinery
                        return (yield from self._once(request, deadline, abandon_cleanup))
                    except RETRYABLE:
                        if deadline.expired():
                            raise
                    result: Any = None
                    for attempt in Retrying(
                        retry=retry_if_exception_type(RETRYABLE),
                        stop=_StopAtDeadline(deadline),
                        wait=wait_none(),
                        sleep=lambda seconds: None,
                        reraise=True,
                    ):
                        with attempt:
                            yield from self.await_connection(deadline)
                            result = yield from self._once(request, deadline, abandon_cleanup)
                    return result
                except expected as exc:
                    raise _Expected(exc) from None
        except _Expected as wrapped:
            raise wrapped.exc from None

    def await_connection(self, deadline: Deadline) -> Machine[None]:
        """Return once connected; :class:`Timeout` at the deadline."""
        if self.session.stopped():
            raise SessionExpired("the client was stopped", path=self.path, recipe=self.recipe)
        if not (yield AwaitConnected(deadline)):  # (answered at once by the driver when connected)
            raise self.timeout("waiting for the connection to ZooKeeper to come back")

    def wait(self, deadline: Deadline, what: str | Callable[[], str]) -> Machine[WatchedEvent | None]:
        """The wait step of every recipe: wait for a watch of ours (or a connection change),
        then make sure the connection is back.  Returns the watch event (None when the wake
        came from the connection); :class:`Timeout` naming ``what`` at the deadline."""
        wake = yield Wait(deadline)
        if wake is None:
            raise self.timeout(what if isinstance(what, str) else what())
        if not self.session.is_connected():
            yield from self.await_connection(deadline)
        return wake.event

    # ---- the calls ---------------------------------------------------------------------
    def get_children(
        self, path: str, deadline: Deadline, watch: WatchSpec = None, *, missing_ok: bool = False
    ) -> Machine[list[str]]:
        """Child names; with ``missing_ok``, [] when ``path`` does not exist."""
        try:
            result: list[str] = yield from self.call(
                GetChildren(path, watch), deadline, expected=(kz.NoNodeError,) if missing_ok else ()
            )
        except kz.NoNodeError:
            return []
        return result

    def sync(self, path: str, deadline: Deadline) -> Machine[None]:
        """Bring our member up to date with the leader before a read (ZooKeeper reads are
        otherwise served from a member that may lag behind writes other clients saw succeed)."""
        yield from self.call(SyncPath(path), deadline)

    def exists(self, path: str, deadline: Deadline, watch: WatchSpec = None) -> Machine[ZnodeStat | None]:
        result: ZnodeStat | None = yield from self.call(Exists(path, watch), deadline)
        return result

    def commit(self, transaction: Multi, deadline: Deadline) -> Machine[list[Any]]:
        """Send a transaction once (a committed transaction cannot be sent again: on a lost
        connection the caller decides what to do) and return its per-step results."""
        if self.acl is not None:
            transaction = Multi(tuple(self._with_own_acl(op) for op in transaction.ops))
        results: list[Any] = yield from self.call(transaction, deadline, retry=False)
        return results

    def exists_many(self, paths: list[str], deadline: Deadline) -> Machine[list[ZnodeStat | None]]:
        """``exists`` of every path, pipelined (see :meth:`_pipelined`)."""
        return (yield from self._pipelined([Exists(path) for path in paths], deadline))

    def get_many(self, paths: list[str], deadline: Deadline) -> Machine[list[tuple[bytes, ZnodeStat] | None]]:
        """``get`` of every path, pipelined; None for a node that does not exist."""
        return (yield from self._pipelined([Get(path) for path in paths], deadline))

    def get_children_many(self, paths: list[str], deadline: Deadline) -> Machine[list[list[str]]]:
        """The children of every path, pipelined; [] for a node that does not exist."""
        return (yield from self._pipelined([GetChildren(path) for path in paths], deadline, missing=[]))

    def _pipelined(self, requests: list[Any], deadline: Deadline, missing: Any = None) -> Machine[list[Any]]:
        """Send the requests :data:`PIPELINE_WINDOW` at a time, each window at once, and collect
        every answer; a missing node answers ``missing``.  The requests that met a connection loss
        are sent again, pipelined too, once the connection is back (until the deadline)."""
        self.ensure_usable()
        out: list[Any] = [missing] * len(requests)
        todo = list(range(len(requests)))
        while todo:
            lost: list[int] = []
            for start in range(0, len(todo), PIPELINE_WINDOW):
                window = todo[start : start + PIPELINE_WINDOW]
                outcomes: list[Any] = yield SendMany(tuple(requests[i] for i in window), deadline)
                for i, outcome in zip(window, outcomes):
                    if isinstance(outcome, RETRYABLE):
                        lost.append(i)
                    elif isinstance(outcome, kz.NoNodeError):
                        out[i] = missing
                    elif isinstance(outcome, NoAnswer):
                        raise self.timeout("waiting for ZooKeeper to answer")
                    elif isinstance(outcome, BaseException):
                        with translate(self.path, self.recipe):
                            raise outcome
                    else:
                        out[i] = outcome
            if lost:
                if deadline.expired():
                    raise self.timeout("waiting for the connection to ZooKeeper to come back")
                yield from self.await_connection(deadline)
            todo = lost
        return out

    def get(self, path: str, deadline: Deadline, watch: WatchSpec = None) -> Machine[tuple[bytes, ZnodeStat] | None]:
        """Data and stat, or None when the node does not exist."""
        try:
            result: tuple[bytes, ZnodeStat] = yield from self.call(
                Get(path, watch), deadline, expected=(kz.NoNodeError,)
            )
        except kz.NoNodeError:
            return None
        return result

    def delete(self, path: str, deadline: Deadline, version: int = -1) -> Machine[bool]:
        """Delete ``path``; False when it was already gone (or changed, with a version)."""
        try:
            yield from self.call(Delete(path, version), deadline, expected=(kz.NoNodeError, kz.BadVersionError))
        except (kz.NoNodeError, kz.BadVersionError):
            return False
        return True

    def create(
        self,
        path: str,
        deadline: Deadline,
        *,
        value: bytes = b"",
        acl: list[ACL] | None = None,
        ephemeral: bool = False,
        sequence: bool = False,
        retry: bool = True,
    ) -> Machine[tuple[str, ZnodeStat] | None]:
        """Create ``path`` (and missing parents, with the same ACL); returns (path, stat),
        or None when the node already exists (never for sequential nodes)."""
        request = Create(path, value, acl if acl is not None else self.acl, ephemeral, sequence)
        try:
            result: tuple[str, ZnodeStat] = yield from self.call(
                request, deadline, retry=retry, expected=(kz.NodeExistsError,), abandon_cleanup=ephemeral
            )
        except kz.NodeExistsError:
            return None
        return result

    def ensure_path(self, path: str, deadline: Deadline, acl: list[ACL] | None = None) -> Machine[None]:
        yield from self.call(EnsurePath(path, acl if acl is not None else self.acl), deadline)


__all__ = ["RETRYABLE", "Requests", "Session", "failed_step"]
