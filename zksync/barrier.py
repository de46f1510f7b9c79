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

import os
import socket

from kazoo.client import KazooClient
from kazoo.security import ACL

from ._core.barrier import BarrierCore, DoubleBarrierCore
from ._core.requests import Requests
from ._drive.blocking import run
from ._session import session_for
from ._util import check_acl, check_name, check_path
from .errors import InvalidArgument


class Barrier:
    """A barrier that holds waiters back while it is set."""

    recipe = "Barrier"

    def __init__(self, client: KazooClient, path: str, acl: list[ACL] | None = None) -> None:
        self.path = check_path(path, self.recipe)
        self.acl = check_acl(acl, self.recipe)
        self._session = session_for(client, self.recipe)
        self._core = BarrierCore(Requests(self._session, self.recipe, self.path), self.acl)

    def set(self) -> bool:
        """Set the barrier; False when it was already set."""
        return run(self._core.set(), self._session)

    def unset(self) -> bool:
        """Lift the barrier, releasing every waiter; False when it was not set."""
        return run(self._core.unset(), self._session)

    def is_set(self) -> bool:
        return run(self._core.is_set(), self._session)

    def wait(self, timeout: float | None = None) -> None:
        """Return once the barrier is not set; :class:`Timeout` after ``timeout`` seconds."""
        run(self._core.wait(timeout), self._session)


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
        self.participants = check_participants(participants, self.path, self.recipe)
        if identifier is None:
            identifier = f"{socket.gethostname()}-{os.getpid()}"
        self.identifier = check_name(identifier, "identifier", self.recipe)
        self.acl = check_acl(acl, self.recipe)
        self._session = session_for(client, self.recipe)
        requests = Requests(self._session, self.recipe, self.path)
        self._core = DoubleBarrierCore(requests, self.participants, self.identifier, self.acl)

    @property
    def entered(self) -> bool:
        return self._core.entered

    @property
    def node(self) -> str | None:
        """Our participant node while entered."""
        return self._core.node

    def enter(self, timeout: float | None = None) -> None:
        """Join and return once ``participants`` have entered this round."""
        run(self._core.enter(timeout), self._session)

    def exit(self, timeout: float | None = None) -> None:
        """Leave, and return once every member of the round has left (or disconnected).

        On :class:`Timeout` our own node is removed all the same: we are out of the barrier.
        """
        run(self._core.exit(timeout), self._session)

    def present(self, timeout: float | None = None) -> list[str]:
        """Identifiers of the participants whose nodes exist now, in arrival order."""
        return run(self._core.present(timeout), self._session)

    def evict(self, identifier: str, timeout: float | None = None) -> int:
        """Remove the participant nodes of ``identifier`` (exit on its behalf: an operator's
        tool for a participant that is stuck but still connected).  Needs DELETE permission
        on ``path``; returns how many nodes were removed."""
        return run(self._core.evict(identifier, timeout), self._session)

    def __enter__(self) -> DoubleBarrier:
        self.enter()
        return self

    def __exit__(self, *exc: object) -> None:
        self.exit()


def check_participants(participants: object, path: str, recipe: str) -> int:
    if isinstance(participants, bool) or not isinstance(participants, int) or participants < 1:
        raise InvalidArgument(f"participants must be an int >= 1, got {participants!r}", path=path, recipe=recipe)
    return participants
