"""zksync.collection.Collection on the real ensemble: writes, compare-and-set, update under
contention, transactions, members, bad input, and a replica that follows everybody's writes
through one recursive watch (partitions and session expiry included)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import pytest
from kazoo.client import KazooClient

from zksync import BadVersion, ConnectionLost, InvalidArgument, InvalidState, NodeExists, QueuedWrite, SessionExpired
from zksync._core.collection import MAX_KEY_BYTES, MAX_VALUE_BYTES, row_path
from zksync.collection import Changed, Collection
from zksync.testing.timing import scaled, sleep
from zksync.testing.toxi import ProxiedEnsemble

from .conftest import RequestCounter, WatchCounter, close_session_of, settle, tree, wait_until
from .frontends import use_frontend

Factory = Callable[..., KazooClient]


@pytest.fixture(params=["blocking", "asyncio"], autouse=True)
def frontend(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Every scenario of this file runs on both front-ends (see tests/frontends.py)."""
    return use_frontend(request, sys.modules[__name__], monkeypatch)


def opened(client: KazooClient, path: str = "/fortunes", timeout: float = 10, **options: object) -> Collection:
    return Collection(client, path, **options).open(timeout=scaled(timeout))  # type: ignore[arg-type]


def test_a_writer_reads_its_writes_at_once_and_another_process_loads_them(zk_client_factory: Factory) -> None:
    alice = opened(zk_client_factory(), member="alice")
    alice.put("fortune-alice-1", {"text": "Today is your lucky day", "n": 1})
    alice.put("fortune-alice-2", "A ZooKeeper keeps its promises")
    alice.put("numFortunesalice", 2)
    assert alice.get("fortune-alice-1") == {"text": "Today is your lucky day", "n": 1}
    assert alice.get("missing", "dflt") == "dflt" and "missing" not in alice
    bob = opened(zk_client_factory(), member="bob")
    assert bob.items() == alice.items() and len(bob) == 3
    assert [k for k, _ in bob.scan("fortune-")] == ["fortune-alice-1", "fortune-alice-2"]
    assert bob.members() == ["alice", "bob"]
    bob.close()
    assert alice.members() == ["alice"]


def test_reads_are_served_by_the_replica_without_a_request(zk_client: KazooClient) -> None:
    fortunes = opened(zk_client)
    fortunes.put("k", [1, 2, 3])
    counter = RequestCounter(zk_client)
    for _ in range(10):
        assert fortunes.get("k") == [1, 2, 3]
        assert fortunes.scan("k") == [("k", [1, 2, 3])] and fortunes.keys() == ["k"]
    counter.close()
    assert counter.calls == []


def test_put_with_a_version_is_a_compare_and_set(zk_client_factory: Factory) -> None:
    one = opened(zk_client_factory())
    two = opened(zk_client_factory())
    v0 = one.insert("count", 1)
    assert v0 == 0
    with pytest.raises(NodeExists):
        two.insert("count", 100)
    assert two.put("count", 2, version=0) == 1
    with pytest.raises(BadVersion):
        one.put("count", 3, version=0)  # one's version is stale: the write is refused
    one.refresh()
    assert one.get("count") == 2 and one.version("count") == 1
    assert not one.delete("nothing-here")
    with pytest.raises(BadVersion):
        one.delete("count", version=0)
    assert one.delete("count", version=1)
    assert "count" not in one


def test_concurrent_updates_of_one_counter_lose_nothing(zk_client_factory: Factory, pool: ThreadPoolExecutor) -> None:
    members = [opened(zk_client_factory(), member=f"m{i}") for i in range(4)]

    def bump(collection: Collection) -> None:
        for _ in range(10):
            collection.update("numFortunes", lambda n: n + 1, default=0, timeout=scaled(30))

    for done in [pool.submit(bump, m) for m in members]:
        settle(done, 60)
    check = opened(members[0]._session.client, member="check")
    assert check.get("numFortunes") == 40  # the tutorial's race, solved by compare-and-set


def test_a_transaction_writes_every_key_or_none(zk_client: KazooClient, zk_client_factory: Factory) -> None:
    fortunes = opened(zk_client)
    fortunes.put("taken", "x")
    with pytest.raises(NodeExists):
        fortunes.transaction().put("a", 1).put("b", 2).insert("taken", "y").commit()
    other = opened(zk_client_factory())
    assert other.keys() == ["taken"]  # nothing of the failed transaction landed
    versions = fortunes.transaction().put("a", 1).put("b", 2).delete("taken").commit()
    assert versions == [0, 0, None]
    assert fortunes.items() == [("a", 1), ("b", 2)]  # the writer sees it at once
    other.refresh()
    assert other.items() == [("a", 1), ("b", 2)]


def test_keys_of_any_text_are_stored_and_read_back(zk_client_factory: Factory) -> None:
    keys = ["a/b", ".", "..", "ü ñ", "fortune 🎉", "%41", "zookeeper", "x" * MAX_KEY_BYTES]
    one = opened(zk_client_factory())
    for i, key in enumerate(keys):
        one.put(key, i)
    two = opened(zk_client_factory())
    assert dict(two.items()) == {key: i for i, key in enumerate(keys)}


def test_bytes_values_are_kept_as_they_are(zk_client: KazooClient) -> None:
    raw = opened(zk_client, "/raw", values="bytes")
    raw.put("k", b"\x00\xff")
    assert zk_client.get(row_path("/raw", "k"))[0] == b"\x00\xff"
    assert opened(zk_client, "/raw", values="bytes").get("k") == b"\x00\xff"


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda c: c.put("", 1), "empty"),
        (lambda c: c.put(7, 1), "str"),
        (lambda c: c.put("k" * (MAX_KEY_BYTES + 1), 1), "limit"),
        (lambda c: c.put("k", "v" * (MAX_VALUE_BYTES + 1)), "limit"),
        (lambda c: c.put("k", {1, 2}), "JSON"),
        (lambda c: c.put("k", float("nan")), "JSON"),
        (lambda c: c.put("k", 1, version=-2), "version"),
        (lambda c: c.delete("k", version=True), "version"),
        (lambda c: c.transaction().commit(), "empty"),
        (lambda c: c.scan(3), "prefix"),
    ],
    ids=[
        "empty-key",
        "int-key",
        "long-key",
        "big-value",
        "set",
        "nan",
        "bad-version",
        "bool-version",
        "no-ops",
        "scan",
    ],
)
def test_bad_keys_and_values_are_refused_and_nothing_is_written(
    zk_client: KazooClient, call: Callable[[Collection], object], message: str
) -> None:
    fortunes = opened(zk_client)
    before = tree(zk_client)
    with pytest.raises(InvalidArgument, match=message):
        call(fortunes)
    assert tree(zk_client) == before


def test_a_collection_must_be_open_to_write_and_bad_options_are_refused(zk_client: KazooClient) -> None:
    with pytest.raises(InvalidState, match="not open"):
        Collection(zk_client, "/fortunes").put("k", 1)
    with pytest.raises(InvalidArgument, match="values"):
        Collection(zk_client, "/fortunes", values="pickle")
    with pytest.raises(InvalidArgument, match="member"):
        Collection(zk_client, "/fortunes", member="a/b")
    for bad in ({"offline": "drop"}, {"offline": "queue", "queue_limit": 0}, {"queue_limit": True}, {"join": "no"}):
        with pytest.raises(InvalidArgument):
            Collection(zk_client, "/fortunes", **bad)
    with pytest.raises(InvalidState, match="not open"):
        Collection(zk_client, "/fortunes", offline="queue").put("k", 1)  # not kept either
    assert tree(zk_client) == set()


# ---- the replica follows everybody's writes (one recursive watch) ----------------------------
def test_a_replica_follows_another_members_writes_and_reports_each_change(zk_client_factory: Factory) -> None:
    alice = opened(zk_client_factory(), member="alice")
    bob_client = zk_client_factory()
    bob = opened(bob_client, member="bob")
    changes = bob.changes(timeout=scaled(10))
    alice.put("fortune-alice-1", "luck")  # (also creates the key's bucket node: one more notification)
    assert bob.wait_for("fortune-alice-1", timeout=scaled(10)) == "luck"
    requests, notifications = RequestCounter(bob_client), WatchCounter(bob_client)
    alice.put("fortune-alice-1", "more luck")
    bob.wait_for("fortune-alice-1", lambda v: v == "more luck", timeout=scaled(10))  # else read as one
    alice.delete("fortune-alice-1")
    seen = [next(changes) for _ in range(3)]
    assert [(c.key, c.old, c.new) for c in seen] == [
        ("fortune-alice-1", None, "luck"),
        ("fortune-alice-1", "luck", "more luck"),
        ("fortune-alice-1", "more luck", None),
    ]
    assert [(c.old_version, c.new_version) for c in seen] == [(None, 0), (0, 1), (1, None)]
    assert "fortune-alice-1" not in bob
    # per change: one notification; one read for a change (or a creation), none for a deletion
    assert notifications.count == 2 and requests.calls == ["GetData"]
    changes.close()


def test_changes_come_in_zxid_order_and_the_replica_converges(
    zk_client_factory: Factory, pool: ThreadPoolExecutor
) -> None:
    writers = [opened(zk_client_factory(), member=f"w{i}") for i in range(3)]
    reader = opened(zk_client_factory(), member="reader")
    changes = reader.changes(timeout=scaled(10))

    def write(collection: Collection, me: int) -> None:
        for n in range(20):
            collection.put(f"k{n % 4}", {"by": me, "n": n})

    for done in [pool.submit(write, w, i) for i, w in enumerate(writers)]:
        settle(done, 60)
    final = dict(opened(zk_client_factory(), member="check").items())
    reader.wait_for("k3", lambda _: dict(reader.items()) == final, timeout=scaled(10))
    final_versions = {key: reader.version(key) for key in reader}
    seen: list[Changed] = []
    latest: dict[str, int | None] = {}
    while latest != final_versions:
        change = changes.get(timeout=scaled(5))
        assert change is not None
        seen.append(change)
        latest[change.key] = change.new_version
    zxids = [c.zxid for c in seen]
    assert zxids == sorted(zxids)  # in the order the ensemble made them (two changes may read as one)
    for key in final:  # and per key, every change newer than the one before
        versions = [c.new_version or 0 for c in seen if c.key == key]
        assert versions == sorted(set(versions)), (key, versions)
    changes.close()


def test_a_partitioned_replica_reports_staleness_fails_writes_fast_then_catches_up(
    zk_faults: ProxiedEnsemble, zk_client_factory: Factory
) -> None:
    writer = opened(zk_client_factory(), member="writer")
    writer.put("before", 1)
    cut_client = zk_client_factory(hosts=zk_faults.hosts_of(1), timeout=scaled(10), randomize_hosts=False)
    cut = opened(cut_client, member="cut")
    changes = cut.changes(timeout=scaled(20))
    assert cut.stale == 0.0
    zk_faults.partition(1)
    wait_until(lambda: not cut._session.is_connected(), what="the cut member disconnected")
    writer.put("during", 2)
    writer.put("before", 3)
    writer.delete("before")
    writer.put("before", 4)
    assert cut.get("before") == 1 and cut.stale > 0.0  # reads answer, and say how old they may be
    with pytest.raises(ConnectionLost):
        cut.put("mine", 0)  # at once, not after a timeout
    zk_faults.heal()
    assert cut.wait_for("during", timeout=scaled(20)) == 2
    cut.wait_for("before", lambda v: v == 4, timeout=scaled(20))
    wait_until(lambda: cut.stale == 0.0, what="the replica caught up")
    seen = {c.key: c for c in (changes.get(timeout=scaled(10)) for _ in range(2)) if c is not None}
    assert seen["during"].new == 2 and seen["before"].old == 1 and seen["before"].new == 4  # what it missed
    assert dict(cut.items()) == {"before": 4, "during": 2}
    changes.close()


def test_the_end_of_the_session_ends_the_changes_with_session_expired(
    zk_client_factory: Factory, zk_hosts: str, zk_chroot: str
) -> None:
    client = zk_client_factory()
    member = opened(client, member="m")
    changes = member.changes(timeout=scaled(10))
    close_session_of(client, f"{zk_hosts}{zk_chroot}")
    with pytest.raises(SessionExpired):
        changes.get(timeout=scaled(20))
    with pytest.raises(SessionExpired):
        member.wait_for("never", timeout=scaled(5))


def test_sync_makes_the_replica_show_every_write_finished_elsewhere_before_it(zk_client_factory: Factory) -> None:
    writer = opened(zk_client_factory(), member="writer")
    reader = opened(zk_client_factory(), member="reader")
    transaction = writer.transaction()
    for n in range(100):
        transaction.insert(f"fortune-{n:03d}", n)
    transaction.commit()  # 100 notifications at once, each asking the reader for a read
    # the writer tells the reader by another channel (a barrier, a message): now the reader
    # must see all of it, though some reads its notifications asked for may still be out
    reader.sync(timeout=scaled(10))
    assert len(reader) == 100 and reader.get("fortune-099") == 99


# ---- offline="queue": writes kept while disconnected, applied in order on reconnect ---------
def test_queued_writes_are_kept_in_order_while_partitioned_and_applied_last_writer_wins_on_reconnect(
    zk_faults: ProxiedEnsemble, zk_client_factory: Factory
) -> None:
    writer = opened(zk_client_factory(), member="writer")
    writer.put("b", "there")
    cut_client = zk_client_factory(hosts=zk_faults.hosts_of(1), timeout=scaled(10), randomize_hosts=False)
    cut = opened(cut_client, member="cut", offline="queue", queue_limit=3)
    assert isinstance(cut.put("before", 0), int)  # connected: sent at once
    zk_faults.partition(1)
    wait_until(lambda: not cut._session.is_connected(), what="the cut member disconnected")
    first, second, gone = cut.put("a", 1), cut.put("a", 2), cut.delete("b")
    assert all(isinstance(w, QueuedWrite) and not w.done() for w in (first, second, gone))
    with pytest.raises(ConnectionLost, match="queue is full"):
        cut.put("c", 3)
    with pytest.raises(InvalidArgument):
        cut.put("big", b"x" * (MAX_VALUE_BYTES + 1), timeout=1)  # refused before it is kept (bytes: not JSON)
    for conditional in (lambda: cut.insert("x", 1), lambda: cut.update("a", lambda v: v, default=0)):
        with pytest.raises(ConnectionLost, match="cannot be queued"):
            conditional()
    assert [(w.kind, w.key) for w in cut.queued] == [("put", "a"), ("put", "a"), ("delete", "b")]
    writer.put("a", 100)  # meanwhile, elsewhere: the queued puts come later and win
    assert cut.get("a") is None and cut.get("b") == "there"  # the replica shows what has landed
    zk_faults.heal()
    cut.drain(timeout=scaled(20))
    assert isinstance(first, QueuedWrite) and isinstance(second, QueuedWrite) and isinstance(gone, QueuedWrite)
    assert isinstance(first.result(0), int) and second.result(0) == first.result(0) + 1 and gone.result(0) is True
    assert cut.queued == []
    writer.wait_for("a", lambda v: v == 2, timeout=scaled(10))
    wait_until(lambda: "b" not in writer, what="the queued delete seen elsewhere")
    assert "c" not in writer and cut.get("a") == 2 and "b" not in cut
    assert isinstance(cut.put("after", 4), int)  # the queue is empty: sent at once again


def test_queued_writes_fail_with_the_session_and_with_close_never_silently(
    zk_faults: ProxiedEnsemble, zk_client_factory: Factory
) -> None:
    cut_client = zk_client_factory(hosts=zk_faults.hosts_of(1), timeout=scaled(4), randomize_hosts=False)
    cut = opened(cut_client, member="cut", offline="queue")
    zk_faults.partition(1)
    wait_until(lambda: not cut._session.is_connected(), what="the cut member disconnected")
    write = cut.put("a", 1)
    assert isinstance(write, QueuedWrite)
    sleep(6)  # past the session timeout: the ensemble ends the session
    zk_faults.heal()
    with pytest.raises(SessionExpired):
        write.result(scaled(30))
    other = opened(zk_client_factory(hosts=zk_faults.hosts_of(2), timeout=scaled(10)), member="other", offline="queue")
    zk_faults.partition(2)
    wait_until(lambda: not other._session.is_connected(), what="the other member disconnected")
    kept = other.put("k", 1)
    assert isinstance(kept, QueuedWrite)
    other.close()  # while disconnected: it leaves once the connection is back, and keeps nothing
    with pytest.raises(InvalidState, match="closed before"):
        kept.result(0)
    zk_faults.heal()
    check = opened(zk_client_factory(), member="check")
    wait_until(lambda: check.members() == ["check"], what="the closed member gone")
    assert "k" not in check


DOOMED = """
import subprocess
import sys
import zksync

client = zksync.connect(sys.argv[1], session_timeout=float(sys.argv[2]))
fortunes = zksync.Collection(client, "/fortunes", member="doomed").open(timeout=30)
print("open", flush=True)
n = 0
while True:  # transactions of 20 keys, one after another, until killed
    transaction = fortunes.transaction()
    for k in range(20):
        transaction.put(f"t{n:05d}-{k:02d}", {"n": n, "pad": "x" * 200})
    transaction.commit(timeout=30)
    n += 1
"""


def test_a_member_killed_mid_transaction_leaves_whole_transactions_and_leaves_the_members(
    zk_client_factory: Factory, zk_hosts: str, zk_chroot: str
) -> None:
    reader = opened(zk_client_factory(), member="reader")
    doomed = subprocess.Popen(
        [sys.executable, "-c", DOOMED, f"{zk_hosts}{zk_chroot}", str(scaled(4))],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert doomed.stdout is not None and doomed.stdout.readline().strip() == "open"
        wait_until(lambda: len(reader) >= 20 * 10, 30, "ten transactions")
        doomed.kill()  # SIGKILL: whatever it was sending is cut off where it was
        doomed.wait(scaled(10))
    finally:
        if doomed.poll() is None:
            doomed.kill()
    wait_until(lambda: reader.members() == ["reader"], 30, "the killed member's session ended")
    reader.sync(timeout=scaled(10))
    by_transaction: dict[int, set[str]] = {}
    for key, value in reader.items():
        by_transaction.setdefault(value["n"], set()).add(key)
    assert by_transaction and all(len(keys) == 20 for keys in by_transaction.values())  # all or nothing
    assert sorted(by_transaction) == list(range(len(by_transaction)))  # in order, none lost in between
    assert reader.items() == opened(zk_client_factory(), member="check").items()  # the replica is the truth


def test_a_collection_of_100000_keys_loads_whole_and_keeps_every_listing_small(
    zk_client_factory: Factory, zk_client: KazooClient, frontend: str
) -> None:
    if frontend != "blocking":
        pytest.skip("the load is the same core on either front-end; once is enough for 100,000 keys")
    keys = 100_000
    writer = opened(zk_client_factory(), member="writer")
    for start in range(0, keys, 1000):  # a thousand keys a transaction
        transaction = writer.transaction()
        for n in range(start, start + 1000):
            transaction.insert(f"user/{n:06d}", {"n": n})
        transaction.commit(timeout=scaled(60))
    assert len(writer) == keys
    reader = opened(zk_client_factory(), member="reader", timeout=scaled(120))
    assert len(reader) == keys and reader.get("user/054321") == {"n": 54321}
    assert [k for k, _ in reader.scan("user/09999")] == [f"user/{n:06d}" for n in range(99990, 100000)]
    buckets = zk_client.get_children("/fortunes/rows")
    assert len(buckets) == 256
    largest = max(sum(len(name) + 4 for name in zk_client.get_children(f"/fortunes/rows/{b}")) for b in buckets)
    assert largest < 1_048_575 // 10  # one bucket's listing: far below jute.maxbuffer
