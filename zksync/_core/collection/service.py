"""A collection's operations as machines: open (join and load), writes with compare-and-set,
update with retries, multi-key transactions, members, close.

Every write's own result goes into the replica at once (read-your-writes).  Reads are served by
the front-ends from the replica, without a request.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from kazoo import exceptions as kz
from kazoo.protocol.states import ZnodeStat
from kazoo.security import ACL

from ..._util import Deadline, check_timeout
from ...errors import AccessDenied, BadVersion, InvalidArgument, NodeExists, NoNode, Timeout, translate
from ..effects import Check, Create, Delete, Machine, Multi, Release, SetData
from ..queue import CLEANUP_WAIT, RELEASE_WAIT
from ..requests import PIPELINE_WINDOW, Requests, failed_step
from .layout import MEMBERS, ROWS, bucket, check_key, check_value, key_of, row_path
from .replica import Replica, Row

RECIPE = "Collection"
Change = Callable[[bytes | None], bytes | None]  # old value (None: absent) -> new value (None: delete)


@dataclass(frozen=True)
class RowOp:
    """One write of a collection transaction: ``value`` None deletes; ``version`` None is
    unconditional, an int is a compare-and-set, :data:`ABSENT` creates only."""

    key: str
    value: bytes | None
    version: int | None = None


ABSENT = -1  # as a RowOp's or put's version: the key must not exist yet


def row_of(key: str, value: bytes, stat: ZnodeStat) -> Row:
    return Row(key, value, stat.version, stat.mzxid)


class CollectionCore:
    """The state of one open collection in this process."""

    recipe = RECIPE

    def __init__(
        self, requests: Requests, acl: list[ACL] | None, member: str, about: dict[str, Any], join: bool = True
    ) -> None:
        self.requests = requests
        self.root = requests.path
        self.acl = acl
        self.member = member
        self.join = join  # False: a reader that writes nothing to open (and is not listed)
        self.joined = False
        self.about = about
        self.replica = Replica()
        self.buckets: set[str] = set()  # buckets known to exist

    # ---- joining and loading ------------------------------------------------------------
    def open(self, timeout: float | None) -> Machine[None]:
        """Make the layout if it is new, join as a member, load every row; without ``join``,
        only load (nothing is written: read permission is enough)."""
        r = self.requests
        deadline = self._deadline(timeout)
        if self.join:
            member = f"{self.root}/{MEMBERS}/{self.member}"
            try:
                yield from r.ensure_path(f"{self.root}/{ROWS}", deadline, self.acl)
                yield from r.ensure_path(f"{self.root}/{MEMBERS}", deadline, self.acl)
                info = json.dumps(self.about, sort_keys=True).encode()
                yield from r.create(member, deadline, value=info, acl=self.acl, ephemeral=True)
            except AccessDenied:
                raise AccessDenied(
                    "the collection's ACL does not let this client join it (join=False follows it without "
                    "being listed, with read permission only)",
                    path=member,
                    recipe=self.recipe,
                ) from None
            self.joined = True
        try:
            yield from self.load(deadline)
        except BaseException:
            if self.joined:  # leave again: at once, or once the connection is back
                self.joined = False
                yield Release(f"{self.root}/{MEMBERS}/{self.member}", CLEANUP_WAIT)
            raise

    def load(self, deadline: Deadline) -> Machine[None]:
        """Read every row (pipelined) and make the replica that (see :meth:`Replica.resync`)."""
        self.replica.begin_resync()
        self.replica.resync((yield from self.read_all(deadline)))

    def read_all(self, deadline: Deadline) -> Machine[list[Row]]:
        """Every row as the server has it: the buckets listed, then every row read, pipelined."""
        r = self.requests
        buckets = sorted((yield from r.get_children(f"{self.root}/{ROWS}", deadline, missing_ok=True)))
        self.buckets = set(buckets)
        listings = yield from r.get_children_many([f"{self.root}/{ROWS}/{b}" for b in buckets], deadline)
        paths = [f"{self.root}/{ROWS}/{b}/{name}" for b, names in zip(buckets, listings) for name in names]
        rows = []
        for start in range(0, len(paths), PIPELINE_WINDOW):  # made into rows a window at a time
            window = paths[start : start + PIPELINE_WINDOW]
            for path, found in zip(window, (yield from r.get_many(window, deadline))):
                key = key_of(self.root, path)
                if key is not None and found is not None:
                    rows.append(row_of(key, found[0], found[1]))
        return rows

    def members(self, timeout: float | None) -> Machine[list[str]]:
        r = self.requests
        return sorted((yield from r.get_children(f"{self.root}/{MEMBERS}", self._deadline(timeout), missing_ok=True)))

    def close(self, timeout: float | None) -> Machine[None]:
        """Leave: the member node goes at once (waiting up to ``timeout`` for the answer), or
        once the connection is back when there is none."""
        if self.joined:
            self.joined = False
            wait = RELEASE_WAIT if timeout is None else min(RELEASE_WAIT, check_timeout(timeout) or 0.0)
            yield Release(f"{self.root}/{MEMBERS}/{self.member}", wait)

    # ---- writes ---------------------------------------------------------------------------
    def put(self, key: str, value: bytes, version: int | None, timeout: float | None) -> Machine[Row]:
        """Write ``key``; with ``version`` only over that version (``ABSENT``: only a new key)."""
        key, value, version = check_key(key, path=self.root), check_value(value, path=self.root), _version(version)
        deadline = self._deadline(timeout)
        row = yield from self._put(key, value, version, deadline)
        self.replica.wrote(row)
        return row

    def delete(self, key: str, version: int | None, timeout: float | None) -> Machine[bool]:
        """Delete ``key`` (only at ``version``, when given); False when it was not there."""
        key, version = check_key(key, path=self.root), _version(version)
        if version == ABSENT:
            raise InvalidArgument("a delete's version cannot be ABSENT", path=self.root, recipe=self.recipe)
        path = row_path(self.root, key)
        try:
            yield from self.requests.call(Delete(path, -1 if version is None else version), self._deadline(timeout))
        except NoNode:
            if version is not None:
                raise
            return False
        self.replica.deleted(key)
        return True

    def update(self, key: str, change: Change, timeout: float | None) -> Machine[Row | None]:
        """Apply ``change`` to the current value until a compare-and-set of it lands; the new
        row (None when ``change`` deleted the key).  Each conflict reads the key again."""
        key = check_key(key, path=self.root)
        deadline = self._deadline(timeout)
        current = self.replica.rows.get(key)
        while True:
            new = change(current.value if current is not None else None)
            try:
                if new is None:
                    if current is not None:
                        yield from self.requests.call(Delete(row_path(self.root, key), current.version), deadline)
                        self.replica.deleted(key)
                    return None
                row = yield from self._put(key, check_value(new, path=self.root), _expected(current), deadline)
            except (BadVersion, NodeExists, NoNode):
                if deadline.expired():
                    raise Timeout("update kept meeting concurrent writes", path=self.root, recipe=self.recipe) from None
                current = yield from self.fetch(key, deadline)
                continue
            self.replica.wrote(row)
            return row

    def fetch(self, key: str, deadline: Deadline) -> Machine[Row | None]:
        """``key`` as the server has it now (applied to the replica too)."""
        ticket = self.replica.reading(key)
        try:
            found = yield from self.requests.get(row_path(self.root, key), deadline)
        except BaseException:
            self.replica.read_failed(key, ticket)
            raise
        row = row_of(key, found[0], found[1]) if found is not None else None
        self.replica.read(key, ticket, row)
        return row

    def commit(self, ops: Sequence[RowOp], timeout: float | None) -> Machine[list[Row | None]]:
        """Every op in one transaction: all land or none does; each op's new row (None: deleted)."""
        if not ops:
            raise InvalidArgument("an empty transaction", path=self.root, recipe=self.recipe)
        deadline = self._deadline(timeout)
        for b in sorted({bucket(op.key) for op in ops if op.value is not None} - self.buckets):
            yield from self.requests.ensure_path(f"{self.root}/{ROWS}/{b}", deadline, self.acl)
            self.buckets.add(b)
        steps = [step for op in ops for step in self._steps(op)]
        results = yield from self.requests.commit(Multi(tuple(steps)), deadline)
        failure = failed_step(results)
        if failure is not None:
            with translate(self.root, self.recipe):
                raise failure
        zxid = next((r.mzxid for r in results if isinstance(r, ZnodeStat)), None)
        created = [op.key for op, step in zip(ops, steps) if isinstance(step, Create)]
        if zxid is None and created:  # a create's result is its path: learn the transaction's zxid
            found = yield from self.requests.get(row_path(self.root, created[0]), deadline)
            zxid = found[1].czxid if found is not None else None
        return self._apply_commit(ops, steps, results, zxid)

    # ---- internals ------------------------------------------------------------------------
    def _put(self, key: str, value: bytes, version: int | None, deadline: Deadline) -> Machine[Row]:
        r = self.requests
        path = row_path(self.root, key)
        if version is None or version >= 0:
            try:
                stat: ZnodeStat = yield from r.call(
                    SetData(path, value, -1 if version is None else version), deadline, expected=(kz.NoNodeError,)
                )
                return row_of(key, value, stat)
            except kz.NoNodeError:
                if version is not None:
                    raise NoNode("no such key", path=path, recipe=self.recipe) from None
        created = yield from r.create(path, deadline, value=value, acl=self.acl)
        if created is None:
            if version == ABSENT:
                raise NodeExists("the key exists", path=path, recipe=self.recipe)
            return (yield from self._put(key, value, None, deadline))  # made meanwhile: write over it
        self.buckets.add(bucket(key))
        return row_of(key, value, created[1])

    def _steps(self, op: RowOp) -> list[Create | Delete | SetData | Check]:
        key, version = check_key(op.key, path=self.root), _version(op.version)
        path = row_path(self.root, key)
        if op.value is None:
            return [Delete(path, -1 if version is None else version)]
        value = check_value(op.value, path=self.root)
        if version == ABSENT:
            return [Create(path, value, self.acl, makepath=False)]
        if version is not None:
            return [SetData(path, value, version)]
        current = self.replica.rows.get(key)
        if current is None:  # not known here: create; a transaction cannot fall back to a set
            return [Create(path, value, self.acl, makepath=False)]
        return [SetData(path, value, -1)]

    def _apply_commit(
        self, ops: Sequence[RowOp], steps: list[Any], results: list[Any], zxid: int | None
    ) -> list[Row | None]:
        """Each op's new row, into the replica too (every op of a transaction has its zxid)."""
        out: list[Row | None] = []
        for op, step, result in zip(ops, steps, results):
            row: Row | None = None
            if isinstance(step, Delete):
                self.replica.deleted(op.key)
            elif isinstance(result, ZnodeStat):
                row = row_of(op.key, step.value, result)
            elif zxid is not None:  # created: version 0, made by the transaction
                row = Row(op.key, step.value, 0, zxid)
            if row is not None:
                self.replica.wrote(row)
            out.append(row)
        return out

    def _deadline(self, timeout: float | None) -> Deadline:
        return Deadline(check_timeout(timeout)) if timeout is not None else self.requests.default_deadline()


def _version(version: object) -> int | None:
    if version is None:
        return None
    if isinstance(version, bool) or not isinstance(version, int) or version < ABSENT:
        raise InvalidArgument(f"version must be None, ABSENT or an int >= 0, got {version!r}", recipe=RECIPE)
    return version


def _expected(current: Row | None) -> int:
    return ABSENT if current is None else current.version
