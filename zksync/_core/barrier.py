"""Barrier (set / unset / wait) and DoubleBarrier (enter / exit with N participants).

Barrier
    The barrier is *set* while the persistent node ``path`` itself exists, as in the Go
    original (so a Go ``Barrier`` and this one on the same path are one barrier).  Being
    persistent, a set barrier survives its setter's disconnect or crash: waiters are released
    only by an explicit ``unset``.  ``set`` creates the node and any missing parent with
    ``acl``; who may set and unset is then decided by the *parent's* ACL (CREATE and DELETE
    on the parent of ``path``), so a guarded barrier lives under a parent made with that ACL
    (``set`` makes it so when it creates the parent).  ``wait`` and ``is_set`` first sync
    their member with the leader, so a wait that starts after ``set()`` returned anywhere sees
    the barrier set (plain ZooKeeper reads may lag behind).  A barrier node has no children;
    this library's layout before it shared the Go original's (a child ``set`` under ``path``)
    still reads as set, and ``unset`` removes it.

DoubleBarrier
    Participants are ephemeral-sequential children ``{identifier}.{guid}.{seq}`` of
    ``path``. An arrival creates its node, watches ``path/ready`` and reads the parent's
    child count (a stat, not a listing) unless its sequence number shows it cannot be the
    Nth.  Only an arrival that sees the count reach N lists the children; it creates
    ``path/ready`` describing the round: the sequence range of its N members (the N lowest
    present), the few sequence numbers inside that range that are not members (late
    duplicates of a create whose reply was lost), and the name of the lowest member, the
    *monitor*.  The transaction that creates ``ready`` checks that every member is still there
    (one that gave up after the listing is not counted); when those checks would not fit in one
    request (beyond about 5,000 members with short paths and identifiers), it checks the
    earliest arrivals that fit, and a later one that gives up in the moment between the listing
    and the transaction is counted, as one that gives up just after it always is.  Everybody
    else is woken by the creation of ``ready``.  A ``ready`` node left
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
import re
import threading
from dataclasses import dataclass

from kazoo.exceptions import BadVersionError, NodeExistsError, NoNodeError, NotEmptyError
from kazoo.protocol.states import EventType, WatchedEvent
from kazoo.security import ACL

from .._util import Deadline, check_name, check_timeout
from ..errors import AlreadyHeld, ConnectionLost, ForeignLayout, InvalidState, NotHeld, Timeout, translate
from .effects import WATCH, Check, Create, Delete, Forget, Machine, Multi, Release, SetData, Sweep, Wait
from .queue import CLEANUP_WAIT, protected_create
from .requests import Requests, failed_step
from .sequence import SEQUENCE_PATTERN, between, distance, next_from_stat, next_sequence, parse_sequence, queue_order

SET_MARKER = "set"  # this library's barrier marker before the barrier became the node at the path
READY = "ready"
MEMBER_VERSION = 0  # a member's node keeps its first version until the monitor marks its own on exit
MONITOR_DONE = b"all-left"  # the monitor's last word, in the transaction that deletes its node
CHECK_CHUNK = 64  # members whose presence the monitor checks in one pipelined batch
LATER_ARRIVAL_WAIT = 0.2  # seconds a non-last arrival that saw the count complete waits for ready
# bytes of member checks in the transaction that creates ready: half of jute.maxbuffer (1,048,575),
# the most a server takes in one request by default (10,000 checks of the usual names are 1.09 MB)
CHECKS_BUDGET = 512 * 1024
CHECK_OVERHEAD = 17  # bytes of one check besides its path: op header (type, done, err), length, version

_PARTICIPANT = re.compile(rf"^(?P<ident>.+)\.(?P<guid>[0-9a-f]{{32}})\.(?P<seq>{SEQUENCE_PATTERN})$")


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
        seq = parse_sequence(match["seq"]) if match is not None else None
        if match is not None and seq is not None:
            found.append((seq, match["guid"], name))
    found = queue_order(sorted(found), key=lambda item: item[0])
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
        return isinstance(seq, int) and between(seq, self.low, self.high) and seq not in self.excluded

    @classmethod
    def of(cls, chosen: list[_Participant], listed: list[_Participant]) -> _Round:
        low, high = chosen[0].seq, chosen[-1].seq
        members = {p.seq for p in chosen}
        excluded = frozenset(p.seq for p in listed if between(p.seq, low, high) and p.seq not in members)
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


def _is_json_object(data: bytes) -> bool:
    try:
        return isinstance(json.loads(data.decode()), dict)
    except ValueError:
        return False


def _guid(name: str) -> str:
    match = _PARTICIPANT.match(name)
    return match["guid"] if match else ""


class BarrierCore:
    """A barrier that holds waiters back while it is set."""

    recipe = "Barrier"

    def __init__(self, requests: Requests, acl: list[ACL] | None) -> None:
        self.requests = requests
        self.path = requests.path
        self.acl = acl

    def set(self) -> Machine[bool]:
        """Set the barrier; False when it was already set."""
        r = self.requests
        return (yield from r.create(self.path, r.default_deadline(), acl=self.acl)) is not None

    def unset(self) -> Machine[bool]:
        """Lift the barrier, releasing every waiter; False when it was not set."""
        r = self.requests
        deadline = r.default_deadline()
        try:
            yield from r.call(Delete(self.path), deadline, expected=(NoNodeError, NotEmptyError))
            return True
        except NoNodeError:
            return False
        except NotEmptyError:
            pass
        children = yield from r.get_children(self.path, deadline, missing_ok=True)
        if children != [SET_MARKER]:
            shown = ", ".join(sorted(children)[:5])
            raise InvalidState(f"{self.path} has children ({shown}): it is not a barrier node", path=self.path)
        # the layout before the barrier became the node itself: remove both in one step
        results = yield from r.commit(Multi((Delete(f"{self.path}/{SET_MARKER}"), Delete(self.path))), deadline)
        return failed_step(results) is None

    def is_set(self) -> Machine[bool]:
        r = self.requests
        deadline = r.default_deadline()
        yield from r.sync(self.path, deadline)
        return (yield from r.exists(self.path, deadline)) is not None

    def wait(self, timeout: float | None) -> Machine[None]:
        """Return once the barrier is not set; :class:`Timeout` after ``timeout`` seconds."""
        r = self.requests
        deadline = Deadline(check_timeout(timeout))
        r.ensure_usable()
        # a wait that starts after set() returned elsewhere must see it, whichever member we read
        yield from r.sync(self.path, deadline)
        while (yield from r.exists(self.path, deadline, watch=WATCH)) is not None:
            yield from r.wait(deadline, "waiting for the barrier to be unset")


class DoubleBarrierCore:
    """N participants enter together and leave together: the state of one participant."""

    recipe = "DoubleBarrier"

    def __init__(self, requests: Requests, participants: int, identifier: str, acl: list[ACL] | None) -> None:
        self.requests = requests
        self.path = requests.path
        self.participants = participants
        self.identifier = identifier
        self.acl = acl
        self.ready = f"{self.path}/{READY}"
        self._state = threading.Lock()
        self._busy = False
        self.node: str | None = None
        self._round: _Round | None = None
        self._ready_czxid: int | None = None
        self._tainted = False

    @property
    def entered(self) -> bool:
        return self.node is not None

    def enter(self, timeout: float | None) -> Machine[None]:
        """Join and return once ``participants`` have entered this round."""
        deadline = Deadline(check_timeout(timeout))
        self.requests.ensure_usable()
        self._begin("enter", want_entered=False)
        node = None
        try:
            pattern = f"{self.identifier}.{{guid}}."
            place = yield from protected_create(self.requests, self.path, pattern, deadline, self.acl)
            node = place.path
            self._tainted = place.tainted
            self._round, self._ready_czxid = yield from self._await_round(node, place.stat.czxid, deadline)
            self.node = node
        except BaseException:
            if node is not None:
                yield Release(node, CLEANUP_WAIT)
                if self._tainted:
                    yield Sweep(self.path, _guid(_name(node)))
            raise
        finally:
            self._end()

    def exit(self, timeout: float | None) -> Machine[None]:
        """Leave, and return once every member of the round has left (or disconnected).

        On :class:`Timeout` our own node is removed all the same: we are out of the barrier.
        """
        deadline = Deadline(check_timeout(timeout))
        self.requests.ensure_usable()
        self._begin("exit", want_entered=True)
        node = self.node
        assert node is not None
        try:
            yield from self._await_departure(node, deadline)
        except BaseException:
            yield Release(node, CLEANUP_WAIT)
            raise
        finally:
            self.node = None
            if self._tainted:
                yield Sweep(self.path, _guid(_name(node)))
            self._end()

    def present(self, timeout: float | None) -> Machine[list[str]]:
        """Identifiers of the participants whose nodes exist now, in arrival order."""
        names = yield from self.requests.get_children(self.path, self._deadline(timeout), missing_ok=True)
        return [_identifier(p.name) for p in _participants(names)]

    def evict(self, identifier: str, timeout: float | None) -> Machine[int]:
        """Remove the participant nodes of ``identifier``; returns how many were removed."""
        identifier = check_name(identifier, "identifier", self.recipe)
        deadline = self._deadline(timeout)
        removed = 0
        for p in _participants((yield from self.requests.get_children(self.path, deadline, missing_ok=True))):
            if _identifier(p.name) == identifier and (
                yield from self.requests.delete(f"{self.path}/{p.name}", deadline)
            ):
                removed += 1
        return removed

    # ---- internals ---------------------------------------------------------------------
    def _deadline(self, timeout: float | None) -> Deadline:
        return Deadline(check_timeout(timeout)) if timeout is not None else self.requests.default_deadline()

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

    def _await_round(self, node: str, my_czxid: int, deadline: Deadline) -> Machine[tuple[_Round, int]]:
        r = self.requests
        me = _PARTICIPANT.match(_name(node))
        assert me is not None
        my_seq = int(me["seq"])
        ready_created = False  # woken by the creation of ready: read it without asking first
        deferred = False  # we saw the count complete but were not the last arrival, and waited once
        while True:
            yield Forget()
            if ready_created or (yield from r.exists(self.ready, deadline, watch=WATCH)) is not None:
                ready = yield from r.get(self.ready, deadline, watch=WATCH)
                if ready is None:
                    ready_created = False
                    continue
                data, stat = ready
                described = _Round.decode(data)
                if described is None and not _is_json_object(data):  # ours are (an older one may not parse)
                    raise self._foreign([READY], f"its {READY} node holds {data[:40]!r}, not a round")
                # a ready node made before our node existed cannot be for us
                rnd = described if stat.czxid > my_czxid else None
                if rnd is not None and my_seq in rnd:
                    return rnd, stat.czxid
                if not (yield from self._watch_other_round(node, rnd, stat.version, deadline)):
                    ready_created = False
                    continue
            elif distance(0, my_seq) + 1 >= self.participants:
                # (our sequence counts the children created under the path before ours, and the
                # child count never exceeds that: an arrival numbered below N - 1 cannot complete
                # the count, and the one that does is numbered N - 1 or more, so it counts; true
                # until the path has seen 2**32 creations)
                parent = yield from r.exists(self.path, deadline)
                if parent is not None and parent.numChildren >= self.participants:
                    later = next_from_stat(parent.cversion, parent.numChildren, my_seq) != next_sequence(my_seq)
                    if later and not deferred:
                        # children changed after ours: a later arrival counts too, and the last
                        # one lists at once; give it a moment rather than list N names as well
                        deferred = True
                        remaining = deadline.remaining()
                        wait = LATER_ARRIVAL_WAIT if remaining is None else min(LATER_ARRIVAL_WAIT, remaining)
                        wake = yield Wait(Deadline(wait))
                        ready_created = self._is_ready_created(wake.event if wake is not None else None)
                        continue
                    if (yield from self._complete_round(node, deadline)):
                        ready_created = True
                        continue
            event = yield from r.wait(deadline, "waiting for participants to enter")
            ready_created = self._is_ready_created(event)

    def _is_ready_created(self, event: WatchedEvent | None) -> bool:
        return event is not None and event.type == EventType.CREATED and event.path == self.ready

    def _watch_other_round(self, node: str, rnd: _Round | None, version: int, deadline: Deadline) -> Machine[bool]:
        """``ready`` describes a round we are not part of: watch its lowest member (True), or
        delete ``ready`` when it is stale or find that member gone (False: look again)."""
        r = self.requests
        present, _ = yield from self._present_members(node, deadline)
        live = [p for p in present if rnd is not None and p.seq in rnd]
        if not live:  # stale: left by a round whose members are all gone
            yield from r.delete(self.ready, deadline, version=version)
            return False
        # a round we are not part of is in progress: wait for its lowest member
        return (yield from r.exists(f"{self.path}/{live[0].name}", deadline, watch=WATCH)) is not None

    def _complete_round(self, node: str, deadline: Deadline) -> Machine[bool]:
        """The count looks complete: list the members and create ``ready`` for the N lowest,
        in one transaction with a check that each of them is still there (a member that gave
        up between the listing and the create must not be counted).  True when ``ready`` was
        made (or may have been: read it), False to look again."""
        r = self.requests
        present, listing = yield from self._present_members(node, deadline)
        if len(present) < self.participants:
            return False
        chosen = present[: self.participants]
        listed = _participants(listing, keep_duplicates=True)
        value = _Round.of(chosen, listed).encode()
        checks = _checks_within_budget([f"{self.path}/{p.name}" for p in chosen])
        try:
            results = yield from r.commit(
                Multi((Create(self.ready, value, self.acl, makepath=False), *checks)), deadline
            )
        except ConnectionLost:  # did it land?  Reading ready tells
            yield from r.await_connection(deadline)
            return True
        failure = failed_step(results)
        if failure is None or isinstance(failure, NodeExistsError):
            return True
        if isinstance(failure, (NoNodeError, BadVersionError)):
            return False  # a chosen member left meanwhile
        with translate(self.path, self.recipe):
            raise failure

    def _present_members(self, node: str, deadline: Deadline) -> Machine[tuple[list[_Participant], list[str]]]:
        """The participants present now, in arrival order, and the child names they came from;
        deletes late duplicates of our own node, and raises if our node is gone (our session
        ended while we waited)."""
        r = self.requests
        my_name = _name(node)
        my_guid = _guid(my_name)
        names = yield from r.get_children(self.path, deadline)
        strangers = [n for n in names if n != READY and _PARTICIPANT.match(n) is None]
        if strangers:
            raise self._foreign(sorted(strangers)[:5], "children that are not its participants")
        for twin in names:
            if _guid(twin) == my_guid and twin != my_name:
                yield from r.delete(f"{self.path}/{twin}", deadline)  # a late duplicate of ours
        listing = [n for n in names if _guid(n) != my_guid or n == my_name]
        if my_name not in listing:
            raise Timeout(
                "our participant node disappeared (session lost) while entering", path=self.path, recipe=self.recipe
            )
        return _participants(listing), listing

    def _foreign(self, names: list[str], what: str) -> ForeignLayout:
        return ForeignLayout(
            f"the path holds another layout ({what}: {', '.join(names)}), for example the Go zksync "
            "DoubleBarrier's (members named by their bare id, a ready node with no data that is never "
            "removed); this DoubleBarrier cannot share it: use a path of its own",
            names,
            path=self.path,
            recipe=self.recipe,
        )

    def _await_departure(self, node: str, deadline: Deadline) -> Machine[None]:
        r = self.requests
        rnd = self._round
        assert rnd is not None
        if rnd.monitor == _name(node):
            yield from self._monitor_departure(node, rnd, deadline)
            return
        yield from r.delete(node, deadline)
        watched = rnd.monitor
        while True:
            yield Forget()
            path = f"{self.path}/{watched}"
            if (yield from r.exists(path, deadline, watch=WATCH)) is not None:
                event = yield from r.wait(deadline, f"waiting for participants to exit (watching {watched})")
                if event is not None and event.type == EventType.CHANGED and event.path == path:
                    return  # the monitor saw every member go
                continue
            # the node we watched is gone without the monitor's mark: is the round over?
            stat = yield from r.exists(self.ready, deadline)
            if stat is None or stat.czxid != self._ready_czxid:
                return  # ready is gone: the monitor finished (or the round is over)
            children = yield from r.get_children(self.path, deadline)
            present = [p for p in _participants(children) if p.seq in rnd]
            if not present:
                yield from self._delete_ready(deadline)
                return
            watched = present[0].name  # the lowest member still inside

    def _monitor_departure(self, node: str, rnd: _Round, deadline: Deadline) -> Machine[None]:
        """Wait for every other member to go, from the highest down; then leave, saying so."""
        r = self.requests
        my_name = _name(node)
        children = yield from r.get_children(self.path, deadline)
        others = [p for p in _participants(children) if p.seq in rnd and p.name != my_name]
        size = 1  # members checked at once: doubles while whole batches are gone, back to 1 after
        while others:
            chunk = others[-size:]
            stats = yield from r.exists_many([f"{self.path}/{p.name}" for p in chunk], deadline)
            while stats and stats[-1] is None:
                stats.pop()
                others.pop()
            if not others:
                break
            if not stats:
                size = min(2 * size, CHECK_CHUNK)
                continue
            size = 1
            yield Forget()
            if (yield from r.exists(f"{self.path}/{others[-1].name}", deadline, watch=WATCH)) is None:
                others.pop()
                continue
            yield from r.wait(
                deadline, lambda: f"waiting for participants to exit: {', '.join(p.name for p in others)}"
            )
            parent = yield from r.exists(self.path, deadline)
            if parent is not None and parent.numChildren <= 2:
                break  # only our node and ready are left (only we delete our ready while here)
        yield from self._finish(node, deadline)

    def _finish(self, node: str, deadline: Deadline) -> Machine[None]:
        """The monitor's last step: mark our node (the members watching it return on that), and
        delete it and our round's ready node, in one transaction."""
        r = self.requests
        stat = yield from r.exists(self.ready, deadline)
        ours = stat is not None and stat.czxid == self._ready_czxid
        for with_ready in (True, False) if ours else (False,):
            steps: list[Create | Delete | SetData] = [SetData(node, MONITOR_DONE), Delete(node)]
            if with_ready and stat is not None:
                steps.append(Delete(self.ready, stat.version))
            if failed_step((yield from r.commit(Multi(tuple(steps)), deadline))) is None:
                return
        yield from r.delete(node, deadline)  # our node is gone already, or we may not write it: go plainly
        yield from self._delete_ready(deadline)

    def _delete_ready(self, deadline: Deadline) -> Machine[None]:
        stat = yield from self.requests.exists(self.ready, deadline)
        if stat is not None and stat.czxid == self._ready_czxid:
            yield from self.requests.delete(self.ready, deadline, version=stat.version)


def _checks_within_budget(paths: list[str]) -> tuple[Check, ...]:
    """Checks that each of ``paths`` (the round's members, in arrival order) is still there, as
    many as fit in :data:`CHECKS_BUDGET`: the earliest arrivals first, since they have waited
    longest and are the likeliest to give up."""
    checks: list[Check] = []
    used = 0
    for path in paths:
        used += CHECK_OVERHEAD + len(path.encode())
        if used > CHECKS_BUDGET:
            break
        checks.append(Check(path, MEMBER_VERSION))
    return tuple(checks)


def _name(node: str) -> str:
    return node.rsplit("/", 1)[1]


def _identifier(name: str) -> str:
    match = _PARTICIPANT.match(name)
    return match["ident"] if match else name
