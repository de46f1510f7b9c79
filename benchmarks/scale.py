"""Sync.signal_and_wait and DoubleBarrier at a large N, each beside its harness floor.

    python3 -m benchmarks.scale [--n 10000] [--json out.json]

Uses ``ZOOKEEPER_PEERS`` when set, else starts a local 3-node ensemble.  The participants are
spread over processes of many sessions each (500 for signal_and_wait, 100 for DoubleBarrier,
whose participants each hold a thread while they wait), exactly as the suite's rounds
(:func:`benchmarks.suite.participants_round`): the floor makes only the writes the recipe
cannot avoid, from the same processes and the same common start.  Reported per round: whether
it completed, wall time, server packets and client CPU per participant, and the recipe's wall
time over its floor's.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import zksync

from . import suite

ROUNDS = (  # (floor, recipe, participants per process)
    ("floor-sync", "sync", 500),
    ("floor-db", "zksync-db", 100),
)
FIELDS = ("completed", "wall_s", "server_packets_per_participant", "cpu_ms_per_participant", "processes", "errors")


def run(n: int) -> dict[str, Any]:
    out: dict[str, Any] = {"n": n, "rounds": {}}
    with suite.ensemble_hosts() as (hosts, source):
        out["ensemble"] = source
        client = zksync.connect(hosts, session_timeout=suite.SESSION_TIMEOUT)
        try:
            for floor, recipe, per in ROUNDS:
                for impl in (floor, recipe):
                    suite.step(f"{impl} N={n}")
                    r = suite.participants_round(client, hosts, impl, n, suite.watchdog(n), per)
                    out["rounds"][impl] = {k: r.get(k) for k in FIELDS} | {"per_process": per}
                    out["rounds"][impl]["errors"] = (out["rounds"][impl]["errors"] or [])[:5]
        finally:
            client.stop()
            client.close()
    return out


def ratio(rounds: dict[str, Any], recipe: str, floor: str) -> str:
    a, b = rounds[recipe].get("wall_s"), rounds[floor].get("wall_s")
    return f"{a / b:.2f}x" if a and b else "—"


def markdown(out: dict[str, Any]) -> str:
    lines = [
        f"| round (N={out['n']}) | completed | wall s | vs floor | server packets/participant "
        "| client CPU ms/participant | processes x sessions |",
        "|---|---|---|---|---|---|---|",
    ]
    rounds = out["rounds"]
    for floor, recipe, _ in ROUNDS:
        for impl in (floor, recipe):
            r = rounds[impl]
            completed = "yes" if r["completed"] else "no: " + "; ".join(r["errors"])[:120]
            cells = [
                suite.ROUND_NAMES[impl],
                completed,
                suite.fmt(r.get("wall_s"), 1),
                ratio(rounds, recipe, floor) if impl == recipe else "1.00x",
                suite.fmt(r.get("server_packets_per_participant")),
                suite.fmt(r.get("cpu_ms_per_participant")),
                f"{r['processes']} x {r['per_process']}",
            ]
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=10_000, help="participants per round")
    parser.add_argument("--json", type=Path, help="write the results here as JSON")
    args = parser.parse_args(argv)
    if args.n < 2:
        parser.error("--n must be at least 2")
    out = run(args.n)
    if args.json is not None:
        args.json.write_text(json.dumps(out, indent=2) + "\n")
    sys.stdout.write(markdown(out))
    return 0 if all(r["completed"] for r in out["rounds"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
