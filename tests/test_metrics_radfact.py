"""RadFact-style logical and grounding precision/recall on hand-computed examples."""

from __future__ import annotations

import json
import math

import pytest

from reportgen.evals.metrics.radfact import (
    Box, GroundedPhrase, Judged, aggregate, box_precision, boxes_entailed, finding_entailed,
    findings_entailment, judged_from_verdict, logical_score, parse_grounded_examples, radfact_score,
)
from reportgen.errors import ReportgenError
from reportgen.types import Claim, EvidenceItem, Finding, Verdict


def test_box_precision_on_a_small_grid():
    pred = [Box(0, 0, 0.5, 0.5)]  # cells x 0..4, y 0..4 on a 10 grid: 25
    left = Box(0, 0, 0.25, 0.5)  # x 0..1 (int(2.5) = 2), y 0..4: 10 cells
    top = Box(0.2, 0, 0.5, 0.3)  # x 2..4, y 0..2: 9 cells
    assert box_precision(pred, [left], grid=10) == pytest.approx(10 / 25)
    assert not boxes_entailed(pred, [left], grid=10)
    assert box_precision(pred, [left, top], grid=10) == pytest.approx(19 / 25)
    assert boxes_entailed(pred, [left, top], grid=10)
    assert not boxes_entailed(pred, [], grid=10)
    assert math.isnan(box_precision([Box(0.1, 0.1, 0.1, 0.2)], [left], grid=10))


def test_radfact_score_by_hand():
    box_a = (Box(0.1, 0.1, 0.4, 0.4),)
    box_far = (Box(0.6, 0.6, 0.9, 0.9),)
    cand = [GroundedPhrase("A", box_a), GroundedPhrase("B", box_far), GroundedPhrase("C", box_a), GroundedPhrase("D"), GroundedPhrase("E")]
    ref = [GroundedPhrase("a", box_a), GroundedPhrase("b")]
    cj = [Judged(True, (0,)), Judged(True, (0,)), Judged(False), Judged(None), Judged(None, error="timeout")]
    rj = [Judged(True, (0,)), Judged(False)]
    s = radfact_score(cand, cj, ref, rj)
    # candidate: scored A, B, C (D unscored, E a judge error): 2 of 3 entailed; boxed A, B, C;
    # A's boxes lie inside a's, B's do not.
    assert s.logical_precision == pytest.approx(2 / 3)
    assert s.spatial_precision == pytest.approx(1 / 3)
    assert s.grounding_precision == pytest.approx(1 / 2)
    # reference: a entailed with boxes inside A's; b not entailed, no boxes.
    assert s.logical_recall == pytest.approx(1 / 2)
    assert s.spatial_recall == 1.0 and s.grounding_recall == 1.0
    assert s.n_candidate_phrases == 3 and s.n_candidate_phrases_with_boxes == 3
    assert s.n_unscored == 1 and s.n_errors == 1
    assert s.logical_f1 == pytest.approx(2 * (2 / 3) * 0.5 / (2 / 3 + 0.5))


def test_aggregate_ignores_nan():
    a = logical_score([Judged(True), Judged(False)], [Judged(True)])
    b = logical_score([], [Judged(False)])  # no candidate phrase: precision NaN
    agg = aggregate([a, b])
    assert agg.logical_precision == 0.5
    assert agg.logical_recall == 0.5
    assert math.isnan(agg.spatial_precision)
    assert agg.to_dict()["spatial_precision"] is None


def F(obs, presence="present", **kw):
    return Finding(observation=obs, presence=presence, **kw)


def test_findings_entailment_specificity():
    assert finding_entailed(F("pleural effusion"), F("pleural effusion", laterality="right"))
    assert not finding_entailed(F("pleural effusion", laterality="right"), F("pleural effusion"))
    assert finding_entailed(F("pleural effusion", laterality="right"), F("pleural effusion", laterality="bilateral"))
    assert finding_entailed(F("pleural effusion", "absent", laterality="right"), F("pleural effusion", "absent"))
    assert not finding_entailed(F("pleural effusion", "absent"), F("pleural effusion", "absent", laterality="right"))
    assert not finding_entailed(F("pneumothorax"), F("pneumothorax", "absent"))
    assert not finding_entailed(F("opacity", locations=("upper lobe",)), F("opacity", locations=("lower lobe",)))
    assert not finding_entailed(F("cardiomegaly", severity="mild"), F("cardiomegaly", severity="moderate"))
    judged = findings_entailment(
        [[F("cardiomegaly")], [F("pneumothorax", "absent"), F("pleural effusion", "absent")], [], [F("edema")]],
        [[F("pleural effusion", "absent")], [F("cardiomegaly", severity="mild"), F("pneumothorax", "absent")]],
    )
    assert judged == [Judged(True, (1,)), Judged(True, (1, 0)), Judged(None), Judged(False)]


def test_judged_from_graph_checker_verdicts():
    claim = Claim("Mild cardiomegaly.", "findings", 0, 18)
    item = EvidenceItem("reference", "Heart is mildly enlarged.", 5, 30, meta={"phrase": 2})
    assert judged_from_verdict(Verdict(claim, "supported", ("ok",), (item,), "graph", 1.0)) == Judged(True, (2,))
    assert judged_from_verdict(Verdict(claim, "contradicted", (), (item,), "graph", 0.0)) == Judged(False, (2,))
    assert judged_from_verdict(Verdict(claim, "unsupported", (), (), "graph", 0.0)) == Judged(False)
    assert judged_from_verdict(Verdict(claim, "uncertain", (), (), "graph", None)) == Judged(None)
    bare = EvidenceItem("reference", "x", 5, 30)
    assert judged_from_verdict(Verdict(claim, "uncertain", (), (bare,), "graph", 0.5), {(5, 30): 0}) == Judged(True, (0,))
    assert judged_from_verdict(Verdict(claim, "uncertain", (), (bare,), "graph", 0.3)).entailed is False
    err = judged_from_verdict(Verdict(claim, "error", ("E310 boom",), (), "graph", None))
    assert err.entailed is None and err.error == "E310 boom"


@pytest.mark.parametrize("source, n", [("tests/data", 4), pytest.param("radfact", 20, marks=pytest.mark.shared)])
def test_parse_radfact_grounded_examples(request, source, n):
    """tests/data/grounded_examples.json is hand-written in RadFact's format; RadFact's own
    examples are in ../shared/data (an extra)."""
    if source == "radfact":
        path = request.getfixturevalue("shared_data") / "radfact" / "grounded_reporting_examples.json"
    else:
        path = request.getfixturevalue("test_data") / "grounded_examples.json"
    examples = parse_grounded_examples(json.loads(path.read_text()))
    assert len(examples) == n
    assert any(p.boxes for ex in examples for p in ex.prediction)
    assert all(b.x_min <= b.x_max for ex in examples for p in ex.target for b in (p.boxes or ()))
    with pytest.raises(ReportgenError, match="E421"):
        parse_grounded_examples([{"prediction": [{"text": "x", "boxes": [{"x_min": 5, "y_min": 0, "x_max": 9, "y_max": 1}]}], "target": []}])
    with pytest.raises(ReportgenError, match="E422"):
        parse_grounded_examples([{"prediction": []}])
