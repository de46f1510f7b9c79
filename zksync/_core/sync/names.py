"""The sync service's layout and names (see :mod:`zksync._core.sync`)."""

from __future__ import annotations

import json
from typing import Any

from ...errors import InvalidArgument

ROOT = "/zksync-sync"
RECIPE = "Sync"


def seq_of(name: str) -> int:
    """The sequence number at the end of a node name (``p-0000000012`` -> 12)."""
    return int(name.rsplit("-", 1)[1])


def presence(seq: int) -> str:
    """The name of the presence node with sequence ``seq``."""
    return f"p-{seq:010d}"


def presences(names: list[str]) -> list[str]:
    """Presence node names in sequence order (anything else under instances/ is ignored)."""
    return sorted((n for n in names if n.startswith("p-")), key=seq_of)


def entry(root: str, state: str, number: int) -> str:
    """The node of the ``number``-th (1-based) signal of ``state``."""
    return f"{root}/states/{state}/e-{number - 1:010d}"


def check_target(target: object) -> int:
    if isinstance(target, bool) or not isinstance(target, int) or target < 0:
        raise InvalidArgument(f"target must be an int >= 0, got {target!r}", recipe=RECIPE)
    return target


def check_count(value: object, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidArgument(f"{what} must be an int >= 1, got {value!r}", recipe=RECIPE)
    return value


def encode(payload: Any, what: str) -> bytes:
    try:
        return json.dumps(payload, separators=(",", ":"), allow_nan=False).encode()
    except (TypeError, ValueError) as exc:
        raise InvalidArgument(f"{what} must be JSON-serialisable: {exc}", recipe=RECIPE) from None
