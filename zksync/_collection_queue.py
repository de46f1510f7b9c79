"""A collection's offline queue (``Collection(..., offline="queue")``): the plain puts and deletes
made while disconnected, kept in order and applied once the connection is back.

A queued write is a :class:`QueuedWrite`, a :class:`concurrent.futures.Future`: its result is the
put's new version (a delete's: whether the key was there), its exception the reason it could not
be applied (the server refused it, the session ended, the collection was closed).  Nothing is
dropped without its future saying so.

Order.  Writes leave the queue one at a time, oldest first, on a thread of the queue's own that
starts whenever the connection comes back.  While anything is queued, new writes join the end of
the queue even when connected, so that a later write of a key never lands before an earlier one.
Each lands as a last-writer-wins write: a put overwrites whatever another member wrote meanwhile
(a compare-and-set, ``update`` or a transaction cannot be queued: they fail at once while
disconnected).  A write that could not be sent for lack of a connection stays at the head and
goes with the next reconnect; one sent without an answer is sent again (a put of the same value
twice, a delete that then finds nothing), which leaves the same data.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

from ._core.collection.service import CollectionCore
from ._drive.blocking import run
from ._session import SessionWatch
from .errors import ConnectionLost, InvalidState, SessionExpired, Timeout, ZkSyncError

log = logging.getLogger("zksync.collection")

DEFAULT_LIMIT = 1000  # writes a collection keeps while disconnected
RETRY_PAUSE = 0.5  # seconds before a write that timed out while connected is sent again


class QueuedWrite(Future[Any]):
    """A write kept while disconnected: ``result(timeout)`` is the put's new version (for a
    delete, whether the key was there) once applied; ``exception()`` says why it was not."""

    def __init__(self, kind: str, key: str, value: bytes | None) -> None:
        super().__init__()
        self.kind = kind  # "put" or "delete"
        self.key = key
        self.value = value  # the encoded value of a put
        self.queued_at = time.time()

    def __repr__(self) -> str:
        state = "applied" if self.done() and self.exception() is None else "failed" if self.done() else "queued"
        return f"<QueuedWrite {self.kind} {self.key!r} {state}>"


class OfflineQueue:
    """The writes of one collection that wait for the connection."""

    def __init__(self, core: CollectionCore, session: SessionWatch, limit: int, applied: Callable[[], None]) -> None:
        self.core = core
        self.session = session
        self.limit = limit
        self.applied = applied  # called after each write lands (the follower gives out its change)
        self.items: deque[QueuedWrite] = deque()
        self.lock = threading.Lock()
        self.draining = False
        self.closed = False
        self.empty = threading.Condition(self.lock)

    def start(self) -> None:
        self.session.add_waker(self._connection_changed)

    def __len__(self) -> int:
        return len(self.items)

    def pending(self) -> list[QueuedWrite]:
        with self.lock:
            return list(self.items)

    def offer(self, kind: str, key: str, value: bytes | None) -> QueuedWrite | None:
        """Queue the write when it must wait (disconnected, or others are waiting ahead of it);
        None when it can be sent now.  :class:`ConnectionLost` when the queue is full."""
        with self.lock:
            if not self.items and self.session.is_connected():
                return None
            if len(self.items) >= self.limit:
                raise ConnectionLost(
                    f"not connected, and the offline queue is full ({self.limit} writes wait): the write was not kept",
                    path=self.core.root,
                    recipe=self.core.recipe,
                )
            write = QueuedWrite(kind, key, value)
            self.items.append(write)
        self._connection_changed()  # connected already (the queue was draining): make sure it goes on
        return write

    def wait_empty(self, timeout: float | None) -> bool:
        """Block until every queued write is applied or failed; False after ``timeout``."""
        with self.lock:
            return self.empty.wait_for(lambda: not self.items, timeout)

    def close(self, why: ZkSyncError) -> None:
        """Fail whatever is still queued with ``why``; nothing is queued from here on."""
        self.session.remove_waker(self._connection_changed)
        with self.lock:
            self.closed = True
            left, self.items = list(self.items), deque()
            self.empty.notify_all()
        for write in left:
            write.set_exception(why)

    # ---- on kazoo's threads, then the drain's ----------------------------------------------
    def _connection_changed(self) -> None:
        with self.lock:
            if self.draining or not self.items or self.closed or not self.session.is_connected():
                return
            self.draining = True
        threading.Thread(target=self._drain, name="zksync-collection-queue", daemon=True).start()

    def _drain(self) -> None:
        try:
            while True:
                with self.lock:
                    if not self.items or self.closed:
                        return
                    write = self.items[0]
                if not self.session.is_connected():
                    return  # the next reconnect goes on
                try:
                    outcome = self._apply(write)
                except SessionExpired as exc:
                    self.close(exc)
                    return
                except (ConnectionLost, Timeout):
                    if not self.session.is_connected():
                        return
                    time.sleep(RETRY_PAUSE)
                    continue
                except ZkSyncError as exc:  # refused (AccessDenied, ...): reported, and the next goes
                    log.warning("a queued %s of %r in %s was refused: %s", write.kind, write.key, self.core.root, exc)
                    self._done(write)
                    write.set_exception(exc)
                    continue
                self._done(write)
                self.applied()
                write.set_result(outcome)
        finally:
            with self.lock:
                self.draining = False
            self._connection_changed()  # a write queued as the drain stopped, with the link up

    def _apply(self, write: QueuedWrite) -> Any:
        core, timeout = self.core, max(1.0, self.session.session_timeout)
        if write.kind == "put":
            assert write.value is not None
            return run(core.put(write.key, write.value, None, timeout), self.session).version
        return run(core.delete(write.key, None, timeout), self.session)

    def _done(self, write: QueuedWrite) -> None:
        with self.lock:
            if self.items and self.items[0] is write:
                self.items.popleft()
            if not self.items:
                self.empty.notify_all()


def closed_error(root: str, recipe: str) -> InvalidState:
    return InvalidState("the collection was closed before the queued write could be applied", path=root, recipe=recipe)
