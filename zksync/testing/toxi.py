"""Toxiproxy between clients and ensemble members, for fault-injection tests.

:class:`ToxiproxyServer` runs the real Shopify server (``toxiproxy-server``, built by
``.ci/setup`` from its pinned Go module) on loopback.  :class:`ProxiedEnsemble` puts one proxy
``zkN`` in front of each member, so that a test can cut off, slow down or reset the connections
of every client that goes through a given member:

    with ToxiproxyServer() as server:
        proxied = ProxiedEnsemble(server.api, ensemble.hosts)
        client = zksync.connect(proxied.hosts_of(1))    # only through proxy zk1
        with proxied.cut(1):                           # partition: connections time out
            ...

Faults are applied with ``toxiproxy-python``.  ``TOXIPROXY`` (host:port of an API) selects an
existing server, as in the docker-compose and Vagrant setups, where proxies zk1..zk5 already
exist; then ``ProxiedEnsemble`` reuses them.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..errors import ZkSyncError
from .layout import proxy_name


class ToxiproxyError(ZkSyncError):
    """Toxiproxy could not be found, started or driven."""


def find_server() -> str | None:
    """The toxiproxy-server binary: ``TOXIPROXY_SERVER``, then PATH, then ``.ci/setup``'s cache."""
    explicit = os.environ.get("TOXIPROXY_SERVER")
    if explicit:
        return explicit if os.access(explicit, os.X_OK) else None
    found = shutil.which("toxiproxy-server")
    if found:
        return found
    cached = Path(os.environ.get("ZKSYNC_TOOLS", Path.home() / ".cache" / "zksync")) / "bin" / "toxiproxy-server"
    return str(cached) if os.access(cached, os.X_OK) else None


def _free_port(host: str) -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


class ToxiproxyServer:
    """A toxiproxy-server process on loopback (its API at ``self.api``, "host:port")."""

    def __init__(self, host: str = "127.0.0.1", binary: str | None = None) -> None:
        self.host = host
        self.binary = binary or find_server()
        if self.binary is None:
            raise ToxiproxyError(
                "toxiproxy-server not found: run .ci/setup (builds it with go install), "
                "or set TOXIPROXY_SERVER or TOXIPROXY"
            )
        self.port = _free_port(host)
        self.process: subprocess.Popen[bytes] | None = None
        self._log = tempfile.NamedTemporaryFile(prefix="toxiproxy-", suffix=".log", delete=False)

    @property
    def api(self) -> str:
        return f"{self.host}:{self.port}"

    def start(self, timeout: float = 20.0) -> ToxiproxyServer:
        assert self.binary is not None
        self.process = subprocess.Popen(
            [self.binary, "-host", self.host, "-port", str(self.port)],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise ToxiproxyError(f"toxiproxy-server exited: {self.log_tail()}")
            try:
                with socket.create_connection((self.host, self.port), timeout=0.5):
                    return self
            except OSError:
                time.sleep(0.05)
        raise ToxiproxyError(f"toxiproxy-server did not listen within {timeout}s: {self.log_tail()}")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(5)
        self.process = None
        with contextlib.suppress(OSError):
            os.unlink(self._log.name)

    def log_tail(self, lines: int = 20) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(Path(self._log.name).read_text(errors="replace").splitlines()[-lines:])
        return ""

    def __enter__(self) -> ToxiproxyServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class ProxiedEnsemble:
    """One Toxiproxy proxy ``zkN`` in front of each member of an ensemble (``<prefix>zkN`` with a
    ``prefix``, so that two ensembles can share one Toxiproxy server)."""

    def __init__(
        self, api: str, members: list[str] | None = None, *, listen_host: str = "127.0.0.1", prefix: str = ""
    ) -> None:
        from toxiproxy import Toxiproxy  # the test extra

        host, _, port = api.rpartition(":")
        self.toxiproxy = Toxiproxy()
        self.toxiproxy.update_api_consumer(host, int(port))
        self.api = api
        self._proxies: dict[int, Any] = {}
        existing = self.toxiproxy.proxies()
        if members is None:  # an existing setup: use its zk1..zkN proxies
            head = prefix + proxy_name(0)[:-1]
            numbers = sorted(
                int(name[len(head) :]) for name in existing if name.startswith(head) and name[len(head) :].isdigit()
            )
            if not numbers:
                raise ToxiproxyError(f"no {head}N proxies at {api}")
            for n in numbers:
                self._proxies[n] = existing[prefix + proxy_name(n)]
            self.public_host = host
        else:
            for n, upstream in enumerate(members, start=1):
                name = prefix + proxy_name(n)
                if name in existing:
                    existing[name].destroy()
                self._proxies[n] = self.toxiproxy.create(upstream=upstream, name=name, listen=f"{listen_host}:0")
            self.public_host = listen_host
        self.heal()

    @property
    def size(self) -> int:
        return len(self._proxies)

    def address(self, member: int) -> str:
        listen = self._proxies[member].listen
        port = listen.rpartition(":")[2]
        return f"{self.public_host}:{port}"

    @property
    def hosts(self) -> str:
        """Connection string through every proxy."""
        return ",".join(self.address(n) for n in sorted(self._proxies))

    def hosts_of(self, *members: int) -> str:
        """Connection string through the given members' proxies only."""
        return ",".join(self.address(n) for n in members)

    def proxy(self, member: int) -> Any:
        return self._proxies[member]

    # ---- faults ------------------------------------------------------------------------
    def heal(self) -> None:
        """Remove every toxic and enable every proxy."""
        for proxy in self._proxies.values():
            for name in list(proxy.toxics()):
                proxy.destroy_toxic(name)
            proxy.enable()

    def partition(self, *members: int) -> None:
        """Silence the members' proxies: data stops flowing both ways, connections stay open
        (a ``timeout`` toxic), as in a real network partition."""
        for member in members:
            proxy = self._proxies[member]
            for stream in ("upstream", "downstream"):
                with contextlib.suppress(Exception):
                    proxy.add_toxic(name=f"cut_{stream}", type="timeout", stream=stream, attributes={"timeout": 0})

    def unpartition(self, *members: int) -> None:
        for member in members:
            proxy = self._proxies[member]
            for stream in ("upstream", "downstream"):
                with contextlib.suppress(Exception):
                    proxy.destroy_toxic(f"cut_{stream}")

    def reset(self, *members: int) -> None:
        """Close the members' connections at once (TCP RST) and refuse new ones until healed."""
        for member in members:
            self._proxies[member].disable()

    def latency(self, member: int, ms: int, jitter: int = 0) -> None:
        proxy = self._proxies[member]
        for stream in ("upstream", "downstream"):
            with contextlib.suppress(Exception):
                proxy.destroy_toxic(f"latency_{stream}")
            proxy.add_toxic(
                name=f"latency_{stream}", type="latency", stream=stream, attributes={"latency": ms, "jitter": jitter}
            )

    @contextlib.contextmanager
    def cut(self, *members: int) -> Iterator[None]:
        """``with proxied.cut(1, 2):`` partitions the members' proxies for the block."""
        self.partition(*members)
        try:
            yield
        finally:
            self.unpartition(*members)

    def close(self, destroy: bool = True) -> None:
        self.heal()
        if destroy:
            for proxy in self._proxies.values():
                with contextlib.suppress(Exception):
                    proxy.destroy()
