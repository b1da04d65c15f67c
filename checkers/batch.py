"""Checking a batch of JSONL records: the one function that builds a `reportgen check` record.

``reportgen check`` and Python users get the same output record from the same code:
``RecordChecker(pipeline, ...).check(rec)`` takes one parsed input line
(``reportgen.jsonl.Record``) and returns the output record (the JSONL contract of
``reportgen.checkers.pipeline.ReportResult.to_record`` plus what only a batch knows: the
record's place in its file, the reference's state, the region map's path, the input's extra
keys), with the batch's counters (``RecordChecker.counts``) updated.

    >>> from reportgen.checkers.batch import check_records
    >>> from reportgen.checkers.pipeline import Pipeline
    >>> from reportgen.jsonl import read_jsonl
    >>> records = check_records(Pipeline(), read_jsonl("reports.jsonl", require=("id", "report")))  # doctest: +SKIP

Bad lines give an error record ``{"id": <id or "line:N">, "error": "<file:line: code
problem>", "error_code": "E103", "claims": [], "summary": {...}}`` and the batch goes on
(every record with an ``error`` carries its code as ``error_code``, docs/errors.md); a bug
on one record becomes an E399 error record. Report text is never logged.
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Mapping

from reportgen.errors import ReportgenError, with_error_code
from reportgen.idset import IdSet
from reportgen.jsonl import Record, read_jsonl
from reportgen.types import VERDICT_STATUSES, Study

log = logging.getLogger(__name__)

CONTRACT_KEYS = ("id", "error", "error_code", "claims", "summary")
INPUT_KEYS = ("id", "report")
# The first few problems of a kind are named one by one (stderr), then a count.
MAX_LINE_WARNINGS = 10
MAX_IDS_NAMED = 10  # ids a closing warning names (the rest are counted)

Warn = Callable[[str], None]


def _no_warning(msg: str) -> None:
    return None


# --- reading -----------------------------------------------------------------------


def load_reference(path: str, max_chars: int, warn: Warn = _no_warning) -> tuple[dict[str, str], dict[str, str]]:
    """Reference texts by id, and the problem of each reference id whose line was bad
    (the first few bad lines are named through ``warn``, then a count)."""
    texts: dict[str, str] = {}
    problems: dict[str, str] = {}
    bad = 0
    for rec in read_jsonl(path, require=INPUT_KEYS, text_fields=("report",), max_chars=max_chars):
        if rec.error:
            bad += 1
            if bad <= MAX_LINE_WARNINGS:
                warn(f"reference {rec.error}")
            if rec.id:
                problems[rec.id] = rec.error
            elif rec.id_hint and rec.id_hint not in texts:  # a broken line: the id it seems to carry
                problems[rec.id_hint] = rec.error
            continue
        if rec.id in texts:
            warn(f"reference {rec.where}: E305 duplicate id {rec.id!r}; the later line is used")
        texts[rec.id] = rec.data["report"]
        problems.pop(rec.id, None)
    if bad > MAX_LINE_WARNINGS:
        warn(f"reference {path}: {bad - MAX_LINE_WARNINGS} more bad lines (each affected id's record says why in summary.reference_error)")
    return texts, problems


# --- records -----------------------------------------------------------------------


def passthrough(record: dict[str, Any], data: Mapping[str, Any] | None) -> dict[str, Any]:
    """Copy the input's extra keys into the output record; keys that clash with the
    contract go under "input" so nothing is overwritten."""
    if not data:
        return record
    for key, value in data.items():
        if key in INPUT_KEYS:
            continue
        if key in CONTRACT_KEYS:
            record.setdefault("input", {})[key] = value
        elif key not in record:
            record[key] = value
    return record


def error_record(rec: Record, extra_summary: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The output record of a line that could not be checked (``rec.error`` says why)."""
    from reportgen.checkers.pipeline import empty_summary

    out = {"id": rec.fallback_id(), "error": rec.error, "error_code": rec.error_code, "claims": [],
           "summary": empty_summary(**(extra_summary or {}))}
    return passthrough(out, rec.data)


def record_study(rec: Record, base: Path, allow_outside_root: bool = False) -> tuple[Study | None, str | None]:
    """(Study or None, problem or None) from a record's ``images``, ``views``/``view`` and
    ``mirrored`` (true/false for every image, or one true/false/null per image).

    No ``images`` (or an empty list): (None, None), the record is checked without images.
    Relative paths are read from ``base`` (the reports file's folder); paths leading out of
    it are refused (E904) unless ``allow_outside_root``."""
    from reportgen.paths import image_path, not_an_image_file

    data = rec.data or {}
    images = data.get("images", data.get("image"))
    if images is None or images == []:
        return None, None
    if isinstance(images, str):
        images = [images]
    if not isinstance(images, list) or not all(isinstance(i, str) and i.strip() for i in images):
        return None, f"E703 'images' must be a list of image paths, got {_short(images)}"
    if "views" in data:
        views = data["views"]
        if isinstance(views, str):
            views = [views]
        if not isinstance(views, list) or not all(v is None or isinstance(v, str) for v in views):
            return None, f"E704 'views' must be a list of view names (PA, AP, LATERAL, ...) or nulls, got {_short(views)}"
        if views and len(views) != len(images):
            return None, f"E704 {len(views)} views for {len(images)} images; give one view per image (or 'view' for all)"
    elif data.get("view") is not None:
        if not isinstance(data["view"], str):
            return None, f"E704 'view' must be a view name (PA, AP, LATERAL, ...), got {_short(data['view'])}"
        views = [data["view"]] * len(images)
    else:
        views = []
    resolved = []
    for n, img in enumerate(images):
        path, outside = image_path(img, base, allow_outside=allow_outside_root)
        if outside:
            return None, f"images[{n}]: {outside}"
        if not path.is_file():
            return None, f"E705 image {img!r} {not_an_image_file(path)} (relative paths are read from {str(base)!r})"
        resolved.append(str(path))
    mirrored = data.get("mirrored")
    if mirrored is not None:
        if isinstance(mirrored, bool):
            mirrored = [mirrored] * len(images)
        if (not isinstance(mirrored, list) or len(mirrored) != len(images)
                or not all(m is None or isinstance(m, bool) for m in mirrored)):
            return None, (f"E140 'mirrored' must be true/false (all images) or a list of one true/false/null per image "
                          f"({len(images)}), got {_short(mirrored)}")
    meta = {"mirrored": tuple(mirrored)} if mirrored is not None else {}
    return Study(rec.id, images=tuple(resolved), views=tuple(views), meta=meta), None


def _short(value: Any, most: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= most else text[: most - 3] + "..."


def png_name(id: str, used: set[str], line: int) -> str:
    """A file name for a study's PNG from its id (unsafe characters replaced; a repeated
    name gets the input line number)."""
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", id).strip("._")[:120] or "study"
    name = f"{stem}.png"
    if name in used:
        name = f"{stem}_line{line}.png"
    used.add(name)
    return name


def write_png(path: Path, data: bytes) -> None:
    """Write atomically: a temporary file in the same folder, renamed."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_bytes(data)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


# --- the batch ---------------------------------------------------------------------


@dataclass
class BatchCounts:
    """What a batch saw so far (the command's closing line and exit status)."""

    records: int = 0
    errors: int = 0
    region_errors: int = 0
    statuses: dict[str, int] = field(default_factory=lambda: {k: 0 for k in VERDICT_STATUSES})
    # every id seen (duplicates warned about); bounded memory on long streams (reportgen.idset)
    seen: IdSet = field(default_factory=IdSet)
    # how many report ids had no usable reference, and the first few of them (for the warning)
    missing_reference: int = 0
    missing_reference_ids: list[str] = field(default_factory=list)
    images_ignored: bool = False
    # lines that did not parse, by the id they seem to carry (Record.id_hint) -> their error
    broken_lines: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class CheckedRecord:
    """One checked input line: the output ``record``, the line's place (``file:line``), and
    for a checked report the pipeline's ``result`` and the ``study`` its images made."""

    record: dict[str, Any]
    where: str
    result: Any = None
    study: Study | None = None


class RecordChecker:
    """Builds the output record of each input line of a batch (see the module doc).

    ``references``/``reference_problems``: reference texts by id and the problems of bad
    reference lines (``load_reference``); None: no reference given (self-consistency
    only). ``base``: the folder relative image paths are read from. ``png_dir``: write a
    region map PNG per checked study there (needs the pipeline's region checker).
    ``warn``: where warnings naming records go (never report text). ``allow_outside_root``:
    read images outside ``base`` too (``--allow-outside-root``)."""

    def __init__(self, pipeline: Any, *, references: Mapping[str, str] | None = None,
                 reference_problems: Mapping[str, str] | None = None, base: str | Path = ".",
                 png_dir: str | Path | None = None, warn: Warn = _no_warning, allow_outside_root: bool = False):
        self.pipeline = pipeline
        self.allow_outside_root = allow_outside_root
        self.region = pipeline.region
        self.references = references
        self.reference_problems = reference_problems or {}
        self.base = Path(base)
        self.png_dir = Path(png_dir) if png_dir is not None and self.region is not None else None
        self.warn = warn
        self.counts = BatchCounts()
        self._png_names: set[str] = set()

    def region_warn(self, msg: str) -> None:
        """A region problem: the first few are named, then only counted."""
        if self.counts.region_errors <= MAX_LINE_WARNINGS:
            self.warn(msg)

    def check_all(self, records: Iterable[Record], workers: int = 1, block: int = 256) -> Iterator[CheckedRecord]:
        """The checked records in input order. ``workers`` > 1: the reports are checked in
        that many processes (each with its own caches), ``block`` records at a time; the
        counting, warnings and output stay in this process, in order."""
        if workers <= 1:
            for rec in records:
                yield self.check(rec)
            return
        if self.region is not None or getattr(self.pipeline, "llm", None) is not None:
            raise ReportgenError("E341", "checking in several processes (--workers) with a region model or an LLM checker "
                                 "is not supported yet", fix="leave out --workers (one process) with --region-model or an LLM checker")
        yield from self._check_parallel(records, workers, block)

    def check(self, rec: Record) -> CheckedRecord:
        """The output record of one input line (counters updated)."""
        job = self._prepare(rec)
        if isinstance(job, CheckedRecord):
            return job
        return self._finish(job, *self._run(job))

    def _prepare(self, rec: Record) -> "CheckedRecord | _Job":
        """Count the line; an error record for a bad line, else what checking it needs."""
        counts = self.counts
        counts.records += 1
        if rec.id is not None:
            if not counts.seen.add(rec.id):
                self.warn(f"{rec.where}: E306 duplicate id {rec.id!r}; both records are checked")
        if rec.error:
            counts.errors += 1
            # kept only for reference ids (the closing E020 names them): bounded by the references
            if rec.id is None and rec.id_hint and self.references is not None and rec.id_hint in self.references:
                counts.broken_lines.setdefault(rec.id_hint, rec.error)
            return CheckedRecord(error_record(rec), rec.where)
        ref_text = None
        ref_note: dict[str, Any] = {}
        if self.references is not None:
            ref_text = self.references.get(rec.id)
            if ref_text is None:
                counts.missing_reference += 1
                if len(counts.missing_reference_ids) < MAX_IDS_NAMED:
                    counts.missing_reference_ids.append(rec.id)
                ref_note["reference"] = "invalid" if rec.id in self.reference_problems else "missing"
                if rec.id in self.reference_problems:
                    ref_note["reference_error"] = self.reference_problems[rec.id]
        study, region_problem = None, None
        if self.region is not None:
            study, region_problem = record_study(rec, self.base, self.allow_outside_root)
            if region_problem:
                region_problem = f"{rec.where}: {region_problem}"
        elif not counts.images_ignored and rec.data.get("images", rec.data.get("image")):
            counts.images_ignored = True
            self.warn(f"{rec.where}: records carry images but no --region-model was given: images are not checked")
        return _Job(rec, ref_text, ref_note, study, region_problem)

    def _run(self, job: "_Job") -> tuple[dict[str, Any] | CheckFailed, Any]:
        """(the pipeline's record, its result), or (``CheckFailed``, None) when checking failed."""
        rec = job.rec
        out, result = check_report(self.pipeline, rec.id, rec.data["report"], job.ref_text, job.study, job.region_problem)
        if not isinstance(out, CheckFailed) and self.region is not None and not out["error"]:
            try:
                self._region_record(out, result, job.study, rec)
            except Exception as e:  # a bug on one record must not lose the batch
                return CheckFailed.of(e), None
        return out, result

    def _finish(self, job: "_Job", out: dict[str, Any] | CheckFailed, result: Any) -> CheckedRecord:
        rec, counts = job.rec, self.counts
        if isinstance(out, CheckFailed):  # E399: a bug on this record (logged by the exception's type only)
            log.warning("%s: record %s failed with %s", rec.where, rec.id, out.error_type)
            out = error_record(Record(rec.path, rec.line, rec.data, out.message("E399")))
        if out["error"]:
            counts.errors += 1
            out["error"] = f"{rec.where}: {out['error']}"
            out = with_error_code(out)
        out["summary"].update(job.ref_note)
        if out.get("region_png_error"):
            self.region_warn(f"{rec.where}: {out['region_png_error']}")
        for k in VERDICT_STATUSES:
            counts.statuses[k] += out["summary"].get(k, 0)
        return CheckedRecord(passthrough(out, rec.data), rec.where, result, job.study)

    def _check_parallel(self, records: Iterable[Record], workers: int, block: int) -> Iterator[CheckedRecord]:
        import itertools

        ctx = pool_context()
        spec = (self.pipeline, None) if ctx.get_start_method() == "fork" else (None, self.pipeline.spec())
        with ctx.Pool(workers, initializer=_start_worker, initargs=spec) as pool:
            records = iter(records)
            while True:
                jobs = [self._prepare(rec) for rec in itertools.islice(records, block)]
                if not jobs:
                    return
                todo = [(j.rec.id, j.rec.data["report"], j.ref_text) for j in jobs if isinstance(j, _Job)]
                done = iter(pool.imap(_check_in_worker, todo, chunksize=max(1, len(todo) // (4 * workers))))
                for job in jobs:
                    yield job if isinstance(job, CheckedRecord) else self._finish(job, next(done), None)

    def _region_record(self, out: dict[str, Any], result: Any, study: Study | None, rec: Record) -> None:
        """The region error named with the record's place, and the study's PNG."""
        summary = out["summary"]
        if summary.get("region") == "error":
            self.counts.region_errors += 1
            if not summary["region_error"].startswith(rec.where):
                summary["region_error"] = f"{rec.where}: {summary['region_error']}"
            self.region_warn(f"region evidence not used: {summary['region_error']} (graph verdicts kept)")
        if self.png_dir is None or summary.get("region") == "no_images":
            return
        out["region_png"] = None
        if summary.get("region") != "checked" or study is None:
            return
        path = self.png_dir / png_name(rec.id, self._png_names, rec.line)
        try:
            write_png(path, self.render_png(result, study, rec.id))
            out["region_png"] = str(path)
        except Exception as e:  # a failed picture must not lose the verdicts
            msg = str(e) if isinstance(e, ReportgenError) else f"{type(e).__name__}: {e}"
            out["region_png_error"] = f"E706 writing {path} failed: {msg}"

    def render_png(self, result: Any, study: Study, title: str) -> bytes:
        return render_region_png(self.region, result, study, title)


def render_region_png(region: Any, result: Any, study: Study, title: str) -> bytes:
    """A study's region map (each image, the map of each flagged claim) as PNG bytes, from
    the region checker's verdicts in ``result`` (``reportgen check`` and ``reportgen run``)."""
    verdicts = [v for c in result.claims for v in c.verdicts if v.checker == region.name]
    return region.render_study(study.images, study.views, verdicts, title=title, mirrored=study.meta.get("mirrored"))


@dataclass(frozen=True, slots=True)
class _Job:
    """A good input line and what checking it needs (made by ``RecordChecker._prepare``)."""

    rec: Record
    ref_text: str | None
    ref_note: dict[str, Any]
    study: Study | None
    region_problem: str | None


@dataclass(frozen=True, slots=True)
class CheckFailed:
    """A bug stopped checking one report: the exception's type and message (never the
    report text). ``message`` gives the error record's text under a code (E399 for
    ``reportgen check``, E808 for ``reportgen run``)."""

    error_type: str
    detail: str

    @classmethod
    def of(cls, e: BaseException) -> "CheckFailed":
        return cls(type(e).__name__, str(e))

    def message(self, code: str = "E399", where: str = "") -> str:
        return f"{code} {where}checking failed: {self.error_type}: {self.detail}"


def check_report(pipeline: Any, id: str, text: str, ref_text: str | None, study: Study | None = None,
                  region_problem: str | None = None) -> tuple[dict[str, Any] | CheckFailed, Any]:
    """(record, result) of one report, or (``CheckFailed``, None) when a bug stopped it:
    the one place a verdict record is made from the pipeline's result (``reportgen check``,
    ``reportgen run``, the Python batch API)."""
    try:
        extra = {"region_error": region_problem} if region_problem else {}
        result = pipeline.check(id, text, ref_text, study=study, **extra)
        return result.to_record(), result
    except Exception as e:  # a bug on one record must not lose the batch
        return CheckFailed.of(e), None


def pool_context() -> Any:
    """The multiprocessing context of worker pools (``check --workers``, ``compare
    --workers``): fork where the platform can, after loading spaCy (the sentence splitter's
    fallback, and what it imports) once here so that every worker shares it; spawn elsewhere."""
    import multiprocessing

    from reportgen.checkers.claims import warm_up

    ctx = multiprocessing.get_context("fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn")
    if ctx.get_start_method() == "fork":
        warm_up()
    return ctx


_WORKER_PIPELINE: Any = None


def _start_worker(pipeline: Any, spec: Mapping[str, Any] | None) -> None:
    """A worker process's pipeline: the parent's (fork) or one made from its spec (spawn)."""
    global _WORKER_PIPELINE
    if pipeline is None:
        from reportgen.checkers.pipeline import Pipeline

        pipeline = Pipeline(**spec)
    _WORKER_PIPELINE = pipeline


def _check_in_worker(item: tuple[str, str, str | None]) -> dict[str, Any] | CheckFailed:
    return check_report(_WORKER_PIPELINE, *item)[0]


def check_records(pipeline: Any, records: Iterable[Record], workers: int = 1, **options: Any) -> Iterator[dict[str, Any]]:
    """The output record of each input line, in order (``RecordChecker`` options;
    ``workers``: processes that check the reports)."""
    checker = RecordChecker(pipeline, **options)
    for checked in checker.check_all(records, workers=workers):
        yield checked.record


__all__ = ["BatchCounts", "CheckFailed", "CheckedRecord", "RecordChecker", "check_records", "error_record", "load_reference",
           "passthrough", "pool_context", "record_study", "png_name", "write_png", "CONTRACT_KEYS", "INPUT_KEYS"]
