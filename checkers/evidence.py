"""Evidence items for the checkers, built from read reports (and, later, images).

An :class:`~reportgen.types.EvidenceItem` is one thing a claim can be compared with: a
claim of a reference report (source ``"reference"``), a claim of another sentence of the
same report (source ``"self"``), or an image region (source ``"image"``, added by the
region checker: a description as ``text``, findings such as
``Finding("opacity", "present", "right", ("lower lobe",))``, its score and the zone/box in
``meta``). Checkers never need to know where a finding came from beyond ``source``.

Every claim of the evidence report becomes one item, also claims without findings (so
the checker knows the source was given even when nothing in it could be read).
``meta`` carries the claim's section and sentence span: the graph checker skips self
evidence from the claim's own sentence ("No pleural effusion or pneumothorax." does not
support itself).
"""

from __future__ import annotations

from typing import Protocol, Sequence

from reportgen.protocols import CheckedClaim
from reportgen.types import EvidenceItem, Report

REFERENCE = "reference"
SELF = "self"
IMAGE = "image"


class ReadLike(Protocol):
    """What evidence needs of a read report (reportgen.checkers.read.ReadReport has it)."""

    report: Report
    claims: tuple[CheckedClaim, ...]


def evidence_from_claims(claims: Sequence[CheckedClaim], source: str) -> tuple[EvidenceItem, ...]:
    """One EvidenceItem per claim: its text, span, findings, section and sentence span."""
    out = []
    for cc in claims:
        c = cc.claim
        out.append(EvidenceItem(source, c.text, c.start, c.end, cc.findings, None, {
            "section": c.section,
            "sentence_start": c.sentence_start if c.sentence_start is not None else c.start,
            "sentence_end": c.sentence_end if c.sentence_end is not None else c.end,
        }))
    return tuple(out)


def reference_evidence(read: ReadLike) -> tuple[EvidenceItem, ...]:
    """Evaluation mode: every claim of a reference report, source "reference"."""
    return evidence_from_claims(read.claims, REFERENCE)


def self_evidence(read: ReadLike) -> tuple[EvidenceItem, ...]:
    """Internal consistency: every claim of the report itself, source "self" (the checker
    compares each claim with the other sentences, findings vs impression included)."""
    return evidence_from_claims(read.claims, SELF)
