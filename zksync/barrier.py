"""Barrier (set / unset / wait) and DoubleBarrier (enter / exit with N participants).

Barrier
    ``path`` is the barrier's root (created with ``acl``); the barrier is *set* while the
    persistent child ``path/set`` exists.  Being persistent, a set barrier survives its setter's
    disconnect or crash: waiters are released only by an explicit ``unset``.  Who may set and
    unset is governed by the root's ACL (CREATE and DELETE on ``path``).  ``wait`` and
    ``is_set`` first sync their member with the leader, so a wait that starts after ``set()``
    returned anywhere sees the barrier set (plain ZooKeeper reads may lag behind).

DoubleBarrier
    Participants are ephemeral-sequential children ``{identifier}.{guid}.{seq}`` of ``path``.
    The one whose arrival makes the count reach N creates ``path/ready`` holding the sequence
    numbers of the N members it releases; everybody else waits on a watch for that one node.
    So a ``ready`` node left by an earlier round never releases a newcomer (its sequence is not
    listed, and the ready node is older than the newcomer's node; a ready node none of whose
    members is present is stale and deleted), and the N+1st arrival waits for the next round.

    On exit, the lowest member still present is the *monitor*: it keeps its node until every
    other member has gone (watching the highest remaining one), then deletes its node and
    ``ready``.  Everybody else deletes its node and watches the lowest remaining member.  A
    member that crashes leaves when its session expires, and whoever watched it re-checks.
    Each release costs one notification per waiter, not a getChildren loop per arrival.
"""

from __future__ import annotations

import json
import os
import re
import socket
import threading
from dataclasses import dataclass

from kazoo.client import KazooClient
from kazoo.security import ACL

from ._ops import Ops, Waiter
from ._queue import CLEANUP_WAIT, protected_create, release_node, sweep_later
from ._util import Deadline, check_acl, check_name, check_path, check_timeout
from .errors import AlreadyHeld, InvalidArgument, NotHeld, Timeout

SET_MARKER = "set"
READY = "ready"

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
                    raise Timeout("timed out waiting for the barrier to be unset", path=self.path,
                                  recipe=self.recipe)
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


def _guid(name: str) -> str:
    match = _PARTICIPANT.match(name)
    return match["guid"] if match else ""


class DoubleBarrier:
    """N participants enter together and leave together."""

    recipe = "DoubleBarrier"

    def __init__(self, client: KazooClient, path: str, participants: int, identifier: str | None = None,
                 acl: list[ACL] | None = None) -> None:
        self.path = check_path(path, self.recipe)
        if isinstance(participants, bool) or not isinstance(participants, int) or participants < 1:
            raise InvalidArgument(f"participants must be an int >= 1, got {participants!r}", path=self.path,
                                  recipe=self.recipe)
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
        self._members: frozenset[int] = frozenset()
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
            self._members, self._ready_czxid = self._await_round(node, place.stat.czxid, deadline)
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
                raise AlreadyHeld(f"another {what} is in progress on this DoubleBarrier", path=self.path,
                                  recipe=self.recipe)
            if self.entered != want_entered:
                if want_entered:
                    raise NotHeld("exit without enter", path=self.path, recipe=self.recipe)
                raise AlreadyHeld("already entered; exit first", path=self.path, recipe=self.recipe)
            self._busy = True

    def _end(self) -> None:
        with self._state:
            self._busy = False

    def _await_round(self, node: str, my_czxid: int, deadline: Deadline) -> tuple[frozenset[int], int]:
        ops = self._ops
        me = _PARTICIPANT.match(node.rsplit("/", 1)[1])
        assert me is not None
        my_seq = int(me["seq"])
        with Waiter(ops.session) as waiter:
            while True:
                ready = ops.get(self._ready, deadline, watch=waiter.watch)
                if ready is not None:
                    data, stat = ready
                    # a ready node made before our node existed cannot be for us
                    members = _decode_members(data) if stat.czxid > my_czxid else frozenset()
                    if my_seq in members:
                        return members, stat.czxid
                    present = _participants(ops.get_children(self.path, deadline))
                    live = [p for p in present if p.seq in members]
                    if not live:  # stale: left by a round whose members are all gone
                        ops.delete(self._ready, deadline, version=stat.version)
                        continue
                    # a round we are not part of is in progress: wait for its lowest member
                    if ops.exists(f"{self.path}/{live[0].name}", deadline, watch=waiter.watch) is None:
                        continue
                else:
                    if ops.exists(self._ready, deadline, watch=waiter.watch) is not None:
                        continue
                    names = ops.get_children(self.path, deadline)
                    my_guid = me["guid"]
                    for twin in names:
                        if _guid(twin) == my_guid and twin != me.string:
                            ops.delete(f"{self.path}/{twin}", deadline)  # a late duplicate of ours
                    present = _participants([n for n in names if _guid(n) != my_guid or n == me.string])
                    if my_seq not in {p.seq for p in present}:
                        raise Timeout("our participant node disappeared (session lost) while entering",
                                      path=self.path, recipe=self.recipe)
                    if len(present) >= self.participants:
                        chosen = [p.seq for p in present[: self.participants]]
                        payload = json.dumps({"members": chosen}).encode()
                        ops.create(self._ready, deadline, value=payload, acl=self.acl)
                        continue
                if not waiter.wait(deadline):
                    raise Timeout("timed out waiting for participants to enter", path=self.path,
                                  recipe=self.recipe)
                if not ops.session.is_connected() and not ops.session.wait_connected(deadline):
                    raise Timeout("timed out waiting for the connection", path=self.path, recipe=self.recipe)

    def _await_departure(self, node: str, deadline: Deadline) -> None:
        ops = self._ops
        my_name = node.rsplit("/", 1)[1]
        with Waiter(ops.session) as waiter:
            while True:
                present = [p for p in _participants(ops.get_children(self.path, deadline))
                           if p.seq in self._members]
                mine_present = any(p.name == my_name for p in present)
                others = [p for p in present if p.name != my_name]
                if not others:
                    if mine_present:
                        ops.delete(node, deadline)
                    self._delete_ready(deadline)
                    return
                if mine_present and present[0].name == my_name:
                    watched = others[-1]  # monitor: wait for the highest remaining member
                else:
                    if mine_present:
                        ops.delete(node, deadline)
                    watched = present[0] if present[0].name != my_name else others[0]
                if ops.exists(f"{self.path}/{watched.name}", deadline, watch=waiter.watch) is None:
                    continue
                if not waiter.wait(deadline):
                    missing = ", ".join(p.name for p in others)
                    raise Timeout(f"timed out waiting for participants to exit: {missing}", path=self.path,
                                  recipe=self.recipe)
                if not ops.session.is_connected() and not ops.session.wait_connected(deadline):
                    raise Timeout("timed out waiting for the connection", path=self.path, recipe=self.recipe)

    def _delete_ready(self, deadline: Deadline) -> None:
        stat = self._ops.exists(self._ready, deadline)
        if stat is not None and stat.czxid == self._ready_czxid:
            self._ops.delete(self._ready, deadline, version=stat.version)


def _identifier(name: str) -> str:
    match = _PARTICIPANT.match(name)
    return match["ident"] if match else name


def _decode_members(data: bytes) -> frozenset[int]:
    try:
        members = json.loads(data.decode())["members"]
        return frozenset(int(seq) for seq in members)
    except (ValueError, KeyError, TypeError):
        return frozenset()  # unreadable: treated as stale
