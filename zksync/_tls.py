"""TLS for :func:`zksync.connect`: its files, checked before anything is sent, and a handshake
watch that turns a failed handshake into one clear :class:`~zksync.errors.TLSError`.

kazoo connects over TLS when given ``use_ssl=True`` and its files, but a handshake that fails
is to it one more dropped connection: it logs a warning and retries until the caller's timeout,
and the caller learns only "Connection time-out".  While :func:`zksync.connect` waits for the
first session, :class:`HandshakeWatch` sees each attempt's outcome (by wrapping two calls on this
client's own objects, put back once the wait is over): when every member has refused the
handshake, or speaks TLS to a plaintext client, the wait ends at once with the reason, and those
attempts' warnings stay out of the log.
"""

from __future__ import annotations

import logging
import os
import socket
import ssl
import threading
import time
from typing import Any

from kazoo.client import KazooClient
from kazoo.exceptions import AuthFailedError

from .errors import AccessDenied, InvalidArgument, TLSError

ENV_CA = "ZOOKEEPER_TLS_CA"
ENV_CERT = "ZOOKEEPER_TLS_CERT"
ENV_KEY = "ZOOKEEPER_TLS_KEY"
_FILES = (("ca", ENV_CA), ("certfile", ENV_CERT), ("keyfile", ENV_KEY))
PROBE_TIMEOUT = 1.0  # seconds: the TLS probe of a port that dropped a plaintext client
_RETRY_ENDED = "Failed connecting to Zookeeper within the connection retry policy."  # kazoo's words
# what the server's side of a failed handshake looks like to this client
_HUNG_UP = ("UNEXPECTED_EOF_WHILE_READING", "WRONG_VERSION_NUMBER")
_NO_CERTIFICATE = ("bad certificate", "certificate required", "handshake failure")
_REFUSED_CERTIFICATE = ("certificate unknown", "bad certificate", "unknown ca", "certificate expired")
_GIVE_FILES = "give the TLS files: ca=, certfile=, keyfile=, or " + ", ".join(env for _, env in _FILES)


def resolve_tls_options(options: dict[str, Any]) -> bool:
    """Fill ``options`` (kazoo's keyword arguments) with the TLS files, from the arguments or
    else the environment, and check them; True when the client will speak TLS."""
    explicit = any(options.get(name) for name, _ in _FILES)
    if not explicit and options.get("use_ssl") is not False:
        for name, env in _FILES:
            value = os.environ.get(env, "").strip()
            if value:
                options[name] = value
    given = {name: options.get(name) for name, _ in _FILES if options.get(name)}
    if not given:
        if options.get("use_ssl"):
            options.setdefault("check_hostname", True)
            options.setdefault("verify_certs", True)
        return bool(options.get("use_ssl"))
    if options.get("use_ssl") is False:
        raise InvalidArgument(f"use_ssl=False contradicts the TLS files given ({', '.join(sorted(given))})")
    for name, path in given.items():
        if not isinstance(path, (str, os.PathLike)):
            raise InvalidArgument(f"{name} must be a file path, got {type(path).__name__}")
        if not os.path.isfile(path):
            raise InvalidArgument(f"{name}: no such file: {os.fspath(path)}")
        options[name] = os.fspath(path)
    if options.get("keyfile") and not options.get("certfile"):
        raise InvalidArgument("keyfile= (or ZOOKEEPER_TLS_KEY) was given without its certfile=")
    _check_files(options)
    options["use_ssl"] = True
    options.setdefault("verify_certs", True)
    options.setdefault("check_hostname", bool(options["verify_certs"]))
    return True


def _check_files(options: dict[str, Any]) -> None:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ca = options.get("ca")
    if ca:
        try:
            context.load_verify_locations(ca)
        except (ssl.SSLError, OSError, ValueError):
            raise InvalidArgument(f"ca: {ca} holds no PEM certificate") from None
    certfile = options.get("certfile")
    if certfile:
        try:
            context.load_cert_chain(certfile, options.get("keyfile"), password=options.get("keyfile_password"))
        except ssl.SSLError as exc:
            if "KEY_VALUES_MISMATCH" in str(exc):
                raise InvalidArgument(f"keyfile is not the key of the certificate in {certfile}") from None
            raise InvalidArgument(
                f"certfile {certfile} (with keyfile {options.get('keyfile') or '(none)'}) holds no usable"
                f" certificate and private key: {exc.reason or 'unreadable'}"
            ) from None
        except (OSError, ValueError):
            raise InvalidArgument(f"certfile {certfile} could not be read with its key") from None


def _ssl_error(exc: BaseException | None) -> ssl.SSLError | None:
    seen = 0
    while exc is not None and seen < 8:
        if isinstance(exc, ssl.SSLError):
            return exc
        exc = exc.__cause__ or exc.__context__
        seen += 1
    return None


def _alert(error: ssl.SSLError) -> str:
    reason = error.reason or ""
    for prefix in ("SSLV3_ALERT_", "TLSV13_ALERT_", "TLSV1_ALERT_"):
        if reason.startswith(prefix):
            return reason[len(prefix) :].lower().replace("_", " ")
    return ""


def _not_after(certfile: str) -> str | None:
    try:  # the stdlib's own certificate decoder; absent from some builds
        decoded = ssl._ssl._test_decode_cert(certfile)  # type: ignore[attr-defined]
        stamp = decoded.get("notAfter")
        if stamp and ssl.cert_time_to_seconds(stamp) < time.time():
            return str(stamp)
    except Exception:
        return None
    return None


class HandshakeWatch:
    """Watches ``client``'s connection attempts while :func:`zksync.connect` waits for them."""

    def __init__(self, client: KazooClient, tls: bool) -> None:
        self.client = client
        self.tls = tls
        self.gave_up = threading.Event()
        # set when an attempt's handshake, session and SASL authentication (kazoo does it after
        # reporting the session connected) all went through
        self.session_ready = threading.Event()
        self._lock = threading.Lock()
        self._failures: dict[tuple[str, int], str] = {}
        self._auth_failed: str | None = None  # the ensemble refused the SASL authentication
        self._quiet: set[int] = set()  # ids of the exceptions whose warnings stay out of the log
        self._hosts = {(host, int(port)) for host, port in client.hosts}
        self._conn = client._connection
        self._handler = client.handler
        self._previous_connect = self._conn._connect
        self._filter = _QuietFilter(self._quiet, self.gave_up)
        self._installed = False

    # ---- installing and removing -------------------------------------------------------------
    def __enter__(self) -> HandshakeWatch:
        previous = self._previous_connect
        tracked = threading.local()

        def create_connection(*args: Any, **kwargs: Any) -> Any:
            tracked.handshake_done = False
            sock = type(self._handler).create_connection(self._handler, *args, **kwargs)
            tracked.handshake_done = True
            return sock

        def watched_connect(host: str, hostip: str, port: int) -> Any:
            tracked.handshake_done = False
            try:
                result = previous(host, hostip, port)
                self.session_ready.set()
                return result
            except Exception as exc:
                self._record(host, port, exc, getattr(tracked, "handshake_done", True))
                raise

        self._conn._connect = watched_connect
        self._own_create = "create_connection" not in vars(self._handler)
        if self._own_create:  # a handler shared with a client connecting right now keeps its own
            self._handler.create_connection = create_connection
        self.client.logger.addFilter(self._filter)
        self._installed = True
        return self

    def __exit__(self, *exc: object) -> None:
        if not self._installed:
            return
        self._installed = False
        self._conn._connect = self._previous_connect
        if self._own_create:
            vars(self._handler).pop("create_connection", None)
        self.client.logger.removeFilter(self._filter)

    # ---- what each attempt says ---------------------------------------------------------------
    def _record(self, host: str, port: int, exc: BaseException, handshake_done: bool) -> None:
        if isinstance(exc, AuthFailedError):  # kazoo stops connecting: no point in waiting on
            options = self.client._connection.sasl_options or {}
            who = f"{options.get('mechanism', 'SASL')} as {options.get('username', '?')!r}"
            with self._lock:
                self._auth_failed = f"{host}:{port} refused this client's SASL authentication ({who}): {exc}"
            self.gave_up.set()
            return
        reason = self._explain(host, port, exc, handshake_done)
        if reason is None:
            return
        with self._lock:
            self._failures[(host, int(port))] = reason
            self._quiet.add(id(exc))
            if self._hosts and self._hosts <= set(self._failures):
                self.gave_up.set()

    def _explain(self, host: str, port: int, exc: BaseException, handshake_done: bool) -> str | None:
        error = _ssl_error(exc)
        where = f"{host}:{port}"
        if not self.tls:
            if error is None and isinstance(exc, Exception) and self._speaks_tls(host, port):
                return f"{where}: it serves TLS and this client speaks plaintext ({_GIVE_FILES})"
            return None
        if error is None:
            if not handshake_done:
                return f"the handshake with {where} failed: the server closed the connection: is it a plaintext port?"
            return None
        return f"the handshake with {where} failed: {self._describe(host, error)}"

    def _describe(self, host: str, error: ssl.SSLError) -> str:
        options = self.client
        if isinstance(error, ssl.SSLCertVerificationError):
            code = error.verify_code
            if code in (18, 19, 20, 21):  # self-signed, self-signed in chain, unknown issuer
                return (
                    f"the server's certificate is not signed by a CA this client trusts"
                    f" ({options.ca or 'the system CAs'}): {error.verify_message}"
                )
            if code == 10:
                return "the server's certificate has expired"
            if code == 9:
                return "the server's certificate is not valid yet"
            if code == 62:
                return f"the server's certificate is not valid for {host!r} (connect by a name or address it carries)"
            return f"the server's certificate was refused: {error.verify_message}"
        alert = _alert(error)
        if isinstance(error, ssl.SSLEOFError) or error.reason in _HUNG_UP:
            return "the server closed the connection during the handshake: is it a plaintext port?"
        if not options.certfile and alert in _NO_CERTIFICATE:
            return (
                "the server requires a client certificate and none was given (certfile= and keyfile=,"
                f" or {ENV_CERT} and {ENV_KEY}); alert: {alert}"
            )
        if options.certfile and alert in _REFUSED_CERTIFICATE:
            expired = _not_after(options.certfile)
            why = f"that certificate expired on {expired}" if expired else "is it signed by a CA the server trusts?"
            return f"the server refused this client's certificate {options.certfile} (alert: {alert}): {why}"
        return f"{error.reason or error}" + (f" (alert: {alert})" if alert else "")

    def _speaks_tls(self, host: str, port: int) -> bool:
        """Whether ``host:port`` answers a TLS handshake (checked once a plaintext client was dropped)."""
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        try:
            with (
                socket.create_connection((host, port), timeout=PROBE_TIMEOUT) as raw,
                context.wrap_socket(raw, server_hostname=host),
            ):
                return True
        except ssl.SSLError as exc:  # an alert is TLS speaking; garbage or a hang-up is not
            return bool(_alert(exc))
        except OSError:
            return False

    # ---- the outcome --------------------------------------------------------------------------
    def error(self, hosts: str) -> TLSError | AccessDenied | None:
        """The :class:`TLSError` (or, for a refused SASL authentication, the
        :class:`AccessDenied`) to raise when the wait ended without a session, or None when no
        attempt failed for those reasons."""
        with self._lock:
            if self._auth_failed is not None:
                return AccessDenied(f"could not connect to ZooKeeper at {hosts}: {self._auth_failed}")
            reasons = list(dict.fromkeys(self._failures.values()))
        if not reasons:
            return None
        how = "over TLS" if self.tls else "in plaintext"
        return TLSError(f"could not connect to ZooKeeper at {hosts} {how}: {'; '.join(reasons)}")


class _QuietFilter(logging.Filter):
    """Keeps kazoo's warning about an attempt the watch explained out of the log."""

    def __init__(self, quiet: set[int], gave_up: threading.Event) -> None:
        super().__init__()
        self._quiet = quiet
        self._gave_up = gave_up

    def filter(self, record: logging.LogRecord) -> bool:
        if self._gave_up.is_set() and record.msg == _RETRY_ENDED:
            return False  # connect() stopped the client's retries: that is no news to its caller
        if record.levelno >= logging.ERROR or not isinstance(record.args, tuple) or not record.args:
            return True
        cause = record.args[0]
        if not isinstance(cause, BaseException):
            return True
        return id(cause) not in self._quiet and id(cause.__context__) not in self._quiet
