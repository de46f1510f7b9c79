"""Session watch: one per kazoo client, shared by every recipe that uses the client.

It answers three questions the recipes ask:

* *Is the session still trustworthy?*  kazoo reports LOST only when it reconnects and the
  server says "expired".  A client cut off from the ensemble would otherwise believe in its
  ephemeral nodes for as long as the partition lasts.  Here the session is declared lost
  locally once the connection has been suspended for ``grace`` seconds, where ``grace`` is
  chosen so that the declaration comes no later than the server can expire the session:

  kazoo sends a ping every ``T/3`` (T = negotiated session timeout) and gives up on a ping
  unanswered after another ``T/3``; so when SUSPENDED is reported, the server heard from us at
  most ``2T/3`` ago and cannot expire the session sooner than ``T/3`` from now.  We use
  ``grace = 0.3 T``.  (A process stalled for longer than that, or a member cut off from its
  leader but still answering pings, can still be overtaken: fencing tokens cover those.)

* *Wake me when anything changes.*  Waiters register an event that is set on every
  connection state change, in addition to their znode watch, because kazoo drops watches
  (firing an empty event) when the connection is suspended.

* *Clean up later.*  A node we no longer want but could not delete while disconnected is
  deleted once the connection is back (if the session survived; otherwise it is gone anyway).

Lifetime.  The watch lives on its client (an attribute), and holds the client: the two form a
cycle that the garbage collector frees once the application drops the client, with everything
the recipes registered on it.  Nothing global refers to either.  What a watch starts holds it
(and so the client) no longer than its own delay: the suspension timer and the timers of
:meth:`SessionWatch.call_later` are cancelled when the session ends (expiry or ``stop()``), and
the deferred deletes give up once the client is stopped.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from kazoo.client import KazooClient
from kazoo.exceptions import NoNodeError
from kazoo.protocol.states import KazooState

from ._util import Deadline, attached
from .errors import InvalidArgument, SessionExpired

log = logging.getLogger("zksync.session")

LostCallback = Callable[[str], None]

GRACE_FRACTION = 0.3


def session_for(client: KazooClient, recipe: str = "zksync") -> SessionWatch:
    """The SessionWatch of ``client``, created on first use.

    The watch is kept on the client itself (see :func:`zksync._util.attached`)."""
    if not isinstance(client, KazooClient):
        raise InvalidArgument(f"client must be a kazoo.client.KazooClient, not {type(client).__name__}", recipe=recipe)
    return attached(client, "_zksync_session_watch", SessionWatch, lambda: SessionWatch(client))


def install_timeout_probe(client: KazooClient) -> None:
    """Record the negotiated session timeout of every future connection of ``client``.

    kazoo keeps the negotiated value in a local variable; its connection handler returns the
    read timeout (2/3 of it) from ``_connect``.  We wrap that one call on this client's
    handler instance.  Without the probe the requested timeout is assumed.
    """
    conn = getattr(client, "_connection", None)
    original = getattr(conn, "_connect", None)
    if conn is None or original is None or getattr(original, "_zksync_probe", False):
        return

    def probed(*args: Any, **kwargs: Any) -> Any:
        result = original(*args, **kwargs)
        try:
            client._zksync_negotiated_timeout = float(result[0]) * 1.5 / 1000.0
        except (TypeError, ValueError, IndexError):  # pragma: no cover - a kazoo we do not know
            pass
        return result

    probed._zksync_probe = True  # type: ignore[attr-defined,unused-ignore]
    conn._connect = probed


class SessionWatch:
    def __init__(self, client: KazooClient) -> None:
        self.client = client
        self._lock = threading.Lock()
        self._connected = threading.Event()
        self._wakers: set[Callable[[], None]] = set()
        self._lost_callbacks: dict[int, LostCallback] = {}
        self._next_token = 0
        self._generation = 0  # bumps every time the session is (declared) lost
        self._disconnections = 0  # connection losses (SUSPENDED or LOST) reported by kazoo
        self._expirations = 0  # session ends (LOST: expired, or the client closed) reported by kazoo
        self._suspended_at: float | None = None
        self._last_suspended_at: float | None = None  # kept after the connection is back
        self._timer: threading.Timer | None = None
        self._locally_lost = False
        self._deferred_deletes: set[str] = set()
        self._later: dict[int, tuple[threading.Timer, Callable[[], None]]] = {}
        install_timeout_probe(client)
        if client.state == KazooState.CONNECTED:
            self._connected.set()
        client.add_listener(self._listener)

    # ---- facts -------------------------------------------------------------------------
    @property
    def session_timeout(self) -> float:
        negotiated = getattr(self.client, "_zksync_negotiated_timeout", None)
        if negotiated:
            return float(negotiated)
        return float(self.client._session_timeout) / 1000.0

    @property
    def grace(self) -> float:
        return GRACE_FRACTION * self.session_timeout

    @property
    def generation(self) -> int:
        return self._generation

    @property
    def last_suspended_at(self) -> float | None:
        """``time.monotonic()`` when the connection was last lost (it may be back since)."""
        return self._last_suspended_at

    @property
    def chroot(self) -> str:
        return str(self.client.chroot or "")

    @property
    def disconnections(self) -> int:
        """How many times kazoo reported the connection lost (SUSPENDED or LOST).  kazoo drops
        every watch of the client each time (with an empty event), so a watch set before a
        change of this count may be gone."""
        return self._disconnections

    @property
    def expirations(self) -> int:
        """How many times kazoo reported the session lost (LOST: it expired, or the client was
        closed).  Unlike :attr:`generation`, a suspension that lasts long is not counted."""
        return self._expirations

    @property
    def session_id(self) -> int | None:
        cid = self.client.client_id
        return cid[0] if cid else None

    def is_connected(self) -> bool:
        return self._connected.is_set() and not self._locally_lost

    def link_up(self) -> bool:
        """Connected, whether or not the session was declared lost meanwhile."""
        return self._connected.is_set()

    def stopped(self) -> bool:
        return bool(self.client._stopped.is_set())

    # ---- waiting -----------------------------------------------------------------------
    def add_waker(self, wake: Callable[[], None]) -> None:
        """Call ``wake()`` on every connection state change (on kazoo's threads: it must not
        block)."""
        with self._lock:
            self._wakers.add(wake)

    def remove_waker(self, wake: Callable[[], None]) -> None:
        with self._lock:
            self._wakers.discard(wake)

    def wait_connected(self, deadline: Deadline) -> bool:
        """Block until connected (True) or the deadline passes / the client stops (False)."""
        while True:
            if self.stopped():
                raise SessionExpired("the client was stopped")
            remaining = deadline.remaining()
            step = 0.5 if remaining is None else min(0.5, remaining)
            if self._connected.wait(step) and not self._locally_lost:
                return True
            if deadline.expired():
                return False
            if self._locally_lost and self._connected.is_set():
                # declared lost but the connection came back: nothing to wait for
                return True

    # ---- lost notification -------------------------------------------------------------
    def on_lost(self, callback: LostCallback) -> int:
        with self._lock:
            self._next_token += 1
            self._lost_callbacks[self._next_token] = callback
            return self._next_token

    def cancel_lost(self, token: int) -> None:
        with self._lock:
            self._lost_callbacks.pop(token, None)

    def delete_soon(self, path: str) -> None:
        """Delete ``path`` without waiting: now when connected, else once the connection is back."""
        if self.stopped():
            return  # closing the session removes ephemeral nodes
        if not self._connected.is_set():
            self.delete_when_connected(path)
            return

        def settled(result: Any) -> None:
            if result.exception is not None and not isinstance(result.exception, NoNodeError):
                self.delete_when_connected(path)

        try:
            self.client.delete_async(path).rawlink(settled)
        except Exception:
            self.delete_when_connected(path)

    def delete_when_connected(self, path: str) -> None:
        """Delete ``path`` once the connection is back (a no-op if the session is lost)."""
        if self.stopped():
            return  # closing the session removes our ephemeral nodes
        with self._lock:
            self._deferred_deletes.add(path)
        if self._connected.is_set():
            self._spawn(self._run_deferred_deletes)

    def call_later(self, delay: float, callback: Callable[[], None]) -> None:
        """Run ``callback`` on a daemon timer after ``delay`` seconds, unless the session ends
        first (it expires, or the client is stopped): then the timer is cancelled, and what the
        callback holds (the client, through a recipe's objects) is let go at once.  For work
        that is pointless once the session is gone, such as sweeping its ephemeral nodes."""
        if self.stopped():
            return
        with self._lock:
            self._next_token += 1
            token = self._next_token
            timer = threading.Timer(delay, self._run_later, args=(token,))
            timer.daemon = True
            self._later[token] = (timer, callback)
        timer.start()

    def _run_later(self, token: int) -> None:
        with self._lock:
            entry = self._later.pop(token, None)
        if entry is None:
            return
        try:
            entry[1]()
        except Exception:
            log.exception("delayed cleanup raised")

    # ---- state machine -----------------------------------------------------------------
    def _listener(self, state: str) -> None:
        # Runs on kazoo's event thread: never block here.
        fire: list[LostCallback] = []
        reason = ""
        with self._lock:
            wakers = list(self._wakers)
            if state == KazooState.CONNECTED:
                self._cancel_timer()
                self._suspended_at = None
                self._locally_lost = False
                self._connected.set()
                run_deletes = bool(self._deferred_deletes)
            elif state == KazooState.SUSPENDED:
                self._disconnections += 1
                self._connected.clear()
                self._suspended_at = self._last_suspended_at = time.monotonic()
                self._cancel_timer()
                timer = threading.Timer(self.grace, self._suspension_too_long, args=(self._suspended_at,))
                timer.daemon = True
                self._timer = timer
                timer.start()
                run_deletes = False
            else:  # LOST: the session expired or the client was closed
                self._disconnections += 1
                self._expirations += 1
                self._connected.clear()
                self._cancel_timer()
                self._deferred_deletes.clear()
                for timer, _ in self._later.values():
                    timer.cancel()
                self._later.clear()
                if not self._locally_lost:
                    fire, reason = self._take_callbacks(), "session expired"
                self._locally_lost = False
                run_deletes = False
        self._fire(fire, reason)  # before the wake-ups: a woken waiter must find its attempt marked lost
        for wake in wakers:
            wake()
        if run_deletes:
            self._spawn(self._run_deferred_deletes)

    def _suspension_too_long(self, suspended_at: float) -> None:
        with self._lock:
            if self._suspended_at != suspended_at or self._connected.is_set():
                return
            self._locally_lost = True
            fire = self._take_callbacks()
            wakers = list(self._wakers)
        log.warning("connection suspended for %.2fs: treating the session as lost", self.grace)
        self._fire(fire, f"connection suspended for more than {self.grace:.2f}s")
        for wake in wakers:
            wake()

    def _take_callbacks(self) -> list[LostCallback]:
        # Callbacks stay registered until their owner cancels them: one object may live
        # through several losses (an acquire that starts over, for example).
        self._generation += 1
        return list(self._lost_callbacks.values())

    def _fire(self, callbacks: list[LostCallback], reason: str) -> None:
        for callback in callbacks:
            try:
                callback(reason)
            except Exception:  # a user's callback must not break the session watch
                log.exception("lost-callback raised")

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _spawn(self, target: Callable[[], None]) -> None:
        threading.Thread(target=target, name="zksync-cleanup", daemon=True).start()

    def _run_deferred_deletes(self) -> None:
        with self._lock:
            paths = list(self._deferred_deletes)
        for path in paths:
            if self.stopped():
                return  # the session's end removes them: do not keep a stopped client busy
            try:
                self.client.delete_async(path).get(timeout=self.session_timeout)
            except NoNodeError:
                pass
            except Exception as exc:  # try again on the next reconnect
                log.info("deferred delete of %s failed: %r", path, exc)
                continue
            with self._lock:
                self._deferred_deletes.discard(path)
