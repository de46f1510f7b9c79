"""Driving the interop tests' peer programs (tests/peers/, protocol in its README.md).

A :class:`Peer` is one peer process, in its own process group, connected to the ensemble
with its own session: ``request("lock")`` sends a command and reads its one-line answer;
``send`` and ``reply`` do the two halves apart, for a command that is expected to wait.
``kill()`` is SIGKILL: the holder goes without releasing anything, and its session expires
on the server after its session timeout.

The Curator and Go peers are built by ``.ci/setup`` (``.ci/build-peers``) into
``$ZKSYNC_TOOLS/peers``; a peer whose toolchain is missing is skipped (a failure when
``CI=true``), one that is missing or older than its sources although the toolchain is there
is a failure (run ``.ci/setup``).
"""

from __future__ import annotations

import os
import queue
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import pytest

from zksync.testing.timing import scaled

from .peer_builds import source_hash, tools

HERE = Path(__file__).resolve().parent / "peers"
READY_WAIT = 30.0  # seconds (scaled) a peer may take to start and connect (a JVM, on 2 busy cores)
CLOSE_WAIT = 10.0
JAVA_OPTIONS = ["-Xmx128m", "-Xss512k", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1", "-Xshare:auto"]

CURATOR_RECIPES = ("curator-rw", "curator-mutex")
GO_RECIPES = ("zk-lock", "go-rwmutex", "go-barrier")
KAZOO_RECIPES = ("kazoo-lock", "kazoo-rw")


def _unavailable(reason: str) -> None:
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(reason, pytrace=False)
    pytest.skip(reason)


def _built(kind: str, build_tools: tuple[str, ...], artefact: Path) -> Path:
    """The build folder of peer ``kind``, built from today's sources; skip (fail in CI) when
    ``build_tools`` are missing to build it, fail when it merely was not (re)built."""
    folder = tools() / kind
    stamp = folder / "stamp"
    built = artefact.exists() and stamp.exists()
    if built and stamp.read_text().strip() == source_hash(HERE / kind):
        return folder
    missing = [tool for tool in build_tools if shutil.which(tool) is None]
    if missing:
        _unavailable(f"the {kind} peer cannot be built here: {', '.join(missing)} not found on PATH")
    if not built:
        pytest.fail(f"the {kind} peer is not built in {folder}: run .ci/setup", pytrace=False)
    pytest.fail(f"the {kind} peer in {folder} was built from older sources: run .ci/setup", pytrace=False)


def command_for(recipe: str) -> list[str]:
    """The program (argv) that runs ``recipe``; skips or fails when it cannot be had."""
    if recipe in CURATOR_RECIPES:
        folder = tools() / "curator"
        _built("curator", ("mvn", "javac"), folder / "classes")
        if shutil.which("java") is None:
            _unavailable("the curator peer cannot run here: java not found on PATH")
        classpath = f"{folder / 'classes'}:{(folder / 'classpath').read_text().strip()}"
        java = ["java", *JAVA_OPTIONS, "-Dorg.slf4j.simpleLogger.defaultLogLevel=warn", "-cp", classpath]
        return [*java, "zksync.peers.CuratorPeer"]
    if recipe in GO_RECIPES:
        folder = tools() / "go"
        _built("go", ("go",), folder / "zksync-go-peer")
        return [str(folder / "zksync-go-peer")]
    if recipe in KAZOO_RECIPES:
        return [sys.executable, str(HERE / "kazoo_peer.py")]
    raise ValueError(f"unknown peer recipe {recipe!r}")


class PeerError(AssertionError):
    """A peer did not answer as expected; the message ends with its stderr."""


class Peer:
    """One running peer process."""

    def __init__(self, recipe: str, hosts: str, path: str, session_timeout: float) -> None:
        self.recipe = recipe
        self.path = path
        self._stderr: IO[bytes] = tempfile.TemporaryFile()
        argv = [*command_for(recipe), "--servers", hosts, "--path", path, "--recipe", recipe]
        argv += ["--session-timeout", f"{session_timeout:g}"]
        self.process = subprocess.Popen(
            argv,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            start_new_session=True,  # its own process group: kill() takes all of it
        )
        self._lines: queue.Queue[str | None] = queue.Queue()
        self._reader = threading.Thread(target=self._read, name=f"peer-{recipe}", daemon=True)
        self._reader.start()
        first = self._next(scaled(READY_WAIT), "ready")
        if first != "ready":
            self.kill()
            raise PeerError(self._explain(f"said {first!r} instead of 'ready'"))

    def __repr__(self) -> str:
        return f"<Peer {self.recipe} pid={self.process.pid} {self.path}>"

    def _read(self) -> None:
        assert self.process.stdout is not None
        for raw in self.process.stdout:
            self._lines.put(raw.decode("utf-8", "replace").rstrip("\n"))
        self._lines.put(None)  # end of output: the process is gone

    def _next(self, timeout: float, waiting_for: str) -> str:
        try:
            line = self._lines.get(timeout=timeout)
        except queue.Empty:
            raise PeerError(self._explain(f"no answer to {waiting_for!r} within {timeout:g}s")) from None
        if line is None:
            self._lines.put(None)
            try:
                code = self.process.wait(timeout=scaled(CLOSE_WAIT))
            except subprocess.TimeoutExpired:
                code = None
            raise PeerError(self._explain(f"exited (status {code}) before answering {waiting_for!r}"))
        return line

    def _explain(self, what: str) -> str:
        return f"{self!r} {what}\n--- its stderr ---\n{self.stderr()}"

    def stderr(self) -> str:
        if self._stderr.closed:
            return "(closed)"
        self._stderr.seek(0)
        return self._stderr.read().decode("utf-8", "replace")[-20_000:]

    @property
    def alive(self) -> bool:
        return self.process.poll() is None

    def send(self, command: str) -> None:
        assert self.process.stdin is not None
        self._last = command
        self.process.stdin.write(command.encode() + b"\n")
        self.process.stdin.flush()

    def reply(self, timeout: float = 10.0) -> str:
        """The next answer, waited for up to ``timeout`` (scaled); PeerError if none comes."""
        return self._next(scaled(timeout), getattr(self, "_last", "?"))

    def assert_waiting(self, timeout: float = 0.5) -> None:
        """The last command is still waiting: no answer comes within ``timeout`` (scaled)."""
        try:
            line = self._lines.get(timeout=scaled(timeout))
        except queue.Empty:
            return
        if line is None:
            self._lines.put(None)
        raise PeerError(self._explain(f"answered {line!r} to {getattr(self, '_last', '?')!r}, which should still wait"))

    def request(self, command: str, timeout: float = 10.0) -> str:
        self.send(command)
        return self.reply(timeout)

    def ok(self, command: str, timeout: float = 10.0) -> str:
        """``command``'s answer after ``ok`` (a node name, children, or empty); PeerError on ``err``."""
        return self.expect_ok(self.request(command, timeout))

    def expect_ok(self, answer: str) -> str:
        if answer != "ok" and not answer.startswith("ok "):
            raise PeerError(self._explain(f"answered {answer!r} to {getattr(self, '_last', '?')!r}"))
        return answer[3:]

    def children(self) -> list[str]:
        listed = self.ok("children")
        return listed.split(",") if listed else []

    def kill(self) -> None:
        """SIGKILL to the whole process group: nothing is released, the session expires later."""
        if self.alive:
            try:
                os.killpg(self.process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.process.wait(timeout=scaled(CLOSE_WAIT))

    def close(self) -> None:
        """``quit`` (the peer closes its session), or SIGKILL when it does not go in time."""
        if self.alive:
            try:
                self.send("quit")
                self.process.wait(timeout=scaled(CLOSE_WAIT))
            except (OSError, subprocess.TimeoutExpired):
                pass
        self.kill()
        self._reader.join(timeout=scaled(CLOSE_WAIT))  # it has read to the end of the output
        for stream in (self.process.stdin, self.process.stdout):
            if stream is not None:
                try:
                    stream.close()
                except OSError:
                    pass
        self._stderr.close()


@dataclass
class Peers:
    """The peers of one test; ``start`` is what the ``peer`` fixture hands out."""

    hosts: str
    chroot: str
    session_timeout: float
    made: list[Peer]

    def start(self, recipe: str, path: str = "/shared", session_timeout: float | None = None) -> Peer:
        """A started peer running ``recipe`` on ``path`` below the test's chroot, ready;
        ``session_timeout`` in seconds as given (the caller scales it)."""
        timeout = self.session_timeout if session_timeout is None else session_timeout
        started = Peer(recipe, self.hosts, self.chroot + path, timeout)
        self.made.append(started)
        return started

    def report(self) -> Iterator[tuple[str, str]]:
        for index, made in enumerate(self.made):
            yield f"peer {index} ({made.recipe}) stderr", made.stderr() or "(empty)"

    def close(self) -> None:
        for made in self.made:
            made.close()


PEERS = pytest.StashKey[Peers]()
