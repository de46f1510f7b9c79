"""A real ZooKeeper ensemble on loopback, for development and tests.

    with Ensemble(size=3) as ens:
        client = zksync.connect(ens.hosts)
        ens.kill(ens.leader())        # crash the leader
        ens.start_member(...)         # and bring it back

ZooKeeper comes from ``ZOOKEEPER_HOME`` (an Apache release: ``lib/*.jar``) or from Debian's
``zookeeper`` package (``/usr/share/java/zookeeper.jar``).  Each member is a JVM in its own
process group with a small heap; data lives in a temporary folder removed on stop.

``Ensemble(tls=True)`` serves clients over mutual TLS only (ZooKeeper's Netty connection factory,
with the Netty jars of Debian's ``libnetty-java``) and speaks TLS between its members too
(``sslQuorum``).  Its throwaway CA and certificates are made at start-up in the ensemble's folder
(:mod:`zksync.testing.certs`); :meth:`Ensemble.client_credentials` issues a client identity::

    with Ensemble(size=3, tls=True) as ens:
        alice = ens.client_credentials("alice")          # CN=alice, signed by the ensemble's CA
        client = zksync.connect(ens.hosts, **alice.kazoo_options())
"""

from __future__ import annotations

import glob
import os
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ZkSyncError
from .certs import CertificateAuthority, Credentials

DEBIAN_JARS = "/usr/share/java"
SERVER_MAIN = "org.apache.zookeeper.server.quorum.QuorumPeerMain"
SASL_PROVIDER = "org.apache.zookeeper.server.auth.SASLAuthenticationProvider"
DIGEST_LOGIN = "org.apache.zookeeper.server.auth.DigestLoginModule"
NETTY_FACTORY = "org.apache.zookeeper.server.NettyServerCnxnFactory"
# what ZooKeeper's Netty connection factory needs (Debian's libnetty-java names them so)
NETTY_JARS = ("buffer", "codec", "common", "handler", "resolver", "transport", "transport-native-unix-common")
DEFAULT_TICK_TIME = 500  # ms: members allow session timeouts from 2 to 20 ticks (1 s to 10 s)


class EnsembleError(ZkSyncError):
    """The local ensemble could not be started or controlled."""


def find_classpath() -> str:
    """The classpath of the ZooKeeper server to run (see the module docstring)."""
    home = os.environ.get("ZOOKEEPER_HOME")
    if home:
        jars = sorted(glob.glob(os.path.join(home, "lib", "*.jar")) + glob.glob(os.path.join(home, "*.jar")))
        if not any("zookeeper" in os.path.basename(j) for j in jars):
            raise EnsembleError(f"ZOOKEEPER_HOME={home} holds no zookeeper jar (looked in lib/ and the top)")
        return os.pathsep.join(jars)
    main = os.path.join(DEBIAN_JARS, "zookeeper.jar")
    if os.path.exists(main):
        # the jar's manifest names its dependencies; slf4j-simple makes the server log to stderr
        extra = [os.path.join(DEBIAN_JARS, "slf4j-simple.jar")]
        return os.pathsep.join([main] + [j for j in extra if os.path.exists(j)])
    raise EnsembleError(
        "no ZooKeeper found: install Debian's 'zookeeper' package or set ZOOKEEPER_HOME (run .ci/setup)"
    )


def netty_classpath() -> list[str]:
    """The Netty jars a TLS member needs: from ``ZOOKEEPER_HOME`` (an Apache release carries
    them) or Debian's ``libnetty-java``."""
    if os.environ.get("ZOOKEEPER_HOME"):
        return []  # find_classpath took every jar of the release
    jars = [os.path.join(DEBIAN_JARS, f"netty-{name}.jar") for name in NETTY_JARS]
    missing = [j for j in jars if not os.path.exists(j)]
    if missing:
        raise EnsembleError(f"a TLS ensemble needs Netty: {', '.join(missing)} missing (install libnetty-java)")
    return jars


def four_letter(host: str, port: int, command: str, timeout: float = 2.0, tls: ssl.SSLContext | None = None) -> str:
    """Send a four-letter word (``srvr``, ``mntr``, ``ruok``...) and return the answer; over
    TLS with the ``tls`` context when the port serves TLS."""
    with socket.create_connection((host, port), timeout=timeout) as raw:
        sock = tls.wrap_socket(raw, server_hostname=host) if tls is not None else raw
        sock.sendall(command.encode())
        chunks = []
        while True:
            data = sock.recv(65536)
            if not data:
                break
            chunks.append(data)
    return b"".join(chunks).decode(errors="replace")


def _free_ports(count: int, host: str) -> list[int]:
    socks = []
    try:
        for _ in range(count):
            sock = socket.socket()
            sock.bind((host, 0))
            socks.append(sock)
        return [s.getsockname()[1] for s in socks]
    finally:
        for sock in socks:
            sock.close()


@dataclass
class Member:
    myid: int
    client_port: int
    peer_port: int
    election_port: int
    directory: Path
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def log_path(self) -> Path:
        return self.directory / "server.log"

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None


class Ensemble:
    """A local ZooKeeper ensemble of ``size`` members (1 runs standalone)."""

    def __init__(
        self,
        size: int = 3,
        *,
        host: str = "127.0.0.1",
        tick_time: int = DEFAULT_TICK_TIME,
        heap: str = "256m",
        directory: str | os.PathLike[str] | None = None,
        ports: list[int] | None = None,
        tls: bool = False,
        plaintext_too: bool = False,
        sasl_users: dict[str, str] | None = None,
    ) -> None:
        if size < 1:
            raise EnsembleError(f"size must be >= 1, got {size}")
        self.size = size
        self.host = host
        self.tick_time = tick_time
        self.heap = heap
        self._own_dir = directory is None
        self.directory = Path(directory) if directory is not None else Path(tempfile.mkdtemp(prefix="zksync-ens-"))
        ports = ports or _free_ports(3 * size, host)
        if len(ports) != 3 * size:
            raise EnsembleError(f"{3 * size} ports needed, {len(ports)} given")
        self.members = [
            Member(i + 1, ports[3 * i], ports[3 * i + 1], ports[3 * i + 2], self.directory / f"zk{i + 1}")
            for i in range(size)
        ]
        self.classpath = find_classpath()
        if plaintext_too and not tls:
            raise EnsembleError("plaintext_too= needs tls=True: a plaintext ensemble serves plaintext anyway")
        self.plaintext_too = plaintext_too
        # SASL DIGEST-MD5 users (name -> password) the members accept, from a JAAS file they read
        self.sasl_users = dict(sasl_users or {})
        for user, password in self.sasl_users.items():
            if not user.isidentifier() or not password or '"' in password or "\\" in password:
                raise EnsembleError(f"SASL user {user!r}: a plain name, and a password without quotes or backslashes")
        # with plaintext_too each TLS member also serves plaintext on its own port (one Netty
        # factory for both: TLS against plaintext on the very same server, for benchmarks)
        self._plain_ports = _free_ports(size, host) if plaintext_too else []
        self.tls = tls
        self.ca: CertificateAuthority | None = None
        self._admin_tls: ssl.SSLContext | None = None
        self._clients: dict[str, Credentials] = {}
        if tls:
            self.classpath = os.pathsep.join([self.classpath, *netty_classpath()])

    # ---- addresses ---------------------------------------------------------------------
    @property
    def hosts(self) -> str:
        return ",".join(f"{self.host}:{m.client_port}" for m in self.members)

    def address(self, index: int) -> tuple[str, int]:
        return self.host, self.members[index].client_port

    @property
    def plain_hosts(self) -> str:
        """The plaintext connection string of a TLS ensemble made with ``plaintext_too``."""
        if not self.plaintext_too:
            raise EnsembleError("plain_hosts: this ensemble serves no plaintext port beside TLS (plaintext_too=True)")
        return ",".join(f"{self.host}:{port}" for port in self._plain_ports)

    # ---- TLS ---------------------------------------------------------------------------
    def _make_certificates(self) -> None:
        if self.ca is not None:
            return
        self.ca = CertificateAuthority(self.directory / "tls")
        for member in self.members:
            self.ca.issue(f"zk{member.myid}", hosts=(self.host,)).key_store()
        admin = self.ca.issue("zksync-admin", hosts=())
        context = ssl.create_default_context(cafile=str(self.ca.cert))
        context.load_cert_chain(str(admin.cert), str(admin.key))
        self._admin_tls = context

    def client_credentials(self, name: str = "client", **options: Any) -> Credentials:
        """A client certificate ``CN=name`` signed by this ensemble's CA: made on the first call
        for ``name``, the same files afterwards.  With ``options`` (for
        :meth:`~zksync.testing.certs.CertificateAuthority.issue`: ``not_after=`` and so on) a new
        one is made every time."""
        if not self.tls:
            raise EnsembleError("client_credentials: this ensemble does not serve TLS (Ensemble(tls=True))")
        self._make_certificates()
        assert self.ca is not None
        if not options and name in self._clients:
            return self._clients[name]
        made = self.ca.issue(name, **{"hosts": (), **options})
        if not options:
            self._clients[name] = made
        return made

    # ---- lifecycle ---------------------------------------------------------------------
    def start(self, timeout: float = 90.0) -> Ensemble:
        if self.tls:
            self._make_certificates()
        for member in self.members:
            self._write_config(member)
        for index in range(self.size):
            self.start_member(index, wait=False)
        self.wait_ready(timeout)
        return self

    def stop(self) -> None:
        for index in range(self.size):
            self.kill(index, sig=signal.SIGTERM)
        if self._own_dir:
            shutil.rmtree(self.directory, ignore_errors=True)

    def __enter__(self) -> Ensemble:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start_member(self, index: int, wait: bool = True, timeout: float = 60.0) -> None:
        member = self.members[index]
        if member.running:
            return
        command = [
            "java",
            f"-Xmx{self.heap}",
            "-Xms16m",
            "-XX:+UseSerialGC",
            "-XX:TieredStopAtLevel=1",
            "-Xss512k",
            "-Djava.net.preferIPv4Stack=true",
            "-Dzookeeper.admin.enableServer=false",
            "-Dorg.slf4j.simpleLogger.showDateTime=true",
            *self._sasl_flags(),
            "-cp",
            self.classpath,
            SERVER_MAIN,
            str(member.directory / "zoo.cfg"),
        ]
        log = open(member.log_path, "ab")
        try:
            member.process = subprocess.Popen(
                command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True
            )
        finally:
            log.close()
        if wait:
            self.wait_member(index, timeout)

    def kill(self, index: int, sig: int = signal.SIGKILL) -> None:
        """Stop a member (SIGKILL by default: a crash).  ``start_member`` brings it back."""
        member = self.members[index]
        process = member.process
        if process is None:
            return
        if process.poll() is None:
            try:
                os.killpg(process.pid, signal.SIGCONT)
                os.killpg(process.pid, sig)
                process.wait(10)
            except ProcessLookupError:
                pass
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(10)
        member.process = None

    def restart(self, index: int, timeout: float = 60.0) -> None:
        self.kill(index)
        self.start_member(index, wait=True, timeout=timeout)

    def pause(self, index: int) -> None:
        """Freeze a member (SIGSTOP): alive but silent, like a long GC pause."""
        process = self.members[index].process
        if process is not None:
            os.killpg(process.pid, signal.SIGSTOP)

    def resume(self, index: int) -> None:
        process = self.members[index].process
        if process is not None:
            os.killpg(process.pid, signal.SIGCONT)

    # ---- health ------------------------------------------------------------------------
    def mode(self, index: int) -> str | None:
        """``leader``, ``follower``, ``standalone``, or None when the member does not serve."""
        try:
            answer = four_letter(*self.address(index), "srvr", timeout=1.0, tls=self._admin_tls)
        except OSError:
            return None
        for line in answer.splitlines():
            if line.startswith("Mode:"):
                return line.split(":", 1)[1].strip()
        return None

    def leader(self) -> int:
        """Index of the current leader (raises if there is none)."""
        for index in range(self.size):
            if self.mode(index) in ("leader", "standalone"):
                return index
        raise EnsembleError("no member is leading")

    def mntr(self, index: int) -> dict[str, str]:
        answer = four_letter(*self.address(index), "mntr", tls=self._admin_tls)
        pairs = (line.split("\t", 1) for line in answer.splitlines() if "\t" in line)
        return {key: value for key, value in pairs}

    def serving(self) -> list[int]:
        return [i for i in range(self.size) if self.mode(i) in ("leader", "follower", "standalone")]

    def wait_ready(self, timeout: float = 90.0) -> None:
        """Until a quorum serves and one member leads."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            dead = [m.myid for m in self.members if m.process is not None and m.process.poll() is not None]
            if dead:
                raise EnsembleError(f"ZooKeeper member(s) {dead} exited:\n{self.log_tail()}")
            serving = self.serving()
            if len(serving) > self.size // 2 and any(self.mode(i) in ("leader", "standalone") for i in serving):
                return
            time.sleep(0.2)
        raise EnsembleError(f"ensemble not ready after {timeout:.0f}s:\n{self.log_tail()}")

    def wait_member(self, index: int, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.mode(index) in ("leader", "follower", "standalone"):
                return
            time.sleep(0.2)
        raise EnsembleError(f"member {index + 1} not serving after {timeout:.0f}s:\n{self.log_tail()}")

    def log_tail(self, lines: int = 30) -> str:
        out = []
        for member in self.members:
            try:
                text = member.log_path.read_text(errors="replace").splitlines()[-lines:]
            except OSError:
                continue
            out.append(f"--- zk{member.myid} ({member.log_path}) ---")
            out.extend(text)
        return "\n".join(out)

    # ---- configuration -----------------------------------------------------------------
    def _write_config(self, member: Member) -> None:
        data = member.directory / "data"
        data.mkdir(parents=True, exist_ok=True)
        (data / "myid").write_text(f"{member.myid}\n")
        lines = [
            f"tickTime={self.tick_time}",
            "initLimit=10",
            "syncLimit=5",
            f"dataDir={data}",
            *self._client_port_lines(member),
            "maxClientCnxns=0",
            "admin.enableServer=false",
            "4lw.commands.whitelist=*",
            *([f"authProvider.sasl={SASL_PROVIDER}"] if self.sasl_users else []),
            "preAllocSize=4096",
            "snapCount=100000",
            "forceSync=no",
            f"standaloneEnabled={'true' if self.size == 1 else 'false'}",
        ]
        if self.size > 1:
            lines += self._quorum_tls_lines(member)
            lines += [f"server.{m.myid}={self.host}:{m.peer_port}:{m.election_port}" for m in self.members]
        (member.directory / "zoo.cfg").write_text("\n".join(lines) + "\n")

    @property
    def _jaas(self) -> Path:
        return self.directory / "jaas.conf"

    def _sasl_flags(self) -> list[str]:
        if not self.sasl_users:
            return []
        users = "".join(f'\n    user_{name}="{password}"' for name, password in self.sasl_users.items())
        self._jaas.write_text(f"Server {{\n    {DIGEST_LOGIN} required{users};\n}};\n")
        os.chmod(self._jaas, 0o600)
        return [f"-Djava.security.auth.login.config={self._jaas}"]

    def _client_port_lines(self, member: Member) -> list[str]:
        if not self.tls:
            return [f"clientPort={member.client_port}", f"clientPortAddress={self.host}"]
        plain = []
        if self.plaintext_too:
            port = self._plain_ports[member.myid - 1]
            plain = [f"clientPort={port}", f"clientPortAddress={self.host}"]
        return [
            *plain,
            f"serverCnxnFactory={NETTY_FACTORY}",
            f"secureClientPort={member.client_port}",
            f"secureClientPortAddress={self.host}",
            *self._store_lines("ssl", member),
            "ssl.clientAuth=need",
        ]

    def _quorum_tls_lines(self, member: Member) -> list[str]:
        if not self.tls:
            return []
        return ["sslQuorum=true", "portUnification=false", *self._store_lines("ssl.quorum", member)]

    def _store_lines(self, prefix: str, member: Member) -> list[str]:
        assert self.ca is not None
        key_store = self.ca.directory / f"zk{member.myid}-keystore.pem"
        return [
            f"{prefix}.keyStore.location={key_store}",
            f"{prefix}.keyStore.type=PEM",
            f"{prefix}.trustStore.location={self.ca.cert}",
            f"{prefix}.trustStore.type=PEM",
        ]
