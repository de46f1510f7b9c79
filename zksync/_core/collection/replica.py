"""A collection's local replica, free of I/O: rows in, changes out.

The replica is fed what its owner learns from ZooKeeper, in the order it learns it:

* :meth:`Replica.reading` when the owner sends a read of a row (after a created or changed
  notification from the collection's one recursive watch, or while loading), which gives it a
  ticket, and :meth:`Replica.read` with the ticket and what the read found (a :class:`Row`, or
  None for no node).  kazoo hands over notifications and replies on two different threads, so
  a reply may be fed after a notification that came later: a deletion learned after a read was
  sent makes that read's answer worthless (it is older than the deletion, or it found nothing),
  and the replica drops it instead of bringing the row back;
* :meth:`Replica.deleted` on a deleted notification;
* :meth:`Replica.wrote` with a write's own result (read-your-writes: a writer sees its write at
  once, before the notification comes back);
* :meth:`Replica.begin_resync` when a full reload starts and :meth:`Replica.resync` with
  everything it found (after a reconnect: whatever changed meanwhile, notification lost or not,
  is reported then).  A reload takes a while: a key that a notification or a write touched
  after it started is newer than what the reload read, and the reload leaves it alone.

Ordering.  ZooKeeper sends one session its notifications in zxid order, and a reply reflecting
a change only after the change's notification.  A read answers with the row as it is when the
server reads it, which may be newer than the notification that asked for it (two changes of
one key then read as one, the later): so changes are held back while reads are outstanding and
given out, sorted by zxid, when none is: every change the session was told of before then is
in that batch.  A deletion carries no zxid of its own; it keeps its place in the batch order
after the changes older than it.  A row's ``mzxid`` only moves forward: a read or a write
result older than what the replica holds changes nothing.

A replica is fed from kazoo's threads and from its callers' at once: every method takes its
lock, and :attr:`lock` (reentrant) lets an owner make several calls in one step.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

F = TypeVar("F", bound=Callable[..., Any])


def _locked(method: F) -> F:
    @functools.wraps(method)
    def wrapper(self: Replica, *args: Any, **kwargs: Any) -> Any:
        with self.lock:
            return method(self, *args, **kwargs)

    return wrapper  # type: ignore[return-value]


HOLD_AT_MOST = 10_000  # changes held back before they are given out anyway (order then per batch)


@dataclass(frozen=True, slots=True)
class Row:
    """One key's value as ZooKeeper last showed it."""

    key: str
    value: bytes
    version: int  # the node's data version: the ``version=`` of a compare-and-set
    mzxid: int  # the zxid of the write that made this value


@dataclass(frozen=True, slots=True)
class Change:
    """``key`` went from ``old`` to ``new`` (None: absent)."""

    key: str
    old: Row | None
    new: Row | None
    order: tuple[int, int] = field(default=(0, 0), compare=False)  # (zxid, arrival) for sorting


class Replica:
    """The rows of one collection as this process knows them."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.rows: dict[str, Row] = {}
        self.zxid = 0  # the newest write the replica has applied
        self._outstanding = 0
        self._held: list[Change] = []
        self._arrivals = 0
        self._touched: set[str] | None = None  # keys learned of since the reload in progress began
        self._tickets = 0
        self._pending: dict[str, set[int]] = {}  # reads sent and not answered, by key
        self._void: set[int] = set()  # tickets of reads sent before a deletion of their key

    # ---- what the owner learned ---------------------------------------------------------
    @_locked
    def reading(self, key: str) -> int:
        """A read of ``key``'s row is being sent; its answer comes to :meth:`read` with the
        ticket returned here."""
        self._outstanding += 1
        self._tickets += 1
        self._pending.setdefault(key, set()).add(self._tickets)
        return self._tickets

    @_locked
    def read_failed(self, key: str, ticket: int) -> None:
        """A read was not answered (the connection was lost): a reload will follow."""
        self._settle(key, ticket)

    @_locked
    def read(self, key: str, ticket: int, row: Row | None) -> None:
        """The answer to a read: the row, or None when the node did not exist then."""
        if not self._settle(key, ticket):
            return  # sent before a deletion we learned of since: older than that
        self._touch(key)
        if row is None:
            self.deleted(key)
        else:
            self._apply(row)

    @_locked
    def wrote(self, row: Row) -> None:
        """Our own write landed with this result."""
        self._touch(row.key)
        self._apply(row)

    @_locked
    def deleted(self, key: str) -> None:
        """The row's node is gone (a notification, or a read that found nothing)."""
        self._touch(key)
        self._void |= self._pending.get(key, set())
        old = self.rows.pop(key, None)
        if old is not None:
            self._hold(Change(key, old, None, (self.zxid, self._arrival())))

    @_locked
    def begin_resync(self) -> None:
        """A full reload starts now."""
        self._touched = set()

    @_locked
    def resync(self, rows: Iterable[Row]) -> None:
        """Everything a full reload found: the replica becomes exactly that, but for the keys
        learned of since the reload began, and each difference is a change."""
        touched, self._touched = self._touched or set(), None
        found = {row.key: row for row in rows if row.key not in touched}
        for key in sorted(set(self.rows) - set(found) - touched):
            self.deleted(key)
        for row in sorted(found.values(), key=lambda r: r.mzxid):
            self._apply(row, replace=True)

    # ---- what it gives out --------------------------------------------------------------
    @_locked
    def changes(self) -> list[Change]:
        """The changes that may be given out now, in zxid order (see the module doc)."""
        if self._outstanding and len(self._held) < HOLD_AT_MOST:
            return []
        held, self._held = self._held, []
        return sorted(held, key=lambda c: c.order)

    @property
    def settled(self) -> bool:
        """No read is outstanding and no change is held back."""
        return not self._outstanding and not self._held

    @property
    def last_ticket(self) -> int:
        """The ticket of the newest read sent (0: none yet)."""
        return self._tickets

    @_locked
    def answered(self, ticket: int) -> bool:
        """Every read up to ``ticket`` has been answered (or given up on)."""
        return not any(t <= ticket for pending in self._pending.values() for t in pending)

    @_locked
    def snapshot(self) -> Mapping[str, Row]:
        return dict(self.rows)

    # ---- internals ----------------------------------------------------------------------
    def _apply(self, row: Row, replace: bool = False) -> None:
        old = self.rows.get(row.key)
        if old is not None and (row.mzxid < old.mzxid or (row.mzxid == old.mzxid and not replace)):
            return  # older than, or the same as, what we hold
        if old is not None and old == row:
            return
        self.rows[row.key] = row
        self.zxid = max(self.zxid, row.mzxid)
        self._hold(Change(row.key, old, row, (row.mzxid, self._arrival())))

    def _settle(self, key: str, ticket: int) -> bool:
        """Count the read off; True when its answer still counts."""
        self._outstanding = max(0, self._outstanding - 1)
        pending = self._pending.get(key)
        if pending is not None:
            pending.discard(ticket)
            if not pending:
                del self._pending[key]
        if ticket in self._void:
            self._void.discard(ticket)
            return False
        return True

    def _touch(self, key: str) -> None:
        if self._touched is not None:
            self._touched.add(key)

    def _hold(self, change: Change) -> None:
        self._held.append(change)

    def _arrival(self) -> int:
        self._arrivals += 1
        return self._arrivals
