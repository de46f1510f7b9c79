"""A kazoo client driven line by line from zksync's interop tests (protocol: README.md here).

``kazoo-lock`` is kazoo's ``Lock``; ``kazoo-rw`` is its ``WriteLock`` (``lock``) and
``ReadLock`` (``rlock``).  Run as its own process, so that a test can kill a kazoo holder
outright and let its session expire."""

from __future__ import annotations

import argparse
import queue
import sys
import threading

from kazoo.client import KazooClient
from kazoo.recipe.lock import Lock, ReadLock, WriteLock

CONNECT_WAIT = 30.0  # seconds


class KazooPeer:
    def __init__(self, client: KazooClient, path: str, recipe: str) -> None:
        self.client = client
        self.path = path
        self.write_lock: Lock
        self.read_lock: Lock | None
        if recipe == "kazoo-lock":
            self.write_lock, self.read_lock = Lock(client, path), None
        elif recipe == "kazoo-rw":
            self.write_lock, self.read_lock = WriteLock(client, path), ReadLock(client, path)
        else:
            raise SystemExit(f"kazoo-peer: unknown recipe {recipe!r}")
        self.held: Lock | None = None

    def answer(self, command: str) -> str:
        try:
            result = self.run(command)
        except Exception as exc:
            return "err " + " ".join(f"{type(exc).__name__}: {exc}".split())
        return f"ok {result}" if result else "ok"

    def run(self, command: str) -> str:
        if command == "lock":
            return self.acquire(self.write_lock)
        if command == "rlock":
            if self.read_lock is None:
                raise ValueError("kazoo's Lock has no read lock")
            return self.acquire(self.read_lock)
        if command == "unlock":
            if self.held is None:
                raise ValueError("not holding a lock")
            self.held.release()
            self.held = None
            return ""
        if command == "children":
            return ",".join(sorted(self.client.get_children(self.path)))
        raise ValueError(f"unknown command {command!r}")

    def acquire(self, lock: Lock) -> str:
        lock.acquire()
        self.held = lock
        return str(lock.node)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="kazoo_peer")
    parser.add_argument("--servers", required=True)
    parser.add_argument("--path", required=True)
    parser.add_argument("--recipe", required=True)
    parser.add_argument("--session-timeout", type=float, default=10.0)
    args = parser.parse_args(argv)
    if not args.path.startswith("/"):
        parser.error("--path must be absolute")
    client = KazooClient(hosts=args.servers, timeout=args.session_timeout)
    client.start(timeout=CONNECT_WAIT)
    peer = KazooPeer(client, args.path, args.recipe)
    write = threading.Lock()

    def reply(line: str) -> None:
        with write:
            sys.stdout.write(line + "\n")
            sys.stdout.flush()

    reply("ready")
    commands: queue.Queue[str | None] = queue.Queue()

    def work() -> None:  # commands run one after another: replies come in the order sent
        while (command := commands.get()) is not None:
            reply(peer.answer(command))

    threading.Thread(target=work, name="commands", daemon=True).start()
    for line in sys.stdin:
        command = line.strip()
        if command == "quit":
            break
        if command:
            commands.put(command)
    client.stop()  # ends the session: whatever this peer held is released
    client.close()


if __name__ == "__main__":
    main()
