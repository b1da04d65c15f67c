"""`reportgen check`: check every claim of reports (JSONL) against a reference and itself.

Input records ``{"id": str, "report": str, ...}``; the optional reference file has the same
shape and is matched by ``id``. One output record per input line (the JSONL contract of
``checkers.pipeline.ReportResult.to_record``); extra input keys are passed through. Bad
lines (malformed JSON, non-UTF-8 bytes, a missing id, an empty or oversized report) give
an error record ``{"id": <id or "line:N">, "error": "<file:line: code problem>",
"claims": [], "summary": {...}}`` and the batch goes on. The output file is written
atomically: a crash leaves the previous file untouched. Report text is never logged.
"""

from __future__ import annotations

import argparse
import logging
import shutil
import sys
import textwrap
import time
from typing import Any, Iterable, Mapping, TextIO

from reportgen.jsonl import MAX_RECORD_CHARS, Record, atomic_writer, dumps, read_jsonl

log = logging.getLogger(__name__)

CONTRACT_KEYS = ("id", "error", "claims", "summary")
INPUT_KEYS = ("id", "report")
STATUSES = ("supported", "contradicted", "unsupported", "uncertain", "error")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--reports", required=True, metavar="R.jsonl", help='input JSONL, one {"id": str, "report": str} per line')
    p.add_argument("--reference", metavar="REF.jsonl", help="reference reports, same shape, matched by id (evaluation mode)")
    p.add_argument("--out", metavar="V.jsonl", help="output JSONL, written atomically (default: JSONL on stdout with --format json)")
    p.add_argument("--format", choices=("json", "table"), default="json", help="stdout: JSONL records (json) or a verdict table (table)")
    p.add_argument("--extractor", choices=("rules", "radgraph"), default="rules", help="entity graph backend (default: rules, offline)")
    p.add_argument("--no-self-check", action="store_true", help="do not compare claims with the report's other sentences")
    p.add_argument("--max-chars", type=int, default=MAX_RECORD_CHARS, help=f"longest report accepted (default {MAX_RECORD_CHARS:,} characters)")
    p.add_argument("--strict", action="store_true", help="exit with status 1 when any record has an error")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar and no summary on stderr")


# --- reading -----------------------------------------------------------------------


MAX_LINE_WARNINGS = 10


def load_reference(path: str, max_chars: int, warn) -> tuple[dict[str, str], dict[str, str]]:
    """Reference texts by id, and the problem of each reference id whose line was bad
    (the first few bad lines are named on stderr, then a count)."""
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
            continue
        if rec.id in texts:
            warn(f"reference {rec.where}: E305 duplicate id {rec.id!r}; the later line is used")
        texts[rec.id] = rec.data["report"]
        problems.pop(rec.id, None)
    if bad > MAX_LINE_WARNINGS:
        warn(f"reference {path}: {bad - MAX_LINE_WARNINGS} more bad lines (each affected id's record says why in summary.reference_error)")
    return texts, problems


def _count_lines(path: str) -> int | None:
    try:
        with open(path, "rb") as fh:
            return sum(1 for line in fh if line.strip())
    except OSError:
        return None


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
    from checkers.pipeline import empty_summary

    out = {"id": rec.fallback_id(), "error": rec.error, "claims": [], "summary": empty_summary(**(extra_summary or {}))}
    return passthrough(out, rec.data)


# --- the table ---------------------------------------------------------------------


def render_table(record: Mapping[str, Any], width: int | None = None, marks: Mapping[int, str] | None = None, max_reasons: int = 2) -> str:
    """A human table of one output record: a row per claim (status, section, claim text)
    with its reasons indented below.

    ``marks`` maps a claim's start offset to a short tag shown before it (the demo marks
    the sentences it altered).
    """
    width = width or max(80, min(shutil.get_terminal_size((120, 20)).columns, 160))
    s = record.get("summary", {})
    counts = ", ".join(f"{s[k]} {k}" for k in STATUSES if s.get(k))
    lines = [f"== {record['id']}: {s.get('claims', 0)} claims" + (f" ({counts})" if counts else "") + " =="]
    if record.get("error"):
        lines.append(f"   error: {record['error']}")
        return "\n".join(lines)
    marks = marks or {}
    claim_w = width - 28
    for c in record["claims"]:
        mark = marks.get(c["start"], "")
        text = textwrap.shorten(c["text"], claim_w, placeholder="...")
        lines.append(f"{mark:<3}{c['status']:<13}{c['section'][:10]:<11} {text}")
        reasons = c.get("reasons") or []
        for r in reasons[: 1 if c["status"] == "supported" else max_reasons]:
            lines.append(textwrap.fill(r, width, initial_indent="      - ", subsequent_indent="        ", max_lines=3, placeholder=" ..."))
    return "\n".join(lines)


# --- the command -------------------------------------------------------------------


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from checkers.pipeline import Pipeline

    err: TextIO = sys.stderr
    warnings: list[str] = []

    def warn(msg: str) -> None:
        warnings.append(msg)
        if not args.quiet:
            print(f"reportgen check: {msg}", file=err)

    refs: dict[str, str] = {}
    ref_problems: dict[str, str] = {}
    if args.reference:
        refs, ref_problems = load_reference(args.reference, args.max_chars, warn)
    records = read_jsonl(args.reports, require=INPUT_KEYS, text_fields=("report",), max_chars=args.max_chars)
    pipeline = Pipeline(extractor=args.extractor, self_check=not args.no_self_check)

    totals = {k: 0 for k in STATUSES}
    n_records = n_errors = 0
    seen: set[str] = set()
    missing_ref: list[str] = []
    started = time.perf_counter()
    bar = tqdm(total=_count_lines(args.reports), file=err, unit="report", disable=args.quiet or not err.isatty(), desc="check")

    def results() -> Iterable[dict[str, Any]]:
        nonlocal n_records, n_errors
        for rec in records:
            n_records += 1
            bar.update(1)
            if rec.id is not None:
                if rec.id in seen:
                    warn(f"{rec.where}: E306 duplicate id {rec.id!r}; both records are checked")
                seen.add(rec.id)
            if rec.error:
                n_errors += 1
                yield error_record(rec)
                continue
            ref_text = None
            ref_note: dict[str, Any] = {}
            if args.reference:
                ref_text = refs.get(rec.id)
                if ref_text is None:
                    missing_ref.append(rec.id)
                    ref_note["reference"] = "invalid" if rec.id in ref_problems else "missing"
                    if rec.id in ref_problems:
                        ref_note["reference_error"] = ref_problems[rec.id]
            try:
                out = pipeline.check(rec.id, rec.data["report"], ref_text).to_record()
            except Exception as e:  # a bug on one record must not lose the batch
                log.warning("%s: record %s failed with %s", rec.where, rec.id, type(e).__name__)
                out = error_record(Record(rec.path, rec.line, rec.data, f"E399 checking failed: {type(e).__name__}: {e}"))
            if out["error"]:
                n_errors += 1
                out["error"] = f"{rec.where}: {out['error']}"
            out["summary"].update(ref_note)
            for k in STATUSES:
                totals[k] += out["summary"].get(k, 0)
            yield passthrough(out, rec.data)

    def emit(sink: TextIO | None) -> None:
        for out in results():
            if sink is not None:
                sink.write(dumps(out) + "\n")
            if args.format == "table":
                bar.clear()
                print(render_table(out), file=sys.stdout)
                print(file=sys.stdout)

    try:
        if args.out:
            with atomic_writer(args.out) as fh:
                emit(fh)
        else:
            emit(sys.stdout if args.format == "json" else None)
    finally:
        bar.close()

    if args.reference:
        unmatched = sorted(set(refs) - seen)
        if missing_ref:
            warn(f"E307 {len(missing_ref)} report id(s) have no usable reference and were checked for self-consistency only: {_ids(missing_ref)}")
        if unmatched:
            warn(f"E304 {len(unmatched)} reference id(s) have no report: {_ids(unmatched)}")
    if not args.quiet:
        took = time.perf_counter() - started
        counts = ", ".join(f"{totals[k]} {k}" for k in STATUSES)
        where = f"; written to {args.out}" if args.out else ""
        print(f"reportgen check: {n_records} records ({n_errors} with errors) in {took:.1f}s; claims: {counts}{where}", file=err)
    log.info("checked %d records, %d errors", n_records, n_errors)
    return 1 if args.strict and (n_errors or missing_ref) else 0


def _ids(ids: list[str], most: int = 10) -> str:
    shown = ", ".join(ids[:most])
    return shown + (f", ... ({len(ids) - most} more)" if len(ids) > most else "")
