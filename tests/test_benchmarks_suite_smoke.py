"""The benchmark suite's quick mode runs end to end and writes its three outputs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from zksync.testing.timing import scaled

ROOT = Path(__file__).resolve().parent.parent


def test_benchmark_suite_quick_run_writes_results(zk_hosts: str, tmp_path: Path) -> None:
    env = dict(os.environ, ZOOKEEPER_PEERS=zk_hosts)
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.suite", "--quick", "--out", str(tmp_path)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=scaled(240),
    )
    assert done.returncode == 0, done.stderr[-4000:]
    for name in ("results.json", "results.md", "scaling.png"):
        assert (tmp_path / name).is_file(), name
    results = json.loads((tmp_path / "results.json").read_text())
    assert set(results) >= {
        "meta",
        "floors",
        "uncontended",
        "contended",
        "rwmutex",
        "double_barrier",
        "signal_and_wait",
        "memory",
        "targets",
    }
    assert results["floors"]["write_floor_writes_per_s"] > 0
    assert set(results["uncontended"]) >= {"zksync", "kazoo", "floor_median_ms"}
    assert set(results["contended"]) == {"zksync", "kazoo"} == set(results["rwmutex"])
    assert {r["impl"] for r in results["double_barrier"]} == {"floor-db", "zksync-db", "kazoo-db"}
    assert {r["impl"] for r in results["signal_and_wait"]} == {"floor-sync", "sync"}
    assert all(r["completed"] for r in results["double_barrier"] + results["signal_and_wait"])
    assert "delta_kib" in results["memory"]
    assert all(t["status"] in ("met", "missed", "n/a") for t in results["targets"])
    assert "| target | status | measured |" in (tmp_path / "results.md").read_text()


def test_benchmark_suite_frontends_quick_run_reports_numbers(zk_hosts: str, tmp_path: Path) -> None:
    """The blocking against asyncio comparison: it completes and reports its numbers (no timing
    is judged here)."""
    env = dict(os.environ, ZOOKEEPER_PEERS=zk_hosts)
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.suite", "--frontends", "--quick", "--out", str(tmp_path)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    for name in ("frontends.json", "frontends.md"):
        assert (tmp_path / name).is_file(), name
    results = json.loads((tmp_path / "frontends.json").read_text())
    assert results["meta"]["mode"] == "frontends"
    lock = results["contended"]
    assert lock["blocking"]["impl"] == "zksync" and lock["asyncio"]["impl"] == "zksync-aio"
    for frontend in ("blocking", "asyncio"):
        v = lock[frontend]
        assert v["acquisitions"] > 0 and not v["errors"], v
        assert v["requests_per_acquisition_client"] > 0
        assert v["cpu_ms_per_acquisition"] > 0
        assert v["threads_peak_max"] >= v["threads_before_max"] > 0
    assert lock["throughput_ratio"] > 0 and lock["cpu_per_acquisition_ratio"] > 0
    for key, impls in (
        ("double_barrier", ("zksync-db", "zksync-aio-db")),
        ("signal_and_wait", ("sync", "zksync-aio-sync")),
    ):
        (r,) = results[key]
        for frontend, impl in zip(("blocking", "asyncio"), impls):
            v = r[frontend]
            assert v["impl"] == impl
            assert v["completed"] == v["rounds"] == 1, v
            assert v["wall_s_median"] > 0
            assert v["requests_per_participant_client"] > 0
            assert v["cpu_ms_per_participant"] > 0
            assert v["threads_peak_max"] >= v["threads_before_max"] > 0
        assert r["wall_ratio"] > 0 and r["cpu_per_participant_ratio"] > 0
    report = (tmp_path / "frontends.md").read_text()
    assert "asyncio / blocking: throughput" in report and "CPU ms/participant" in report


def test_a_participants_round_runs_on_gevent_workers(zk_hosts: str) -> None:
    """The workers that host the 10,000-participant round (one OS thread per process)."""
    import zksync
    from benchmarks import suite

    client = zksync.connect(zk_hosts)
    original = suite.GREEN_FROM
    suite.GREEN_FROM = 1
    try:
        result = suite.participants_round(client, zk_hosts, "sync", 20, 60, 10)
    finally:
        suite.GREEN_FROM = original
        client.stop()
        client.close()
    assert result["workers"] == "gevent"
    assert result["completed"] and result["finished"] == 20, result
    assert result["requests_per_participant_client"] is not None
