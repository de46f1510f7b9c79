"""Persistent and persistent-recursive watches on a kazoo client (ZooKeeper's ``addWatch``).

kazoo 2 cannot send ``addWatch`` (opcode 106, ZooKeeper 3.6+).  This module sends it through
kazoo's own request path, routes the notifications to their owner, and keeps the watch across
reconnects::

    watch = add_watch(client, "/app/tree", on_event, recursive=True,
                      on_resync=read_everything_again, on_lost=give_up)
    ...
    watch.remove()

* **Events.** ``on_event(event)`` gets kazoo's :class:`~kazoo.protocol.states.WatchedEvent`, on
  kazoo's event thread, once per notification the server sends.  A recursive watch reports
  CREATED, DELETED and CHANGED for the path and every node below it (never CHILD); a plain one
  reports CREATED, DELETED, CHANGED and CHILD of the path itself.  Events carry no data: the
  owner reads.  An event may come before :func:`add_watch` returns.
* **Reconnects.** The server forgets a connection's watches when it ends, and kazoo sets none
  again.  After every reconnect with the same session the watch is added again, then
  ``on_resync()`` is called: whatever changed in between is only found by reading again.
* **The end.** When the session expires, ``on_lost(error)`` is called with
  :class:`~zksync.SessionExpired` (or the error that stopped the watch from being added again,
  such as :class:`~zksync.AccessDenied`) and the watch is over.  Stopping the client ends every
  watch on it without a call.  ``watch.remove()`` ends it at once: no callback runs after it
  returns, except one already running.
* **Old servers.** A server that answers ``addWatch`` as unimplemented (before 3.6) gets
  one-shot watches with the same interface (``watch.mode == "one-shot"``): each node's exists
  and children watches, set again with a read after every event.  The reads report what
  changed, so changes close together may come as one event, not always in zxid order.

Every callback runs on kazoo's event thread, one at a time, in the order they were queued:
none should block (kazoo's own watch callbacks wait behind it).

Servers before 3.9 (ZOOKEEPER-4466, ZOOKEEPER-4472) keep one watch mode per path and
connection, and remove persistent watches only together with the path's one-shot watches:

* a one-shot watch that kazoo sets on exactly a watched path (``exists``, ``get``,
  ``get_children`` with ``watch=``) turns the persistent watch there into a one-shot one (for a
  recursive watch, only ``exists`` and ``get`` do).  Each such request is followed by
  ``addWatch`` again, then ``on_resync()``: changes in between may have gone unreported.
  Paths below the watched one are not affected;
* a plain and a recursive watch on the same path of one client would replace each other: the
  second is refused (:class:`~zksync.InvalidState`);
* ``remove()`` sends removeWatches for the persistent kind (4 or 5) first; a server that does not
  know it (3.8 answers MarshallingError) gets "any" (3), at once for the client's later
  removals, unless another watch of the client uses the path (kazoo's one-shot watch, which "any" would cancel
  silently, or one of ours added since): then the server's watch is left to end with the
  connection, its notifications ignored.

Owners of one path and kind on one client share one server watch: one ``addWatch``, one
removeWatches when the last owner leaves.  kazoo's private parts used here are pinned by
``tests/test_kazoo_internals.py``.
"""

from __future__ import annotations

import logging
import struct
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import partial
from typing import Any, ClassVar, NamedTuple

from kazoo import exceptions as kz
from kazoo.client import KazooClient
from kazoo.protocol.serialization import GetChildren, GetChildren2
from kazoo.protocol.states import EVENT_TYPE_MAP, Callback, EventType, KazooState, KeeperState, WatchedEvent

from ._session import session_for
from ._util import Deadline, attached, check_path, check_timeout
from .errors import (
    AccessDenied,
    ConnectionLost,
    InvalidArgument,
    InvalidState,
    SessionExpired,
    Timeout,
    ZkSyncError,
    translate,
)

__all__ = ["ONE_SHOT", "PERSISTENT", "PersistentWatch", "add_watch"]

log = logging.getLogger("zksync.watches")

RECIPE = "watch"
PERSISTENT = "persistent"
ONE_SHOT = "one-shot"

EventCallback = Callable[[WatchedEvent], None]
ResyncCallback = Callable[[], None]
LostCallback = Callable[[ZkSyncError], None]

# ---- the wire -------------------------------------------------------------------------------
ADD_WATCH = 106
REMOVE_WATCHES = 18
MODE_PERSISTENT = 0
MODE_PERSISTENT_RECURSIVE = 1
WATCHER_ANY = 3
WATCHER_PERSISTENT = 4
WATCHER_PERSISTENT_RECURSIVE = 5
CHILD_EVENT = 4

_INT = struct.Struct("!i")
_TWO_INTS = struct.Struct("!ii")
_CONNECTION_ERRORS = (kz.ConnectionLoss, kz.SessionExpiredError, kz.ConnectionClosedError)


def _ustring(text: str) -> bytes:
    data = text.encode("utf-8")
    return _INT.pack(len(data)) + data


@dataclass(frozen=True)
class AddWatch:
    """The addWatch request, in the shape kazoo's connection sends and answers its own: a
    ``type`` (the opcode), ``serialize()`` and ``deserialize()``, and no ``watcher`` (kazoo
    would register it as a one-shot watcher)."""

    path: str  # the server's path (the chroot included)
    mode: int
    type: ClassVar[int] = ADD_WATCH

    def serialize(self) -> bytes:
        return _ustring(self.path) + _INT.pack(self.mode)

    @classmethod
    def deserialize(cls, buffer: Any, offset: int) -> bool:
        return True  # the body (an error code, always 0 when the header has none) says nothing more


@dataclass(frozen=True)
class RemoveWatches:
    """The removeWatches request: the path and a watcher type (3 any, 4 persistent, 5
    persistent recursive; 1 and 2 are kazoo's one-shot kinds, never sent here)."""

    path: str
    watcher_type: int
    type: ClassVar[int] = REMOVE_WATCHES

    def serialize(self) -> bytes:
        return _ustring(self.path) + _INT.pack(self.watcher_type)

    @classmethod
    def deserialize(cls, buffer: Any, offset: int) -> bool:
        return True


def parse_notification(buffer: Any, offset: int) -> tuple[int, str]:
    """(event type, server path) of the watch notification at ``offset`` of ``buffer``: the
    type and keeper state (ints) and the path (a length-prefixed UTF-8 string)."""
    kind, _state = _TWO_INTS.unpack_from(buffer, offset)
    offset += _TWO_INTS.size
    (length,) = _INT.unpack_from(buffer, offset)
    offset += _INT.size
    if length < 0 or offset + length > len(buffer):
        raise ValueError("truncated watch notification")
    return kind, bytes(buffer[offset : offset + length]).decode("utf-8")


def ancestors(path: str) -> Iterator[str]:
    """``path`` and every node above it, up to the root: "/a/b", "/a", "/"."""
    while True:
        yield path
        if path == "/":
            return
        path = path.rsplit("/", 1)[0] or "/"


def server_path(chroot: str, path: str) -> str:
    """The server's name for ``path`` of a client chrooted at ``chroot`` ("" for none)."""
    if not chroot:
        return path
    return chroot if path == "/" else chroot + path


def child_path(parent: str, name: str) -> str:
    return f"/{name}" if parent == "/" else f"{parent}/{name}"


def _translated(exc: BaseException, path: str) -> ZkSyncError:
    """``exc`` as the zksync error :func:`zksync.errors.translate` makes of it."""
    try:
        with translate(path, RECIPE):
            raise exc
    except ZkSyncError as translated:
        return translated
    except BaseException as other:  # not a kazoo error: name it without losing it
        wrapped = ZkSyncError(f"{type(other).__name__}: {other}", path=path, recipe=RECIPE)
        wrapped.__cause__ = other
        return wrapped


def _outcome(result: Any) -> tuple[Any, BaseException | None]:
    """(value, None) or (None, the exception) of a settled kazoo async result."""
    try:
        return result.get(block=False), None
    except Exception as exc:
        return None, exc


class _Key(NamedTuple):
    path: str  # the server's path
    recursive: bool


# ---- the owner's handle ---------------------------------------------------------------------
class PersistentWatch:
    """One owner's watch on ``path`` (see the module's description).  Made by :func:`add_watch`."""

    def __init__(
        self,
        router: _Router,
        path: str,
        recursive: bool,
        callback: EventCallback,
        on_resync: ResyncCallback | None,
        on_lost: LostCallback | None,
    ) -> None:
        self.path = path
        self.recursive = recursive
        self.mode = PERSISTENT
        self.error: ZkSyncError | None = None  # why it ended, when it did not end by remove()
        self.key = _Key(server_path(router.client.chroot or "", path), recursive)
        self._router = router
        self._client = router.client
        self._callback = callback
        self._on_resync = on_resync
        self._on_lost = on_lost
        self._armed = router.client.handler.event_object()  # set once first set (or failed)
        self._first = False  # set at the server once: add_watch has returned (or is returning)
        self._failure: ZkSyncError | None = None
        self._active = True
        self._tree: _OneShotTree | None = None

    @property
    def active(self) -> bool:
        """False once removed, or ended by the session's end or an error."""
        return self._active

    def remove(self) -> None:
        """Stop the watch; nothing is called after this returns (except a callback already
        running).  Idempotent; never raises for a watch that is already gone."""
        self._router.remove(self)

    def __enter__(self) -> PersistentWatch:
        return self

    def __exit__(self, *exc: object) -> None:
        self.remove()

    def __repr__(self) -> str:
        state = "active" if self._active else "ended"
        kind = "recursive" if self.recursive else "plain"
        return f"<PersistentWatch {self.path} {kind} {self.mode} {state}>"

    # ---- the router's side ---------------------------------------------------------------
    def _dispatch(self, func: Callable[..., Any], *args: Any) -> None:
        self._client.handler.dispatch_callback(Callback("watch", func, args))

    def _deliver(self, event: WatchedEvent) -> None:
        self._dispatch(self._run, self._callback, event)

    def _resynced(self) -> None:
        if self._on_resync is not None:
            self._dispatch(self._run, self._on_resync)

    def _run(self, func: Callable[..., Any], *args: Any) -> None:
        if not self._active:  # removed or ended after this was queued
            return
        try:
            func(*args)
        except Exception:
            log.exception("a callback of the watch on %s raised", self.path)

    def _run_lost(self, error: ZkSyncError) -> None:
        if self._on_lost is None:
            return
        try:
            self._on_lost(error)
        except Exception:
            log.exception("on_lost of the watch on %s raised", self.path)

    def _end(self, error: ZkSyncError | None) -> None:
        """The watch is over (the router or its tree has forgotten it already)."""
        if not self._active:
            return
        self._active = False
        self.error = error
        if not self._first:  # add_watch is still waiting: it raises
            self._failure = error or SessionExpired("the client was stopped", path=self.path, recipe=RECIPE)
            self._armed.set()
        elif error is not None:
            self._dispatch(self._run_lost, error)

    def _wait_armed(self, deadline: Deadline) -> None:
        remaining = deadline.remaining()
        if not self._armed.wait(remaining):
            if not self._client.connected:
                raise ConnectionLost("no connection to set the watch", path=self.path, recipe=RECIPE)
            raise Timeout("timed out setting the watch", path=self.path, recipe=RECIPE)
        if self._failure is not None:
            raise self._failure

    def _start_one_shot(self) -> None:
        self.mode = ONE_SHOT
        self._tree = _OneShotTree(self)
        if self._client.connected:
            self._tree.start()  # else once connected (the router's listener)


# ---- one client's watches -------------------------------------------------------------------
@dataclass
class _Entry:
    """One watch at the server, and the owners sharing it."""

    watches: list[PersistentWatch] = field(default_factory=list)
    armed: bool = False  # set on the current connection
    arming: int | None = None  # the epoch of an addWatch under way


def _router_for(client: KazooClient) -> _Router:
    return attached(client, "_zksync_watch_router", _Router, lambda: _Router(client))


class _Router:
    """The persistent watches of one client: sends addWatch and removeWatches, hands each
    notification to the watches it concerns, adds them again after a reconnect.

    It wraps two methods of this client (instance attributes, nothing global): the connection's
    ``_read_watch_event``, to see every notification after kazoo has handed it to its own
    one-shot watchers, and the client's ``_call``, to see kazoo set a one-shot watch on a
    watched path.  ``epoch`` counts connections: a reply from an earlier one is stale."""

    def __init__(self, client: KazooClient) -> None:
        self.client = client
        self.lock = threading.Lock()
        self.entries: dict[_Key, _Entry] = {}
        self.one_shots: set[PersistentWatch] = set()
        self.persistent: bool | None = None  # does the server implement addWatch? None: not known yet
        self.exact_removal: bool | None = None  # does it remove by persistent kind (3.9+)?
        self.epoch = 0
        self._kazoo_read_watch_event = client._connection._read_watch_event
        self._kazoo_call = client._call
        client._connection._read_watch_event = self._notified
        client._call = self._call
        client.add_listener(self._listener)

    # ---- adding and removing -------------------------------------------------------------
    def add(self, watch: PersistentWatch, deadline: Deadline) -> None:
        send: int | None = None
        with self.lock:
            if self.persistent is False:
                self.one_shots.add(watch)
            else:
                other = _Key(watch.key.path, not watch.recursive)
                if self.entries.get(other):
                    kind = "recursive" if other.recursive else "plain"
                    raise InvalidState(
                        f"this client has a {kind} persistent watch on the path already; ZooKeeper before 3.9 "
                        "keeps one kind per path and connection",
                        path=watch.path,
                        recipe=RECIPE,
                    )
                entry = self.entries.setdefault(watch.key, _Entry())
                entry.watches.append(watch)
                if entry.armed:
                    watch._first = True
                    watch._armed.set()
                elif entry.arming is None:
                    entry.arming = send = self.epoch
        if watch in self.one_shots:
            watch._start_one_shot()
        elif send is not None:
            self._send_add(watch.key, send)
        try:
            watch._wait_armed(deadline)
        except ZkSyncError:
            self.remove(watch)
            raise

    def remove(self, watch: PersistentWatch) -> None:
        with self.lock:
            watch._active = False
            if watch in self.one_shots:
                self.one_shots.discard(watch)  # its one-shot watches fire once more at most, ignored
                return
            entry = self.entries.get(watch.key)
            if entry is None or watch not in entry.watches:
                return
            entry.watches.remove(watch)
            if entry.watches:
                return  # another owner keeps the server's watch
            del self.entries[watch.key]
            if not entry.armed and entry.arming is None:
                return  # not set on this connection: nothing to remove
            exact = self.exact_removal is not False
        self._send_remove(watch.key, _exact_type(watch.key) if exact else WATCHER_ANY)

    def _send_add(self, key: _Key, epoch: int) -> None:
        result = self.client.handler.async_result()
        mode = MODE_PERSISTENT_RECURSIVE if key.recursive else MODE_PERSISTENT
        self.client._call(AddWatch(key.path, mode), result)  # the current _call: counters see it
        result.rawlink(partial(self._added, key, epoch))

    def _added(self, key: _Key, epoch: int, result: Any) -> None:
        """addWatch answered (kazoo's completion thread)."""
        _, error = _outcome(result)
        if isinstance(error, kz.UnimplementedError):
            self._fall_back()
            return
        fresh: list[PersistentWatch] = []
        resync: list[PersistentWatch] = []
        failed: list[PersistentWatch] = []
        again = False
        with self.lock:
            entry = self.entries.get(key)
            if entry is None or epoch != self.epoch:
                return  # the owners left (their removal follows this request), or the connection did
            if error is None:
                self.persistent = True
                entry.armed, entry.arming = True, None
                for watch in entry.watches:
                    (resync if watch._first else fresh).append(watch)
                    watch._first = True
            elif isinstance(error, _CONNECTION_ERRORS):
                again = self.client.connected  # else the next CONNECTED sends it
                entry.arming = epoch if again else None
            else:
                del self.entries[key]
                failed = entry.watches
        for watch in fresh:
            watch._armed.set()
        for watch in resync:
            watch._resynced()
        for watch in failed:
            watch._end(_translated(error, watch.path) if error is not None else None)
        if again:
            self._send_add(key, epoch)

    def _fall_back(self) -> None:
        """The server does not implement addWatch: every watch of this client goes one-shot."""
        with self.lock:
            self.persistent = False
            moved = [watch for entry in self.entries.values() for watch in entry.watches]
            self.entries.clear()
            self.one_shots.update(moved)
        if moved:
            log.info("the server does not implement addWatch: one-shot watches for %d watch(es)", len(moved))
        for watch in moved:
            watch._start_one_shot()

    def _send_remove(self, key: _Key, watcher_type: int) -> None:
        if watcher_type == WATCHER_ANY and self._in_use(key.path):
            log.debug("left the watch on %s at the server: removing it would remove other watches", key.path)
            return
        result = self.client.handler.async_result()
        self.client._call(RemoveWatches(key.path, watcher_type), result)
        result.rawlink(partial(self._removed, key, watcher_type))

    def _removed(self, key: _Key, watcher_type: int, result: Any) -> None:
        """removeWatches answered (kazoo's completion thread)."""
        _, error = _outcome(result)
        if error is None or isinstance(error, (kz.NoWatcherError, *_CONNECTION_ERRORS)):
            known = True  # removed, or gone already (with its connection, or a reconnect)
        elif isinstance(error, kz.MarshallingError) and watcher_type != WATCHER_ANY:
            known = False  # the server does not know the persistent kinds (before 3.9)
        else:
            log.info("removing the watch on %s failed: %r", key.path, error)
            return
        if watcher_type == WATCHER_ANY:
            return
        with self.lock:
            self.exact_removal = known
        if not known:
            self._send_remove(key, WATCHER_ANY)

    def _in_use(self, path: str) -> bool:
        """Does anything but the watch being removed watch ``path`` on this client: a watch of
        ours added since, or one of kazoo's one-shot watches ("any" would remove them too)?"""
        with self.lock:
            ours = _Key(path, False) in self.entries or _Key(path, True) in self.entries
        return ours or bool(self.client._data_watchers.get(path) or self.client._child_watchers.get(path))

    # ---- what kazoo reports --------------------------------------------------------------
    def _notified(self, buffer: Any, offset: int) -> Any:
        """Every watch notification (kazoo's reader thread): kazoo's one-shot watchers first,
        untouched, then the persistent watches it concerns."""
        outcome = self._kazoo_read_watch_event(buffer, offset)
        try:
            kind, path = parse_notification(buffer, offset)
        except (struct.error, ValueError) as exc:
            log.warning("unreadable watch notification: %s", exc)
            return outcome
        self.route(kind, path)
        return outcome

    def route(self, kind: int, path: str) -> None:
        """Give the notification ``kind`` at server path ``path`` to every watch it concerns."""
        event_type = EVENT_TYPE_MAP.get(kind)
        if event_type is None or event_type == EventType.NONE or self.client._stopped.is_set():
            return
        with self.lock:
            plain = self.entries.get(_Key(path, False))
            targets = list(plain.watches) if plain else []
            if kind != CHILD_EVENT:  # a recursive watch never reports children changes
                for above in ancestors(path):
                    entry = self.entries.get(_Key(above, True))
                    if entry:
                        targets.extend(entry.watches)
        if not targets:
            return
        event = WatchedEvent(event_type, self.client.client_state, self.client.unchroot(path))
        for watch in targets:
            watch._deliver(event)

    def _call(self, request: Any, async_object: Any) -> Any:
        """Every request of the client.  A one-shot watch set on exactly a watched path turns
        the persistent watch there one-shot on servers before 3.9: add it again right behind."""
        outcome = self._kazoo_call(request, async_object)
        path = getattr(request, "path", None)
        if getattr(request, "watcher", None) and isinstance(path, str) and self.persistent is not False:
            self._after_one_shot(path, isinstance(request, (GetChildren, GetChildren2)))
        return outcome

    def _after_one_shot(self, path: str, children: bool) -> None:
        # a children watch only touches the server's children watches, which a recursive watch
        # does not need (its events all come from the data watches)
        keys = [_Key(path, False)] if children else [_Key(path, False), _Key(path, True)]
        send: list[_Key] = []
        with self.lock:
            for key in keys:
                entry = self.entries.get(key)
                if entry is not None and (entry.armed or entry.arming is not None):
                    entry.armed, entry.arming = False, self.epoch
                    send.append(key)
            epoch = self.epoch
        for key in send:
            self._send_add(key, epoch)

    def _listener(self, state: str) -> None:
        """Connection states (kazoo's connection thread: nothing here blocks)."""
        if state == KazooState.SUSPENDED:
            with self.lock:
                self.epoch += 1
                for entry in self.entries.values():
                    entry.armed, entry.arming = False, None
        elif state == KazooState.CONNECTED:
            self._reconnected()
        else:
            self._session_ended()

    def _reconnected(self) -> None:
        # (a request queued while disconnected goes out on this connection: its epoch holds)
        with self.lock:
            epoch = self.epoch
            keys = [key for key, entry in self.entries.items() if not entry.armed and entry.arming is None]
            for key in keys:
                self.entries[key].arming = epoch
            trees = [watch._tree for watch in self.one_shots if watch._tree is not None]
        for key in keys:
            self._send_add(key, epoch)
        for tree in trees:
            tree.start()

    def _session_ended(self) -> None:
        """LOST: the session expired, authentication failed, or the client was stopped."""
        with self.lock:
            self.epoch += 1
            ended = [watch for entry in self.entries.values() for watch in entry.watches]
            ended.extend(self.one_shots)
            self.entries.clear()
            self.one_shots.clear()
            self.persistent = self.exact_removal = None  # the next session may meet another server
        error = self._why_lost()
        for watch in ended:
            watch._end(error)

    def _why_lost(self) -> ZkSyncError | None:
        if self.client._stopped.is_set():
            return None
        if self.client.client_state == KeeperState.AUTH_FAILED:
            return AccessDenied("authentication failed", recipe=RECIPE)
        return SessionExpired("the session expired", recipe=RECIPE)

    def fail_one_shot(self, watch: PersistentWatch, error: ZkSyncError) -> None:
        with self.lock:
            if watch not in self.one_shots:
                return
            self.one_shots.discard(watch)
        watch._end(error)


def _exact_type(key: _Key) -> int:
    return WATCHER_PERSISTENT_RECURSIVE if key.recursive else WATCHER_PERSISTENT


# ---- one-shot watches, for servers without addWatch -----------------------------------------
def _transitions(old: Any, new: Any) -> list[str]:
    """The events between two reads of a node's stat (None: no node)."""
    if old is None:
        return [EventType.CREATED] if new is not None else []
    if new is None:
        return [EventType.DELETED]
    if new.czxid != old.czxid:
        return [EventType.DELETED, EventType.CREATED]
    if new.mzxid != old.mzxid:
        return [EventType.CHANGED]
    return []


class _OneShotTree:
    """A watch made of kazoo's one-shot watches: an exists watch on the path (and, recursive,
    on every node below it) and a children watch on each node that exists, each set again with
    a read after it fires.  Events are what the reads show changed since the last ones, so the
    owner gets them after the watch is set again (its own read then misses nothing).

    A pass (the first one, and one after every reconnect) reads every node known, silently:
    it only sets the watches again and records what it finds.  Reads are counted: when none is
    left, the first pass sets the watch (add_watch returns) and a later one ends with
    ``on_resync()``, as a persistent watch does.  A pass cut by the connection is begun again on
    the next reconnect."""

    def __init__(self, watch: PersistentWatch) -> None:
        self.watch = watch
        self.client = watch._client
        self.root = watch.path
        self.recursive = watch.recursive
        self.lock = threading.Lock()
        self.stats: dict[str, Any] = {}  # path -> last stat read (None: no node)
        self.children: dict[str, set[str]] = {}
        self.reads = 0
        self.epoch = 0
        self.broken = False  # a read of this pass met the connection's loss
        self.resync_pending = False

    def start(self) -> None:
        """A pass over every node known (once connected)."""
        with self.lock:
            self.epoch += 1
            self.broken = False
            self.resync_pending = self.watch._first
            paths = [self.root]
            if self.recursive:
                paths.extend(p for p, stat in self.stats.items() if stat is not None and p != self.root)
        for path in paths:
            self._stat(path, silent=True, then_list=True)

    # ---- kazoo's one-shot watchers (the event thread) ------------------------------------
    def _on_data(self, event: WatchedEvent) -> None:
        if self.watch._active and event.type != EventType.NONE:  # NONE: kazoo dropped it (reconnect)
            self._stat(event.path, silent=False, then_list=False)

    def _on_child(self, event: WatchedEvent) -> None:
        if self.watch._active and event.type == EventType.CHILD:  # DELETED: _on_data has it
            self._list(event.path, silent=False)

    # ---- reads ---------------------------------------------------------------------------
    def _begin(self) -> int:
        with self.lock:
            self.reads += 1
            return self.epoch

    def _stat(self, path: str, silent: bool, then_list: bool) -> None:
        epoch = self._begin()
        result = self.client.exists_async(path, watch=self._on_data)
        result.rawlink(partial(self._stat_read, path, silent, then_list, epoch))

    def _list(self, path: str, silent: bool) -> None:
        epoch = self._begin()
        result = self.client.get_children_async(path, watch=self._on_child)
        result.rawlink(partial(self._listed, path, silent, epoch))

    def _stat_read(self, path: str, silent: bool, then_list: bool, epoch: int, result: Any) -> None:
        stat, error = _outcome(result)
        if error is not None:
            self._finish(epoch, error, path)
            return
        with self.lock:
            old = self.stats.get(path)
            events = [] if silent else _transitions(old, stat)
            if stat is None:
                self.children.pop(path, None)
            if stat is None and path != self.root:
                self.stats.pop(path, None)
            else:
                self.stats[path] = stat
            descend = stat is not None and (then_list or old is None) and (self.recursive or path == self.root)
        if descend:
            self._list(path, silent)
        self._emit(path, events)
        self._finish(epoch, None, path)

    def _listed(self, path: str, silent: bool, epoch: int, result: Any) -> None:
        names, error = _outcome(result)
        if isinstance(error, kz.NoNodeError):
            names, error = None, None  # gone meanwhile: its exists watch reports it
        if error is not None or names is None:
            self._finish(epoch, error, path)
            return
        with self.lock:
            old = self.children.get(path)
            new = set(names)
            self.children[path] = new
            added = [child_path(path, name) for name in sorted(new - (old or set()))]
            # a child gone whose own watch has not reported it yet (it usually has: the server
            # sends its deletion before the parent's children change)
            gone = [p for p in (child_path(path, name) for name in sorted((old or set()) - new)) if p in self.stats]
        if self.recursive:
            for child in added:
                self._stat(child, silent, then_list=True)
            for child in gone:
                self._stat(child, silent, then_list=False)
        elif old is not None and old != new and not silent:
            self._emit(path, [EventType.CHILD])
        self._finish(epoch, None, path)

    def _emit(self, path: str, events: list[str]) -> None:
        for event_type in events:
            self.watch._deliver(WatchedEvent(event_type, self.client.client_state, path))

    def _finish(self, epoch: int, error: BaseException | None, path: str) -> None:
        fatal: ZkSyncError | None = None
        signal = None
        with self.lock:
            self.reads -= 1
            if isinstance(error, _CONNECTION_ERRORS):
                self.broken = self.broken or epoch == self.epoch
            elif error is not None:
                fatal = _translated(error, path)
            if fatal is None and self.reads == 0 and not self.broken:
                if not self.watch._first:
                    self.watch._first = True
                    signal = self.watch._armed.set
                elif self.resync_pending:
                    self.resync_pending = False
                    signal = self.watch._resynced
        if fatal is not None:
            self.watch._router.fail_one_shot(self.watch, fatal)
        elif signal is not None and self.watch._active:
            signal()


# ---- the entry point ------------------------------------------------------------------------
def _check_callable(value: object, name: str, optional: bool) -> None:
    if value is None and optional:
        return
    if not callable(value):
        raise InvalidArgument(f"{name} must be callable, not {type(value).__name__}", recipe=RECIPE)


def add_watch(
    client: KazooClient,
    path: str,
    callback: EventCallback,
    *,
    recursive: bool = True,
    on_resync: ResyncCallback | None = None,
    on_lost: LostCallback | None = None,
    timeout: float | None = None,
) -> PersistentWatch:
    """Watch ``path`` (and, ``recursive``, every node below it) until removed or the session
    ends; see the module's description.  Returns once the server has set the watch, waiting at
    most ``timeout`` seconds (default: one session timeout) for that, connection losses
    included.  Raises :class:`~zksync.InvalidArgument` before sending anything for a bad
    argument or a client that is not started, :class:`~zksync.Timeout` or
    :class:`~zksync.ConnectionLost` when the watch could not be set in time (nothing is left
    behind), or the error the server answered (such as :class:`~zksync.AccessDenied`)."""
    session = session_for(client, RECIPE)
    if path != "/":
        check_path(path, RECIPE)
    _check_callable(callback, "callback", optional=False)
    _check_callable(on_resync, "on_resync", optional=True)
    _check_callable(on_lost, "on_lost", optional=True)
    if not isinstance(recursive, bool):
        raise InvalidArgument(f"recursive must be a bool, not {type(recursive).__name__}", recipe=RECIPE)
    wait = check_timeout(timeout)
    if session.stopped():
        raise InvalidArgument("the kazoo client is not started (call client.start() first)", path=path, recipe=RECIPE)
    router = _router_for(client)
    watch = PersistentWatch(router, path, recursive, callback, on_resync, on_lost)
    router.add(watch, Deadline(wait if wait is not None else max(1.0, session.session_timeout)))
    return watch
