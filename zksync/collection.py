"""Collection: a key/value collection shared by the processes that have it open (Syncbase's
syncgroups, on ZooKeeper).

    with zksync.Collection(client, "/app/fortunes") as fortunes:   # opening it is joining it
        fortunes.put(f"fortune-{me}-1", "Today is your lucky day")
        fortunes.update(f"numFortunes-{me}", lambda n: n + 1, default=0)  # retried until it lands
        for key, text in fortunes.scan("fortune-"):                  # from the local replica
            ...

Values are JSON by default (``values="bytes"`` keeps bytes); keys are any non-empty ``str``.
Reads (``get``, ``scan``, ``keys``, ``items``, ``len``) are served by the local replica without a
request; a writer reads its own writes at once.  ``put(..., version=v)`` is a compare-and-set,
``update`` retries one until it lands, ``transaction()`` writes several keys at once.  The layout
and the replica's rules are described in :mod:`zksync._core.collection`.
"""

from __future__ import annotations

import json
import os
import socket
import uuid
from collections.abc import Callable, Iterator
from typing import Any, NamedTuple, TypeVar

from kazoo.client import KazooClient
from kazoo.security import ACL

from ._collection_follow import ChangeQueue, Follower
from ._collection_queue import DEFAULT_LIMIT, OfflineQueue, QueuedWrite, closed_error
from ._core.collection import Change, Row
from ._core.collection.layout import check_key, check_value
from ._core.collection.service import ABSENT, CollectionCore, RowOp
from ._core.requests import Requests
from ._drive.blocking import run
from ._session import session_for
from ._util import check_acl, check_count, check_name, check_path, check_timeout
from .errors import ConnectionLost, InvalidArgument, InvalidState, Timeout

RECIPE = "Collection"


class Codec:
    """How values become a row's bytes: JSON (the default) or bytes as they are."""

    def __init__(self, values: object) -> None:
        if values not in ("json", "bytes"):
            raise InvalidArgument(f"values must be 'json' or 'bytes', got {values!r}", recipe=RECIPE)
        self.json = values == "json"

    def encode(self, value: Any) -> bytes:
        if not self.json:
            if not isinstance(value, bytes):
                raise InvalidArgument(f"this collection holds bytes, not {type(value).__name__}", recipe=RECIPE)
            return value
        try:
            return json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()
        except (TypeError, ValueError) as exc:
            raise InvalidArgument(f"the value cannot be written as JSON: {exc}", recipe=RECIPE) from None

    def decode(self, data: bytes) -> Any:
        if not self.json:
            return data
        try:
            return json.loads(data.decode())
        except ValueError:
            return data  # written by somebody else as plain bytes: given as they are


class Changed(NamedTuple):
    """One change of a key: its ``old`` and ``new`` values, None where the key was absent (the
    versions are None there too, which tells an absent key from a JSON null)."""

    key: str
    old: Any
    new: Any
    old_version: int | None
    new_version: int | None
    zxid: int  # of the write that made ``new``; for a deletion, of the newest change before it


class CollectionBase:
    """What both front-ends' Collection share: the checked arguments, the core, the reads."""

    recipe = RECIPE

    def __init__(
        self,
        client: KazooClient,
        path: str,
        acl: list[ACL] | None = None,
        values: str = "json",
        member: str | None = None,
        join: bool = True,
        offline: str = "fail",
        queue_limit: int = DEFAULT_LIMIT,
    ) -> None:
        self.path = check_path(path, self.recipe)
        self.acl = check_acl(acl, self.recipe)
        self.codec = Codec(values)
        self.member = check_name(
            member or f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}", "member", RECIPE
        )
        if not isinstance(join, bool):
            raise InvalidArgument(f"join must be a bool, not {type(join).__name__}", path=self.path, recipe=RECIPE)
        self._session = session_for(client, self.recipe)
        about = {"host": socket.gethostname(), "pid": os.getpid()}
        requests = Requests(self._session, self.recipe, self.path)
        self._core = CollectionCore(requests, self.acl, self.member, about, join)
        self._follower = Follower(self._core, self._session)
        self._open = False
        if offline not in ("fail", "queue"):
            raise InvalidArgument(f"offline must be 'fail' or 'queue', got {offline!r}", path=self.path, recipe=RECIPE)
        limit = check_count(queue_limit, "queue_limit", RECIPE)
        self._queue: OfflineQueue | None = None
        if offline == "queue":
            self._queue = OfflineQueue(self._core, self._session, limit, self._follower.flush)
            self._follower.on_lost = self._queue.close

    @property
    def joined(self) -> bool:
        """Listed among the members (opened with ``join=True``, and not closed)."""
        return self._core.joined

    # ---- reads, from the replica ------------------------------------------------------------
    def get(self, key: str, default: Any = None) -> Any:
        row = self._row(key)
        return default if row is None else self.codec.decode(row.value)

    def version(self, key: str) -> int | None:
        """The key's version (for ``put(..., version=)``), or None when it is absent."""
        row = self._row(key)
        return None if row is None else row.version

    def scan(self, prefix: str = "") -> list[tuple[str, Any]]:
        """``(key, value)`` of every key starting with ``prefix``, sorted by key."""
        if not isinstance(prefix, str):
            raise InvalidArgument(f"prefix must be a str, not {type(prefix).__name__}", path=self.path, recipe=RECIPE)
        with self._core.replica.lock:
            found = [(k, row.value) for k, row in self._core.replica.rows.items() if k.startswith(prefix)]
        return [(k, self.codec.decode(value)) for k, value in sorted(found)]

    def keys(self) -> list[str]:
        with self._core.replica.lock:
            return sorted(self._core.replica.rows)

    def items(self) -> list[tuple[str, Any]]:
        return self.scan()

    def __len__(self) -> int:
        return len(self._core.replica.rows)

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and key in self._core.replica.rows

    def __iter__(self) -> Iterator[str]:
        return iter(self.keys())

    @property
    def stale(self) -> float:
        """How many seconds the replica may have been missing changes for: 0.0 while connected
        and caught up, else since the connection was lost (reads still answer, from the
        replica as it was)."""
        return self._follower.stale_for()

    def _changed(self, change: Change) -> Changed:
        old, new = change.old, change.new
        return Changed(
            change.key,
            None if old is None else self.codec.decode(old.value),
            None if new is None else self.codec.decode(new.value),
            None if old is None else old.version,
            None if new is None else new.version,
            change.order[0],
        )

    def _ready(self, key: str, predicate: Callable[[Any], bool] | None) -> Callable[[], tuple[Any] | None]:
        """For ``wait_for``: ``(value,)`` once the replica holds ``key`` as the caller needs."""
        check_key(key, path=self.path)

        def ready() -> tuple[Any] | None:
            row = self._core.replica.rows.get(key)
            if row is None:
                return None
            value = self.codec.decode(row.value)
            return (value,) if predicate is None or predicate(value) else None

        return ready

    def _row(self, key: str) -> Row | None:
        return self._core.replica.rows.get(check_key(key, path=self.path))

    def _encoder(self, change: Callable[[Any], Any], default: Any) -> Callable[[bytes | None], bytes | None]:
        def encoded(old: bytes | None) -> bytes | None:
            return self.codec.encode(change(default if old is None else self.codec.decode(old)))

        return encoded

    def _check_open(self) -> None:
        if not self._open:
            raise InvalidState("the collection is not open (call open() or use it in a with block)", path=self.path)

    def _check_writable(self) -> None:
        """Writes fail at once while disconnected (reads go on from the replica)."""
        self._check_open()
        if not self._session.is_connected():
            queued = " (a compare-and-set, update or transaction cannot be queued)" if self._queue is not None else ""
            raise ConnectionLost(f"not connected: the write was not sent{queued}", path=self.path, recipe=self.recipe)

    def _offer(self, kind: str, key: str, value: bytes | None, version: int | None) -> QueuedWrite | None:
        """With ``offline="queue"``, a plain put or delete that must wait is queued (returned);
        None when the write goes now.  Other writes fail at once while disconnected."""
        if self._queue is None or version is not None:
            self._check_writable()
            return None
        self._check_open()
        key = check_key(key, path=self.path)
        return self._queue.offer(kind, key, None if value is None else check_value(value, path=self.path))

    def _queued_ahead(self) -> bool:
        """Writes are queued that a compare-and-set, update or transaction must not overtake."""
        return self._queue is not None and len(self._queue) > 0

    @property
    def queued(self) -> list[QueuedWrite]:
        """The writes kept while disconnected that are not applied yet, oldest first."""
        return self._queue.pending() if self._queue is not None else []

    def _opened(self) -> None:
        self._open = True
        if self._queue is not None:
            self._queue.start()
        self._follower.flush()

    def _close_queue(self) -> None:
        if self._queue is not None:
            self._queue.close(closed_error(self.path, self.recipe))


class TransactionBase:
    """Writes to several keys that land together or not at all; the front-ends add ``commit``."""

    def __init__(self, collection: CollectionBase) -> None:
        self._collection = collection
        self.ops: list[RowOp] = []

    def put(self: _T, key: str, value: Any, version: int | None = None) -> _T:
        self.ops.append(RowOp(check_key(key), self._collection.codec.encode(value), version))
        return self

    def insert(self: _T, key: str, value: Any) -> _T:
        return self.put(key, value, ABSENT)

    def delete(self: _T, key: str, version: int | None = None) -> _T:
        self.ops.append(RowOp(check_key(key), None, version))
        return self

    @staticmethod
    def _versions(rows: list[Row | None]) -> list[int | None]:
        return [None if row is None else row.version for row in rows]


_T = TypeVar("_T", bound=TransactionBase)


class Transaction(TransactionBase):
    """Writes to several keys that land together or not at all (see :meth:`Collection.transaction`)."""

    def commit(self, timeout: float | None = None) -> list[int | None]:
        """Send every write at once; each one's new version (None: deleted)."""
        c = self._collection
        assert isinstance(c, Collection)
        c._check_writable()
        c._after_queued(timeout)
        rows = run(c._core.commit(self.ops, timeout), c._session)
        c._follower.flush()
        return self._versions(rows)

    def __enter__(self) -> Transaction:
        return self

    def __exit__(self, kind: type[BaseException] | None, *rest: object) -> None:
        if kind is None:
            self.commit()


class Changes:
    """The changes of a collection as they reach its replica, in zxid order (an iterator)."""

    def __init__(self, collection: CollectionBase, queue: ChangeQueue, timeout: float | None) -> None:
        self._collection = collection
        self._queue = queue
        self._timeout = timeout

    def get(self, timeout: float | None = None) -> Changed | None:
        """The next change, None once closed; :class:`~zksync.Timeout` after ``timeout``."""
        change = self._queue.get(timeout)
        return None if change is None else self._collection._changed(change)

    def __iter__(self) -> Iterator[Changed]:
        return self

    def __next__(self) -> Changed:
        change = self.get(self._timeout)
        if change is None:
            raise StopIteration
        return change

    def close(self) -> None:
        self._queue.close()

    def __enter__(self) -> Changes:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Collection(CollectionBase):
    """A shared key/value collection at ``path`` with a local replica."""

    def open(self, timeout: float | None = None) -> Collection:
        """Join the collection (creating it when new), follow it with one recursive watch and
        load its rows: from here on the replica follows every change."""
        self._follower.start(timeout)
        try:
            run(self._core.open(timeout), self._session)
        except BaseException:
            self._follower.stop()
            raise
        self._opened()
        return self

    def close(self, timeout: float | None = None) -> None:
        """Leave the collection (others stop listing this process as a member); the replica
        keeps what it had."""
        if self._open:
            self._open = False
            self._close_queue()
            self._follower.stop()
            run(self._core.close(timeout), self._session)

    def sync(self, timeout: float | None = None) -> None:
        """Wait until the replica shows every write that had completed anywhere when called
        (for example after a barrier that others passed once they had written).  Without it
        the replica follows within a round trip, and a key can be awaited with :meth:`wait_for`."""
        self._check_open()
        self._follower.sync(timeout)

    def changes(self, timeout: float | None = None) -> Changes:
        """An iterator over the changes from now on (``timeout``: the most to wait for each)."""
        self._check_open()
        return Changes(self, self._follower.subscribe(), timeout)

    def wait_for(self, key: str, predicate: Callable[[Any], bool] | None = None, timeout: float | None = None) -> Any:
        """Wait until the replica holds ``key`` (with a value ``predicate`` accepts) and return
        the value; :class:`~zksync.Timeout` after ``timeout`` seconds."""
        return self._follower.wait(self._ready(key, predicate), timeout, f"{key!r} in the replica")[0]

    def refresh(self, timeout: float | None = None) -> None:
        """Read every row again (the watch keeps the replica current; this is for doubt)."""
        self._check_open()
        run(self._core.load(self._core._deadline(timeout)), self._session)
        self._follower.flush()

    def put(self, key: str, value: Any, version: int | None = None, timeout: float | None = None) -> int | QueuedWrite:
        """Write ``key``; with ``version``, only over that version (a compare-and-set:
        :class:`~zksync.BadVersion` otherwise).  Returns the new version; with
        ``offline="queue"``, a plain put made while disconnected (or behind queued writes) is
        kept and a :class:`QueuedWrite` returned instead."""
        encoded = self.codec.encode(value)
        queued = self._offer("put", key, encoded, version)
        if queued is not None:
            return queued
        self._after_queued(timeout)
        row = run(self._core.put(key, encoded, version, timeout), self._session)
        self._follower.flush()
        return row.version

    def insert(self, key: str, value: Any, timeout: float | None = None) -> int:
        """Write ``key`` only if it does not exist (:class:`~zksync.NodeExists` otherwise)."""
        version = self.put(key, value, ABSENT, timeout)
        assert isinstance(version, int)  # a conditional write is never queued
        return version

    def delete(self, key: str, version: int | None = None, timeout: float | None = None) -> bool | QueuedWrite:
        """Delete ``key`` (only at ``version``, when given); False when it was not there.  With
        ``offline="queue"``, a plain delete may be queued like a put."""
        queued = self._offer("delete", key, None, version)
        if queued is not None:
            return queued
        self._after_queued(timeout)
        deleted = run(self._core.delete(key, version, timeout), self._session)
        self._follower.flush()
        return deleted

    def drain(self, timeout: float | None = None) -> None:
        """Wait until every queued write is applied or has failed (see :attr:`queued`);
        :class:`~zksync.Timeout` after ``timeout`` seconds."""
        if self._queue is not None and not self._queue.wait_empty(check_timeout(timeout)):
            raise Timeout(f"{len(self._queue)} queued writes are still waiting", path=self.path, recipe=RECIPE)

    def _after_queued(self, timeout: float | None) -> None:
        """A write sent now waits until the writes queued before it are applied."""
        if self._queued_ahead():
            self.drain(timeout)

    def update(self, key: str, change: Callable[[Any], Any], default: Any = None, timeout: float | None = None) -> Any:
        """Write ``change(current)`` with a compare-and-set, again (with the value read anew) on
        every conflict, until it lands or ``timeout`` passes; returns the value written.
        ``current`` is ``default`` for an absent key."""
        self._check_writable()
        self._after_queued(timeout)
        row = run(self._core.update(key, self._encoder(change, default), timeout), self._session)
        self._follower.flush()
        assert row is not None
        return self.codec.decode(row.value)

    def transaction(self) -> Transaction:
        return Transaction(self)

    def members(self, timeout: float | None = None) -> list[str]:
        """The members that have the collection open now."""
        return run(self._core.members(timeout), self._session)

    def __enter__(self) -> Collection:
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()
