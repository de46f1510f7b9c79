"""One instance's view of a run: joining and leaving, and the calls every front-end offers."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from typing import Any

from ..._util import Deadline, check_name, check_timeout
from ...errors import InvalidArgument, InvalidState, ZkSyncError
from ..effects import Listen, Machine, Wait, WakeHub
from ..requests import Requests
from .names import RECIPE, ROOT, check_count, check_target, encode
from .presence import Ring
from .states import States
from .topics import Subscription, publish
from .trouble import Spawn, Trouble

LAYOUT = ("left", "aborted", "states", "signalled")  # made at the first join; signalled/ last
CLEANUP_TRIES = 5
CLEANUP_PAUSE = 0.2  # seconds between tries: a last bookkeeping write may land while we delete


class SyncCore:
    """The sync service of one run (``namespace``) for one instance, as machines."""

    def __init__(
        self,
        requests: Requests,
        namespace: str,
        instance_id: str,
        instance_count: int | None,
        spawn: Spawn,
        follow_connection: Callable[[bool], None],
    ) -> None:
        self.namespace = namespace
        self.instance_id = instance_id
        self.instance_count = instance_count
        self.root = requests.path
        self.requests = requests
        self.spawn = spawn
        self.follow_connection = follow_connection  # (True) call reconnected() after every reconnect
        self.trouble = Trouble(requests, self.root, spawn)
        self.states = States(requests, self.root, instance_id, self.trouble)
        self.ring: Ring | None = None
        self._lock = threading.Lock()
        self._joining = False
        self._joined = WakeHub()  # wakes a join that waits for another one in progress

    @property
    def presence(self) -> str | None:
        ring = self.ring
        return ring.node if ring is not None else None

    def deadline(self, timeout: float | None) -> Deadline:
        checked = check_timeout(timeout)
        return Deadline(checked) if checked is not None else self.requests.default_deadline()

    # ---- presence ----------------------------------------------------------------------
    def join(self, deadline: Deadline) -> Machine[None]:
        """Announce this instance (done by every call that needs it; idempotent)."""
        while True:
            with self._lock:
                if self.ring is not None:
                    return
                if not self._joining:
                    self._joining = True
                    break
            yield Listen(self._joined)
            if (yield Wait(deadline)) is None:
                raise self.requests.timeout("waiting for another join of this instance")
        try:
            yield from self._join(deadline)
        finally:
            with self._lock:
                self._joining = False
            self._joined.wake_all()

    def _join(self, deadline: Deadline) -> Machine[None]:
        r = self.requests
        if r.acl is not None:  # the runs' common parent keeps the client's default ACL: other runs share it
            parent = self.root.rsplit("/", 1)[0]
            if parent:
                yield from r.with_acl(None).ensure_path(parent, deadline)
        yield from r.create(f"{self.root}/joined/{self.instance_id}", deadline)
        if (yield from r.exists(f"{self.root}/signalled", deadline)) is None:  # made last: the layout is there
            for part in LAYOUT:
                yield from r.ensure_path(f"{self.root}/{part}", deadline)
        path = f"{self.root}/instances/p-"
        created = yield from r.create(path, deadline, value=self.instance_id.encode(), ephemeral=True, sequence=True)
        assert created is not None
        self.trouble.reset()
        self.trouble.active = True
        yield from self.trouble.listen(deadline)
        ring = Ring(r, self.root, created[0], self.spawn)
        with self._lock:
            self.ring = ring
        self.follow_connection(True)
        ring.start()

    def reconnected(self) -> None:
        """The connection is back: re-arm what kazoo dropped while it was suspended."""
        ring = self.ring
        if ring is not None:
            ring.start()
            self.trouble.reconnected()

    def leave(self) -> Machine[None]:
        """Withdraw this instance's presence (closing the client does the same)."""
        with self._lock:
            ring, self.ring = self.ring, None
        if ring is not None:
            ring.stop()
            self.follow_connection(False)
            self.trouble.active = False
            yield from self.requests.delete(ring.node, self.requests.default_deadline())

    # ---- states and barriers -----------------------------------------------------------
    def signal_entry(self, state: str, timeout: float | None) -> Machine[int]:
        state = check_name(state, "state", RECIPE)
        deadline = self.deadline(timeout)
        yield from self.join(deadline)
        return (yield from self.states.signal(state, deadline))

    def barrier(self, state: str, target: int, timeout: float | None) -> Machine[None]:
        state = check_name(state, "state", RECIPE)
        check_target(target)
        deadline = Deadline(check_timeout(timeout))
        if target == 0:
            return
        join_time = None if deadline.unbounded else max(deadline.remaining() or 0.0, 1.0)
        yield from self.join(self.deadline(join_time))
        yield from self.states.wait_for(state, target, deadline, self.instance_count)

    def signal_and_wait(self, state: str, target: int, timeout: float | None) -> Machine[int]:
        check_target(target)
        deadline = Deadline(check_timeout(timeout))
        seq = yield from self.signal_entry(state, deadline.remaining())
        if seq < target:  # entries are dense: ours being number >= target means the count is there
            yield from self.states.wait_for(state, target, deadline, self.instance_count)
        return seq

    def abort(self, state: str, reason: str) -> Machine[None]:
        state = check_name(state, "state", RECIPE)
        yield from self.requests.create(f"{self.root}/aborted/{state}", self.deadline(None), value=reason.encode())

    # ---- topics ------------------------------------------------------------------------
    def publish(self, topic: str, payload: Any, timeout: float | None) -> Machine[int]:
        topic = check_name(topic, "topic", RECIPE)
        return (yield from publish(self.requests, self.root, topic, payload, self.deadline(timeout)))

    def subscription(self, topic: str, start: int, timeout: float | None) -> Subscription:
        topic = check_name(topic, "topic", RECIPE)
        if isinstance(start, bool) or not isinstance(start, int) or start < 1:
            raise InvalidArgument(f"start must be an int >= 1, got {start!r}", recipe=RECIPE)
        self.requests.ensure_usable()
        return Subscription(self.requests, self.root, topic, start, check_timeout(timeout))

    def publish_and_wait(
        self, topic: str, payload: Any, state: str, target: int, timeout: float | None
    ) -> Machine[int]:
        deadline = Deadline(check_timeout(timeout))
        seq = yield from self.publish(topic, payload, deadline.remaining())
        yield from self.signal_and_wait(state, target, deadline.remaining())
        return seq

    # ---- exchange ----------------------------------------------------------------------
    def exchange(self, key: str, data: Any, participants: int, timeout: float | None) -> Machine[dict[str, Any]]:
        """Contribute ``data`` and return everyone's, keyed by instance id, once
        ``participants`` instances have contributed (autotest's SyncData)."""
        r = self.requests
        key = check_name(key, "key", RECIPE)
        check_count(participants, "participants")
        value = encode(data, "data")
        deadline = Deadline(check_timeout(timeout))
        base = f"{self.root}/exchange/{key}"
        if (yield from r.create(f"{base}/{self.instance_id}", deadline, value=value)) is None:
            message = f"instance {self.instance_id} already contributed to exchange {key!r}"
            raise InvalidState(message, path=base, recipe=RECIPE)
        yield from self.signal_and_wait(f"exchange.{key}", participants, deadline.remaining())
        result = {}
        for name in (yield from r.get_children(base, deadline)):
            found = yield from r.get(f"{base}/{name}", deadline)
            if found is not None:
                result[name] = json.loads(found[0].decode())
        return result

    # ---- housekeeping ------------------------------------------------------------------
    def counts(self) -> Machine[dict[str, int]]:
        """Signals per state so far."""
        r = self.requests
        deadline = r.default_deadline()
        out = {}
        for state in (yield from r.get_children(f"{self.root}/states", deadline, missing_ok=True)):
            stat = yield from r.exists(f"{self.root}/states/{state}", deadline)
            if stat is not None:
                out[state] = stat.numChildren  # entries are never deleted
        return out

    def cleanup(self, timeout: float | None) -> Machine[None]:
        """Delete this run's nodes; refused while any other instance is present."""
        deadline = self.deadline(timeout)
        others = yield from self._others_present(deadline)
        if others:
            message = f"run {self.namespace!r} still has live instances: {', '.join(sorted(others))}"
            raise InvalidState(message, path=self.root, recipe=RECIPE)
        yield from self.leave()
        for attempt in range(CLEANUP_TRIES):
            try:
                yield from self._delete_tree(self.root, deadline)
                return
            except ZkSyncError:
                if attempt == CLEANUP_TRIES - 1:
                    raise
                yield Wait(Deadline(CLEANUP_PAUSE))

    def _others_present(self, deadline: Deadline) -> Machine[list[str]]:
        r = self.requests
        others = []
        for name in (yield from r.get_children(f"{self.root}/instances", deadline, missing_ok=True)):
            path = f"{self.root}/instances/{name}"
            found = yield from r.get(path, deadline)
            if found is not None and path != self.presence:
                others.append(found[0].decode(errors="replace"))
        return others

    def _delete_tree(self, path: str, deadline: Deadline) -> Machine[None]:
        for child in (yield from self.requests.get_children(path, deadline, missing_ok=True)):
            yield from self._delete_tree(f"{path}/{child}", deadline)
        yield from self.requests.delete(path, deadline)


def make_core(
    requests_for: Callable[[str], Requests],
    namespace: str,
    instance_id: str,
    instance_count: int | None,
    spawn: Spawn,
    follow_connection: Callable[[bool], None],
) -> SyncCore:
    """A core for ``namespace`` after checking every argument (nothing is sent)."""
    namespace = check_name(namespace, "namespace", RECIPE)
    instance_id = check_name(instance_id, "instance_id", RECIPE)
    if instance_count is not None:
        check_count(instance_count, "instance_count")
    requests = requests_for(f"{ROOT}/{namespace}")
    return SyncCore(requests, namespace, instance_id, instance_count, spawn, follow_connection)
