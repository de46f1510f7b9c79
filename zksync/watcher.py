"""Watcher: a watch on one node, set under a read lock, set again after every event, with the
events fanned out to subscribers (the Go zksync ``Watcher``).

    with zksync.Watcher(client, "/app/config", "/app/config-lock", "data") as watcher:
        watcher.wait_watching(timeout=10)
        for event in watcher.subscribe(timeout=60):
            apply(event.data)

The watch is set with one read of ``watch_path`` while holding a read lock on ``lock_path``
(the lock of :class:`zksync.RWMutex`), so a writer that holds the write lock there while it
updates the node delays the read until its update is complete.  The protocol, its cost and its
behaviour across reconnects are described in :mod:`zksync._core.watcher`, shared with
``zksync.aio.Watcher``.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator

from kazoo.client import KazooClient
from kazoo.security import ACL

from ._core.watcher import (
    DEFAULT_BUFFER,
    END,
    RECIPE,
    SubscriptionCore,
    WatcherCore,
    WatchEvent,
    check_kind,
    check_paths,
)
from ._drive.blocking import run
from ._session import SessionWatch, session_for
from ._util import check_acl, check_path
from .errors import InvalidState, ZkSyncError


class WatcherBase:
    """What both front-ends' Watcher share: the checked arguments, the core, the state."""

    recipe = RECIPE

    def __init__(
        self, client: KazooClient, watch_path: str, lock_path: str, kind: str, acl: list[ACL] | None = None
    ) -> None:
        self.path = check_path(watch_path, self.recipe)
        self.lock_path = check_path(lock_path, self.recipe)
        check_paths(self.path, self.lock_path)
        self.kind = check_kind(kind)
        self.acl = check_acl(acl, self.recipe)
        self._session: SessionWatch = session_for(client, self.recipe)
        self._core = WatcherCore(self._session, self.path, self.lock_path, self.kind, self.acl)
        self._core.reads.ensure_usable()  # a client that is not started: InvalidArgument, now

    @property
    def watching(self) -> bool:
        """True once the watch is set, until the watcher ends."""
        return self._core.watching

    @property
    def closed(self) -> bool:
        """Closed, or stopped by an error (see :attr:`error`): no more events."""
        return self._core.ended

    @property
    def error(self) -> ZkSyncError | None:
        """What stopped the watcher (:class:`~zksync.SessionExpired`, ...); None while it runs
        and after a close."""
        return self._core.error


class WatchSubscriptionBase:
    """What both front-ends' subscriptions share."""

    def __init__(self, core: SubscriptionCore, session: SessionWatch) -> None:
        self._core = core
        self._session = session

    @property
    def missed(self) -> int:
        """Events this subscriber missed in all because its buffer was full."""
        return self._core.missed

    @property
    def error(self) -> ZkSyncError | None:
        """What stopped the watcher, once this subscription has ended because of it."""
        return self._core.error

    @property
    def buffer(self) -> int:
        return self._core.buffer

    @property
    def timeout(self) -> float | None:
        """How long iteration waits for each event before raising :class:`~zksync.Timeout`."""
        return self._core.timeout

    def close(self) -> None:
        """Stop receiving events: iteration ends now, and what was buffered is dropped."""
        self._core.close()

    def _ended(self) -> InvalidState:
        return InvalidState("the subscription has ended", path=self._core.owner.path, recipe=RECIPE)


class WatchSubscription(WatchSubscriptionBase):
    """One subscriber's events, in order; iterate, or call :meth:`get`.

    Iteration ends when the subscription or its watcher is closed (after the buffered events),
    and raises the watcher's error (:class:`~zksync.SessionExpired`, ...) once it stopped with
    one; each step waits up to :attr:`timeout` seconds (None: until an event or the end) and
    raises :class:`~zksync.Timeout` past it."""

    def get(self, timeout: float | None = None) -> WatchEvent:
        """The next event, waiting up to ``timeout`` seconds (None: until an event or the end);
        :class:`~zksync.Timeout` when none came, the watcher's error once it stopped with one,
        :class:`~zksync.InvalidState` once the subscription has ended."""
        event = run(self._core.next(timeout), self._session)
        if event is END:
            raise self._ended()
        assert isinstance(event, WatchEvent)
        return event

    def __iter__(self) -> Iterator[WatchEvent]:
        return self

    def __next__(self) -> WatchEvent:
        event = run(self._core.next(self._core.timeout), self._session)
        if event is END:
            raise StopIteration
        assert isinstance(event, WatchEvent)
        return event

    def __enter__(self) -> WatchSubscription:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Watcher(WatcherBase):
    """A watch of ``kind`` (``"data"``, ``"exists"`` or ``"children"``) on ``watch_path``, set
    under a read lock on ``lock_path`` and set again after every event; it starts at once, on a
    thread of its own, and runs until closed or until the session ends.

    ``acl`` applies to ``lock_path`` and the read lock's nodes.  Close it (or use it as a context
    manager): it stops setting the watch, and every subscription ends after what it buffered."""

    def __init__(
        self, client: KazooClient, watch_path: str, lock_path: str, kind: str, acl: list[ACL] | None = None
    ) -> None:
        super().__init__(client, watch_path, lock_path, kind, acl)
        self._thread = threading.Thread(
            target=run, args=(self._core.run(), self._session), name=f"zksync-watcher {self.path}", daemon=True
        )
        self._thread.start()

    def subscribe(self, buffer: int = DEFAULT_BUFFER, timeout: float | None = None) -> WatchSubscription:
        """A new subscriber, for the events from now on; it holds up to ``buffer`` events not yet
        read, and counts those it misses beyond that (:attr:`WatchSubscription.missed`).
        ``timeout`` bounds each step of the iteration."""
        return WatchSubscription(self._core.subscribe(buffer, timeout), self._session)

    def wait_watching(self, timeout: float | None = None) -> None:
        """Return once the watch is set: every change from then on is reported.  Raises the
        watcher's error if it stopped first, :class:`~zksync.InvalidState` if it was closed,
        :class:`~zksync.Timeout` after ``timeout`` seconds."""
        run(self._core.wait_watching(timeout), self._session)

    def close(self) -> None:
        """Stop setting the watch, end every subscription (after what each has buffered) and
        wait (for a session timeout at most) until the watcher's thread is done."""
        self._core.close()
        if threading.current_thread() is not self._thread:
            self._thread.join(max(1.0, self._session.session_timeout))

    def __enter__(self) -> Watcher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


__all__ = ["WatchEvent", "WatchSubscription", "Watcher"]
