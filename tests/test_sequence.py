"""Sequence numbers across the 32-bit wrap, on plain numbers and names (no server needed)."""

from __future__ import annotations

import itertools
import random

import pytest

from zksync._core.sequence import (
    HALF,
    MAX_SEQUENCE,
    MIN_SEQUENCE,
    MODULUS,
    SEQUENCE_PATTERN,
    between,
    distance,
    format_sequence,
    next_from_stat,
    next_sequence,
    parse_sequence,
    precedes,
    queue_order,
    sequence_of,
    wrap,
)

# ---- the format ----------------------------------------------------------------------------
# What Java's String.format("%010d", n) writes (the width counts the sign; zeros follow it).
SERVER_SUFFIXES = {
    0: "0000000000",
    1: "0000000001",
    999_999_999: "0999999999",
    1_000_000_000: "1000000000",
    MAX_SEQUENCE: "2147483647",
    MIN_SEQUENCE: "-2147483648",
    -2147483647: "-2147483647",
    -1_000_000_000: "-1000000000",
    -999_999_999: "-999999999",
    -5: "-000000005",
    -1: "-000000001",
}


@pytest.mark.parametrize(("number", "suffix"), sorted(SERVER_SUFFIXES.items()))
def test_format_and_parse_are_the_servers_and_inverse(number: int, suffix: str) -> None:
    assert format_sequence(number) == suffix
    assert parse_sequence(suffix) == number
    assert parse_sequence(format_sequence(number)) == number


def test_round_trip_over_random_numbers() -> None:
    rng = random.Random(7)
    for n in [rng.randrange(MIN_SEQUENCE, MAX_SEQUENCE + 1) for _ in range(5000)]:
        text = format_sequence(n)
        assert parse_sequence(text) == n
        assert len(text) == (11 if n <= -1_000_000_000 else 10)


@pytest.mark.parametrize(
    "text",
    [
        "12",  # too short
        "abc",
        "",
        "+000000001",  # Java writes no '+'
        "00000000001",  # 11 digits
        "000000000001",
        "-0000000001",  # Java would write -000000001
        "-000000000",  # Java writes 0000000000 for zero
        "-00000000001",
        "2147483648",  # beyond a Java int
        "9999999999",
        "-2147483649",
        "--000000001",
        " 000000001",
        "0000000001 ",
        "0000000001\n",
        "000000000x",
        "\u0660" * 10,  # Arabic-Indic digits: int() takes them, the server never writes them
        "0_00000001",
    ],
)
def test_anything_the_server_would_not_write_is_refused(text: str) -> None:
    assert parse_sequence(text) is None


@pytest.mark.parametrize("bad", [MAX_SEQUENCE + 1, MIN_SEQUENCE - 1, 2**40])
def test_format_refuses_numbers_outside_the_int_range(bad: int) -> None:
    with pytest.raises(ValueError):
        format_sequence(bad)
    assert parse_sequence(format_sequence(wrap(bad))) == wrap(bad)


def test_format_refuses_what_is_not_an_int() -> None:
    with pytest.raises(TypeError):
        format_sequence(True)
    with pytest.raises(TypeError):
        format_sequence(1.0)  # type: ignore[arg-type]


def test_the_pattern_matches_exactly_the_server_suffixes() -> None:
    import re

    name = re.compile(rf"^p-(?P<seq>{SEQUENCE_PATTERN})$")
    for number, suffix in SERVER_SUFFIXES.items():
        match = name.match(f"p-{suffix}")
        assert match is not None and parse_sequence(match["seq"]) == number
    for text in ("p-00000000001", "p--0000000001", "p-+000000001", "p-12"):
        assert name.match(text) is None


def test_sequence_of_splits_at_the_prefix_not_at_the_last_dash() -> None:
    assert sequence_of("p--000000005", "p-") == -5
    assert sequence_of("p--2147483648", "p-") == MIN_SEQUENCE
    assert sequence_of("p-0000000005", "p-") == 5
    assert sequence_of("x-1234567890", "x-") == 1234567890
    assert sequence_of("x-1234567890", "x") == -1234567890  # why the prefix must be known
    assert sequence_of("q-0000000005", "p-") is None
    assert sequence_of("p-", "p-") is None
    # the bug kazoo and go-zookeeper shipped: the last '-' drops the sign
    name = p(-5)
    assert int(name.rsplit("-", 1)[1]) == 5


# ---- arithmetic ----------------------------------------------------------------------------
def test_next_sequence_wraps_like_a_java_int() -> None:
    assert next_sequence(MAX_SEQUENCE) == MIN_SEQUENCE
    assert next_sequence(-1) == 0
    assert next_sequence(MIN_SEQUENCE, -1) == MAX_SEQUENCE
    assert next_sequence(5, 0) == 5
    assert next_sequence(MAX_SEQUENCE - 2, 5) == MIN_SEQUENCE + 2
    assert next_sequence(0, MODULUS) == 0
    assert next_sequence(7, -MODULUS - 1) == 6


def test_distance_counts_creations_forward() -> None:
    assert distance(MAX_SEQUENCE, MIN_SEQUENCE) == 1
    assert distance(MIN_SEQUENCE, MAX_SEQUENCE) == MODULUS - 1
    assert distance(-1, 0) == 1
    assert distance(5, 5) == 0
    rng = random.Random(3)
    for _ in range(1000):
        a = rng.randrange(MIN_SEQUENCE, MAX_SEQUENCE + 1)
        k = rng.randrange(MODULUS)
        assert distance(a, next_sequence(a, k)) == k


def test_precedes_is_serial_number_arithmetic() -> None:
    assert precedes(MAX_SEQUENCE, MIN_SEQUENCE)
    assert not precedes(MIN_SEQUENCE, MAX_SEQUENCE)
    assert precedes(-1, 0) and precedes(-5, -4) and precedes(2147483646, -2147483647)
    assert not precedes(3, 3)
    assert not precedes(0, MIN_SEQUENCE) and not precedes(MIN_SEQUENCE, 0)  # 2**31 apart: undefined
    assert precedes(0, HALF - 1) and not precedes(HALF - 1, 0)


def test_between_follows_a_range_across_the_wrap() -> None:
    low, high = MAX_SEQUENCE - 1, MIN_SEQUENCE + 1  # 2147483646 .. -2147483647
    inside = [MAX_SEQUENCE - 1, MAX_SEQUENCE, MIN_SEQUENCE, MIN_SEQUENCE + 1]
    assert all(between(n, low, high) for n in inside)
    assert not any(between(n, low, high) for n in (MAX_SEQUENCE - 2, MIN_SEQUENCE + 2, 0, -1))
    assert between(4, 4, 4) and not between(5, 4, 4)
    assert between(0, -3, 3)
    assert not between(0, 3, -3)  # from 3 forward to -3 is the long way round, past the wrap


# ---- ordering ------------------------------------------------------------------------------
def names_in_order(names: list[str], prefix: str = "p-") -> list[str]:
    """What a recipe does with a listing: its own names, in creation order."""
    ours = [n for n in names if sequence_of(n, prefix) is not None]
    return queue_order(ours, key=lambda n: sequence_of(n, prefix) or 0)


def p(n: int) -> str:
    return f"p-{format_sequence(n)}"


@pytest.mark.parametrize(
    "created",
    [
        [2147483645, 2147483646, 2147483647, -2147483648, -2147483647, -2147483646],
        [MAX_SEQUENCE, MIN_SEQUENCE],
        [-3, -2, -1, 0, 1, 2],  # the nine-digit negatives, then zero: strings sort these backwards
        [-1_000_000_001, -1_000_000_000, -999_999_999],  # 11 characters, then 10
        [5, 9, 1_000_000_000, 2_000_000_000],  # no wrap at all: plain order
        [MIN_SEQUENCE + 5, -1, 0, 1],  # from just past the wrap to just past zero
        [7],
        [],
    ],
)
def test_names_are_put_in_creation_order_around_the_wrap(created: list[int]) -> None:
    expected = [p(n) for n in created]
    for names in (expected[::-1], sorted(expected), random.Random(len(created)).sample(expected, len(expected))):
        assert names_in_order(names) == expected


def test_duplicates_keep_their_relative_order_and_stay_together() -> None:
    # the same number twice: a listing merged from two parents, or a name seen twice
    names = ["a--2147483648", "b-2147483647", "a-2147483647", "b--2147483648", "b-2147483646"]
    key = {n: sequence_of(n, n[:2]) for n in names}
    ordered = queue_order(names, key=lambda n: key[n] or 0)
    assert ordered == ["b-2147483646", "b-2147483647", "a-2147483647", "a--2147483648", "b--2147483648"]
    assert queue_order([3, 3, 3], key=int) == [3, 3, 3]


def test_foreign_names_are_ignored_not_misordered() -> None:
    names = [p(-2147483645), "ready", "p-+000000001", "p-00000000001", "p--0000000001", p(MAX_SEQUENCE), "p-3"]
    assert names_in_order(names) == [p(MAX_SEQUENCE), p(-2147483645)]


def random_window(rng: random.Random) -> tuple[list[int], list[int]]:
    """Numbers handed out in one window of fewer than 2**31 creations: (creation order, shuffled)."""
    span = rng.choice([2, 10, 1000, rng.randrange(2, HALF), HALF - 1])
    start = rng.randrange(MIN_SEQUENCE, MAX_SEQUENCE + 1)
    if rng.random() < 0.5:  # make the window straddle the wrap point
        start = wrap(MAX_SEQUENCE - rng.randrange(span))
    count = rng.randrange(1, min(span, 40) + 1)
    offsets = sorted(rng.sample(range(span), count))
    offsets = [0, *offsets[1:]] if rng.random() < 0.5 else offsets  # sometimes the window's own start
    offsets += rng.choices(offsets, k=rng.randrange(0, 3))  # and some duplicates
    offsets.sort()
    created = [next_sequence(start, o) for o in offsets]
    shuffled = created[:]
    rng.shuffle(shuffled)
    return created, shuffled


def test_queue_order_recovers_creation_order_in_random_windows() -> None:
    rng = random.Random(20240611)
    for _ in range(3000):
        created, shuffled = random_window(rng)
        result = queue_order(shuffled, key=int)
        assert result == created, (created, shuffled)
        for a, b in itertools.pairwise(result):
            assert a == b or precedes(a, b)


def test_queue_order_of_names_in_random_windows() -> None:
    rng = random.Random(99)
    for _ in range(500):
        created, shuffled = random_window(rng)
        assert names_in_order([p(n) for n in shuffled]) == [p(n) for n in created]


def test_half_the_circle_apart_falls_back_to_signed_order() -> None:
    # outside the documented assumption: no order is right, but the answer is deterministic
    assert queue_order([0, MIN_SEQUENCE], key=int) == [MIN_SEQUENCE, 0]
    assert queue_order([MIN_SEQUENCE, 0], key=int) == [MIN_SEQUENCE, 0]


# ---- the parent's Stat ---------------------------------------------------------------------
class Parent:
    """The server's bookkeeping for one parent: a count of creations (the next sequence) and
    the Stat a client reads, cversion = 2 * creations - numChildren, both Java ints."""

    def __init__(self, creations: int = 0) -> None:
        self.creations = creations  # unbounded here; the server keeps it modulo 2**32
        self.children: set[int] = set()

    def create(self) -> int:
        seq = wrap(self.creations)
        self.creations += 1
        self.children.add(seq)
        return seq

    def delete(self, seq: int) -> None:
        self.children.remove(seq)

    def stat(self) -> tuple[int, int]:
        return wrap(2 * self.creations - len(self.children)), len(self.children)


def test_next_from_stat_matches_what_the_server_reported() -> None:
    # observed on ZooKeeper 3.8.0: n-0..n-2 created and deleted, n-3 created: cversion 7
    assert next_from_stat(7, 1, after=3) == 4
    # then a plain child and n-5: cversion 9, three children
    assert next_from_stat(9, 3, after=5) == 6
    assert next_from_stat(1, 1, after=0) == 1


def test_next_from_stat_across_the_wrap() -> None:
    rng = random.Random(5)
    for start in (0, HALF - 50, MODULUS - 50, HALF // 2 - 30, 3 * HALF - 7):
        parent = Parent(start)
        live: list[int] = []
        for _ in range(400):
            if live and rng.random() < 0.45:
                parent.delete(live.pop(rng.randrange(len(live))))
            else:
                live.append(parent.create())
            if not live:
                continue
            cversion, children = parent.stat()
            assert MIN_SEQUENCE <= cversion <= MAX_SEQUENCE
            for mine in (live[0], live[-1], rng.choice(live)):
                assert next_from_stat(cversion, children, after=mine) == wrap(parent.creations)
            # "nobody created a child after ours" (DoubleBarrier's last-arrival test)
            newest = live[-1]
            nobody_after = wrap(parent.creations) == next_sequence(newest)
            assert (next_from_stat(cversion, children, newest) == next_sequence(newest)) == nobody_after


def test_cversion_is_not_the_next_sequence_once_a_child_was_deleted() -> None:
    parent = Parent()
    first = parent.create()
    parent.delete(first)
    mine = parent.create()
    cversion, children = parent.stat()
    assert cversion != next_sequence(mine)  # what "cversion == my_seq + 1" assumes
    assert next_from_stat(cversion, children, mine) == next_sequence(mine)


def test_next_from_stat_refuses_an_impossible_stat() -> None:
    with pytest.raises(ValueError):
        next_from_stat(2, 1, after=0)
    with pytest.raises(ValueError):
        next_from_stat(2, -1, after=0)


# ---- the lock queue's rules around the wrap ------------------------------------------------
# Cases for zksync._queue (parse / ordered / exclusive_rule / shared_rule).  Each lists the
# nodes in creation order as (kind, sequence[, guid tag]) and the blocker of each node that
# counts (an index into the nodes, None: it holds).  Nodes sharing a tag share a GUID: a late
# duplicate of a create whose reply was lost, which only counts at its first sequence.
QueueNode = tuple[str, int] | tuple[str, int, str]
QUEUE_CASES: list[tuple[str, list[QueueNode], dict[int, int | None]]] = [
    (
        "writers then a reader across the wrap",
        [("write", 2147483646), ("write", 2147483647), ("write", -2147483648), ("read", -2147483647)],
        {0: None, 1: 0, 2: 1, 3: 2},
    ),
    (
        # sorted as plain ints the readers would come first and share the lock with the writer
        "a writer holds at the top: readers past the wrap wait for it",
        [("write", 2147483647), ("read", -2147483648), ("read", -2147483647)],
        {0: None, 1: 0, 2: 0},
    ),
    (
        "readers share across the wrap",
        [("read", 2147483646), ("read", 2147483647), ("read", -2147483648), ("read", -2147483647)],
        {0: None, 1: None, 2: None, 3: None},
    ),
    (
        "mixed kinds across the wrap",
        [("write", 2147483646), ("read", 2147483647), ("read", -2147483648), ("write", -2147483647), ("read", -5)],
        {0: None, 1: 0, 2: 0, 3: 2, 4: 3},
    ),
    (
        "nine-digit negatives then zero (strings sort -000000003 after -000000001)",
        [("write", -3), ("read", -2), ("read", -1), ("write", 0), ("read", 1)],
        {0: None, 1: 0, 2: 0, 3: 2, 4: 3},
    ),
    (
        "a late duplicate on the other side of the wrap counts once, at its first sequence",
        [("write", 2147483646), ("write", 2147483647, "twin"), ("read", -2147483648), ("write", -2147483647, "twin")],
        {0: None, 1: 0, 2: 1},
    ),
]

# names that are not a lock node; they must be ignored (parse gives None), never ordered
NOT_QUEUE_NAMES = [
    f"write-{'a' * 32}-+000000001",
    f"write-{'a' * 32}-00000000001",  # 11 digits: the server never writes them
    f"write-{'a' * 32}--0000000001",
    f"write-{'a' * 32}-2147483648",
    f"read-{'a' * 32}--2147483649",
    "ready",
]


def queue_names(nodes: list[QueueNode]) -> list[str]:
    names = []
    for i, node in enumerate(nodes):
        kind, seq = node[0], node[1]
        guid = f"{str(node[2] if len(node) > 2 else i).encode().hex():0>32}"
        names.append(f"{kind}-{guid}-{format_sequence(seq)}")
    return names


def test_queue_case_names_are_what_the_server_writes() -> None:
    names = queue_names(QUEUE_CASES[0][1])
    assert [n.split("-", 2)[2] for n in names] == ["2147483646", "2147483647", "-2147483648", "-2147483647"]
    assert names[2].startswith("write-") and names[2].endswith("--2147483648") and len(names[2]) == 6 + 32 + 1 + 11
    assert len({n.split("-")[1] for n in queue_names(QUEUE_CASES[-1][1])}) == 3  # the twins share a GUID


def test_queue_rules_around_the_wrap() -> None:
    from zksync._core.queue import exclusive_rule, ordered, parse, shared_rule

    for _title, nodes, blockers in QUEUE_CASES:
        names = queue_names(nodes)
        for name, node in zip(names, nodes):
            entry = parse(name)
            assert entry is not None and wrap(entry.seq) == node[1] and entry.kind == node[0], name
        counted = [names[i] for i in blockers]
        for listing in (names[::-1], sorted(names), random.Random(1).sample(names, len(names))):
            assert [e.name for e in ordered(listing, keep_duplicates=True)] == names
            entries = ordered(listing)
            assert [e.name for e in entries] == counted
            for position, entry in enumerate(entries):
                rule = exclusive_rule if entry.kind == "write" else shared_rule
                blocker = rule(entries[:position])
                expected = blockers[names.index(entry.name)]
                assert (blocker.name if blocker else None) == (None if expected is None else names[expected]), entry
    for name in NOT_QUEUE_NAMES:
        assert parse(name) is None, name
