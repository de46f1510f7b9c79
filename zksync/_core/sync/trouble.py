"""Departures and aborts, watched once per instance and cached.

Each instance keeps one child watch on ``left/`` (who is gone) and one on ``aborted/`` (which
states were aborted), and caches what they list; its barriers read that cache, and are woken
when it changes, so they fail fast without a request of their own.  The watches are re-armed
at once only while a barrier of the instance waits; otherwise they are marked stale and the
next barrier re-arms them.  So the departures at the end of a run cost each idle instance at
most one notification, not one per departure.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from kazoo.protocol.states import WatchedEvent

from ..._util import Deadline
from ..effects import Listen, Machine, WakeHub
from ..requests import Requests

KINDS = ("left", "aborted")
Spawn = Callable[[Machine[None], str], None]


class Trouble:
    def __init__(self, requests: Requests, root: str, spawn: Spawn) -> None:
        self.requests = requests
        self.root = root
        self.spawn = spawn
        self.hub = WakeHub()  # the barriers of this instance that wait now
        self.active = False  # while the instance is joined
        self._lock = threading.Lock()
        self._names: dict[str, frozenset[str]] = {kind: frozenset() for kind in KINDS}
        self._armed = dict.fromkeys(KINDS, False)

    @property
    def gone(self) -> frozenset[str]:
        """Instances recorded as gone (children of ``left/``)."""
        return self._names["left"]

    @property
    def aborted(self) -> frozenset[str]:
        """States aborted so far (children of ``aborted/``)."""
        return self._names["aborted"]

    def reset(self) -> None:
        """After a join: nothing is armed yet."""
        with self._lock:
            self._armed = dict.fromkeys(KINDS, False)

    def listen(self, deadline: Deadline) -> Machine[None]:
        """For a barrier: be woken by every change of the cache, then make sure both watches are
        armed and the cache is current (in this order, so that no change slips between)."""
        yield Listen(self.hub)
        for kind in KINDS:
            with self._lock:
                armed, self._armed[kind] = self._armed[kind], True
            if armed:
                continue
            try:
                names = yield from self.requests.get_children(f"{self.root}/{kind}", deadline, watch=self.watch)
            except BaseException:
                with self._lock:
                    self._armed[kind] = False
                raise
            self._store(kind, names)

    def watch(self, event: WatchedEvent) -> None:
        """The watch on ``left/`` or ``aborted/`` fired (on kazoo's thread)."""
        if event.type != "NONE" and self.active:
            self._rearm_if_waited_for(event.path.rsplit("/", 1)[1])

    def reconnected(self) -> None:
        """kazoo drops watches while suspended: re-arm those a barrier waits for."""
        for kind in KINDS:
            self._rearm_if_waited_for(kind)

    def _rearm_if_waited_for(self, kind: str) -> None:
        waiting = self.hub.listened()
        with self._lock:
            self._armed[kind] = waiting  # stale unless re-armed now
        if waiting:
            self.spawn(self._rearm(kind), f"re-arming the watch on {self.root}/{kind}")

    def _rearm(self, kind: str) -> Machine[None]:
        deadline = self.requests.default_deadline()
        names = yield from self.requests.get_children(f"{self.root}/{kind}", deadline, watch=self.watch)
        self._store(kind, names)

    def _store(self, kind: str, names: list[str]) -> None:
        with self._lock:
            self._names[kind] = frozenset(names)
        self.hub.wake_all()
