"""Removing a tree of test nodes quickly: one pipelined listing per level, then the levels'
deletions, pipelined too, deepest first (a recursive delete of 100,000 nodes one by one would take
minutes; this takes seconds)."""

from __future__ import annotations

from kazoo.client import KazooClient
from kazoo.exceptions import NoNodeError, NotEmptyError


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
        for start in range(0, len(level), 2000):
            chunk = level[start : start + 2000]
            deletions = [(p, client.delete_async(p)) for p in chunk]
            for node, result in deletions:
                try:
                    result.get(timeout=120)
                except NoNodeError:
                    pass
                except NotEmptyError:
                    client.delete(node, recursive=True)
