"""TLS against plaintext, on the very same servers, in one run.

    python3 -m benchmarks.tls [--cycles 1000] [--duration 30] [--blocks 3] [--json out.json]

Starts a local 3-member ensemble whose members serve mutual TLS on their secure client port
and plaintext on a second port, through one Netty connection factory (``Ensemble(tls=True,
plaintext_too=True)``), so that the two transports differ in TLS alone.  Measures, in
alternating blocks:

* the uncontended write-lock cycle (acquire + release of ``zksync.RWMutex``) of one client per
  transport in this process: latency per cycle (median, p90), client CPU per cycle, requests
  per cycle;
* the contended write lock, 8 client processes on one path (the suite's lock round): throughput,
  requests per acquisition, client CPU per acquisition.

The ratios (TLS / plaintext) and the requests (which TLS must not change) go to a markdown table.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import zksync
from zksync.testing import Ensemble

from .lock_cycle import count_requests
from .suite import lock_round

ROOT = "/zksync-bench-tls"
TRANSPORTS = ("plaintext", "tls")
Result = dict[str, Any]


@contextlib.contextmanager
def environment(values: dict[str, str]) -> Iterator[None]:
    """``values`` in os.environ for the block (the lock round's worker processes inherit it)."""
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def uncontended(hosts: dict[str, str], tls_files: dict[str, Any], cycles: int, block: int) -> Result:
    clients = {
        "plaintext": zksync.connect(hosts["plaintext"], session_timeout=30),
        "tls": zksync.connect(hosts["tls"], session_timeout=30, **tls_files),
    }
    try:
        mutexes = {t: zksync.RWMutex(clients[t], f"{ROOT}/uncontended-{t}") for t in TRANSPORTS}
        for _ in range(50):  # warm up both
            for mutex in mutexes.values():
                mutex.lock(10)
                mutex.unlock()
        calls = {t: count_requests(clients[t]) for t in TRANSPORTS}
        samples: dict[str, list[float]] = {t: [] for t in TRANSPORTS}
        cpu = dict.fromkeys(TRANSPORTS, 0.0)
        for _ in range(max(1, cycles // block)):
            for transport in TRANSPORTS:
                mutex = mutexes[transport]
                started_cpu = time.process_time()
                for _ in range(block):
                    start = time.perf_counter()
                    mutex.lock(10)
                    mutex.unlock()
                    samples[transport].append(time.perf_counter() - start)
                cpu[transport] += time.process_time() - started_cpu
        out: Result = {}
        for transport in TRANSPORTS:
            done = len(samples[transport])
            ordered = sorted(samples[transport])
            out[transport] = {
                "cycles": done,
                "median_ms": statistics.median(ordered) * 1000,
                "p90_ms": ordered[int(0.9 * (done - 1))] * 1000,
                "cpu_ms_per_cycle": cpu[transport] * 1000 / done,
                "requests_per_cycle": len(calls[transport]) / done,
            }
        return out
    finally:
        for client in clients.values():
            client.stop()
            client.close()


def contended(hosts: dict[str, str], tls_env: dict[str, str], duration: float, blocks: int) -> Result:
    parts: dict[str, list[Result]] = {t: [] for t in TRANSPORTS}
    for _ in range(blocks):
        for transport in TRANSPORTS:
            env = tls_env if transport == "tls" else dict.fromkeys(tls_env, "")
            with environment(env):
                parts[transport].append(
                    lock_round(
                        hosts[transport], ROOT, "zksync", f"contended-{transport}", ["write"] * 8, duration / blocks
                    )
                )
    out: Result = {}
    for transport, rounds in parts.items():
        elapsed = sum(r["duration_s"] for r in rounds)
        acquisitions = sum(r["acquisitions"] for r in rounds)
        requests = sum((r["requests_per_acquisition_client"] or 0) * r["acquisitions"] for r in rounds)
        out[transport] = {
            "clients": 8,
            "duration_s": elapsed,
            "acquisitions": acquisitions,
            "acquisitions_per_s": acquisitions / elapsed if elapsed else 0.0,
            "acquisitions_per_s_blocks": [r["acquisitions_per_s"] for r in rounds],
            "requests_per_acquisition": requests / acquisitions if acquisitions else None,
            "cpu_ms_per_acquisition": sum(r["cpu_s"] for r in rounds) * 1000 / acquisitions if acquisitions else None,
            "errors": [e for r in rounds for e in r["errors"]],
        }
    return out


def run(cycles: int, duration: float, blocks: int) -> Result:
    with Ensemble(size=3, tls=True, plaintext_too=True) as ensemble:
        files = ensemble.client_credentials("bench")
        tls_files: dict[str, Any] = dict(files.kazoo_options())
        tls_env = {
            "ZOOKEEPER_TLS_CA": str(files.ca),
            "ZOOKEEPER_TLS_CERT": str(files.cert),
            "ZOOKEEPER_TLS_KEY": str(files.key),
        }
        hosts = {"plaintext": ensemble.plain_hosts, "tls": ensemble.hosts}
        started = time.time()
        return {
            "started": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(started)),
            "ensemble": "3 members on loopback, one Netty factory serving TLS and plaintext",
            "uncontended": uncontended(hosts, tls_files, cycles, block=100),
            "contended": contended(hosts, tls_env, duration, blocks),
            "wall_s": time.time() - started,
        }


def ratio(a: float | None, b: float | None) -> str:
    return f"{a / b:.2f}x" if a is not None and b else "n/a"


def markdown(out: Result) -> str:
    u, c = out["uncontended"], out["contended"]
    lines = [
        f"# TLS against plaintext ({out['started']} UTC)",
        "",
        f"{out['ensemble']}; `python3 -m benchmarks.tls`, {out['wall_s']:.0f} s.",
        "",
        "## Uncontended write-lock cycle (one client per transport, alternating blocks of 100)",
        "",
        "| | plaintext | TLS | TLS / plaintext |",
        "|---|---|---|---|",
    ]
    for key, label in (
        ("median_ms", "latency median (ms)"),
        ("p90_ms", "latency p90 (ms)"),
        ("cpu_ms_per_cycle", "client CPU per cycle (ms)"),
        ("requests_per_cycle", "requests per cycle"),
    ):
        a, b = u["plaintext"][key], u["tls"][key]
        lines.append(f"| {label} | {a:.3f} | {b:.3f} | {ratio(b, a)} |")
    lines += [
        "",
        "## Contended write lock (8 client processes, one path, alternating blocks)",
        "",
        "| | plaintext | TLS | TLS / plaintext |",
        "|---|---|---|---|",
    ]
    for key, label in (
        ("acquisitions_per_s", "acquisitions/s"),
        ("requests_per_acquisition", "requests per acquisition"),
        ("cpu_ms_per_acquisition", "client CPU per acquisition (ms)"),
    ):
        a, b = c["plaintext"][key], c["tls"][key]
        lines.append(f"| {label} | {a:.2f} | {b:.2f} | {ratio(b, a)} |")
    blocks = " / ".join(f"{x:.0f}" for x in c["plaintext"]["acquisitions_per_s_blocks"])
    tls_blocks = " / ".join(f"{x:.0f}" for x in c["tls"]["acquisitions_per_s_blocks"])
    lines += ["", f"Blocks (acquisitions/s): plaintext {blocks}; TLS {tls_blocks}."]
    errors = c["plaintext"]["errors"] + c["tls"]["errors"]
    if errors:
        lines += ["", f"Errors: {errors[:5]}"]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cycles", type=int, default=1000, help="uncontended cycles per transport")
    parser.add_argument("--duration", type=float, default=30.0, help="seconds of contended rounds per transport")
    parser.add_argument("--blocks", type=int, default=3, help="alternating blocks the contended time is cut into")
    parser.add_argument("--json", type=Path, help="write the results here as JSON")
    args = parser.parse_args(argv)
    if args.cycles < 100 or args.duration <= 0 or args.blocks < 1:
        parser.error("--cycles must be >= 100, --duration > 0, --blocks >= 1")
    out = run(args.cycles, args.duration, args.blocks)
    if args.json is not None:
        args.json.write_text(json.dumps(out, indent=2) + "\n")
    sys.stdout.write(markdown(out))
    return 0 if not (out["contended"]["plaintext"]["errors"] or out["contended"]["tls"]["errors"]) else 1


if __name__ == "__main__":
    sys.exit(main())
