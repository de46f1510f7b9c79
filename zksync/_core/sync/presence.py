"""The presence ring: who is alive, one watch per instance.

Every instance watches the presence node just before its own; the lowest watches the newest,
closing the ring.  When the watched node vanishes, the watcher records that instance as gone
(``left/<id>``, which every barrier sees through :mod:`.trouble`) and watches the next one.

Presence nodes are ``p-<seq>`` and only departures remove them, so the predecessor is almost
always ``p-<seq - 1>``: one ``get`` (which also tells its instance id) finds and watches it;
the instances are listed only when that node is missing.  The lowest instance closes the ring
without listing: the parent's stat tells the next sequence to be handed out (its ``cversion``
counts creations and deletions, ``numChildren`` the difference), so it watches the newest,
``p-<next - 1>``, and ``exists`` on ``p-<next>`` (fires on the next join).  The newest may have
left already, and every departure is recorded in ``left/``, so the lowest also watches
``left/`` and looks again when it changes.

The watcher learns the instance id from the node's data, so an instance that goes before any
other has read its node (within a few round trips of its join) is not recorded; a barrier that
waits for it ends with its timeout, which names it among the missing (``joined/``).

Everything here runs in the background, on kazoo's threads (see :mod:`zksync._drive.background`):
each watch event starts one short machine.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from kazoo.protocol.states import WatchedEvent

from ..effects import Machine
from ..requests import Requests
from ..sequence import next_from_stat, next_sequence, precedes
from .names import presence, presences, seq_of
from .trouble import Spawn

ANSWER_WAIT = 1.0  # seconds a deletion waits for the reply that told us whose node it was


class Ring:
    """This instance's place in the ring, from joining until leaving."""

    def __init__(self, requests: Requests, root: str, node: str, spawn: Spawn) -> None:
        self.requests = requests
        self.base = f"{root}/instances"
        self.left = f"{root}/left"
        self.node = node
        self.mine = seq_of(node)
        self.spawn = spawn
        self.generation = 0
        self.stopped = False
        self._lock = threading.Lock()
        self._watching: set[str] = set()

    @property
    def watching(self) -> frozenset[str]:
        """The presence nodes (names) this instance watches now: found alive, not seen to go."""
        with self._lock:
            return frozenset(self._watching)

    def start(self) -> None:
        """(Re)start following: after joining, and after every reconnect (watches were dropped)."""
        with self._lock:
            self.generation += 1
            generation = self.generation
        # (the first instance finds no predecessor and lists: the counter may have wrapped)
        self._follow(presence(next_sequence(self.mine, -1)), self._relist, generation)

    def stop(self) -> None:
        self.stopped = True

    def _current(self, generation: int) -> bool:
        """False once we left, or once a newer start took over (its watches replace ours)."""
        return not self.stopped and self.generation == generation

    def _run(self, machine: Machine[None], what: str) -> None:
        self.spawn(machine, f"presence ring of {self.node}: {what}")

    # ---- following one node ---------------------------------------------------------------
    def _follow(self, target: str, on_missing: Callable[[int], None], generation: int) -> None:
        """``get`` ``target`` with a watch; record its instance in left/ when it goes."""
        known: list[str] = []
        answered = threading.Event()
        self._run(self._get(target, known, answered, on_missing, generation), f"following {target}")

    def _get(
        self,
        target: str,
        known: list[str],
        answered: threading.Event,
        on_missing: Callable[[int], None],
        generation: int,
    ) -> Machine[None]:
        def gone(event: WatchedEvent) -> None:
            if self.stopped:
                return  # we left: no more bookkeeping
            if event.type == "DELETED":  # recorded by any watch of ours that sees it (idempotent)
                answered.wait(ANSWER_WAIT)  # kazoo runs replies and watches on different threads
                with self._lock:
                    self._watching.discard(target)
                if known:
                    self._run(self._record_gone(known[0]), f"recording {known[0]} as gone")
            if event.type != "NONE" and self._current(generation):
                self.start()

        try:
            found = yield from self.requests.get(f"{self.base}/{target}", self.requests.default_deadline(), watch=gone)
            if found is not None:  # known before answered is set: the watch may be waiting to read it
                known.append(found[0].decode(errors="replace"))
                with self._lock:
                    self._watching.add(target)
        finally:
            answered.set()
        if found is None:
            on_missing(generation)

    def _record_gone(self, ident: str) -> Machine[None]:
        yield from self.requests.create(f"{self.left}/{ident}", self.requests.default_deadline())

    # ---- when the predecessor is not where expected ---------------------------------------
    def _relist(self, generation: int) -> None:
        if self._current(generation):
            self._run(self._find_predecessor(generation), "looking for the predecessor")

    def _find_predecessor(self, generation: int) -> Machine[None]:
        names = presences((yield from self.requests.get_children(self.base, self.requests.default_deadline())))
        if not self._current(generation) or presence(self.mine) not in names:
            return  # we left (or the run is being cleaned up)
        before = names[: names.index(presence(self.mine))]
        if before:
            self._follow(before[-1], self._relist, generation)
        else:  # everybody below us is gone: we are the lowest now
            self._close(generation)

    # ---- the lowest instance closes the ring ----------------------------------------------
    def _close(self, generation: int) -> None:
        self._run(self._watch_newest(generation), "closing the ring")
        self._run(self._watch_departures(generation), "watching departures")

    def _watch_newest(self, generation: int) -> Machine[None]:
        """Watch the newest instance, and the next one to join."""

        def next_joined(event: WatchedEvent) -> None:
            if event.type != "NONE" and self._current(generation):
                self._run(self._watch_newest(generation), "closing the ring")

        deadline = self.requests.default_deadline()
        while True:
            parent = yield from self.requests.exists(self.base, deadline)
            if parent is None or not self._current(generation):
                return
            upcoming = next_from_stat(parent.cversion, parent.numChildren, self.mine)
            if (
                yield from self.requests.exists(f"{self.base}/{presence(upcoming)}", deadline, watch=next_joined)
            ) is None:
                break  # watched: its creation will tell
            # it joined between our two reads (the watch set on it fires when it leaves): look again
        newest = next_sequence(upcoming, -1)
        if precedes(self.mine, newest):
            self._follow(presence(newest), self._relist_newest, generation)

    def _relist_newest(self, generation: int) -> None:
        """The newest sequence was consumed by a departure: find the newest instance by listing."""
        if self._current(generation):
            self._run(self._find_newest(generation), "looking for the newest instance")

    def _find_newest(self, generation: int) -> Machine[None]:
        names = presences((yield from self.requests.get_children(self.base, self.requests.default_deadline())))
        mine = presence(self.mine)
        if self._current(generation) and names and names[0] == mine and names[-1] != mine:
            self._follow(names[-1], self._relist_newest, generation)

    def _watch_departures(self, generation: int) -> Machine[None]:
        def departed(event: WatchedEvent) -> None:
            if event.type != "NONE" and self._current(generation):
                self._run(self._watch_newest(generation), "closing the ring")
                self._run(self._watch_departures(generation), "watching departures")

        yield from self.requests.get_children(self.left, self.requests.default_deadline(), watch=departed)
