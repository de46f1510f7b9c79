"""Where ``.ci/build-peers`` puts the peer programs it builds, and the hash it keys a build on:
shared by the interop tests' driver (tests/peers.py) and the benchmark suite's Curator program
(benchmarks/curator.py), without pytest."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path


def tools() -> Path:
    return Path(os.environ.get("ZKSYNC_TOOLS", Path.home() / ".cache" / "zksync")) / "peers"


def source_hash(directory: Path) -> str:
    """The hash ``.ci/build-peers`` keys a build on: sha256 of ``./path NUL content NUL`` for
    every file of ``directory`` (but ``target/``), in byte order of the paths."""
    digest = hashlib.sha256()
    names = sorted(
        "./" + path.relative_to(directory).as_posix()
        for path in directory.rglob("*")
        if path.is_file() and path.relative_to(directory).parts[0] != "target"
    )
    for name in names:
        digest.update(name.encode() + b"\0" + (directory / name).read_bytes() + b"\0")
    return digest.hexdigest()
