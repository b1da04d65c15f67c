"""Checks that importing (and using) light modules leaves heavy packages unloaded: the code
runs in a fresh interpreter, since this test process has long imported everything."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Sequence

import pytest

REPO = Path(__file__).resolve().parents[1]


def heavy_modules_loaded(code: str, heavy: Sequence[str]) -> list[str]:
    """Run ``code`` (statements) in a new Python and return the names in ``heavy`` that are
    in its ``sys.modules`` afterwards, sorted."""
    probe = f"{code}\nimport json as _j, sys as _s\nprint(_j.dumps(sorted(m for m in {list(heavy)!r} if m in _s.modules)))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=REPO, timeout=120)
    if out.returncode != 0:
        pytest.fail(f"the import probe failed: {out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])
