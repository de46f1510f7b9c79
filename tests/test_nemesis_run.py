"""A short nemesis run in CI: a randomized mix of faults against zksync's recipes, then a quiet
stage in which every recipe must make progress again, with a checked history.  Longer runs:
python3 -m zksync.testing.nemesis --duration 600 --impl both."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from zksync.testing.history import PROGRESS, check, load
from zksync.testing.timing import scaled
from zksync.testing.toxi import find_server


def test_short_nemesis_run_finds_no_violation(tmp_path: Path) -> None:
    if find_server() is None and not os.environ.get("TOXIPROXY"):
        reason = "toxiproxy-server not found (run .ci/setup)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    seconds = os.environ.get("ZKSYNC_NEMESIS_SECONDS", "120")
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "zksync.testing.nemesis",
            "--duration",
            seconds,
            "--impl",
            "zksync",
            "--history",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=float(seconds) + scaled(300),
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    events = load(tmp_path / "zksync.jsonl")
    report = check(events)
    assert report.safety_violations == 0, report.summary()
    assert report.liveness_violations == 0, report.summary()
    assert report.ok
    assert sum(report.faults.values()) >= 3  # faults really happened
    assert report.operations["lock.acquire.ok"] > 0 and report.operations["double.exit.ok"] > 0
    # the quiet stage was judged, and every recipe made progress in it
    assert "quiet" in report.stages and set(report.recovery) == set(PROGRESS)
    assert all(report.per_minute("quiet")[label] > 0 for label in PROGRESS), report.summary()
    # DoubleBarrier members never come back to a round they already took part in
    entered = [
        (e["proc"], e["path"])
        for e in events
        if e["recipe"] == "double" and e["type"] == "enter" and e.get("phase") == "invoke"
    ]
    assert entered and len(entered) == len(set(entered))
