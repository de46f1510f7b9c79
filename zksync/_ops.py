"""The request layer: every ZooKeeper call a recipe makes goes through here.

* each call is bounded by a :class:`Deadline` (kazoo's synchronous calls wait forever while
  the client is disconnected; we use the async form and wait for the time left);
* idempotent calls are retried on connection loss, once the connection is back, with
  ``tenacity`` (the only retry loop in the package);
* kazoo's exceptions become zksync errors at this one boundary.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, TypeVar

from kazoo import exceptions as kz
from kazoo.client import KazooClient
from kazoo.handlers.threading import KazooTimeoutError
from kazoo.interfaces import IAsyncResult
from kazoo.protocol.states import WatchedEvent, ZnodeStat
from kazoo.security import ACL
from tenacity import RetryCallState, Retrying, retry_if_exception_type, wait_none
from tenacity.stop import stop_base

from ._session import SessionWatch, session_for
from ._util import Deadline
from .errors import ConnectionLost, InvalidArgument, Timeout, translate

T = TypeVar("T")

_RETRYABLE = (kz.ConnectionLoss, kz.OperationTimeoutError)


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


class Waiter:
    """One event set by a znode watch *or* by any connection state change."""

    def __init__(self, session: SessionWatch) -> None:
        self.session = session
        self.event = threading.Event()
        self.last: WatchedEvent | None = None
        session.add_waker(self.event)

    def watch(self, event: WatchedEvent) -> None:
        self.last = event
        self.event.set()

    def wait(self, deadline: Deadline) -> bool:
        """True when woken, False when the deadline passed first."""
        woken = self.event.wait(deadline.remaining())
        self.event.clear()
        return woken

    def close(self) -> None:
        self.session.remove_waker(self.event)

    def __enter__(self) -> Waiter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Ops:
    """ZooKeeper calls for one recipe object, bounded, retried and translated."""

    def __init__(self, client: KazooClient, recipe: str, path: str) -> None:
        self.client = client
        self.recipe = recipe
        self.path = path
        self.session = session_for(client, recipe)

    # ---- plumbing ----------------------------------------------------------------------
    def ensure_usable(self) -> None:
        if self.session.stopped():
            raise InvalidArgument(
                "the kazoo client is not started (call client.start() first)", path=self.path, recipe=self.recipe
            )

    def default_deadline(self) -> Deadline:
        """For calls without a timeout argument: give up after one session timeout."""
        return Deadline(max(1.0, self.session.session_timeout))

    def _once(
        self,
        start: Callable[[], IAsyncResult],
        deadline: Deadline,
        on_abandon: Callable[[IAsyncResult], None] | None = None,
    ) -> Any:
        result = start()
        wait = deadline.remaining()
        if deadline.try_once:
            wait = self.session.session_timeout
        try:
            return result.get(timeout=wait)
        except KazooTimeoutError:
            # kazoo still holds the request and may send it once reconnected
            if on_abandon is not None:
                on_abandon(result)
            raise Timeout("timed out waiting for ZooKeeper to answer", path=self.path, recipe=self.recipe) from None

    def call(
        self,
        start: Callable[[], IAsyncResult],
        deadline: Deadline,
        *,
        retry: bool = True,
        expected: tuple[type[Exception], ...] = (),
        on_abandon: Callable[[IAsyncResult], None] | None = None,
    ) -> Any:
        """Run one request; with ``retry``, repeat it on connection loss until the deadline.

        kazoo exceptions listed in ``expected`` reach the caller as they are (they are
        answers, such as NoNodeError, not failures); all others are translated.
        """
        self.ensure_usable()
        try:
            with translate(self.path, self.recipe):
                try:
                    if not retry:
                        return self._once(start, deadline, on_abandon)
                    try:  # the common case: answered at the first try, no retry machinery
                        return self._once(start, deadline, on_abandon)
                    except _RETRYABLE:
                        if deadline.expired():
                            raise
                        self._await_connection(deadline)
                    retrying = Retrying(
                        retry=retry_if_exception_type(_RETRYABLE),
                        stop=_StopAtDeadline(deadline),
                        wait=wait_none(),
                        before_sleep=lambda state: self._await_connection(deadline),
                        reraise=True,
                    )
                    return retrying(self._once, start, deadline, on_abandon)
                except expected as exc:
                    raise _Expected(exc) from None
        except _Expected as wrapped:
            raise wrapped.exc from None

    def _await_connection(self, deadline: Deadline) -> None:
        if not self.session.wait_connected(deadline):
            raise Timeout(
                "timed out waiting for the connection to ZooKeeper to come back", path=self.path, recipe=self.recipe
            )

    # ---- the calls ---------------------------------------------------------------------
    def get_children(
        self,
        path: str,
        deadline: Deadline,
        watch: Callable[[WatchedEvent], None] | None = None,
        *,
        missing_ok: bool = False,
    ) -> list[str]:
        """Child names; with ``missing_ok``, [] when ``path`` does not exist."""
        try:
            result: list[str] = self.call(
                lambda: self.client.get_children_async(path, watch),
                deadline,
                expected=(kz.NoNodeError,) if missing_ok else (),
            )
        except kz.NoNodeError:
            return []
        return result

    def sync(self, path: str, deadline: Deadline) -> None:
        """Bring our member up to date with the leader before a read (ZooKeeper reads are
        otherwise served from a member that may lag behind writes other clients saw succeed)."""
        self.call(lambda: self.client.sync_async(path), deadline)

    def exists(
        self, path: str, deadline: Deadline, watch: Callable[[WatchedEvent], None] | None = None
    ) -> ZnodeStat | None:
        result: ZnodeStat | None = self.call(lambda: self.client.exists_async(path, watch), deadline)
        return result

    def commit(self, transaction: Any, deadline: Deadline) -> list[Any]:
        """Send a kazoo transaction once (a committed transaction cannot be sent again: on a lost
        connection the caller decides what to do) and return its per-step results."""
        results: list[Any] = self.call(transaction.commit_async, deadline, retry=False)
        return results

    def exists_many(self, paths: list[str], deadline: Deadline) -> list[ZnodeStat | None]:
        """``exists`` of every path, pipelined: all requests sent at once, then each answer
        awaited (one that meets a connection loss is asked again on its own)."""
        pending = [(path, self.client.exists_async(path)) for path in paths]
        out: list[ZnodeStat | None] = []
        for path, result in pending:
            try:
                out.append(self.call(lambda r=result: r, deadline, retry=False))  # type: ignore[misc]
            except ConnectionLost:
                out.append(self.exists(path, deadline))
        return out

    def get(
        self, path: str, deadline: Deadline, watch: Callable[[WatchedEvent], None] | None = None
    ) -> tuple[bytes, ZnodeStat] | None:
        """Data and stat, or None when the node does not exist."""
        try:
            result: tuple[bytes, ZnodeStat] = self.call(
                lambda: self.client.get_async(path, watch), deadline, expected=(kz.NoNodeError,)
            )
        except kz.NoNodeError:
            return None
        return result

    def delete(self, path: str, deadline: Deadline, version: int = -1) -> bool:
        """Delete ``path``; False when it was already gone (or changed, with a version)."""
        try:
            self.call(
                lambda: self.client.delete_async(path, version), deadline, expected=(kz.NoNodeError, kz.BadVersionError)
            )
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
    ) -> tuple[str, ZnodeStat] | None:
        """Create ``path`` (and missing parents, with the same ACL); returns (path, stat),
        or None when the node already exists (never for sequential nodes)."""

        def start() -> IAsyncResult:
            return self.client.create_async(
                path, value, acl=acl, ephemeral=ephemeral, sequence=sequence, makepath=True, include_data=True
            )

        try:
            result: tuple[str, ZnodeStat] = self.call(
                start,
                deadline,
                retry=retry,
                expected=(kz.NodeExistsError,),
                on_abandon=self._delete_if_created if ephemeral else None,
            )
        except kz.NodeExistsError:
            return None
        return result

    def _delete_if_created(self, pending: IAsyncResult) -> None:
        """A create we gave up waiting for may still succeed later: delete what it makes."""

        def completed(result: IAsyncResult) -> None:
            if result.successful():
                created = result.get()
                self.client.delete_async(created[0] if isinstance(created, tuple) else created)

        pending.rawlink(completed)

    def ensure_path(self, path: str, deadline: Deadline, acl: list[ACL] | None = None) -> None:
        self.call(lambda: self.client.ensure_path_async(path, acl=acl), deadline)
