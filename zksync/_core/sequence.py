"""Sequence numbers of sequential znodes, correct across the 32-bit wrap.

What the server does (``PrepRequestProcessor`` and ``DataNode.copyStat``, ZooKeeper 3.4 to 3.9):

* A sequential create appends ``String.format(Locale.ENGLISH, "%010d", c)`` to the path,
  where ``c`` is the parent's count of child *creations* so far (every create counts,
  sequential or not; deletes do not).  ``c`` is a Java ``int``: after ``2147483647`` comes
  ``-2147483648``, then ``-2147483647`` ... ``-1``, ``0``, ``1`` again.
* ``%010d`` pads to a width of 10 *including the sign*, with the zeros after the sign::

      0 -> 0000000000          2147483647 -> 2147483647
     -1 -> -000000001                  -5 -> -000000005
     -2147483648 -> -2147483648   (11 characters: the width is a minimum)

  So a suffix is either 10 digits, or ``-`` and 9 digits (``-1`` to ``-999999999``), or
  ``-`` and 10 digits not starting with ``0`` (``-1000000000`` to ``-2147483648``).
  Python's ``format(n, "010d")`` pads the same way.
* The ``cversion`` a client reads in a parent's Stat is *not* that counter: the server
  reports ``2 * c - numChildren`` (creations plus deletions, in wrapping ``int``
  arithmetic).  :func:`next_from_stat` recovers ``c``.  (So "my sequence + 1 == cversion" holds
  only while no child was ever deleted.)

A name ending in ``-`` followed by a suffix is ambiguous on its own (``x-1234567890`` is
``x-`` then ``1234567890``, or ``x`` then ``-1234567890``): split a name at the prefix you
created it with (:func:`sequence_of`), or with a pattern whose separator is fixed
(:data:`SEQUENCE_PATTERN`), never at its last ``-``.

Ordering.  Numbers are compared with serial-number arithmetic on 32 bits (RFC 1982):
``a`` was created before ``b`` when the forward distance from ``a`` to ``b`` is in
``(0, 2**31)``.  :func:`queue_order` sorts a set of sequence numbers in creation order on that
basis.  It assumes that the nodes of one listing were created fewer than ``2**31`` creations
apart (oldest to newest), which holds for any queue whose nodes do not outlive 2**31 later
creations in the same parent (at 1,000 creations a second: 24 days).  Under that assumption the
largest gap between neighbours on the ``2**32`` circle is larger than ``2**31`` and unique; the
oldest node is the one just after it.  A listing that breaks the assumption cannot be ordered
by its names at all (two nodes ``2**31`` apart are each "before" the other, and a node older
than ``2**32`` creations shares its number with a young one): use ``czxid`` for that.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from typing import TypeVar

T = TypeVar("T")

BITS = 32
MODULUS = 1 << BITS  # numbers of the circle
HALF = 1 << (BITS - 1)  # 2**31: the farthest apart two comparable numbers can be
MIN_SEQUENCE = -HALF  # -2147483648, the number after MAX_SEQUENCE
MAX_SEQUENCE = HALF - 1  # 2147483647

#: A regular expression (source text) matching exactly the suffixes the server writes, to
#: embed in a name pattern: ``rf"^(?P<kind>[a-z]+)-(?P<guid>[0-9a-f]{{32}})-(?P<seq>{SEQUENCE_PATTERN})$"``.
#: Bounds (``-2147483649`` matches it) are checked by :func:`parse_sequence`.
SEQUENCE_PATTERN = r"(?:[0-9]{10}|-[0-9]{9}|-[1-9][0-9]{9})"

_SUFFIX = re.compile(SEQUENCE_PATTERN)


def wrap(n: int) -> int:
    """``n`` reduced to a signed 32-bit int, as Java's ``int`` arithmetic would leave it."""
    return (n + HALF) % MODULUS - HALF


def parse_sequence(text: str) -> int | None:
    """The number of a sequence suffix exactly as the server formats it; None for anything
    else (so a foreign node is ignored, never ordered by a wrong number).

    Accepted: ``0000000000`` to ``2147483647``, ``-000000001`` to ``-999999999`` and
    ``-1000000000`` to ``-2147483648``.  Refused, for example: ``12``, ``+000000001``,
    ``00000000001`` (11 digits), ``-0000000001``, ``-000000000``, ``2147483648``, digits
    other than ASCII, surrounding white space."""
    if not isinstance(text, str) or _SUFFIX.fullmatch(text) is None:
        return None
    n = int(text)
    if not MIN_SEQUENCE <= n <= MAX_SEQUENCE or (n == 0 and text[0] == "-"):
        return None
    return n


def format_sequence(n: int) -> str:
    """The suffix the server writes for counter value ``n`` (a signed 32-bit int); the inverse
    of :func:`parse_sequence`.  Apply :func:`wrap` (or :func:`next_sequence`) to a computed
    number first: an ``n`` out of range is refused rather than silently wrapped."""
    if isinstance(n, bool) or not isinstance(n, int):
        raise TypeError(f"a sequence number is an int, not {type(n).__name__}")
    if not MIN_SEQUENCE <= n <= MAX_SEQUENCE:
        raise ValueError(f"sequence number out of the signed 32-bit range: {n}")
    return format(n, "010d")


def sequence_of(name: str, prefix: str) -> int | None:
    """The sequence number of ``name``, a child created with ``prefix`` (``"p-"`` for
    ``p-0000000007``); None when ``name`` is not ``prefix`` followed by a suffix."""
    if not name.startswith(prefix):
        return None
    return parse_sequence(name[len(prefix) :])


def next_sequence(n: int, k: int = 1) -> int:
    """The number handed out ``k`` creations after ``n`` (``k`` may be negative: before)."""
    return wrap(n + k)


def distance(a: int, b: int) -> int:
    """Creations from ``a`` forward to ``b``, in ``[0, 2**32)``: ``next_sequence(a, distance(a, b)) == b``.

    For a dense series started at ``first`` (Sync's state entries: nothing is ever deleted),
    ``distance(first, seq) + 1`` is the 1-based number of the node ``seq``, correct for the
    first ``2**32`` nodes."""
    return (b - a) % MODULUS


def precedes(a: int, b: int) -> bool:
    """``a`` was handed out before ``b`` (RFC 1982 on 32 bits: the forward distance from ``a``
    to ``b`` is in ``(0, 2**31)``).  Neither precedes the other when they are equal or exactly
    ``2**31`` apart."""
    return 0 < distance(a, b) < HALF


def between(n: int, first: int, last: int) -> bool:
    """``n`` lies on the way forward from ``first`` to ``last``, both included (a range of
    sequence numbers, such as a DoubleBarrier round's, that may straddle the wrap)."""
    return distance(first, n) <= distance(first, last)


def queue_order(items: Iterable[T], key: Callable[[T], int]) -> list[T]:
    """``items`` in creation order of their sequence numbers ``key(item)``, also when they
    straddle the wrap.  Stable: items with equal numbers keep their relative order.

    Assumes the numbers span fewer than ``2**31`` creations (see the module docstring); the
    oldest item is the one after the largest gap on the circle.  When the assumption fails
    and two gaps tie for largest, the result is plain signed order."""
    keyed = sorted(((wrap(key(item)), item) for item in items), key=lambda pair: pair[0])
    if len(keyed) < 2:
        return [item for _, item in keyed]
    start, widest = 0, keyed[0][0] + MODULUS - keyed[-1][0]  # the gap across the wrap point
    for i in range(1, len(keyed)):
        gap = keyed[i][0] - keyed[i - 1][0]
        if gap > widest:
            start, widest = i, gap
    return [item for _, item in keyed[start:] + keyed[:start]]


def next_from_stat(cversion: int, num_children: int, after: int) -> int:
    """The number the server will hand out next in a parent whose Stat says ``cversion`` and
    ``num_children``, given ``after``, a number it already handed out in that parent (our own
    node's) fewer than ``2**31`` creations ago.

    The Stat tells ``c`` (the creations so far) only as ``2c - numChildren`` modulo ``2**32``,
    so ``c`` is known modulo ``2**31``; ``after`` settles the missing bit.  "Nobody created a
    child after us" is ``next_from_stat(stat.cversion, stat.numChildren, mine) == next_sequence(mine)``.
    """
    if num_children < 0:
        raise ValueError(f"num_children must be >= 0, got {num_children}")
    doubled = (cversion + num_children) % MODULUS
    if doubled % 2:
        raise ValueError(f"inconsistent stat: cversion {cversion} with {num_children} children")
    low = doubled // 2  # c modulo 2**31
    for candidate in (wrap(low), wrap(low + HALF)):
        if 0 < distance(after, candidate) <= HALF:
            return candidate
    raise AssertionError("unreachable: the two candidates are 2**31 apart")  # pragma: no cover


__all__ = [
    "BITS",
    "HALF",
    "MAX_SEQUENCE",
    "MIN_SEQUENCE",
    "MODULUS",
    "SEQUENCE_PATTERN",
    "between",
    "distance",
    "format_sequence",
    "next_from_stat",
    "next_sequence",
    "parse_sequence",
    "precedes",
    "queue_order",
    "sequence_of",
    "wrap",
]
