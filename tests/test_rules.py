"""Queue ordering rules, on plain lists of child names (no server needed)."""

from __future__ import annotations

from zksync._core.queue import exclusive_rule, ordered, parse, shared_rule


def name(kind: str, seq: int, guid: str | None = None) -> str:
    return f"{kind}-{guid or f'{seq % 16**32:032x}'}-{seq:010d}"


def blockers(names: list[str]) -> dict[str, str | None]:
    entries = ordered(names)
    out: dict[str, str | None] = {}
    for i, entry in enumerate(entries):
        rule = exclusive_rule if entry.kind == "write" else shared_rule
        blocker = rule(entries[:i])
        out[entry.name] = blocker.name if blocker else None
    return out


def test_names_are_ordered_by_sequence_not_by_kind_or_guid() -> None:
    names = [name("write", 3), name("read", 1), name("read", 2)]
    assert [e.seq for e in ordered(names)] == [1, 2, 3]


def test_a_child_that_fits_no_naming_is_a_writer_ahead_of_everybody() -> None:
    names = [name("read", 1), "ready", name("write", 5), "lock-0000000001", "__lock__x", "write-nothex-0000000002"]
    entries = ordered(names)
    strangers = ["__lock__x", "lock-0000000001", "ready", "write-nothex-0000000002"]
    assert [e.name for e in entries] == [*strangers, name("read", 1), name("write", 5)]
    assert all(e.stranger and e.kind == "write" for e in entries[:4])
    assert parse("write-nothex-0000000002") is None
    b = blockers(names)
    assert b[name("read", 1)] == strangers[-1]  # even a reader waits: nobody knows what it is
    assert b[name("write", 5)] == name("read", 1)
    assert b[strangers[0]] is None


def test_writer_waits_only_for_its_immediate_predecessor() -> None:
    names = [name("write", 1), name("write", 2), name("write", 3)]
    b = blockers(names)
    assert b == {names[0]: None, names[1]: names[0], names[2]: names[1]}


def test_readers_share_and_wait_only_for_the_nearest_writer_ahead() -> None:
    w1, r2, r3, w4, r5 = (name("write", 1), name("read", 2), name("read", 3), name("write", 4), name("read", 5))
    b = blockers([w1, r2, r3, w4, r5])
    assert b[r2] == w1 and b[r3] == w1
    assert b[w4] == r3  # a writer waits for the reader right ahead of it
    assert b[r5] == w4  # a reader behind a waiting writer waits for it: no writer starvation


def test_leading_readers_proceed_together() -> None:
    names = [name("read", 1), name("read", 2), name("read", 3)]
    assert set(blockers(names).values()) == {None}


def test_sequence_numbers_sort_in_creation_order_across_the_wrap() -> None:
    names = [name("write", -2_147_483_648), name("write", 2_147_483_647), name("write", 1_999_999_999)]
    assert [e.seq for e in ordered(names)] == [1_999_999_999, 2_147_483_647, -2_147_483_648]


def test_a_late_duplicate_of_a_create_counts_once_at_its_first_sequence() -> None:
    guid = "ab" * 16
    names = [name("write", 1), name("write", 2, guid), name("write", 3), name("write", 4, guid)]
    assert [e.seq for e in ordered(names)] == [1, 2, 3]
    assert [e.seq for e in ordered(names, keep_duplicates=True)] == [1, 2, 3, 4]


def test_double_barrier_members_and_rounds_across_the_wrap() -> None:
    from zksync._core.barrier import _participants, _Round

    names = [f"m{i}.{'a' * 31}{i}.{s}" for i, s in enumerate(["2147483646", "2147483647", "-2147483648"])]
    members = _participants(list(reversed(names)))
    assert [p.name for p in members] == names
    round_ = _Round.of(members, members)
    assert round_.monitor == names[0]
    assert all(p.seq in round_ for p in members)
    assert 2_147_483_645 not in round_ and -2_147_483_647 not in round_ and 0 not in round_


def test_sync_entries_and_presences_count_on_across_the_wrap() -> None:
    from zksync._core.sync.names import entry, number_of, presence, presences

    assert number_of("e-0000000000") == 1
    assert number_of("e--2147483648") == 2**31 + 1
    assert entry("/r", "s", 2**31 + 1) == "/r/states/s/e--2147483648"
    assert entry("/r", "s", 1) == "/r/states/s/e-0000000000"
    assert presences(["p--2147483647", "p-2147483647", "ready", "p--2147483648"]) == [
        "p-2147483647",
        "p--2147483648",
        "p--2147483647",
    ]
    assert presence(2**31) == "p--2147483648"
    assert number_of("/zksync-sync/run/states/s/e-0000000004") == 5
    assert number_of("/zksync-sync/run/topics/t/m-" + "a" * 32 + "-0000000002") == 3


def test_other_libraries_lock_nodes_are_contenders_of_the_right_kind() -> None:
    def hex32(n: int) -> str:  # every attempt has a GUID of its own
        return f"{n:032x}"

    def uuid36(n: int) -> str:
        return f"0123abcd-0000-4000-8000-{n:012x}"

    names = [
        f"{hex32(1)}__lock__0000000001",  # kazoo Lock / WriteLock
        f"_c_{hex32(2)}-read-0000000002",  # the Go original, reader
        f"{hex32(3)}__rlock__0000000003",  # kazoo ReadLock
        f"_c_{uuid36(4)}-__WRIT__0000000004",  # Curator InterProcessReadWriteLock, writer
        f"_c_{uuid36(5)}-__READ__0000000005",  # Curator, reader
        f"_c_{uuid36(6)}-lock-0000000006",  # Curator InterProcessMutex, go-zookeeper zk.Lock
        f"_c_{hex32(7)}-write-0000000007",  # the Go original, writer
        name("read", 8),
        "not-a-lock-node",
    ]
    entries = ordered(names)
    assert entries[0].name == "not-a-lock-node" and entries[0].stranger  # a writer ahead of all
    assert [(e.seq, e.kind) for e in entries[1:]] == [
        (1, "write"),
        (2, "read"),
        (3, "read"),
        (4, "write"),
        (5, "read"),
        (6, "write"),
        (7, "write"),
        (8, "read"),
    ]
    b = blockers(names[:-1])
    assert b[names[1]] == names[0] and b[names[2]] == names[0]  # readers wait for the kazoo writer
    assert b[names[3]] == names[2]  # a writer waits for its predecessor, whoever made it
    assert b[names[4]] == names[3] and b[names[7]] == names[6]


def test_every_naming_family_makes_names_that_read_back_as_its_kinds() -> None:
    from zksync._core.queue import NAMINGS

    for family in NAMINGS.values():
        for kind in family.prefixes:
            guid = family.guid()
            entry = parse(f"{family.prefix(kind, guid)}0000000042")
            assert entry is not None and (entry.kind, entry.guid, entry.seq) == (kind, guid, 42), family.name
    assert set(NAMINGS["mutex"].prefixes) == {"write"}  # Curator's and go-zookeeper's mutex: exclusive only
    assert NAMINGS["zksync"].prefix("read", "ab" * 16) == f"_c_{'ab' * 16}-read-"  # the Go original's name
