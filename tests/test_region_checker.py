"""RegionChecker end to end on real radiographs with the tiny model; verdicts driven by
synthetic maps (monkeypatched), evidence items, views, visuals."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("open_clip")

from reportgen.checkers.region.evidence import Calibration  # noqa: E402
from reportgen.checkers.region.zones import GRID  # noqa: E402
from reportgen.protocols import CheckedClaim  # noqa: E402
from reportgen.types import Claim, EntityGraph, EvidenceItem, Finding, Verdict  # noqa: E402
from tests.fixtures_clip import LEFT_UPPER, blob  # noqa: E402


def claim(text: str, *findings: Finding, start: int = 0) -> CheckedClaim:
    return CheckedClaim(Claim(text, "findings", start, start + len(text)), EntityGraph(), tuple(findings))


LEFT_UL = claim("Left upper lobe opacity.", Finding("opacity", "present", "left", ("upper lobe",)))
RIGHT_UL = claim("Right upper lobe opacity.", Finding("opacity", "present", "right", ("upper lobe",)), start=30)
NO_EFF = claim("No pleural effusion.", Finding("pleural effusion", "absent"), start=60)
CARDIO = claim("Cardiomegaly.", Finding("cardiomegaly", "present"), start=90)


@pytest.fixture()
def fake_maps(tiny_region_checker, monkeypatch):
    """Every query's map: evidence in the patient's LEFT upper zone (image right)."""
    rc = tiny_region_checker

    def maps(enc, texts):
        return np.stack([blob(*LEFT_UPPER) for _ in texts]) if texts else np.zeros((0, GRID, GRID))

    monkeypatch.setattr(rc, "similarity_maps", maps)
    return rc


def test_verdicts_follow_the_map(fake_maps, test_data):
    img = str(test_data / "cxr" / "00027426_000.png")
    vs = {v.claim.text: v for v in fake_maps.check_images([img], ["PA"], [LEFT_UL, RIGHT_UL, NO_EFF, CARDIO])}
    assert vs["Left upper lobe opacity."].status == "supported"
    assert vs["Right upper lobe opacity."].status == "contradicted"
    assert vs["Cardiomegaly."].status == "unsupported"
    neg = vs["No pleural effusion."]
    assert neg.status == "uncertain" and neg.score is None  # an abstention for the pipeline
    assert "absence not checkable by region model" in neg.reasons[0]
    v = vs["Right upper lobe opacity."]
    assert v.checker == "region" and v.score is not None
    (e,) = v.evidence
    assert e.source == "image" and e.findings == RIGHT_UL.findings
    for key in ("zone", "cnr", "best_zone", "mirror_zone", "mirror_cnr", "threshold", "image", "view", "query", "model"):
        assert key in e.meta
    assert e.meta["zone"] == ["right_upper_zone"] and e.meta["best_zone"].startswith("left_")
    assert e.meta["view"] == "PA" and e.meta["query"] == "opacity"
    assert "right upper zone" in v.reasons[0] and "CNR" in v.reasons[0]
    # Verdicts survive the JSON round trip (JSON values only in meta)
    assert Verdict.from_dict(v.to_dict()) == v


def test_calibrated_absence_is_checked(fake_maps, test_data):
    fake_maps.calibration = Calibration(absence_threshold=0.8, calibrated=True)
    img = str(test_data / "cxr" / "00027426_000.png")
    no_opacity = claim("No left upper lobe opacity.", Finding("opacity", "absent", "left", ("upper lobe",)))
    (v,) = fake_maps.check_images([img], ["PA"], [no_opacity])
    assert v.status == "contradicted" and "says it is absent" in v.reasons[0]


def test_lateral_view_and_view_priority(fake_maps, test_data):
    img = str(test_data / "cxr" / "00027426_000.png")
    (v,) = fake_maps.check_images([img], ["LATERAL"], [RIGHT_UL])
    assert v.status != "contradicted" and v.evidence[0].meta["laterality"] is None
    # the frontal image is chosen over a lateral one
    (v,) = fake_maps.check_images([img, img], ["LL", "PA"], [RIGHT_UL])
    assert v.status == "contradicted" and v.evidence[0].meta["image_index"] == 1
    # unknown view: assumed frontal, and the reasons say so
    (v,) = fake_maps.check_images([img], [None], [RIGHT_UL])
    assert v.status == "contradicted" and any("assumed frontal" in r for r in v.reasons)


def test_dicom_view_comes_from_the_header(fake_maps, test_data):
    dcm = next((test_data / "cxr").glob("rsna_*.dcm"))
    (v,) = fake_maps.check_images([str(dcm)], [], [LEFT_UL])
    assert v.evidence[0].meta["view"] == "PA"
    assert not any("assumed frontal" in r for r in v.reasons)


def test_no_images_or_no_findings_give_no_verdicts(tiny_region_checker):
    assert tiny_region_checker.check_images([], [], [LEFT_UL]) == []
    assert tiny_region_checker.check_images(["/nonexistent.png"], ["PA"], [claim("Comparison: none.")]) == []


def test_bad_image_errors_name_the_file(tiny_region_checker, tmp_path):
    from reportgen.errors import ReportgenError

    bad = tmp_path / "broken.png"
    bad.write_bytes(b"not a png")
    with pytest.raises(ReportgenError, match="E603.*broken.png"):
        tiny_region_checker.check_images([str(bad)], ["PA"], [LEFT_UL])
    with pytest.raises(ReportgenError, match="E604"):
        tiny_region_checker.check_images([str(bad)], ["PA", "LL"], [LEFT_UL])


def test_checker_protocol_takes_images_as_evidence(fake_maps, test_data):
    from reportgen.protocols import Checker

    assert isinstance(fake_maps, Checker)
    img = str(test_data / "cxr" / "00027426_000.png")
    ev = [EvidenceItem(source="image", text="frontal", meta={"image": img, "view": "PA"})]
    (v,) = fake_maps.check([RIGHT_UL], ev)
    assert v.status == "contradicted"
    assert fake_maps.check([RIGHT_UL], []) == []


def test_real_maps_are_deterministic_and_on_the_grid(tiny_region_checker, test_data):
    img = str(test_data / "cxr" / "00000001_000.png")
    a = tiny_region_checker.check_images([img], ["PA"], [LEFT_UL, CARDIO])
    b = tiny_region_checker.check_images([img], ["PA"], [LEFT_UL, CARDIO])
    assert [v.score for v in a] == [v.score for v in b]
    assert all(v.status in ("supported", "unsupported", "contradicted") for v in a)


def test_render_png(fake_maps, test_data, tmp_path):
    img = str(test_data / "cxr" / "00027426_000.png")
    vs = fake_maps.check_images([img], ["PA"], [LEFT_UL, RIGHT_UL, CARDIO])
    out = tmp_path / "study.png"
    png = fake_maps.render(img, "PA", vs, out=out, title="study 1")
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and out.read_bytes() == png
    from PIL import Image

    with Image.open(out) as im:
        w_flagged = im.size[0]
    png_all = fake_maps.render(img, "PA", vs, flagged_only=False)
    from io import BytesIO

    with Image.open(BytesIO(png_all)) as im:
        assert im.size[0] > w_flagged  # three panels instead of two


def test_pipeline_joins_region_and_graph_verdicts(fake_maps, test_data):
    """The real claim reader + graph checker + this region checker in one result."""
    pytest.importorskip("reportgen.checkers.read")
    from reportgen.checkers.pipeline import Pipeline
    from reportgen.types import Study

    img = str(test_data / "cxr" / "00027426_000.png")
    text = "FINDINGS: Right upper lobe opacity. Left upper lobe opacity. No pleural effusion. Degenerative changes of the spine."
    res = Pipeline(region=fake_maps).check("s1", text, study=Study("s1", (img,), ("PA",)))
    assert res.error is None
    by_text = {r.claim.text: r for r in res.claims}
    right = by_text["Right upper lobe opacity."]
    region = [v for v in right.verdicts if v.checker == "region"]
    assert len(region) == 1 and region[0].status == "contradicted"
    assert right.status == "contradicted" and any("wrong side" in r for r in right.reasons)
    left = [v for v in by_text["Left upper lobe opacity."].verdicts if v.checker == "region"]
    assert left[0].status == "supported"
    # the negative claim: an abstaining region verdict; the spine: none at all
    neg = [v for v in by_text["No pleural effusion."].verdicts if v.checker == "region"]
    assert neg and neg[0].status == "uncertain" and neg[0].score is None
    assert not [v for v in by_text["Degenerative changes of the spine."].verdicts if v.checker == "region"]
    assert "image" in res.summary["evidence"]
