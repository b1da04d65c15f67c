"""Benchmarks: each script prints a table and writes JSON (``write_json``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def write_json(path: str | Path, result: Any, *, indent: int = 2) -> Path:
    """Write a benchmark's result as JSON, creating the folder; through a temporary file
    renamed over the target, so a crash never leaves half a file over the last good run.
    The file gets the umask's permissions, as reportgen.jsonl.atomic_writer's do."""
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    tmp.write_text(json.dumps(result, indent=indent) + "\n", encoding="utf-8")
    tmp.replace(out)
    return out
