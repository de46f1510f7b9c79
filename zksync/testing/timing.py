"""One unit of time for tests, stretched on slow machines by ``ZKSYNC_TIME_SCALE``.

In the spirit of Apache Curator's ``Timing``: a test does not sleep, or give something time to
happen, in raw seconds but through this module, so that one environment variable gives a slow
machine more time everywhere at once::

    ZKSYNC_TIME_SCALE=3 python3 -m pytest

A unit is one second at scale 1 (the default); at scale 3 it is three.  The whole time axis of
a test stretches together (sleeps, deadlines it expects to pass or to expire, session timeouts,
bounds on elapsed time), so every ratio the test relies on is kept; only the size of an injected
fault (a Toxiproxy latency) stays as it is.  The scale is read from the environment at each call,
and a value that is not a number > 0 is an error, never a silent 1.
"""

from __future__ import annotations

import math
import os
import time

ENV = "ZKSYNC_TIME_SCALE"
BASE_UNIT = 1.0  # seconds, at scale 1


class TimeScaleError(ValueError):
    """``ZKSYNC_TIME_SCALE`` holds something other than a finite number > 0."""


def parse_scale(text: str | None) -> float:
    """The scale that ``text`` (the variable's value; ``None`` or blank: unset) stands for."""
    if text is None or not text.strip():
        return 1.0
    try:
        value = float(text)
    except ValueError:
        raise TimeScaleError(f"{ENV} must be a number > 0 (a factor such as 3), got {text!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise TimeScaleError(f"{ENV} must be a finite number > 0, got {text!r}")
    return value


def time_scale() -> float:
    """The factor every test duration is multiplied by (``ZKSYNC_TIME_SCALE``, default 1)."""
    return parse_scale(os.environ.get(ENV))


def unit() -> float:
    """One unit of test time, in seconds."""
    return BASE_UNIT * time_scale()


def scaled(seconds: float) -> float:
    """``seconds`` as meant on an ordinary machine, stretched by the scale."""
    return seconds * unit()


def sleep(units: float) -> None:
    """Sleep ``units`` units (seconds at scale 1)."""
    time.sleep(scaled(units))
