"""zksync.testing.cleanup.delete_tree on the real ensemble: every level goes, in transactions,
and a batch that meets a node already gone is finished one node at a time."""

from __future__ import annotations

import pytest
from kazoo.client import KazooClient

from zksync.testing import cleanup
from zksync.testing.cleanup import delete_tree


def test_a_deep_and_wide_tree_is_removed_whole(zk_client: KazooClient, monkeypatch: pytest.MonkeyPatch) -> None:
    zk_client.ensure_path("/t/a/b")
    leaves = [f"/t/a/b/n{i:04d}" for i in range(1200)] + [f"/t/a/m{i}" for i in range(3)]
    for result in [zk_client.create_async(p, b"x") for p in leaves]:
        result.get(timeout=30)
    zk_client.create("/t/a/m0/deeper", b"")
    sent: list[int] = []
    original = cleanup._delete_all

    def counted(client: KazooClient, paths: list[str]) -> object:
        sent.append(len(paths))
        return original(client, paths)

    monkeypatch.setattr(cleanup, "_delete_all", counted)
    delete_tree(zk_client, "/t")
    assert zk_client.exists("/t") is None
    assert max(sent) == cleanup.BATCH and sum(sent) == len(leaves) + 4  # + deeper, b, a, t


def test_a_batch_that_meets_a_node_already_gone_finishes_one_by_one(
    zk_client: KazooClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    zk_client.ensure_path("/t")
    for i in range(10):
        zk_client.create(f"/t/n{i}", b"")
    original = cleanup._delete_all

    def racing(client: KazooClient, paths: list[str]) -> object:
        if "/t/n3" in paths:
            client.delete("/t/n3")  # somebody else removed it meanwhile
        return original(client, paths)

    monkeypatch.setattr(cleanup, "_delete_all", racing)
    delete_tree(zk_client, "/t")
    assert zk_client.exists("/t") is None
