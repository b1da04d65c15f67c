"""Pipelines for the Ray engine tests; importable by Ray's worker processes (PYTHONPATH)."""

from __future__ import annotations

import os
from pathlib import Path

from reportgen.checkers.pipeline import Pipeline


class DyingOnce:
    """A rules Pipeline whose process dies (os._exit, as a killed worker does) the first
    time it meets report ``die_id``; ``marker`` records that it died."""

    def __init__(self, die_id: str, marker: str):
        self.inner = Pipeline("rules")
        self.region = None
        self.die_id = die_id
        self.marker = Path(marker)

    def check(self, id, *args, **kwargs):
        if id == self.die_id and not self.marker.exists():
            self.marker.write_text(str(os.getpid()))
            os._exit(1)
        return self.inner.check(id, *args, **kwargs)


class AlwaysDying(DyingOnce):
    """Dies on ``die_id`` every time (the run cannot finish: a rerun must resume)."""

    def check(self, id, *args, **kwargs):
        if id == self.die_id:
            os._exit(1)
        return self.inner.check(id, *args, **kwargs)


def draft_record(result, drafter, spec, *, task):
    """The draft record of the local engine's shape (id, report, model, ..., error)."""
    d = result.draft
    return {"id": result.study_id, "report": d.report if d else None, "model": d.model if d else None,
            "error": result.error, "backend": spec, "task": task}


def make_upper():
    """A make_fn for map_rows: the function upper-cases a row's text and says which process did it."""
    pid = os.getpid()
    return lambda row: {"id": row["id"], "text": row["text"].upper(), "pid": pid}
