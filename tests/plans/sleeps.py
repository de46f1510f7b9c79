"""Signals that it started, then sleeps far longer than any test waits."""

import time

from zksync import runtime


def plan(env: runtime.RunEnv) -> None:
    env.sync().signal_entry("sleeping", 10)
    time.sleep(600)


if __name__ == "__main__":
    runtime.invoke(plan)
