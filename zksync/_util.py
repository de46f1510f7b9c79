"""Small shared helpers: the deadline every wait uses, and argument checks."""

from __future__ import annotations

import math
import re
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from kazoo.security import ACL

from .errors import InvalidArgument, Timeout

_SEGMENT = re.compile(r"[^\x00-\x1f\x7f/]+")


class Deadline:
    """A point in time computed once; every wait asks it for the time left.

    ``Deadline(None)`` never expires, so one code path serves both cases.  ``Deadline(0)``
    means "try once": the requests of the attempt still get their answer, but nothing waits
    for another participant.
    """

    __slots__ = ("_at", "try_once")

    def __init__(self, timeout: float | None) -> None:
        self._at = None if timeout is None else time.monotonic() + timeout
        self.try_once = timeout == 0

    @property
    def unbounded(self) -> bool:
        return self._at is None

    def remaining(self) -> float | None:
        """Seconds left (never negative), or None when there is no deadline."""
        if self._at is None:
            return None
        return max(0.0, self._at - time.monotonic())

    def expired(self) -> bool:
        return self._at is not None and time.monotonic() >= self._at

    def check(self, what: str, *, path: str | None = None, recipe: str | None = None) -> None:
        if self.expired():
            raise Timeout(f"timed out {what}", path=path, recipe=recipe)


def check_timeout(timeout: float | None, name: str = "timeout") -> float | None:
    if timeout is None:
        return None
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)):
        raise InvalidArgument(f"{name} must be a number of seconds or None, not {type(timeout).__name__}")
    if math.isnan(timeout) or timeout < 0:
        raise InvalidArgument(f"{name} must be >= 0, got {timeout!r}")
    return float(timeout)


def check_count(value: object, name: str, recipe: str, minimum: int = 1) -> int:
    """An ``int`` of at least ``minimum`` (a bool is not one)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise InvalidArgument(f"{name} must be an int >= {minimum}, got {value!r}", recipe=recipe)
    return value


def check_path(path: object, recipe: str) -> str:
    """An absolute ZooKeeper path, not the root, without empty, '.' or '..' segments."""
    if not isinstance(path, str):
        raise InvalidArgument(f"path must be a str, not {type(path).__name__}", recipe=recipe)
    if not path.startswith("/"):
        raise InvalidArgument(f"path must be absolute (start with '/'): {path!r}", recipe=recipe)
    if path == "/":
        raise InvalidArgument("path must not be the root '/'", recipe=recipe)
    if path.endswith("/"):
        raise InvalidArgument(f"path must not end with '/': {path!r}", recipe=recipe)
    for segment in path[1:].split("/"):
        if segment in ("", ".", "..") or not _SEGMENT.fullmatch(segment):
            raise InvalidArgument(f"malformed path segment {segment!r} in {path!r}", recipe=recipe)
        if segment == "zookeeper" and path.startswith("/zookeeper"):
            raise InvalidArgument("paths under /zookeeper are reserved by the server", recipe=recipe)
    return path


def check_name(value: object, what: str, recipe: str) -> str:
    """A single path segment (an identifier, a state or topic name)."""
    if not isinstance(value, str) or not value:
        raise InvalidArgument(f"{what} must be a non-empty str, got {value!r}", recipe=recipe)
    if value in (".", "..") or not _SEGMENT.fullmatch(value) or len(value) > 200:
        raise InvalidArgument(
            f"{what} must be one path segment without '/' or control characters: {value!r}", recipe=recipe
        )
    return value


def check_acl(acl: object, recipe: str) -> list[ACL] | None:
    if acl is None:
        return None
    if isinstance(acl, ACL):
        return [acl]
    if not isinstance(acl, Sequence) or isinstance(acl, (str, bytes)) or not acl:
        raise InvalidArgument("acl must be a non-empty list of kazoo.security.ACL", recipe=recipe)
    items: list[Any] = list(acl)
    for item in items:
        if not isinstance(item, ACL):
            raise InvalidArgument(f"acl entries must be kazoo.security.ACL, got {item!r}", recipe=recipe)
    return items


T = TypeVar("T")
_attach_lock = threading.RLock()  # a make() may itself attach something else


def attached(owner: object, name: str, kind: type[T], make: Callable[[], T]) -> T:
    """The ``kind`` object kept on ``owner`` as attribute ``name``, made once with ``make()``.
    Kept on the owner itself (a kazoo client), not in a registry: a registry keyed by the
    client whose values refer to the client would never let the client go."""
    found = getattr(owner, name, None)
    if isinstance(found, kind):
        return found
    with _attach_lock:
        found = getattr(owner, name, None)
        if not isinstance(found, kind):
            found = make()
            setattr(owner, name, found)
        return found
