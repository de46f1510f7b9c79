"""Throwaway certificates for a TLS ensemble and its clients, made with the ``openssl`` command.

    ca = CertificateAuthority(directory)                 # a new CA: key and self-signed certificate
    member = ca.issue("zk1")                             # for 127.0.0.1 and localhost
    client = ca.issue("alice")                           # a client identity: CN=alice
    old = ca.issue("late", not_after=datetime(...))      # an expired one, for tests

Keys are EC P-256 in PKCS#8 PEM, which both ZooKeeper's PEM key stores and Python's ``ssl`` read.
Nothing here is meant for production: the CA's key sits unencrypted beside its certificate.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from ..errors import ZkSyncError

DEFAULT_HOSTS = ("127.0.0.1", "localhost")


class CertificateError(ZkSyncError):
    """A certificate could not be made (is ``openssl`` installed?)."""


@dataclass(frozen=True)
class Credentials:
    """A certificate, its private key, and the CA file that verifies it (all PEM files)."""

    name: str
    cert: Path
    key: Path
    ca: Path

    @property
    def subject(self) -> str:
        """The certificate's subject as ZooKeeper's x509 provider names it (``CN=name``)."""
        return f"CN={self.name}"

    def key_store(self, replace: bool = False) -> Path:
        """One PEM file with the key and the certificate, as ZooKeeper's PEM key store wants it
        (written once, or again with ``replace``)."""
        bundle = self.cert.with_name(self.cert.stem + "-keystore.pem")
        if replace or not bundle.exists():
            bundle.write_bytes(self.key.read_bytes() + self.cert.read_bytes())
            os.chmod(bundle, 0o600)
        return bundle

    def kazoo_options(self) -> dict[str, str]:
        """The arguments :func:`zksync.connect` takes for this identity."""
        return {"ca": str(self.ca), "certfile": str(self.cert), "keyfile": str(self.key)}


def _openssl(*args: str, cwd: Path) -> None:
    binary = shutil.which("openssl")
    if binary is None:
        raise CertificateError("the openssl command is not installed (run .ci/setup)")
    done = subprocess.run([binary, *args], cwd=cwd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise CertificateError(f"openssl {args[0]} failed: {done.stderr.strip()}")


def _stamp(moment: dt.datetime) -> str:
    return moment.astimezone(dt.timezone.utc).strftime("%Y%m%d%H%M%SZ")


class CertificateAuthority:
    """A CA in ``directory``, made on construction, that issues certificates into it."""

    def __init__(self, directory: str | os.PathLike[str], name: str = "zksync test CA") -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.name = name
        self.key = self.directory / "ca-key.pem"
        self.cert = self.directory / "ca.pem"
        self._config = self.directory / "ca.cnf"
        (self.directory / "issued").mkdir(exist_ok=True)
        (self.directory / "index.txt").write_text("")
        (self.directory / "index.txt.attr").write_text("unique_subject = no\n")
        (self.directory / "serial").write_text("1000\n")
        self._config.write_text(
            "[ca]\ndefault_ca = zksync_ca\n"
            "[zksync_ca]\ndatabase = index.txt\nnew_certs_dir = issued\nserial = serial\n"
            "default_md = sha256\npolicy = anything\ncopy_extensions = none\n"
            "[anything]\ncommonName = supplied\n"
        )
        _new_key(self.key, self.directory)
        _openssl(
            "req", "-x509", "-new", "-key", str(self.key), "-subj", f"/CN={name}", "-days", "3650",
            "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign",
            "-out", str(self.cert), cwd=self.directory,
        )  # fmt: skip

    def issue(
        self,
        name: str,
        *,
        hosts: tuple[str, ...] = DEFAULT_HOSTS,
        not_before: dt.datetime | None = None,
        not_after: dt.datetime | None = None,
    ) -> Credentials:
        """A certificate ``CN=name`` for both server and client use, valid for ``hosts`` (IP
        addresses and DNS names) from ``not_before`` (default: an hour ago) to ``not_after``
        (default: in 30 days)."""
        if not name or "/" in name or "=" in name:
            raise CertificateError(f"a certificate name must be plain text, got {name!r}")
        now = dt.datetime.now(dt.timezone.utc)
        start = not_before or now - dt.timedelta(hours=1)
        end = not_after or now + dt.timedelta(days=30)
        key = self.directory / f"{name}-key.pem"
        cert = self.directory / f"{name}.pem"
        request = self.directory / f"{name}.csr"
        extensions = self.directory / f"{name}.ext"
        names = ",".join(f"IP:{h}" if h.replace(".", "").isdigit() or ":" in h else f"DNS:{h}" for h in hosts)
        lines = [
            "basicConstraints=CA:FALSE",
            "keyUsage=critical,digitalSignature,keyEncipherment",
            "extendedKeyUsage=serverAuth,clientAuth",
        ]
        if names:
            lines.append(f"subjectAltName={names}")
        extensions.write_text("\n".join(lines) + "\n")
        _new_key(key, self.directory)
        _openssl("req", "-new", "-key", str(key), "-subj", f"/CN={name}", "-out", str(request), cwd=self.directory)
        _openssl(
            "ca", "-batch", "-notext", "-config", str(self._config), "-keyfile", str(self.key), "-cert", str(self.cert),
            "-startdate", _stamp(start), "-enddate", _stamp(end), "-extfile", str(extensions),
            "-in", str(request), "-out", str(cert), cwd=self.directory,
        )  # fmt: skip
        request.unlink()
        extensions.unlink()
        return Credentials(name, cert, key, self.cert)


def _new_key(path: Path, cwd: Path) -> None:
    _openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", str(path), cwd=cwd)
    os.chmod(path, 0o600)
