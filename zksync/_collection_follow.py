"""Keeping a collection's replica current: its one recursive watch, the reads each notification
asks for, the reload after a reconnect, and the changes given to whoever waits for them.

Everything but the reload runs on kazoo's event thread, in the order the server sent it, and
never blocks: a created or changed notification sends one ``getData`` of that row (its answer,
handed back to the event thread, feeds the replica), a deleted one feeds the replica at once.
After a reconnect (the watch is set again by :mod:`zksync._watches`) the whole collection is
read again on a thread of its own, and the replica reports what it had missed.  When the session
ends, :attr:`Follower.error` says why and every waiter is woken.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from kazoo import exceptions as kz
from kazoo.interfaces import IAsyncResult
from kazoo.protocol.states import Callback, EventType, WatchedEvent

from ._core.collection import Change, key_of
from ._core.collection.service import CollectionCore, row_of
from ._drive.blocking import run
from ._session import SessionWatch
from ._util import Deadline
from ._watches import PersistentWatch, add_watch
from .errors import Timeout, ZkSyncError

log = logging.getLogger("zksync.collection")


class ChangeQueue:
    """The changes one subscriber has not taken yet."""

    def __init__(self, follower: Follower) -> None:
        self._follower = follower
        self.items: deque[Change] = deque()
        self.closed = False

    def get(self, timeout: float | None) -> Change | None:
        """The next change; None once closed; :class:`Timeout` after ``timeout`` seconds."""
        return self._follower.wait(self.take, timeout, "a change")[0]  # type: ignore[no-any-return]

    def take(self) -> tuple[Change | None] | None:
        """``(change,)`` when one is there, ``(None,)`` once closed, else None (``cond`` held;
        the follower's error once the session is lost and nothing is left)."""
        if self.items:
            return (self.items.popleft(),)
        if self.closed:
            return (None,)
        return None

    def close(self) -> None:
        f = self._follower
        with f.cond:
            self.closed = True
            if self in f.queues:
                f.queues.remove(self)
            f._notify()


class Follower:
    """The watch, reads and reloads of one open collection."""

    def __init__(self, core: CollectionCore, session: SessionWatch) -> None:
        self.core = core
        self.session = session
        self.cond = threading.Condition(core.replica.lock)
        self.queues: list[ChangeQueue] = []
        self.error: ZkSyncError | None = None
        self.watch: PersistentWatch | None = None
        self.behind_since: float | None = None  # while reloading after a reconnect: since when
        self.wakers: set[Callable[[], None]] = set()  # asyncio waiters: called wherever cond is notified
        self.on_lost: Callable[[ZkSyncError], None] | None = None  # told when the session ends

    def _notify(self) -> None:
        """Wake every waiter, threads and coroutines (called with ``cond`` held)."""
        self.cond.notify_all()
        for wake in list(self.wakers):
            wake()

    def start(self, timeout: float | None) -> None:
        """Set the watch; the caller then loads the rows (changes from here on are all seen)."""
        self.watch = add_watch(
            self.session.client,
            self.core.root,
            self._event,
            recursive=True,
            on_resync=self._resync,
            on_lost=self._lost,
            timeout=timeout,
        )

    def stop(self) -> None:
        if self.watch is not None:
            self.watch.remove()
        with self.cond:
            for queue in self.queues:
                queue.closed = True
            self.queues.clear()
            self._notify()

    def subscribe(self) -> ChangeQueue:
        queue = ChangeQueue(self)
        with self.cond:
            self.queues.append(queue)
        return queue

    def flush(self) -> None:
        """Give out the changes the replica can give now, and wake whoever waits."""
        with self.cond:
            changes = self.core.replica.changes()
            if changes:
                for queue in self.queues:
                    queue.items.extend(changes)
            self._notify()

    def wait(self, ready: Callable[[], Any], timeout: float | None, what: str) -> Any:
        """The first true ``ready()``, checked after every change; :class:`Timeout`."""
        deadline = Deadline(timeout)
        with self.cond:
            while True:
                value = self.poll(ready)
                if value:
                    return value
                left = deadline.remaining()
                if left is not None and left <= 0:
                    raise self.wait_timeout(what)
                self.cond.wait(left)

    def poll(self, ready: Callable[[], Any]) -> Any:
        """``ready()`` when true; else the follower's error once the session is lost; else the
        false value (``cond`` held)."""
        value = ready()
        if not value and self.error is not None:
            raise self.error
        return value

    def wait_timeout(self, what: str) -> Timeout:
        return Timeout(f"waiting for {what}", path=self.core.root, recipe=self.core.recipe)

    def sync(self, timeout: float | None) -> None:
        """Return once the replica shows every write that had completed anywhere when this was
        called: the member syncs with the leader (so every notification of an earlier write is
        in), a marker passes through the event thread behind those notifications, and the reads
        they sent are answered."""
        deadline = Deadline(timeout)
        run(self.core.requests.sync(self.core.root, deadline), self.session)
        passed = threading.Event()
        tickets: list[int] = []

        def marker(ticket: int) -> None:
            tickets.append(ticket)
            passed.set()

        self.mark(marker)
        if not passed.wait(deadline.remaining()):
            raise self.marker_timeout()
        self.wait(lambda: self.core.replica.answered(tickets[0]), deadline.remaining(), "the replica to catch up")

    def mark(self, passed: Callable[[int], None]) -> None:
        """Call ``passed(ticket)`` on the event thread once every notification that arrived
        before now has been handled: ``ticket`` is the replica's last read ticket then."""
        self.session.client.handler.dispatch_callback(
            Callback("watch", lambda: passed(self.core.replica.last_ticket), ())
        )

    def marker_timeout(self) -> Timeout:
        return Timeout("waiting for the notifications to be handled", path=self.core.root, recipe=self.core.recipe)

    def stale_for(self) -> float:
        """Seconds the replica may have been missing changes for: 0.0 while connected and
        caught up; else since the connection was lost."""
        since = self.behind_since
        if since is None and not self.session.is_connected():
            since = self.session.last_suspended_at
        return 0.0 if since is None else max(0.0, time.monotonic() - since)

    # ---- on kazoo's threads ---------------------------------------------------------------
    def _event(self, event: WatchedEvent) -> None:
        key = key_of(self.core.root, event.path)
        if key is None:
            return  # the root, a bucket, a member: nothing of the rows
        replica = self.core.replica
        if event.type == EventType.DELETED:
            replica.deleted(key)
            self.flush()
            return
        ticket = replica.reading(key)
        client = self.session.client

        def replied(result: IAsyncResult) -> None:
            # kazoo completes replies on a thread of their own; handled on the thread the
            # notifications come on, a reply keeps its place after every notification the
            # server sent before it (see the replica's ordering rule)
            client.handler.dispatch_callback(Callback("watch", self._read, (key, ticket, result)))

        try:
            client.get_async(event.path).rawlink(replied)
        except Exception:  # the client is closing
            replica.read_failed(key, ticket)

    def _read(self, key: str, ticket: int, result: IAsyncResult) -> None:
        replica = self.core.replica
        exc = result.exception
        if exc is None:
            data, stat = result.value
            replica.read(key, ticket, row_of(key, data, stat))
        elif isinstance(exc, kz.NoNodeError):
            replica.read(key, ticket, None)
        else:  # the connection went: the reload after the reconnect brings it
            replica.read_failed(key, ticket)
        self.flush()

    def _resync(self) -> None:
        self.behind_since = self.session.last_suspended_at or time.monotonic()
        threading.Thread(target=self._reload, name="zksync-collection-reload", daemon=True).start()

    def _reload(self) -> None:
        try:
            run(self.core.load(self.core.requests.default_deadline()), self.session)
        except ZkSyncError as exc:
            log.info("reloading %s after a reconnect failed (%s); the next reconnect tries again", self.core.root, exc)
            return
        self.behind_since = None
        self.flush()

    def _lost(self, error: ZkSyncError) -> None:
        with self.cond:
            self.error = error
            self.behind_since = self.behind_since or self.session.last_suspended_at or time.monotonic()
            self._notify()
        if self.on_lost is not None:
            self.on_lost(error)
