"""zksync.collection.Collection on the real ensemble: writes, compare-and-set, update under
contention, transactions, members, bad input.  (Following others' writes with the recursive
watch comes with the watch; here a replica learns them from open() and refresh().)"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import pytest
from kazoo.client import KazooClient

from zksync import BadVersion, InvalidArgument, InvalidState, NodeExists
from zksync._core.collection import MAX_KEY_BYTES, MAX_VALUE_BYTES, row_path
from zksync.collection import Collection
from zksync.testing.timing import scaled

from .conftest import RequestCounter, settle, tree

Factory = Callable[..., KazooClient]


def opened(client: KazooClient, path: str = "/fortunes", **options: object) -> Collection:
    return Collection(client, path, **options).open(timeout=scaled(10))  # type: ignore[arg-type]


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
    assert tree(zk_client) == set()
