"""Keep the benchmarks from rotting: a tiny run against the test ensemble."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from zksync.testing.timing import scaled

ROOT = Path(__file__).resolve().parent.parent


def test_lock_cycle_benchmark_runs_and_counts_three_requests_per_cycle(zk_hosts: str, tmp_path: Path) -> None:
    out = tmp_path / "lock_cycle.json"
    env = dict(os.environ, ZOOKEEPER_PEERS=zk_hosts)
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.lock_cycle", "--cycles", "50", "--waiters", "3", "--json", str(out)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=scaled(180),
    )
    assert done.returncode == 0, done.stderr
    results = json.loads(out.read_text())
    assert results["uncontended"]["requests_per_cycle_client"] == 3.0
    assert results["fan_out_writers"]["notifications_first_release"] == 1
    assert results["fan_out_readers"]["notifications_first_release"] == 3


def test_scale_benchmark_runs_every_round_beside_its_floor(zk_hosts: str, tmp_path: Path) -> None:
    out = tmp_path / "scale.json"
    env = dict(os.environ, ZOOKEEPER_PEERS=zk_hosts)
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.scale", "--n", "20", "--json", str(out)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=scaled(240),
    )
    assert done.returncode == 0, done.stderr
    rounds = json.loads(out.read_text())["rounds"]
    assert set(rounds) == {"floor-sync", "sync", "floor-db", "zksync-db"}
    assert all(r["completed"] and r["server_packets_per_participant"] > 0 for r in rounds.values())
    assert "zksync DoubleBarrier" in done.stdout
