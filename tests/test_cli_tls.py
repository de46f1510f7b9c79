"""The zksync command over TLS: its --tls-* flags, handed to every instance of a run, the
one-line error of a failed handshake, and an x509 ACL refusing another certificate."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

from kazoo.client import KazooClient

from zksync import RWMutex, acl
from zksync.cli import EXIT_DENIED, EXIT_ENSEMBLE, EXIT_USAGE
from zksync.testing import Ensemble
from zksync.testing.timing import scaled

from .test_cli import ROOT, events, zksync_cmd

Factory = Callable[..., KazooClient]


def flags(ensemble: Ensemble, name: str) -> list[str]:
    files = ensemble.client_credentials(name)
    return ["--tls-ca", str(files.ca), "--tls-cert", str(files.cert), "--tls-key", str(files.key)]


def one_line(stderr: str) -> bool:
    return "Traceback" not in stderr and len(stderr.strip().splitlines()) == 1


def test_run_hands_the_tls_files_to_every_instance(zk_tls_ensemble: Ensemble, tmp_path: Path) -> None:
    plan = str(ROOT / "examples" / "leader_follower.py")
    done = zksync_cmd(
        "run", plan, "--instances", "3", "--outputs", str(tmp_path), "--run-id", "t1",
        *flags(zk_tls_ensemble, "runner"), hosts=zk_tls_ensemble.hosts, cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "3 of 3 instances succeeded" in done.stderr
    for n in range(3):  # the port speaks TLS only: each instance connected with the files
        assert events(tmp_path / "t1" / "single" / str(n) / "run.out")[-1]["type"] == "success"


def test_lock_over_tls_and_a_plaintext_attempt_is_one_clear_line(
    zk_tls_ensemble: Ensemble, zk_tls_chroot: str, tmp_path: Path
) -> None:
    hosts = f"{zk_tls_ensemble.hosts}{zk_tls_chroot}"
    ok = zksync_cmd("lock", "/l", *flags(zk_tls_ensemble, "alice"), "--", "true", hosts=hosts, cwd=tmp_path)
    assert ok.returncode == 0, ok.stderr
    plain = zksync_cmd("lock", "/l", "--timeout", "5", "--", "true", hosts=hosts, cwd=tmp_path, timeout=60)
    assert plain.returncode == EXIT_ENSEMBLE
    assert "it serves TLS and this client speaks plaintext" in plain.stderr and one_line(plain.stderr)


def test_a_missing_tls_file_is_bad_usage(zk_tls_ensemble: Ensemble, tmp_path: Path) -> None:
    done = zksync_cmd(
        "lock", "/l", "--tls-cert", str(tmp_path / "nope.pem"), "--", "true", hosts=zk_tls_ensemble.hosts, cwd=tmp_path
    )
    assert done.returncode == EXIT_USAGE
    assert "no such file" in done.stderr and one_line(done.stderr)


def test_another_certificate_can_neither_take_nor_inspect_a_guarded_lock(
    zk_tls_ensemble: Ensemble, zk_tls_chroot: str, zk_tls_client_factory: Factory, tmp_path: Path
) -> None:
    alice = zk_tls_client_factory("alice")
    owner = RWMutex(alice, "/guarded", acl=[acl.x509("CN=alice")])
    lease = owner.lock(timeout=scaled(5))
    before = sorted(alice.get_children("/guarded"))
    hosts = f"{zk_tls_ensemble.hosts}{zk_tls_chroot}"
    bob = flags(zk_tls_ensemble, "bob")
    taken = zksync_cmd(
        "lock",
        "/guarded",
        "--timeout",
        "5",
        *bob,
        "--",
        sys.executable,
        "-c",
        "print('ran')",
        hosts=hosts,
        cwd=tmp_path,
    )
    assert taken.returncode == EXIT_DENIED, taken.stderr
    assert "access denied" in taken.stderr and one_line(taken.stderr) and "ran" not in taken.stdout
    looked = zksync_cmd("inspect", "/guarded", *bob, hosts=hosts, cwd=tmp_path)
    assert looked.returncode == EXIT_DENIED and one_line(looked.stderr), looked.stderr
    assert sorted(alice.get_children("/guarded")) == before and lease.valid
    owner.unlock()
