"""Barrier (set / unset / wait) and DoubleBarrier (enter / exit with N participants).

A Barrier is set while the persistent node ``path`` exists, as in the Go original (a Go
``Barrier`` on the same path is the same barrier): a set barrier survives its setter's crash,
and only ``unset`` releases the waiters.  ``acl`` applies to the barrier node and to the
parents ``set`` creates; who may set and unset is decided by the parent's ACL, so guard a
barrier by putting it under a parent made with the ACL (``Barrier(c, "/gates/deploy", acl=...)``
creates ``/gates`` with it).  A DoubleBarrier's participants are
ephemeral-sequential children of ``path``; the arrival that completes the count names the
round's members in ``path/ready``, and the lowest member sees everybody leave.  The protocol,
with its request counts, is described in :mod:`zksync._core.barrier`.
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


class BarrierBase:
    """What both front-ends' Barrier share."""

    recipe = "Barrier"

    def __init__(self, client: KazooClient, path: str, acl: list[ACL] | None = None) -> None:
        self.path = check_path(path, self.recipe)
        self.acl = check_acl(acl, self.recipe)
        self._session = session_for(client, self.recipe)
        self._core = BarrierCore(Requests(self._session, self.recipe, self.path), self.acl)


class Barrier(BarrierBase):
    """A barrier that holds waiters back while it is set."""

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


class DoubleBarrierBase:
    """What both front-ends' DoubleBarrier share."""

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


class DoubleBarrier(DoubleBarrierBase):
    """N participants enter together and leave together."""

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
