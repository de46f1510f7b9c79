"""The sync API (states, barriers, topics, liveness, exchange) against the real ensemble."""

from __future__ import annotations

import multiprocessing
import os
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from kazoo.client import KazooClient

import zksync
from zksync import BarrierAborted, InvalidArgument, ParticipantLost, Sync, SyncTimeout, Timeout
from zksync._util import Deadline
from zksync.testing.timing import scaled, sleep

from .conftest import settle, tree, wait_until
from .frontends import use_frontend

Factory = Callable[..., KazooClient]


@pytest.fixture(params=["blocking", "asyncio"], autouse=True)
def frontend(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Every scenario of this file runs on both front-ends (see tests/frontends.py)."""
    return use_frontend(request, sys.modules[__name__], monkeypatch)


ROOT = Path(__file__).resolve().parent.parent


def instances(factory: Factory, n: int, namespace: str = "run", **kwargs: Any) -> list[Sync]:
    return [Sync(factory(), namespace, instance_id=f"i{k}", **kwargs) for k in range(n)]


def joined(factory: Factory, n: int) -> list[Sync]:
    """``n`` instances i0..i{n-1} of a run of ``n``, all joined (their clients: ``s.client``)."""
    syncs = instances(factory, n, instance_count=n)
    for s in syncs:
        s.join()
    ring_closed(syncs)
    return syncs


def ring_closed(syncs: list[Sync]) -> None:
    """Wait until each instance of ``syncs`` is watched by another one (the ring is set up in the
    background after a join: an instance that goes before anyone watches it is not recorded)."""

    def unwatched() -> set[str]:
        rings = [s._core.ring for s in syncs]
        names = {ring.node.rsplit("/", 1)[-1] for ring in rings if ring is not None}
        return names - set().union(*(ring.watching for ring in rings if ring is not None))

    wait_until(lambda: len(syncs) < 2 or not unwatched(), what="every instance watched by the ring")


def record_requests(client: KazooClient) -> list[tuple[str, str]]:
    """(request type, path) of every request ``client`` sends from now on (paths include the chroot)."""
    sent: list[tuple[str, str]] = []
    original = client._call

    def recording(request: Any, async_object: Any) -> Any:
        sent.append((type(request).__name__, getattr(request, "path", "")))
        return original(request, async_object)

    client._call = recording
    return sent


def _signal_in_process(hosts: str, count: int, queue: Any) -> None:
    client = zksync.connect(hosts)
    sync = Sync(client, "run", instance_id=f"p{os.getpid()}")
    queue.put([sync.signal_entry("go") for _ in range(count)])
    client.stop()


def test_sequence_numbers_are_unique_and_dense_across_processes(zk_hosts: str, zk_chroot: str) -> None:
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    procs = [ctx.Process(target=_signal_in_process, args=(f"{zk_hosts}{zk_chroot}", 25, queue)) for _ in range(4)]
    for p in procs:
        p.start()
    seqs = [s for _ in procs for s in queue.get(timeout=scaled(120))]
    for p in procs:
        p.join(scaled(30))
    assert sorted(seqs) == list(range(1, 101))


def test_barrier_at_above_and_below_target(zk_client_factory: Factory, pool: ThreadPoolExecutor) -> None:
    a, b, c = instances(zk_client_factory, 3)
    a.barrier("s", 0, timeout=scaled(1))  # target 0 passes at once
    waiting = pool.submit(b.barrier, "s", 2, scaled(20))
    assert a.signal_entry("s") == 1
    sleep(0.3)
    assert not waiting.done()  # below target
    assert c.signal_entry("s") == 2
    settle(waiting)  # at target
    assert a.signal_entry("s") == 3
    b.barrier("s", 2, timeout=scaled(5))  # above target: passes at once
    assert a.counts() == {"s": 3}


def test_signal_and_wait_releases_everybody_with_their_sequence(
    zk_client_factory: Factory, pool: ThreadPoolExecutor
) -> None:
    syncs = instances(zk_client_factory, 5)
    futures = [pool.submit(s.signal_and_wait, "ready", 5, scaled(20)) for s in syncs]
    assert sorted(settle(f) for f in futures) == [1, 2, 3, 4, 5]


def test_barrier_async_returns_a_future(zk_client_factory: Factory) -> None:
    a, b = instances(zk_client_factory, 2)
    future = a.barrier_async("s", 1, timeout=scaled(10))
    b.signal_entry("s")
    assert future.result(timeout=scaled(10)) is None


def test_timeout_names_the_instances_that_never_arrived(zk_client_factory: Factory) -> None:
    a, b, c = instances(zk_client_factory, 3)
    b.join()
    c.join()
    a.signal_entry("s")
    with pytest.raises(SyncTimeout) as info:
        a.barrier("s", 3, timeout=scaled(0.5))
    assert isinstance(info.value, Timeout)
    assert info.value.missing == ["i1", "i2"]
    assert "i1" in str(info.value)


def test_an_instance_that_dies_makes_waiters_fail_fast_with_its_id(
    zk_client_factory: Factory, pool: ThreadPoolExecutor
) -> None:
    syncs = joined(zk_client_factory, 3)
    waiters = [pool.submit(s.signal_and_wait, "done", 3, scaled(60)) for s in syncs[:2]]
    sleep(0.3)
    started = time.monotonic()
    syncs[2].client.stop()  # i2 dies before signalling
    for w in waiters:
        with pytest.raises(ParticipantLost) as info:
            settle(w)
        assert info.value.instances == ["i2"]
    assert time.monotonic() - started < scaled(30)  # long before the 60 s timeout


def test_a_dead_instance_that_had_signalled_does_not_fail_the_barrier(
    zk_client_factory: Factory, pool: ThreadPoolExecutor
) -> None:
    syncs = joined(zk_client_factory, 3)
    syncs[2].signal_entry("done")
    syncs[2].client.stop()
    waiters = [pool.submit(s.signal_and_wait, "done", 3, scaled(20)) for s in syncs[:2]]
    for w in waiters:
        settle(w)


def test_abort_fails_every_waiter(zk_client_factory: Factory, pool: ThreadPoolExecutor) -> None:
    a, b, c = instances(zk_client_factory, 3)
    waiters = [pool.submit(s.barrier, "s", 3, scaled(20)) for s in (a, b)]
    sleep(0.3)
    c.abort("s", "disk full on i2")
    for w in waiters:
        with pytest.raises(BarrierAborted, match="disk full"):
            settle(w)
    late = Sync(zk_client_factory(), "run", instance_id="late")  # joins after the abort
    started = time.monotonic()
    with pytest.raises(BarrierAborted, match="disk full"):
        late.barrier("s", 3, timeout=scaled(20))
    assert time.monotonic() - started < scaled(10)


def test_topics_keep_order_and_replay_for_late_subscribers(
    zk_client_factory: Factory, pool: ThreadPoolExecutor
) -> None:
    pub, early, late = instances(zk_client_factory, 3)
    live = early.subscribe("addrs", timeout=scaled(10))
    received = pool.submit(lambda: [next(live) for _ in range(5)])
    seqs = [pub.publish("addrs", {"n": n, "addr": f"10.0.0.{n}"}) for n in range(5)]
    assert seqs == [1, 2, 3, 4, 5]
    assert [m["n"] for m in settle(received)] == [0, 1, 2, 3, 4]
    assert [m["n"] for m in late.subscribe("addrs", timeout=scaled(0.5))] == [0, 1, 2, 3, 4]  # replay, then ends
    assert [m["n"] for m in late.subscribe("addrs", start=4, timeout=scaled(0.5))] == [3, 4]
    live.close()
    with pytest.raises(StopIteration):
        next(live)


def test_publish_subscribe_and_publish_and_wait(zk_client_factory: Factory, pool: ThreadPoolExecutor) -> None:
    a, b = instances(zk_client_factory, 2)
    seq, sub = a.publish_subscribe("t", "hello", timeout=scaled(0.5))
    assert seq == 1 and list(sub) == ["hello"]
    waits = [pool.submit(s.publish_and_wait, "t", s.instance_id, "published", 2, scaled(20)) for s in (a, b)]
    assert sorted(settle(w) for w in waits) == [2, 3]


def test_exchange_with_one_slow_participant(zk_client_factory: Factory, pool: ThreadPoolExecutor) -> None:
    syncs = instances(zk_client_factory, 3)

    def contribute(s: Sync, delay: float) -> dict[str, Any]:
        sleep(delay)
        return s.exchange("keys", {"key": s.instance_id.upper()}, participants=3, timeout=scaled(20))

    results = [pool.submit(contribute, s, 1.0 if i == 2 else 0) for i, s in enumerate(syncs)]
    expected = {f"i{k}": {"key": f"I{k}"} for k in range(3)}
    for r in results:
        assert settle(r) == expected


def test_bad_input_gets_clear_errors_and_writes_nothing(zk_client: KazooClient) -> None:
    sync = Sync(zk_client, "run", instance_id="i0")
    with pytest.raises(InvalidArgument, match="state"):
        sync.signal_entry("")
    with pytest.raises(InvalidArgument, match="state"):
        sync.barrier("a/b", 1)
    with pytest.raises(InvalidArgument, match="target"):
        sync.barrier("s", -1)
    with pytest.raises(InvalidArgument, match="JSON"):
        sync.publish("t", object())
    with pytest.raises(InvalidArgument, match="JSON"):
        sync.publish("t", float("nan"))
    with pytest.raises(InvalidArgument, match="participants"):
        sync.exchange("k", 1, participants=0)
    with pytest.raises(InvalidArgument, match="start"):
        sync.subscribe("t", start=0)
    with pytest.raises(InvalidArgument, match="namespace"):
        Sync(zk_client, "")
    assert tree(zk_client) == set()


def test_from_env_scopes_runs_apart(zk_client_factory: Factory, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEST_PLAN", "net")
    monkeypatch.setenv("TEST_CASE", "ping")
    monkeypatch.setenv("TEST_INSTANCE_COUNT", "2")
    monkeypatch.setenv("TEST_RUN", "run-a")
    a = Sync.from_env(zk_client_factory())
    monkeypatch.setenv("TEST_RUN", "run-b")
    b = Sync.from_env(zk_client_factory())
    assert a.namespace != b.namespace and a.instance_count == 2
    assert a.signal_entry("s") == 1 and b.signal_entry("s") == 1
    monkeypatch.delenv("TEST_RUN")
    with pytest.raises(InvalidArgument, match="TEST_RUN"):
        Sync.from_env(zk_client_factory())


def test_cleanup_refuses_while_instances_are_present(zk_client_factory: Factory, zk_client: KazooClient) -> None:
    a, b = instances(zk_client_factory, 2)
    a.signal_entry("s")
    b.join()
    with pytest.raises(zksync.InvalidState, match="i1"):
        a.cleanup()
    assert a.counts() == {"s": 1}
    b.leave()
    a.cleanup()
    assert zk_client.exists("/zksync-sync/run") is None


def _lose_the_reply_of_the_first_signal(sync: Sync, after_landing: bool) -> list[str]:
    """Make the first signal transaction of ``sync`` look as if its reply was lost: either after
    it landed (the server did it) or before it was sent (nothing happened)."""
    from zksync.errors import ConnectionLost

    requests = sync._core.requests
    original = requests.commit
    seen: list[str] = []

    def lossy(transaction: Any, deadline: Any) -> Any:
        if not seen:
            seen.append("lost")
            if after_landing:
                yield from original(transaction, deadline)
            raise ConnectionLost("connection to ZooKeeper lost (injected)", recipe="Sync")
        return (yield from original(transaction, deadline))

    requests.commit = lossy  # type: ignore[method-assign]
    return seen


def test_an_instance_that_joins_after_another_left_is_still_watched_by_the_ring(
    zk_client_factory: Factory, zk_client: KazooClient
) -> None:
    """The lowest instance finds the newest from the parent's stat; a departure must not make
    it look one place too far (the parent's cversion counts deletions as well as creations)."""
    a, b, c = joined(zk_client_factory, 3)
    b.leave()
    wait_until(lambda: "i1" in zk_client.get_children("/zksync-sync/run/left"), what="i1 recorded as gone")
    late = Sync(zk_client_factory(), "run", instance_id="late")
    late.join()
    ring_closed([a, c, late])  # the lowest instance follows the newest join
    late.client.stop()
    wait_until(lambda: "late" in zk_client.get_children("/zksync-sync/run/left"), 10, "late recorded as gone")
    a.leave()
    c.leave()


@pytest.mark.parametrize("after_landing", [True, False], ids=["landed", "not-sent"])
def test_a_signal_whose_reply_is_lost_counts_once_with_its_true_number(
    zk_client_factory: Factory, after_landing: bool
) -> None:
    a, b, c = instances(zk_client_factory, 3)
    assert a.signal_entry("s") == 1
    assert b.signal_entry("s") == 2
    seen = _lose_the_reply_of_the_first_signal(c, after_landing)
    assert c.signal_entry("s") == 3
    assert seen == ["lost"]
    assert a.signal_entry("s") == 4  # dense: the lost reply neither doubled nor skipped a number
    assert a.counts() == {"s": 4}
    assert sorted(c._run(c._core.states.signalled("s", Deadline(5)))) == ["i0", "i1", "i2"]


def test_a_barrier_watches_only_the_entry_that_completes_its_count(
    zk_client_factory: Factory, pool: ThreadPoolExecutor
) -> None:
    from .conftest import RequestCounter

    a, b, c = instances(zk_client_factory, 3)
    for s in (a, b, c):
        s.join(scaled(5))
    assert a.signal_entry("s") == 1  # the first signal of a state also makes its directories
    counter = RequestCounter(b.client)
    waiting = pool.submit(b.signal_and_wait, "s", 3, scaled(20))
    sleep(0.3)
    assert not waiting.done()
    last = RequestCounter(c.client)
    assert c.signal_and_wait("s", 3, timeout=scaled(5)) == 3
    assert last.calls == ["Transaction"]  # the last arrival does not wait at all
    assert settle(waiting) == 2
    # the transaction and exists on e-2, woken by its creation; departures and aborts are watched
    # once per instance, when it joins
    assert counter.calls == ["Transaction", "Exists"]


def test_an_idle_instance_does_not_relist_departures_until_its_next_barrier(
    zk_client_factory: Factory, zk_client: KazooClient
) -> None:
    syncs = joined(zk_client_factory, 5)
    idle = syncs[1]
    sent = record_requests(idle.client)

    def left_listings() -> int:
        return len([p for kind, p in sent if kind == "GetChildren" and p.endswith("/left")])

    for gone, s in enumerate(syncs[2:], start=1):
        s.client.stop()  # three instances go, one after the other
        # (each is recorded by its successor, which must still be there to see it go)
        wait_until(lambda: len(zk_client.get_children("/zksync-sync/run/left")) == gone, what="departure recorded")  # noqa: B023
    sleep(0.3)
    assert left_listings() == 0  # notified once at most, and no re-listing
    with pytest.raises(ParticipantLost) as info:
        idle.barrier("s", 5, timeout=scaled(20))  # the next barrier re-arms the watch and sees all three gone
    assert info.value.instances == ["i2", "i3", "i4"]
    assert left_listings() == 1


def test_joining_finds_the_ring_predecessor_without_listing_the_instances(zk_client_factory: Factory) -> None:
    early = instances(zk_client_factory, 3)
    for s in early:
        s.join()
    late = Sync(zk_client_factory(), "run", instance_id="late")
    sent = record_requests(late.client)
    late.join(scaled(5))
    sleep(0.3)  # the ring is set up asynchronously
    # its predecessor, by name (request paths carry the client's chroot)
    assert [k for k, path in sent if path.endswith("/zksync-sync/run/instances/p-0000000002")] == ["GetData"]
    assert not [path for kind, path in sent if kind == "GetChildren" and path.endswith("/instances")]
