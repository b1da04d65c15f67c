"""What every backend shares with `reportgen draft`: one result per study, streamed.

``Drafter.draft(studies) -> list[Draft]`` (reportgen.protocols) is all-or-nothing. A batch
needs more: each study's outcome as soon as it is known (to append it to the output at
once), and a failed study as a value rather than an exception (so the batch goes on).
``iter_results`` gives that for any Drafter: it uses the backend's own streaming
``draft_iter`` when there is one (vllm: concurrent requests, results in completion order)
and otherwise calls ``draft`` batch by batch, redoing a failed batch study by study to find
the one that fails.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Iterable, Iterator, Sequence

from reportgen.errors import ReportgenError
from reportgen.protocols import Draft
from reportgen.types import Study

# Error kinds of a DraftResult. "unavailable" is transient (the server was down or
# overloaded): `reportgen draft` retries such records on the next run.
INPUT = "input"  # the study itself is bad (missing or unreadable image, bad record)
REQUEST = "request"  # the backend refused the request (HTTP 4xx, prompt too long, ...)
UNAVAILABLE = "unavailable"  # connection refused/reset, timeout, HTTP 5xx after retries
BACKEND = "backend"  # any other failure inside the backend
BAD_RESPONSE = "bad_response"  # the server answered something else than a completion of the model asked for
TRANSIENT_KINDS = frozenset({UNAVAILABLE, BAD_RESPONSE})


@dataclass(frozen=True)
class DraftResult:
    """The outcome for one study: a Draft, or an error message and its kind."""

    study_id: str
    draft: Draft | None = None
    error: str | None = None
    error_kind: str | None = None
    latency_s: float | None = None
    completion_tokens: int | None = None
    finish_reason: str | None = None
    token_ids: tuple[int, ...] | None = None

    @property
    def ok(self) -> bool:
        return self.draft is not None and self.error is None

    @property
    def transient(self) -> bool:
        return self.error_kind in TRANSIENT_KINDS


def error_kind_of(exc: BaseException) -> str:
    """Classify an exception raised while drafting one study."""
    kind = getattr(exc, "error_kind", None)
    if isinstance(kind, str):
        return kind
    if isinstance(exc, (FileNotFoundError, IsADirectoryError, PermissionError)):
        return INPUT
    if isinstance(exc, (ConnectionError, TimeoutError)):
        return UNAVAILABLE
    return BACKEND


def error_text(exc: BaseException) -> str:
    """A one-line message for an error record (never the report text)."""
    if isinstance(exc, ReportgenError):
        return str(exc)
    msg = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {msg}" if msg else type(exc).__name__


def failed(study_id: str, exc: BaseException, latency_s: float | None = None) -> DraftResult:
    return DraftResult(study_id, None, error_text(exc), error_kind_of(exc), latency_s)


def _chunks(items: Sequence[Study], size: int) -> Iterator[Sequence[Study]]:
    for i in range(0, len(items), max(1, size)):
        yield items[i : i + max(1, size)]


def iter_results(drafter: object, studies: Iterable[Study], *, batch_size: int | None = None) -> Iterator[DraftResult]:
    """One DraftResult per study, as soon as each is known (see the module docstring)."""
    stream = getattr(drafter, "draft_iter", None)
    if callable(stream):
        yield from stream(studies)
        return
    studies = list(studies)
    size = int(batch_size or getattr(drafter, "batch_size", None) or 1)
    for chunk in _chunks(studies, size):
        t0 = time.perf_counter()
        try:
            drafts = drafter.draft(chunk)  # type: ignore[attr-defined]
            if len(drafts) != len(chunk):
                raise ReportgenError("E579", f"backend returned {len(drafts)} drafts for {len(chunk)} studies")
        except Exception as exc:  # noqa: BLE001 - isolate the failing study below
            if len(chunk) > 1:
                for study in chunk:
                    yield from iter_results(drafter, [study], batch_size=1)
                continue
            yield failed(chunk[0].id, exc, time.perf_counter() - t0)
            continue
        for study, d in zip(chunk, drafts):
            yield DraftResult(study.id, d, latency_s=d.latency_s)


__all__ = [
    "BACKEND", "BAD_RESPONSE", "DraftResult", "INPUT", "REQUEST", "TRANSIENT_KINDS", "UNAVAILABLE",
    "error_kind_of", "error_text", "failed", "iter_results",
]
