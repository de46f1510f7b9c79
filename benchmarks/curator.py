"""Apache Curator in the benchmark suite: finding the built program and driving it.

``tests/peers/curator/src/main/java/zksync/peers/CuratorBench.java`` runs Curator 5.9.0's
recipes for the suite, all of a round's sessions in one JVM.  ``.ci/build-peers`` (run by
``.ci/setup``) compiles it with the interop tests' Curator peer into
``$ZKSYNC_TOOLS/peers/curator`` (default ``~/.cache/zksync``): ``classes/``, the Maven-resolved
``classpath`` and the ``stamp`` of the sources it was built from.  This module does not import
tests/peers.py (that one needs pytest) but finds the build the same way.

The protocol: CuratorBench connects and warms up, prints ``ready``; on ``go`` it runs the timed
part and prints one JSON line (``uncontended``: one per ``go <cycles>``); on ``close`` or the
end of its input it closes its sessions and exits.
"""

from __future__ import annotations

import json
import queue
import shutil
import subprocess
import tempfile
import threading
from pathlib import Path
from typing import IO, Any

from tests.peer_builds import source_hash, tools

VERSION = "5.9.0"  # tests/peers/curator/pom.xml
SOURCES = Path(__file__).resolve().parent.parent / "tests" / "peers" / "curator"
MAIN_CLASS = "zksync.peers.CuratorBench"
# one JVM hosts up to a thousand sessions (four threads each): a small heap, small stacks, one GC
# thread, and the C1 compiler only (less compiling on the CPUs the ensemble shares)
JAVA_OPTIONS = [
    "-Xmx256m",
    "-Xss256k",
    "-XX:+UseSerialGC",
    "-XX:TieredStopAtLevel=1",
    "-Xshare:auto",
    "-Dorg.slf4j.simpleLogger.defaultLogLevel=warn",
]


def build_folder() -> Path:
    return tools() / "curator"


def command() -> tuple[list[str] | None, str]:
    """The program that runs CuratorBench and a description, or None and why it cannot run."""
    java = shutil.which("java")
    if java is None:
        return None, "java not found on PATH"
    folder = build_folder()
    built = folder / "classes" / MAIN_CLASS.replace(".", "/")
    if not built.with_suffix(".class").is_file() or not (folder / "classpath").is_file():
        return None, f"CuratorBench is not built in {folder} (run .ci/build-peers)"
    stamp = folder / "stamp"
    if not stamp.is_file() or stamp.read_text().strip() != source_hash(SOURCES):
        return None, f"the build in {folder} is older than tests/peers/curator (run .ci/build-peers)"
    classpath = f"{folder / 'classes'}:{(folder / 'classpath').read_text().strip()}"
    return [java, *JAVA_OPTIONS, "-cp", classpath, MAIN_CLASS], f"Curator {VERSION}, {java_version(java)}"


def java_version(java: str) -> str:
    try:
        done = subprocess.run([java, "-version"], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return "java"
    first = (done.stderr or done.stdout).strip().splitlines()
    return first[0] if first else "java"


class CuratorError(RuntimeError):
    """CuratorBench did not answer as expected; the message ends with its stderr."""


class Bench:
    """One CuratorBench process (``scenario`` on ``path``), started and waited for until ready."""

    def __init__(
        self, argv: list[str], hosts: str, path: str, scenario: str, setup_timeout: float, **options: Any
    ) -> None:
        self._stderr: IO[bytes] = tempfile.TemporaryFile()
        args = [*argv, "--servers", hosts, "--path", path, "--scenario", scenario]
        for name, value in options.items():
            args += [f"--{name.replace('_', '-')}", str(value)]
        self.process = subprocess.Popen(
            args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._stderr, text=True
        )
        self._lines: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._read, name="curator-bench", daemon=True).start()
        first = self._next(setup_timeout, "ready")
        if first != "ready":
            self.kill()
            raise CuratorError(self._explain(f"said {first[:500]!r} instead of 'ready'"))

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self._lines.put(line.rstrip("\n"))
        self._lines.put(None)

    def _next(self, timeout: float, waiting_for: str) -> str:
        try:
            line = self._lines.get(timeout=timeout)
        except queue.Empty:
            raise CuratorError(self._explain(f"no answer to {waiting_for!r} within {timeout:g} s")) from None
        if line is None:
            self._lines.put(None)
            raise CuratorError(self._explain(f"exited before answering {waiting_for!r}"))
        return line

    def _explain(self, what: str) -> str:
        return f"CuratorBench {what}; its stderr ends: {self.stderr()[-1500:]}"

    def stderr(self) -> str:
        if self._stderr.closed:
            return "(closed)"
        self._stderr.seek(0)
        return self._stderr.read().decode("utf-8", "replace")

    def send(self, line: str) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(line + "\n")
        self.process.stdin.flush()

    def result(self, timeout: float) -> dict[str, Any]:
        """The next JSON line (an ``error`` one raises CuratorError)."""
        line = self._next(timeout, "go")
        try:
            answer: dict[str, Any] = json.loads(line)
        except ValueError:
            raise CuratorError(self._explain(f"answered {line[:500]!r}")) from None
        if "error" in answer:
            raise CuratorError(self._explain(f"failed: {answer['error']}"))
        return answer

    def close(self, timeout: float = 120.0) -> bool:
        """``close`` (the sessions are closed), or SIGKILL after ``timeout``; True if it went."""
        try:
            self.send("close")
            assert self.process.stdin is not None
            self.process.stdin.close()
        except (OSError, ValueError):
            pass
        try:
            self.process.wait(timeout)
            went = True
        except subprocess.TimeoutExpired:
            went = False
        self.kill()
        self._stderr.close()
        return went

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(30)
