"""The private parts of kazoo that zksync and its tests rely on, checked on real clients.

setup.cfg pins kazoo to the major version whose internals these are (``kazoo>=2.9,<3``): a
kazoo release that changes one of them fails here, with its name, rather than elsewhere as a
wrong grace period or a miscounted request.

* ``client._connection._connect(host, hostip, port)`` is looked up on the connection handler at
  every connection attempt and returns ``(read_timeout, connect_timeout)`` in ms, the read
  timeout being 2/3 of the session timeout the server negotiated:
  ``zksync._session.install_timeout_probe`` wraps it to learn that timeout.
* ``client._session_timeout``: the requested session timeout in ms (the probe's fallback).
* ``client._stopped``: an event, set while the client is stopped (``SessionWatch.stopped``;
  ``zksync._watches`` drops notifications then, and ends its watches without a call).
* ``client._call(request, async_object)``: every request but pings goes through it, transactions
  included (``RequestCounter`` in the tests, the benchmarks' request counts).  Any object with a
  ``type`` (the opcode), ``serialize()`` and ``deserialize(buffer, offset)`` is sent and answered
  like kazoo's own requests, a server error coming back as the kazoo exception of its code; a
  ``watcher`` attribute, if any, is registered as a one-shot watcher.  kazoo's own one-shot
  requests carry the server's path (the chroot included) in ``path`` and the callback in
  ``watcher``, children watches being ``GetChildren`` or ``GetChildren2``
  (``zksync._watches`` sends addWatch and removeWatches through it, and wraps it to see kazoo set
  a one-shot watch on a watched path).
* ``client._connection._read_watch_event(buffer, offset)``: called once per watch notification
  (``WatchCounter``), which is at ``offset`` of ``buffer``: its type and state (ints), its path
  (a length-prefixed string, the server's path).  kazoo hands it to the one-shot watchers of that
  exact path only, popping them (``zksync._watches`` wraps it to hand the notification on to the
  persistent watches it concerns, after kazoo).
* ``client._data_watchers`` and ``client._child_watchers``: server path -> the data and exists,
  and the children watchers registered once the server's reply arrived (the lock benchmark
  waits on the first until a waiter is watching; ``zksync._watches`` looks there before
  removing all of a path's watches).
* ``client._connection._socket``: the socket of the current connection (a reconnection check in
  ``test_faults_local``).
* The threading handler's ``dispatch_callback(Callback("watch", func, args))`` is how the
  connection thread hands every watch notification on, and ``async_result()`` makes the result
  of every request, a ``kazoo.handlers.threading.AsyncResult`` whose ``set``/``set_exception``
  and ``rawlink`` on a ready result call ``_do_callbacks()``, which queues each of
  ``_callbacks`` on ``_handler.completion_queue`` while ``_handler.running``
  (``zksync._handler.PollingHandler`` runs the marked ones there instead).
"""

from __future__ import annotations

import configparser
import re
import threading
from collections.abc import Callable
from importlib.metadata import version
from pathlib import Path
from typing import Any

import pytest
from kazoo.client import KazooClient
from kazoo.exceptions import NoNodeError, NoWatcherError
from kazoo.protocol.serialization import GetChildren, GetChildren2
from packaging.specifiers import SpecifierSet

from zksync._session import install_timeout_probe, session_for
from zksync._watches import AddWatch, RemoveWatches, parse_notification
from zksync.testing.ensemble import four_letter
from zksync.testing.timing import scaled, sleep

from .conftest import wait_until

Factory = Callable[..., KazooClient]
ROOT = Path(__file__).resolve().parent.parent


def members(hosts: str) -> list[tuple[str, int]]:
    """(host, port) of every member in a ``host:port,...`` connection string."""
    found = []
    for entry in hosts.split("/", 1)[0].split(","):
        host, _, port = entry.strip().rpartition(":")
        found.append((host, int(port)))
    return found


def session_timeout_bounds(zk_hosts: str) -> tuple[int, int]:
    """The (min, max) session timeout in ms the members allow, from their ``conf``."""
    host, port = members(zk_hosts)[0]
    conf = four_letter(host, port, "conf")
    low = re.search(r"^minSessionTimeout=(\d+)$", conf, re.M)
    high = re.search(r"^maxSessionTimeout=(\d+)$", conf, re.M)
    if low is None or high is None:
        pytest.skip(f"the ensemble does not answer 'conf' with its session timeout bounds: {conf[:200]!r}")
    return int(low.group(1)), int(high.group(1))


def timeout_on_the_server(zk_hosts: str, session_id: int) -> int:
    """The session timeout in ms that the members list (``cons``) for ``session_id``."""
    for host, port in members(zk_hosts):
        match = re.search(rf"sid=0x{session_id:x},.*?\bto=(\d+)", four_letter(host, port, "cons"))
        if match:
            return int(match.group(1))
    raise AssertionError(f"no member lists session 0x{session_id:x}")


def negotiated(client: KazooClient) -> float:
    # the probe records the value when _connect returns, just after kazoo reports CONNECTED
    value = wait_until(lambda: getattr(client, "_zksync_negotiated_timeout", None), 5, "the probe's record")
    return float(value)


def test_the_installed_kazoo_is_one_the_pin_allows() -> None:
    config = configparser.ConfigParser()
    config.read(ROOT / "setup.cfg")
    requirements = config["options"]["install_requires"].split()
    (pin,) = [r for r in requirements if r.startswith("kazoo")]
    spec = SpecifierSet(pin.removeprefix("kazoo"))
    assert "<3" in str(spec), f"kazoo is not pinned below the next major version: {pin}"
    assert version("kazoo") in spec, f"kazoo {version('kazoo')} is outside {pin}"


def test_the_probe_is_installed_on_the_connection_of_every_client_zksync_touches(
    zk_client: KazooClient, zk_hosts: str, zk_chroot: str
) -> None:
    # made by zksync.connect (the plugin's clients are)
    assert zk_client._connection._connect._zksync_probe is True
    # a client the application made itself gets it from the session watch of its first recipe
    bare = KazooClient(hosts=f"{zk_hosts}{zk_chroot}", timeout=scaled(4))
    try:
        assert not getattr(bare._connection._connect, "_zksync_probe", False)
        session_for(bare)
        probe = bare._connection._connect
        assert probe._zksync_probe is True
        install_timeout_probe(bare)  # a second install does not wrap the wrapper
        assert bare._connection._connect is probe
        bare.start(timeout=scaled(15))
        assert negotiated(bare) == pytest.approx(timeout_on_the_server(zk_hosts, bare.client_id[0]) / 1000.0)
    finally:
        bare.stop()
        bare.close()


@pytest.mark.parametrize("request_", ["within the bounds", "above the maximum", "below the minimum"])
def test_the_probe_records_the_session_timeout_the_server_negotiated(
    zk_client_factory: Factory, zk_hosts: str, request_: str
) -> None:
    low, high = session_timeout_bounds(zk_hosts)
    requested_ms = {
        "within the bounds": (low + high) // 2,
        "above the maximum": 2 * high,
        "below the minimum": low // 2,
    }[request_]
    expected_ms = min(max(requested_ms, low), high)
    assert (requested_ms == expected_ms) == (request_ == "within the bounds")
    host, port = members(zk_hosts)[0]  # one member: the whole (short) timeout for the handshake
    client = zk_client_factory(hosts=f"{host}:{port}", timeout=requested_ms / 1000.0)
    assert client._session_timeout == requested_ms  # what was asked, in ms
    assert timeout_on_the_server(zk_hosts, client.client_id[0]) == expected_ms
    assert negotiated(client) == pytest.approx(expected_ms / 1000.0)
    assert session_for(client).session_timeout == pytest.approx(expected_ms / 1000.0)


def test_stopped_is_an_event_set_while_the_client_is_stopped(zk_client_factory: Factory) -> None:
    client = zk_client_factory()
    assert client._stopped.is_set() is False
    assert session_for(client).stopped() is False
    client.stop()
    assert client._stopped.is_set() is True
    assert session_for(client).stopped() is True


def test_every_request_but_pings_goes_through_call(zk_client_factory: Factory) -> None:
    zk_client = zk_client_factory(timeout=scaled(3))  # a ping every unit of test time or so
    seen: list[str] = []
    original = zk_client._call

    def recording(request: Any, async_object: Any) -> Any:
        seen.append(type(request).__name__)
        return original(request, async_object)

    zk_client._call = recording
    try:
        zk_client.create("/k", b"x")
        zk_client.exists("/k")
        zk_client.get("/k")
        zk_client.get_children("/")
        zk_client.create("/k2", b"", include_data=True)
        transaction = zk_client.transaction()
        transaction.set_data("/k", b"y")
        transaction.delete("/k")
        transaction.commit()
        zk_client.delete("/k2")
        assert seen == ["Create", "Exists", "GetData", "GetChildren", "Create2", "Transaction", "Delete"]
        seen.clear()
        sleep(2)  # idle for more than one ping interval (a third of the session timeout)
        assert seen == []
    finally:
        zk_client._call = original


def test_every_watch_notification_goes_through_read_watch_event(zk_client: KazooClient) -> None:
    connection = zk_client._connection
    original = connection._read_watch_event
    calls: list[int] = []
    fired = threading.Event()

    def counting(buffer: Any, offset: Any) -> Any:
        calls.append(offset)
        return original(buffer, offset)

    connection._read_watch_event = counting
    try:
        zk_client.exists("/w", watch=lambda event: fired.set())
        zk_client.create("/w")
        assert fired.wait(scaled(10))
        assert len(calls) == 1
    finally:
        connection._read_watch_event = original


def test_the_connection_keeps_its_socket(zk_client: KazooClient, zk_hosts: str) -> None:
    sock = zk_client._connection._socket
    assert zk_client.connected and sock is not None
    host, port = sock.getpeername()[:2]
    assert (host, port) in members(zk_hosts)


def test_an_exists_watch_is_registered_in_data_watchers_once_its_reply_is_in(zk_client: KazooClient) -> None:
    zk_client.create("/watched")
    assert not any(zk_client._data_watchers.values())
    fired = threading.Event()
    assert zk_client.exists("/watched", watch=lambda event: fired.set()) is not None
    assert any(zk_client._data_watchers.values())  # registered by the time exists returned
    zk_client.delete("/watched")
    assert fired.wait(scaled(5))
    wait_until(lambda: not any(zk_client._data_watchers.values()), what="the fired watch unregistered")


def test_a_request_of_ours_is_sent_and_answered_through_call_like_kazoos_own(zk_client: KazooClient) -> None:
    chroot = zk_client.chroot
    added = zk_client.handler.async_result()
    zk_client._call(AddWatch(f"{chroot}/w", 1), added)
    assert added.get(timeout=scaled(10)) is True
    assert not any(zk_client._data_watchers.values()) and not any(zk_client._child_watchers.values())
    removed = zk_client.handler.async_result()
    zk_client._call(RemoveWatches(f"{chroot}/nothing", 3), removed)  # no watch there: the server's error
    with pytest.raises(NoWatcherError):
        removed.get(timeout=scaled(10))


def test_kazoos_one_shot_requests_carry_the_server_path_and_the_watcher(zk_client: KazooClient) -> None:
    chroot = zk_client.chroot
    seen: list[tuple[type, Any, Any]] = []
    original = zk_client._call

    def recording(request: Any, async_object: Any) -> Any:
        seen.append((type(request), getattr(request, "path", None), getattr(request, "watcher", None)))
        return original(request, async_object)

    def watch(event: Any) -> None:
        pass

    zk_client._call = recording
    try:
        zk_client.exists("/x", watch=watch)
        with pytest.raises(NoNodeError):
            zk_client.get("/x", watch=watch)
        zk_client.get_children("/", watch=watch)
        zk_client.get_children("/", watch=watch, include_data=True)
        zk_client.create("/x")
    finally:
        zk_client._call = original
    assert [(kind.__name__, path, watcher) for kind, path, watcher in seen[:4]] == [
        ("Exists", f"{chroot}/x", watch),
        ("GetData", f"{chroot}/x", watch),
        ("GetChildren", chroot, watch),
        ("GetChildren2", chroot, watch),
    ]
    assert seen[2][0] is GetChildren and seen[3][0] is GetChildren2
    assert seen[4][2] is None  # a request without a watch


def test_a_notification_is_at_its_offset_and_kazoo_pops_the_one_shot_watchers_of_its_exact_path(
    zk_client: KazooClient,
) -> None:
    chroot = zk_client.chroot
    connection = zk_client._connection
    original = connection._read_watch_event
    seen: list[tuple[int, str]] = []
    fired: list[str] = []

    def reading(buffer: Any, offset: Any) -> Any:
        seen.append(parse_notification(buffer, offset))
        return original(buffer, offset)

    zk_client.create("/p")
    zk_client.exists("/p/kid", watch=lambda event: fired.append("exists"))
    zk_client.get_children("/p", watch=lambda event: fired.append("children"))
    assert len(zk_client._data_watchers[f"{chroot}/p/kid"]) == 1
    assert len(zk_client._child_watchers[f"{chroot}/p"]) == 1
    connection._read_watch_event = reading
    try:
        zk_client.create("/p/kid")
        wait_until(lambda: len(fired) == 2, what="both one-shot watches fired")
    finally:
        connection._read_watch_event = original
    assert sorted(seen) == [(1, f"{chroot}/p/kid"), (4, f"{chroot}/p")]  # CREATED, CHILD
    assert not zk_client._data_watchers.get(f"{chroot}/p/kid") and not zk_client._child_watchers.get(f"{chroot}/p")


def test_watches_go_through_dispatch_callback_and_replies_through_do_callbacks(zk_hosts: str) -> None:
    from kazoo.handlers.threading import AsyncResult, SequentialThreadingHandler
    from kazoo.protocol.states import Callback

    seen: list[str] = []

    class Recording(SequentialThreadingHandler):  # type: ignore[misc]
        def dispatch_callback(self, callback: Callback) -> None:
            seen.append(f"dispatch:{callback.type}:{callback.func.__name__}")
            super().dispatch_callback(callback)

        def async_result(self) -> AsyncResult:
            result = super().async_result()
            assert isinstance(result, AsyncResult) and result._handler is self
            original = result._do_callbacks

            def do_callbacks() -> None:
                seen.append(f"callbacks:{len(result._callbacks)}")
                return original()  # type: ignore[no-any-return]

            result._do_callbacks = do_callbacks
            return result

    client = KazooClient(zk_hosts, handler=Recording())
    client.start(10)
    try:
        path = f"/internals-dispatch-{threading.get_ident()}"
        done = threading.Event()

        def watcher(event: object) -> None:
            done.set()

        pending = client.exists_async(path, watch=watcher)
        replied = threading.Event()
        pending.rawlink(lambda result: replied.set())
        assert replied.wait(5) and "callbacks:1" in seen
        queue = client.handler.completion_queue
        assert client.handler.running and hasattr(queue, "put")
        assert isinstance(pending._callbacks, list)
        client.create(path)
        assert done.wait(5)
        assert "dispatch:watch:watcher" in seen
        client.delete(path)
        assert callable(pending._do_callbacks)
    finally:
        client.stop()
        client.close()
