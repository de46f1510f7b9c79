"""The ``zksync`` command.

    zksync ensemble up|down|status [--size 3]
    zksync run PLAN.py [--instances N] [--case NAME] [--param k=v ...] [--collect] [--timeout S]
    zksync inspect PATH
    zksync lock PATH [--read] [--naming FAMILY] [--timeout S] -- COMMAND ...

``run``, ``inspect`` and ``lock`` speak TLS to the ensemble with ``--tls-ca FILE``,
``--tls-cert FILE`` and ``--tls-key FILE`` (default: ``ZOOKEEPER_TLS_CA``, ``ZOOKEEPER_TLS_CERT``,
``ZOOKEEPER_TLS_KEY``); ``run`` hands the same files to every instance through those variables.

Exit codes: 0 success; 1 an instance (or the locked command) failed; 2 bad usage or input;
3 the ensemble cannot be reached (a failed TLS handshake too); 4 the plan cannot be run (missing,
does not compile, crashed before starting); 5 the run timed out; 75 ``lock`` timed out; 77 an ACL
refused this identity; 130 interrupted.  Errors are one line on stderr, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from kazoo.client import KazooClient

from . import RWMutex, connect
from ._core.collection.layout import MEMBERS, ROWS, unescape
from ._core.queue import NAMINGS, ordered
from ._tls import ENV_CA, ENV_CERT, ENV_KEY
from .errors import AccessDenied, ConnectionLost, InvalidArgument, Timeout, ZkSyncError, translate
from .runtime import parse_params
from .testing.ensemble import Ensemble, EnsembleError, four_letter

EXIT_FAILED, EXIT_USAGE, EXIT_ENSEMBLE, EXIT_PLAN, EXIT_TIMEOUT = 1, 2, 3, 4, 5
EXIT_LOCK_TIMEOUT, EXIT_DENIED, EXIT_INTERRUPTED = 75, 77, 130
# each --tls-* flag: its argparse name, connect()'s argument, the variable an instance reads it from
TLS_FLAGS = (("tls_ca", "ca", ENV_CA), ("tls_cert", "certfile", ENV_CERT), ("tls_key", "keyfile", ENV_KEY))


class Exit(Exception):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


def state_dir() -> Path:
    return Path(os.environ.get("ZKSYNC_STATE", Path.home() / ".cache" / "zksync" / "ensemble"))


# ---- ensemble ---------------------------------------------------------------------------------
def _load_state() -> dict[str, Any] | None:
    path = state_dir() / "state.json"
    try:
        state: dict[str, Any] = json.loads(path.read_text())
        return state
    except (OSError, ValueError):
        return None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
        return True
    except OSError:
        return False


def _member_modes(state: dict[str, Any]) -> list[str]:
    modes = []
    for member in state["members"]:
        try:
            answer = four_letter("127.0.0.1", member["client_port"], "srvr", timeout=1.0)
            mode = next(
                (line.split(":", 1)[1].strip() for line in answer.splitlines() if line.startswith("Mode:")),
                "not serving",
            )
        except OSError:
            mode = "down"
        modes.append(mode)
    return modes


def running_hosts() -> str | None:
    """The hosts of the ensemble ``zksync ensemble up`` started, if it still serves."""
    state = _load_state()
    if state is None or not any(_alive(m["pid"]) for m in state["members"]):
        return None
    modes = _member_modes(state)
    serving = [m for m in modes if m in ("leader", "follower", "standalone")]
    return str(state["hosts"]) if len(serving) > len(modes) // 2 else None


def cmd_ensemble(args: argparse.Namespace) -> int:
    if args.action == "up":
        hosts = running_hosts()
        if hosts is None:
            _stop_ensemble(quiet=True)
            directory = state_dir()
            directory.mkdir(parents=True, exist_ok=True)
            try:
                ensemble = Ensemble(args.size, directory=directory / "data").start()
            except EnsembleError as exc:
                raise Exit(EXIT_ENSEMBLE, f"could not start the ensemble: {str(exc).splitlines()[0]}") from None
            members = [
                {"myid": m.myid, "client_port": m.client_port, "pid": m.process.pid if m.process else 0}
                for m in ensemble.members
            ]
            (directory / "state.json").write_text(json.dumps({"hosts": ensemble.hosts, "members": members}))
            hosts = ensemble.hosts
            print(f"ensemble of {args.size} up", file=sys.stderr)
        print(f"export ZOOKEEPER_PEERS={hosts}")
        return 0
    if args.action == "down":
        _stop_ensemble(quiet=False)
        return 0
    state = _load_state()
    if state is None:
        print("no ensemble (zksync ensemble up starts one)")
        return EXIT_ENSEMBLE
    for member, mode in zip(state["members"], _member_modes(state)):
        print(f"zk{member['myid']} 127.0.0.1:{member['client_port']} pid {member['pid']}: {mode}")
    print(f"ZOOKEEPER_PEERS={state['hosts']}")
    return 0 if running_hosts() else EXIT_ENSEMBLE


def _stop_ensemble(quiet: bool) -> bool:
    state = _load_state()
    if state is None:
        if not quiet:
            print("no ensemble to stop")
        return False
    for member in state["members"]:
        pid = member["pid"]
        if pid and _alive(pid):
            try:
                os.killpg(pid, signal.SIGTERM)
            except OSError:
                pass
    deadline = time.monotonic() + 10
    while any(m["pid"] and _alive(m["pid"]) for m in state["members"]) and time.monotonic() < deadline:
        time.sleep(0.1)
    for member in state["members"]:
        if member["pid"] and _alive(member["pid"]):
            try:
                os.killpg(member["pid"], signal.SIGKILL)
            except OSError:
                pass
    shutil.rmtree(state_dir(), ignore_errors=True)
    if not quiet:
        print("ensemble stopped")
    return True


# ---- run --------------------------------------------------------------------------------------
class Instance:
    def __init__(self, index: int, directory: Path, process: subprocess.Popen[bytes]) -> None:
        self.index = index
        self.directory = directory
        self.process = process
        self.code: int | None = None

    def events(self) -> list[str]:
        try:
            lines = (self.directory / "run.out").read_text().splitlines()
        except OSError:
            return []
        kinds = []
        for line in lines:
            try:
                kinds.append(json.loads(line)["event"]["type"])
            except (ValueError, KeyError, TypeError):
                continue
        return kinds

    def record_crash(self, error: str, run_id: str, group: str) -> None:
        entry = {"ts": time.time_ns(), "event": {"type": "crash", "error": error}, "group_id": group, "run_id": run_id}
        with open(self.directory / "run.out", "a") as f:
            f.write(json.dumps(entry) + "\n")

    def kill(self) -> None:
        if self.process.poll() is None:
            try:
                os.killpg(self.process.pid, signal.SIGTERM)
                self.process.wait(3)
            except (OSError, subprocess.TimeoutExpired):
                try:
                    os.killpg(self.process.pid, signal.SIGKILL)
                except OSError:
                    pass
                self.process.wait(5)


def cmd_run(args: argparse.Namespace) -> int:
    plan = Path(args.plan)
    if not plan.is_file():
        raise Exit(EXIT_PLAN, f"no such plan file: {plan}")
    if args.instances < 1:
        raise Exit(EXIT_USAGE, f"--instances must be >= 1, got {args.instances}")
    if args.timeout is not None and args.timeout <= 0:
        raise Exit(EXIT_USAGE, f"--timeout must be > 0, got {args.timeout}")
    try:
        compile(plan.read_bytes(), str(plan), "exec")
    except SyntaxError as exc:
        raise Exit(EXIT_PLAN, f"plan does not compile: {plan}:{exc.lineno}: {exc.msg}") from None
    try:
        params = parse_params("|".join(args.param))
    except InvalidArgument as exc:
        raise Exit(EXIT_USAGE, str(exc)) from None

    ensemble = None
    hosts = os.environ.get("ZOOKEEPER_PEERS", "").strip() or running_hosts()
    if not hosts:
        try:
            ensemble = Ensemble(3).start()
        except EnsembleError as exc:
            raise Exit(EXIT_ENSEMBLE, f"could not start a local ensemble: {str(exc).splitlines()[0]}") from None
        hosts = ensemble.hosts
    try:
        admin = _reach(hosts, args)
        try:
            return _run_instances(args, plan, params, hosts, admin)
        finally:
            admin.stop()
            admin.close()
    finally:
        if ensemble is not None:
            ensemble.stop()


def _reach(hosts: str, args: argparse.Namespace) -> KazooClient:
    try:
        return connect(hosts, timeout=10, **_tls_options(args))
    except InvalidArgument as exc:
        raise Exit(EXIT_USAGE, str(exc)) from None
    except ConnectionLost as exc:  # its message names the hosts, and a TLS failure's reason
        raise Exit(EXIT_ENSEMBLE, f"cannot reach ZooKeeper: {exc}") from None


def _tls_files(args: argparse.Namespace) -> list[tuple[str, str, str]]:
    """(connect()'s argument, its variable, the absolute path) of every --tls-* flag given."""
    given = [(name, env, getattr(args, flag, None)) for flag, name, env in TLS_FLAGS]
    return [(name, env, os.path.abspath(path)) for name, env, path in given if path]


def _tls_options(args: argparse.Namespace) -> dict[str, str]:
    """connect()'s TLS files from the --tls-* flags; none given: connect() reads ZOOKEEPER_TLS_*."""
    return {name: path for name, _, path in _tls_files(args)}


def _tls_environment(args: argparse.Namespace) -> dict[str, str]:
    """The ZOOKEEPER_TLS_* variables that give every instance of a run this command's files."""
    return {env: path for _, env, path in _tls_files(args)}


def _run_instances(args: argparse.Namespace, plan: Path, params: dict[str, str], hosts: str, admin: KazooClient) -> int:
    run_id = args.run_id or datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S-") + uuid.uuid4().hex[:6]
    group = "single"
    case = args.case or "default"
    outputs = Path(args.outputs).resolve()
    namespace = f"{plan.stem}-{case}-{run_id}"
    env_base = dict(
        os.environ,
        ZOOKEEPER_PEERS=hosts,
        TEST_PLAN=plan.stem,
        TEST_CASE=case,
        TEST_RUN=run_id,
        TEST_INSTANCE_COUNT=str(args.instances),
        TEST_GROUP_ID=group,
        TEST_GROUP_INSTANCE_COUNT=str(args.instances),
        TEST_INSTANCE_PARAMS="|".join(f"{k}={v}" for k, v in params.items()),
        **_tls_environment(args),
    )
    instances: list[Instance] = []
    started = time.monotonic()
    code = 0
    try:
        for n in range(args.instances):
            directory = outputs / run_id / group / str(n)
            directory.mkdir(parents=True, exist_ok=True)
            env = dict(env_base, TEST_OUTPUTS_PATH=str(directory), TEST_INSTANCE_ID=f"{group}-{n}")
            with open(directory / "run.err", "wb") as err:
                process = subprocess.Popen(
                    [sys.executable, str(plan)],
                    env=env,
                    stdout=err,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    start_new_session=True,
                )
            instances.append(Instance(n, directory, process))
        code = _supervise(instances, args, run_id, group, started)
    except KeyboardInterrupt:
        print("\ninterrupted: stopping every instance", file=sys.stderr)
        code = EXIT_INTERRUPTED
    finally:
        for instance in instances:
            instance.kill()
        _delete_tree(admin, f"/zksync-sync/{namespace}")
    if args.collect:
        archive = outputs / f"{run_id}.tgz"
        with tarfile.open(archive, "w:gz") as tar:
            tar.add(outputs / run_id, arcname=run_id)
        print(f"collected {archive}", file=sys.stderr)
    return code


def _supervise(instances: list[Instance], args: argparse.Namespace, run_id: str, group: str, started: float) -> int:
    total = len(instances)
    last = ""
    while True:
        for instance in instances:
            if instance.code is None and instance.process.poll() is not None:
                instance.code = instance.process.returncode
                kinds = instance.events()
                if instance.code != 0 and not ({"success", "failure", "crash"} & set(kinds)):
                    instance.record_crash(f"exited with code {instance.code}", run_id, group)
        done = [i for i in instances if i.code is not None]
        failed = [i for i in done if i.code != 0]
        line = f"instances: {total} started, {len(done) - len(failed)} finished, {len(failed)} failed"
        if line != last:
            print(
                ("\r" if sys.stderr.isatty() else "") + line,
                end="" if sys.stderr.isatty() else "\n",
                file=sys.stderr,
                flush=True,
            )
            last = line
        if len(done) == total:
            break
        if args.timeout is not None and time.monotonic() - started > args.timeout:
            for instance in instances:
                if instance.code is None:
                    instance.kill()
                    instance.code = -1
                    instance.record_crash(f"run timed out after {args.timeout:g}s", run_id, group)
            print(f"\nrun {run_id} timed out after {args.timeout:g}s", file=sys.stderr)
            return EXIT_TIMEOUT
        time.sleep(0.1)
    if sys.stderr.isatty():
        print(file=sys.stderr)
    failed = [i for i in instances if i.code != 0]
    if failed and all("start" not in i.events() for i in instances):
        raise Exit(EXIT_PLAN, f"plan crashed before starting: {_last_line(instances[0].directory / 'run.err')}")
    print(
        f"run {run_id}: {total - len(failed)} of {total} instances succeeded; outputs in "
        f"{instances[0].directory.parent.parent}",
        file=sys.stderr,
    )
    return EXIT_FAILED if failed else 0


def _last_line(path: Path) -> str:
    try:
        lines = [line for line in path.read_text(errors="replace").splitlines() if line.strip()]
    except OSError:
        return "(no output)"
    return lines[-1] if lines else "(no output)"


def _delete_tree(client: KazooClient, path: str) -> None:
    try:
        client.delete(path, recursive=True)
    except Exception:
        pass


# ---- inspect ----------------------------------------------------------------------------------
def _since(ctime_ms: int) -> str:
    return datetime.fromtimestamp(ctime_ms / 1000, timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def cmd_inspect(args: argparse.Namespace) -> int:
    from ._core.barrier import READY, SET_MARKER, _participants, _Round
    from ._core.sequence import distance
    from ._util import check_path

    path = check_path(args.path, "inspect")
    client = _reach(os.environ.get("ZOOKEEPER_PEERS", "").strip() or running_hosts() or "127.0.0.1:2181", args)
    try:
        stat = client.exists(path)
        if stat is None:
            print(f"{path}: does not exist (as a Barrier: not set)")
            return 0
        children = client.get_children(path)
        queue = ordered(children)
        participants = _participants(children)
        if any(not entry.stranger for entry in queue):
            print(f"{path}: lock queue ({len(queue)})")
            for position, entry in enumerate(queue):
                node = client.exists(f"{path}/{entry.name}")
                if node is None:
                    continue
                role = (
                    "holder"
                    if position == 0 or (entry.kind == "read" and all(e.kind == "read" for e in queue[:position]))
                    else "waiting"
                )
                print(
                    f"  {role:7} {entry.kind:5} seq {entry.seq}  session 0x{node.ephemeralOwner:x}  "
                    f"since {_since(node.ctime)}"
                )
        elif participants or READY in children:
            print(f"{path}: double barrier, {len(participants)} participant(s) present")
            for p in participants:
                print(f"  {p.name}")
            if READY in children:
                round_ = _Round.decode(client.get(f"{path}/{READY}")[0])
                if round_ is not None:
                    size = distance(round_.low, round_.high) + 1 - len(round_.excluded)
                    present = sum(1 for p in participants if p.seq in round_)
                    print(f"  round released: {size} members, {size - present} gone")
        elif {"states", "instances", "topics", "joined"} & set(children):
            print(f"{path}: sync run")
            for state in sorted(_children(client, f"{path}/states")):
                print(f"  state {state}: {client.exists(f'{path}/states/{state}').numChildren} signal(s)")
            for topic in sorted(_children(client, f"{path}/topics")):
                print(f"  topic {topic}: {client.exists(f'{path}/topics/{topic}').numChildren} message(s)")
            live = _children(client, f"{path}/instances")
            print(f"  instances present: {len(live)} of {len(_children(client, f'{path}/joined'))} joined")
        elif set(children) == {ROWS, MEMBERS}:
            _describe_collection(client, path)
        elif not children:  # a Barrier is the node itself
            print(f"{path}: no children (as a Barrier: barrier set since {_since(stat.ctime)})")
        elif children == [SET_MARKER]:  # a Barrier in this library's earlier layout
            print(f"{path}: barrier set since {_since(client.exists(f'{path}/{SET_MARKER}').ctime)} (earlier layout)")
        else:
            print(f"{path}: {len(children)} child node(s): {', '.join(sorted(children)[:20])}")
        return 0
    finally:
        client.stop()
        client.close()


def _describe_collection(client: KazooClient, path: str, shown: int = 20) -> None:
    """A Collection: its members, how many keys in how many buckets, the first keys."""
    buckets = _children(client, f"{path}/{ROWS}")
    keys = sorted(
        key for b in buckets for key in map(unescape, _children(client, f"{path}/{ROWS}/{b}")) if key is not None
    )
    members = sorted(_children(client, f"{path}/{MEMBERS}"))
    print(f"{path}: collection, {len(keys)} key(s) in {len(buckets)} bucket(s), {len(members)} member(s)")
    for member in members:
        print(f"  member {member}")
    for key in keys[:shown]:
        print(f"  key {key!r}")
    if len(keys) > shown:
        print(f"  ... and {len(keys) - shown} more")


def _children(client: KazooClient, path: str) -> list[str]:
    try:
        names: list[str] = client.get_children(path)
        return names
    except Exception:
        return []


# ---- lock -------------------------------------------------------------------------------------
def cmd_lock(args: argparse.Namespace) -> int:
    command = list(args.command)
    if not command:
        raise Exit(EXIT_USAGE, "no command given: zksync lock PATH -- COMMAND ...")
    client = _reach(os.environ.get("ZOOKEEPER_PEERS", "").strip() or running_hosts() or "127.0.0.1:2181", args)
    try:
        mutex = RWMutex(client, args.path, naming=args.naming)
        try:
            lease = mutex.rlock(args.timeout) if args.read else mutex.lock(args.timeout)
        except Timeout:
            raise Exit(
                EXIT_LOCK_TIMEOUT, f"could not acquire the lock on {args.path} within {args.timeout:g}s"
            ) from None
        try:
            result = subprocess.run(command)
        except OSError as exc:
            raise Exit(EXIT_USAGE, f"cannot run {command[0]}: {exc.strerror}") from None
        finally:
            lost = lease.lost
            mutex.runlock() if args.read else mutex.unlock()
        if lost:
            print(f"zksync: warning: the lock on {args.path} was lost while the command ran", file=sys.stderr)
        return result.returncode
    finally:
        client.stop()
        client.close()


# ---- main -------------------------------------------------------------------------------------
def _tls_parent() -> argparse.ArgumentParser:
    tls = argparse.ArgumentParser(add_help=False)
    group = tls.add_argument_group("TLS (default: the ZOOKEEPER_TLS_* variables)")
    group.add_argument("--tls-ca", metavar="FILE", help="the CA certificate(s) that verify the members (PEM)")
    group.add_argument("--tls-cert", metavar="FILE", help="this client's certificate (PEM)")
    group.add_argument("--tls-key", metavar="FILE", help="this client's private key (PEM)")
    return tls


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="zksync", description="ZooKeeper coordination from the command line.")
    tls = _tls_parent()
    sub = p.add_subparsers(dest="cmd", required=True)
    ens = sub.add_parser("ensemble", help="a local ZooKeeper ensemble on loopback")
    ens.add_argument("action", choices=["up", "down", "status"])
    ens.add_argument("--size", type=int, default=3)
    ens.set_defaults(func=cmd_ensemble)
    run = sub.add_parser("run", help="run N instances of a test plan", parents=[tls])
    run.add_argument("plan")
    run.add_argument("--instances", "-n", type=int, default=1)
    run.add_argument("--case", default=None)
    run.add_argument("--param", action="append", default=[], metavar="K=V")
    run.add_argument("--collect", action="store_true", help="write <outputs>/<run_id>.tgz")
    run.add_argument("--timeout", type=float, default=None, help="seconds before the run is stopped")
    run.add_argument("--outputs", default="zksync-outputs")
    run.add_argument("--run-id", default=None)
    run.set_defaults(func=cmd_run)
    ins = sub.add_parser("inspect", help="what a recipe looks like right now", parents=[tls])
    ins.add_argument("path")
    ins.set_defaults(func=cmd_inspect)
    lock = sub.add_parser("lock", help="run a command while holding a lock (like flock)", parents=[tls])
    lock.add_argument("path")
    lock.add_argument("--read", action="store_true")
    lock.add_argument(
        "--naming", choices=list(NAMINGS), default="zksync", help="node names another library on the path can see"
    )
    lock.add_argument("--timeout", type=float, default=None)
    lock.add_argument("command", nargs="*", help="after --: the command to run")
    lock.set_defaults(func=cmd_lock)
    return p


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    command: list[str] | None = None
    if argv[:1] == ["lock"] and "--" in argv:  # everything after -- belongs to the command
        cut = argv.index("--")
        argv, command = argv[:cut], argv[cut + 1 :]
    args = parser().parse_args(argv)
    if command is not None:
        args.command = command
    if getattr(args, "size", 3) < 1:
        print("zksync: --size must be >= 1", file=sys.stderr)
        return EXIT_USAGE
    try:
        with translate():  # a kazoo error anywhere (an ACL refusing a read...) is a zksync one
            code: int = args.func(args)
        return code
    except Exit as exc:
        print(f"zksync: {exc}", file=sys.stderr)
        return exc.code
    except InvalidArgument as exc:
        print(f"zksync: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except AccessDenied as exc:
        print(f"zksync: {exc}", file=sys.stderr)
        return EXIT_DENIED
    except (ConnectionLost, Timeout) as exc:
        print(f"zksync: {exc}", file=sys.stderr)
        return EXIT_ENSEMBLE
    except ZkSyncError as exc:
        print(f"zksync: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        print("zksync: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
