"""The request layer for blocking code that is not a machine yet: each call runs the core's
request machine (:mod:`zksync._core.requests`) to its end on the calling thread."""

from __future__ import annotations

import threading
from typing import Any

from kazoo.client import KazooClient
from kazoo.protocol.states import WatchedEvent, ZnodeStat
from kazoo.security import ACL

from ._core.effects import Multi, WatchSpec
from ._core.requests import Requests, failed_step
from ._drive.blocking import run
from ._session import SessionWatch, session_for
from ._util import Deadline


class Waiter:
    """One event set by a znode watch *or* by any connection state change."""

    def __init__(self, session: SessionWatch) -> None:
        self.session = session
        self.event = threading.Event()
        self.last: WatchedEvent | None = None
        session.add_waker(self.event.set)

    def watch(self, event: WatchedEvent) -> None:
        self.last = event
        self.event.set()

    def wait(self, deadline: Deadline) -> bool:
        """True when woken, False when the deadline passed first."""
        woken = self.event.wait(deadline.remaining())
        self.event.clear()
        return woken

    def close(self) -> None:
        self.session.remove_waker(self.event.set)

    def __enter__(self) -> Waiter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Ops:
    """ZooKeeper calls for one recipe object, bounded, retried and translated (blocking)."""

    def __init__(self, client: KazooClient, recipe: str, path: str) -> None:
        self.client = client
        self.recipe = recipe
        self.path = path
        self.session = session_for(client, recipe)
        self.requests = Requests(self.session, recipe, path)

    def ensure_usable(self) -> None:
        self.requests.ensure_usable()

    def default_deadline(self) -> Deadline:
        return self.requests.default_deadline()

    def get_children(
        self, path: str, deadline: Deadline, watch: WatchSpec = None, *, missing_ok: bool = False
    ) -> list[str]:
        return run(self.requests.get_children(path, deadline, watch, missing_ok=missing_ok), self.session)

    def sync(self, path: str, deadline: Deadline) -> None:
        run(self.requests.sync(path, deadline), self.session)

    def exists(self, path: str, deadline: Deadline, watch: WatchSpec = None) -> ZnodeStat | None:
        return run(self.requests.exists(path, deadline, watch), self.session)

    def commit(self, transaction: Multi, deadline: Deadline) -> list[Any]:
        return run(self.requests.commit(transaction, deadline), self.session)

    def get(self, path: str, deadline: Deadline, watch: WatchSpec = None) -> tuple[bytes, ZnodeStat] | None:
        return run(self.requests.get(path, deadline, watch), self.session)

    def delete(self, path: str, deadline: Deadline, version: int = -1) -> bool:
        return run(self.requests.delete(path, deadline, version), self.session)

    def create(
        self,
        path: str,
        deadline: Deadline,
        *,
        value: bytes = b"",
        acl: list[ACL] | None = None,
        ephemeral: bool = False,
        sequence: bool = False,
        retry: bool = True,
    ) -> tuple[str, ZnodeStat] | None:
        machine = self.requests.create(
            path, deadline, value=value, acl=acl, ephemeral=ephemeral, sequence=sequence, retry=retry
        )
        return run(machine, self.session)

    def ensure_path(self, path: str, deadline: Deadline, acl: list[ACL] | None = None) -> None:
        run(self.requests.ensure_path(path, deadline, acl), self.session)


__all__ = ["Ops", "Waiter", "failed_step"]
