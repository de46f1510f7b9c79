"""Coordination for the instances of a distributed test: states, barriers, topics, exchange.

The API of Testground's sync service and autotest's barrier / SyncData, on ZooKeeper:

    sync = zksync.Sync(client, "my-run")           # or zksync.Sync.from_env()
    seq = sync.signal_and_wait("ready", target=10, timeout=60)
    sync.publish("addresses", {"id": seq, "addr": "10.0.0.5:9000"})
    for payload in sync.subscribe("addresses", timeout=30): ...
    everyone = sync.exchange("keys", my_public_key, participants=10, timeout=60)

The logic lives in :mod:`zksync._core.sync` (layout, presence ring, departures and aborts,
states, topics, exchange), shared with ``zksync.aio.Sync``.  Liveness costs one watch per
instance (on its predecessor's presence), so a death notifies one instance, which records it;
barriers fail fast with :class:`ParticipantLost` when an instance that had not signalled the
state is gone, or with :class:`BarrierAborted`, and time out with :class:`SyncTimeout` naming
the instances that never signalled.
"""

from __future__ import annotations

import os
import socket
import threading
import uuid
from collections.abc import Iterator
from concurrent.futures import Future
from typing import Any

from kazoo.client import KazooClient
from kazoo.security import ACL

from ._core.effects import Machine
from ._core.requests import Requests
from ._core.sync import END, SyncCore, make_core
from ._core.sync import Subscription as SubscriptionCore
from ._drive.background import spawn
from ._drive.blocking import run
from ._session import SessionWatch, session_for
from ._util import check_acl
from .errors import BarrierAborted, InvalidArgument, ParticipantLost, SyncTimeout

RECIPE = "Sync"


def default_instance_id() -> str:
    return f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"


def namespace_from_env() -> tuple[str, str | None, int | None]:
    """(namespace, instance id, instance count) from Testground's variables:
    ``TEST_PLAN``/``TEST_CASE``/``TEST_RUN`` name the namespace (``TEST_GROUP_ID`` is not part
    of it: groups of one run coordinate with each other)."""
    run_id = os.environ.get("TEST_RUN")
    if not run_id:
        raise InvalidArgument("TEST_RUN is not set: from_env needs Testground's TEST_* variables", recipe=RECIPE)
    parts = [os.environ.get("TEST_PLAN", "plan"), os.environ.get("TEST_CASE", "case"), run_id]
    namespace = "-".join(p.replace("/", "_") for p in parts)
    count = os.environ.get("TEST_INSTANCE_COUNT", "")
    return namespace, os.environ.get("TEST_INSTANCE_ID") or None, int(count) if count.isdigit() else None


class SyncBase:
    """What both front-ends share: the core, its background work and the reconnect hook."""

    recipe = RECIPE

    def __init__(
        self,
        client: KazooClient,
        namespace: str,
        instance_id: str | None = None,
        instance_count: int | None = None,
        *,
        acl: list[ACL] | None = None,
    ) -> None:
        self.client = client
        self._session: SessionWatch = session_for(client, RECIPE)
        self.acl = check_acl(acl, RECIPE)
        session = self._session
        own_acl = self.acl

        def background(machine: Machine[None], what: str) -> None:
            spawn(machine, session, what)

        self._core: SyncCore = make_core(
            lambda root: Requests(session, RECIPE, root, own_acl),
            namespace,
            instance_id or default_instance_id(),
            instance_count,
            background,
            self._follow_connection,
        )
        self.namespace = self._core.namespace
        self.instance_id = self._core.instance_id
        self.instance_count = self._core.instance_count
        self.root = self._core.root

    def _follow_connection(self, on: bool) -> None:
        if on:
            self._session.add_waker(self._connection_changed)
        else:
            self._session.remove_waker(self._connection_changed)

    def _connection_changed(self) -> None:
        if self._session.is_connected():
            self._core.reconnected()


class Subscription:
    """An iterator over a topic's payloads in publish order.  It ends when closed, or when no
    new payload arrives within ``timeout`` seconds (None: wait as long as it takes)."""

    def __init__(self, core: SubscriptionCore, session: SessionWatch) -> None:
        self._core = core
        self._session = session

    def close(self) -> None:
        self._core.close()

    def __iter__(self) -> Iterator[Any]:
        return self

    def __next__(self) -> Any:
        payload = run(self._core.next(), self._session)
        if payload is END:
            raise StopIteration
        return payload


class Sync(SyncBase):
    """The sync service of one run (``namespace``) for one instance."""

    @classmethod
    def from_env(cls, client: KazooClient | None = None) -> Sync:
        """Scoped by Testground's variables, so concurrent runs never collide (see
        :func:`namespace_from_env`)."""
        from . import connect

        namespace, instance, count = namespace_from_env()
        return cls(client or connect(), namespace, instance, count)

    def _run(self, machine: Machine[Any]) -> Any:
        return run(machine, self._session)

    # ---- presence ----------------------------------------------------------------------
    def join(self, timeout: float | None = None) -> None:
        """Announce this instance (done by every call that needs it; idempotent)."""
        self._run(self._core.join(self._core.deadline(timeout)))

    def leave(self) -> None:
        """Withdraw this instance's presence (closing the client does the same)."""
        self._run(self._core.leave())

    # ---- states and barriers -----------------------------------------------------------
    def signal_entry(self, state: str, timeout: float | None = None) -> int:
        """Signal ``state``; returns this signal's 1-based sequence number."""
        seq: int = self._run(self._core.signal_entry(state, timeout))
        return seq

    def barrier(self, state: str, target: int, timeout: float | None = None) -> None:
        """Return once at least ``target`` signals of ``state`` were made.

        Raises :class:`ParticipantLost` as soon as an instance that joined is gone without
        signalling ``state`` (with ``instance_count`` known: as soon as that puts ``target`` out
        of reach), :class:`BarrierAborted` when the state is aborted, and :class:`SyncTimeout`
        (a :class:`Timeout`) naming the instances that never signalled."""
        self._run(self._core.barrier(state, target, timeout))

    def barrier_async(self, state: str, target: int, timeout: float | None = None) -> Future[None]:
        """:meth:`barrier` in the background: a future that resolves (or fails) with it."""
        future: Future[None] = Future()

        def wait() -> None:
            try:
                self.barrier(state, target, timeout)
            except BaseException as exc:
                future.set_exception(exc)
            else:
                future.set_result(None)

        threading.Thread(target=wait, name=f"zksync-barrier-{state}", daemon=True).start()
        return future

    def signal_and_wait(self, state: str, target: int, timeout: float | None = None) -> int:
        """:meth:`signal_entry` then :meth:`barrier`; returns the sequence number."""
        seq: int = self._run(self._core.signal_and_wait(state, target, timeout))
        return seq

    def abort(self, state: str, reason: str = "aborted") -> None:
        """Make every barrier on ``state`` fail with :class:`BarrierAborted`."""
        self._run(self._core.abort(state, reason))

    # ---- topics ------------------------------------------------------------------------
    def publish(self, topic: str, payload: Any, timeout: float | None = None) -> int:
        """Append ``payload`` (JSON-serialisable) to ``topic``; returns its 1-based sequence."""
        seq: int = self._run(self._core.publish(topic, payload, timeout))
        return seq

    def subscribe(self, topic: str, start: int = 1, timeout: float | None = None) -> Subscription:
        """Payloads of ``topic`` in publish order from sequence ``start`` (earlier ones are
        replayed for late subscribers)."""
        return Subscription(self._core.subscription(topic, start, timeout), self._session)

    def publish_and_wait(self, topic: str, payload: Any, state: str, target: int, timeout: float | None = None) -> int:
        """Publish, then signal ``state`` and wait for ``target``; every error passes through."""
        seq: int = self._run(self._core.publish_and_wait(topic, payload, state, target, timeout))
        return seq

    def publish_subscribe(self, topic: str, payload: Any, timeout: float | None = None) -> tuple[int, Subscription]:
        """Publish, then subscribe to the whole topic (including our own payload)."""
        seq = self.publish(topic, payload, timeout)
        return seq, self.subscribe(topic, 1, timeout)

    # ---- exchange ----------------------------------------------------------------------
    def exchange(self, key: str, data: Any, participants: int, timeout: float | None = None) -> dict[str, Any]:
        """Contribute ``data`` and return everyone's, keyed by instance id, once
        ``participants`` instances have contributed (autotest's SyncData)."""
        result: dict[str, Any] = self._run(self._core.exchange(key, data, participants, timeout))
        return result

    # ---- housekeeping ------------------------------------------------------------------
    def counts(self) -> dict[str, int]:
        """Signals per state so far."""
        result: dict[str, int] = self._run(self._core.counts())
        return result

    def cleanup(self, timeout: float | None = None) -> None:
        """Delete this run's nodes.  Refused while any instance is still present, so a count
        in use is never removed."""
        self._run(self._core.cleanup(timeout))


__all__ = ["BarrierAborted", "ParticipantLost", "Subscription", "Sync", "SyncTimeout"]
