"""`reportgen draft`: draft a report for each study of a JSONL file, resumably.

    reportgen draft --studies studies.jsonl --backend 'vllm:http://127.0.0.1:8000?model=cxr' --out drafts.jsonl
    reportgen draft --studies studies.jsonl --backend hf:runs/tiny-vlm --out drafts.jsonl --task impression

Output: one JSON line per study, appended and flushed as soon as it is done:
``{"id", "report", "model", "adapter", "prompt_version", "latency_s", "error", ...}``
(``report`` is null and ``error`` a message on failure; extra keys: ``backend``, ``task``,
``error_code`` (docs/errors.md; null when the failure came without a code), ``error_kind``,
``completion_tokens``, ``finish_reason``).

Resume: rerun the same command. Ids with a draft in the output are skipped. Error records
of kind ``unavailable`` (server down, timeout, HTTP 5xx) are retried automatically;
other error records (a bad record, a missing image, a refused request) are kept unless
``--retry-errors`` is given. A retried error record is removed from the output first
(atomic rewrite), so the output keeps exactly one record per study id.
When the backend stays unreachable for ``--max-consecutive-failures`` studies in a row the
batch stops (exit 1) instead of writing an error record for every remaining study.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Any, Iterator

from reportgen.errors import InputError, ReportgenError, error_code
from reportgen.jsonl import written_records

log = logging.getLogger("reportgen.draft")

TASKS = ("findings", "impression", "full")
RECORD_KEYS = ("id", "report", "model", "adapter", "prompt_version", "latency_s", "error")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--studies", required=True, help="studies JSONL: {id, images: [paths], indication?, comparison?, view(s)?}")
    p.add_argument("--backend", required=True,
                   help="hf:PATH_OR_ID[?adapter=DIR] or vllm:http://HOST:PORT[?model=ADAPTER_NAME]")
    p.add_argument("--out", required=True, help="output JSONL (appended; rerun to resume)")
    p.add_argument("--task", choices=TASKS, default="findings", help="what to draft (default findings)")
    p.add_argument("--concurrency", type=int, default=4, help="requests in flight for the vllm backend (default 4)")
    p.add_argument("--batch-size", type=int, default=None, help="studies per generate call for the hf backend")
    p.add_argument("--max-new-tokens", type=int, default=256, help="longest draft in tokens (default 256)")
    p.add_argument("--retry-errors", action="store_true", help="also redo studies whose earlier record is an error of any kind")
    p.add_argument("--max-consecutive-failures", type=int, default=8,
                   help="stop when the backend is unreachable for this many studies in a row (default 8; 0: never)")
    p.add_argument("--limit", type=int, default=None, help="draft at most this many pending studies")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


# -- output file ------------------------------------------------------------------------
def scan_output(path: Path) -> dict[str, dict[str, Any]]:
    """id -> last record in the output file (empty when there is none)."""
    return {rec["id"]: rec for _, rec in written_records(path)} if path.exists() else {}


def to_retry(records: dict[str, dict[str, Any]], retry_errors: bool) -> set[str]:
    """Ids whose record is an error to redo on this run."""
    from reportgen.backends.base import TRANSIENT_KINDS

    return {
        i for i, r in records.items()
        if r.get("error") and (retry_errors or r.get("error_kind") in TRANSIENT_KINDS)
    }


def drop_records(path: Path, ids: set[str]) -> None:
    """Rewrite ``path`` atomically without the records of ``ids`` (and without torn lines)."""
    from reportgen.jsonl import atomic_writer

    kept = [raw for raw, rec in written_records(path) if rec["id"] not in ids]
    with atomic_writer(path) as dst:
        for raw in kept:
            dst.write(raw.decode("utf-8").rstrip("\n") + "\n")


# -- input file -------------------------------------------------------------------------
def load_studies(path: Path) -> Iterator[tuple[str, Any, str | None, str | None]]:
    """(id, Study or None, error, error_kind) per input line; relative image paths are
    resolved against the studies file's folder; missing images are input errors."""
    from reportgen.backends.base import INPUT
    from reportgen.jsonl import read_jsonl
    from reportgen.types import Study

    base = path.resolve().parent
    for rec in read_jsonl(path, require=("id",), text_fields=("indication", "comparison")):
        sid = rec.fallback_id()
        if rec.error:
            yield sid, None, rec.error, INPUT
            continue
        data = dict(rec.data or {})
        images = data.get("images", data.get("image", ()))
        if isinstance(images, str):
            images = [images]
        if not isinstance(images, (list, tuple)) or not images or not all(isinstance(i, str) and i for i in images):
            yield sid, None, f"{rec.where}: E575 'images' must be a non-empty list of image paths", INPUT
            continue
        resolved = []
        missing = None
        for img in images:
            p = Path(img).expanduser()
            p = p if p.is_absolute() else base / p
            if not p.is_file():
                missing = img
                break
            resolved.append(str(p))
        if missing is not None:
            yield sid, None, f"{rec.where}: E576 image {missing!r} not found (relative paths are read from {str(base)!r})", INPUT
            continue
        data["images"] = resolved
        data.pop("image", None)
        try:
            study = Study.from_dict(data)
        except (ReportgenError, TypeError, ValueError) as e:
            yield sid, None, f"{rec.where}: {e}", INPUT
            continue
        yield sid, study, None, None


# -- the command ------------------------------------------------------------------------
def _record(result, *, backend: str, task: str, model: str | None, adapter: str | None, prompt_version: str | None) -> dict[str, Any]:
    d = result.draft
    if d is not None:
        rec = {
            "id": result.study_id, "report": d.report, "model": d.model, "adapter": d.adapter,
            "prompt_version": d.prompt_version, "latency_s": round(float(d.latency_s), 4), "error": None,
        }
    else:
        rec = {
            "id": result.study_id, "report": None, "model": model, "adapter": adapter, "prompt_version": prompt_version,
            "latency_s": None if result.latency_s is None else round(result.latency_s, 4), "error": result.error,
            "error_code": error_code(result.error), "error_kind": result.error_kind,
        }
    rec.update({"backend": backend, "task": task})
    if result.completion_tokens is not None:
        rec["completion_tokens"] = result.completion_tokens
    if result.finish_reason is not None:
        rec["finish_reason"] = result.finish_reason
    return rec


def _describe(drafter: Any) -> tuple[str | None, str | None, str | None]:
    """(model, adapter, prompt_version) for error records, without contacting anything."""
    model = getattr(drafter, "model_name", None) or getattr(drafter, "model", None) or getattr(drafter, "requested_model", None)
    adapter = getattr(drafter, "adapter", None)
    resolved = getattr(drafter, "_resolved", None)
    if resolved:
        model, adapter = resolved[1], resolved[2]
    model = model if isinstance(model, str) else getattr(model, "name_or_path", None)
    adapter = adapter if isinstance(adapter, str) or adapter is None else str(adapter)
    return model, adapter, getattr(drafter, "prompt_version", None)


def run(args: argparse.Namespace) -> int:
    from reportgen.backends import get_drafter, parse_spec
    from reportgen.backends.base import DraftResult, iter_results
    from reportgen.jsonl import AppendWriter

    studies_path, out_path = Path(args.studies), Path(args.out)
    if not studies_path.is_file():
        raise InputError("E101", f"studies file {str(studies_path)!r} does not exist", fix="check --studies")
    if out_path.exists() and out_path.resolve() == studies_path.resolve():
        raise InputError("E577", "--out is the --studies file", fix="write the drafts to another file")
    for name in ("concurrency", "max_new_tokens"):
        if getattr(args, name) < 1:
            raise InputError("E577", f"--{name.replace('_', '-')} must be at least 1")
    spec = parse_spec(args.backend)

    # What is done, what to redo.
    previous = scan_output(out_path)
    retry = to_retry(previous, args.retry_errors)
    if retry and out_path.exists():
        drop_records(out_path, retry)
    done = set(previous) - retry

    pending: list[Any] = []
    bad: list[DraftResult] = []
    seen: set[str] = set()
    duplicates = 0
    for sid, study, error, kind in load_studies(studies_path):
        if sid in seen:
            duplicates += 1
            log.warning("%s: duplicate study id %r skipped (the first one is drafted)", studies_path, sid)
            continue
        seen.add(sid)
        if sid in done:
            continue
        if study is None:
            bad.append(DraftResult(sid, None, error, kind))
        else:
            pending.append(study)
    if args.limit is not None:
        pending = pending[: max(0, args.limit)]
    skipped = len(seen) - len(pending) - len(bad)

    n_ok = n_err = 0
    with AppendWriter(out_path) as writer:
        if not pending and not bad:
            print(f"reportgen draft: nothing to do: {skipped} studies already in {out_path}", file=sys.stderr)
            return 0
        drafter = get_drafter(spec, task=args.task, max_new_tokens=args.max_new_tokens,
                              concurrency=args.concurrency, batch_size=args.batch_size) if pending else None
        model, adapter, prompt_version = _describe(drafter) if drafter else (None, None, None)
        if prompt_version is None:
            try:
                from reportgen.prompting import PROMPT_VERSION as prompt_version
            except ImportError:
                prompt_version = None
        common = dict(backend=str(spec), task=args.task)
        for r in bad:
            writer.write(_record(r, model=model, adapter=adapter, prompt_version=prompt_version, **common))
            n_err += 1
            log.warning("%s", r.error)

        from tqdm.auto import tqdm

        bar = tqdm(total=len(pending), unit="report", desc="draft", disable=args.no_progress or not pending,
                   file=sys.stderr, dynamic_ncols=True)
        streak = 0
        stopped: DraftResult | None = None
        results = iter_results(drafter, pending, batch_size=args.batch_size) if drafter else iter(())
        try:
            for r in results:
                if r.draft is None:
                    model, adapter, prompt_version = _describe(drafter)
                writer.write(_record(r, model=model, adapter=adapter, prompt_version=prompt_version, **common))
                bar.update(1)
                if r.draft is not None:
                    n_ok += 1
                    streak = 0
                else:
                    n_err += 1
                    log.warning("study %s: %s", r.study_id, r.error)
                    streak = streak + 1 if r.transient else 0
                    if args.max_consecutive_failures and streak >= args.max_consecutive_failures:
                        stopped = r
                        break
                bar.set_postfix(ok=n_ok, errors=n_err, refresh=False)
        finally:
            close = getattr(results, "close", None)
            if close:
                close()  # cancels queued requests of a streaming backend
            bar.close()
            if drafter is not None and hasattr(drafter, "close"):
                drafter.close()
    left = len(pending) - n_ok - (n_err - len(bad))
    summary = f"{n_ok} drafted, {n_err} errors, {skipped} already done"
    if duplicates:
        summary += f", {duplicates} duplicate ids skipped"
    if stopped is not None:
        raise ReportgenError(
            "E578", f"stopped after {args.max_consecutive_failures} studies in a row failed with the backend "
            f"unreachable ({summary}, {left} not tried); last error: {stopped.error}",
            fix="start or fix the server, then rerun the same command: it resumes and retries those studies",
        )
    print(f"reportgen draft: {summary} -> {out_path}", file=sys.stderr)
    return 1 if n_err else 0

