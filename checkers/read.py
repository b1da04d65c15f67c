"""The one entry point from text to checked-claim material: sections, claims, graphs, findings.

    >>> from checkers.read import read_report
    >>> rr = read_report("FINDINGS: No pleural effusion or pneumothorax. Mild cardiomegaly.")
    >>> [(c.claim.text, [(f.observation, f.presence) for f in c.findings]) for c in rr.claims]
    [('No pleural effusion.', [('pleural effusion', 'absent')]), ('No pneumothorax.', [('pneumothorax', 'absent')]), ('Mild cardiomegaly.', [('cardiomegaly', 'present')])]

Offsets (claims, entities, findings) are into the text given.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Sequence

from checkers.claims import split_claims, split_sections
from checkers.findings import findings_from_graph
from checkers.graphs import claim_graphs, resolve_extractor
from reportgen.errors import ReportgenError
from reportgen.protocols import CheckedClaim, GraphExtractor
from reportgen.types import Report


@dataclass(frozen=True)
class ReadReport:
    """A report read for checking: its sections and its claims with graphs and findings."""

    report: Report
    claims: tuple[CheckedClaim, ...]

    def to_dict(self) -> dict:
        return {
            "report": self.report.to_dict(),
            "claims": [
                {"claim": c.claim.to_dict(), "graph": c.graph.to_dict(), "findings": [f.to_dict() for f in c.findings]}
                for c in self.claims
            ],
        }


def read_report(text: str | Report, extractor: GraphExtractor | str = "rules", *, include_context: bool = False) -> ReadReport:
    """Sections, atomic claims, per-claim graphs (report offsets) and findings of ``text``.

    ``extractor``: "rules" (default), "radgraph", or any GraphExtractor. Context sections
    (INDICATION, COMPARISON, HISTORY, TECHNIQUE) give claims only with ``include_context``.
    """
    if isinstance(text, Report):
        report = text if text.sections or not text.text.strip() else split_sections(text.text)
    elif isinstance(text, str):
        report = split_sections(text)
    else:
        raise ReportgenError("E230", f"read_report needs report text (str), got {type(text).__name__}", fix="pass the report as a string")
    ex = resolve_extractor(extractor)
    splitter = ex if hasattr(ex, "analyze") else None
    claims = split_claims(report, include_context=include_context, extractor=splitter)
    if not claims:
        return ReadReport(report, ())
    graphs = claim_graphs(ex, report, claims)
    lex = getattr(ex, "lexicon", None)
    checked = tuple(
        CheckedClaim(c, g, findings_from_graph(g, lex) if lex is not None else findings_from_graph(g))
        for c, g in zip(claims, graphs)
    )
    return ReadReport(report, checked)


def read_many(texts: Iterable[str | Report], extractor: GraphExtractor | str = "rules", *, include_context: bool = False) -> list[ReadReport]:
    """``read_report`` for many texts with one extractor (model backends batch sentences)."""
    ex = resolve_extractor(extractor)
    return [read_report(t, ex, include_context=include_context) for t in texts]


__all__ = ["ReadReport", "read_report", "read_many"]
