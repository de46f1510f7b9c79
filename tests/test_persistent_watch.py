"""Persistent and persistent-recursive watches (zksync._watches) on the real ensemble.

Scenarios marked with the ``mode`` fixture run twice: on addWatch, and on the one-shot fallback
that a server without addWatch gets (forced here by answering addWatch as unimplemented, as a
server before 3.6 does).  The owner must not be able to tell the two apart.  The first tests
need no server: the wire format and the routing of notifications.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from kazoo.client import KazooClient
from kazoo.exceptions import NoAuthError, NoNodeError, UnimplementedError
from kazoo.protocol.states import Callback, EventType, WatchedEvent, ZnodeStat
from kazoo.security import make_digest_acl

import zksync
from zksync import AccessDenied, ConnectionLost, InvalidArgument, InvalidState, SessionExpired, Timeout, ZkSyncError
from zksync._watches import (
    ONE_SHOT,
    PERSISTENT,
    AddWatch,
    PersistentWatch,
    RemoveWatches,
    _Entry,
    _Key,
    _router_for,
    _transitions,
    add_watch,
    ancestors,
    parse_notification,
    server_path,
)
from zksync.testing.timing import scaled
from zksync.testing.toxi import ProxiedEnsemble

from .conftest import RequestCounter, WatchCounter, close_session_of, wait_until
from .test_client_gc import collected, holders, used_and_dropped

Factory = Callable[..., KazooClient]
CREATED, DELETED, CHANGED, CHILD = EventType.CREATED, EventType.DELETED, EventType.CHANGED, EventType.CHILD


# ---- helpers --------------------------------------------------------------------------------
class Owner:
    """What an owner sees: every event as (type, path), the resyncs and the losses, in order,
    and the threads the callbacks ran on."""

    def __init__(self) -> None:
        self.events: list[tuple[str, str]] = []
        self.resyncs = 0
        self.lost: list[ZkSyncError] = []
        self.threads: set[threading.Thread] = set()
        self._lock = threading.Lock()

    def event(self, event: WatchedEvent) -> None:
        with self._lock:
            self.events.append((event.type, event.path))
            self.threads.add(threading.current_thread())

    def resync(self) -> None:
        with self._lock:
            self.resyncs += 1
            self.threads.add(threading.current_thread())

    def on_lost(self, error: ZkSyncError) -> None:
        with self._lock:
            self.lost.append(error)
            self.threads.add(threading.current_thread())

    def watch(self, client: KazooClient, path: str, recursive: bool = True) -> PersistentWatch:
        return add_watch(
            client,
            path,
            self.event,
            recursive=recursive,
            on_resync=self.resync,
            on_lost=self.on_lost,
            timeout=scaled(10),
        )

    def wait_for(self, count: int, what: str = "") -> list[tuple[str, str]]:
        wait_until(lambda: len(self.events) >= count, 10, what or f"{count} events")
        return list(self.events)


class Sent:
    """The requests a client sends, as objects (``RequestCounter`` keeps only their names)."""

    def __init__(self, client: KazooClient) -> None:
        self.requests: list[Any] = []
        self.sessions: list[int | None] = []  # the session each was sent in
        original = client._call

        def recording(request: Any, async_object: Any) -> Any:
            self.requests.append(request)
            self.sessions.append(client.client_id[0] if client.client_id else None)
            return original(request, async_object)

        client._call = recording

    def of(self, kind: type) -> list[Any]:
        return [r for r in self.requests if isinstance(r, kind)]


def answer_add_watch_with(client: KazooClient, error: Callable[[], Exception]) -> None:
    """From now on, every addWatch of ``client`` is answered with ``error()``, as a server
    would (UnimplementedError: a server before 3.6)."""
    original = client._call

    def call(request: Any, async_object: Any) -> Any:
        if isinstance(request, AddWatch):
            async_object.set_exception(error())
            return None
        return original(request, async_object)

    client._call = call


@pytest.fixture(params=[PERSISTENT, ONE_SHOT])
def mode(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def watcher_of(mode: str, zk_client_factory: Factory) -> Callable[..., KazooClient]:
    """``watcher_of(**options)``: a client whose watches are of ``mode``."""

    def make(**options: Any) -> KazooClient:
        client = zk_client_factory(**options)
        if mode == ONE_SHOT:
            answer_add_watch_with(client, UnimplementedError)
        return client

    return make


def marker(watcher: KazooClient, writer: KazooClient, path: str = "/marker") -> None:
    """Return once ``watcher`` has received every notification the server sent it before now:
    notifications come in order, so once a one-shot watch set now on ``path`` has fired, the
    earlier ones are in."""
    fired = threading.Event()
    watcher.exists(path, watch=lambda event: fired.set())
    writer.create(path)
    assert fired.wait(scaled(10)), "the marker's watch did not fire"
    writer.delete(path)


def removal_done(watcher: KazooClient, sent: Sent) -> None:
    """Return once the server has handled the removal ``remove()`` started: removeWatches by the
    persistent kind, then by "any" where the server did not know the kind (before 3.9).  The
    requests of a client are handled in order: a read sent after them returns after them."""
    router = _router_for(watcher)
    wait_until(
        lambda: router.exact_removal or (router.exact_removal is False and len(sent.of(RemoveWatches)) >= 2),
        10,
        "the removal answered",
    )
    watcher.exists("/")


def read_tree(client: KazooClient, path: str) -> dict[str, bytes]:
    """path -> data of ``path`` and every node below it ({} when there is none)."""
    try:
        data, _ = client.get(path)
        children = client.get_children(path)
    except NoNodeError:
        return {}
    found = {path: data}
    for child in children:
        found.update(read_tree(client, f"{path.rstrip('/')}/{child}"))
    return found


class Mirror:
    """A tiny owner of a recursive watch: a copy of the data below ``root``, read again where an
    event points, and entirely after a resync.  Its callbacks only take note; ``catch_up()``
    (on the test's thread) does the reading."""

    def __init__(self, client: KazooClient, root: str) -> None:
        self.client = client
        self.root = root
        self.data: dict[str, bytes] = {}
        self.owner = Owner()
        self._lock = threading.Lock()
        self._dirty: set[str] = set()
        self._everything = True
        self.watch = add_watch(
            client, root, self._event, on_resync=self._resync, on_lost=self.owner.on_lost, timeout=scaled(10)
        )
        self.catch_up()

    def _event(self, event: WatchedEvent) -> None:
        self.owner.event(event)
        with self._lock:
            self._dirty.add(event.path)

    def _resync(self) -> None:
        self.owner.resync()
        with self._lock:
            self._everything = True

    def catch_up(self) -> dict[str, bytes]:
        with self._lock:
            everything, dirty = self._everything, set(self._dirty)
            self._everything = False
            self._dirty.clear()
        if everything:
            self.data = read_tree(self.client, self.root)
        for path in sorted(dirty):
            try:
                self.data[path] = self.client.get(path)[0]
            except NoNodeError:
                self.data.pop(path, None)
        return dict(self.data)


def through(factory: Factory, faults: ProxiedEnsemble, *members: int, timeout: float = 8) -> KazooClient:
    return factory(hosts=faults.hosts_of(*members), timeout=scaled(timeout), randomize_hosts=False)


# ---- no server: the wire and the routing ----------------------------------------------------
def test_add_watch_and_remove_watches_are_written_as_zookeeper_reads_them() -> None:
    add = AddWatch("/a/b", 1)
    assert add.type == 106 and add.serialize() == b"\x00\x00\x00\x04/a/b\x00\x00\x00\x01"
    assert AddWatch("/é", 0).serialize() == b"\x00\x00\x00\x03/\xc3\xa9\x00\x00\x00\x00"
    remove = RemoveWatches("/a", 5)
    assert remove.type == 18 and remove.serialize() == b"\x00\x00\x00\x02/a\x00\x00\x00\x05"
    # kazoo registers a request's ``watcher`` as a one-shot watcher: ours have none
    assert getattr(add, "watcher", None) is None and getattr(remove, "watcher", None) is None
    assert AddWatch.deserialize(b"\x00\x00\x00\x00", 0) is True


def test_a_notification_is_read_as_its_type_and_path() -> None:
    body = b"\x00\x00\x00\x03\x00\x00\x00\x03\x00\x00\x00\x06/c/a/b"
    assert parse_notification(b"\xff" * 16 + body, 16) == (3, "/c/a/b")
    with pytest.raises(ValueError):
        parse_notification(body[:-1], 0)  # a path cut short


def test_the_paths_above_a_node_and_a_chroot_s_names() -> None:
    assert list(ancestors("/a/b/c")) == ["/a/b/c", "/a/b", "/a", "/"]
    assert list(ancestors("/")) == ["/"]
    assert server_path("", "/a") == "/a" and server_path("/c", "/a") == "/c/a" and server_path("/c", "/") == "/c"


def test_a_node_s_stats_tell_its_events() -> None:
    def stat(czxid: int, mzxid: int) -> ZnodeStat:
        return ZnodeStat(czxid, mzxid, 0, 0, 0, 0, 0, 0, 0, 0, 0)

    assert _transitions(None, None) == []
    assert _transitions(None, stat(1, 1)) == [CREATED]
    assert _transitions(stat(1, 1), None) == [DELETED]
    assert _transitions(stat(1, 1), stat(1, 1)) == []
    assert _transitions(stat(1, 1), stat(1, 5)) == [CHANGED]
    assert _transitions(stat(1, 5), stat(7, 7)) == [DELETED, CREATED]  # deleted and made again


@pytest.fixture
def idle_client() -> Iterator[KazooClient]:
    """A client that never connects, its event thread running (to see what the router hands it)."""
    client = KazooClient(hosts="127.0.0.1:1/c")
    client.handler.start()
    client._stopped.clear()  # as if started: notifications of a stopped client are dropped
    yield client
    client.handler.stop()


def test_a_notification_reaches_exactly_the_watches_it_concerns(idle_client: KazooClient) -> None:
    router = _router_for(idle_client)
    owners: dict[str, Owner] = {}
    for name, path, recursive in [
        ("tree", "/a", True),
        ("node", "/a/b", False),
        ("sibling", "/ab", True),
        ("root", "/", True),
    ]:
        owners[name] = Owner()
        watch = PersistentWatch(router, path, recursive, owners[name].event, None, None)
        router.entries.setdefault(watch.key, _Entry()).watches.append(watch)
    assert _Key("/c/a", True) in router.entries and _Key("/c", True) in router.entries  # the server's names
    for kind, path in [(1, "/c/a/b/c"), (3, "/c/a/b"), (4, "/c/a/b"), (4, "/c/a"), (2, "/c/ab"), (3, "/c")]:
        router.route(kind, path)
    router.route(3, "/elsewhere")  # outside the chroot: nobody's
    router.route(-1, "/c/a")  # a state event: not a node's
    expected = {
        "tree": [(CREATED, "/a/b/c"), (CHANGED, "/a/b")],
        "node": [(CHANGED, "/a/b"), (CHILD, "/a/b")],
        "sibling": [(DELETED, "/ab")],
        "root": [(CREATED, "/a/b/c"), (CHANGED, "/a/b"), (DELETED, "/ab"), (CHANGED, "/")],
    }
    drained = threading.Event()  # the event thread runs its queue in order: after this, nothing more
    idle_client.handler.dispatch_callback(Callback("watch", drained.set, ()))
    assert drained.wait(scaled(5))
    assert {name: owner.events for name, owner in owners.items()} == expected


# ---- on the ensemble ------------------------------------------------------------------------
def test_a_recursive_watch_reports_every_change_at_every_depth_in_zxid_order_with_one_request(
    zk_client_factory: Factory, zk_client: KazooClient
) -> None:
    watcher, writer = zk_client_factory(), zk_client
    requests, notifications = RequestCounter(watcher), WatchCounter(watcher)
    owner = Owner()
    watch = owner.watch(watcher, "/tree")
    assert watch.mode == PERSISTENT and watch.active
    assert requests.calls == ["AddWatch"]
    changes: list[tuple[str, str, int]] = []  # what the owner must see, and the change's zxid

    def create(path: str) -> None:
        _, stat = writer.create(path, b"new", include_data=True)
        changes.append((CREATED, path, stat.czxid))

    create("/tree")
    create("/tree/a")
    create("/tree/a/b")
    create("/tree/a/b/c")
    changes.append((CHANGED, "/tree/a/b", writer.set("/tree/a/b", b"1").mzxid))
    changes.append((CHANGED, "/tree", writer.set("/tree", b"1").mzxid))
    writer.create("/treehouse")  # a sibling whose name starts alike, and a node elsewhere: not reported
    writer.create("/other")
    writer.set("/other", b"1")
    for path in ("/tree/a/b/c", "/tree/a/b"):
        writer.delete(path)
        changes.append((DELETED, path, writer.last_zxid))
    create("/tree/end")  # last: once it is in, every earlier event is
    assert owner.wait_for(len(changes)) == [(kind, path) for kind, path, _ in changes]
    zxids = [zxid for *_, zxid in changes]
    assert zxids == sorted(set(zxids)), "the changes were not made one after another"
    assert requests.calls == ["AddWatch"]  # nothing was read or set again for any event
    assert notifications.count == len(changes)  # one notification per change
    assert owner.resyncs == 0 and owner.lost == []


def test_a_plain_persistent_watch_reports_its_node_and_its_children_but_nothing_deeper(
    watcher_of: Callable[..., KazooClient], zk_client: KazooClient, mode: str
) -> None:
    watcher, writer = watcher_of(), zk_client
    owner = Owner()
    watch = owner.watch(watcher, "/node", recursive=False)
    assert watch.mode == mode
    steps: list[tuple[Callable[[], Any], tuple[str, str] | None]] = [
        (lambda: writer.create("/node"), (CREATED, "/node")),
        (lambda: writer.set("/node", b"1"), (CHANGED, "/node")),
        (lambda: writer.create("/node/kid"), (CHILD, "/node")),
        (lambda: writer.set("/node/kid", b"1"), None),  # a child's data: not the node's
        (lambda: writer.create("/node/kid/grandchild"), None),
        (lambda: writer.create("/node2"), None),
        (lambda: writer.delete("/node/kid/grandchild"), None),
        (lambda: writer.delete("/node/kid"), (CHILD, "/node")),
        (lambda: writer.delete("/node"), (DELETED, "/node")),
        (lambda: writer.create("/node"), (CREATED, "/node")),  # last: once it is in, every earlier one is
    ]
    expected: list[tuple[str, str]] = []
    for do, event in steps:
        do()
        if event is not None:
            expected.append(event)
            owner.wait_for(len(expected), f"{event} after {len(expected) - 1} events")  # one step at a time
    assert owner.events == expected
    assert owner.resyncs == 0 and owner.lost == []


def test_step_by_step_a_recursive_watch_reports_the_same_in_both_modes(
    watcher_of: Callable[..., KazooClient], zk_client: KazooClient, mode: str
) -> None:
    watcher, writer = watcher_of(), zk_client
    requests = RequestCounter(watcher)
    owner = Owner()
    watch = owner.watch(watcher, "/tree")
    assert watch.mode == mode
    setting = len(requests.calls)  # one addWatch, or the reads that set the one-shot watches
    steps: list[tuple[Callable[[], Any], tuple[str, str]]] = [
        (lambda: writer.create("/tree"), (CREATED, "/tree")),
        (lambda: writer.create("/tree/a"), (CREATED, "/tree/a")),
        (lambda: writer.create("/tree/a/b"), (CREATED, "/tree/a/b")),
        (lambda: writer.set("/tree/a/b", b"1"), (CHANGED, "/tree/a/b")),
        (lambda: writer.set("/tree", b"1"), (CHANGED, "/tree")),
        (lambda: writer.delete("/tree/a/b"), (DELETED, "/tree/a/b")),
        (lambda: writer.create("/tree/a/b", b"again"), (CREATED, "/tree/a/b")),
        (lambda: writer.set("/tree/a/b", b"2"), (CHANGED, "/tree/a/b")),
        (lambda: writer.delete("/tree/a/b"), (DELETED, "/tree/a/b")),
        (lambda: writer.delete("/tree/a"), (DELETED, "/tree/a")),
        (lambda: writer.delete("/tree"), (DELETED, "/tree")),
        (lambda: writer.create("/tree"), (CREATED, "/tree")),
    ]
    for number, (do, event) in enumerate(steps, 1):
        do()
        assert owner.wait_for(number, f"{event}")[-1] == event
    assert owner.events == [event for _, event in steps]
    if mode == PERSISTENT:
        assert (setting, len(requests.calls)) == (1, 1)  # no request for any event
    else:  # addWatch asked once, refused; then reads only, each setting a one-shot watch again
        assert requests.calls[0] == "AddWatch" and set(requests.calls[1:]) == {"Exists", "GetChildren"}
    assert owner.resyncs == 0 and owner.lost == []


def test_kazoo_one_shot_watches_on_the_same_paths_still_fire_once_each_and_the_watch_goes_on(
    zk_client_factory: Factory, zk_client: KazooClient
) -> None:
    watcher, writer = zk_client_factory(), zk_client
    writer.create("/tree/a", makepath=True)
    sent = Sent(watcher)
    owner = Owner()
    owner.watch(watcher, "/tree")
    fired: dict[str, list[tuple[str, str]]] = {}
    threads: set[threading.Thread] = set()

    def one_shot(name: str) -> Callable[[WatchedEvent], None]:
        fired[name] = []

        def record(event: WatchedEvent) -> None:
            fired[name].append((event.type, event.path))
            threads.add(threading.current_thread())

        return record

    watcher.exists("/tree", watch=one_shot("exists /tree"))  # exactly the watched path
    watcher.get("/tree/a", watch=one_shot("get /tree/a"))
    watcher.get_children("/tree/a", watch=one_shot("children /tree/a"))
    watcher.exists("/tree/a/b", watch=one_shot("exists /tree/a/b"))
    for new_child in ("/tree/a/b", "/tree/a/c"):  # the second round fires none of them again
        writer.set("/tree", b"1")
        writer.create(new_child)
        writer.set("/tree/a", b"1")
    writer.create("/tree/end")
    events = owner.wait_for(7)
    assert events == [
        (CHANGED, "/tree"),
        (CREATED, "/tree/a/b"),
        (CHANGED, "/tree/a"),
        (CHANGED, "/tree"),
        (CREATED, "/tree/a/c"),
        (CHANGED, "/tree/a"),
        (CREATED, "/tree/end"),
    ]
    assert fired == {
        "exists /tree": [(CHANGED, "/tree")],
        "get /tree/a": [(CHANGED, "/tree/a")],
        "children /tree/a": [(CHILD, "/tree/a")],
        "exists /tree/a/b": [(CREATED, "/tree/a/b")],
    }
    assert threads == owner.threads and len(threads) == 1  # all on kazoo's event thread
    assert threading.current_thread() not in threads
    # the one-shot watch on exactly the watched path was followed by addWatch again, and a resync
    assert [r.path for r in sent.of(AddWatch)] == [f"{watcher.chroot}/tree"] * 2
    wait_until(lambda: owner.resyncs == 1, what="the owner told to read again")


def test_owners_of_one_path_share_one_server_watch_and_the_last_one_out_removes_it(
    zk_client_factory: Factory, zk_client: KazooClient
) -> None:
    watcher, writer = zk_client_factory(), zk_client
    sent, notifications = Sent(watcher), WatchCounter(watcher)
    first, second = Owner(), Owner()
    first_watch, second_watch = first.watch(watcher, "/tree"), second.watch(watcher, "/tree")
    assert len(sent.of(AddWatch)) == 1
    writer.create("/tree")
    assert first.wait_for(1) == [(CREATED, "/tree")] and second.wait_for(1) == [(CREATED, "/tree")]
    first_watch.remove()
    assert not first_watch.active and second_watch.active
    assert sent.of(RemoveWatches) == []  # the second owner still uses it
    writer.set("/tree", b"1")
    assert second.wait_for(2)[-1] == (CHANGED, "/tree")
    second_watch.remove()
    second_watch.remove()  # idempotent
    first_watch.remove()
    removal_done(watcher, sent)
    writer.set("/tree", b"2")  # no watch left at the server
    marker(watcher, writer)
    assert notifications.count == 3  # CREATED, CHANGED, and the marker's
    assert first.events == [(CREATED, "/tree")] and second.events == [(CREATED, "/tree"), (CHANGED, "/tree")]
    # removal by the persistent kind (ZooKeeper 3.9+), else by "any" (before, refused as unknown)
    kinds = [r.watcher_type for r in sent.of(RemoveWatches)]
    assert kinds in ([5], [5, 3]), kinds
    assert _router_for(watcher).exact_removal is (kinds == [5])


def test_removing_a_watch_stops_its_events(
    watcher_of: Callable[..., KazooClient], zk_client: KazooClient, mode: str
) -> None:
    watcher, writer = watcher_of(), zk_client
    writer.create("/tree/a", makepath=True)
    sent, notifications = Sent(watcher), WatchCounter(watcher)
    owner = Owner()
    watch = owner.watch(watcher, "/tree")
    writer.set("/tree/a", b"1")
    owner.wait_for(1)
    watch.remove()  # no event after this, even one the server sends before it hears of it
    assert not watch.active and watch.error is None
    for value in (b"2", b"3"):
        writer.set("/tree/a", value)
    writer.create("/tree/b")
    marker(watcher, writer)  # whatever the server still sent is in by now
    assert owner.events == [(CHANGED, "/tree/a")] and owner.resyncs == 0 and owner.lost == []
    if mode == PERSISTENT:
        assert {r.path for r in sent.of(RemoveWatches)} == {f"{watcher.chroot}/tree"}
        removal_done(watcher, sent)
        before = notifications.count
        writer.set("/tree/a", b"4")
        marker(watcher, writer)
        assert notifications.count == before + 1  # the marker's only: the server watches no more
    else:
        assert sent.of(RemoveWatches) == []  # one-shot watches are left to fire once, ignored
    watch.remove()


def test_a_recursive_watch_on_the_chroot_sees_all_of_it_and_nothing_outside(
    zk_client_factory: Factory, zk_client: KazooClient, zk_hosts: str, zk_chroot: str
) -> None:
    watcher = zk_client_factory()
    owner = Owner()
    owner.watch(watcher, "/")
    outside = KazooClient(hosts=zk_hosts, timeout=scaled(10))  # no chroot
    outside.start(timeout=scaled(15))
    try:
        sibling = f"{zk_chroot}-sibling"  # the chroot's name is a prefix of its name
        outside.create(sibling)
        outside.create(f"{zk_chroot}/a")
        outside.set(sibling, b"1")
        zk_client.set("/a", b"1")
        outside.delete(sibling)
        zk_client.delete("/a")
        zk_client.set("/", b"1")
    finally:
        outside.stop()
        outside.close()
    assert owner.wait_for(4) == [(CREATED, "/a"), (CHANGED, "/a"), (DELETED, "/a"), (CHANGED, "/")]


def test_a_partition_shorter_than_the_session_sets_the_watch_again_and_the_owner_reads_what_changed(
    watcher_of: Callable[..., KazooClient], zk_client: KazooClient, zk_faults: ProxiedEnsemble, mode: str
) -> None:
    writer = zk_client
    writer.create("/tree/a", b"before", makepath=True)
    watcher = watcher_of(hosts=zk_faults.hosts_of(1), timeout=scaled(10), randomize_hosts=False)
    session = watcher.client_id[0]
    sent = Sent(watcher)
    mirror = Mirror(watcher, "/tree")
    other = Owner()
    other_watch = other.watch(watcher, "/other")  # removed while cut off: not set again
    assert mirror.data == {"/tree": b"", "/tree/a": b"before"}
    states: list[str] = []
    watcher.add_listener(states.append)
    zk_faults.partition(1)
    wait_until(lambda: "SUSPENDED" in states, 20, "the watcher cut off")
    writer.set("/tree/a", b"during")  # while nobody can tell the watcher
    writer.create("/tree/b", b"new")
    writer.create("/other")
    other_watch.remove()
    added = len(sent.of(AddWatch))
    zk_faults.heal()
    wait_until(lambda: mirror.owner.resyncs == 1, 20, "the owner told to read again")
    assert watcher.client_id[0] == session  # the same session, on a new connection
    assert mirror.owner.events == []  # a change made while disconnected comes as no event ...
    truth = read_tree(writer, "/tree")
    assert mirror.catch_up() == truth == {"/tree": b"", "/tree/a": b"during", "/tree/b": b"new"}  # ... but is read
    writer.set("/tree/b", b"after")  # the watch is set again: changes come as events again
    assert mirror.owner.wait_for(1) == [(CHANGED, "/tree/b")]
    assert mirror.catch_up() == read_tree(writer, "/tree")
    if mode == PERSISTENT:
        assert [r.path for r in sent.of(AddWatch)[added:]] == [f"{watcher.chroot}/tree"]
    assert other.events == [] and other.resyncs == 0 and mirror.owner.lost == []


def test_session_expiry_tells_the_owner_once_and_ends_the_watch(
    watcher_of: Callable[..., KazooClient], zk_client: KazooClient, zk_hosts: str, zk_chroot: str, mode: str
) -> None:
    watcher, writer = watcher_of(), zk_client
    owner = Owner()
    watch = owner.watch(watcher, "/tree")
    writer.create("/tree")
    owner.wait_for(1)
    session = watcher.client_id[0]
    sent = Sent(watcher)
    close_session_of(watcher, f"{zk_hosts}{zk_chroot}")  # (the watcher may reconnect to it once first)
    wait_until(lambda: owner.lost, 20, "the owner told of the loss")
    (error,) = owner.lost
    assert isinstance(error, SessionExpired) and watch.error is error and not watch.active
    wait_until(lambda: watcher.connected, 20, "kazoo's new session")
    assert watcher.client_id[0] != session
    writer.set("/tree", b"1")
    marker(watcher, writer)
    assert owner.events == [(CREATED, "/tree")] and owner.lost == [error]
    sessions = {at for request, at in zip(sent.requests, sent.sessions) if isinstance(request, AddWatch)}
    assert sessions <= {session}  # never set again on the new session
    watch.remove()  # a watch already gone: nothing to do, nothing raised


def test_stopping_the_client_ends_the_watch_without_a_call(zk_client_factory: Factory) -> None:
    watcher = zk_client_factory()
    owner = Owner()
    watch = owner.watch(watcher, "/tree")
    watcher.stop()
    wait_until(lambda: not watch.active, 10, "the watch ended")
    assert watch.error is None and owner.lost == [] and owner.events == []
    watch.remove()


BAD_ARGUMENTS: list[tuple[str, dict[str, Any]]] = [
    ("relative path", {"path": "tree"}),
    ("trailing slash", {"path": "/tree/"}),
    ("empty segment", {"path": "/a//b"}),
    ("bytes path", {"path": b"/tree"}),
    ("no path", {"path": None}),
    ("callback not callable", {"callback": "print"}),
    ("on_resync not callable", {"on_resync": 1}),
    ("on_lost not callable", {"on_lost": object()}),
    ("recursive not a bool", {"recursive": 1}),
    ("negative timeout", {"timeout": -1}),
    ("timeout not a number", {"timeout": "10"}),
]


@pytest.mark.parametrize("arguments", [a for _, a in BAD_ARGUMENTS], ids=[name for name, _ in BAD_ARGUMENTS])
def test_bad_arguments_are_refused_before_anything_is_sent(zk_client: KazooClient, arguments: dict[str, Any]) -> None:
    requests = RequestCounter(zk_client)
    given: dict[str, Any] = {"path": "/tree", "callback": lambda event: None, **arguments}
    with pytest.raises(InvalidArgument):
        add_watch(zk_client, given.pop("path"), given.pop("callback"), **given)
    assert requests.calls == [] and not hasattr(zk_client, "_zksync_watch_router")


def test_a_client_that_is_not_a_started_kazoo_client_is_refused(zk_client_factory: Factory) -> None:
    with pytest.raises(InvalidArgument):
        add_watch(object(), "/tree", lambda event: None)
    stopped = zk_client_factory()
    stopped.stop()
    with pytest.raises(InvalidArgument, match="not started"):
        add_watch(stopped, "/tree", lambda event: None)


def test_a_plain_and_a_recursive_watch_on_one_path_of_one_client_are_refused(zk_client: KazooClient) -> None:
    requests = RequestCounter(zk_client)
    watch = add_watch(zk_client, "/tree", lambda event: None, recursive=True)
    with pytest.raises(InvalidState, match="one kind per path"):
        add_watch(zk_client, "/tree", lambda event: None, recursive=False)
    assert requests.calls == ["AddWatch"]
    plain = add_watch(zk_client, "/tree/a", lambda event: None, recursive=False)  # another path: fine
    watch.remove()
    plain.remove()


def test_a_refused_add_watch_raises_the_zksync_error_and_leaves_nothing(zk_client: KazooClient) -> None:
    answer_add_watch_with(zk_client, NoAuthError)
    with pytest.raises(AccessDenied):
        add_watch(zk_client, "/tree", lambda event: None)
    assert _router_for(zk_client).entries == {}


def test_a_refused_read_of_the_one_shot_fallback_raises_access_denied(
    zk_client_factory: Factory, zk_client: KazooClient
) -> None:
    owner_client = zk_client_factory(auth_data=[("digest", "alice:secret")])
    owner_client.create("/secret", acl=[make_digest_acl("alice", "secret", all=True)])
    answer_add_watch_with(zk_client, UnimplementedError)
    with pytest.raises(AccessDenied):
        add_watch(zk_client, "/secret", lambda event: None)  # its children cannot be read
    assert _router_for(zk_client).one_shots == set()


def test_a_watch_that_cannot_be_set_again_after_a_reconnect_ends_with_the_error(
    zk_client_factory: Factory, zk_faults: ProxiedEnsemble
) -> None:
    watcher = through(zk_client_factory, zk_faults, 1)
    owner = Owner()
    watch = owner.watch(watcher, "/tree")
    answer_add_watch_with(watcher, NoAuthError)  # say the path's ACL changed meanwhile (3.9.2+ checks it)
    states: list[str] = []
    watcher.add_listener(states.append)
    zk_faults.reset(1)
    wait_until(lambda: "SUSPENDED" in states, 20, "the connection dropped")
    zk_faults.heal()
    wait_until(lambda: owner.lost, 20, "the owner told")
    assert isinstance(owner.lost[0], AccessDenied) and watch.error is owner.lost[0] and not watch.active
    assert owner.resyncs == 0


def test_a_watch_that_cannot_be_set_in_time_raises_and_leaves_nothing(
    zk_client_factory: Factory, zk_faults: ProxiedEnsemble
) -> None:
    watcher = through(zk_client_factory, zk_faults, 1)
    sent = Sent(watcher)
    zk_faults.partition(1)
    with pytest.raises((Timeout, ConnectionLost)):
        add_watch(watcher, "/tree", lambda event: None, timeout=scaled(1))
    assert _router_for(watcher).entries == {}
    # the addWatch may still reach the server: its removal is queued behind it
    assert [type(r) for r in sent.requests] == [AddWatch, RemoveWatches]


def test_a_client_with_watches_is_freed_once_stopped_and_dropped(
    zk_hosts: str, zk_chroot: str, zk_session_timeout: float, mode: str
) -> None:
    def make_client() -> KazooClient:
        return zksync.connect(f"{zk_hosts}{zk_chroot}", session_timeout=zk_session_timeout)

    def use(client: KazooClient) -> None:
        if mode == ONE_SHOT:
            answer_add_watch_with(client, UnimplementedError)
        client.ensure_path("/gc/tree/a")
        assert add_watch(client, "/gc/tree", lambda event: None).mode == mode
        add_watch(client, "/gc/tree/a", lambda event: None, recursive=False)  # both left active

    ref = used_and_dropped(make_client, use)
    assert collected(ref, max(5.0, zk_session_timeout)), holders(ref)


def test_a_watch_removed_from_its_own_callback_gets_nothing_more(
    watcher_of: Callable[..., KazooClient], zk_client: KazooClient
) -> None:
    watcher, writer = watcher_of(), zk_client
    events: list[tuple[str, str]] = []
    watches: list[PersistentWatch] = []

    def once(event: WatchedEvent) -> None:
        events.append((event.type, event.path))
        watches[0].remove()  # on kazoo's event thread: must not wait for anything

    watches.append(add_watch(watcher, "/tree", once, timeout=scaled(10)))
    writer.create("/tree")
    writer.create("/tree/a")
    marker(watcher, writer)
    wait_until(lambda: not watches[0].active, what="removed")
    assert events == [(CREATED, "/tree")]
