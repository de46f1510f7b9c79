"""Syncbase's fortune-teller tutorial as a zksync test plan: N fortune services share one
collection.

    zksync run examples/fortune.py --instances 5 [--param fortunes=3]

Each service adds its fortunes under keys suffixed with its own name (``fortune<name>-<n>``,
so nobody writes over anybody), bumps the shared count ``numFortunes`` with a compare-and-set
that never loses an update (the tutorial's per-service counts worked around that race), and
answers "get a fortune" from its local replica.  When every service has written, each checks
that its replica holds every fortune of every service and that the count is exact.
"""

from __future__ import annotations

import random

from zksync import Collection, runtime


def plan(env: runtime.RunEnv) -> None:
    sync = env.sync()
    timeout = float(env.param("timeout", "60"))
    mine = int(env.param("fortunes", "3"))
    seq = sync.signal_entry("joined", timeout)
    name = f"service{seq}"
    path = f"/zksync-fortunes/{env.test_run}"
    with Collection(sync.client, path, member=name).open(timeout=timeout) as fortunes:
        for n in range(mine):
            fortunes.put(f"fortune{name}-{n}", f"{name} says: fortune {n} of {mine}")
            fortunes.update("numFortunes", lambda count: count + 1, default=0, timeout=timeout)
        sync.signal_and_wait("written", env.instance_count, timeout)
        fortunes.sync(timeout)  # the replica shows every write made before everybody signalled
        expected = mine * env.instance_count
        if fortunes.get("numFortunes") != expected:
            raise AssertionError(f"{name} counts {fortunes.get('numFortunes')} fortunes, expected {expected}")
        keys = [key for key, _ in fortunes.scan("fortune")]
        if len(keys) != expected:
            raise AssertionError(f"{name} sees {len(keys)} fortunes, expected {expected}")
        key = random.choice(keys)
        env.record_message(f"{name}: {len(keys)} fortunes from {len(fortunes.members())} members; {fortunes.get(key)}")
        sync.signal_and_wait("checked", env.instance_count, timeout)


if __name__ == "__main__":
    runtime.invoke(plan)
