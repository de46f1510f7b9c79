"""Requests and watch notifications per participant of one ``signal_and_wait``.

    python3 -m benchmarks.sync_barrier [--participants 100] [--json out.json]

Each participant has its own session (threads of one process); requests are counted by each
client, notifications as they arrive.  Uses ``ZOOKEEPER_PEERS`` or a local 3-node ensemble.
"""

from __future__ import annotations

import argparse
import json
import threading
import time
import uuid

import zksync
from zksync.testing import timing

from .lock_cycle import count_requests, count_watch_events, hosts_to_use


def measure(hosts: str, participants: int) -> dict[str, float]:
    run = f"bench-{uuid.uuid4().hex[:8]}"
    clients = [zksync.connect(hosts) for _ in range(participants)]
    syncs = [zksync.Sync(c, run, instance_id=f"i{k}", instance_count=participants) for k, c in enumerate(clients)]
    for s in syncs:
        s.join()  # presence is set up once per instance, not per barrier: keep it out of the count
    calls = [count_requests(c) for c in clients]
    events = [count_watch_events(c) for c in clients]
    errors: list[BaseException] = []
    start = time.perf_counter()

    def one(s: zksync.Sync) -> None:
        try:
            s.signal_and_wait("ready", participants, 120)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=one, args=(s,)) for s in syncs]
    for t in threads:
        t.start()
    for t in threads:
        t.join(180)
    wall = time.perf_counter() - start
    timing.sleep(0.3)  # let any stray notification arrive
    result = {
        "participants": participants,
        "wall_s": wall,
        "requests_per_participant": sum(len(c) for c in calls) / participants,
        "notifications_per_participant": sum(e[0] for e in events) / participants,
        "errors": len(errors),
    }
    syncs[0].client.delete(f"/zksync-sync/{run}", recursive=True)
    for c in clients:
        c.stop()
        c.close()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--participants", type=int, default=100)
    parser.add_argument("--json")
    args = parser.parse_args()
    with hosts_to_use() as (hosts, _):
        result = measure(hosts, args.participants)
    print(json.dumps(result, indent=2))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)


if __name__ == "__main__":
    main()
