"""The sequential-node queue shared by every lock-like recipe.

The engine (:func:`take_place`) does the same thing for every recipe: create a protected
ephemeral-sequential node, list the queue, ask the recipe's *rule* which single node blocks
us, watch that one node, wait for the time left, and clean up on any failure.  A rule is a
plain function of the entries ahead of ours, so ordering is unit-tested on lists of names.

Node names are ``{kind}-{guid}-{sequence}``: ``kind`` says what the node asks for (``read``,
``write``), ``guid`` is fresh for every attempt, so after a lost create reply the engine finds
its own node again, and a node of another session is never adopted.

Hand-off.  A holder releases with one transaction, ``setData(node, "released")`` then
``delete(node)``; a waiter watching that node with ``exists`` receives ``CHANGED`` (the first
event of the transaction), while a node that goes away for any other reason (a waiter giving
up, a crash, an expired session, ``break_lock``) gives ``DELETED``.  When the released node
was an exclusive holder (kind ``write``), nothing ahead of it was left when it was granted, and
nodes ahead of ours can only disappear (sequence numbers grow), so the waiter that watched it
may proceed without listing the queue again: a contended acquisition costs create,
getChildren, exists and the release, and the hand-off is one write plus one notification.
Anything else (``DELETED``, a reader's release, a connection event) makes the waiter list
the queue again.
"""

from __future__ import annotations

import re
import threading
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from kazoo.exceptions import NoNodeError, SessionExpiredError
from kazoo.interfaces import IAsyncResult
from kazoo.protocol.states import EventType, WatchedEvent, ZnodeStat
from kazoo.security import ACL

from ._ops import Ops, Waiter, failed_step
from ._util import Deadline
from .errors import ConnectionLost, Timeout

RELEASE_WAIT = 5.0  # seconds a release waits for the server's answer before deferring
CLEANUP_WAIT = 1.0  # the same after a failed or timed-out attempt: the caller's error must not wait long
HANDOFF_DATA = b"released"  # written by a holder's release, in the same transaction as the delete
EXCLUSIVE_KINDS = frozenset({"write"})  # a released holder of these kinds had nothing left ahead of it

_NAME = re.compile(r"^(?P<kind>[a-z]+)-(?P<guid>[0-9a-f]{32})-(?P<seq>\d{10,})$")


@dataclass(frozen=True, order=True)
class Entry:
    """One node of a queue, ordered by its sequence number."""

    seq: int
    kind: str
    guid: str
    name: str


def parse(name: str) -> Entry | None:
    """The entry a child name stands for; None for names that are not ours."""
    match = _NAME.match(name)
    if match is None:
        return None
    return Entry(int(match["seq"]), match["kind"], match["guid"], name)


def ordered(children: Sequence[str], keep_duplicates: bool = False) -> list[Entry]:
    """Our entries in queue order.  A create whose reply was lost can land twice (the request
    was still in flight when we looked for it); both nodes carry the attempt's GUID, and only
    the first counts: later duplicates are dropped here and deleted by their owner."""
    entries = [entry for entry in map(parse, children) if entry is not None]
    entries.sort()
    if keep_duplicates:
        return entries
    seen: set[str] = set()
    unique = []
    for entry in entries:
        if entry.guid not in seen:
            seen.add(entry.guid)
            unique.append(entry)
    return unique


# A rule gets the entries ahead of ours (in queue order) and names the one to wait for.
Rule = Callable[[Sequence[Entry]], "Entry | None"]


def exclusive_rule(ahead: Sequence[Entry]) -> Entry | None:
    """Writers (and plain mutexes): wait for the immediate predecessor, whatever its kind."""
    return ahead[-1] if ahead else None


def shared_rule(ahead: Sequence[Entry]) -> Entry | None:
    """Readers: wait for the nearest writer ahead; readers ahead do not block."""
    for entry in reversed(ahead):
        if entry.kind == "write":
            return entry
    return None


@dataclass
class Place:
    """Our node in a queue once the rule lets us through."""

    path: str
    stat: ZnodeStat
    tainted: bool = False  # a create's reply was lost: a duplicate may still land later


class Attempt:
    """One attempt to take a place in a queue; ``lost`` is set by the session watch."""

    def __init__(self, ops: Ops, queue: str, kind: str, rule: Rule, acl: list[ACL] | None) -> None:
        self.ops = ops
        self.queue = queue
        self.kind = kind
        self.rule = rule
        self.acl = acl
        self.node: str | None = None
        self.lost = False
        self.tainted_guids: list[str] = []

    def take_place(self, deadline: Deadline) -> Place:
        """Block until the rule lets us through; on failure our node is removed."""
        session = self.ops.session
        with Waiter(session) as waiter:
            try:
                while True:
                    if self.lost or self.node is None:
                        self._forget_node()
                        self.lost = False
                        if not session.wait_connected(deadline):
                            raise self._timeout("waiting for the connection")
                        place = self._create(deadline)
                        if place.tainted:
                            self.tainted_guids.append(parse(place_name(place)).guid)  # type: ignore[union-attr]
                    everything = ordered(self.ops.get_children(self.queue, deadline), keep_duplicates=True)
                    own = parse(place_name(place))
                    assert own is not None
                    for twin in [e for e in everything if e.guid == own.guid and e.name != own.name]:
                        self.ops.delete(f"{self.queue}/{twin.name}", deadline)  # a late duplicate of ours
                    entries = [e for e in everything if e.guid != own.guid or e.name == own.name]
                    entries = ordered([e.name for e in entries])
                    mine = next((i for i, e in enumerate(entries) if e.name == own.name), None)
                    if mine is None:  # our node is gone (session expired, or removed by hand)
                        self.node = None
                        continue
                    blocker = self.rule(entries[:mine])
                    if blocker is None:
                        return place
                    blocker_path = f"{self.queue}/{blocker.name}"
                    waiter.last = None
                    if self.ops.exists(blocker_path, deadline, watch=waiter.watch) is None:
                        continue  # it went away between the listing and the watch
                    if not waiter.wait(deadline):
                        raise self._timeout(f"waiting for {blocker.name}")
                    if not session.is_connected() and not session.wait_connected(deadline):
                        raise self._timeout("waiting for the connection")
                    if handed_over(waiter.last, blocker_path, blocker) and not self.lost:
                        return place
            except BaseException:
                self._forget_node()
                for guid in self.tainted_guids:
                    sweep_later(self.ops, self.queue, guid)
                raise

    def _timeout(self, what: str) -> Timeout:
        return Timeout(f"timed out {what}", path=self.queue, recipe=self.ops.recipe)

    def _create(self, deadline: Deadline) -> Place:
        place = protected_create(self.ops, self.queue, f"{self.kind}-{{guid}}-", deadline, self.acl)
        self.node = place.path
        return place

    def _forget_node(self) -> None:
        node, self.node = self.node, None
        if node is not None:
            release_node(self.ops, node, wait=CLEANUP_WAIT)


def protected_create(
    ops: Ops, parent: str, pattern: str, deadline: Deadline, acl: list[ACL] | None, value: bytes = b""
) -> Place:
    """Create an ephemeral-sequential child ``parent/pattern`` (``{guid}`` is filled with a
    fresh GUID) and survive a lost reply: after a connection loss, look for the GUID among the
    children and adopt the node only if our current session owns it."""
    guid = uuid.uuid4().hex
    prefix = f"{parent}/{pattern.replace('{guid}', guid)}"
    tainted = False
    while True:
        try:
            created = ops.create(prefix, deadline, value=value, acl=acl, ephemeral=True, sequence=True, retry=False)
            assert created is not None  # sequential creates never collide
            return Place(created[0], created[1], tainted)
        except ConnectionLost:
            tainted = True
            if not ops.session.wait_connected(deadline):
                # the create may have landed: whatever carries our GUID goes once we are back
                sweep_later(ops, parent, guid)
                raise Timeout(
                    "timed out waiting for the connection after a lost create", path=parent, recipe=ops.recipe
                ) from None
            found = _find_own(ops, parent, guid, deadline)
            if found is not None:
                found.tainted = True
                return found


def _find_own(ops: Ops, parent: str, guid: str, deadline: Deadline) -> Place | None:
    owner = ops.session.session_id
    for name in ops.get_children(parent, deadline, missing_ok=True):
        if guid not in name:
            continue
        path = f"{parent}/{name}"
        stat = ops.exists(path, deadline)
        if stat is not None and stat.ephemeralOwner == owner:
            return Place(path, stat)
        if stat is not None:  # made by a session that is no longer ours: never adopt it
            ops.delete(path, deadline)
    return None


def sweep_later(ops: Ops, parent: str, guid: str) -> None:
    """After a lost create reply, a duplicate of our node may land late (the request was still
    in flight).  Remove any node carrying ``guid`` now, and again once a session timeout has
    passed, when no request of the old connection can still arrive."""

    def sweep() -> None:
        try:
            deadline = Deadline(ops.session.session_timeout)
            if not ops.session.wait_connected(deadline):
                return  # the next sweep, or the session's end, removes them
            for name in ops.get_children(parent, deadline, missing_ok=True):
                if guid in name:
                    ops.delete(f"{parent}/{name}", deadline)
        except Exception:  # best effort: the session's end removes them in any case
            pass

    threading.Thread(target=sweep, name="zksync-sweep", daemon=True).start()
    timer = threading.Timer(1.5 * ops.session.session_timeout, sweep)
    timer.daemon = True
    timer.start()


def handed_over(event: WatchedEvent | None, blocker_path: str, blocker: Entry) -> bool:
    """Did ``event`` say that ``blocker`` left as an exclusive holder (see the module doc)?"""
    return (
        event is not None
        and event.type == EventType.CHANGED
        and event.path == blocker_path
        and blocker.kind in EXCLUSIVE_KINDS
    )


def place_name(place: Place) -> str:
    return place.path.rsplit("/", 1)[1]


def release_node(ops: Ops, node: str, wait: float = RELEASE_WAIT, handoff: bool = False) -> None:
    """Delete our node: at once when connected, waiting up to ``wait`` seconds for the answer
    (so that a release is visible when it returns), otherwise as soon as the connection is
    back.  With ``handoff`` (a holder's release), the delete is preceded by a data change in
    the same transaction, which tells the waiter behind us that we left as a holder.  Never
    raises and never blocks for longer than ``wait``."""
    session = ops.session
    if session.stopped():
        return  # closing the session removes ephemeral nodes
    if not session.is_connected():
        session.delete_when_connected(node)
        return
    try:
        if handoff:
            transaction = ops.client.transaction()
            transaction.set_data(node, HANDOFF_DATA)
            transaction.delete(node)
            pending = transaction.commit_async()
        else:
            pending = ops.client.delete_async(node)
    except Exception:
        session.delete_when_connected(node)
        return

    def settled(result: IAsyncResult) -> None:
        exc = result.exception
        if exc is None and handoff:  # a transaction reports a failed step in its results
            exc = failed_step(result.value or [])
            if exc is not None and not isinstance(exc, (NoNodeError, SessionExpiredError)):
                release_node(ops, node, wait=0)  # e.g. no WRITE permission: a plain delete
                return
        if exc is not None and not isinstance(exc, (NoNodeError, SessionExpiredError)):
            session.delete_when_connected(node)

    pending.rawlink(settled)
    if wait > 0:
        pending.wait(min(wait, session.session_timeout))
