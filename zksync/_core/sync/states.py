"""States and barriers.

A state's directory only ever gains children, so its sequence numbers are dense: the count
has reached ``target`` exactly when ``e-<target - 1>`` exists.  A barrier therefore watches
that one node with ``exists`` (it fires when the target-th signal lands); nobody lists the
entries, nobody keeps a marker, and a signal is one transaction.  ``signal_and_wait`` costs
the participant two requests (the transaction and the exists watch) and the release one
notification.  The ``signalled`` record of a signal has a name fixed before the first try, so
a signal retried after a lost reply can never land twice: the second transaction fails on
that name, atomically.
"""

from __future__ import annotations

import uuid

from kazoo.exceptions import NodeExistsError, NoNodeError
from kazoo.protocol.states import EventType

from ..._util import Deadline
from ...errors import (
    BarrierAborted,
    ConnectionLost,
    InvalidState,
    ParticipantLost,
    SyncTimeout,
    Timeout,
    ZkSyncError,
    translate,
)
from ..effects import WATCH, Create, Forget, Machine, Multi
from ..requests import Requests, failed_step
from .names import RECIPE, entry, is_sequential, number_of
from .trouble import Trouble


class States:
    """Signals and barriers of one instance of a run rooted at ``root``."""

    def __init__(self, requests: Requests, root: str, instance_id: str, trouble: Trouble) -> None:
        self.requests = requests
        self.root = root
        self.instance_id = instance_id
        self.trouble = trouble

    # ---- signalling -----------------------------------------------------------------------
    def signal(self, state: str, deadline: Deadline) -> Machine[int]:
        """Signal ``state`` once; returns the signal's 1-based number."""
        r = self.requests
        entries = f"{self.root}/states/{state}"
        record = f"{self.root}/signalled/{state}/{self.instance_id}.{uuid.uuid4().hex}"
        while True:
            transaction = Multi((Create(f"{entries}/e-", self.instance_id.encode(), sequence=True), Create(record)))
            try:
                results = yield from r.commit(transaction, deadline)
            except ConnectionLost:  # the reply was lost: did the transaction land?
                yield from r.await_connection(deadline)
                landed = yield from r.exists(record, deadline)
                if landed is None:
                    continue  # it did not (and a late copy can no longer land: the record would exist)
                return (yield from self._number_of(entries, landed.czxid, deadline))
            failure = failed_step(results)
            if failure is None:
                return number_of(results[0])
            if isinstance(failure, NoNodeError):  # the first signal of this state: make its directories
                yield from self._make_directories(entries, record.rsplit("/", 1)[0], deadline)
                continue
            if isinstance(failure, NodeExistsError):  # an earlier try landed after all
                landed = yield from r.exists(record, deadline)
                if landed is not None:
                    return (yield from self._number_of(entries, landed.czxid, deadline))
            with translate(entries, RECIPE):
                raise failure

    def _make_directories(self, entries: str, records: str, deadline: Deadline) -> Machine[None]:
        """Made in one transaction; made by another instance meanwhile is just as good."""
        r = self.requests
        try:
            made = yield from r.commit(Multi((Create(entries), Create(records))), deadline)
        except ConnectionLost:  # making directories is idempotent: the caller goes round again
            yield from r.await_connection(deadline)
            return
        if any(isinstance(result, NoNodeError) for result in made):  # the run's layout itself is missing
            yield from r.ensure_path(entries, deadline)
            yield from r.ensure_path(records, deadline)

    def _number_of(self, entries: str, czxid: int, deadline: Deadline) -> Machine[int]:
        """The number of the entry created by transaction ``czxid`` (entries are created in
        zxid order, so a binary search over their sequence finds it)."""
        r = self.requests
        children = yield from r.get_children(entries, deadline)
        names = sorted((n for n in children if is_sequential(n, "e-")), key=number_of)
        low, high = 0, len(names) - 1
        while low <= high:
            middle = (low + high) // 2
            stat = yield from r.exists(f"{entries}/{names[middle]}", deadline)
            if stat is None:
                raise InvalidState(f"entry {names[middle]} of {entries} was deleted", path=entries, recipe=RECIPE)
            if stat.czxid == czxid:
                return number_of(names[middle])
            if stat.czxid < czxid:
                low = middle + 1
            else:
                high = middle - 1
        raise InvalidState(f"the entry of a landed signal is missing from {entries}", path=entries, recipe=RECIPE)

    # ---- waiting --------------------------------------------------------------------------
    def wait_for(self, state: str, target: int, deadline: Deadline, instance_count: int | None) -> Machine[None]:
        """Return once ``target`` signals of ``state`` were made; a timeout names the missing."""
        try:
            yield from self._await_target(state, target, deadline, instance_count)
        except Timeout as exc:  # the wait, or a request, ran out of time: say who is missing
            missing = yield from self.missing(state)
            raise SyncTimeout(
                f"timed out waiting for {target} instances in state {state!r}; "
                f"not signalled: {', '.join(missing) or 'unknown instances'}",
                missing,
                path=f"{self.root}/states/{state}",
                recipe=RECIPE,
            ) from exc

    def _await_target(self, state: str, target: int, deadline: Deadline, instance_count: int | None) -> Machine[None]:
        r = self.requests
        node = entry(self.root, state, target)
        checked_gone: frozenset[str] | None = None
        yield from self.trouble.listen(deadline)
        while True:
            yield Forget()
            if (yield from r.exists(node, deadline, watch=WATCH)) is not None:
                return
            if state in self.trouble.aborted:
                yield from self._raise_aborted(state, deadline)
            gone = self.trouble.gone
            if gone and gone != checked_gone:
                yield from self._fail_if_lost(state, target, gone, deadline, instance_count)
                checked_gone = gone
            event = yield from r.wait(deadline, "waiting")  # wait_for names the missing instances
            if event is not None and event.type == EventType.CREATED and event.path == node:
                return  # the target-th signal landed: nothing to ask

    def _raise_aborted(self, state: str, deadline: Deadline) -> Machine[None]:
        aborted = f"{self.root}/aborted/{state}"
        abort = yield from self.requests.get(aborted, deadline)
        reason = abort[0].decode(errors="replace") if abort is not None else "aborted"
        raise BarrierAborted(f"state {state!r} was aborted: {reason}", reason, path=aborted, recipe=RECIPE)

    def _fail_if_lost(
        self, state: str, target: int, gone: frozenset[str], deadline: Deadline, instance_count: int | None
    ) -> Machine[None]:
        signalled = yield from self.signalled(state, deadline)
        lost = sorted(set(gone) - signalled - {self.instance_id})
        if not lost:
            return
        if instance_count is not None:  # fail only when the target is now out of reach
            joined = yield from self.requests.get_children(f"{self.root}/joined", deadline, missing_ok=True)
            if max(instance_count, len(joined)) - len(lost) >= target:
                return
        raise ParticipantLost(
            f"instances gone before signalling {state!r}: {', '.join(lost)}",
            lost,
            path=f"{self.root}/states/{state}",
            recipe=RECIPE,
        )

    def signalled(self, state: str, deadline: Deadline) -> Machine[set[str]]:
        """The instances that signalled ``state``."""
        names = yield from self.requests.get_children(f"{self.root}/signalled/{state}", deadline, missing_ok=True)
        return {n.rsplit(".", 1)[0] for n in names}

    def missing(self, state: str) -> Machine[list[str]]:
        """The joined instances that did not signal ``state`` ([] when that cannot be asked)."""
        try:
            deadline = self.requests.default_deadline()
            joined = yield from self.requests.get_children(f"{self.root}/joined", deadline, missing_ok=True)
            return sorted(set(joined) - (yield from self.signalled(state, deadline)))
        except ZkSyncError:
            return []
