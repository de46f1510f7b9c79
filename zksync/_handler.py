"""The kazoo handler :func:`zksync.connect` gives the clients it makes: kazoo's threading handler,
waiting on sockets with ``poll(2)`` instead of a new ``epoll`` selector per wait.

kazoo's connection thread waits on its socket before every read and every write, and its
threading handler (``kazoo.handlers.utils.selector_select``) builds a ``selectors.DefaultSelector``
for each of those waits: on Linux an ``epoll_create``, an ``epoll_ctl`` per socket, the wait and a
``close``, plus the Python objects around them, about five times per request and reply.  A
``select.poll`` object is a plain Python object whose one system call is the wait itself, with
no limit on descriptor numbers (kazoo left ``select.select`` for that limit).  On an
uncontended lock cycle (create, getChildren, release) it cut the client's CPU time from 1.46 to
1.06 ms per cycle (medians of six alternating blocks of 400 cycles in one process).

It also runs zksync's own wake-ups where kazoo produces their cause, on the connection thread,
instead of queueing them for kazoo's callback or completion thread: the watch callbacks of the
waiting calls, and the asyncio driver's hand-over of each reply to its event loop.  Those
callbacks (marked with :func:`inline`) only record what came and wake their waiter (a
``threading.Event``, or ``call_soon_threadsafe``), so the hop to another thread and back was
pure delay on every hand-off and every asyncio request.  Every other callback (kazoo's recipes,
a user's watches, zksync's background bookkeeping, which may wait) keeps kazoo's queues and
their order.

Only clients made by :func:`zksync.connect` get it, and only when the caller passes no
``handler=`` of their own and the platform has ``select.poll`` (gevent's monkey-patching removes
it: a gevent program passes kazoo's gevent handler).  Everything else is kazoo's handler as is.
"""

from __future__ import annotations

import errno
import functools
import logging
import select
from collections.abc import Callable
from typing import Any, TypeVar

from kazoo.handlers.threading import AsyncResult, SequentialThreadingHandler

INLINE = "_zksync_inline"  # the attribute that marks a callback to run on the connection thread
F = TypeVar("F", bound=Callable[..., Any])
log = logging.getLogger(__name__)

_READ = select.POLLIN | select.POLLPRI if hasattr(select, "poll") else 0
_WRITE = select.POLLOUT if hasattr(select, "poll") else 0
_READY_READ = _READ | (select.POLLHUP | select.POLLERR if hasattr(select, "poll") else 0)
_READY_WRITE = _WRITE | (select.POLLHUP | select.POLLERR if hasattr(select, "poll") else 0)
_INVALID = select.POLLNVAL if hasattr(select, "poll") else 0


def _fd(obj: Any) -> int:
    fd = obj if isinstance(obj, int) else obj.fileno()
    if not isinstance(fd, int) or fd < 0:
        raise ValueError(f"Invalid file descriptor: {fd!r}")  # as kazoo's own select raises
    return fd


def poll_select(
    rlist: list[Any], wlist: list[Any], xlist: list[Any], timeout: float | None = None
) -> tuple[list[Any], list[Any], list[Any]]:
    """``select.select``'s contract (the ready objects of ``rlist`` and ``wlist``) with one
    ``poll(2)``; ``timeout`` in seconds, None to wait without end."""
    if timeout is not None:
        if isinstance(timeout, bool) or not isinstance(timeout, (int, float)):
            raise TypeError("timeout must be a number")
        if timeout < 0:
            raise ValueError("timeout must be non-negative")
    poller = select.poll()
    masks: dict[int, int] = {}
    readers: dict[int, list[Any]] = {}
    writers: dict[int, list[Any]] = {}
    for obj in rlist:
        fd = _fd(obj)
        masks[fd] = masks.get(fd, 0) | _READ
        readers.setdefault(fd, []).append(obj)
    for obj in wlist:
        fd = _fd(obj)
        masks[fd] = masks.get(fd, 0) | _WRITE
        writers.setdefault(fd, []).append(obj)
    for fd, mask in masks.items():
        poller.register(fd, mask)
    # poll counts milliseconds: round up, so that a short wait is not a busy loop
    wait = None if timeout is None else int(timeout * 1000) + (timeout * 1000 % 1 > 0)
    ready_r: list[Any] = []
    ready_w: list[Any] = []
    for fd, events in poller.poll(wait):
        if events & _INVALID:
            raise OSError(errno.EBADF, f"file descriptor {fd} is not open")  # kazoo: the connection dropped
        if events & _READY_READ and fd in readers:
            ready_r.extend(readers[fd])
        if events & _READY_WRITE and fd in writers:
            ready_w.extend(writers[fd])
    return ready_r, ready_w, []


class PollingHandler(SequentialThreadingHandler):  # type: ignore[misc]  # kazoo is untyped
    """kazoo's :class:`SequentialThreadingHandler`, waiting on sockets with :func:`poll_select`."""

    name = "sequential_threading_poll_handler"

    def select(self, *args: Any, **kwargs: Any) -> Any:
        return poll_select(*args, **kwargs)

    def dispatch_callback(self, callback: Any) -> None:
        """Run a watch callback marked by :func:`inline` here and now (kazoo calls this on its
        connection thread); queue every other one as kazoo does."""
        if callback.type == "watch" and getattr(callback.func, INLINE, False):
            _call_inline(callback.func, *callback.args)
            return
        super().dispatch_callback(callback)

    def async_result(self) -> Any:
        return _Result(self)


class _Result(AsyncResult):  # type: ignore[misc]  # kazoo is untyped
    """kazoo's result of a request, running the callbacks marked by :func:`inline` where the
    result is set (the connection thread, for a reply), the others queued as kazoo does."""

    def _do_callbacks(self) -> None:
        for callback in self._callbacks:
            if getattr(callback, INLINE, False):
                _call_inline(callback, self)
            elif self._handler.running:
                self._handler.completion_queue.put(functools.partial(callback, self))
            else:  # the handler is stopped: nobody would run the queue
                callback(self)


def _call_inline(func: Callable[..., Any], *args: Any) -> None:
    try:
        func(*args)
    except Exception:  # never let a waiter's wake-up break the connection
        log.exception("a callback run on the connection thread failed")


def inline(func: F) -> F:
    """Mark ``func`` (a function, or the function behind a method) as a callback that may run on
    kazoo's connection thread: it must not block, send a request and wait, or take long."""
    setattr(func, INLINE, True)
    return func


def default_handler() -> PollingHandler | None:
    """The handler :func:`zksync.connect` uses when given none; None where ``poll`` is missing."""
    return PollingHandler() if hasattr(select, "poll") else None
