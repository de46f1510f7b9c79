"""Testground's leader/follower sync example, written with zksync.

    python3 examples/leader_follower.py --instances 10

Every instance signals ``enrolled`` and gets a sequence number; number 1 leads.  Followers
signal ``ready`` and wait for ``released``; the leader waits until all followers are ready,
then signals ``released``.  Each instance is its own process with its own ZooKeeper session,
all in one run (namespace).  Uses ``ZOOKEEPER_PEERS``, or starts a local ensemble.
"""

from __future__ import annotations

import argparse
import multiprocessing
import sys
import uuid

import zksync
from zksync.testing import Ensemble


def instance(hosts: str, run: str, count: int, timeout: float) -> None:
    client = zksync.connect(hosts)
    try:
        sync = zksync.Sync(client, run, instance_count=count)
        seq = sync.signal_entry("enrolled", timeout)
        if seq == 1:
            print(f"[{sync.instance_id}] seq {seq}: I am the leader; waiting for {count - 1} followers", flush=True)
            sync.barrier("ready", count - 1, timeout)
            sync.signal_entry("released", timeout)
            print(f"[{sync.instance_id}] all followers ready: released", flush=True)
        else:
            print(f"[{sync.instance_id}] seq {seq}: follower; ready", flush=True)
            sync.signal_and_wait("ready", count - 1, timeout)
            sync.barrier("released", 1, timeout)
            print(f"[{sync.instance_id}] released by the leader", flush=True)
    finally:
        client.stop()
        client.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--instances", type=int, default=5)
    parser.add_argument("--timeout", type=float, default=60.0)
    args = parser.parse_args()
    if args.instances < 1:
        parser.error("--instances must be >= 1")
    hosts = zksync.default_hosts()
    ensemble = None
    if hosts == "127.0.0.1:2181" and "ZOOKEEPER_PEERS" not in __import__("os").environ:
        ensemble = Ensemble(3).start()
        hosts = ensemble.hosts
    run = f"leader-follower-{uuid.uuid4().hex[:8]}"
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=instance, args=(hosts, run, args.instances, args.timeout))
             for _ in range(args.instances)]
    try:
        for p in procs:
            p.start()
        for p in procs:
            p.join(args.timeout + 30)
        failed = [p.pid for p in procs if p.exitcode != 0]
        if failed:
            print(f"instances failed: {failed}", file=sys.stderr)
            return 1
        client = zksync.connect(hosts)
        zksync.Sync(client, run).cleanup()
        client.stop()
        print(f"{args.instances} instances: one leader, {args.instances - 1} followers, all released")
        return 0
    finally:
        for p in procs:
            if p.is_alive():
                p.kill()
        if ensemble is not None:
            ensemble.stop()


if __name__ == "__main__":
    sys.exit(main())
