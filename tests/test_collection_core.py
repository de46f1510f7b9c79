"""A synced collection's layout and replica, on plain values (no server needed)."""

from __future__ import annotations

import re
from collections import Counter

import pytest

from zksync import InvalidArgument
from zksync._core.collection import (
    MAX_KEY_BYTES,
    MAX_VALUE_BYTES,
    Replica,
    Row,
    check_key,
    check_value,
    escape,
    key_of,
    row_path,
    unescape,
)
from zksync._core.collection.layout import bucket
from zksync._util import check_path

TRICKY_KEYS = ["a", ".", "..", "a/b", "/", "numFortunes" + "x" * 20, "ü", "fortune 🎉", "%41", " ", "\x00", "zookeeper"]


@pytest.mark.parametrize("key", TRICKY_KEYS, ids=repr)
def test_every_key_becomes_one_valid_node_name_and_back(key: str) -> None:
    name = escape(key)
    assert re.fullmatch(r"[A-Za-z0-9_~%-]+", name), name
    assert unescape(name) == key
    path = row_path("/c", key)
    assert check_path(path, "test") == path  # ZooKeeper takes it
    assert key_of("/c", path) == key


@pytest.mark.parametrize("name", ["%41", "a.b", ".", "%zz", "abc%", "%c3", "%C3%28", "a%2f"])
def test_names_escape_never_makes_are_no_key(name: str) -> None:
    assert unescape(name) is None  # "%41" would be a second name for "A"; lowercase hex, bad UTF-8


def test_only_row_nodes_of_the_right_bucket_are_rows() -> None:
    key = "fortune-1"
    right = row_path("/c", key)
    wrong_bucket = "00" if bucket(key) != "00" else "01"
    assert key_of("/c", right) == key
    assert key_of("/c", f"/c/rows/{wrong_bucket}/{escape(key)}") is None
    for other in ("/c", "/c/rows", f"/c/rows/{bucket(key)}", "/c/members/m1", "/d/rows/00/x", f"{right}/deeper"):
        assert key_of("/c", other) is None, other


@pytest.mark.parametrize(
    "key, message",
    [("", "empty"), (3, "str"), (b"k", "str"), ("é" * (MAX_KEY_BYTES // 2 + 1), "limit"), ("\ud800", "Unicode")],
    ids=["empty", "int", "bytes", "oversized", "surrogate"],
)
def test_bad_keys_are_refused(key: object, message: str) -> None:
    with pytest.raises(InvalidArgument, match=message):
        check_key(key)
    assert check_key("é" * (MAX_KEY_BYTES // 2)) == "é" * (MAX_KEY_BYTES // 2)  # exactly at the limit


def test_values_are_bytes_up_to_the_limit() -> None:
    assert check_value(b"x" * MAX_VALUE_BYTES) == b"x" * MAX_VALUE_BYTES
    with pytest.raises(InvalidArgument, match="limit"):
        check_value(b"x" * (MAX_VALUE_BYTES + 1))
    with pytest.raises(InvalidArgument, match="bytes"):
        check_value("text")


def test_a_hundred_thousand_longest_keys_keep_every_listing_under_jute_maxbuffer() -> None:
    filler = "k" * (MAX_KEY_BYTES - 8)
    keys = [f"{filler}{n:08d}" for n in range(100_000)]
    per_bucket = Counter(bucket(k) for k in keys)
    assert len(per_bucket) == 256
    # a getChildren reply: 4 bytes of length and the name, per child
    listing = max(n for n in per_bucket.values()) * (4 + len(escape(keys[0])))
    assert listing < 1_048_575 // 2, listing


def row(key: str, mzxid: int, value: bytes = b"v", version: int = 0) -> Row:
    return Row(key, value, version, mzxid)


def test_changes_are_held_while_reads_are_out_and_given_in_zxid_order() -> None:
    replica = Replica()
    # created/changed notifications for k1 (zxid 10), k2 (11), k1 (12)
    t1, t2, t3 = replica.reading("k1"), replica.reading("k2"), replica.reading("k1")
    replica.read("k1", t1, row("k1", 12, b"second"))  # the first read already sees the second change
    assert replica.changes() == []  # k2's change may be older: hold
    replica.read("k2", t2, row("k2", 11))
    replica.read("k1", t3, row("k1", 12, b"second"))  # the same value again: nothing new
    changes = replica.changes()
    assert [(c.key, c.new.mzxid if c.new else None) for c in changes] == [("k2", 11), ("k1", 12)]
    assert replica.settled and replica.rows["k1"].value == b"second"


def test_a_writer_sees_its_write_at_once_and_once() -> None:
    replica = Replica()
    replica.wrote(row("k", 5, b"mine", version=0))
    assert replica.rows["k"].value == b"mine"
    assert [c.key for c in replica.changes()] == ["k"]
    replica.read("k", replica.reading("k"), row("k", 5, b"mine", version=0))  # our own write's notification
    assert replica.changes() == []


def test_an_older_read_never_goes_back_in_time() -> None:
    replica = Replica()
    replica.wrote(row("k", 9, b"new"))
    replica.changes()
    replica.read("k", replica.reading("k"), row("k", 7, b"old"))
    assert replica.changes() == [] and replica.rows["k"].value == b"new"


def test_a_deletion_is_one_change_even_when_a_late_read_finds_nothing_too() -> None:
    replica = Replica()
    replica.wrote(row("k", 3))
    replica.changes()
    ticket = replica.reading("k")  # a changed notification, then the deletion's, before the read's answer
    replica.deleted("k")
    replica.read("k", ticket, None)
    changes = replica.changes()
    assert len(changes) == 1 and changes[0].old == row("k", 3) and changes[0].new is None
    assert "k" not in replica.rows


def test_a_resync_reports_exactly_what_changed_while_nobody_was_told() -> None:
    replica = Replica()
    for r in (row("a", 1), row("b", 2), row("same", 3)):
        replica.wrote(r)
    replica.changes()
    replica.resync([row("b", 5, b"b2", version=1), row("c", 4), row("same", 3)])
    changes = {c.key: (c.old, c.new) for c in replica.changes()}
    assert changes == {
        "a": (row("a", 1), None),
        "b": (row("b", 2), row("b", 5, b"b2", version=1)),
        "c": (None, row("c", 4)),
    }
    assert set(replica.rows) == {"b", "c", "same"}


def test_a_reload_leaves_alone_what_was_learned_while_it_ran() -> None:
    replica = Replica()
    replica.wrote(row("old", 1))
    replica.wrote(row("kept", 2))
    replica.changes()
    replica.begin_resync()  # the reload lists and reads...
    replica.read("new", replica.reading("new"), row("new", 9))  # ...while a notification brings a new key
    replica.deleted("kept")  # and another goes away after the reload had read it
    replica.resync([row("kept", 2)])  # what the reload found
    assert set(replica.rows) == {"new"}  # "old" is gone (reload), "new" stays, "kept" stays deleted
    assert {c.key for c in replica.changes()} == {"old", "new", "kept"}


def test_a_read_answered_after_a_later_deletion_never_brings_the_row_back() -> None:
    replica = Replica()
    replica.wrote(row("k", 3, b"luck"))
    replica.changes()
    ticket = replica.reading("k")  # a changed notification: its read is sent...
    replica.deleted("k")  # ...the deletion's notification is fed before the read's answer
    replica.read("k", ticket, row("k", 4, b"more luck"))  # the answer, read before the deletion
    assert ("k" not in replica.rows and replica.settled is False) or replica.changes()
    assert "k" not in replica.rows
    again = replica.reading("k")  # created again later: a read sent after the deletion counts
    replica.read("k", again, row("k", 9, b"back"))
    assert replica.rows["k"].value == b"back"
