"""Pipelines for the Ray engine tests; importable by Ray's worker processes (PYTHONPATH)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from reportgen.checkers.pipeline import Pipeline

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def ray_cluster():
    """One local Ray (2 CPUs, quiet) for a test module; its workers find this package
    through PYTHONPATH (restored afterwards)."""
    import logging

    import ray

    old = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), old) if p)
    logging.getLogger("ray").setLevel(logging.WARNING)
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    ray.data.DataContext.get_current().enable_progress_bars = False
    yield
    ray.shutdown()
    if old is None:
        os.environ.pop("PYTHONPATH", None)
    else:
        os.environ["PYTHONPATH"] = old


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
