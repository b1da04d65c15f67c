"""One Protocol per seam of the data flow. Backends implement these structurally.

Study --Drafter--> Report text --ClaimSplitter--> Claim --GraphExtractor--> EntityGraph
--(findings)--> Finding --Checker--> Verdict

A GraphExtractor that is also a SentenceAnalyzer (the rules extractor) exposes its reading
of one sentence; the rules claim splitter uses it to split coordinations, and
``read_report`` then reads claims and graphs in one pass.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol, Sequence, runtime_checkable

from reportgen.types import Claim, EntityGraph, EvidenceItem, Finding, Report, Study, Verdict


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


@runtime_checkable
class SentenceAnalyzer(Protocol):
    """A graph extractor's reading of one sentence, for the claim splitter.

    ``analyze(sentence)`` returns an object with ``graph`` (the sentence's EntityGraph,
    sentence offsets) and ``mentions``: the matched phrases in text order, each with ``i``
    (token index), ``start``/``end`` (characters), ``role`` (``R_OBS``, ``R_ANAT``,
    ``R_NORMAL``, ``R_CUE``, ``R_MOD``, ... of ``reportgen.checkers.graphs.rules``),
    ``label`` (RadGraph label), ``coord`` (coordinator text or None), ``term``
    (terminator), ``cop`` (copula) and ``kind`` (cue kinds, read with
    ``reportgen.checkers.graphs.rules.cue_has``). ``lexicon``: the lexicon it matched with.
    ``reportgen.checkers.graphs.rules.RulesExtractor`` implements it.
    """

    name: str
    lexicon: Any

    def analyze(self, sentence: str, cached: bool = True) -> Any: ...


@runtime_checkable
class ClaimSplitter(Protocol):
    """Report -> atomic claims, offsets into ``report.text`` (``sentence_start``/``_end``
    set). ``include_context``: also the context sections (INDICATION, COMPARISON, ...)."""

    name: str

    def split(self, report: Report, *, include_context: bool = False) -> tuple[Claim, ...]: ...


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
