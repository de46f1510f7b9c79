"""Coordination for the instances of a distributed test: states, barriers, topics, exchange.

The API of Testground's sync service and autotest's barrier / SyncData, on ZooKeeper:

    sync = zksync.Sync(client, "my-run")           # or zksync.Sync.from_env()
    seq = sync.signal_and_wait("ready", target=10, timeout=60)
    sync.publish("addresses", {"id": seq, "addr": "10.0.0.5:9000"})
    for payload in sync.subscribe("addresses", timeout=30): ...
    everyone = sync.exchange("keys", my_public_key, participants=10, timeout=60)

Layout under ``/zksync-sync/<namespace>``::

    instances/p-<seq>     ephemeral, data = instance id: who is alive (each watches its predecessor)
    joined/<id>           persistent: who ever joined (to name the missing on a timeout)
    left/<id>             persistent: written by the instance that saw <id>'s presence vanish
    states/<state>/e-<seq>        one per signal_entry, data = instance id; seq + 1 is its number
    signalled/<state>/<id>.<guid> made in the same transaction as the entry: who signalled
    aborted/<state>               data = reason
    topics/<topic>/m-<guid>-<seq> data = JSON payload
    exchange/<key>/<id>           data = JSON value

A state's directory only ever gains children, so its sequence numbers are dense: the count
has reached ``target`` exactly when ``e-<target - 1>`` exists.  A barrier therefore watches that
one node with ``exists`` (it fires when the target-th signal lands); nobody lists the entries,
nobody keeps a marker, and a signal is one transaction.  ``signal_and_wait`` costs the
participant two requests (the transaction and the exists watch) and the release one
notification.  The ``signalled`` record of a signal has a name fixed before
the first try, so a signal retried after a lost reply can never land twice: the second
transaction fails on that name, atomically.

Liveness costs one watch per instance (on its predecessor's presence), so a death notifies one
instance, which records it in ``left/``.  Each instance keeps one child watch on ``left/`` and
one on ``aborted/`` (armed when it joins; re-armed at once while one of its barriers waits,
otherwise by its next barrier) and caches what they list; its barriers read that cache, and are
woken when it changes, so they fail fast with :class:`ParticipantLost` when an instance that had not
signalled the state is gone, or with :class:`BarrierAborted`, without a request of their own.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import Future
from typing import Any

from kazoo.client import KazooClient
from kazoo.exceptions import NodeExistsError, NoNodeError
from kazoo.protocol.states import EventType, KazooState, WatchedEvent

from ._core.effects import Create, Multi
from ._ops import Ops, Waiter, failed_step
from ._util import Deadline, check_name, check_timeout
from .errors import ConnectionLost, InvalidArgument, InvalidState, Timeout, ZkSyncError, translate

ROOT = "/zksync-sync"


class ParticipantLost(ZkSyncError):
    """Instances that joined are gone without signalling the state a barrier waits for."""

    def __init__(self, message: str, instances: list[str], **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.instances = instances


class BarrierAborted(ZkSyncError):
    """Somebody aborted the state this barrier waits for."""

    def __init__(self, message: str, reason: str, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.reason = reason


class SyncTimeout(Timeout):
    """A barrier timed out; ``missing`` names joined instances that had not signalled."""

    def __init__(self, message: str, missing: list[str], **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.missing = missing


def _seq(name: str) -> int:
    return int(name.rsplit("-", 1)[1])


def _presence(seq: int) -> str:
    """The name of the presence node with sequence ``seq``."""
    return f"p-{seq:010d}"


def _presences(names: list[str]) -> list[str]:
    """Presence node names in sequence order (anything else under instances/ is ignored)."""
    return sorted((n for n in names if n.startswith("p-")), key=_seq)


def _check_target(target: object) -> None:
    if isinstance(target, bool) or not isinstance(target, int) or target < 0:
        raise InvalidArgument(f"target must be an int >= 0, got {target!r}", recipe="Sync")


def _encode(payload: Any, what: str) -> bytes:
    try:
        return json.dumps(payload, separators=(",", ":"), allow_nan=False).encode()
    except (TypeError, ValueError) as exc:
        raise InvalidArgument(f"{what} must be JSON-serialisable: {exc}", recipe="Sync") from None


class Subscription:
    """An iterator over a topic's payloads in publish order.  It ends when closed, or when no
    new payload arrives within ``timeout`` seconds (None: wait as long as it takes)."""

    def __init__(self, sync: Sync, topic: str, start: int, timeout: float | None) -> None:
        self._sync = sync
        self._path = f"{sync.root}/topics/{topic}"
        self._next = start
        self._timeout = timeout
        self._closed = threading.Event()
        self._known: dict[int, str] = {}
        self._waiter = Waiter(sync._ops.session)

    def close(self) -> None:
        self._closed.set()
        self._waiter.event.set()
        self._waiter.close()

    def __iter__(self) -> Iterator[Any]:
        return self

    def __next__(self) -> Any:
        ops = self._sync._ops
        deadline = Deadline(self._timeout)
        while not self._closed.is_set():
            name = self._known.get(self._next - 1)
            if name is None:
                self._refresh(deadline)
                name = self._known.get(self._next - 1)
            if name is not None:
                found = ops.get(f"{self._path}/{name}", deadline)
                if found is None:
                    raise InvalidState(
                        f"message {self._next} of {self._path} was deleted", path=self._path, recipe="Sync"
                    )
                self._next += 1
                return json.loads(found[0].decode())
            if not self._waiter.wait(deadline) or self._closed.is_set():
                break
        self.close()
        raise StopIteration

    def _refresh(self, deadline: Deadline) -> None:
        children = self._sync._ops.get_children(self._path, deadline, watch=self._waiter.watch, missing_ok=True)
        if not children:  # the topic does not exist yet: watch for its creation
            self._sync._ops.exists(self._path, deadline, watch=self._waiter.watch)
        for name in children:
            if name.startswith("m-"):
                self._known[_seq(name)] = name


class Sync:
    """The sync service of one run (``namespace``) for one instance."""

    recipe = "Sync"

    def __init__(
        self, client: KazooClient, namespace: str, instance_id: str | None = None, instance_count: int | None = None
    ) -> None:
        self.namespace = check_name(namespace, "namespace", self.recipe)
        self.instance_id = check_name(
            instance_id or f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}", "instance_id", self.recipe
        )
        self.root = f"{ROOT}/{self.namespace}"
        self._ops = Ops(client, self.recipe, self.root)
        self.client = client
        self._joined = False
        self._join_lock = threading.Lock()
        self._presence: str | None = None
        if instance_count is not None and (
            isinstance(instance_count, bool) or not isinstance(instance_count, int) or instance_count < 1
        ):
            raise InvalidArgument(f"instance_count must be an int >= 1, got {instance_count!r}", recipe=self.recipe)
        self.instance_count = instance_count
        self._trouble_lock = threading.Lock()
        self._gone: frozenset[str] = frozenset()  # children of left/, kept by a watch
        self._aborted: frozenset[str] = frozenset()  # children of aborted/, kept by a watch
        self._trouble_wakers: set[threading.Event] = set()
        self._trouble_armed = {"left": False, "aborted": False}
        self._ring_generation = 0
        client.add_listener(self._on_state)

    def _on_state(self, state: str) -> None:
        if state == KazooState.CONNECTED and self._presence is not None:
            self._watch_predecessor()  # kazoo drops watches while suspended: re-arm
            for which in ("left", "aborted"):
                if self._disarm_unless_waited_for(which):
                    self._rearm_trouble(which)

    # ---- trouble: departures and aborts, watched once per instance -----------------------
    # The watches are re-armed at once only while a barrier of this instance waits; otherwise
    # they are marked stale and the next barrier re-arms them.  So the departures at the end of
    # a run cost each idle instance at most one notification, not one per departure.
    def _trouble_watch(self, event: WatchedEvent) -> None:
        if event.type != "NONE" and self._presence is not None:
            which = event.path.rsplit("/", 1)[1]
            if self._disarm_unless_waited_for(which):
                self._rearm_trouble(which)

    def _disarm_unless_waited_for(self, which: str) -> bool:
        """Mark the watch on ``which`` stale unless a barrier waits; True when one does."""
        with self._trouble_lock:
            waiting = bool(self._trouble_wakers)
            self._trouble_armed[which] = waiting
        return waiting

    def _arm_trouble(self, deadline: Deadline) -> None:
        """Make sure both trouble watches are armed and the cache is current (a barrier calls
        this after registering its waker, so no change can slip between the two)."""
        for which in ("left", "aborted"):
            with self._trouble_lock:
                armed = self._trouble_armed[which]
                self._trouble_armed[which] = True
            if not armed:
                try:
                    names = self._ops.get_children(f"{self.root}/{which}", deadline, watch=self._trouble_watch)
                except BaseException:
                    with self._trouble_lock:
                        self._trouble_armed[which] = False
                    raise
                self._set_trouble(which, names)

    def _rearm_trouble(self, which: str) -> None:
        def listed(result: Any) -> None:
            try:
                names = result.get()
            except Exception:
                return  # disconnected (re-armed on reconnect) or being cleaned up
            self._set_trouble(which, names)

        self.client.get_children_async(f"{self.root}/{which}", watch=self._trouble_watch).rawlink(listed)

    def _set_trouble(self, which: str, names: list[str]) -> None:
        with self._trouble_lock:
            if which == "left":
                self._gone = frozenset(names)
            else:
                self._aborted = frozenset(names)
            wakers = list(self._trouble_wakers)
        for waker in wakers:
            waker.set()

    @classmethod
    def from_env(cls, client: KazooClient | None = None) -> Sync:
        """Scoped by Testground's variables, so concurrent runs never collide:
        ``TEST_PLAN``/``TEST_CASE``/``TEST_RUN`` name the namespace (``TEST_GROUP_ID`` is not part
        of it: groups of one run coordinate with each other)."""
        from . import connect

        run = os.environ.get("TEST_RUN")
        if not run:
            raise InvalidArgument(
                "TEST_RUN is not set: from_env needs Testground's TEST_* variables", recipe=cls.recipe
            )
        parts = [os.environ.get("TEST_PLAN", "plan"), os.environ.get("TEST_CASE", "case"), run]
        namespace = "-".join(p.replace("/", "_") for p in parts)
        instance = os.environ.get("TEST_INSTANCE_ID") or None
        count = os.environ.get("TEST_INSTANCE_COUNT", "")
        return cls(client or connect(), namespace, instance, int(count) if count.isdigit() else None)

    # ---- presence ----------------------------------------------------------------------
    def join(self, timeout: float | None = None) -> None:
        """Announce this instance (done by every call that needs it; idempotent)."""
        with self._join_lock:
            if self._joined and self._presence is not None:
                return
            deadline = self._deadline(timeout)
            ops = self._ops
            ops.create(f"{self.root}/joined/{self.instance_id}", deadline)
            if ops.exists(f"{self.root}/signalled", deadline) is None:  # made last: the layout is there
                for part in ("left", "aborted", "states", "signalled"):
                    ops.ensure_path(f"{self.root}/{part}", deadline)
            created = ops.create(
                f"{self.root}/instances/p-", deadline, value=self.instance_id.encode(), ephemeral=True, sequence=True
            )
            assert created is not None
            self._presence = created[0]
            self._trouble_armed = {"left": False, "aborted": False}
            self._arm_trouble(deadline)
            self._joined = True
        self._watch_predecessor()

    def _watch_predecessor(self) -> None:
        """Watch the presence node just before ours (the lowest watches the highest: a ring);
        when it vanishes, record that instance as gone and watch the next one.  Runs on
        kazoo's threads, asynchronously.

        Presence nodes are ``p-<seq>`` and only departures remove them, so the predecessor is
        almost always ``p-<seq - 1>``: one ``get`` (which also tells its instance id) finds and
        watches it; the instances are listed only when that node is missing.  The lowest
        instance closes the ring without listing: the parent's ``cversion`` is the next sequence
        to be handed out, so it watches ``p-<cversion - 1>`` (the newest) and ``exists`` on
        ``p-<cversion>`` (fires on the next join).  A departure consumes a sequence too, and
        every departure is recorded in ``left/``, so the lowest also watches ``left/`` and looks
        again when it changes."""
        presence = self._presence
        if presence is None:
            return
        base = f"{self.root}/instances"
        mine = _seq(presence)
        with self._trouble_lock:
            self._ring_generation += 1
            generation = self._ring_generation

        def current() -> bool:
            """False once we left, or once a newer call took over (its watches replace ours)."""
            return self._presence == presence and self._ring_generation == generation

        def watch(target: str, on_missing: Any) -> None:
            """get ``target`` with a watch; record it in left/ when it goes."""
            known: dict[str, str] = {}
            answered = threading.Event()

            def gone(event: WatchedEvent) -> None:
                if self._presence != presence:
                    return  # we left: no more bookkeeping
                if event.type == "DELETED":  # recorded by any watch of ours that sees it (idempotent)
                    answered.wait(1.0)  # kazoo runs replies and watches on different threads
                    ident = known.get(target)
                    if ident:
                        self.client.create_async(f"{self.root}/left/{ident}")
                if event.type != "NONE" and current():
                    self._watch_predecessor()

            def got(result: Any) -> None:
                try:
                    data, _ = result.get()
                except NoNodeError:
                    answered.set()
                    on_missing()
                    return
                except Exception:
                    answered.set()
                    return  # disconnected: _on_state re-arms us on reconnect
                known[target] = data.decode(errors="replace")
                answered.set()

            self.client.get_async(f"{base}/{target}", watch=gone).rawlink(got)

        def listed(result: Any) -> None:
            try:
                names = _presences(result.get())
            except Exception:
                return  # disconnected: _on_state re-arms us on reconnect
            if not current() or _presence(mine) not in names:
                return  # we left (or the run is being cleaned up)
            before = [n for n in names if _seq(n) < mine]
            if before:
                watch(before[-1], relist)
            else:  # everybody below us is gone: we are the lowest now
                close_ring()
                departures()

        def relist() -> None:
            if current():
                self.client.get_children_async(base).rawlink(listed)

        def close_ring(event: WatchedEvent | None = None) -> None:
            """The lowest instance: watch the newest instance, and the next one to join."""
            if not current() or (event is not None and event.type == "NONE"):
                return

            def stat(result: Any) -> None:
                try:
                    parent = result.get()
                except Exception:
                    return
                if parent is None or not current():
                    return
                newest = parent.cversion - 1
                self.client.exists_async(f"{base}/{_presence(newest + 1)}", watch=close_ring)
                if newest > mine:
                    watch(_presence(newest), relist_newest)

            self.client.exists_async(base).rawlink(stat)

        def relist_newest() -> None:
            """The newest sequence was consumed by a departure: find the newest instance by listing."""

            def newest_listed(result: Any) -> None:
                try:
                    names = _presences(result.get())
                except Exception:
                    return
                if current() and names and _seq(names[0]) == mine and names[-1] != _presence(mine):
                    watch(names[-1], relist_newest)

            self.client.get_children_async(base).rawlink(newest_listed)

        def departures(event: WatchedEvent | None = None) -> None:
            if not current() or (event is not None and event.type == "NONE"):
                return
            if event is not None:
                close_ring()
            self.client.get_children_async(f"{self.root}/left", watch=departures)

        if mine > 0:
            watch(_presence(mine - 1), relist)
        else:
            close_ring()
            departures()

    def leave(self) -> None:
        """Withdraw this instance's presence (closing the client does the same)."""
        if self._presence is not None:
            self._ops.delete(self._presence, self._deadline(None))
            self._presence = None
            self._joined = False

    # ---- states and barriers -----------------------------------------------------------
    def signal_entry(self, state: str, timeout: float | None = None) -> int:
        """Signal ``state``; returns this signal's 1-based sequence number."""
        state = check_name(state, "state", self.recipe)
        deadline = self._deadline(timeout)
        self.join(deadline.remaining())
        return self._signal(state, deadline)

    def _entry(self, state: str, number: int) -> str:
        """The node of the ``number``-th (1-based) signal of ``state``."""
        return f"{self.root}/states/{state}/e-{number - 1:010d}"

    def _signal(self, state: str, deadline: Deadline) -> int:
        ops = self._ops
        entries = f"{self.root}/states/{state}"
        record = f"{self.root}/signalled/{state}/{self.instance_id}.{uuid.uuid4().hex}"
        while True:
            transaction = Multi((Create(f"{entries}/e-", self.instance_id.encode(), sequence=True), Create(record)))
            try:
                results = ops.commit(transaction, deadline)
            except ConnectionLost:  # the reply was lost: did the transaction land?
                if not ops.session.wait_connected(deadline):
                    raise Timeout(
                        "timed out waiting for the connection after a lost signal", path=entries, recipe=self.recipe
                    ) from None
                landed = ops.exists(record, deadline)
                if landed is None:
                    continue  # it did not (and a late copy can no longer land: the record would exist)
                return self._number_of(entries, landed.czxid, deadline)
            failure = failed_step(results)
            if failure is None:
                return _seq(results[0]) + 1
            if isinstance(failure, NoNodeError):  # the first signal of this state: make its directories
                layout = Multi((Create(entries), Create(record.rsplit("/", 1)[0])))
                try:
                    made = ops.commit(layout, deadline)
                except ConnectionLost:  # making directories is idempotent: just go round again
                    if not ops.session.wait_connected(deadline):
                        raise Timeout(
                            "timed out waiting for the connection", path=entries, recipe=self.recipe
                        ) from None
                    continue
                if any(isinstance(r, NoNodeError) for r in made):  # the run's layout itself is missing
                    ops.ensure_path(entries, deadline)
                    ops.ensure_path(record.rsplit("/", 1)[0], deadline)
                continue  # made, or made by another instance meanwhile (NodeExists)
            if isinstance(failure, NodeExistsError):  # an earlier try landed after all
                landed = ops.exists(record, deadline)
                if landed is not None:
                    return self._number_of(entries, landed.czxid, deadline)
            with translate(entries, self.recipe):
                raise failure

    def _number_of(self, entries: str, czxid: int, deadline: Deadline) -> int:
        """The number of the entry created by transaction ``czxid`` (entries are created in
        zxid order, so a binary search over their sequence finds it)."""
        names = sorted((n for n in self._ops.get_children(entries, deadline) if n.startswith("e-")), key=_seq)
        low, high = 0, len(names) - 1
        while low <= high:
            middle = (low + high) // 2
            stat = self._ops.exists(f"{entries}/{names[middle]}", deadline)
            if stat is None:
                raise InvalidState(f"entry {names[middle]} of {entries} was deleted", path=entries, recipe=self.recipe)
            if stat.czxid == czxid:
                return _seq(names[middle]) + 1
            if stat.czxid < czxid:
                low = middle + 1
            else:
                high = middle - 1
        raise InvalidState(f"the entry of a landed signal is missing from {entries}", path=entries, recipe=self.recipe)

    def barrier(self, state: str, target: int, timeout: float | None = None) -> None:
        """Return once at least ``target`` signals of ``state`` were made.

        Raises :class:`ParticipantLost` as soon as an instance that joined is gone without
        signalling ``state`` (with ``instance_count`` known: as soon as that puts ``target`` out
        of reach), :class:`BarrierAborted` when the
        state is aborted, and :class:`SyncTimeout` (a :class:`Timeout`) naming the instances
        that never signalled."""
        state = check_name(state, "state", self.recipe)
        _check_target(target)
        deadline = Deadline(check_timeout(timeout))
        if target == 0:
            return
        self.join(None if deadline.unbounded else max(deadline.remaining() or 0.0, 1.0))
        self._wait_for(state, target, deadline)

    def _wait_for(self, state: str, target: int, deadline: Deadline) -> None:
        try:
            self._await_target(state, target, deadline)
        except Timeout as exc:  # the wait, or a request, ran out of time: say who is missing
            missing = self._missing(state)
            raise SyncTimeout(
                f"timed out waiting for {target} instances in state {state!r}; "
                f"not signalled: {', '.join(missing) or 'unknown instances'}",
                missing,
                path=f"{self.root}/states/{state}",
                recipe=self.recipe,
            ) from exc

    def _await_target(self, state: str, target: int, deadline: Deadline) -> None:
        ops = self._ops
        entry = self._entry(state, target)
        checked_gone: frozenset[str] | None = None
        with Waiter(ops.session) as waiter:
            with self._trouble_lock:
                self._trouble_wakers.add(waiter.event)
            try:
                self._arm_trouble(deadline)
                while True:
                    waiter.last = None
                    if ops.exists(entry, deadline, watch=waiter.watch) is not None:
                        return
                    if state in self._aborted:
                        aborted = f"{self.root}/aborted/{state}"
                        abort = ops.get(aborted, deadline)
                        reason = abort[0].decode(errors="replace") if abort is not None else "aborted"
                        raise BarrierAborted(
                            f"state {state!r} was aborted: {reason}", reason, path=aborted, recipe=self.recipe
                        )
                    gone = self._gone
                    if gone and gone != checked_gone:
                        self._fail_if_lost(state, target, gone, deadline)
                        checked_gone = gone
                    if not waiter.wait(deadline):  # _wait_for names the missing instances
                        raise Timeout("timed out waiting", path=entry, recipe=self.recipe)
                    event = waiter.last
                    if event is not None and event.type == EventType.CREATED and event.path == entry:
                        return  # the target-th signal landed: nothing to ask
                    if not ops.session.is_connected():
                        ops.session.wait_connected(deadline)
            finally:
                with self._trouble_lock:
                    self._trouble_wakers.discard(waiter.event)

    def barrier_async(self, state: str, target: int, timeout: float | None = None) -> Future[None]:
        """:meth:`barrier` in the background: a future that resolves (or fails) with it."""
        future: Future[None] = Future()

        def run() -> None:
            try:
                self.barrier(state, target, timeout)
            except BaseException as exc:
                future.set_exception(exc)
            else:
                future.set_result(None)

        threading.Thread(target=run, name=f"zksync-barrier-{state}", daemon=True).start()
        return future

    def signal_and_wait(self, state: str, target: int, timeout: float | None = None) -> int:
        """:meth:`signal_entry` then :meth:`barrier`; returns the sequence number."""
        _check_target(target)
        deadline = Deadline(check_timeout(timeout))
        seq = self.signal_entry(state, deadline.remaining())
        if seq < target:  # entries are dense: ours being number >= target means the count is there
            self._wait_for(state, target, deadline)
        return seq

    def abort(self, state: str, reason: str = "aborted") -> None:
        """Make every barrier on ``state`` fail with :class:`BarrierAborted`."""
        state = check_name(state, "state", self.recipe)
        self._ops.create(f"{self.root}/aborted/{state}", self._deadline(None), value=reason.encode())

    def _fail_if_lost(self, state: str, target: int, gone: frozenset[str], deadline: Deadline) -> None:
        ops = self._ops
        signalled = self._signalled(state, deadline)
        lost = sorted(set(gone) - signalled - {self.instance_id})
        if not lost:
            return
        if self.instance_count is not None:  # fail only when the target is now out of reach
            joined = set(ops.get_children(f"{self.root}/joined", deadline, missing_ok=True))
            if max(self.instance_count, len(joined)) - len(lost) >= target:
                return
        raise ParticipantLost(
            f"instances gone before signalling {state!r}: {', '.join(lost)}",
            lost,
            path=f"{self.root}/states/{state}",
            recipe=self.recipe,
        )

    def _signalled(self, state: str, deadline: Deadline) -> set[str]:
        names = self._ops.get_children(f"{self.root}/signalled/{state}", deadline, missing_ok=True)
        return {n.rsplit(".", 1)[0] for n in names}

    def _missing(self, state: str) -> list[str]:
        try:
            deadline = self._ops.default_deadline()
            joined = set(self._ops.get_children(f"{self.root}/joined", deadline, missing_ok=True))
            return sorted(joined - self._signalled(state, deadline))
        except ZkSyncError:
            return []

    # ---- topics ------------------------------------------------------------------------
    def publish(self, topic: str, payload: Any, timeout: float | None = None) -> int:
        """Append ``payload`` (JSON-serialisable) to ``topic``; returns its 1-based sequence."""
        topic = check_name(topic, "topic", self.recipe)
        data = _encode(payload, "payload")
        created = self._ops.create(
            f"{self.root}/topics/{topic}/m-{uuid.uuid4().hex}-", self._deadline(timeout), value=data, sequence=True
        )
        assert created is not None
        return _seq(created[0]) + 1

    def subscribe(self, topic: str, start: int = 1, timeout: float | None = None) -> Subscription:
        """Payloads of ``topic`` in publish order from sequence ``start`` (earlier ones are
        replayed for late subscribers)."""
        topic = check_name(topic, "topic", self.recipe)
        if isinstance(start, bool) or not isinstance(start, int) or start < 1:
            raise InvalidArgument(f"start must be an int >= 1, got {start!r}", recipe=self.recipe)
        self._ops.ensure_usable()
        return Subscription(self, topic, start, check_timeout(timeout))

    def publish_and_wait(self, topic: str, payload: Any, state: str, target: int, timeout: float | None = None) -> int:
        """Publish, then signal ``state`` and wait for ``target``; every error passes through."""
        deadline = Deadline(check_timeout(timeout))
        seq = self.publish(topic, payload, deadline.remaining())
        self.signal_and_wait(state, target, deadline.remaining())
        return seq

    def publish_subscribe(self, topic: str, payload: Any, timeout: float | None = None) -> tuple[int, Subscription]:
        """Publish, then subscribe to the whole topic (including our own payload)."""
        seq = self.publish(topic, payload, timeout)
        return seq, self.subscribe(topic, 1, timeout)

    # ---- exchange ----------------------------------------------------------------------
    def exchange(self, key: str, data: Any, participants: int, timeout: float | None = None) -> dict[str, Any]:
        """Contribute ``data`` and return everyone's, keyed by instance id, once
        ``participants`` instances have contributed (autotest's SyncData)."""
        key = check_name(key, "key", self.recipe)
        if isinstance(participants, bool) or not isinstance(participants, int) or participants < 1:
            raise InvalidArgument(f"participants must be an int >= 1, got {participants!r}", recipe=self.recipe)
        value = _encode(data, "data")
        deadline = Deadline(check_timeout(timeout))
        base = f"{self.root}/exchange/{key}"
        if self._ops.create(f"{base}/{self.instance_id}", deadline, value=value) is None:
            raise InvalidState(
                f"instance {self.instance_id} already contributed to exchange {key!r}", path=base, recipe=self.recipe
            )
        self.signal_and_wait(f"exchange.{key}", participants, deadline.remaining())
        result = {}
        for name in self._ops.get_children(base, deadline):
            found = self._ops.get(f"{base}/{name}", deadline)
            if found is not None:
                result[name] = json.loads(found[0].decode())
        return result

    # ---- housekeeping ------------------------------------------------------------------
    def counts(self) -> dict[str, int]:
        """Signals per state so far."""
        deadline = self._ops.default_deadline()
        out = {}
        for state in self._ops.get_children(f"{self.root}/states", deadline, missing_ok=True):
            stat = self._ops.exists(f"{self.root}/states/{state}", deadline)
            if stat is not None:
                out[state] = stat.cversion
        return out

    def cleanup(self, timeout: float | None = None) -> None:
        """Delete this run's nodes.  Refused while any instance is still present, so a count
        in use is never removed."""
        deadline = self._deadline(timeout)
        present = self._ops.get_children(f"{self.root}/instances", deadline, missing_ok=True)
        others = []
        for name in present:
            found = self._ops.get(f"{self.root}/instances/{name}", deadline)
            if found is not None and f"{self.root}/instances/{name}" != self._presence:
                others.append(found[0].decode(errors="replace"))
        if others:
            raise InvalidState(
                f"run {self.namespace!r} still has live instances: {', '.join(sorted(others))}",
                path=self.root,
                recipe=self.recipe,
            )
        self.leave()
        for attempt in range(5):  # a last bookkeeping write may land while we delete
            try:
                self._delete_tree(self.root, deadline)
                return
            except ZkSyncError:
                if attempt == 4:
                    raise
                time.sleep(0.2)

    def _delete_tree(self, path: str, deadline: Deadline) -> None:
        for child in self._ops.get_children(path, deadline, missing_ok=True):
            self._delete_tree(f"{path}/{child}", deadline)
        self._ops.delete(path, deadline)

    def _deadline(self, timeout: float | None) -> Deadline:
        checked = check_timeout(timeout)
        return Deadline(checked) if checked is not None else self._ops.default_deadline()


__all__ = ["BarrierAborted", "ParticipantLost", "Subscription", "Sync", "SyncTimeout"]
