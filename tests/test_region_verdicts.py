"""Verdict rules on synthetic similarity maps, calibration statistics, grounded boxes
(numpy only, no model)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from reportgen.checkers.region.calibrate import youden
from reportgen.checkers.region.evidence import Calibration, Judgement, cnr, combine, judge_finding, support
from reportgen.checkers.region.grounded import box_from_coco, check_box, describe_box, load_grounded, tbx11k_boxes
from reportgen.checkers.region.zones import GRID, Atlas
from reportgen.evals.metrics.radfact import Box
from reportgen.errors import ReportgenError
from reportgen.types import Finding
from tests.fixtures_clip import LEFT_UPPER, RIGHT_UPPER, blob


ATLAS = Atlas.load()
ZONES = ATLAS.zone_set("PA")
CAL = Calibration(cnr_threshold=0.5, side_margin=0.25)


def judge(f: Finding, sim: np.ndarray, calib: Calibration = CAL, view: str = "PA") -> Judgement:
    zs = ATLAS.zone_set(view)
    return judge_finding(sim, zs, ATLAS.claim_zones(f, view), f.presence, calib, label=f.observation)


def test_cnr_sign_and_scale():
    inside = np.zeros((10, 10), bool)
    inside[:5] = True
    region = np.ones((10, 10), bool)
    sim = np.where(inside, 1.0, 0.0) + np.random.default_rng(0).normal(0, 0.1, (10, 10))
    c = cnr(sim, inside, region)
    assert c > 4
    assert cnr(sim, ~inside, region) == pytest.approx(-c)
    assert cnr(sim * 10 + 3, inside, region) == pytest.approx(c, rel=1e-3)  # affine invariant
    assert cnr(sim, np.zeros_like(inside), region) == 0.0


def test_evidence_on_the_claimed_side_supports():
    j = judge(Finding("opacity", "present", "left", ("upper lobe",)), blob(*LEFT_UPPER))
    assert j.status == "supported"
    assert j.meta["best_zone"] in ("left_upper_zone", "left_apex")
    assert j.cnr == pytest.approx(j.meta["cnr"], abs=1e-4) and j.meta["cnr"] >= 0.5
    assert j.score == pytest.approx(support(j.cnr, 0.5, CAL.score_scale)) and 0.5 <= j.score <= 1
    assert "left upper zone" in j.reasons[0] and "CNR" in j.reasons[0]


def test_evidence_on_the_opposite_side_contradicts():
    j = judge(Finding("opacity", "present", "right", ("upper lobe",)), blob(*LEFT_UPPER))
    assert j.status == "contradicted"
    assert j.meta["mirror_zone"] == ["left_upper_zone"]
    assert j.meta["mirror_cnr"] > j.meta["cnr"]
    assert "wrong side" in j.reasons[0] and "patient's left" in j.reasons[0]


def test_weak_or_absent_evidence_is_unsupported():
    flat = np.random.default_rng(1).normal(0, 0.02, (GRID, GRID)).astype(np.float32)
    j = judge(Finding("opacity", "present", "left", ("upper lobe",)), flat)
    assert j.status == "unsupported" and "unsupported by image" in j.reasons[0]
    # evidence elsewhere on the claimed side (lower zone) does not support an upper claim,
    # and does not contradict it either (same side)
    j = judge(Finding("opacity", "present", "left", ("upper lobe",)), blob(0.78, 0.68))
    assert j.status == "unsupported"
    assert j.meta["best_zone"].startswith("left_")


def test_margin_guards_against_symmetric_evidence():
    both = blob(*LEFT_UPPER) + blob(*RIGHT_UPPER, seed=1)
    j = judge(Finding("opacity", "present", "right", ("upper lobe",)), both)
    assert j.status == "supported"  # the right side has evidence too: no contradiction


def test_bilateral_claims_need_both_sides():
    f = Finding("opacity", "present", "bilateral", ("upper lobe",))
    assert judge(f, blob(*LEFT_UPPER) + blob(*RIGHT_UPPER, seed=1)).status == "supported"
    j = judge(f, blob(*LEFT_UPPER))
    assert j.status == "unsupported" and "right side" in j.reasons[0]


def test_unlateralised_and_midline_claims():
    assert judge(Finding("cardiomegaly", "present"), blob(0.58, 0.62, sigma=0.1)).status == "supported"
    assert judge(Finding("cardiomegaly", "present"), blob(*LEFT_UPPER)).status == "unsupported"
    assert judge(Finding("opacity", "present", None, ("upper lobe",)), blob(*RIGHT_UPPER)).status == "supported"


def test_lateral_view_never_contradicts_a_side():
    j = judge(Finding("opacity", "present", "right", ("upper lobe",)), blob(0.6, 0.2), view="LATERAL")
    assert j.status in ("supported", "unsupported") and j.meta["laterality"] is None


def test_hedged_claims_are_reported_not_judged():
    j = judge(Finding("opacity", "uncertain", "right", ("upper lobe",)), blob(*LEFT_UPPER))
    assert j.status == "uncertain" and "hedged" in j.reasons[0] and "contradicted" in j.reasons[0]
    assert j.score is not None


def test_absence_not_checkable_without_an_absence_threshold():
    j = judge(Finding("pleural effusion", "absent"), blob(0.2, 0.75))
    assert j.status == "uncertain" and j.score is None
    assert j.meta["checkable"] is False
    assert "absence not checkable by region model" in j.reasons[0]


def test_absence_checked_with_a_calibrated_threshold():
    cal = Calibration(cnr_threshold=0.5, absence_threshold=1.0, calibrated=True)
    f = Finding("pleural effusion", "absent")
    j = judge(f, blob(0.2, 0.76), cal)
    assert j.status == "contradicted" and "although the claim says it is absent" in j.reasons[0]
    j = judge(f, np.random.default_rng(2).normal(0, 0.02, (GRID, GRID)), cal)
    assert j.status == "supported" and j.meta["max_cnr"] < 1.0


def test_combine_takes_the_worst_status():
    a = Judgement("supported", ("a",), 1.0, {})
    b = Judgement("contradicted", ("b",), 0.2, {})
    c = Judgement("uncertain", ("c",), None, {})
    assert combine([a, b, c]) == ("contradicted", ("a", "b", "c"), 0.2)
    assert combine([a, c])[0] == "uncertain"


# ---- verdict scores in [0, 1] (the Verdict.score convention of docs/checking.md) ----------

SCORE_FINDINGS = [
    Finding("opacity", "present", "left", ("upper lobe",)),
    Finding("opacity", "present", "right", ("base",)),
    Finding("opacity", "present", "bilateral", ("upper lobe",)),
    Finding("cardiomegaly", "present"),
    Finding("opacity", "uncertain", "right", ("upper lobe",)),
    Finding("pleural effusion", "absent", "left"),
]


def test_scores_are_in_0_1_for_random_maps_and_agree_with_the_status():
    rng = np.random.default_rng(7)
    cal = Calibration(cnr_threshold=0.3, side_margin=0.2, absence_threshold=0.4, calibrated=True)
    seen = set()
    for i in range(12):
        # random smooth-ish maps: noise plus a random blob, at random scales and offsets
        sim = blob(*rng.uniform(0.1, 0.9, 2), sigma=rng.uniform(0.03, 0.2), amp=rng.uniform(0, 3), noise=rng.uniform(0.01, 1), seed=i)
        sim = sim * rng.uniform(0.1, 50) + rng.uniform(-5, 5)
        for f in SCORE_FINDINGS:
            j = judge(f, sim, cal)
            assert j.score is not None and 0.0 <= j.score <= 1.0
            assert j.cnr is not None and j.cnr == pytest.approx(j.meta["max_cnr" if f.presence == "absent" else "cnr"], abs=1e-4)
            seen.add(j.status)
            if j.status == "supported":
                assert j.score >= 0.5
            elif j.status in ("unsupported", "contradicted"):
                assert j.score <= 0.5
    assert {"supported", "unsupported", "contradicted"} <= seen  # the maps exercised every rule


def test_score_ordering_follows_the_claimed_zone_cnr():
    """More evidence in the claimed zone never lowers the score; raw CNR order is kept."""
    f = Finding("opacity", "present", "left", ("upper lobe",))
    noise = np.random.default_rng(3).normal(0, 0.3, (GRID, GRID)).astype(np.float32)
    js = [judge(f, noise + blob(*LEFT_UPPER, amp=a, noise=0.0)) for a in (0.0, 0.2, 0.5, 1.0, 2.0, 4.0)]
    cnrs = [j.cnr for j in js]
    assert cnrs == sorted(cnrs) and cnrs[0] < 0.5 < cnrs[-1]
    scores = [j.score for j in js]
    assert scores == sorted(scores) and scores[0] < 0.5 < scores[-1]
    assert [j.status for j in js][0] == "unsupported" and js[-1].status == "supported"
    # the support function itself: 0.5 at the threshold, monotone, bounded, no overflow
    xs = [-1e9, -3, 0.49, 0.5, 0.51, 3, 1e9]
    ys = [support(x, 0.5, 0.25) for x in xs]
    assert ys == sorted(ys) and ys[3] == 0.5 and 0.0 <= ys[0] < 1e-9 and 1 - 1e-9 < ys[-1] <= 1.0
    # absence: more evidence of the finding -> less support for "no ..."
    cal = Calibration(absence_threshold=1.0, calibrated=True)
    g = Finding("pleural effusion", "absent")
    weak, strong = judge(g, blob(0.2, 0.76, amp=0.05), cal), judge(g, blob(0.2, 0.76, amp=2.0), cal)
    assert weak.cnr < strong.cnr and weak.score > strong.score


def test_wrong_side_scores_low_even_when_the_claimed_zone_is_above_threshold():
    # evidence on both upper zones, much more on the patient's left
    both = blob(*LEFT_UPPER, amp=3.0) + blob(*RIGHT_UPPER, amp=0.6, seed=1)
    j = judge(Finding("opacity", "present", "right", ("upper lobe",)), both, Calibration(cnr_threshold=0.0, side_margin=0.25))
    assert j.status == "contradicted" and j.meta["cnr"] >= 0.0  # claimed zone above tau ...
    assert j.score < 0.5  # ... but the mirror beats it by the margin


def test_calibration_round_trip_and_errors(tmp_path):
    c = Calibration(cnr_threshold=0.8, absence_threshold=1.2, calibrated=True, stats={"positive": {"auc": 0.9}})
    c.save(tmp_path)
    assert Calibration.load(tmp_path) == c
    (tmp_path / "reportgen_region.json").write_text('{"cnr_threshold": 1, "bogus": 2}')
    with pytest.raises(ReportgenError, match="E610.*bogus"):
        Calibration.load(tmp_path)
    with pytest.raises(ReportgenError, match="E610"):
        Calibration.load(tmp_path / "missing.json")


def test_youden_threshold_separates_classes():
    r = youden([0.1, 0.2, 0.3, 1.1, 1.2, 1.5], [False, False, False, True, True, True])
    assert 0.3 < r["threshold"] <= 1.1 and r["auc"] == 1.0 and r["youden_j"] == 1.0
    r = youden([0.1, 0.9, 0.5, 0.6], [False, False, True, True])
    assert r["auc"] == 0.5
    with pytest.raises(ReportgenError, match="E609"):
        youden([1, 2], [True, True])


# ---- grounded boxes --------------------------------------------------------------------

def test_box_on_the_claimed_side_is_supported_and_the_mirror_contradicted():
    left_base_box = [Box(0.535, 0.355, 0.865, 0.725)]  # RadFact example 0, "left base"
    ok = check_box(Finding("opacity", "present", "left", ("base",)), left_base_box)
    assert ok.status == "supported"
    assert ok.meta["boxes"][0]["side"] == "left"
    bad = check_box(Finding("opacity", "present", "right", ("base",)), left_base_box)
    assert bad.status == "contradicted" and "wrong side" in bad.reasons[0]


def test_box_in_the_wrong_zone_is_a_location_contradiction():
    apex_box = [Box(0.62, 0.10, 0.80, 0.20)]  # patient-left apex
    r = check_box(Finding("opacity", "present", "left", ("base",)), apex_box)
    assert r.status == "contradicted" and "location" in r.reasons[0]
    assert r.meta["boxes"][0]["best_zone"] == "left_upper_zone"


def test_box_bilateral_and_negative_findings():
    two = [Box(0.015, 0.475, 0.375, 0.775), Box(0.495, 0.435, 0.915, 0.725)]  # "in the bases"
    assert check_box(Finding("opacity", "present", "bilateral", ("base",)), two).status == "supported"
    assert check_box(Finding("opacity", "present", "bilateral", ("base",)), two[:1]).status == "unsupported"
    r = check_box(Finding("pleural effusion", "absent"), two)
    assert r.status == "uncertain" and r.meta["checkable"] is False


def test_box_evidence_concentration_with_a_map():
    box = [Box(0.65, 0.15, 0.85, 0.35)]
    f = Finding("opacity", "present", "left", ("upper lobe",))
    assert check_box(f, box, sim=blob(*LEFT_UPPER)).status == "supported"
    r = check_box(f, box, sim=blob(*RIGHT_UPPER))
    assert r.status == "unsupported" and r.meta["box_cnr"] < 0


@pytest.mark.parametrize("source, n, min_checked", [("tests/data", 4, 7), pytest.param("radfact", 20, 10, marks=pytest.mark.shared)])
def test_radfact_examples_boxes_follow_the_laterality_convention(request, source, n, min_checked):
    """Every sentence that says 'left' or 'right' (and not both) has its boxes on that side
    of the patient: patient left = image right. RadFact's own examples (../shared/data, an
    extra) and the hand-written ones of tests/data in the same format."""
    if source == "radfact":
        path = request.getfixturevalue("grounded_examples_path")
    else:
        path = request.getfixturevalue("test_data") / "grounded_examples.json"
    examples = load_grounded(path)
    assert len(examples) == n
    checked = 0
    for ex in examples:
        for s in ex.prediction + ex.target:
            t = s.text.lower()
            if not s.boxes or ("left" in t) == ("right" in t) or "bilateral" in t:
                continue
            side = "left" if "left" in t else "right"
            r = check_box(Finding("opacity", "present", side), s.boxes)
            assert r.status == "supported", (s.text, r.reasons)
            other = "right" if side == "left" else "left"
            assert check_box(Finding("opacity", "present", other), s.boxes).status == "contradicted"
            checked += 1
    assert checked >= min_checked


def test_box_verdict_scores_are_in_0_1():
    from reportgen.checkers.region.grounded import check_grounded
    from reportgen.grounding import GroundedPhrase
    from reportgen.protocols import CheckedClaim
    from reportgen.types import Claim, EntityGraph

    left_box = (Box(0.65, 0.15, 0.85, 0.35),)
    f_left, f_right = Finding("opacity", "present", "left", ("upper lobe",)), Finding("opacity", "present", "right", ("upper lobe",))
    assert check_box(f_left, left_box).support == 1.0 and check_box(f_right, left_box).support == 0.0
    with_map = check_box(f_left, left_box, sim=blob(*LEFT_UPPER))
    assert with_map.status == "supported" and with_map.score == pytest.approx(with_map.meta["box_cnr"], abs=1e-4) and with_map.score > 0.5  # raw CNR
    assert 0.5 <= with_map.support <= 1.0
    assert check_box(f_left, left_box, sim=blob(*RIGHT_UPPER)).support == 0.0
    assert check_box(Finding("opacity", "absent", "left"), left_box).support is None

    sentences = [GroundedPhrase("Left upper lobe opacity.", left_box), GroundedPhrase("Right upper lobe opacity.", left_box)]
    findings = {"Left upper lobe opacity.": f_left, "Right upper lobe opacity.": f_right}

    def reader(text):
        out, pos = [], 0
        for s in sentences:
            out.append(CheckedClaim(Claim(s.text, "findings", pos, pos + len(s.text)), EntityGraph(), (findings[s.text],)))
            pos += len(s.text) + 1
        return out

    vs = check_grounded(sentences, reader=reader)
    assert [(v.status, v.score) for v in vs] == [("supported", 1.0), ("contradicted", 0.0)]


def test_grounded_types_have_one_definition_in_the_core():
    import ast
    from pathlib import Path

    import reportgen.checkers.region.grounded as region_grounded
    import reportgen.evals.metrics.radfact as radfact
    import reportgen.grounding as core

    for name in ("Box", "GroundedPhrase", "GroundedExample", "parse_grounded_examples"):
        assert getattr(radfact, name) is getattr(core, name) is getattr(region_grounded, name)
    assert region_grounded.GroundedSentence is core.GroundedPhrase
    # checkers never depend on evals (data flows one way); the core types need no numpy/torch
    root = Path(core.__file__).resolve().parents[1]
    for path in sorted((root / "checkers").rglob("*.py")) + [Path(core.__file__)]:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            mods = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            assert not any(m == "evals" or m.startswith("evals.") for m in mods), f"{path} imports {mods}"
            if path == Path(core.__file__):
                assert not any(m.split(".")[0] in ("numpy", "torch") for m in mods)


def test_bad_grounded_files(tmp_path):
    p = tmp_path / "g.json"
    p.write_text('[{"text": "Left opacity.", "boxes": [{"x_min": 0.5, "y_min": 0.2, "x_max": 1.7, "y_max": 0.3}]}]')
    with pytest.raises(ReportgenError, match="E607.*g.json"):
        load_grounded(p)
    p.write_text('[{"text": "Left opacity.", "boxes": [{"x_min": 0.5}]}]')
    with pytest.raises(ReportgenError, match="E607"):
        load_grounded(p)
    p.write_text('[{"text": "Left opacity.", "boxes": null}, {"text": "Right opacity.", "boxes": [{"x_min": 0.1, "y_min": 0.2, "x_max": 0.3, "y_max": 0.4}]}]')
    (ex,) = load_grounded(p)
    assert ex.prediction[1].boxes[0].x_max == 0.3


def test_coco_boxes_are_read_per_image_and_described(tmp_path):
    """TBX11K's COCO layout (pixel xywh, per-image sizes, images without boxes), written
    here by hand: the real TBX11K boxes stay in ../shared/data (test below)."""
    coco = {"categories": [{"id": 1, "name": "ActiveTuberculosis"}, {"id": 2, "name": "ObsoletePulmonaryTuberculosis"}],
            "images": [{"id": 7, "file_name": "imgs/tb/a.png", "width": 512, "height": 512},
                       {"id": 8, "file_name": "imgs/tb/b.png", "width": 1024, "height": 800},
                       {"id": 9, "file_name": "imgs/health/c.png", "width": 512, "height": 512}],
            "annotations": [{"image_id": 7, "category_id": 1, "bbox": [384, 60, 40, 90]},
                            {"image_id": 8, "category_id": 2, "bbox": [180, 120, 160, 160]},
                            {"image_id": 8, "category_id": 3, "bbox": [700, 100, 150, 150]}]}
    (tmp_path / "boxes.json").write_text(json.dumps(coco))
    boxes = tbx11k_boxes(tmp_path / "boxes.json")
    assert set(boxes) == {"a.png", "b.png", "c.png"} and boxes["c.png"] == []
    (cat, box), = boxes["a.png"]
    assert cat == "ActiveTuberculosis" and box == box_from_coco([384, 60, 40, 90], 512, 512)
    d = describe_box(box)  # image x 0.75-0.83, upper quarter: the patient's left upper zone
    assert d["side"] == "left" and d["best_zone"] == "left_upper_zone"
    assert [c for c, _ in boxes["b.png"]] == ["ObsoletePulmonaryTuberculosis", "3"]  # unknown category: its id
    assert sorted(describe_box(b)["side"] for _, b in boxes["b.png"]) == ["left", "right"]


def test_tbx11k_boxes_land_in_the_upper_zones(shared_data):
    boxes = tbx11k_boxes(shared_data / "cxr" / "tbx11k" / "TBX11K_boxes.json")
    assert len(boxes["tb0005.png"]) == 1 and len(boxes["tb0007.png"]) == 2 and boxes["h0001.png"] == []
    d = describe_box(boxes["tb0005.png"][0][1])
    assert d["side"] == "left" and d["best_zone"] == "left_upper_zone"  # box at image x 0.75-0.82
    sides = sorted(describe_box(b)["side"] for _, b in boxes["tb0007.png"])
    assert sides == ["left", "right"]
    assert box_from_coco([256, 0, 256, 512], 512, 512) == Box(0.5, 0.0, 1.0, 1.0)
