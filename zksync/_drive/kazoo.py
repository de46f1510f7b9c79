"""What every driver does the same way with a ``KazooClient``: start a request, release a node
without waiting long, sweep late duplicates.  Nothing here blocks except where it says so."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from kazoo.client import KazooClient
from kazoo.exceptions import NoNodeError, SessionExpiredError
from kazoo.interfaces import IAsyncResult
from kazoo.protocol.states import WatchedEvent

from .._core.effects import (
    WATCH,
    Check,
    Create,
    Delete,
    Effect,
    EnsurePath,
    Exists,
    Forget,
    Get,
    GetChildren,
    Listen,
    Multi,
    Request,
    SetData,
    Sweep,
    SyncPath,
    WakeHub,
    WatchSpec,
)
from .._core.queue import HANDOFF_DATA
from .._core.requests import failed_step
from .._session import SessionWatch

WatchFn = Callable[[WatchedEvent], None]


def _watch(spec: WatchSpec, own: WatchFn | None) -> WatchFn | None:
    if spec is WATCH:
        return own
    return spec  # type: ignore[return-value]  # None or a background owner's callable


def start(client: KazooClient, request: Request, own_watch: WatchFn | None = None) -> IAsyncResult:
    """Send ``request`` through kazoo; the reply arrives on the returned async result."""
    if isinstance(request, Exists):
        return client.exists_async(request.path, _watch(request.watch, own_watch))
    if isinstance(request, GetChildren):
        return client.get_children_async(
            request.path, _watch(request.watch, own_watch), include_data=request.include_stat
        )
    if isinstance(request, Get):
        return client.get_async(request.path, _watch(request.watch, own_watch))
    if isinstance(request, Create):
        return client.create_async(
            request.path,
            request.value,
            acl=request.acl,
            ephemeral=request.ephemeral,
            sequence=request.sequence,
            makepath=request.makepath,
            include_data=True,
        )
    if isinstance(request, Delete):
        return client.delete_async(request.path, request.version)
    if isinstance(request, SetData):
        return client.set_async(request.path, request.value, request.version)
    if isinstance(request, Multi):
        transaction = client.transaction()
        for op in request.ops:
            if isinstance(op, Create):
                transaction.create(op.path, op.value, acl=op.acl, ephemeral=op.ephemeral, sequence=op.sequence)
            elif isinstance(op, Delete):
                transaction.delete(op.path, op.version)
            elif isinstance(op, SetData):
                transaction.set_data(op.path, op.value, op.version)
            else:
                transaction.check(op.path, op.version)
        return transaction.commit_async()
    if isinstance(request, SyncPath):
        return client.sync_async(request.path)
    if isinstance(request, EnsurePath):
        return client.ensure_path_async(request.path, acl=request.acl)
    if isinstance(request, Check):
        return start(client, Multi((request,)), own_watch)
    raise TypeError(f"not a request: {request!r}")


def delete_if_created(client: KazooClient, pending: IAsyncResult) -> None:
    """A create we gave up waiting for may still succeed later: delete what it makes."""

    def completed(result: IAsyncResult) -> None:
        if result.successful():
            created = result.get()
            client.delete_async(created[0] if isinstance(created, tuple) else created)

    pending.rawlink(completed)


def release_node(session: SessionWatch, node: str, handoff: bool = False) -> IAsyncResult | None:
    """Start deleting our node: at once when connected (the caller may wait for the returned
    result), otherwise as soon as the connection is back.  With ``handoff`` (a holder's
    release), the delete is preceded by a data change in the same transaction, which tells the
    waiter behind us that we left as a holder.  Never raises."""
    client = session.client
    if session.stopped():
        return None  # closing the session removes ephemeral nodes
    if not session.is_connected():
        session.delete_when_connected(node)
        return None
    try:
        if handoff:
            transaction = client.transaction()
            transaction.set_data(node, HANDOFF_DATA)
            transaction.delete(node)
            pending = transaction.commit_async()
        else:
            pending = client.delete_async(node)
    except Exception:
        session.delete_when_connected(node)
        return None

    def settled(result: IAsyncResult) -> None:
        exc = result.exception
        if exc is None and handoff:  # a transaction reports a failed step in its results
            exc = failed_step(result.value or [])
            if exc is not None and not isinstance(exc, (NoNodeError, SessionExpiredError)):
                release_node(session, node)  # e.g. no WRITE permission: a plain delete
                return
        if exc is not None and not isinstance(exc, (NoNodeError, SessionExpiredError)):
            session.delete_when_connected(node)

    pending.rawlink(settled)
    return pending


def sweep_later(session: SessionWatch, parent: str, guid: str, recipe: str) -> None:
    """After a lost create reply, a duplicate of our node may land late (the request was still
    in flight).  Remove any node carrying ``guid`` now, and again once a session timeout has
    passed, when no request of the old connection can still arrive."""
    from .._core.requests import Requests
    from .._util import Deadline
    from .blocking import run

    requests = Requests(session, recipe, parent)

    def sweep() -> None:
        try:
            deadline = Deadline(session.session_timeout)
            if not session.wait_connected(deadline):
                return  # the next sweep, or the session's end, removes them
            for name in run(requests.get_children(parent, deadline, missing_ok=True), session):
                if guid in name:
                    run(requests.delete(f"{parent}/{name}", deadline), session)
        except Exception:  # best effort: the session's end removes them in any case
            pass

    threading.Thread(target=sweep, name="zksync-sweep", daemon=True).start()
    session.call_later(1.5 * session.session_timeout, sweep)  # cancelled if the session ends first


class RunState:
    """What every driver keeps for one running machine: its last watch event, and the wake-up
    functions it registered with the session and with news hubs (undone by :meth:`close`).
    A driver sets ``session_wake`` (called on connection changes) and ``news_wake`` (called on a
    hub's news); both are called on other threads and must not block."""

    session_wake: Callable[[], None]
    news_wake: Callable[[], None]

    def __init__(self, session: SessionWatch) -> None:
        self.session = session
        self.last: WatchedEvent | None = None
        self.registered = False
        self.hubs: list[WakeHub] = []

    def listen(self) -> None:
        """Connection changes wake us too (kazoo drops watches, with an empty event, when the
        connection is suspended): registered with the session on first need."""
        if not self.registered:
            self.registered = True
            self.session.add_waker(self.session_wake)

    def close(self) -> None:
        if self.registered:
            self.session.remove_waker(self.session_wake)
        for hub in self.hubs:
            hub.remove(self.news_wake)

    def local(self, effect: Effect) -> tuple[bool, Any]:
        """Effects every driver carries out alike, at once: (True, outcome), else (False, None)."""
        if isinstance(effect, Forget):
            self.last = None
            return True, None
        if isinstance(effect, Listen):
            self.hubs.append(effect.hub)
            effect.hub.add(self.news_wake)
            return True, None
        if isinstance(effect, Sweep):
            sweep_later(self.session, effect.parent, effect.guid, "zksync")
            return True, None
        return False, None


__all__ = ["RunState", "delete_if_created", "release_node", "start", "sweep_later"]
