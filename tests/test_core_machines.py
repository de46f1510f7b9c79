"""The core's machines driven by hand: which request each sends next, and what it makes of a
reply, a watch event, a deadline or a cancellation.  No server and no driver here: these
tests pin the decisions; what the server does with them is shown by the real-ensemble suites.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from kazoo.exceptions import ConnectionLoss, NoAuthError, NoNodeError
from kazoo.protocol.states import EventType, KeeperState, WatchedEvent, ZnodeStat

from zksync import AccessDenied, Timeout
from zksync._core.effects import (
    WATCH,
    AwaitConnected,
    Create,
    Exists,
    Forget,
    GetChildren,
    NoAnswer,
    Release,
    Sweep,
    Wait,
    Wake,
)
from zksync._core.lock import LeaseBase, LockEngine
from zksync._core.queue import READ, WRITE
from zksync._core.requests import Requests
from zksync._util import Deadline

from .machines import Script, Session

GUID = "0" * 32


def stat(czxid: int = 100) -> ZnodeStat:
    return ZnodeStat(czxid, czxid, 0, 0, 0, 0, 0, 7, 0, 0, czxid)


def acquiring(kind: Any = WRITE, timeout: float | None = 10) -> tuple[Script, Session]:
    session = Session()
    engine = LockEngine(Requests(session, "RWMutex", "/lock"), None, LeaseBase)
    return Script(engine.acquire(kind, timeout)), session


def created(script: Script, seq: int) -> str:
    """Answer the create of our node; returns its name."""
    create = script.expect(Create, ephemeral=True, sequence=True)
    name = f"{create.path.rsplit('/', 1)[1]}{seq:010d}"
    script.answer((f"/lock/{name}", stat(100 + seq)))
    return name


def test_an_uncontended_writer_is_granted_after_create_and_one_listing() -> None:
    script, _ = acquiring()
    script.expect(AwaitConnected)
    script.answer(True)
    mine = created(script, 0)
    script.expect(GetChildren, path="/lock")
    script.answer([mine])
    assert script.done and script.result.node == f"/lock/{mine}" and script.result.fencing_token == 100


def waiting_behind(script: Script, ahead: list[str]) -> str:
    script.expect(AwaitConnected)
    script.answer(True)
    mine = created(script, 5)
    script.expect(GetChildren)
    script.answer([*ahead, mine])
    script.expect(Forget)
    script.answer()
    return mine


def test_a_writer_watches_only_its_predecessor_and_takes_a_handoff_without_listing_again() -> None:
    script, _ = acquiring()
    holder, queued = f"write-{'a' * 32}-0000000001", f"write-{'b' * 32}-0000000003"
    waiting_behind(script, [holder, queued])
    script.expect(Exists, path=f"/lock/{queued}", watch=WATCH)
    script.answer(stat())
    script.expect(Wait)
    script.answer(Wake(WatchedEvent(EventType.CHANGED, KeeperState.CONNECTED, f"/lock/{queued}")))
    assert script.done  # a writer's release (CHANGED) hands over: no second listing


def test_a_predecessor_that_vanishes_any_other_way_makes_the_writer_list_again() -> None:
    script, _ = acquiring()
    gone = f"write-{'b' * 32}-0000000003"
    mine = waiting_behind(script, [gone])
    script.expect(Exists, path=f"/lock/{gone}")
    script.answer(stat())
    script.expect(Wait)
    script.answer(Wake(WatchedEvent(EventType.DELETED, KeeperState.CONNECTED, f"/lock/{gone}")))
    script.expect(GetChildren)
    script.answer([mine])
    assert script.done


def test_a_reader_waits_for_the_nearest_writer_and_a_readers_release_is_no_handoff() -> None:
    script, _ = acquiring(READ)
    writer, reader = f"write-{'a' * 32}-0000000001", f"read-{'b' * 32}-0000000002"
    mine = waiting_behind(script, [writer, reader])
    script.expect(Exists, path=f"/lock/{writer}")
    script.answer(stat())
    script.expect(Wait)
    script.answer(Wake(None))  # a connection change
    script.expect(GetChildren)
    script.answer([reader, mine])
    assert script.done  # the reader ahead does not block


def test_a_deadline_that_passes_while_waiting_removes_our_node_and_raises_timeout() -> None:
    script, session = acquiring()
    holder = f"write-{'a' * 32}-0000000001"
    mine = waiting_behind(script, [holder])
    script.expect(Exists)
    script.answer(stat())
    script.expect(Wait)
    with pytest.raises(Timeout, match=f"waiting for {holder}"):
        script.answer(None)  # the deadline passed
        script.expect(Release, node=f"/lock/{mine}")
        script.answer()
    assert session.lost == {}  # the loss callback is unregistered


def test_a_cancellation_while_waiting_removes_our_node_and_passes_through() -> None:
    script, session = acquiring()
    mine = waiting_behind(script, [f"write-{'a' * 32}-0000000001"])
    script.expect(Exists)
    script.answer(stat())
    script.expect(Wait)
    script.fail(asyncio.CancelledError())
    script.expect(Release, node=f"/lock/{mine}", handoff=False)
    with pytest.raises(asyncio.CancelledError):
        script.answer()
    assert session.lost == {}


def test_a_lost_create_reply_finds_our_own_node_by_its_guid_and_sweeps_duplicates_later() -> None:
    script, _ = acquiring()
    script.expect(AwaitConnected)
    script.answer(True)
    create = script.expect(Create)
    script.fail(ConnectionLoss())
    script.expect(AwaitConnected)
    script.answer(True)
    prefix = create.path.rsplit("/", 1)[1]
    script.expect(GetChildren, path="/lock")
    script.answer([f"{prefix}0000000004"])
    script.expect(Exists, path=f"/lock/{prefix}0000000004")
    script.answer(stat(104))  # ephemeralOwner 7: our session
    script.expect(GetChildren)
    script.answer([f"{prefix}0000000004"])
    lease = script.result
    assert script.done and lease.tainted and lease.fencing_token == 104


def test_a_lost_create_whose_connection_does_not_come_back_schedules_a_sweep() -> None:
    script, _ = acquiring(timeout=1)
    script.expect(AwaitConnected)
    script.answer(True)
    create = script.expect(Create)
    script.fail(ConnectionLoss())
    script.expect(AwaitConnected)
    script.answer(False)  # the deadline passed first
    sweep = script.expect(Sweep, parent="/lock")
    assert sweep.guid in create.path
    with pytest.raises(Timeout):
        script.answer()


@pytest.mark.parametrize(
    "why",
    [NoAnswer(), asyncio.CancelledError()],
    ids=["deadline passed with the create in flight", "caller cancelled with the create in flight"],
)
def test_a_create_given_up_without_an_answer_schedules_a_sweep_of_its_guid(why: BaseException) -> None:
    # the request stays with kazoo: it can land later, and its answer can be lost with the
    # connection (then nothing deletes the node, and it blocks the queue while the session lives)
    script, _ = acquiring(timeout=1)
    script.expect(AwaitConnected)
    script.answer(True)
    create = script.expect(Create)
    script.fail(why)
    sweep = script.expect(Sweep, parent="/lock")
    assert sweep.guid in create.path
    with pytest.raises(type(why) if isinstance(why, asyncio.CancelledError) else Timeout):
        script.answer()


def test_a_lost_create_whose_search_times_out_schedules_a_sweep() -> None:
    script, _ = acquiring(timeout=1)
    script.expect(AwaitConnected)
    script.answer(True)
    create = script.expect(Create)
    script.fail(ConnectionLoss())
    script.expect(AwaitConnected)
    script.answer(True)
    script.expect(GetChildren, path="/lock")
    script.fail(NoAnswer())
    sweep = script.expect(Sweep, parent="/lock")
    assert sweep.guid in create.path
    with pytest.raises(Timeout):
        script.answer()


def test_a_create_the_server_refused_schedules_no_sweep() -> None:
    script, _ = acquiring(timeout=1)
    script.expect(AwaitConnected)
    script.answer(True)
    script.expect(Create)
    with pytest.raises(AccessDenied):
        script.fail(NoAuthError())  # an answer: nothing was made, nothing to sweep


def test_losing_the_session_while_waiting_starts_over_with_a_new_node() -> None:
    script, session = acquiring()
    old = waiting_behind(script, [f"write-{'a' * 32}-0000000001"])
    script.expect(Exists)
    script.answer(stat())
    script.expect(Wait)
    (lost,) = session.lost.values()
    lost("session expired")
    script.answer(Wake(None))
    script.expect(Release, node=f"/lock/{old}")  # in case the session survived after all
    script.answer()
    script.expect(AwaitConnected)
    script.answer(True)
    mine = created(script, 9)
    script.expect(GetChildren)
    script.answer([mine])
    assert script.done and script.result.node == f"/lock/{mine}"


def test_a_holder_told_of_a_loss_marks_its_lease_and_deletes_its_node_plainly() -> None:
    script, session = acquiring()
    script.expect(AwaitConnected)
    script.answer(True)
    mine = created(script, 0)
    script.expect(GetChildren)
    script.answer([mine])
    lease = script.result
    (lost,) = session.lost.values()
    lost("connection suspended for more than 1.20s")
    assert lease.lost and "suspended" in (lease.lost_reason or "")
    assert session.deleted == [f"/lock/{mine}"]


def test_a_missing_parent_is_an_answer_for_listings_that_allow_it() -> None:
    requests = Requests(Session(), "RWMutex", "/lock")
    script = Script(requests.get_children("/lock", Deadline(1), missing_ok=True))
    script.fail(NoNodeError())
    assert script.done and script.result == []


def test_the_last_arrival_creates_ready_only_if_every_chosen_member_is_still_there() -> None:
    from kazoo.exceptions import RolledBackError

    from zksync._core.barrier import DoubleBarrierCore
    from zksync._core.effects import Check, Multi

    core = DoubleBarrierCore(Requests(Session(), "DoubleBarrier", "/db"), 2, "b", None)
    members = [f"a.{'a' * 32}.0000000000", f"b.{'b' * 32}.0000000001"]
    for gone_meanwhile, made in ((True, False), (False, True)):
        script = Script(core._complete_round(f"/db/{members[1]}", Deadline(5)))
        script.expect(GetChildren, path="/db")
        script.answer(members)
        multi = script.expect(Multi)
        assert multi.ops[0].path == "/db/ready"
        assert [(op.path, op.version) for op in multi.ops[1:] if isinstance(op, Check)] == [
            (f"/db/{m}", 0) for m in members
        ]
        script.answer([RolledBackError(), NoNodeError(), RolledBackError()] if gone_meanwhile else ["/db/ready", 0, 0])
        assert script.done and script.result is made


def test_the_lowest_instance_looks_again_when_an_instance_joined_between_its_two_reads() -> None:
    from zksync._core.sync.presence import Ring

    ring = Ring(Requests(Session(), "Sync", "/run"), "/run", "/run/instances/p-0000000000", lambda m, what: None)
    parent = ZnodeStat(1, 1, 0, 0, 0, 1, 0, 0, 0, 1, 1)  # cversion 1, one child: p-1 comes next
    script = Script(ring._watch_newest(ring.generation))
    script.expect(Exists, path="/run/instances")
    script.answer(parent)
    script.expect(Exists, path="/run/instances/p-0000000001")
    script.answer(stat())  # it joined meanwhile: its creation will never be notified
    script.expect(Exists, path="/run/instances")
    script.answer(ZnodeStat(1, 1, 0, 0, 0, 2, 0, 0, 0, 2, 1))
    script.expect(Exists, path="/run/instances/p-0000000002")
    script.answer(None)
    assert script.done


def test_pipelined_reads_go_a_window_at_a_time_and_those_a_connection_loss_met_go_again_together() -> None:
    from zksync._core.effects import Get, SendMany
    from zksync._core.requests import PIPELINE_WINDOW

    paths = [f"/c/{n}" for n in range(2 * PIPELINE_WINDOW + 5)]
    script = Script(Requests(Session(), "Collection", "/c").get_many(paths, Deadline(10)))
    answers: dict[str, Any] = {}
    sent = []
    while isinstance(script.effect, SendMany):
        window = [request.path for request in script.effect.requests if isinstance(request, Get)]
        sent.append(len(window))
        outcomes: list[Any] = []
        for path in window:
            n = int(path.rsplit("/", 1)[1])
            if n % 7 == 0 and path not in answers:  # met a connection loss the first time
                answers[path] = None
                outcomes.append(ConnectionLoss())
            elif n % 11 == 0:
                outcomes.append(NoNodeError())
            else:
                outcomes.append((path.encode(), stat()))
        script.answer(outcomes)
        if isinstance(script.effect, AwaitConnected):
            script.answer(True)
    lost = len([n for n in range(len(paths)) if n % 7 == 0])
    assert sent == [PIPELINE_WINDOW, PIPELINE_WINDOW, 5, lost]  # again in one window, not one by one
    assert script.done
    assert script.result == [None if n % 11 == 0 else (p.encode(), stat()) for n, p in enumerate(paths)]


def test_a_round_of_ten_thousand_creates_ready_in_a_request_the_server_accepts() -> None:
    """10,000 member checks of the usual names are 1.09 MB, more than jute.maxbuffer (1,048,575
    bytes): the transaction checks the earliest arrivals that fit, and no more than fit."""
    from kazoo.protocol.serialization import CheckVersion, Create, Transaction
    from kazoo.security import OPEN_ACL_UNSAFE

    from zksync._core.barrier import CHECKS_BUDGET, DoubleBarrierCore
    from zksync._core.effects import Check, Multi

    n = 10_000
    path = "/zksync-bench-suite/db-zksync-10000-0123456789abcdef"
    core = DoubleBarrierCore(Requests(Session(), "DoubleBarrier", path), n, "p0", None)
    members = [f"p{k}.{k:032x}.{k:010d}" for k in range(n)]
    script = Script(core._complete_round(f"{path}/{members[-1]}", Deadline(5)))
    script.expect(GetChildren, path=path)
    script.answer(members)
    multi = script.expect(Multi)
    checks = [op for op in multi.ops if isinstance(op, Check)]
    assert 0 < len(checks) < n
    assert [op.path for op in checks] == [f"{path}/{m}" for m in members[: len(checks)]]  # earliest first
    ready = multi.ops[0]
    wire = Transaction(
        [Create(ready.path, ready.value, OPEN_ACL_UNSAFE, 0)] + [CheckVersion(op.path, op.version) for op in checks]
    ).serialize()
    checks_bytes = len(wire) - len(Transaction([Create(ready.path, ready.value, OPEN_ACL_UNSAFE, 0)]).serialize())
    one_more = len(CheckVersion(f"{path}/{members[len(checks)]}", 0).serialize()) + 9  # and its op header
    assert checks_bytes <= CHECKS_BUDGET < checks_bytes + one_more  # as many as fit, counted as sent
    assert len(wire) < 1_048_575
