"""Where a collection keeps its rows and members, and how a key becomes a node name.

Layout under the collection's path::

    rows/<bb>/<escaped key>   persistent, data = the value; <bb> = two hex digits of the key's hash
    members/<member id>       ephemeral, data = JSON about the process that has it open

Rows are spread over at most 256 bucket nodes, each made when its first row is, so that no
listing grows with the whole collection: 100,000 keys put about 390 names in a bucket, and a key
is at most :data:`MAX_KEY_BYTES` long, so a bucket's listing stays far below ``jute.maxbuffer``
(about 1 MB, which also bounds a reply) up to a few hundred thousand keys.

Keys are any non-empty ``str``.  A node name takes the key's UTF-8 bytes, with every byte outside
``A-Z a-z 0-9 - _ ~`` written ``%XX`` (``.`` too, so that no name is ``.`` or ``..``): the
mapping is one to one, and ZooKeeper's refused characters (controls, surrogates, the ranges
``PathUtils`` rejects) never reach a path.
"""

from __future__ import annotations

import hashlib
import re

from ...errors import InvalidArgument

ROWS = "rows"
MEMBERS = "members"
BUCKETS = 256
MAX_KEY_BYTES = 512  # UTF-8 bytes of a key, before escaping
MAX_VALUE_BYTES = 1_000_000  # below jute.maxbuffer (1,048,575) with room for the request around it

_SAFE = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_~")
_ESCAPED = re.compile(r"(?:[A-Za-z0-9_~-]|%[0-9A-F]{2})+")


def check_key(key: object, recipe: str = "Collection", path: str | None = None) -> str:
    """``key`` when it is a key a collection can hold; :class:`InvalidArgument` otherwise."""
    if not isinstance(key, str):
        raise InvalidArgument(f"a key must be a str, not {type(key).__name__}", path=path, recipe=recipe)
    if not key:
        raise InvalidArgument("a key must not be empty", path=path, recipe=recipe)
    try:
        size = len(key.encode("utf-8"))
    except UnicodeEncodeError:  # a lone surrogate
        raise InvalidArgument(f"a key must be valid Unicode: {key!r}", path=path, recipe=recipe) from None
    if size > MAX_KEY_BYTES:
        raise InvalidArgument(
            f"a key of {size} bytes (UTF-8) is over the {MAX_KEY_BYTES}-byte limit", path=path, recipe=recipe
        )
    return key


def check_value(value: object, recipe: str = "Collection", path: str | None = None) -> bytes:
    """``value`` when it is bytes a row can hold; :class:`InvalidArgument` otherwise."""
    if not isinstance(value, bytes):
        raise InvalidArgument(f"a row's value must be bytes, not {type(value).__name__}", path=path, recipe=recipe)
    if len(value) > MAX_VALUE_BYTES:
        raise InvalidArgument(
            f"a value of {len(value)} bytes is over the {MAX_VALUE_BYTES}-byte limit", path=path, recipe=recipe
        )
    return value


def escape(key: str) -> str:
    """The node name of ``key`` (see the module doc)."""
    return "".join(chr(b) if b in _SAFE else f"%{b:02X}" for b in key.encode("utf-8"))


def unescape(name: str) -> str | None:
    """The key a node name stands for; None for a name :func:`escape` never makes."""
    if not _ESCAPED.fullmatch(name):
        return None
    raw = bytearray()
    i = 0
    while i < len(name):
        if name[i] == "%":
            raw.append(int(name[i + 1 : i + 3], 16))
            i += 3
        else:
            raw.append(ord(name[i]))
            i += 1
    try:
        key = raw.decode("utf-8")
    except UnicodeDecodeError:
        return None
    return key if escape(key) == name else None  # one name per key: "%41" is not "A"


def bucket(key: str) -> str:
    """The bucket of ``key``: two hex digits of its SHA-1, the same in every process."""
    return hashlib.sha1(key.encode("utf-8")).hexdigest()[:2]


def row_path(root: str, key: str) -> str:
    return f"{root}/{ROWS}/{bucket(key)}/{escape(key)}"


def key_of(root: str, path: str) -> str | None:
    """The key of the row node at ``path`` under the collection ``root``; None for any other
    node (the root, ``rows``, a bucket, a member, a stray node)."""
    prefix = f"{root}/{ROWS}/"
    if not path.startswith(prefix):
        return None
    parts = path[len(prefix) :].split("/")
    if len(parts) != 2:
        return None
    key = unescape(parts[1])
    return key if key is not None and bucket(key) == parts[0] else None
