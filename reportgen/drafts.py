"""The drafts file and the studies file: reading, resuming and the drafting loop.

Shared by ``reportgen draft`` (reportgen/commands/draft.py) and ``reportgen run``
(reportgen/run.py), so both write the same records the same way:

- ``load_studies``: (id, Study or None, error, kind) per line of a studies JSONL;
- ``scan_output`` / ``to_retry`` / ``drop_records``: what an existing drafts file holds,
  what to redo, and rewriting it without those records;
- ``draft_record`` / ``describe_drafter`` / ``run_fields``: one output record;
- ``identity`` / ``compatible`` / ``mixed_error``: what made a draft (a rerun with another
  backend, model, adapter, task or template refuses, E903);
- ``write_drafts``: the loop that drafts the pending studies into an open writer and stops
  after a run of failures with the backend unreachable.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

from reportgen.errors import ReportgenError, error_code
from reportgen.jsonl import written_records

log = logging.getLogger("reportgen.drafts")


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
def load_studies(path: Path, allow_outside_root: bool = False) -> Iterator[tuple[str, Any, str | None, str | None]]:
    """(id, Study or None, error, error_kind) per input line; relative image paths are
    resolved against the studies file's folder; missing images and images outside that
    folder (unless ``allow_outside_root``) are input errors."""
    from reportgen.backends.base import INPUT
    from reportgen.jsonl import read_jsonl
    from reportgen.prompting import clean_optional_fields
    from reportgen.paths import image_path, not_an_image_file
    from reportgen.types import Study

    base = path.resolve().parent
    for rec in read_jsonl(path, require=("id",)):
        sid = rec.fallback_id()
        if rec.error:
            yield sid, None, rec.error, INPUT
            continue
        data = dict(rec.data or {})
        problem = clean_optional_fields(data)  # "" or whitespace: absent, as in `train`
        if problem:
            yield sid, None, f"{rec.where}: {problem}", INPUT
            continue
        images = data.get("images", data.get("image", ()))
        if isinstance(images, str):
            images = [images]
        if not isinstance(images, (list, tuple)) or not images or not all(isinstance(i, str) and i for i in images):
            yield sid, None, f"{rec.where}: E575 'images' must be a non-empty list of image paths", INPUT
            continue
        resolved = []
        missing = outside = None
        for n, img in enumerate(images):
            p, outside = image_path(img, base, allow_outside=allow_outside_root)
            if outside is not None:
                outside = f"{rec.where}: images[{n}]: {outside}"
                break
            if not p.is_file():
                missing = (img, not_an_image_file(p))
                break
            resolved.append(str(p))
        if outside is not None:
            yield sid, None, outside, INPUT
            continue
        if missing is not None:
            yield sid, None, f"{rec.where}: E576 image {missing[0]!r} {missing[1]} (relative paths are read from {str(base)!r})", INPUT
            continue
        data["images"] = resolved
        data.pop("image", None)
        try:
            study = Study.from_dict(data)
        except (ReportgenError, TypeError, ValueError) as e:
            yield sid, None, f"{rec.where}: {e}", INPUT
            continue
        yield sid, study, None, None


# -- records ------------------------------------------------------------------------------
def draft_record(result, *, backend: str, task: str, model: str | None, adapter: str | None, prompt_version: str | None,
            extra: dict[str, Any] | None = None) -> dict[str, Any]:
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
    rec.update(extra or {})
    if result.completion_tokens is not None:
        rec["completion_tokens"] = result.completion_tokens
    if result.finish_reason is not None:
        rec["finish_reason"] = result.finish_reason
    return rec


def describe_drafter(drafter: Any) -> tuple[str | None, str | None, str | None]:
    """(model, adapter, prompt_version) for error records, without contacting anything."""
    model = getattr(drafter, "model_name", None) or getattr(drafter, "model", None) or getattr(drafter, "requested_model", None)
    adapter = getattr(drafter, "adapter", None)
    resolved = getattr(drafter, "_resolved", None)
    if resolved:
        model, adapter = resolved[1], resolved[2]
    model = model if isinstance(model, str) else getattr(model, "name_or_path", None)
    adapter = adapter if isinstance(adapter, str) or adapter is None else str(adapter)
    return model, adapter, getattr(drafter, "prompt_version", None)


def run_fields(drafter: Any) -> dict[str, Any]:
    """Keys every record of this run carries besides the contract: the prompt template's
    content hash, the image policy and the full generation settings, when the backend
    says them."""
    out: dict[str, Any] = {}
    sha = getattr(drafter, "prompt_sha256", None)
    if isinstance(sha, str):
        out["prompt_sha256"] = sha
    policy = getattr(drafter, "policy", None)
    if policy is not None and hasattr(policy, "to_dict"):
        out["image_policy"] = policy.to_dict()
    gen = getattr(drafter, "generation_config", None)
    if isinstance(gen, dict):
        out["generation"] = dict(gen)
    return out


IDENTITY = ("backend", "model", "adapter", "task", "prompt_version")


def identity(rec: dict[str, Any]) -> tuple[Any, ...]:
    """What made a draft: backend kind (and model path for hf), model, adapter, task, template.

    A vllm server's URL is not part of it (a restarted server on another port serves the
    same model); its base model and adapter names are."""
    backend = rec.get("backend")
    if isinstance(backend, str) and backend:
        kind = backend.split(":", 1)[0]
        backend = backend if kind == "hf" else kind
    return (backend or None, rec.get("model"), rec.get("adapter"), rec.get("task"), rec.get("prompt_version"))


def compatible(old: tuple[Any, ...], new: tuple[Any, ...], fields: tuple[str, ...] = IDENTITY) -> bool:
    """Equal in ``fields``; a field an older record does not carry (None) matches anything,
    except ``adapter``, where None means the base model."""
    for n, key in enumerate(IDENTITY):
        if key not in fields:
            continue
        if key == "adapter":
            if old[n] != new[n] and old[0] is not None:
                return False
        elif old[n] is not None and new[n] is not None and old[n] != new[n]:
            return False
    return True


def _show(ident: tuple[Any, ...]) -> str:
    return ", ".join(f"{k} {v!r}" for k, v in zip(IDENTITY, ident))


def mixed_error(existing: set[tuple[Any, ...]], new: tuple[Any, ...], out: Path) -> ReportgenError:
    have = "; ".join(sorted(_show(i) for i in existing))
    differs = [k for n, k in enumerate(IDENTITY) if new[n] is not None and all(i[n] != new[n] for i in existing)]
    return ReportgenError(
        "E903", f"{out.name} holds drafts made with {have}; this run's {', '.join(differs) or 'drafts'} "
        f"differ ({_show(new)})",
        fix="write to another --out, or pass --allow-mixed to add them to this file anyway",
    )


def record_maker(drafter: Any, described: tuple[Any, Any, Any] | None = None,
                 **common: Any) -> Callable[[Any], dict[str, Any]]:
    """``result -> draft record`` for one run: ``common`` keys (backend, task, extra) on every
    record; an error record names the model, adapter and template the backend said it serves
    (``described``, else asked of the drafter now; asked again after each failure, since a
    server may have answered in between)."""
    said = list(described if described is not None else
                (describe_drafter(drafter) if drafter is not None else (None, None, None)))

    def make(result: Any) -> dict[str, Any]:
        if result.draft is None and drafter is not None:
            said[:] = describe_drafter(drafter)
        return draft_record(result, model=said[0], adapter=said[1], prompt_version=said[2], **common)

    return make


@dataclass
class Todo:
    """What a drafting run has to do: the studies to draft, the lines that cannot be drafted
    (error results to write), every study id in input order, and the ids skipped as
    repeats of an earlier line (the first one is drafted)."""

    pending: list[Any] = field(default_factory=list)
    bad: list[Any] = field(default_factory=list)
    order: list[str] = field(default_factory=list)
    duplicates: list[str] = field(default_factory=list)


def studies_to_draft(path: Path, done: set[str], allow_outside_root: bool = False) -> Todo:
    """The studies of ``path`` not in ``done``, as ``Todo`` (see ``load_studies``)."""
    from reportgen.backends.base import DraftResult

    todo = Todo()
    seen: set[str] = set()
    for sid, study, error, kind in load_studies(path, allow_outside_root):
        if sid in seen:
            todo.duplicates.append(sid)
            continue
        seen.add(sid)
        todo.order.append(sid)
        if sid in done:
            continue
        if study is None:
            todo.bad.append(DraftResult(sid, None, error, kind))
        else:
            todo.pending.append(study)
    return todo


@dataclass
class Tally:
    """What ``write_drafts`` did: drafted, errors, the ids written, and the result that
    stopped the loop (a transient failure that ended a run of them), if any."""

    ok: int = 0
    errors: int = 0
    written: set[str] = field(default_factory=set)
    stopped: Any = None


def write_drafts(drafter: Any, pending: list[Any], writer: Any, *, make_record: Callable[[Any], dict[str, Any]],
                 batch_size: int = 1, max_consecutive_failures: int | None = None,
                 before_write: Callable[[Any, dict[str, Any]], None] | None = None,
                 progress: Callable[[Tally], None] | None = None) -> Tally:
    """Draft ``pending`` studies with ``drafter`` and write each record (``make_record(result)``)
    as soon as it is back. ``before_write(result, record)`` may refuse a record by raising
    (nothing of it is written). After ``max_consecutive_failures`` transient failures in a
    row the loop stops (``Tally.stopped``); the studies not tried are left to the caller.
    The drafter's result stream and the drafter are closed in every case."""
    from reportgen.backends.base import iter_results

    tally = Tally()
    results = iter_results(drafter, pending, batch_size=batch_size) if drafter is not None and pending else iter(())
    streak = 0
    try:
        for r in results:
            rec = make_record(r)
            if before_write is not None:
                before_write(r, rec)
            writer.write(rec)
            tally.written.add(r.study_id)
            if r.draft is not None:
                tally.ok += 1
                streak = 0
            else:
                tally.errors += 1
                log.warning("study %s: %s", r.study_id, r.error)
                streak = streak + 1 if r.transient else 0
                if max_consecutive_failures and streak >= max_consecutive_failures:
                    tally.stopped = r
                    break
            if progress is not None:
                progress(tally)
    finally:
        close = getattr(results, "close", None)
        if close:
            close()  # cancels queued requests of a streaming backend
        if drafter is not None and hasattr(drafter, "close"):
            drafter.close()
    return tally
