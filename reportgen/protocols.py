"""One Protocol per seam of the data flow. Backends implement these structurally.

Study --Drafter--> Report text --(claims)--> Claim --GraphExtractor--> EntityGraph
--(findings)--> Finding --Checker--> Verdict
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, Sequence, runtime_checkable

from reportgen.types import Claim, EntityGraph, EvidenceItem, Finding, Study, Verdict


@dataclass(frozen=True)
class Draft:
    """One drafted report (the JSONL record of `reportgen draft`, minus the error)."""

    id: str
    report: str
    model: str
    adapter: str | None
    prompt_version: str
    latency_s: float


@runtime_checkable
class Drafter(Protocol):
    """Drafts a report for each study. ``name`` identifies the backend and model."""

    name: str

    def draft(self, studies: Sequence[Study]) -> list[Draft]: ...


@runtime_checkable
class GraphExtractor(Protocol):
    """Text -> EntityGraph in the RadGraph schema; offsets into the given text."""

    name: str

    def extract(self, text: str) -> EntityGraph: ...

    def extract_many(self, texts: Sequence[str]) -> list[EntityGraph]: ...


@dataclass(frozen=True, slots=True)
class CheckedClaim:
    """A claim with what was read off it: its graph (report offsets) and findings."""

    claim: Claim
    graph: EntityGraph
    findings: tuple[Finding, ...]


@runtime_checkable
class Checker(Protocol):
    """Gives each claim a Verdict against evidence items (reference, self, image, ...)."""

    name: str

    def check(self, claims: Sequence[CheckedClaim], evidence: Sequence[EvidenceItem]) -> list[Verdict]: ...
