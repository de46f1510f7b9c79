"""The test time unit: parsing of ZKSYNC_TIME_SCALE, scaling, and the refusal of bad values."""

from __future__ import annotations

import math
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from zksync.testing import timing

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize(
    ("text", "scale"),
    [(None, 1.0), ("", 1.0), ("  ", 1.0), ("1", 1.0), ("3", 3.0), (" 2.5 ", 2.5), ("0.5", 0.5), ("1e1", 10.0)],
)
def test_parse_scale_reads_a_positive_factor_and_defaults_to_one(text: str | None, scale: float) -> None:
    assert timing.parse_scale(text) == scale


@pytest.mark.parametrize("text", ["fast", "3x", "1,5", "0", "0.0", "-1", "-0.5", "nan", "inf", "-inf"])
def test_parse_scale_refuses_what_is_not_a_finite_number_above_zero(text: str) -> None:
    with pytest.raises(timing.TimeScaleError, match="ZKSYNC_TIME_SCALE") as info:
        timing.parse_scale(text)
    assert repr(text) in str(info.value)  # the message shows the value that was refused
    assert isinstance(info.value, ValueError)


def test_unset_means_one_second_per_unit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(timing.ENV, raising=False)
    assert timing.time_scale() == 1.0
    assert timing.unit() == 1.0
    assert timing.scaled(4) == 4.0
    assert timing.scaled(0) == 0.0


def test_the_scale_multiplies_every_duration(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(timing.ENV, "3")
    assert timing.time_scale() == 3.0
    assert timing.unit() == 3.0
    assert timing.scaled(0.5) == 1.5
    assert math.isclose(timing.scaled(0.1), 0.3)
    monkeypatch.setenv(timing.ENV, "0.5")  # read at each call: no stale value
    assert timing.scaled(4) == 2.0


def test_a_bad_value_in_the_environment_is_an_error_not_a_silent_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(timing.ENV, "slow")
    with pytest.raises(timing.TimeScaleError, match="'slow'"):
        timing.scaled(1)
    with pytest.raises(timing.TimeScaleError):
        timing.sleep(0)


def test_sleep_sleeps_the_scaled_time(monkeypatch: pytest.MonkeyPatch) -> None:
    slept: list[float] = []
    monkeypatch.setattr(time, "sleep", slept.append)
    monkeypatch.setenv(timing.ENV, "2")
    timing.sleep(0.25)
    assert slept == [0.5]


def test_pytest_stops_at_once_on_a_bad_scale(tmp_path: Path) -> None:
    (tmp_path / "test_nothing.py").write_text("def test_nothing() -> None:\n    pass\n")
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tmp_path)],
        cwd=tmp_path,
        env=dict(os.environ, PYTHONPATH=str(ROOT), ZKSYNC_TIME_SCALE="-2"),
        capture_output=True,
        text=True,
        timeout=timing.scaled(60),
    )
    assert done.returncode == pytest.ExitCode.USAGE_ERROR, done.stdout + done.stderr
    assert "ZKSYNC_TIME_SCALE must be a finite number > 0, got '-2'" in done.stderr
