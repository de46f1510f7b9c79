"""Testground's leader/follower sync example, as a zksync test plan.

    zksync run examples/leader_follower.py --instances 10

Every instance signals ``enrolled`` and gets a sequence number; number 1 leads.  Followers
signal ``ready`` and wait for ``released``; the leader waits until all followers are ready,
then signals ``released``.  Each instance is its own process with its own ZooKeeper session.
"""

from __future__ import annotations

from zksync import runtime


def plan(env: runtime.RunEnv) -> None:
    sync = env.sync()
    timeout = float(env.param("timeout", "60"))
    followers = env.instance_count - 1
    seq = sync.signal_entry("enrolled", timeout)
    if seq == 1:
        env.record_message(f"seq {seq}: I am the leader; waiting for {followers} followers")
        sync.barrier("ready", followers, timeout)
        sync.signal_entry("released", timeout)
        env.record_message("all followers ready: released")
    else:
        env.record_message(f"seq {seq}: follower; ready")
        sync.signal_and_wait("ready", followers, timeout)
        sync.barrier("released", 1, timeout)
        env.record_message("released by the leader")


if __name__ == "__main__":
    runtime.invoke(plan)
