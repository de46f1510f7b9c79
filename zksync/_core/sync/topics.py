"""Topics: ``topics/<topic>/m-<guid>-<seq>``, data = JSON payload, read in sequence order."""

from __future__ import annotations

import json
import threading
import uuid
from typing import Any

from ..._util import Deadline
from ...errors import InvalidState
from ..effects import WATCH, Listen, Machine, Wait, WakeHub
from ..requests import Requests
from .names import RECIPE, encode, is_sequential, number_of

END = object()  # what :meth:`Subscription.next` returns when the subscription is over


def publish(requests: Requests, root: str, topic: str, payload: Any, deadline: Deadline) -> Machine[int]:
    """Append ``payload`` to ``topic``; returns its 1-based sequence."""
    data = encode(payload, "payload")
    path = f"{root}/topics/{topic}/m-{uuid.uuid4().hex}-"
    created = yield from requests.create(path, deadline, value=data, sequence=True)
    assert created is not None
    return number_of(created[0])


class Subscription:
    """The reading position in one topic; :meth:`next` gives payloads in publish order."""

    def __init__(self, requests: Requests, root: str, topic: str, start: int, timeout: float | None) -> None:
        self.requests = requests
        self.path = f"{root}/topics/{topic}"
        self.next_number = start
        self.timeout = timeout
        self.closed = threading.Event()
        self.hub = WakeHub()  # wakes a reader when the subscription is closed
        self._known: dict[int, str] = {}

    def close(self) -> None:
        self.closed.set()
        self.hub.wake_all()

    def next(self) -> Machine[Any]:
        """The next payload, or :data:`END` once closed or when none came within the timeout."""
        r = self.requests
        deadline = Deadline(self.timeout)
        yield Listen(self.hub)
        while not self.closed.is_set():
            name = self._known.get(self.next_number - 1)
            if name is None:
                yield from self._refresh(deadline)
                name = self._known.get(self.next_number - 1)
            if name is not None:
                found = yield from r.get(f"{self.path}/{name}", deadline)
                if found is None:
                    message = f"message {self.next_number} of {self.path} was deleted"
                    raise InvalidState(message, path=self.path, recipe=RECIPE)
                self.next_number += 1
                return json.loads(found[0].decode())
            if (yield Wait(deadline)) is None:
                break
        self.close()
        return END

    def _refresh(self, deadline: Deadline) -> Machine[None]:
        r = self.requests
        children = yield from r.get_children(self.path, deadline, watch=WATCH, missing_ok=True)
        if not children:  # the topic does not exist yet: watch for its creation
            yield from r.exists(self.path, deadline, watch=WATCH)
        for name in children:
            if is_sequential(name, "m-"):
                self._known[number_of(name) - 1] = name
