"""Removing a tree of test nodes quickly: one pipelined listing per level, then each level's
deletions, deepest first, in transactions of :data:`BATCH` sent several at once (a recursive
delete of 100,000 nodes one by one takes minutes; this takes seconds).  A transaction that meets
a node already gone, or one that gained children, is done again one node at a time."""

from __future__ import annotations

from typing import Any

from kazoo.client import KazooClient
from kazoo.exceptions import NoNodeError, NotEmptyError

BATCH = 500  # deletions in one transaction (one write for the ensemble, far below jute.maxbuffer)
PIPELINE = 10 * BATCH  # deletions in flight at once


def delete_tree(client: KazooClient, path: str) -> None:
    """Remove ``path`` and everything below it, pipelining each level."""
    levels: list[list[str]] = [[path]]
    while levels[-1]:
        pending = [(p, client.get_children_async(p)) for p in levels[-1]]
        below: list[str] = []
        for parent, result in pending:
            try:
                below += [f"{parent}/{child}" for child in result.get(timeout=120)]
            except NoNodeError:
                pass
        levels.append(below)
    for level in reversed(levels):
        for start in range(0, len(level), PIPELINE):
            chunk = level[start : start + PIPELINE]
            batches = [chunk[i : i + BATCH] for i in range(0, len(chunk), BATCH)]
            commits = [(batch, _delete_all(client, batch)) for batch in batches]
            for batch, result in commits:
                outcomes = result.get(timeout=120)
                if any(isinstance(outcome, Exception) for outcome in outcomes):
                    _delete_each(client, batch)  # one of them was gone, or not empty: one by one


def _delete_all(client: KazooClient, paths: list[str]) -> Any:
    transaction = client.transaction()
    for path in paths:
        transaction.delete(path)
    return transaction.commit_async()


def _delete_each(client: KazooClient, paths: list[str]) -> None:
    deletions = [(p, client.delete_async(p)) for p in paths]
    for node, result in deletions:
        try:
            result.get(timeout=120)
        except NoNodeError:
            pass
        except NotEmptyError:
            client.delete(node, recursive=True)
