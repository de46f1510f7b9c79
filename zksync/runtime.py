"""The plan side of ``zksync run``: Testground's RunEnv, for Python test plans.

A plan is a Python file; ``zksync run PLAN.py --instances N`` starts it N times with
Testground's ``TEST_*`` variables and ``ZOOKEEPER_PEERS`` set.  A plan usually ends with::

    from zksync import runtime

    def plan(env: runtime.RunEnv) -> None:
        sync = env.sync()
        seq = sync.signal_and_wait("ready", env.instance_count, timeout=60)
        env.record_message(f"I am number {seq}")

    if __name__ == "__main__":
        runtime.invoke(plan)

Events go to ``$TEST_OUTPUTS_PATH/run.out`` as JSON lines, as Testground's runners record
them: ``start``, ``message``, ``success``, ``failure`` and ``crash``.
"""

from __future__ import annotations

import json
import os
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from kazoo.client import KazooClient

from .errors import InvalidArgument

ENV_VARS = (
    "TEST_PLAN",
    "TEST_CASE",
    "TEST_RUN",
    "TEST_INSTANCE_COUNT",
    "TEST_GROUP_ID",
    "TEST_GROUP_INSTANCE_COUNT",
    "TEST_INSTANCE_PARAMS",
    "TEST_OUTPUTS_PATH",
    "TEST_INSTANCE_ID",
)


def parse_params(text: str) -> dict[str, str]:
    """``k=v|k2=v2`` (Testground's TEST_INSTANCE_PARAMS) into a dict."""
    params: dict[str, str] = {}
    for item in filter(None, text.split("|")):
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise InvalidArgument(f"test parameter {item!r} is not key=value")
        params[key] = value
    return params


class RunEnv:
    """What one instance knows about its run, and where it records events."""

    def __init__(self, environ: dict[str, str] | None = None) -> None:
        env = dict(os.environ if environ is None else environ)
        self.test_plan = env.get("TEST_PLAN", "plan")
        self.test_case = env.get("TEST_CASE", "default")
        self.test_run = env.get("TEST_RUN", "local")
        self.instance_count = int(env.get("TEST_INSTANCE_COUNT", "1"))
        self.group_id = env.get("TEST_GROUP_ID", "single")
        self.group_instance_count = int(env.get("TEST_GROUP_INSTANCE_COUNT", str(self.instance_count)))
        self.instance_id = env.get("TEST_INSTANCE_ID") or None
        self.params = parse_params(env.get("TEST_INSTANCE_PARAMS", ""))
        self.outputs_path = Path(env.get("TEST_OUTPUTS_PATH", "."))
        self._client: KazooClient | None = None
        self._events = self.outputs_path / "run.out"

    # ---- parameters --------------------------------------------------------------------
    def param(self, name: str, default: str | None = None) -> str:
        if name in self.params:
            return self.params[name]
        if default is None:
            raise InvalidArgument(f"test parameter {name!r} is not set")
        return default

    def int_param(self, name: str, default: int | None = None) -> int:
        return int(self.param(name, None if default is None else str(default)))

    # ---- coordination ------------------------------------------------------------------
    def sync(self) -> Any:
        """A :class:`zksync.Sync` scoped to this run (one client per instance)."""
        from . import Sync, connect

        if self._client is None:
            self._client = connect()
        return Sync.from_env(self._client)

    def close(self) -> None:
        if self._client is not None:
            self._client.stop()
            self._client.close()
            self._client = None

    # ---- events ------------------------------------------------------------------------
    def _record(self, event: str, **fields: Any) -> None:
        entry = {
            "ts": time.time_ns(),
            "event": {"type": event, **fields},
            "group_id": self.group_id,
            "run_id": self.test_run,
        }
        self.outputs_path.mkdir(parents=True, exist_ok=True)
        with open(self._events, "a") as f:
            f.write(json.dumps(entry) + "\n")

    def record_start(self) -> None:
        self._record(
            "start",
            runenv={
                "plan": self.test_plan,
                "case": self.test_case,
                "run": self.test_run,
                "instances": self.instance_count,
                "group": self.group_id,
                "params": self.params,
            },
        )

    def record_message(self, message: str) -> None:
        self._record("message", message=message)
        print(message, flush=True)

    def record_success(self) -> None:
        self._record("success")

    def record_failure(self, error: str) -> None:
        self._record("failure", error=error)

    def record_crash(self, error: str, stacktrace: str = "") -> None:
        self._record("crash", error=error, stacktrace=stacktrace)


def invoke(plan: Callable[[RunEnv], Any]) -> None:
    """Run ``plan(env)`` as one instance: record start, then success, failure (the plan
    raised an exception) or crash (it died otherwise), and exit 0 only on success."""
    env = RunEnv()
    env.record_start()
    code = 0
    try:
        plan(env)
        env.record_success()
    except KeyboardInterrupt:
        env.record_failure("interrupted")
        code = 130
    except Exception as exc:  # the plan's failure, recorded for the runner
        env.record_failure(f"{type(exc).__name__}: {exc}")
        traceback.print_exc()
        code = 1
    except BaseException as exc:
        env.record_crash(f"{type(exc).__name__}: {exc}", traceback.format_exc())
        code = 2
    finally:
        env.close()
    sys.exit(code)
