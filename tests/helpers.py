"""Helpers shared by the test modules."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Sequence

PY = sys.executable


def run_cli(module: str, args: Sequence[str], env: dict | None = None, timeout: float = 60,
            **kwargs) -> subprocess.CompletedProcess:
    """Run ``python -m <module> args`` and capture text output."""
    full_env = dict(os.environ, **(env or {}))
    return subprocess.run([PY, "-m", module, *args], capture_output=True, text=True, env=full_env,
                          timeout=timeout, **kwargs)


def assert_bad_input(res: subprocess.CompletedProcess, prog: str, *needles: str) -> str:
    """Exit status 2, one stderr line ``<prog>: error: ...`` naming the problem, no traceback."""
    err = res.stderr.strip()
    assert res.returncode == 2, (res.returncode, res.stderr)
    assert "Traceback" not in res.stderr
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1, lines
    assert lines[0].startswith(f"{prog}: error: "), lines[0]
    for n in needles:
        assert n in lines[0], (n, lines[0])
    return lines[0]


def last_json(stdout: str) -> dict:
    """The last JSON line pfrps printed (its final snapshot)."""
    lines = [ln for ln in stdout.splitlines() if ln.startswith("{")]
    assert lines, stdout
    return json.loads(lines[-1])
