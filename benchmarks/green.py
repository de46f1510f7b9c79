"""A participants worker on gevent: its sessions and participants are greenlets in one OS
thread, so 20 processes can host 10,000 sessions on a small machine (with one OS thread per
kazoo thread and participant, the kernel spends its time switching between tens of thousands
of threads).  Started by ``benchmarks.suite`` for large rounds:

    python -m benchmarks.green   < one JSON line of parameters, then "go", then "close"

It prints "ready" once set up, then the round's result as one JSON line.
"""

from gevent import monkey  # type: ignore[import-untyped]

monkey.patch_all()  # before kazoo, zksync or threading are imported anywhere

import json  # noqa: E402
import os  # noqa: E402
import sys  # noqa: E402
from typing import Any  # noqa: E402

from gevent.fileobject import FileObjectThread  # type: ignore[import-untyped]  # noqa: E402
from kazoo.handlers.gevent import SequentialGeventHandler  # noqa: E402

from . import suite  # noqa: E402


class _Line:
    """Waits for one word on stdin without blocking the other greenlets."""

    def __init__(self, stdin: Any, word: str) -> None:
        self.stdin, self.word = stdin, word

    def wait(self, timeout: float | None = None) -> bool:
        while True:
            line = self.stdin.readline()
            if not line or line.strip() == self.word:
                return True


class _Ready:
    def put(self, _: Any) -> None:
        print("ready", flush=True)


def main() -> None:
    os.nice(10)  # as the thread workers: the servers get the CPUs first
    stdin = FileObjectThread(sys.stdin, "r")
    params = json.loads(stdin.readline())
    params["close"] = _Line(stdin, "close")
    suite.CLIENT_OPTIONS = lambda: {"handler": SequentialGeventHandler()}

    def report(result: dict[str, Any]) -> None:
        print(json.dumps(result), flush=True)

    try:
        suite.participants_worker(params, _Ready(), _Line(stdin, "go"), report)
    except BaseException as exc:
        report({"error": repr(exc)})


if __name__ == "__main__":
    main()
