"""RadFact-style logical and grounding precision/recall (Bannur et al. 2024, MAIRA-2).

Logical precision is the share of candidate phrases (claims) entailed by the reference;
logical recall the share of reference phrases entailed by the candidate. Who decides
entailment is pluggable; each phrase gets a :class:`Judged`:

- ``judged_from_verdict``: the graph checker's verdict of the phrase against the other
  report (the default in ``reportgen eval``): supported -> entailed; contradicted or
  unsupported -> not entailed; a hedged phrase whose finding the other side mentions
  without denying it -> entailed; an abstention (no finding to compare, e.g. "Comparison
  made to prior study") -> not scored. The graph checker reads an unmentioned finding in
  a reference as absent (CheXpert convention), so "No pneumothorax" is entailed by a
  reference that does not mention pneumothorax; RadFact's LLM would say not entailed.
- ``findings_entailment``: a strict comparison of findings (every finding of the phrase
  must be stated on the other side: same observation and presence, and the other side at
  least as specific in side, zone, severity and change for positive findings, at most as
  specific for negative ones); a phrase without findings is not scored.
- ``reportgen.evals.metrics.judge``: an LLM judge; a failed call gives ``Judged(None, error=...)``,
  counted as an error and excluded, never scored "not entailed".

Grounding (phrases with boxes, RadFact's grounded JSON): a phrase's boxes are spatially
entailed when the phrase is logically entailed and the pixel precision of its boxes
against the union of its evidence phrases' boxes exceeds 0.5. Boxes are rasterised on a
224 x 224 grid (RadFact's default ``image_size``): a normalised box covers the grid cells
``int(x_min*224) <= x < int(x_max*224)`` (and the same for y). Then, with RadFact's names:

- ``spatial_precision``: candidate phrases with boxes whose boxes are entailed / candidate
  phrases with boxes (``spatial_recall`` the same for the reference);
- ``grounding_precision``: the same, over logically entailed phrases with boxes only.

Per report a fraction with an empty denominator is NaN; corpus figures are the mean over
reports ignoring NaN (RadFact's ``from_aggregate``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Mapping, Sequence

import numpy as np

from reportgen.errors import ReportgenError
# The grounded-report types live in the core (one definition, shared with the region
# checker); re-exported here for compatibility.
from reportgen.grounding import Box, GroundedExample, GroundedPhrase, parse_grounded_examples  # noqa: F401
from reportgen.types import FLAGGED, Finding, Verdict

GRID = 224
BOX_PRECISION_THRESHOLD = 0.5
# The graph checker's score of a hedged claim the evidence does not deny ("uncertain" in
# checkers/data/checking.json; a denied hedge scores lower).
HEDGE_CONFIRMED = 0.5


@dataclass(frozen=True)
class Judged:
    """Whether a phrase is entailed by the other report. ``entailed`` None: not scored,
    either because nothing could be compared or because the judge failed (``error``).
    ``evidence``: indices of the other report's phrases that decided it."""

    entailed: bool | None
    evidence: tuple[int, ...] = ()
    error: str | None = None


def box_mask(boxes: Iterable[Box], grid: int = GRID) -> np.ndarray:
    mask = np.zeros((grid, grid), dtype=bool)
    for b in boxes:
        x1, y1, x2, y2 = (int(b.x_min * grid), int(b.y_min * grid), int(b.x_max * grid), int(b.y_max * grid))
        mask[x1:x2, y1:y2] = True
    return mask


def box_precision(boxes: Sequence[Box], evidence_boxes: Sequence[Box], grid: int = GRID) -> float:
    """Pixel precision of ``boxes`` against the union of ``evidence_boxes`` (NaN if empty)."""
    pred = box_mask(boxes, grid)
    area = pred.sum()
    if area == 0:
        return float("nan")
    return float((pred & box_mask(evidence_boxes, grid)).sum() / area)


def boxes_entailed(boxes: Sequence[Box], evidence_boxes: Sequence[Box], grid: int = GRID,
                   threshold: float = BOX_PRECISION_THRESHOLD) -> bool:
    if not evidence_boxes:
        return False
    p = box_precision(boxes, evidence_boxes, grid)
    return bool(p > threshold)


@dataclass(frozen=True)
class OneWay:
    """One direction (candidate -> reference, or back)."""

    entailed_fraction: float
    full_box_fraction: float
    entailed_box_fraction: float
    n_phrases: int
    n_with_boxes: int
    n_unscored: int
    n_errors: int


def _div(a: int, b: int) -> float:
    return a / b if b else float("nan")


def one_way(phrases: Sequence[GroundedPhrase], judged: Sequence[Judged], premises: Sequence[GroundedPhrase] = (),
            grid: int = GRID, threshold: float = BOX_PRECISION_THRESHOLD) -> OneWay:
    """Fractions of ``phrases`` entailed (logically; and with their boxes) by ``premises``."""
    if len(phrases) != len(judged):
        raise ReportgenError("E423", f"{len(judged)} judgements for {len(phrases)} phrases", fix="judge every phrase once")
    scored = [(p, j) for p, j in zip(phrases, judged) if j.entailed is not None]
    entailed = [(p, j) for p, j in scored if j.entailed]
    boxed = [(p, j) for p, j in scored if p.boxes]
    spatial = 0
    for p, j in boxed:
        if j.entailed:
            ev = [b for i in j.evidence if 0 <= i < len(premises) for b in (premises[i].boxes or ())]
            spatial += boxes_entailed(p.boxes, ev, grid, threshold)
    entailed_boxed = sum(1 for p, j in boxed if j.entailed)
    return OneWay(
        entailed_fraction=_div(len(entailed), len(scored)),
        full_box_fraction=_div(spatial, len(boxed)),
        entailed_box_fraction=_div(spatial, entailed_boxed),
        n_phrases=len(scored), n_with_boxes=len(boxed),
        n_unscored=sum(1 for j in judged if j.entailed is None and j.error is None),
        n_errors=sum(1 for j in judged if j.error is not None),
    )


@dataclass(frozen=True)
class RadFactScore:
    logical_precision: float
    logical_recall: float
    spatial_precision: float
    spatial_recall: float
    grounding_precision: float
    grounding_recall: float
    n_candidate_phrases: float
    n_reference_phrases: float
    n_candidate_phrases_with_boxes: float
    n_reference_phrases_with_boxes: float
    n_unscored: int = 0
    n_errors: int = 0

    @property
    def logical_f1(self) -> float:
        p, r = self.logical_precision, self.logical_recall
        return 2 * p * r / (p + r) if (p + r) > 0 else (float("nan") if np.isnan(p + r) else 0.0)

    def to_dict(self) -> dict[str, float | int | None]:
        out = {k: getattr(self, k) for k in self.__dataclass_fields__}
        out["logical_f1"] = self.logical_f1
        return {k: (None if isinstance(v, float) and np.isnan(v) else v) for k, v in out.items()}


def radfact_score(candidate: Sequence[GroundedPhrase], candidate_judged: Sequence[Judged],
                  reference: Sequence[GroundedPhrase], reference_judged: Sequence[Judged], *,
                  grid: int = GRID, threshold: float = BOX_PRECISION_THRESHOLD) -> RadFactScore:
    """One report pair: candidate phrases judged against the reference and vice versa."""
    c = one_way(candidate, candidate_judged, reference, grid, threshold)
    r = one_way(reference, reference_judged, candidate, grid, threshold)
    return RadFactScore(
        c.entailed_fraction, r.entailed_fraction, c.full_box_fraction, r.full_box_fraction,
        c.entailed_box_fraction, r.entailed_box_fraction, c.n_phrases, r.n_phrases, c.n_with_boxes, r.n_with_boxes,
        c.n_unscored + r.n_unscored, c.n_errors + r.n_errors,
    )


def logical_score(candidate_judged: Sequence[Judged], reference_judged: Sequence[Judged]) -> RadFactScore:
    """Logical precision/recall of one pair of ungrounded reports."""
    cand = [GroundedPhrase("")] * len(candidate_judged)
    ref = [GroundedPhrase("")] * len(reference_judged)
    return radfact_score(cand, candidate_judged, ref, reference_judged)


def aggregate(scores: Sequence[RadFactScore]) -> RadFactScore:
    """Corpus figures: NaN-ignoring means over reports, summed unscored/error counts."""
    if not scores:
        return RadFactScore(*([float("nan")] * 6), 0.0, 0.0, 0.0, 0.0)

    def mean(name: str) -> float:
        v = np.array([getattr(s, name) for s in scores], dtype=float)
        return float(np.nanmean(v)) if not np.all(np.isnan(v)) else float("nan")

    names = list(RadFactScore.__dataclass_fields__)[:10]
    return RadFactScore(*(mean(n) for n in names), sum(s.n_unscored for s in scores), sum(s.n_errors for s in scores))


# --- entailment sources -------------------------------------------------------------------

def _covers(general: Finding, specific: Finding) -> bool:
    """``specific`` says at least everything ``general`` says about side, zone, severity, change."""
    if general.laterality and general.laterality != specific.laterality:
        if not (specific.laterality == "bilateral" and general.laterality in ("right", "left")):
            return False
    if not set(general.locations) <= set(specific.locations):
        return False
    if general.severity and general.severity != specific.severity:
        return False
    if general.change and general.change != specific.change:
        return False
    return True


def finding_entailed(hypothesis: Finding, premise: Finding) -> bool:
    """Does ``premise`` state ``hypothesis``? Same observation and presence; a positive
    premise must be at least as specific, a negative one at most as specific ("no
    effusion" entails "no right effusion", not the other way round)."""
    if hypothesis.observation != premise.observation or hypothesis.presence != premise.presence:
        return False
    if hypothesis.presence == "absent":
        return _covers(premise, hypothesis)
    return _covers(hypothesis, premise)


def findings_entailment(hypotheses: Sequence[Sequence[Finding]], premises: Sequence[Sequence[Finding]]) -> list[Judged]:
    """Judge each hypothesis phrase (its findings) against the premise phrases' findings."""
    out = []
    for fs in hypotheses:
        if not fs:
            out.append(Judged(None))
            continue
        evidence: list[int] = []
        ok = True
        for f in fs:
            hits = [i for i, ps in enumerate(premises) if any(finding_entailed(f, p) for p in ps)]
            if not hits:
                ok = False
                break
            evidence.extend(h for h in hits if h not in evidence)
        out.append(Judged(True, tuple(evidence)) if ok else Judged(False))
    return out


def judged_from_verdict(verdict: Verdict, evidence_index: Mapping[tuple[int, int], int] | None = None) -> Judged:
    """A graph-checker verdict as a RadFact judgement (see the module docstring).

    ``evidence_index`` maps an evidence item's ``(start, end)`` to the premise phrase index,
    or items carry ``meta["phrase"]``.
    """
    def indices() -> tuple[int, ...]:
        out = []
        for item in verdict.evidence:
            i = item.meta.get("phrase") if item.meta else None
            if i is None and evidence_index is not None:
                i = evidence_index.get((item.start, item.end))
            if isinstance(i, int) and i not in out:
                out.append(i)
        return tuple(out)

    status = verdict.status
    if status == "error":
        return Judged(None, error="; ".join(verdict.reasons) or "checker error")
    if status == "supported":
        return Judged(True, indices())
    if status in FLAGGED:
        return Judged(False, indices())
    if verdict.score is None:  # abstention: nothing to compare
        return Judged(None)
    # A hedged claim: entailed when the other side mentions the finding without denying it
    # (the graph checker scores a denied hedge below HEDGE_CONFIRMED, checkers/data/checking.json).
    return Judged(bool(verdict.evidence) and verdict.score >= HEDGE_CONFIRMED, indices())
