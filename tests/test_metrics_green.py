"""GREEN-style error counts and hallucination rate on hand-computed examples."""

from __future__ import annotations

import pytest

from reportgen.evals.metrics.green import GreenCounts, green_counts, hallucination_rate
from reportgen.types import Finding


def F(obs, presence="present", **kw):
    return Finding(observation=obs, presence=presence, **kw)


def test_each_error_category():
    ref = [F("pleural effusion", laterality="left", severity="small"), F("cardiomegaly", severity="mild"),
           F("opacity", locations=("lower lobe",), laterality="right"), F("pneumothorax", "absent"),
           F("atelectasis", change="improved")]
    cand = [
        F("pleural effusion", laterality="left", severity="large"),  # wrong severity
        F("cardiomegaly", severity="mild", change="new"),  # matched, false comparison
        F("opacity", locations=("upper lobe",), laterality="right"),  # wrong location
        F("pneumothorax", "absent"),  # matched (negative)
        F("pneumonia"),  # false finding
        F("atelectasis"),  # matched, missed comparison
    ]
    g = green_counts(cand, ref)
    assert g == GreenCounts(false_finding=1, missed_finding=0, wrong_location=1, wrong_severity=1,
                            false_comparison=1, missed_comparison=1, matched=3)
    assert g.score == pytest.approx(3 / (3 + 5))


def test_missed_and_duplicates_and_normal_reports():
    ref = [F("cardiomegaly"), F("pleural effusion", laterality="right")]
    cand = [F("cardiomegaly"), F("cardiomegaly"), F("pleural effusion", "absent")]  # duplicate counts once
    g = green_counts(cand, ref)
    assert (g.matched, g.missed_finding, g.false_finding) == (1, 1, 0)
    normal = green_counts([F("pneumothorax", "absent"), F("abnormality", "absent")], [F("pneumothorax", "absent")])
    assert normal.matched == 1 and normal.errors == 0 and normal.score == 1.0
    assert green_counts([], [F("edema")]).score == 0.0  # nothing matched
    # Sides: unspecified or bilateral is no location error; change synonyms agree.
    assert green_counts([F("pleural effusion")], [F("pleural effusion", laterality="left")]).errors == 0
    assert green_counts([F("atelectasis", change="improving")], [F("atelectasis", change="improved")]).errors == 0
    assert green_counts([F("pleural effusion", laterality="right")], [F("pleural effusion", laterality="left")]).wrong_location == 1
    assert (GreenCounts(matched=1) + GreenCounts(false_finding=2)).to_dict()["errors"] == 2


def test_hallucination_rate():
    h = hallucination_rate(["supported", "unsupported", "contradicted", "uncertain", "error"])
    assert (h.flagged, h.total, h.rate) == (2, 4, 0.5)
    assert hallucination_rate([]).to_dict()["rate"] is None


def test_temporal_words_are_not_comparisons():
    # "acute" / "chronic" (rules lexicon change values) state no comparison with a prior.
    assert green_counts([F("fracture", change="acute")], [F("fracture")]).errors == 0
    assert green_counts([F("scarring")], [F("scarring", change="chronic")]).errors == 0
    assert green_counts([F("pleural effusion", change="stable")], [F("pleural effusion", change="new")]).false_comparison == 1
