"""A bounded randomized fault run with a recorded, checked history.

    python3 -m zksync.testing.nemesis [--duration 120] [--quiet 20] [--impl zksync|kazoo|both]
                                      [--history DIR] [--seed N]

Several clients per recipe work through Toxiproxy proxies (each client may reach only some
members) while a nemesis mixes faults: partitions, latency, connection resets, member crashes,
the leader killed, frozen members, flapping and quorum loss.  Every operation is recorded as
JSON lines; :func:`zksync.testing.history.check` then looks for unsafe behaviour: overlapping
writers, readers overlapping a writer, writes accepted from a holder that had already lost
the lock (a fenced resource), early barrier releases, calls blocked past their timeout and
orphan nodes.

A run has stages, recorded in the history: ``faults`` (``--duration`` seconds of the fault
schedule), ``healing`` (every fault undone: proxies restored, every member serving), then
``quiet`` (``--quiet`` seconds without faults).  Liveness is judged on the quiet stage: each
recipe (lock, rw lock reads, rw lock writes, barrier, double barrier) must complete an
operation within two session timeouts of its start, else a ``no_progress_after_heal``
violation, which fails the run like a safety violation.  The summary gives each recipe's
successful operations per minute of faults and of quiet.

Keeping the workload in step
    A DoubleBarrier round needs all its members on the same path, so its members must never
    drift apart, whatever failed.  They agree on the round through ZooKeeper: a persistent
    counter node ``/double/round`` holds the current round number, round ``r`` uses the path
    ``/double/r<r>``.  A member reads the counter (after a ``sync``) and joins the round it
    names, unless it already took part in that round (entered, timed out, or left it): then it
    *opens* the next round with a ``setData`` conditioned on the version it read, so that a
    round is opened once however many members try (the others get ``BadVersion``, read again
    and join).  Every member thus leaves each round, by success or failure, for the one the
    counter names, and a member whose client was replaced joins the current round too; no
    member ever enters the same path twice.  The member that opened a round waits for it twice
    as long as the others (``2 * OP_TIMEOUT``): the members still inside the previous round give
    up on it within one ``OP_TIMEOUT``, so they reach the new round before its opener gives
    up, and two groups cannot keep missing each other by a fixed offset.  The lock, rw and
    barrier workloads have nothing to drift from (every acquire, set, unset and wait stands
    alone; a barrier left set by a failed unset is unset on the controller's next cycle); what
    they share with the double barrier is that a worker whose call hung gets a new client (on
    other members, retried until one connects) and that a worker that fails is restarted.

``--impl kazoo`` drives kazoo's own Lock, ReadLock/WriteLock, Barrier and DoubleBarrier through
the same harness (holders learn of a loss from kazoo's LOST state, the documented way; kazoo's
DoubleBarrier takes no timeout, so the harness gives up on it as hung after its wait plus
``SLACK`` and replaces the client); ``--impl both`` runs zksync then kazoo and prints them side
by side.  The exit status is non-zero when a judged run (zksync in ``both`` mode) has a
violation, safety or liveness.

Uses ``ZOOKEEPER_PEERS`` / ``TOXIPROXY`` when set (then faults that need member control are
left out), else starts a local 3-member ensemble and a local toxiproxy-server.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from kazoo.client import KazooClient
from kazoo.exceptions import BadVersionError, NodeExistsError
from kazoo.protocol.states import KazooState

from .. import Barrier, DoubleBarrier, RWMutex, connect
from ..errors import ConnectionLost
from .ensemble import Ensemble
from .history import PROGRESS, PROGRESS_WHAT, Event, Report, check, dump
from .toxi import ProxiedEnsemble, ToxiproxyServer

SESSION_TIMEOUT = 4.0
OP_TIMEOUT = 4.0
SLACK = 5.0  # a call still running this long after its timeout counts as hung
QUIET = 20.0  # default length of the quiet stage, in seconds
LIVENESS_WINDOW = 2 * SESSION_TIMEOUT  # every recipe must make progress this soon after the quiet stage starts
CONNECT_TIMEOUT = 10.0  # a new client that cannot connect this soon is tried on other members
ROUND_NODE = "round"  # the DoubleBarrier workload's round counter, under its base path


class Hung(Exception):
    pass


class Recorder:
    def __init__(self) -> None:
        self.t0 = time.monotonic()
        self.events: list[Event] = []
        self._lock = threading.Lock()

    def __call__(self, proc: str, recipe: str, type_: str, **fields: Any) -> None:
        event = {"t": round(time.monotonic() - self.t0, 4), "proc": proc, "recipe": recipe, "type": type_}
        event.update(fields)
        with self._lock:
            self.events.append(event)


def bounded(call: Callable[[], Any], limit: float) -> Any:
    """Run ``call`` in a helper thread; raise Hung if it is still running after ``limit``."""
    box: dict[str, Any] = {}

    def run() -> None:
        try:
            box["value"] = call()
        except BaseException as exc:
            box["error"] = exc

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(limit)
    if thread.is_alive():
        raise Hung()
    if "error" in box:
        raise box["error"]
    return box.get("value")


class FencedResource:
    """Accepts a write only with a token at least as high as any it has seen."""

    def __init__(self) -> None:
        self.highest = -1
        self._lock = threading.Lock()

    def write(self, token: int) -> bool:
        with self._lock:
            if token < self.highest:
                return False
            self.highest = token
            return True


# ---- the recipes under test, behind one small interface -------------------------------------
class LockDriver:
    """acquire(mode, timeout) -> token; lost() -> bool; release()."""

    def __init__(self, impl: str, client: KazooClient, path: str, on_lost: Callable[[int], None]) -> None:
        self.impl, self.client, self.path, self.on_lost = impl, client, path, on_lost
        self.mutex = RWMutex(client, path) if impl == "zksync" else None
        self.kazoo_lock: Any = None
        self.token: int | None = None
        self._lost = False
        if impl == "kazoo":
            client.add_listener(self._kazoo_state)

    def _kazoo_state(self, state: str) -> None:
        if state == KazooState.LOST and self.token is not None and not self._lost:
            self._lost = True
            self.on_lost(self.token)

    def acquire(self, mode: str, timeout: float) -> int:
        self._lost = False
        if self.mutex is not None:
            lease = self.mutex.lock(timeout) if mode == "write" else self.mutex.rlock(timeout)
            lease.add_lost_callback(lambda lease: self.on_lost(lease.fencing_token))
            self.token = lease.fencing_token
            return lease.fencing_token
        kind = {"write": self.client.WriteLock, "read": self.client.ReadLock, "exclusive": self.client.Lock}[mode]
        lock = kind(self.path)
        lock.acquire(timeout=timeout)
        self.kazoo_lock = lock
        stat = self.client.exists(f"{self.path}/{lock.node}")
        if stat is None:
            raise RuntimeError("kazoo lock node vanished right after acquire")
        self.token = stat.czxid
        return int(stat.czxid)

    def lost(self) -> bool:
        if self.mutex is not None:
            lease = self.mutex.lease
            return lease is None or lease.lost
        return self._lost

    def release(self, mode: str) -> None:
        try:
            if self.mutex is not None:
                self.mutex.unlock() if mode == "write" else self.mutex.runlock()
            elif self.kazoo_lock is not None:
                self.kazoo_lock.release()
        finally:
            self.token = None
            self.kazoo_lock = None


# ---- the run --------------------------------------------------------------------------------
class Run:
    def __init__(
        self,
        impl: str,
        proxied: ProxiedEnsemble,
        ensemble: Ensemble | None,
        root: str,
        duration: float,
        rng: random.Random,
        verbose: bool = False,
        quiet: float = QUIET,
    ) -> None:
        self.impl = impl
        self.proxied = proxied
        self.ensemble = ensemble
        self.root = root
        self.duration = duration
        self.quiet_seconds = quiet
        self.rng = rng  # the workers' choices
        self.fault_rng = random.Random(rng.random())  # the fault schedule: the same for every implementation
        self.verbose = verbose
        self.record = Recorder()
        self.stop = threading.Event()  # the workers stop
        self.faults_over = threading.Event()  # the fault schedule is over: no new fault
        self.quiet = threading.Event()  # the quiet stage has started
        self.clients: list[KazooClient] = []
        self._clients_lock = threading.Lock()
        self.member_sets = self._member_sets()
        self._next_set = 0

    def _member_sets(self) -> list[tuple[int, ...]]:
        n = self.proxied.size
        singles = [(m,) for m in range(1, n + 1)]
        pairs = [(m, m % n + 1) for m in range(1, n + 1)]
        return singles + pairs + [tuple(range(1, n + 1))]

    def client(self, proc: str) -> KazooClient:
        """A new client of ``proc`` through the next set of members; a set that cannot be reached
        within CONNECT_TIMEOUT is given up for the next one, until one connects."""
        while True:
            with self._clients_lock:
                members = self.member_sets[self._next_set % len(self.member_sets)]
                self._next_set += 1
            hosts = self.proxied.hosts_of(*members) + self.root
            try:  # connect's reconnection pause (RECONNECT_MAX_DELAY) keeps the quiet stage from timing backoff
                client = connect(
                    hosts,
                    timeout=CONNECT_TIMEOUT,
                    session_timeout=SESSION_TIMEOUT,
                    randomize_hosts=False,
                )
                break
            except ConnectionLost:
                self.record(proc, "session", "connect_failed", members=list(members))
                if self.stop.is_set():
                    raise

        def state(s: str) -> None:
            if s == KazooState.LOST:
                self.record(proc, "session", "lost")

        client.add_listener(state)
        with self._clients_lock:
            self.clients.append(client)
        return client

    def op(
        self,
        proc: str,
        recipe: str,
        type_: str,
        call: Callable[[], Any],
        timeout: float | None,
        patience: float = OP_TIMEOUT,
        **fields: Any,
    ) -> Any:
        """Record invoke / ok / fail around ``call``; Hung propagates after a hang event.  A call
        without a timeout (kazoo's DoubleBarrier) is given ``patience`` seconds instead."""
        self.record(proc, recipe, type_, phase="invoke", timeout=timeout, **fields)
        try:
            value = bounded(call, (timeout if timeout is not None else patience) + SLACK)
        except Hung:
            self.record(proc, recipe, "hang", op=f"{recipe}.{type_}", **fields)
            raise
        except Exception as exc:
            self.record(proc, recipe, type_, phase="fail", error=type(exc).__name__, **fields)
            raise
        self.record(proc, recipe, type_, phase="ok", **fields)
        return value

    # ---- workers -----------------------------------------------------------------------
    def lock_worker(self, proc: str, workload: str, path: str, modes: list[str], resource: FencedResource) -> None:
        client = self.client(proc)
        driver = self._lock_driver(proc, client, path)
        while not self.stop.is_set():
            mode = self.rng.choice(modes)
            kind = "write" if mode in ("write", "exclusive") else "read"
            try:
                token = self._acquire(proc, driver, workload, path, mode, kind)
            except Hung:
                client = self._replace(proc, client)
                driver = self._lock_driver(proc, client, path)
                continue
            except Exception:
                time.sleep(0.05)
                continue
            # most holds are short; one in ten lasts seconds, writing all along, so that faults
            # catch holders in the act; there is no fault left to catch once quiet, so a long
            # hold ends there (the liveness check then times the recipe, not this hold)
            long_hold = self.rng.random() < 0.1 and not self.quiet.is_set()
            writes = self.rng.randint(40, 120) if long_hold else self.rng.randint(1, 3)
            for _ in range(writes if kind == "write" else 1):
                if driver.lost():  # a holder that was told stops writing
                    break
                if long_hold and self.quiet.is_set():
                    break
                if kind == "write":
                    accepted = resource.write(token)
                    self.record(proc, "lock", "write", path=path, token=token, accepted=accepted)
                time.sleep(self.rng.uniform(0.02, 0.08))
            self.record(proc, "lock", "release", phase="invoke", path=path, token=token)
            try:
                bounded(lambda: driver.release(mode), 10 + SLACK)
                self.record(proc, "lock", "release", phase="ok", path=path, token=token)
            except Hung:
                self.record(proc, "lock", "hang", op="lock.release", path=path)
                client = self._replace(proc, client)
                driver = self._lock_driver(proc, client, path)
            except Exception as exc:
                self.record(proc, "lock", "release", phase="fail", path=path, error=type(exc).__name__)
            time.sleep(self.rng.uniform(0, 0.03))

    def _lock_driver(self, proc: str, client: KazooClient, path: str) -> LockDriver:
        return LockDriver(
            self.impl, client, path, lambda token: self.record(proc, "lock", "lost", path=path, token=token)
        )

    def _acquire(self, proc: str, driver: LockDriver, workload: str, path: str, mode: str, kind: str) -> int:
        fields = {"path": path, "mode": kind, "workload": workload}
        self.record(proc, "lock", "acquire", phase="invoke", timeout=OP_TIMEOUT, **fields)
        try:
            token = int(bounded(lambda: driver.acquire(mode, OP_TIMEOUT), OP_TIMEOUT + SLACK))
        except Hung:
            self.record(proc, "lock", "hang", op="lock.acquire", path=path)
            raise
        except Exception as exc:
            self.record(proc, "lock", "acquire", phase="fail", error=type(exc).__name__, **fields)
            raise
        self.record(proc, "lock", "acquire", phase="ok", token=token, **fields)
        return token

    def _replace(self, proc: str, client: KazooClient) -> KazooClient:
        threading.Thread(target=_close_quietly, args=(client,), daemon=True).start()
        return self.client(proc)

    def barrier_controller(self, proc: str, path: str) -> None:
        client = self.client(proc)
        while not self.stop.is_set():
            barrier: Any = Barrier(client, path) if self.impl == "zksync" else client.Barrier(path)
            setter = barrier.set if self.impl == "zksync" else barrier.create
            unsetter = barrier.unset if self.impl == "zksync" else barrier.remove
            try:
                self.op(proc, "barrier", "set", setter, OP_TIMEOUT, path=path)
                time.sleep(self.rng.uniform(0.2, 1.5))
                self.op(proc, "barrier", "unset", unsetter, OP_TIMEOUT, path=path)
            except Hung:
                client = self._replace(proc, client)
            except Exception:
                time.sleep(0.1)
            time.sleep(self.rng.uniform(0.1, 0.4))

    def barrier_waiter(self, proc: str, path: str) -> None:
        client = self.client(proc)
        while not self.stop.is_set():
            if self.impl == "zksync":
                zbarrier = Barrier(client, path)

                def wait() -> None:
                    zbarrier.wait(3.0)
            else:
                kbarrier = client.Barrier(path)

                def wait() -> None:
                    if not kbarrier.wait(3.0):
                        raise TimeoutError("kazoo Barrier.wait timed out")

            try:
                self.op(proc, "barrier", "wait", wait, 3.0, path=path)
            except Hung:
                client = self._replace(proc, client)
            except Exception:
                pass
            time.sleep(self.rng.uniform(0.0, 0.2))

    def double_worker(self, proc: str, base: str, participants: int) -> None:
        """Rounds of enter / exit, on the round the shared counter names (see the module docstring)."""
        client = self.client(proc)
        counter = f"{base}/{ROUND_NODE}"
        last = -1  # the last round this member took part in
        while not self.stop.is_set():
            try:
                joined = self._next_round(proc, client, counter, last)
            except Hung:  # the client cannot reach the ensemble: another one, through other members
                client = self._replace(proc, client)
                continue
            except Exception:
                time.sleep(0.1)
                continue
            if joined is None:
                continue  # somebody else opened the next round: read the counter again
            round_, opened = joined
            last = round_
            path = f"{base}/r{round_:05d}"
            wait = 2 * OP_TIMEOUT if opened else OP_TIMEOUT
            if self.impl == "zksync":
                zdb = DoubleBarrier(client, path, participants, identifier=proc)
                enter: Callable[[], None] = lambda: zdb.enter(wait)  # noqa: E731
                leave: Callable[[], None] = lambda: zdb.exit(OP_TIMEOUT)  # noqa: E731
                enter_timeout: float | None = wait
                exit_timeout: float | None = OP_TIMEOUT
            else:
                kdb = client.DoubleBarrier(path, participants, identifier=proc)

                def enter() -> None:
                    kdb.enter()
                    if not kdb.participating:  # kazoo swallows the error and returns
                        raise RuntimeError("kazoo DoubleBarrier.enter gave up")

                leave, enter_timeout, exit_timeout = kdb.leave, None, None  # kazoo's take no timeout
            try:
                self.op(proc, "double", "enter", enter, enter_timeout, patience=wait, path=path, round=round_)
            except Hung:
                client = self._replace(proc, client)
                continue
            except Exception:
                continue
            time.sleep(self.rng.uniform(0.02, 0.2))
            try:
                self.op(proc, "double", "exit", leave, exit_timeout, path=path, round=round_)
            except Hung:
                client = self._replace(proc, client)
            except Exception:
                pass

    def _next_round(self, proc: str, client: KazooClient, counter: str, last: int) -> tuple[int, bool] | None:
        """The round to join after ``last`` and whether we opened it; None when another member
        opened the next round first (read again).  Raises Hung when the client cannot answer."""

        def read() -> tuple[int, int]:
            client.sync(counter)
            data, stat = client.get(counter)
            return int(data.decode()), stat.version

        current, version = bounded(read, OP_TIMEOUT)
        if current > last:
            return current, False
        if current < last:  # cannot happen after a sync; never go back to a round already used
            raise RuntimeError(f"round counter {current} behind our last round {last}")

        def open_next() -> bool:
            try:
                client.set(counter, str(last + 1).encode(), version=version)
                return True
            except BadVersionError:
                return False

        if not bounded(open_next, OP_TIMEOUT):
            return None
        self.record(proc, "double", "open", round=last + 1)
        return last + 1, True

    # ---- the nemesis -------------------------------------------------------------------
    def faults(self) -> list[tuple[str, float]]:
        kinds = [("partition", 3.0), ("latency", 2.0), ("reset", 2.0), ("flap", 1.5)]
        if self.ensemble is not None:
            kinds += [("crash", 1.5), ("kill_leader", 1.0), ("pause", 1.0), ("quorum_loss", 0.5)]
        return kinds

    def nemesis(self) -> None:
        kinds = self.faults()
        names = [k for k, _ in kinds]
        weights = [w for _, w in kinds]
        n = self.proxied.size
        while not self.faults_over.is_set():
            if self.faults_over.wait(self.fault_rng.uniform(1.0, 3.0)):
                break
            kind = self.fault_rng.choices(names, weights)[0]
            member = self.fault_rng.randint(1, n)
            target: Any = member
            if kind == "kill_leader" and self.ensemble is not None:
                with contextlib.suppress(Exception):
                    target = self.ensemble.leader() + 1
            if kind == "quorum_loss":
                target = self.fault_rng.sample(range(1, n + 1), n // 2 + (1 if n % 2 else 0))
            self.record("nemesis", "nemesis", "fault", phase="start", kind=kind, target=target)
            if self.verbose:
                print(f"[nemesis {self.impl}] {kind} {target}", file=sys.stderr)
            try:
                self._inflict(kind, target)
            except Exception as exc:
                self.record("nemesis", "nemesis", "fault_error", kind=kind, error=repr(exc))
            self.record("nemesis", "nemesis", "fault", phase="end", kind=kind, target=target)

    def _inflict(self, kind: str, target: Any) -> None:
        p, e, r = self.proxied, self.ensemble, self.fault_rng
        if kind == "partition":  # half of them shorter than the session timeout, half longer
            with p.cut(target):
                time.sleep(r.uniform(1.0, 3.0) if r.random() < 0.5 else r.uniform(5.0, 9.0))
        elif kind == "latency":
            p.latency(target, r.choice([100, 300, 800, 2000]), jitter=50)
            time.sleep(r.uniform(3.0, 8.0))
            p.heal()
        elif kind == "reset":
            p.reset(target)
            time.sleep(r.uniform(0.5, 2.0))
            p.heal()
        elif kind == "flap":
            for _ in range(5):
                with p.cut(target):
                    time.sleep(0.3)
                time.sleep(0.3)
        elif e is not None and kind in ("crash", "kill_leader"):
            e.kill(target - 1)
            time.sleep(r.uniform(2.0, 5.0))
            e.start_member(target - 1, wait=False)
        elif e is not None and kind == "pause":
            e.pause(target - 1)
            time.sleep(r.uniform(1.0, 6.0))
            e.resume(target - 1)
        elif e is not None and kind == "quorum_loss":
            for m in target:
                e.kill(m - 1)
            time.sleep(r.uniform(3.0, 6.0))
            for m in target:
                e.start_member(m - 1, wait=False)

    # ---- orchestration -----------------------------------------------------------------
    def execute(self) -> list[Event]:
        lock_resource, rw_resource = FencedResource(), FencedResource()
        workers: list[tuple[str, Callable[..., None], tuple[Any, ...]]] = []
        exclusive = ["write"] if self.impl == "zksync" else ["exclusive"]
        for i in range(3):
            workers.append((f"lock{i}", self.lock_worker, ("lock", "/lock", exclusive, lock_resource)))
        for i in range(3):
            workers.append((f"rw{i}", self.lock_worker, ("rw", "/rw", ["read", "read", "write"], rw_resource)))
        workers.append(("bctl", self.barrier_controller, ("/barrier",)))
        for i in range(2):
            workers.append((f"bwait{i}", self.barrier_waiter, ("/barrier",)))
        for i in range(3):
            workers.append((f"db{i}", self.double_worker, ("/double", 3)))
        self._setup("/double")
        threads = [
            threading.Thread(target=self._supervise, args=(name, fn, args), name=name, daemon=True)
            for name, fn, args in workers
        ]
        self.stage("faults")
        for thread in threads:
            thread.start()
        nemesis = threading.Thread(target=self.nemesis, daemon=True)
        nemesis.start()
        time.sleep(self.duration)
        self.faults_over.set()
        self.stage("healing")
        nemesis.join(30)
        self._restore()
        self.quiet.set()
        self.stage("quiet", within=LIVENESS_WINDOW, expect=list(PROGRESS))
        time.sleep(self.quiet_seconds)
        self.stage("stopping")
        self.stop.set()
        for thread in threads:
            thread.join(3 * OP_TIMEOUT + 2 * SLACK + 15)  # an opener's enter, then an exit
            if thread.is_alive():
                self.record(thread.name, "worker", "hang", op="worker did not stop")
        self._orphans()
        for client in self.clients:
            threading.Thread(target=_close_quietly, args=(client,), daemon=True).start()
        return self.record.events

    def stage(self, name: str, **fields: Any) -> None:
        self.record("nemesis", "run", "stage", stage=name, **fields)
        if self.verbose:
            print(f"[nemesis {self.impl}] stage {name}", file=sys.stderr)

    def _supervise(self, proc: str, worker: Callable[..., None], args: tuple[Any, ...]) -> None:
        """Run a worker until the run stops; one that fails is recorded and started again."""
        while not self.stop.is_set():
            try:
                worker(proc, *args)
                return
            except Exception as exc:
                if self.stop.is_set():
                    return
                self.record(proc, "worker", "restart", error=f"{type(exc).__name__}: {exc}")
                time.sleep(0.5)

    def _setup(self, double_base: str) -> None:
        admin = connect(self.proxied.hosts + self.root, timeout=60)
        try:
            admin.ensure_path(double_base)
            with contextlib.suppress(NodeExistsError):
                admin.create(f"{double_base}/{ROUND_NODE}", b"0")
        finally:
            _close_quietly(admin)

    def _restore(self) -> None:
        """Undo every fault: proxies healed, every member running and serving."""
        self.proxied.heal()
        if self.ensemble is not None:
            for index in range(self.ensemble.size):
                self.ensemble.resume(index)
                self.ensemble.start_member(index, wait=False)
            self.ensemble.wait_ready(120)
            for index in range(self.ensemble.size):
                self.ensemble.wait_member(index, 120)

    def _orphans(self) -> None:
        """Ephemeral nodes still there once every worker is idle (given time for deferred
        deletions after the faults healed)."""
        admin = connect(self.proxied.hosts + self.root, timeout=60)
        try:
            deadline = time.monotonic() + 15
            found = self._ephemerals(admin)
            while found and time.monotonic() < deadline:
                time.sleep(0.5)
                found = self._ephemerals(admin)
            self.record("checker", "end", "orphans", paths=sorted(found))
        finally:
            _close_quietly(admin)

    def _ephemerals(self, admin: KazooClient) -> list[str]:
        live = {c.client_id[0] for c in self.clients if c.client_id and c.connected}
        found = []
        for path in _walk(admin, "/"):
            stat = admin.exists(path)
            if stat is not None and stat.ephemeralOwner and stat.ephemeralOwner in live:
                found.append(path)
        return found


def _walk(client: KazooClient, path: str) -> Iterator[str]:
    for child in client.get_children(path):
        full = f"{path.rstrip('/')}/{child}"
        yield full
        yield from _walk(client, full)


def _close_quietly(client: KazooClient) -> None:
    with contextlib.suppress(Exception):
        client.stop()
        client.close()


@contextlib.contextmanager
def environment() -> Iterator[tuple[ProxiedEnsemble, Ensemble | None]]:
    peers = os.environ.get("ZOOKEEPER_PEERS", "").strip()
    api = os.environ.get("TOXIPROXY", "").strip()
    with contextlib.ExitStack() as stack:
        ensemble: Ensemble | None = None
        if not peers:
            ensemble = stack.enter_context(Ensemble(3))
            peers = ensemble.hosts
        if not api:
            api = stack.enter_context(ToxiproxyServer()).api
            proxied = ProxiedEnsemble(api, peers.split(","))
        else:
            proxied = ProxiedEnsemble(api, None if os.environ.get("ZOOKEEPER_PEERS") else peers.split(","))
        try:
            yield proxied, ensemble
        finally:
            proxied.close(destroy=not os.environ.get("TOXIPROXY"))


def table(reports: dict[str, Report]) -> str:
    names = list(reports)
    values = list(reports.values())

    def rate(r: Report, stage: str, label: str) -> str:
        return f"{r.per_minute(stage)[label]:.1f}" if stage in r.stages else "-"

    def recovered(r: Report, label: str) -> str:
        seconds = r.recovery.get(label)
        return "never" if seconds is None else f"{seconds:.2f}"

    rows: list[tuple[str, list[Any]]] = [
        ("operations", [sum(r.operations.values()) for r in values]),
        ("faults", [sum(r.faults.values()) for r in values]),
    ]
    kinds = sorted({k for r in values for k in r.faults})
    rows += [(f"  fault {k}", [r.faults.get(k, 0) for r in values]) for k in kinds]
    ok_ops = sorted({k for r in values for k in r.operations})
    rows += [(f"  {k}", [r.operations.get(k, 0) for r in values]) for k in ok_ops]
    for stage in ("faults", "quiet"):
        rows.append((f"per minute of {stage} (s)", [f"{r.seconds(stage):.0f}" for r in values]))
        rows += [(f"  {PROGRESS_WHAT[label]}", [rate(r, stage, label) for r in values]) for label in PROGRESS]
    rows.append(("first success after heal (s)", ["" for _ in values]))
    rows += [(f"  {PROGRESS_WHAT[label]}", [recovered(r, label) for r in values]) for label in PROGRESS]
    rows.append(("violations: safety", [r.safety_violations for r in values]))
    rows.append(("violations: liveness", [r.liveness_violations for r in values]))
    violation_kinds = list(dict.fromkeys(k for r in values for k in r.violations))
    rows += [(f"  {kind}", [len(r.violations.get(kind, [])) for r in values]) for kind in violation_kinds]
    width = max(len(label) for label, _ in rows)
    out = [
        f"| {'':{width}} | " + " | ".join(f"{n:>8}" for n in names) + " |",
        f"|{'-' * (width + 2)}|" + "|".join("-" * 10 for _ in names) + "|",
    ]
    out += [f"| {label:{width}} | " + " | ".join(f"{v:>8}" for v in cells) + " |" for label, cells in rows]
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=float, default=120.0, help="seconds of faults per implementation")
    parser.add_argument(
        "--quiet",
        type=float,
        default=QUIET,
        help=f"seconds of the quiet stage after the faults are healed (at least {LIVENESS_WINDOW:g})",
    )
    parser.add_argument("--impl", choices=["zksync", "kazoo", "both"], default="zksync")
    parser.add_argument("--history", default=None, help="folder for the JSON-lines histories")
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--verbose", action="store_true")
    args = parser.parse_args(argv)
    if args.duration <= 0:
        parser.error("--duration must be > 0")
    if args.quiet < LIVENESS_WINDOW:
        parser.error(f"--quiet must be at least {LIVENESS_WINDOW:g} (the liveness window)")
    seed = args.seed if args.seed is not None else random.randrange(1 << 30)
    impls = ["zksync", "kazoo"] if args.impl == "both" else [args.impl]
    judged = ["zksync"] if args.impl == "both" else impls
    reports: dict[str, Report] = {}
    print(
        f"nemesis: {', '.join(impls)} for {args.duration:.0f}s of faults then {args.quiet:.0f}s quiet each, "
        f"seed {seed}",
        flush=True,
    )
    with environment() as (proxied, ensemble):
        for impl in impls:
            root = f"/zksync-nemesis/{impl}-{uuid.uuid4().hex[:8]}"
            admin = connect(proxied.hosts, timeout=60)
            admin.ensure_path(root)
            _close_quietly(admin)
            run = Run(impl, proxied, ensemble, root, args.duration, random.Random(seed), args.verbose, args.quiet)
            events = run.execute()
            if args.history:
                Path(args.history).mkdir(parents=True, exist_ok=True)
                dump(events, Path(args.history) / f"{impl}.jsonl")
            reports[impl] = check(events, slack=SLACK)
            print(reports[impl].summary(impl), flush=True)
    if len(reports) > 1:
        print(table(reports))
    summary = {
        impl: {
            "operations": sum(r.operations.values()),
            "faults": dict(r.faults),
            "violations": r.counts(),
            "safety_violations": r.safety_violations,
            "liveness_violations": r.liveness_violations,
            "per_minute": {
                stage: {k: round(v, 1) for k, v in r.per_minute(stage).items()} for stage in ("faults", "quiet")
            },
            "first_success_after_heal": r.recovery,
        }
        for impl, r in reports.items()
    }
    print("summary: " + json.dumps(summary, sort_keys=True))
    return 1 if any(not reports[i].ok for i in judged) else 0


if __name__ == "__main__":
    sys.exit(main())
