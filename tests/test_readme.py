"""The README's examples run as written."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from zksync.testing.timing import scaled

README = Path(__file__).resolve().parent.parent / "README.md"


def section(title: str) -> str:
    text = README.read_text()
    start = text.index(f"## {title}\n")
    end = text.find("\n## ", start + 1)
    return text[start : end if end >= 0 else len(text)]


def test_the_tls_and_acl_example_runs_as_written(tmp_path: Path) -> None:
    code = re.findall(r"```python\n(.*?)```", section("Production: TLS and ACLs"), re.S)
    assert len(code) == 1
    done = subprocess.run(
        [sys.executable, "-c", code[0]], cwd=tmp_path, capture_output=True, text=True, timeout=scaled(180)
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert len(lines) == 2 and lines[0].startswith("['_c_") and "-write-" in lines[0], done.stdout
    assert lines[1] == "bob is refused; nothing changed"
