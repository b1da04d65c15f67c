"""The REAL RegionChecker (tiny random open_clip from a config, loaded via local-dir:)
inside the checking pipeline, on a real radiograph: region verdicts beside the graph
verdicts in one ClaimResult, scores in [0, 1], the documented combination."""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("open_clip")
pytest.importorskip("reportgen.checkers.read")

from reportgen.checkers.graph_checker import is_abstention  # noqa: E402
from reportgen.checkers.pipeline import Pipeline  # noqa: E402
from reportgen.checkers.region.zones import GRID  # noqa: E402
from reportgen.types import Study  # noqa: E402
from tests.fixtures_clip import LEFT_UPPER, blob  # noqa: E402

ORDER = ("contradicted", "unsupported", "uncertain", "supported")

REPORT = ("FINDINGS: Right upper lobe opacity. Cardiomegaly. No pleural effusion. "
          "Degenerative changes of the spine.\n\nIMPRESSION: Right upper lobe opacity.")
REFERENCE = "FINDINGS: Right upper lobe opacity. Mild cardiomegaly. No pleural effusion or pneumothorax."


@pytest.fixture()
def radiograph(test_data) -> str:
    return str(test_data / "cxr" / "00027426_000.png")


def expected_status(verdicts) -> str:
    """docs/checking.md, "Several checkers": errors and abstentions drop out when another
    checker gave a real verdict; then the worst status wins."""
    ok = [v for v in verdicts if v.status != "error"]
    if not ok:
        return "error"
    real = [v for v in ok if not is_abstention(v)] or ok
    return min((v.status for v in real), key=ORDER.index)


def by_text(result):
    return {c.claim.text: c for c in result.claims}


def region_of(claim_result):
    return [v for v in claim_result.verdicts if v.checker == "region"]


def test_real_region_checker_joins_the_graph_verdicts(tiny_region_checker, radiograph):
    pipe = Pipeline(region=tiny_region_checker)
    study = Study("s1", images=(radiograph,), views=("PA",))
    res = pipe.check("s1", REPORT, REFERENCE, study=study)
    assert res.error is None and res.summary["checkers"] == ["graph", "region"]
    assert "image" in res.summary["evidence"] and res.summary["reference"] == "given"
    claims = by_text(res)

    for text, zone_words, zone in (("Right upper lobe opacity.", "right upper zone", ["right_upper_zone"]),
                                   ("Cardiomegaly.", "cardiac silhouette", ["cardiac_silhouette"])):
        c = claims[text]
        (rv,) = region_of(c)
        assert [v.checker for v in c.verdicts] == ["graph", "region"]
        assert rv.status in ("supported", "unsupported", "contradicted")
        assert 0.0 <= rv.score <= 1.0
        assert any(r.startswith("region: ") and zone_words in r and "CNR" in r for r in c.reasons)
        (e,) = rv.evidence
        assert e.source == "image" and e.meta["zone"] == zone and e.meta["best_zone"]
        assert e.score == pytest.approx(e.meta["cnr"], abs=1e-4)  # the raw CNR stays on the evidence
        assert c.status == expected_status(c.verdicts)

    # the absence claim: the region checker abstains, the graph checker (reference) decides
    neg = claims["No pleural effusion."]
    (rv,) = region_of(neg)
    assert rv.status == "uncertain" and rv.score is None and rv.evidence[0].meta["checkable"] is False
    graph = [v for v in neg.verdicts if v.checker == "graph"][0]
    assert neg.status == graph.status == "supported" and neg.score == graph.score

    # a finding the region checker does not localise gets no region verdict
    assert region_of(claims["Degenerative changes of the spine."]) == []

    # every score of every verdict and claim follows the [0, 1] convention
    for c in res.claims:
        assert c.score is None or 0.0 <= c.score <= 1.0
        assert all(v.score is None or 0.0 <= v.score <= 1.0 for v in c.verdicts)

    # the JSONL record carries the region numbers beside the graph verdicts
    rec = json.loads(json.dumps(res.to_record()))
    right = next(c for c in rec["claims"] if c["text"] == "Right upper lobe opacity.")
    rv = next(v for v in right["verdicts"] if v["checker"] == "region")
    (meta,) = rv["evidence_meta"]
    assert meta["zone"] == ["right_upper_zone"] and isinstance(meta["cnr"], float) and meta["best_zone"]
    gv = next(v for v in right["verdicts"] if v["checker"] == "graph")
    assert "evidence_meta" not in gv  # text evidence keeps the compact form


def test_wrong_side_evidence_contradicts_a_claim_the_reference_supports(tiny_region_checker, radiograph, monkeypatch):
    """Forced map: evidence in the patient's LEFT upper zone (image right)."""
    rc = tiny_region_checker
    monkeypatch.setattr(rc, "similarity_maps",
                        lambda enc, texts: np.stack([blob(*LEFT_UPPER) for _ in texts]) if texts else np.zeros((0, GRID, GRID)))
    text = "FINDINGS: Right upper lobe opacity. Left upper lobe opacity."
    ref = "FINDINGS: Right upper lobe opacity. Left upper lobe opacity."
    res = Pipeline(region=rc).check("s2", text, ref, study=Study("s2", images=(radiograph,), views=("PA",)))
    claims = by_text(res)

    right = claims["Right upper lobe opacity."]
    graph, region = right.verdicts
    assert (graph.checker, graph.status) == ("graph", "supported")
    assert (region.checker, region.status) == ("region", "contradicted")
    assert right.status == "contradicted" and right.score == region.score < 0.5  # the lowest score
    assert right.reasons[0].startswith("region: wrong side") and "patient's left" in right.reasons[0]
    assert "right upper zone" in right.reasons[0]
    assert any(r.startswith("graph: supported") for r in right.reasons[1:])

    left = claims["Left upper lobe opacity."]
    assert [v.status for v in left.verdicts] == ["supported", "supported"]
    assert left.status == "supported" and 0.5 <= left.score <= 1.0
    assert left.score == min(v.score for v in left.verdicts)
    assert res.summary["contradicted"] == 1 and res.summary["flagged"] == 1


def test_unreadable_image_keeps_the_graph_verdicts(tiny_region_checker, tmp_path):
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"not a png")
    res = Pipeline(region=tiny_region_checker).check(
        "s3", "FINDINGS: Right upper lobe opacity.", "FINDINGS: Right upper lobe opacity.",
        study=Study("s3", images=(str(bad),), views=("PA",)))
    (c,) = res.claims
    assert [(v.checker, v.status) for v in c.verdicts] == [("graph", "supported"), ("region", "error")]
    assert c.status == "supported" and c.score == 1.0
    assert res.summary["region_error"].startswith("E603") and "broken.png" in res.summary["region_error"]
    assert res.summary["evidence"] == ["reference", "self"]  # no image evidence was used
