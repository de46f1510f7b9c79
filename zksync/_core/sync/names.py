"""The sync service's layout and names (see :mod:`zksync._core.sync`)."""

from __future__ import annotations

import json
from typing import Any

from ...errors import InvalidArgument
from ..sequence import distance, format_sequence, parse_sequence, queue_order, wrap

ROOT = "/zksync-sync"
RECIPE = "Sync"


TOPIC_PREFIX = len("m-") + 32 + len("-")  # m-<guid>-<seq>


def seq_of(name: str) -> int:
    """The sequence number of one of our nodes: ``p-<seq>``, ``e-<seq>`` or ``m-<guid>-<seq>``
    (``p--000000005`` is -5: the counter is signed and wraps); a path is read by its last part."""
    name = name.rsplit("/", 1)[-1]
    seq = parse_sequence(name[TOPIC_PREFIX:] if name.startswith("m-") else name[2:])
    if seq is None:
        raise ValueError(f"not a sequential node of ours: {name!r}")
    return seq


def number_of(name: str) -> int:
    """The 1-based number of an entry or message: its place among the children ever created
    (``e-0000000000`` is the first; past the wrap, numbers go on counting)."""
    return distance(0, seq_of(name)) + 1


def is_sequential(name: str, prefix: str) -> bool:
    if not name.startswith(prefix):
        return False
    try:
        seq_of(name)
    except ValueError:
        return False
    return True


def presence(seq: int) -> str:
    """The name of the presence node with sequence ``seq``."""
    return f"p-{format_sequence(wrap(seq))}"


def presences(names: list[str]) -> list[str]:
    """Presence node names in creation order (anything else under instances/ is ignored)."""
    return queue_order(sorted(n for n in names if is_sequential(n, "p-")), key=seq_of)


def entry(root: str, state: str, number: int) -> str:
    """The node of the ``number``-th (1-based) signal of ``state``."""
    return f"{root}/states/{state}/e-{format_sequence(wrap(number - 1))}"


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
