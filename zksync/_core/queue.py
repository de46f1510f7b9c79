"""The sequential-node queue shared by every lock-like recipe.

The engine (:meth:`Attempt.take_place`) does the same thing for every recipe: create a
protected ephemeral-sequential node, list the queue, ask the node's *kind* which single node
blocks us, watch that one node, wait for the time left, and clean up on any failure.  A kind
is a small value (:class:`Kind`): the name written into its nodes, whether its holder is
exclusive, and its rule, a plain function of the entries ahead of ours.  So ordering is
unit-tested on lists of names, and a new lock kind is a new value, not new code paths.

Node names are ``{kind}-{guid}-{sequence}``: ``guid`` is fresh for every attempt, so after a
lost create reply the engine finds its own node again, and a node of another session is never
adopted.  Sequence numbers are the server's signed 32-bit counter: past 2**31 - 1 they go on
at -2**31, and the queue is ordered by creation across that wrap (:mod:`.sequence`).

Hand-off.  A holder releases with one transaction, ``setData(node, "released")`` then
``delete(node)``; a waiter watching that node with ``exists`` receives ``CHANGED`` (the first
event of the transaction), while a node that goes away for any other reason (a waiter giving
up, a crash, an expired session, ``break_lock``) gives ``DELETED``.  When the released node
was an exclusive holder, nothing ahead of it was left when it was granted, and nodes ahead of
ours can only disappear (later nodes are created behind ours), so the waiter that watched it may proceed
without listing the queue again: a contended acquisition costs create, getChildren, exists
and the release, and the hand-off is one write plus one notification.  Anything else
(``DELETED``, a shared holder's release, a connection event) makes the waiter list the queue
again.
"""

from __future__ import annotations

import functools
import logging
import re
import threading
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from kazoo.protocol.states import EventType, WatchedEvent, ZnodeStat
from kazoo.security import ACL

from .._util import Deadline
from ..errors import ConnectionLost, InvalidArgument, SessionExpired, Timeout, ZkSyncError
from .effects import WATCH, Forget, Machine, Release, Sweep
from .requests import Requests
from .sequence import SEQUENCE_PATTERN, parse_sequence, queue_order

log = logging.getLogger("zksync.lock")

RELEASE_WAIT = 5.0  # seconds a release waits for the server's answer before deferring
CLEANUP_WAIT = 1.0  # the same after a failed or timed-out attempt: the caller's error must not wait long
PARSED_NAMES = 4096  # child names whose parse is remembered (per process, least recently used go)
HANDOFF_DATA = b"released"  # written by a holder's release, in the same transaction as the delete


def _hex32() -> str:
    return uuid.uuid4().hex


def _uuid36() -> str:
    return str(uuid.uuid4())


@dataclass(frozen=True)
class Naming:
    """A family of lock node names: ``prefixes`` maps a lock kind's name to the node prefix
    (``{guid}`` is filled with a fresh ``guid()``; the server appends the sequence), and
    ``pattern`` reads such names back, with groups ``guid``, ``marker`` and ``seq``;
    ``markers`` maps a marker to the kind it stands for (a marker missing there is the kind's
    own name)."""

    name: str
    prefixes: Mapping[str, str]
    guid: Callable[[], str]
    pattern: re.Pattern[str]
    markers: Mapping[str, str]

    def prefix(self, kind: str, guid: str) -> str:
        return self.prefixes[kind].replace("{guid}", guid)


def _family(
    name: str, prefixes: dict[str, str], guid: Callable[[], str], pattern: str, markers: dict[str, str]
) -> Naming:
    return Naming(name, prefixes, guid, re.compile(rf"^{pattern}(?P<seq>{SEQUENCE_PATTERN})$"), markers)


_HEX32 = "(?P<guid>[0-9a-f]{32})"
_UUID36 = "(?P<guid>[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})"

#: The families this library can make, by the name ``RWMutex(naming=...)`` takes.
NAMINGS: dict[str, Naming] = {
    # the Go original (go-zookeeper's CreateProtectedEphemeralSequential of "write-"/"read-"):
    # (go-zookeeper's zk.Lock reads a sequence only after "lock-" or "__" since v1.0.3: it
    # fails on a path holding these names, so share a path with it through "mutex")
    "zksync": _family(
        "zksync",
        {"write": "_c_{guid}-write-", "read": "_c_{guid}-read-"},
        _hex32,
        f"_c_{_HEX32}-(?P<marker>read|write)-",
        {},
    ),
    # kazoo: Lock and WriteLock <uuid4 hex>__lock__<seq>, ReadLock <uuid4 hex>__rlock__<seq>
    "kazoo": _family(
        "kazoo",
        {"write": "{guid}__lock__", "read": "{guid}__rlock__"},
        _hex32,
        f"{_HEX32}__(?P<marker>lock|rlock)__",
        {"lock": "write", "rlock": "read"},
    ),
    # Curator's InterProcessReadWriteLock: _c_<uuid>-__WRIT__<seq>, _c_<uuid>-__READ__<seq>
    "curator": _family(
        "curator",
        {"write": "_c_{guid}-__WRIT__", "read": "_c_{guid}-__READ__"},
        _uuid36,
        f"_c_{_UUID36}-__(?P<marker>READ|WRIT)__",
        {"READ": "read", "WRIT": "write"},
    ),
    # Curator's InterProcessMutex (and its leader selector), go-zookeeper's zk.Lock: exclusive only
    "mutex": _family(
        "mutex",
        {"write": "_c_{guid}-lock-"},
        _uuid36,
        "_c_(?P<guid>[0-9a-f]{32}|[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})-(?P<marker>lock)-",
        {"lock": "write"},
    ),
}


def naming_for(name: object, path: str, recipe: str) -> Naming:
    """The family called ``name``; :class:`InvalidArgument` for anything else."""
    if isinstance(name, str) and name in NAMINGS:
        return NAMINGS[name]
    known = ", ".join(repr(n) for n in NAMINGS)
    raise InvalidArgument(f"naming must be one of {known}, got {name!r}", path=path, recipe=recipe)


# this library's names before the naming families: {kind}-{guid}-{seq}
_LEGACY = re.compile(rf"^(?P<marker>read|write)-{_HEX32}-(?P<seq>{SEQUENCE_PATTERN})$")
_READERS: tuple[tuple[re.Pattern[str], Mapping[str, str]], ...] = (
    (_LEGACY, {}),
    *((family.pattern, family.markers) for family in NAMINGS.values()),
)


@dataclass(frozen=True, order=True)
class Entry:
    """One node of a queue, ordered by its sequence number.  A ``stranger`` is a child that
    fits no naming family: it counts as a writer ahead of every other entry."""

    seq: int
    kind: str
    guid: str
    name: str
    stranger: bool = field(default=False, compare=False)


# A rule gets the entries ahead of ours (in queue order) and names the one to wait for.
Rule = Callable[[Sequence[Entry]], "Entry | None"]


@dataclass(frozen=True)
class Kind:
    """A lock kind: ``name`` goes into its node names; an ``exclusive`` holder had nothing
    ahead of it when granted; ``rule`` names the entry that blocks a node of this kind."""

    name: str
    exclusive: bool
    rule: Rule


@functools.lru_cache(maxsize=PARSED_NAMES)
def parse(name: str) -> Entry | None:
    """The entry a child name stands for (a lock node of any known family); None for names
    that are not.  Remembered: a waiter lists the same names again and again."""
    for pattern, markers in _READERS:
        match = pattern.match(name)
        if match is not None:
            seq = parse_sequence(match["seq"])
            kind = markers.get(match["marker"], match["marker"])
            return Entry(seq, kind, match["guid"], name) if seq is not None else None
    return None


def ordered(children: Sequence[str], keep_duplicates: bool = False) -> list[Entry]:
    """The queue in order: first every child that fits no naming family (a writer ahead of
    everybody, since nobody can tell where it stands: safety first, until it is removed), then
    the lock nodes by sequence.  A create whose reply was lost can land twice (the request was
    still in flight when we looked for it); both nodes carry the attempt's GUID, and only the
    first counts: later duplicates are dropped here and deleted by their owner."""
    entries: list[Entry] = []
    strangers: list[Entry] = []
    for name in children:
        entry = parse(name)
        if entry is not None:
            entries.append(entry)
        else:
            strangers.append(Entry(0, WRITE.name, name, name, stranger=True))
    entries = queue_order(sorted(entries), key=_seq)
    strangers.sort(key=lambda entry: entry.name)
    if keep_duplicates:
        return strangers + entries
    seen: set[str] = set()
    unique = []
    for entry in entries:
        if entry.guid not in seen:
            seen.add(entry.guid)
            unique.append(entry)
    return strangers + unique


_warned: set[tuple[str, str]] = set()
_warned_lock = threading.Lock()
_WARN_AT_MOST = 10_000  # strangers remembered per process, so that the set cannot grow without bound


def warn_strangers(queue: str, entries: Sequence[Entry]) -> None:
    """Log once per process for each stranger in ``queue``: it holds the lock up until removed."""
    for entry in entries:
        if not entry.stranger:
            continue
        with _warned_lock:
            if (queue, entry.name) in _warned or len(_warned) >= _WARN_AT_MOST:
                continue
            _warned.add((queue, entry.name))
        log.warning(
            "%s/%s fits no known lock naming: it is treated as a writer ahead of every waiter until it is removed",
            queue,
            entry.name,
        )


def _seq(entry: Entry) -> int:
    return entry.seq


def exclusive_rule(ahead: Sequence[Entry]) -> Entry | None:
    """Writers (and plain mutexes): wait for the immediate predecessor, whatever its kind."""
    return ahead[-1] if ahead else None


def shared_rule(ahead: Sequence[Entry]) -> Entry | None:
    """Readers: wait for the nearest exclusive holder or waiter ahead; shared ones do not block."""
    for entry in reversed(ahead):
        if is_exclusive(entry.kind):
            return entry
    return None


KINDS: dict[str, Kind] = {}


def register(kind: Kind) -> Kind:
    """Make ``kind`` known to every queue (its name must be new)."""
    if kind.name in KINDS:
        raise ValueError(f"lock kind {kind.name!r} is already registered")
    KINDS[kind.name] = kind
    return kind


def is_exclusive(kind_name: str) -> bool:
    kind = KINDS.get(kind_name)
    return kind is not None and kind.exclusive


WRITE = register(Kind("write", exclusive=True, rule=exclusive_rule))
READ = register(Kind("read", exclusive=False, rule=shared_rule))


@dataclass
class Place:
    """Our node in a queue once the rule lets us through."""

    path: str
    stat: ZnodeStat
    tainted: bool = False  # a create's reply was lost: a duplicate may still land later


class Attempt:
    """One attempt to take a place in a queue; ``lost`` is set when the session is lost."""

    def __init__(
        self, requests: Requests, queue: str, kind: Kind, acl: list[ACL] | None, naming: Naming = NAMINGS["zksync"]
    ) -> None:
        self.requests = requests
        self.queue = queue
        self.kind = kind
        self.acl = acl
        self.naming = naming
        self.node: str | None = None
        self.lost = False
        self.tainted_guids: list[str] = []

    def take_place(self, deadline: Deadline) -> Machine[Place]:
        """Wait until the rule lets us through; on failure our node is removed."""
        try:
            return (yield from self._queue_up(deadline))
        except BaseException:
            yield from self._forget_node()
            for guid in self.tainted_guids:
                yield Sweep(self.queue, guid)
            raise

    def _queue_up(self, deadline: Deadline) -> Machine[Place]:
        requests = self.requests
        while True:
            if self.lost or self.node is None:
                yield from self._forget_node()
                self.lost = False
                yield from requests.await_connection(deadline)
                place = yield from self._create(deadline)
            own = parse(place_name(place))
            assert own is not None
            entries = yield from self._listing(own, deadline)
            mine = next((i for i, e in enumerate(entries) if e.name == own.name), None)
            if mine is None:  # our node is gone (session expired, or removed by hand)
                self.node = None
                continue
            blocker = self.kind.rule(entries[:mine])
            if blocker is None:
                return place
            blocker_path = f"{self.queue}/{blocker.name}"
            yield Forget()
            if (yield from requests.exists(blocker_path, deadline, watch=WATCH)) is None:
                continue  # it went away between the listing and the watch
            event = yield from requests.wait(deadline, f"waiting for {blocker.name}")
            if handed_over(event, blocker_path, blocker) and not self.lost:
                return place

    def _listing(self, own: Entry, deadline: Deadline) -> Machine[list[Entry]]:
        """The queue in order, without late duplicates of our own node (deleted on sight)."""
        everything = ordered((yield from self.requests.get_children(self.queue, deadline)), keep_duplicates=True)
        for twin in [e for e in everything if e.guid == own.guid and e.name != own.name]:
            yield from self.requests.delete(f"{self.queue}/{twin.name}", deadline)  # a late duplicate of ours
        entries = ordered([e.name for e in everything if e.guid != own.guid or e.name == own.name])
        warn_strangers(f"{self.requests.session.chroot}{self.queue}", entries)
        return entries

    def _create(self, deadline: Deadline) -> Machine[Place]:
        naming = self.naming
        place = yield from protected_create(
            self.requests, self.queue, naming.prefixes[self.kind.name], deadline, self.acl, guid=naming.guid()
        )
        self.node = place.path
        if place.tainted:
            own = parse(place_name(place))
            assert own is not None
            self.tainted_guids.append(own.guid)
        return place

    def _forget_node(self) -> Machine[None]:
        node, self.node = self.node, None
        if node is not None:
            yield Release(node, CLEANUP_WAIT)


def protected_create(
    requests: Requests,
    parent: str,
    pattern: str,
    deadline: Deadline,
    acl: list[ACL] | None,
    value: bytes = b"",
    guid: str | None = None,
) -> Machine[Place]:
    """Create an ephemeral-sequential child ``parent/pattern`` (``{guid}`` is filled with
    ``guid``, a fresh hex GUID by default) and survive a lost reply: after a connection loss,
    look for the GUID among the children and adopt the node only if our current session owns it."""
    guid = guid or uuid.uuid4().hex
    prefix = f"{parent}/{pattern.replace('{guid}', guid)}"
    tainted = False
    while True:
        try:
            try:
                created = yield from requests.create(
                    prefix, deadline, value=value, acl=acl, ephemeral=True, sequence=True, retry=False
                )
                assert created is not None  # sequential creates never collide
                return Place(created[0], created[1], tainted)
            except ConnectionLost:
                tainted = True
            yield from requests.await_connection(deadline)
            found = yield from find_own(requests, parent, guid, deadline)
        except BaseException as exc:
            # The create may have landed, or may still land: a request left without an answer
            # (a deadline passed, the connection went with it, the caller was cancelled) stays
            # with kazoo, and it can reach the server after we gave up.  Answered, the driver
            # deletes what it made; unanswered, it would leave a node of our live session
            # blocking the queue until the session ends.  So whatever carries our GUID goes,
            # now and once the old connection can deliver nothing more.  (A refusal, such as
            # AccessDenied, is the server's answer: nothing was made.)
            if _unanswered(exc):
                yield Sweep(parent, guid)
            raise
        if found is not None:
            found.tainted = True
            return found


def _unanswered(exc: BaseException) -> bool:
    """Might the create behind ``exc`` have landed without our knowing?"""
    if isinstance(exc, SessionExpired):
        return False  # the session's end removes its ephemeral nodes
    return isinstance(exc, (Timeout, ConnectionLost)) or not isinstance(exc, ZkSyncError)


def find_own(requests: Requests, parent: str, guid: str, deadline: Deadline) -> Machine[Place | None]:
    owner = requests.session.session_id
    for name in (yield from requests.get_children(parent, deadline, missing_ok=True)):
        if guid not in name:
            continue
        path = f"{parent}/{name}"
        stat = yield from requests.exists(path, deadline)
        if stat is not None and stat.ephemeralOwner == owner:
            return Place(path, stat)
        if stat is not None:  # made by a session that is no longer ours: never adopt it
            yield from requests.delete(path, deadline)
    return None


def handed_over(event: WatchedEvent | None, blocker_path: str, blocker: Entry) -> bool:
    """Did ``event`` say that ``blocker`` left as an exclusive holder (see the module doc)?"""
    return (
        event is not None
        and event.type == EventType.CHANGED
        and event.path == blocker_path
        and is_exclusive(blocker.kind)
        and not blocker.stranger
    )


def place_name(place: Place) -> str:
    return place.path.rsplit("/", 1)[1]
