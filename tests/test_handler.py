"""zksync.connect's kazoo handler: kazoo's threading handler waiting on sockets with poll(2).

The whole suite runs its clients on it (they are made by ``zksync.connect``); here is its
``select`` contract on plain sockets, and who gets it; and the reconnection pause connect sets."""

from __future__ import annotations

import select
import socket
import threading
import time
from collections.abc import Iterator

import pytest
from kazoo.handlers.threading import SequentialThreadingHandler
from kazoo.retry import KazooRetry

import zksync
from zksync._handler import PollingHandler, inline, poll_select

from .conftest import wait_until


@pytest.fixture
def pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    a, b = socket.socketpair()
    yield a, b
    a.close()
    b.close()


def test_a_socket_with_data_is_readable_and_one_without_is_not(pair: tuple[socket.socket, socket.socket]) -> None:
    a, b = pair
    assert poll_select([a], [], [], 0) == ([], [], [])
    b.send(b"x")
    assert poll_select([a, b], [], [], 1) == ([a], [], [])
    assert poll_select([], [a], [], 0) == ([], [a], [])  # a connected socket with room is writable
    assert poll_select([a], [a], [], 0) == ([a], [a], [])  # the same socket in both lists


def test_a_wait_lasts_its_timeout_and_a_short_one_is_not_a_busy_loop(pair: tuple[socket.socket, socket.socket]) -> None:
    a, _ = pair
    started = time.monotonic()
    assert poll_select([a], [], [], 0.0004) == ([], [], [])  # rounded up to a millisecond, not to 0
    assert poll_select([a], [], [], 0.05) == ([], [], [])
    assert time.monotonic() - started >= 0.05


def test_a_peer_that_hung_up_makes_the_socket_readable(pair: tuple[socket.socket, socket.socket]) -> None:
    a, b = pair
    b.close()
    assert poll_select([a], [], [], 1) == ([a], [], [])  # the read then sees the end, as with select


def test_bad_arguments_are_refused_as_kazoos_own_select_refuses_them(pair: tuple[socket.socket, socket.socket]) -> None:
    a, _ = pair
    with pytest.raises(ValueError):
        poll_select([a], [], [], -1)
    with pytest.raises(TypeError):
        poll_select([a], [], [], "1")  # type: ignore[arg-type]
    closed = socket.socket()
    closed.close()
    with pytest.raises(ValueError):
        poll_select([closed], [], [], 0)  # fileno() is -1 once closed


def test_connect_gives_the_polling_handler_unless_one_is_passed(zk_hosts: str) -> None:
    client = zksync.connect(zk_hosts)
    theirs = zksync.connect(zk_hosts, handler=SequentialThreadingHandler())
    try:
        assert isinstance(client.handler, PollingHandler) and client.connected
        assert type(theirs.handler) is SequentialThreadingHandler  # the caller's own, untouched
        assert client.exists("/") is not None
    finally:
        for c in (client, theirs):
            c.stop()
            c.close()


@pytest.mark.skipif(not hasattr(select, "poll"), reason="no poll(2) here")
def test_the_handler_is_kazoos_threading_handler_but_for_select_and_watch_dispatch() -> None:
    assert PollingHandler.select is not SequentialThreadingHandler.select
    assert [k for k, v in vars(PollingHandler).items() if callable(v)] == [
        "select",
        "dispatch_callback",
        "async_result",
    ]


def test_connect_bounds_the_reconnection_pause_unless_a_retry_is_passed(zk_hosts: str) -> None:
    # kazoo's own default pause doubles up to an hour: a client could sleep through its members'
    # return and lose a session the ensemble kept (seen in the fault suite)
    client = zksync.connect(zk_hosts)
    mine = KazooRetry(max_tries=3, max_delay=30.0)
    theirs = zksync.connect(zk_hosts, connection_retry=mine)
    try:
        retry = client._connection.retry_sleeper
        assert retry.max_delay == zksync.RECONNECT_MAX_DELAY and retry.max_tries is None  # for ever
        assert retry.sleep_func is client.handler.sleep_func
        assert theirs._connection.retry_sleeper.max_delay == 30.0  # the caller's own, untouched
        assert theirs._connection.retry_sleeper.max_tries == 3
    finally:
        for c in (client, theirs):
            c.stop()
            c.close()


def test_a_marked_watch_runs_at_once_while_the_callback_thread_is_busy_and_others_keep_their_queue(
    zk_hosts: str,
) -> None:
    """A waiter's wake-up (marked) does not queue behind a slow callback; an unmarked watch still
    runs on kazoo's callback thread, after the callbacks queued before it."""
    client = zksync.connect(zk_hosts)
    try:
        path = f"/handler-inline-{time.monotonic_ns()}"
        client.create(path)
        release = threading.Event()
        order: list[str] = []
        woken = threading.Event()

        def slow(event: object) -> None:  # occupies the callback thread
            release.wait(10)
            order.append("slow")

        def plain(event: object) -> None:
            order.append("plain")

        @inline
        def marked(event: object) -> None:
            order.append(f"marked:{threading.current_thread() is threading.main_thread()}")
            woken.set()

        client.exists(f"{path}/a", watch=slow)
        client.exists(f"{path}/b", watch=plain)
        client.exists(f"{path}/c", watch=marked)
        client.create(f"{path}/a")
        client.create(f"{path}/b")
        client.create(f"{path}/c")
        assert woken.wait(5)  # delivered though the callback thread is stuck in slow()
        assert order == ["marked:False"]
        release.set()
        wait_until(lambda: len(order) == 3, 5, "the queued watches run")
        assert order == ["marked:False", "slow", "plain"]
        client.delete(path, recursive=True)
    finally:
        client.stop()
        client.close()


def test_a_marked_watch_that_fails_is_logged_and_the_connection_goes_on(
    zk_hosts: str, caplog: pytest.LogCaptureFixture
) -> None:
    client = zksync.connect(zk_hosts)
    try:
        path = f"/handler-failing-{time.monotonic_ns()}"

        @inline
        def broken(event: object) -> None:
            raise RuntimeError("boom")

        client.exists(path, watch=broken)
        client.create(path)
        assert client.exists(path) is not None  # the connection still answers
        assert any("callback run on the connection thread failed" in r.getMessage() for r in caplog.records)
        client.delete(path)
    finally:
        client.stop()
        client.close()


def test_a_marked_reply_callback_runs_where_the_reply_is_read_and_others_keep_the_completion_queue(
    zk_hosts: str,
) -> None:
    client = zksync.connect(zk_hosts)
    try:
        release = threading.Event()
        order: list[str] = []
        woken = threading.Event()

        def slow(result: object) -> None:  # occupies the completion thread
            release.wait(10)
            order.append("slow")

        @inline
        def marked(result: object) -> None:
            order.append("marked")
            woken.set()

        client.exists_async("/").rawlink(slow)
        client.exists_async("/").rawlink(marked)
        assert woken.wait(5)  # run though the completion thread is stuck in slow()
        assert order == ["marked"]
        release.set()
        wait_until(lambda: len(order) == 2, 5, "the queued reply callback run")
        assert order == ["marked", "slow"]
    finally:
        client.stop()
        client.close()
