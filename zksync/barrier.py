"""Barrier (set / unset / wait) and DoubleBarrier (enter / exit with N participants).

Barrier
    ``path`` is the barrier's root (created with ``acl``); the barrier is *set* while the
    persistent child ``path/set`` exists.  Being persistent, a set barrier survives its setter's
    disconnect or crash: waiters are released only by an explicit ``unset``.  Who may set and
    unset is governed by the root's ACL (CREATE and DELETE on ``path``).  ``wait`` and
    ``is_set`` first sync their member with the leader, so a wait that starts after ``set()``
    returned anywhere sees the barrier set (plain ZooKeeper reads may lag behind).

DoubleBarrier
    Participants are ephemeral-sequential children ``{identifier}.{guid}.{seq}`` of
    ``path``. An arrival creates its node, watches ``path/ready`` and reads the parent's
    child count (a stat, not a listing) unless its sequence number shows it cannot be the
    Nth.  Only an arrival that sees the count reach N lists the children; it creates
    ``path/ready`` describing the round: the sequence range of its N members (the N lowest
    present), the few sequence numbers inside that range that are not members (late
    duplicates of a create whose reply was lost), and the name of the lowest member, the
    *monitor*.  Everybody else is woken by the creation of ``ready``.  A ``ready`` node left
    by an earlier round never releases a newcomer (the newcomer's sequence is outside its
    range and the node is older than the newcomer's; a ready node none of whose members is
    present is stale and deleted), and the N+1st arrival waits for the next round.

    On exit, every member but the monitor deletes its node and watches the monitor.  The
    monitor lists the members once, then waits for them to go, from the highest down (checks
    pipelined, one watch at a time), and finishes with one transaction: mark its node, delete it
    and ``ready``.  The members watching it see the mark (``CHANGED``) and return without another
    request.  If the monitor's node goes any other way (it crashed or gave up: ``DELETED``), they
    list the members and watch the lowest still present.  A member that crashes leaves when its
    session expires.  An arrival costs at most four requests, a departure two; each listing is
    made once per round, not once per arrival.
"""

from __future__ import annotations

import json
import os
import re
import socket
import threading
from dataclasses import dataclass

from kazoo.client import KazooClient
from kazoo.protocol.states import EventType
from kazoo.security import ACL

from ._ops import Ops, Waiter, failed_step
from ._queue import CLEANUP_WAIT, protected_create, release_node, sweep_later
from ._util import Deadline, check_acl, check_name, check_path, check_timeout
from .errors import AlreadyHeld, InvalidArgument, NotHeld, Timeout

SET_MARKER = "set"
READY = "ready"
MONITOR_DONE = b"all-left"  # the monitor's last word, in the transaction that deletes its node
CHECK_CHUNK = 64  # members whose presence the monitor checks in one pipelined batch
LATER_ARRIVAL_WAIT = 0.2  # seconds a non-last arrival that saw the count complete waits for ready

_PARTICIPANT = re.compile(r"^(?P<ident>.+)\.(?P<guid>[0-9a-f]{32})\.(?P<seq>\d{10,})$")


class Barrier:
    """A barrier that holds waiters back while it is set."""

    recipe = "Barrier"

    def __init__(self, client: KazooClient, path: str, acl: list[ACL] | None = None) -> None:
        self.path = check_path(path, self.recipe)
        self.acl = check_acl(acl, self.recipe)
        self._ops = Ops(client, self.recipe, self.path)
        self._marker = f"{self.path}/{SET_MARKER}"

    def set(self) -> bool:
        """Set the barrier; False when it was already set."""
        created = self._ops.create(self._marker, self._ops.default_deadline(), acl=self.acl)
        return created is not None

    def unset(self) -> bool:
        """Lift the barrier, releasing every waiter; False when it was not set."""
        return self._ops.delete(self._marker, self._ops.default_deadline())

    def is_set(self) -> bool:
        deadline = self._ops.default_deadline()
        self._ops.sync(self.path, deadline)
        return self._ops.exists(self._marker, deadline) is not None

    def wait(self, timeout: float | None = None) -> None:
        """Return once the barrier is not set; :class:`Timeout` after ``timeout`` seconds."""
        deadline = Deadline(check_timeout(timeout))
        self._ops.ensure_usable()
        # a wait that starts after set() returned elsewhere must see it, whichever member we read
        self._ops.sync(self.path, deadline)
        with Waiter(self._ops.session) as waiter:
            while self._ops.exists(self._marker, deadline, watch=waiter.watch) is not None:
                if not waiter.wait(deadline):
                    raise Timeout("timed out waiting for the barrier to be unset", path=self.path, recipe=self.recipe)
                if not self._ops.session.is_connected() and not self._ops.session.wait_connected(deadline):
                    raise Timeout("timed out waiting for the connection", path=self.path, recipe=self.recipe)


@dataclass(frozen=True, order=True)
class _Participant:
    seq: int
    name: str


def _participants(children: list[str], keep_duplicates: bool = False) -> list[_Participant]:
    """Participant nodes in arrival order; a late duplicate of a create whose reply was lost
    (same GUID, higher sequence) is not a participant of its own."""
    found = []
    for name in children:
        match = _PARTICIPANT.match(name)
        if match is not None:
            found.append((int(match["seq"]), match["guid"], name))
    found.sort()
    seen: set[str] = set()
    result = []
    for seq, guid, name in found:
        if keep_duplicates or guid not in seen:
            seen.add(guid)
            result.append(_Participant(seq, name))
    return result


@dataclass(frozen=True)
class _Round:
    """The members of one round, as written in ``ready``: every sequence in ``low..high``
    except ``excluded``; ``monitor`` is the name of the lowest member."""

    low: int
    high: int
    excluded: frozenset[int]
    monitor: str

    def __contains__(self, seq: object) -> bool:
        return isinstance(seq, int) and self.low <= seq <= self.high and seq not in self.excluded

    @classmethod
    def of(cls, chosen: list[_Participant], listed: list[_Participant]) -> _Round:
        low, high = chosen[0].seq, chosen[-1].seq
        members = {p.seq for p in chosen}
        excluded = frozenset(p.seq for p in listed if low <= p.seq <= high and p.seq not in members)
        return cls(low, high, excluded, chosen[0].name)

    def encode(self) -> bytes:
        return json.dumps(
            {"low": self.low, "high": self.high, "excluded": sorted(self.excluded), "monitor": self.monitor},
            separators=(",", ":"),
        ).encode()

    @classmethod
    def decode(cls, data: bytes) -> _Round | None:
        """None for anything unreadable: such a ready node is treated as stale."""
        try:
            raw = json.loads(data.decode())
            return cls(
                int(raw["low"]), int(raw["high"]), frozenset(int(s) for s in raw["excluded"]), str(raw["monitor"])
            )
        except (ValueError, KeyError, TypeError, AttributeError):
            return None


def _guid(name: str) -> str:
    match = _PARTICIPANT.match(name)
    return match["guid"] if match else ""


class DoubleBarrier:
    """N participants enter together and leave together."""

    recipe = "DoubleBarrier"

    def __init__(
        self,
        client: KazooClient,
        path: str,
        participants: int,
        identifier: str | None = None,
        acl: list[ACL] | None = None,
    ) -> None:
        self.path = check_path(path, self.recipe)
        if isinstance(participants, bool) or not isinstance(participants, int) or participants < 1:
            raise InvalidArgument(
                f"participants must be an int >= 1, got {participants!r}", path=self.path, recipe=self.recipe
            )
        self.participants = participants
        if identifier is None:
            identifier = f"{socket.gethostname()}-{os.getpid()}"
        self.identifier = check_name(identifier, "identifier", self.recipe)
        self.acl = check_acl(acl, self.recipe)
        self._ops = Ops(client, self.recipe, self.path)
        self._ready = f"{self.path}/{READY}"
        self._state = threading.Lock()
        self._busy = False
        self._node: str | None = None
        self._round: _Round | None = None
        self._ready_czxid: int | None = None
        self._tainted = False

    @property
    def entered(self) -> bool:
        return self._node is not None

    @property
    def node(self) -> str | None:
        """Our participant node while entered."""
        return self._node

    def enter(self, timeout: float | None = None) -> None:
        """Join and return once ``participants`` have entered this round."""
        deadline = Deadline(check_timeout(timeout))
        self._ops.ensure_usable()
        self._begin("enter", want_entered=False)
        node = None
        try:
            place = protected_create(self._ops, self.path, f"{self.identifier}.{{guid}}.", deadline, self.acl)
            node = place.path
            self._tainted = place.tainted
            self._round, self._ready_czxid = self._await_round(node, place.stat.czxid, deadline)
            self._node = node
        except BaseException:
            if node is not None:
                release_node(self._ops, node, wait=CLEANUP_WAIT)
                if self._tainted:
                    sweep_later(self._ops, self.path, _guid(node.rsplit("/", 1)[1]))
            raise
        finally:
            self._end()

    def exit(self, timeout: float | None = None) -> None:
        """Leave, and return once every member of the round has left (or disconnected).

        On :class:`Timeout` our own node is removed all the same: we are out of the barrier.
        """
        deadline = Deadline(check_timeout(timeout))
        self._ops.ensure_usable()
        self._begin("exit", want_entered=True)
        node = self._node
        assert node is not None
        try:
            self._await_departure(node, deadline)
        except BaseException:
            release_node(self._ops, node, wait=CLEANUP_WAIT)
            raise
        finally:
            self._node = None
            if self._tainted:
                sweep_later(self._ops, self.path, _guid(node.rsplit("/", 1)[1]))
            self._end()

    def present(self, timeout: float | None = None) -> list[str]:
        """Identifiers of the participants whose nodes exist now, in arrival order."""
        deadline = Deadline(check_timeout(timeout)) if timeout is not None else self._ops.default_deadline()
        names = self._ops.get_children(self.path, deadline, missing_ok=True)
        return [_identifier(p.name) for p in _participants(names)]

    def evict(self, identifier: str, timeout: float | None = None) -> int:
        """Remove the participant nodes of ``identifier`` (exit on its behalf: an operator's
        tool for a participant that is stuck but still connected).  Needs DELETE permission
        on ``path``; returns how many nodes were removed."""
        identifier = check_name(identifier, "identifier", self.recipe)
        deadline = Deadline(check_timeout(timeout)) if timeout is not None else self._ops.default_deadline()
        removed = 0
        for p in _participants(self._ops.get_children(self.path, deadline, missing_ok=True)):
            if _identifier(p.name) == identifier and self._ops.delete(f"{self.path}/{p.name}", deadline):
                removed += 1
        return removed

    def __enter__(self) -> DoubleBarrier:
        self.enter()
        return self

    def __exit__(self, *exc: object) -> None:
        self.exit()

    # ---- internals ---------------------------------------------------------------------
    def _begin(self, what: str, want_entered: bool) -> None:
        with self._state:
            if self._busy:
                raise AlreadyHeld(
                    f"another {what} is in progress on this DoubleBarrier", path=self.path, recipe=self.recipe
                )
            if self.entered != want_entered:
                if want_entered:
                    raise NotHeld("exit without enter", path=self.path, recipe=self.recipe)
                raise AlreadyHeld("already entered; exit first", path=self.path, recipe=self.recipe)
            self._busy = True

    def _end(self) -> None:
        with self._state:
            self._busy = False

    def _await_round(self, node: str, my_czxid: int, deadline: Deadline) -> tuple[_Round, int]:
        ops = self._ops
        me = _PARTICIPANT.match(node.rsplit("/", 1)[1])
        assert me is not None
        my_seq = int(me["seq"])
        ready_created = False  # woken by the creation of ready: read it without asking first
        deferred = False  # we saw the count complete but were not the last arrival, and waited once
        with Waiter(ops.session) as waiter:
            while True:
                waiter.last = None
                if ready_created or ops.exists(self._ready, deadline, watch=waiter.watch) is not None:
                    ready = ops.get(self._ready, deadline, watch=waiter.watch)
                    if ready is None:
                        ready_created = False
                        continue
                    data, stat = ready
                    # a ready node made before our node existed cannot be for us
                    rnd = _Round.decode(data) if stat.czxid > my_czxid else None
                    if rnd is not None and my_seq in rnd:
                        return rnd, stat.czxid
                    present, _ = self._present_members(node, deadline)
                    live = [p for p in present if rnd is not None and p.seq in rnd]
                    if not live:  # stale: left by a round whose members are all gone
                        ops.delete(self._ready, deadline, version=stat.version)
                        ready_created = False
                        continue
                    # a round we are not part of is in progress: wait for its lowest member
                    if ops.exists(f"{self.path}/{live[0].name}", deadline, watch=waiter.watch) is None:
                        ready_created = False
                        continue
                elif my_seq + 1 >= self.participants:
                    # (our sequence is the parent's cversion before our create, and the child count
                    # never exceeds cversion: an arrival numbered below N - 1 cannot complete the
                    # count, and the one that does is numbered N - 1 or more, so it counts)
                    parent = ops.exists(self.path, deadline)
                    if parent is not None and parent.numChildren >= self.participants:
                        if parent.cversion != my_seq + 1 and not deferred:
                            # children changed after ours: a later arrival counts too, and the last
                            # one lists at once; give it a moment rather than list N names as well
                            deferred = True
                            remaining = deadline.remaining()
                            waiter.wait(
                                Deadline(
                                    LATER_ARRIVAL_WAIT if remaining is None else min(LATER_ARRIVAL_WAIT, remaining)
                                )
                            )
                            event = waiter.last
                            ready_created = (
                                event is not None and event.type == EventType.CREATED and event.path == self._ready
                            )
                            continue
                        present, listing = self._present_members(node, deadline)
                        if len(present) >= self.participants:
                            chosen = present[: self.participants]
                            listed = _participants(listing, keep_duplicates=True)
                            ops.create(self._ready, deadline, value=_Round.of(chosen, listed).encode(), acl=self.acl)
                            ready_created = True
                            continue
                if not waiter.wait(deadline):
                    raise Timeout("timed out waiting for participants to enter", path=self.path, recipe=self.recipe)
                if not ops.session.is_connected() and not ops.session.wait_connected(deadline):
                    raise Timeout("timed out waiting for the connection", path=self.path, recipe=self.recipe)
                event = waiter.last
                ready_created = event is not None and event.type == EventType.CREATED and event.path == self._ready

    def _present_members(self, node: str, deadline: Deadline) -> tuple[list[_Participant], list[str]]:
        """The participants present now, in arrival order, and the child names they came from;
        deletes late duplicates of our own node, and raises if our node is gone (our session
        ended while we waited)."""
        ops = self._ops
        my_name = node.rsplit("/", 1)[1]
        my_guid = _guid(my_name)
        names = ops.get_children(self.path, deadline)
        for twin in names:
            if _guid(twin) == my_guid and twin != my_name:
                ops.delete(f"{self.path}/{twin}", deadline)  # a late duplicate of ours
        listing = [n for n in names if _guid(n) != my_guid or n == my_name]
        if my_name not in listing:
            raise Timeout(
                "our participant node disappeared (session lost) while entering", path=self.path, recipe=self.recipe
            )
        return _participants(listing), listing

    def _await_departure(self, node: str, deadline: Deadline) -> None:
        ops = self._ops
        rnd = self._round
        assert rnd is not None
        my_name = node.rsplit("/", 1)[1]
        if rnd.monitor == my_name:
            self._monitor_departure(node, rnd, deadline)
            return
        ops.delete(node, deadline)
        watched = rnd.monitor
        with Waiter(ops.session) as waiter:
            while True:
                waiter.last = None
                path = f"{self.path}/{watched}"
                if ops.exists(path, deadline, watch=waiter.watch) is not None:
                    if not waiter.wait(deadline):
                        raise Timeout(
                            f"timed out waiting for participants to exit (watching {watched})",
                            path=self.path,
                            recipe=self.recipe,
                        )
                    event = waiter.last
                    if event is not None and event.type == EventType.CHANGED and event.path == path:
                        return  # the monitor saw every member go
                    if not ops.session.is_connected() and not ops.session.wait_connected(deadline):
                        raise Timeout("timed out waiting for the connection", path=self.path, recipe=self.recipe)
                    continue
                # the node we watched is gone without the monitor's mark: is the round over?
                stat = ops.exists(self._ready, deadline)
                if stat is None or stat.czxid != self._ready_czxid:
                    return  # ready is gone: the monitor finished (or the round is over)
                present = [p for p in _participants(ops.get_children(self.path, deadline)) if p.seq in rnd]
                if not present:
                    self._delete_ready(deadline)
                    return
                watched = present[0].name  # the lowest member still inside

    def _monitor_departure(self, node: str, rnd: _Round, deadline: Deadline) -> None:
        """Wait for every other member to go, from the highest down; then leave, saying so."""
        ops = self._ops
        my_name = node.rsplit("/", 1)[1]
        others = [p for p in _participants(ops.get_children(self.path, deadline)) if p.seq in rnd and p.name != my_name]
        size = 1  # members checked at once: doubles while whole batches are gone, back to 1 after
        with Waiter(ops.session) as waiter:
            while others:
                chunk = others[-size:]
                stats = ops.exists_many([f"{self.path}/{p.name}" for p in chunk], deadline)
                while stats and stats[-1] is None:
                    stats.pop()
                    others.pop()
                if not others:
                    break
                if not stats:
                    size = min(2 * size, CHECK_CHUNK)
                    continue
                size = 1
                waiter.last = None
                if ops.exists(f"{self.path}/{others[-1].name}", deadline, watch=waiter.watch) is None:
                    others.pop()
                    continue
                if not waiter.wait(deadline):
                    missing = ", ".join(p.name for p in others)
                    raise Timeout(
                        f"timed out waiting for participants to exit: {missing}", path=self.path, recipe=self.recipe
                    )
                if not ops.session.is_connected() and not ops.session.wait_connected(deadline):
                    raise Timeout("timed out waiting for the connection", path=self.path, recipe=self.recipe)
                parent = ops.exists(self.path, deadline)
                if parent is not None and parent.numChildren <= 2:
                    break  # only our node and ready are left (only we delete our ready while here)
        self._finish(node, deadline)

    def _finish(self, node: str, deadline: Deadline) -> None:
        """The monitor's last step: mark our node (the members watching it return on that), and
        delete it and our round's ready node, in one transaction."""
        ops = self._ops
        stat = ops.exists(self._ready, deadline)
        ours = stat is not None and stat.czxid == self._ready_czxid
        for with_ready in (True, False) if ours else (False,):
            transaction = ops.client.transaction()
            transaction.set_data(node, MONITOR_DONE)
            transaction.delete(node)
            if with_ready and stat is not None:
                transaction.delete(self._ready, stat.version)
            if failed_step(ops.commit(transaction, deadline)) is None:
                return
        ops.delete(node, deadline)  # our node is gone already, or we may not write it: go plainly
        self._delete_ready(deadline)

    def _delete_ready(self, deadline: Deadline) -> None:
        stat = self._ops.exists(self._ready, deadline)
        if stat is not None and stat.czxid == self._ready_czxid:
            self._ops.delete(self._ready, deadline, version=stat.version)


def _identifier(name: str) -> str:
    match = _PARTICIPANT.match(name)
    return match["ident"] if match else name
