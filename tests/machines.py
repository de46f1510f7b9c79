"""Driving a sans-IO machine by hand in tests: the session facts it reads, and stepping it (the
next effect is checked, then answered)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from zksync._core.effects import Machine, Send


class Session:
    """The session facts a machine reads: set by the test."""

    session_timeout = 4.0
    session_id = 7
    chroot = ""

    def __init__(self) -> None:
        self.connected = True
        self.disconnections = 0
        self.expirations = 0
        self.lost: dict[int, Callable[[str], None]] = {}
        self.deleted: list[str] = []

    def is_connected(self) -> bool:
        return self.connected

    def stopped(self) -> bool:
        return False

    def on_lost(self, callback: Callable[[str], None]) -> int:
        self.lost[len(self.lost) + 1] = callback
        return len(self.lost)

    def cancel_lost(self, token: int) -> None:
        self.lost.pop(token, None)

    def delete_soon(self, path: str) -> None:
        self.deleted.append(path)


class Script:
    """Steps a machine: ``expect`` the next effect, then answer it."""

    def __init__(self, machine: Machine[Any]) -> None:
        self.machine = machine
        self.effect: Any = next(machine)
        self.result: Any = None
        self.done = False

    def expect(self, kind: type, **fields: Any) -> Any:
        effect = self.effect
        inner = effect.request if isinstance(effect, Send) and kind is not Send else effect
        assert isinstance(inner, kind), f"expected {kind.__name__}, got {effect!r}"
        for name, value in fields.items():
            assert getattr(inner, name) == value, f"{name}: {getattr(inner, name)!r} != {value!r}"
        return inner

    def answer(self, value: Any = None) -> None:
        self._step(lambda: self.machine.send(value))

    def fail(self, error: BaseException) -> None:
        self._step(lambda: self.machine.throw(error))

    def _step(self, step: Callable[[], Any]) -> None:
        try:
            self.effect = step()
        except StopIteration as stop:
            self.done, self.result, self.effect = True, stop.value, None
