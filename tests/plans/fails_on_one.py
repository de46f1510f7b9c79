"""Instance 1 (TEST_INSTANCE_ID single-1) fails; the others succeed."""

import os

from zksync import runtime


def plan(env: runtime.RunEnv) -> None:
    env.record_message(f"hello from {os.environ['TEST_INSTANCE_ID']} param={env.param('greeting', 'none')}")
    if os.environ["TEST_INSTANCE_ID"].endswith("-1"):
        raise RuntimeError("instance 1 fails on purpose")


if __name__ == "__main__":
    runtime.invoke(plan)
