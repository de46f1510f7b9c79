"""The background driver: runs a short machine on kazoo's own threads, step by step, each
step started by the previous request's reply.  For the bookkeeping that reacts to a watch (re-
arming it, recording what it saw): no thread of its own, nobody waits for it.

Such a machine may send requests, but not :class:`Wait` (there is nobody to block): it reacts
once and ends; the next watch event starts the next one.  A request that meets a lost
connection fails the machine; its owner starts it again when the connection is back.  Every
failure is logged with what the machine was doing, never dropped.
"""

from __future__ import annotations

import logging
from typing import Any

from kazoo import exceptions as kz
from kazoo.interfaces import IAsyncResult

from .._core.effects import AwaitConnected, Effect, Forget, Machine, Release, Send, SendMany, Sweep
from .._session import SessionWatch
from ..errors import ConnectionLost, ZkSyncError
from . import kazoo as io

log = logging.getLogger("zksync.background")

_EXPECTED = (ConnectionLost, kz.ConnectionLoss, kz.SessionExpiredError, kz.ConnectionClosedError)


def spawn(machine: Machine[Any], session: SessionWatch, what: str) -> None:
    """Start ``machine`` now; it goes on as its replies arrive."""
    _Background(machine, session, what).step(None, None)


class _Background:
    __slots__ = ("machine", "session", "what")

    def __init__(self, machine: Machine[Any], session: SessionWatch, what: str) -> None:
        self.machine = machine
        self.session = session
        self.what = what

    def step(self, value: Any, error: BaseException | None) -> None:
        while True:
            try:
                effect = self.machine.throw(error) if error is not None else self.machine.send(value)
            except StopIteration:
                return
            except _EXPECTED as exc:
                log.info("%s: stopped by the connection (%s); resumed once it is back", self.what, exc)
                return
            except ZkSyncError as exc:
                if self.session.stopped() or not self.session.link_up():  # closing, or no connection to wait for
                    log.info("%s: stopped by the connection (%s); resumed once it is back", self.what, exc)
                else:
                    log.warning("%s failed: %s", self.what, exc)
                return
            except Exception:
                log.exception("%s failed", self.what)
                return
            try:
                if self._started(effect):
                    return  # the reply continues the machine
                value, error = self._immediate(effect), None
            except Exception as exc:
                value, error = None, exc

    def _started(self, effect: Effect) -> bool:
        if isinstance(effect, Send):
            pending = io.start(self.session.client, effect.request)
            pending.rawlink(self._replied)
            return True
        if isinstance(effect, SendMany):
            raise TypeError("pipelined requests are not for background machines")
        return False

    def _replied(self, result: IAsyncResult) -> None:
        exc = result.exception
        self.step(None if exc is not None else result.value, exc)

    def _immediate(self, effect: Effect) -> Any:
        if isinstance(effect, AwaitConnected):
            return self.session.link_up()  # nobody waits here: a machine that is not connected ends
        if isinstance(effect, Forget):
            return None
        if isinstance(effect, Release):
            io.release_node(self.session, effect.node, effect.handoff)
            return None
        if isinstance(effect, Sweep):
            io.sweep_later(self.session, effect.parent, effect.guid, "zksync")
            return None
        raise TypeError(f"a background machine cannot {type(effect).__name__}")
