"""Keep the benchmarks from rotting: a tiny run against the test ensemble."""

from __future__ import annotations

import json
from pathlib import Path

from zksync.testing.timing import scaled

from .conftest import run_benchmark


def test_lock_cycle_benchmark_runs_and_counts_three_requests_per_cycle(zk_hosts: str, tmp_path: Path) -> None:
    out = tmp_path / "lock_cycle.json"
    done = run_benchmark(
        zk_hosts, "lock_cycle", "--cycles", "50", "--waiters", "3", "--json", str(out), timeout=scaled(180)
    )
    assert done.returncode == 0, done.stderr
    results = json.loads(out.read_text())
    assert results["uncontended"]["requests_per_cycle_client"] == 3.0
    assert results["fan_out_writers"]["notifications_first_release"] == 1
    assert results["fan_out_readers"]["notifications_first_release"] == 3


def test_scale_benchmark_runs_every_round_beside_its_floor(zk_hosts: str, tmp_path: Path) -> None:
    out = tmp_path / "scale.json"
    done = run_benchmark(zk_hosts, "scale", "--n", "20", "--json", str(out), timeout=scaled(240))
    assert done.returncode == 0, done.stderr
    rounds = json.loads(out.read_text())["rounds"]
    assert set(rounds) == {"floor-sync", "sync", "floor-db", "zksync-db"}
    assert all(r["completed"] and r["server_packets_per_participant"] > 0 for r in rounds.values())
    assert "zksync DoubleBarrier" in done.stdout


def test_tls_benchmark_compares_both_transports_with_the_same_requests(zk_hosts: str, tmp_path: Path) -> None:
    out = tmp_path / "tls.json"
    args = ("--cycles", "100", "--duration", "3", "--blocks", "1", "--json", str(out))
    done = run_benchmark(zk_hosts, "tls", *args, timeout=scaled(300))
    assert done.returncode == 0, done.stderr
    results = json.loads(out.read_text())
    uncontended, contended = results["uncontended"], results["contended"]
    assert uncontended["plaintext"]["requests_per_cycle"] == uncontended["tls"]["requests_per_cycle"] == 3.0
    for transport in ("plaintext", "tls"):
        assert contended[transport]["acquisitions"] > 0 and not contended[transport]["errors"]
        assert contended[transport]["requests_per_acquisition"] <= 4.5
    assert "TLS / plaintext" in done.stdout
