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

One writer per output: a run holds ``OUT.lock`` while it writes; a second run on the same
output refuses (E902) instead of interleaving; a lock left by a crashed run is taken over.
One kind of draft per output: a rerun whose backend, model, adapter, task or prompt
template differs from the drafts already in the output refuses (E903) unless
``--allow-mixed``. Image paths that lead outside the studies file's folder (``../``,
absolute paths elsewhere, symlinks out) are input errors (E904) unless
``--allow-outside-root``.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Any

from reportgen.drafts import (Tally, compatible, describe_drafter, draft_record, drop_records, identity, mixed_error,
                              record_maker, run_fields, scan_output, studies_to_draft, to_retry, write_drafts)
from reportgen.errors import InputError, ReportgenError
from reportgen.jsonl import check_in_file

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
    from reportgen.images import DEFAULT_MAX_IMAGES, DEFAULT_MAX_PIXELS

    p.add_argument("--max-pixels", type=int, default=None,
                   help=f"resize larger images to this many pixels, aspect kept (default {DEFAULT_MAX_PIXELS}; 0: no limit); "
                        "use the value the adapter was trained with")
    p.add_argument("--min-pixels", type=int, default=None, help="enlarge smaller images to this many pixels (default 0: never)")
    p.add_argument("--max-images", type=int, default=None,
                   help=f"images per study, frontal first then lateral (default {DEFAULT_MAX_IMAGES}; 0: all); "
                        "`reportgen serve --max-images` must allow as many")
    p.add_argument("--trust-remote-code", action="store_true",
                   help="hf backend: RUN the Python code shipped with the model (its author's code; e.g. MAIRA-2, CheXagent); "
                        "only for models whose source you trust")
    p.add_argument("--allow-mixed", action="store_true",
                   help="add drafts to an output whose drafts come from another backend, model, adapter, task or template")
    p.add_argument("--allow-outside-root", action="store_true",
                   help="read images outside the studies file's folder ('../', absolute paths, symlinks out)")


def run(args: argparse.Namespace) -> int:
    from reportgen.lock import OutputLock

    out_path = Path(args.out)
    with OutputLock(out_path) as lock:
        if lock.stale:
            log.warning("took over the lock of %s left by pid %s (that run ended without releasing it)",
                        out_path.name, lock.stale.get("pid", "?"))
        return _run(args)


def _run(args: argparse.Namespace) -> int:
    from reportgen.backends import get_drafter, parse_spec
    from reportgen.backends.base import DraftResult
    from reportgen.jsonl import AppendWriter

    studies_path, out_path = Path(args.studies), Path(args.out)
    check_in_file(studies_path, "studies file", fix="check --studies")
    if out_path.exists() and out_path.resolve() == studies_path.resolve():
        raise InputError("E577", "--out is the --studies file", fix="write the drafts to another file")
    for name in ("concurrency", "max_new_tokens"):
        if getattr(args, name) < 1:
            raise InputError("E577", f"--{name.replace('_', '-')} must be at least 1")
    spec = parse_spec(args.backend)

    # What is done, what to redo.
    previous = scan_output(out_path)
    retry = to_retry(previous, args.retry_errors)
    made_by = {identity(r) for r in previous.values() if not r.get("error") and r.get("report") is not None}
    allow_mixed = getattr(args, "allow_mixed", False)
    new_backend = identity({"backend": str(spec)})[0]
    early = (new_backend, None, None, args.task, None)
    if made_by and not allow_mixed and not any(compatible(i, early, ("backend", "task")) for i in made_by):
        raise mixed_error(made_by, early, out_path)  # before loading anything
    if retry and out_path.exists():
        drop_records(out_path, retry)
    done = set(previous) - retry

    todo = studies_to_draft(studies_path, done, getattr(args, "allow_outside_root", False))
    for sid in todo.duplicates:
        log.warning("%s: duplicate study id %r skipped (the first one is drafted)", studies_path, sid)
    if not todo.order:
        raise InputError("E739", f"studies file {str(studies_path)!r} holds no study", fix="check --studies: one JSON object per line")
    pending, bad, duplicates = todo.pending, todo.bad, len(todo.duplicates)
    if args.limit is not None:
        pending = pending[: args.limit]
    held = len(todo.pending) - len(pending)  # left for a later run by --limit
    skipped = len(todo.order) - len(todo.pending) - len(bad)

    n_ok = n_err = 0
    with AppendWriter(out_path) as writer:
        if not pending and not bad:
            print(f"reportgen draft: nothing to do: {skipped} studies already in {out_path}", file=sys.stderr)
            return 0
        policy_opts = {k: getattr(args, k, None) for k in ("max_pixels", "min_pixels", "max_images")}
        if getattr(args, "trust_remote_code", False):
            policy_opts["trust_remote_code"] = True
        drafter = get_drafter(spec, task=args.task, max_new_tokens=args.max_new_tokens,
                              concurrency=args.concurrency, batch_size=args.batch_size, **policy_opts) if pending else None
        model, adapter, prompt_version = describe_drafter(drafter) if drafter else (None, None, None)
        if prompt_version is None:
            try:
                from reportgen.prompting import PROMPT_VERSION as prompt_version
            except ImportError:
                prompt_version = None
        common: dict[str, Any] = dict(backend=str(spec), task=args.task, extra=run_fields(drafter))
        known = (new_backend, None, None, args.task, prompt_version)
        if made_by and not allow_mixed and drafter is not None and not any(
            compatible(i, known, ("backend", "task", "prompt_version")) for i in made_by
        ):
            if hasattr(drafter, "close"):
                drafter.close()
            raise mixed_error(made_by, identity({**common, "model": model, "adapter": adapter, "prompt_version": prompt_version}), out_path)
        for r in bad:
            writer.write(draft_record(r, model=model, adapter=adapter, prompt_version=prompt_version, **common))
            n_err += 1
            log.warning("%s", r.error)

        from tqdm.auto import tqdm

        bar = tqdm(total=len(pending), unit="report", desc="draft", disable=args.no_progress or not pending,
                   file=sys.stderr, dynamic_ncols=True)
        make_record = record_maker(drafter, (model, adapter, prompt_version), **common)

        def refuse_mixed(r: DraftResult, rec: dict[str, Any]) -> None:
            # The model or adapter is known once the backend answers: nothing of a different
            # kind is written; the drafts in flight are dropped.
            if made_by and not allow_mixed and r.draft is not None and not any(compatible(i, identity(rec)) for i in made_by):
                raise mixed_error(made_by, identity(rec), out_path)

        def progress(t: Tally) -> None:
            bar.update(1)
            bar.set_postfix(ok=t.ok, errors=n_err + t.errors, refresh=False)

        try:
            tally = write_drafts(drafter, pending, writer, make_record=make_record, batch_size=args.batch_size,
                                 max_consecutive_failures=args.max_consecutive_failures, before_write=refuse_mixed,
                                 progress=progress)
        finally:
            bar.close()
        n_ok, n_err, stopped = tally.ok, n_err + tally.errors, tally.stopped
    left = len(pending) - n_ok - (n_err - len(bad))
    summary = f"{n_ok} drafted, {n_err} errors, {skipped} already done"
    if duplicates:
        summary += f", {duplicates} duplicate ids skipped"
    if held:
        summary += f", {held} left for a later run (--limit)"
    if stopped is not None:
        raise ReportgenError(
            "E578", f"stopped after {args.max_consecutive_failures} studies in a row failed with the backend "
            f"unreachable ({summary}, {left} not tried); last error: {stopped.error}",
            fix="start or fix the server, then rerun the same command: it resumes and retries those studies",
        )
    print(f"reportgen draft: {summary} -> {out_path}", file=sys.stderr)
    return 1 if n_err else 0

