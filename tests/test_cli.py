"""The zksync command, end to end through real subprocesses and the real ensemble."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tarfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from kazoo.client import KazooClient

import zksync
from zksync.cli import (
    EXIT_ENSEMBLE,
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_LOCK_TIMEOUT,
    EXIT_PLAN,
    EXIT_TIMEOUT,
    EXIT_USAGE,
)
from zksync.testing.timing import scaled

from .conftest import wait_until

ROOT = Path(__file__).resolve().parent.parent
PLANS = Path(__file__).resolve().parent / "plans"
Factory = Callable[..., KazooClient]


def zksync_cmd(
    *args: str, hosts: str | None, cwd: Path, timeout: float = 120, **env: str
) -> subprocess.CompletedProcess[str]:
    """The zksync command run to its end, given ``timeout`` units of test time."""
    environ = dict(os.environ, **env)
    environ.pop("ZOOKEEPER_PEERS", None)
    if hosts is not None:
        environ["ZOOKEEPER_PEERS"] = hosts
    return subprocess.run(
        [sys.executable, "-m", "zksync.cli", *args],
        cwd=cwd,
        env=environ,
        capture_output=True,
        text=True,
        timeout=scaled(timeout),
    )


def events(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line)["event"] for line in path.read_text().splitlines()]


def test_run_of_the_leader_follower_example_with_ten_instances(
    zk_hosts: str, tmp_path: Path, zk_client: KazooClient
) -> None:
    done = zksync_cmd(
        "run",
        str(ROOT / "examples" / "leader_follower.py"),
        "--instances",
        "10",
        "--outputs",
        str(tmp_path),
        "--run-id",
        "r1",
        hosts=zk_hosts,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    assert "10 of 10 instances succeeded" in done.stderr
    dirs = sorted((tmp_path / "r1" / "single").iterdir(), key=lambda p: int(p.name))
    assert [d.name for d in dirs] == [str(n) for n in range(10)]
    kinds = [[e["type"] for e in events(d / "run.out")] for d in dirs]
    assert all(k[0] == "start" and k[-1] == "success" for k in kinds)
    messages = [e["message"] for d in dirs for e in events(d / "run.out") if e["type"] == "message"]
    assert sum("I am the leader" in m for m in messages) == 1
    assert sum("released by the leader" in m for m in messages) == 9
    assert zk_client.exists("/zksync-sync") is None or not any(
        "r1" in c for c in zk_client.get_children("/zksync-sync")
    )  # the run's nodes are cleaned up


def test_run_of_the_fortune_example_every_service_sees_every_fortune(zk_hosts: str, tmp_path: Path) -> None:
    done = zksync_cmd(
        "run",
        str(ROOT / "examples" / "fortune.py"),
        "--instances",
        "5",
        "--param",
        "fortunes=4",
        "--outputs",
        str(tmp_path),
        "--run-id",
        "f1",
        hosts=zk_hosts,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    assert "5 of 5 instances succeeded" in done.stderr
    messages = [
        e["message"] for d in (tmp_path / "f1" / "single").iterdir() for e in events(d / "run.out") if "message" in e
    ]
    assert len(messages) == 5 and all("20 fortunes from 5 members" in m for m in messages), messages


def test_collect_writes_an_archive_of_the_outputs(zk_hosts: str, tmp_path: Path) -> None:
    done = zksync_cmd(
        "run",
        str(PLANS / "fails_on_one.py"),
        "--instances",
        "2",
        "--collect",
        "--outputs",
        str(tmp_path),
        "--run-id",
        "r2",
        "--param",
        "greeting=hi",
        hosts=zk_hosts,
        cwd=tmp_path,
    )
    assert done.returncode == EXIT_FAILED
    with tarfile.open(tmp_path / "r2.tgz") as tar:
        names = set(tar.getnames())
    assert {"r2/single/0/run.out", "r2/single/0/run.err", "r2/single/1/run.out", "r2/single/1/run.err"} <= names


def test_a_failing_instance_is_recorded_and_fails_the_run(zk_hosts: str, tmp_path: Path) -> None:
    done = zksync_cmd(
        "run",
        str(PLANS / "fails_on_one.py"),
        "--instances",
        "3",
        "--outputs",
        str(tmp_path),
        "--run-id",
        "r3",
        "--param",
        "greeting=hi",
        hosts=zk_hosts,
        cwd=tmp_path,
    )
    assert done.returncode == EXIT_FAILED
    assert "2 of 3 instances succeeded" in done.stderr
    failed = events(tmp_path / "r3" / "single" / "1" / "run.out")
    assert failed[-1]["type"] == "failure" and "on purpose" in failed[-1]["error"]
    ok = events(tmp_path / "r3" / "single" / "0" / "run.out")
    assert ok[1] == {"type": "message", "message": "hello from single-0 param=hi"}
    assert "Traceback" not in done.stderr


def test_a_run_that_times_out_is_stopped_with_crash_events(zk_hosts: str, tmp_path: Path) -> None:
    started = time.monotonic()
    done = zksync_cmd(
        "run",
        str(PLANS / "sleeps.py"),
        "--instances",
        "2",
        "--timeout",
        f"{scaled(4):g}",
        "--outputs",
        str(tmp_path),
        "--run-id",
        "r4",
        hosts=zk_hosts,
        cwd=tmp_path,
    )
    assert done.returncode == EXIT_TIMEOUT
    assert time.monotonic() - started < scaled(60)
    for n in range(2):
        last = events(tmp_path / "r4" / "single" / str(n) / "run.out")[-1]
        assert last["type"] == "crash" and "timed out" in last["error"]


def test_ctrl_c_stops_every_instance_and_leaves_no_znode(zk_hosts: str, tmp_path: Path, zk_client: KazooClient) -> None:
    environ = dict(os.environ, ZOOKEEPER_PEERS=zk_hosts)
    runner = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "zksync.cli",
            "run",
            str(PLANS / "sleeps.py"),
            "--instances",
            "3",
            "--outputs",
            str(tmp_path),
            "--run-id",
            "r5",
        ],
        cwd=tmp_path,
        env=environ,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    admin = zksync.connect(zk_hosts)
    try:
        state = "/zksync-sync/sleeps-default-r5/states/sleeping"
        wait_until(lambda: admin.exists(state) and admin.exists(state).cversion == 3, 60, "3 instances running")
        runner.send_signal(signal.SIGINT)
        _, err = runner.communicate(timeout=scaled(60))
        assert runner.returncode == EXIT_INTERRUPTED, err
        assert "Traceback" not in err
        assert admin.exists("/zksync-sync/sleeps-default-r5") is None
        left = subprocess.run(["pgrep", "-f", str(PLANS / "sleeps.py")], capture_output=True, text=True).stdout
        assert left.strip() == "", f"stray instances: {left}"
    finally:
        admin.stop()
        admin.close()
        if runner.poll() is None:
            runner.kill()


def test_lock_passes_the_exit_code_through(zk_hosts: str, zk_chroot: str, tmp_path: Path) -> None:
    hosts = f"{zk_hosts}{zk_chroot}"
    assert (
        zksync_cmd(
            "lock", "/cli-lock", "--", sys.executable, "-c", "raise SystemExit(7)", hosts=hosts, cwd=tmp_path
        ).returncode
        == 7
    )
    assert zksync_cmd("lock", "/cli-lock", "--read", "--", "true", hosts=hosts, cwd=tmp_path).returncode == 0


def test_two_lock_commands_exclude_each_other_and_the_second_can_time_out(
    zk_hosts: str, zk_chroot: str, tmp_path: Path
) -> None:
    hosts = f"{zk_hosts}{zk_chroot}"
    marker = tmp_path / "inside"
    script = (
        f"import os, time, pathlib; p = pathlib.Path({str(marker)!r}); "
        f"assert not p.exists(), 'two holders at once'; p.touch(); time.sleep({scaled(3)!r}); p.unlink()"
    )
    environ = dict(os.environ, ZOOKEEPER_PEERS=hosts)
    first = subprocess.Popen(
        [sys.executable, "-m", "zksync.cli", "lock", "/cli-lock", "--", sys.executable, "-c", script], env=environ
    )
    wait_until(marker.exists, 30, "first holder inside")
    blocked = zksync_cmd("lock", "/cli-lock", "--timeout", f"{scaled(0.5):g}", "--", "true", hosts=hosts, cwd=tmp_path)
    assert blocked.returncode == EXIT_LOCK_TIMEOUT and "could not acquire" in blocked.stderr
    second = zksync_cmd(
        "lock",
        "/cli-lock",
        "--timeout",
        f"{scaled(30):g}",
        "--",
        sys.executable,
        "-c",
        script,
        hosts=hosts,
        cwd=tmp_path,
    )
    assert first.wait(scaled(30)) == 0
    assert second.returncode == 0, second.stderr


def test_inspect_describes_each_recipe(
    zk_hosts: str, zk_chroot: str, zk_client_factory: Factory, tmp_path: Path
) -> None:
    hosts = f"{zk_hosts}{zk_chroot}"
    client = zk_client_factory()
    mutex = zksync.RWMutex(client, "/lock")
    mutex.lock(timeout=scaled(5))
    zksync.Barrier(client, "/barrier").set()
    db = zksync.DoubleBarrier(client, "/db", 2, identifier="alpha")
    with pytest.raises(zksync.Timeout):
        db.enter(timeout=scaled(0.1))
    zksync.DoubleBarrier(zk_client_factory(), "/db2", 1, identifier="beta").enter(timeout=scaled(5))
    fortunes = zksync.Collection(client, "/fortunes", member="teller").open(timeout=scaled(10))
    fortunes.put("fortune a/b", "luck")
    sync = zksync.Sync(client, "run1", instance_id="i0")
    sync.signal_entry("ready")
    sync.publish("news", {"n": 1})

    def inspect(path: str) -> str:
        done = zksync_cmd("inspect", path, hosts=hosts, cwd=tmp_path)
        assert done.returncode == 0, done.stderr
        return done.stdout

    out = inspect("/lock")
    assert "lock queue (1)" in out and "holder  write" in out and f"0x{client.client_id[0]:x}" in out
    assert "barrier set since" in inspect("/barrier")
    zksync.Barrier(client, "/barrier").unset()
    assert "as a Barrier: not set" in inspect("/barrier")
    out = inspect("/db2")
    assert "double barrier, 1 participant(s) present" in out and "round released: 1 members, 0 gone" in out
    out = inspect("/zksync-sync/run1")
    assert "state ready: 1 signal(s)" in out and "topic news: 1 message(s)" in out
    out = inspect("/fortunes")
    assert "collection, 1 key(s) in 1 bucket(s), 1 member(s)" in out
    assert "member teller" in out and "key 'fortune a/b'" in out
    assert "does not exist" in inspect("/nothing-here")
    mutex.unlock()


@pytest.mark.parametrize(
    "args, code, message",
    [
        (["run", "no/such/plan.py"], EXIT_PLAN, "no such plan file"),
        (["run", "PLAN", "--instances", "0"], EXIT_USAGE, "--instances must be >= 1"),
        (["run", str(PLANS / "crashes_on_import.py"), "--instances", "2"], EXIT_PLAN, "plan crashed before starting"),
        (["inspect", "relative/path"], EXIT_USAGE, "absolute"),
        (["lock", "/x"], EXIT_USAGE, "no command given"),
        (["run", "PLAN", "--param", "novalue"], EXIT_USAGE, "not key=value"),
    ],
)
def test_bad_input_gets_one_clear_line_and_a_distinct_code(
    zk_hosts: str, tmp_path: Path, args: list[str], code: int, message: str
) -> None:
    args = [str(ROOT / "examples" / "leader_follower.py") if a == "PLAN" else a for a in args]
    done = zksync_cmd(*args, hosts=zk_hosts, cwd=tmp_path)
    assert done.returncode == code, done.stderr
    assert message in done.stderr
    assert "Traceback" not in done.stderr and len(done.stderr.strip().splitlines()) <= 3


def test_an_unreachable_ensemble_is_one_line_and_its_own_code(tmp_path: Path) -> None:
    done = zksync_cmd("run", str(ROOT / "examples" / "leader_follower.py"), hosts="127.0.0.1:1", cwd=tmp_path)
    assert done.returncode == EXIT_ENSEMBLE
    assert "cannot reach ZooKeeper" in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "zksync-outputs").exists()


def test_ensemble_up_status_down(tmp_path: Path) -> None:
    state = str(tmp_path / "state")
    up = zksync_cmd("ensemble", "up", "--size", "1", hosts=None, cwd=tmp_path, ZKSYNC_STATE=state)
    try:
        assert up.returncode == 0, up.stderr
        peers = up.stdout.strip().removeprefix("export ZOOKEEPER_PEERS=")
        again = zksync_cmd("ensemble", "up", hosts=None, cwd=tmp_path, ZKSYNC_STATE=state)
        assert again.stdout == up.stdout  # state survives between commands: the same ensemble
        status = zksync_cmd("ensemble", "status", hosts=None, cwd=tmp_path, ZKSYNC_STATE=state)
        assert status.returncode == 0 and "standalone" in status.stdout
        client = zksync.connect(peers)
        client.stop()
    finally:
        down = zksync_cmd("ensemble", "down", hosts=None, cwd=tmp_path, ZKSYNC_STATE=state)
    assert down.returncode == 0 and "stopped" in down.stdout
    assert zksync_cmd("ensemble", "status", hosts=None, cwd=tmp_path, ZKSYNC_STATE=state).returncode == EXIT_ENSEMBLE
