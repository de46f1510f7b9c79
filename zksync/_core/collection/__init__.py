"""A synced collection's logic: the layout of its rows and members, and its local replica."""

from .layout import MAX_KEY_BYTES, MAX_VALUE_BYTES, check_key, check_value, escape, key_of, row_path, unescape
from .replica import Change, Replica, Row

__all__ = [
    "MAX_KEY_BYTES",
    "MAX_VALUE_BYTES",
    "Change",
    "Replica",
    "Row",
    "check_key",
    "check_value",
    "escape",
    "key_of",
    "row_path",
    "unescape",
]
