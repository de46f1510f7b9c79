"""Keeps secrets out of kazoo's debug log.

At DEBUG and below kazoo logs every request it sends and some replies: its ``Auth`` request
carries a digest password in clear (``Auth(auth_type=0, scheme='digest', auth='user:password')``)
and its ``Connect`` request and reply the session's password, with which anybody may take the
session over; two more lines print that password in hex.  :class:`RedactSecrets`, a filter on the
client's logger, rewrites those records before any handler sees them.  A filter runs only for
records the logger's level lets through, so at kazoo's usual WARNING it costs nothing.
"""

from __future__ import annotations

import logging
from typing import Any

from kazoo.client import KazooClient

REDACTED = "<redacted>"
_SECRET_FIELDS = ("auth", "passwd")  # Auth.auth; Connect.passwd and the Connect reply's passwd
_PASSWORD_LINES = ("session_passwd: %s",)


def _clean(arg: Any) -> Any:
    fields = getattr(arg, "_fields", None)
    if not fields or not hasattr(arg, "_replace"):
        return arg
    secrets = {name: REDACTED for name in _SECRET_FIELDS if name in fields and getattr(arg, name)}
    return arg._replace(**secrets) if secrets else arg


class RedactSecrets(logging.Filter):
    """Replaces passwords in kazoo's request and session log records with ``<redacted>``."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if not isinstance(args, tuple) or not args:
            return True
        if any(marker in str(record.msg) for marker in _PASSWORD_LINES):
            # "... session_id: %r session_passwd: %s ...": the password is the second argument
            record.args = (args[0], REDACTED, *args[2:])
            return True
        cleaned = tuple(_clean(arg) for arg in args)
        if any(new is not old for new, old in zip(cleaned, args)):
            record.args = cleaned
        return True


def redact_secrets(client: KazooClient) -> None:
    """Install :class:`RedactSecrets` on ``client``'s logger (kazoo's, or the caller's ``logger=``),
    once per logger."""
    logger = client.logger
    if not any(isinstance(f, RedactSecrets) for f in logger.filters):
        logger.addFilter(RedactSecrets())
