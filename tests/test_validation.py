"""Bad input gets a clear zksync error, before anything is sent to ZooKeeper."""

from __future__ import annotations

import math
from typing import Any

import pytest
from kazoo.client import KazooClient

import zksync
from zksync import Barrier, DoubleBarrier, InvalidArgument, RWMutex
from zksync.testing.timing import scaled

from .conftest import tree

BAD_PATHS: list[Any] = [
    "",
    "relative/path",
    "/",
    "/trailing/",
    "//double",
    "/a/../b",
    "/a/./b",
    "/nul\x00",
    "/zookeeper/quota",
    None,
    42,
    b"/bytes",
]


@pytest.mark.parametrize("path", BAD_PATHS, ids=repr)
@pytest.mark.parametrize(
    "recipe",
    [
        lambda c, p: RWMutex(c, p),
        lambda c, p: Barrier(c, p),
        lambda c, p: DoubleBarrier(c, p, 2),
    ],
    ids=["RWMutex", "Barrier", "DoubleBarrier"],
)
def test_malformed_paths_are_refused(zk_client: KazooClient, recipe: Any, path: Any) -> None:
    before = tree(zk_client)
    with pytest.raises(InvalidArgument) as info:
        recipe(zk_client, path)
    assert isinstance(info.value, ValueError)
    assert tree(zk_client) == before


@pytest.mark.parametrize("participants", [0, -1, 1.5, True, "3", None])
def test_double_barrier_needs_a_positive_participant_count(zk_client: KazooClient, participants: Any) -> None:
    with pytest.raises(InvalidArgument, match="participants"):
        DoubleBarrier(zk_client, "/db", participants)
    assert tree(zk_client) == set()


@pytest.mark.parametrize("identifier", ["", "a/b", "x\n", ".", ".."])
def test_double_barrier_identifier_must_be_one_path_segment(zk_client: KazooClient, identifier: str) -> None:
    with pytest.raises(InvalidArgument, match="identifier"):
        DoubleBarrier(zk_client, "/db", 2, identifier=identifier)


@pytest.mark.parametrize("timeout", [-1, -0.001, math.nan, "5", True])
def test_bad_timeouts_are_refused_and_change_nothing(zk_client: KazooClient, timeout: Any) -> None:
    mutex = RWMutex(zk_client, "/lock")
    barrier = Barrier(zk_client, "/barrier")
    double = DoubleBarrier(zk_client, "/double", 1)
    for call in (mutex.lock, mutex.rlock, barrier.wait, double.enter):
        with pytest.raises(InvalidArgument, match="timeout"):
            call(timeout)
    assert tree(zk_client) == set()
    assert mutex.held is None and not double.entered


@pytest.mark.parametrize("acl", ["world:anyone", [], ["not an ACL"], 5])
def test_bad_acls_are_refused(zk_client: KazooClient, acl: Any) -> None:
    with pytest.raises(InvalidArgument, match="acl"):
        RWMutex(zk_client, "/lock", acl=acl)


def test_not_a_kazoo_client_is_refused() -> None:
    with pytest.raises(InvalidArgument, match="KazooClient"):
        RWMutex("127.0.0.1:2181", "/lock")


def test_a_stopped_client_gets_a_clear_error(zk_client_factory: Any, zk_client: KazooClient) -> None:
    stopped = zk_client_factory()
    stopped.stop()
    mutex = RWMutex(stopped, "/lock")
    with pytest.raises(InvalidArgument, match="not started"):
        mutex.lock(timeout=scaled(1))
    with pytest.raises(InvalidArgument, match="not started"):
        Barrier(stopped, "/barrier").set()
    with pytest.raises(InvalidArgument, match="not started"):
        DoubleBarrier(stopped, "/double", 1).enter(timeout=scaled(1))
    assert mutex.held is None
    assert tree(zk_client) == set()


def test_connect_to_nothing_fails_fast_with_connection_lost() -> None:
    with pytest.raises(zksync.ConnectionLost, match="could not connect"):
        zksync.connect("127.0.0.1:1", timeout=scaled(1))


def test_connect_refuses_an_empty_host_string() -> None:
    with pytest.raises(InvalidArgument):
        zksync.connect("  ")


def test_errors_form_one_hierarchy() -> None:
    for error in (
        zksync.InvalidArgument,
        zksync.Timeout,
        zksync.LockLost,
        zksync.AccessDenied,
        zksync.ConnectionLost,
        zksync.SessionExpired,
        zksync.AlreadyHeld,
        zksync.NotHeld,
    ):
        assert issubclass(error, zksync.ZkSyncError)
    assert issubclass(zksync.Timeout, TimeoutError)
    assert issubclass(zksync.InvalidArgument, ValueError)
    assert issubclass(zksync.AccessDenied, PermissionError)


@pytest.mark.parametrize("naming", ["", "Zksync", "go", None, 3])
def test_an_unknown_naming_family_is_refused(zk_client: KazooClient, naming: Any) -> None:
    with pytest.raises(InvalidArgument, match="naming must be one of 'zksync', 'kazoo', 'curator', 'mutex'"):
        RWMutex(zk_client, "/lock", naming=naming)
    assert tree(zk_client) == set()


def test_the_mutex_naming_has_no_read_lock_and_asking_for_one_changes_nothing(zk_client: KazooClient) -> None:
    mutex = RWMutex(zk_client, "/lock", naming="mutex")
    with pytest.raises(InvalidArgument, match="naming 'mutex' has no read lock"):
        mutex.rlock(timeout=scaled(1))
    with pytest.raises(InvalidArgument), mutex.read(timeout=scaled(1)):
        pass
    assert tree(zk_client) == set()
    assert mutex.held is None
    mutex.lock(timeout=scaled(5))
    mutex.unlock()
