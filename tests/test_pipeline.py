"""The checking pipeline: record contract, evidence wiring, verdict combination, region hook."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

import pytest

from reportgen.checkers.pipeline import ClaimResult, Pipeline, ReportResult, combine_verdicts
from reportgen.errors import ReportgenError
from reportgen.protocols import CheckedClaim
from reportgen.types import VERDICT_STATUSES, Claim, EntityGraph, Finding, Report, Study, Verdict


@dataclass(frozen=True)
class FakeRead:
    report: Report
    claims: tuple[CheckedClaim, ...]


# A stand-in for reportgen.checkers.read.read_report: one claim per sentence, a few keywords.
_KEYWORDS = [
    (re.compile(r"\bno (pleural )?effusion", re.I), Finding("pleural effusion", "absent")),
    (re.compile(r"\bright (pleural )?effusion", re.I), Finding("pleural effusion", "present", "right")),
    (re.compile(r"\bleft (pleural )?effusion", re.I), Finding("pleural effusion", "present", "left")),
    (re.compile(r"\bpossible effusion", re.I), Finding("pleural effusion", "uncertain")),
    (re.compile(r"\bnormal chest", re.I), Finding("abnormality", "absent", anatomy="chest")),
    (re.compile(r"\bno pneumothorax", re.I), Finding("pneumothorax", "absent")),
]


def fake_reader(text: str) -> FakeRead:
    claims = []
    for m in re.finditer(r"[^.\n]+\.", text):
        start = m.start() + (len(m.group()) - len(m.group().lstrip()))
        sentence = text[start:m.end()]
        findings = tuple(f for rx, f in _KEYWORDS if rx.search(sentence))
        claims.append(CheckedClaim(Claim(sentence, "findings", start, m.end(), start, m.end()), EntityGraph(), findings))
    return FakeRead(Report(text), tuple(claims))


def pipe(**kw) -> Pipeline:
    return Pipeline(reader=fake_reader, **kw)


def by_text(result: ReportResult) -> dict[str, ClaimResult]:
    return {c.claim.text: c for c in result.claims}


def test_record_has_exactly_the_contract_keys_and_offsets_into_the_input():
    text = "  Right effusion. Comparison made to prior study.\nNo pneumothorax."
    rec = pipe().check("r1", text).to_record()
    assert list(rec)[:4] == ["id", "error", "claims", "summary"] and set(rec) == {"id", "error", "claims", "summary"}
    assert rec["id"] == "r1" and rec["error"] is None
    for c in rec["claims"]:
        assert {"text", "section", "start", "end", "status", "reasons", "entities"} <= set(c)
        assert c["status"] in VERDICT_STATUSES
        assert text[c["start"]:c["end"]] == c["text"]
        assert isinstance(c["reasons"], list) and all(isinstance(r, str) for r in c["reasons"])
    json.dumps(rec)  # plain JSON
    s = rec["summary"]
    assert s["claims"] == 3 and sum(s[k] for k in VERDICT_STATUSES) == 3
    assert s["evidence"] == ["self"] and s["reference"] == "none" and s["checkers"] == ["graph"]


def test_self_check_finds_an_internal_contradiction():
    r = pipe().check("r", "Right effusion. Normal chest.")
    claims = by_text(r)
    assert claims["Normal chest."].status == "contradicted"
    assert claims["Right effusion."].status == "contradicted"
    assert r.summary["contradicted"] == 2 and r.summary["flagged"] == 2
    assert "self[0:15] 'Right effusion.'" in claims["Normal chest."].reasons[0]


def test_without_self_check_and_reference_nothing_is_checked():
    r = pipe(self_check=False).check("r", "Right effusion. Normal chest.")
    assert {c.status for c in r.claims} == {"uncertain"}
    assert r.summary["not_checked"] == 2 and r.summary["evidence"] == []


def test_reference_mode_flags_fabricated_and_flipped_findings():
    ref = "No effusion. No pneumothorax."
    r = pipe(self_check=False).check("r", "Left effusion. No pneumothorax.", ref)
    claims = by_text(r)
    assert claims["Left effusion."].status == "contradicted"
    assert claims["No pneumothorax."].status == "supported"
    assert r.summary["reference"] == "given" and r.summary["evidence"] == ["reference"]
    r = pipe(self_check=False).check("r", "Left effusion.", "No pneumothorax.")
    assert r.claims[0].status == "unsupported"


def test_study_reference_is_used_when_no_reference_text_is_given():
    study = Study("s1", reference=Report("No effusion."))
    r = pipe(self_check=False).check("s1", "Left effusion.", study=study)
    assert r.claims[0].status == "contradicted" and r.summary["reference"] == "given"


@pytest.mark.parametrize("text, code", [("", "E301"), ("   \n", "E301"), (None, "E302"), ("x" * 200_001, "E303")])
def test_bad_report_text_gives_an_error_result(text, code):
    r = pipe().check("bad", text)
    rec = r.to_record()
    assert rec["error"].startswith(code) and rec["claims"] == [] and rec["summary"]["claims"] == 0


def test_bad_reference_is_reported_and_the_report_still_self_checked():
    r = pipe().check("r", "Right effusion. Normal chest.", "   ")
    assert r.error is None and r.summary["reference"] == "invalid"
    assert r.summary["reference_error"].startswith("E301 reference is empty")
    assert r.summary["contradicted"] == 2


def test_reader_failures_become_error_results():
    def raising(text):
        raise ReportgenError("E250", "cannot read")

    def crashing(text):
        raise RuntimeError("bug")

    assert Pipeline(reader=raising).check("a", "text").error.startswith("E250")
    r = Pipeline(reader=crashing).check("b", "text")
    assert r.error.startswith("E399") and "RuntimeError" in r.error


def test_unknown_checker_name():
    with pytest.raises(ReportgenError) as e:
        pipe(checkers=("graph", "nope"))
    assert e.value.code == "E311"


class _Always:
    """A checker that gives every claim the same status."""

    def __init__(self, name, status, score=0.9):
        self.name, self.status, self.score = name, status, score

    def check(self, claims, evidence):
        return [Verdict(cc.claim, self.status, (f"{self.name} says {self.status}",), (), self.name, self.score) for cc in claims]


class _Broken:
    name = "broken"

    def check(self, claims, evidence):
        raise RuntimeError("model crashed")


class _Short:
    name = "short"

    def check(self, claims, evidence):
        return []


def test_several_checkers_worst_status_wins_and_reasons_name_the_checker():
    r = pipe(checkers=("graph", _Always("judge", "unsupported", 0.2))).check("r", "No effusion.", "No effusion.")
    c = r.claims[0]
    assert c.status == "unsupported" and c.score == 0.2
    assert c.reasons[0] == "judge: judge says unsupported" and any(x.startswith("graph: supported") for x in c.reasons)
    assert [v.checker for v in c.verdicts] == ["graph", "judge"]


def test_a_failing_checker_does_not_fail_the_claim_unless_all_fail():
    r = pipe(checkers=("graph", _Broken())).check("r", "No effusion.", "No effusion.")
    c = r.claims[0]
    assert c.status == "supported"
    assert any("E313" in x and "RuntimeError" in x for x in c.reasons)
    r = pipe(checkers=(_Broken(), _Short())).check("r", "No effusion.")
    assert r.claims[0].status == "error" and r.summary["error"] == 1
    assert [v.checker for v in r.claims[0].verdicts] == ["broken"]


def test_a_checker_may_judge_only_some_claims():
    r = pipe(checkers=(_Short(),)).check("r", "No effusion. Right effusion.")
    assert [c.status for c in r.claims] == ["uncertain", "uncertain"]
    assert r.summary["not_checked"] == 2 and "no checker gave a verdict" in r.claims[0].reasons[0]

    class OnlyFirst:
        name = "first"

        def check(self, claims, evidence):
            return [Verdict(claims[0].claim, "contradicted", ("no",), (), self.name, 0.0)]

    r = pipe(checkers=("graph", OnlyFirst())).check("r", "Right effusion. Normal chest.", "Right effusion.")
    by = by_text(r)
    assert by["Right effusion."].status == "contradicted"
    assert [v.checker for v in by["Normal chest."].verdicts] == ["graph"]


def test_combine_verdicts_rules():
    c = Claim("x", "findings", 0, 1)
    sup = Verdict(c, "supported", ("ok",), (), "a", 1.0)
    abst = Verdict(c, "uncertain", ("nothing",), (), "b", None)
    unc = Verdict(c, "uncertain", ("hedged",), (), "c", 0.5)
    err = Verdict(c, "error", ("E1",), (), "d", None)
    con = Verdict(c, "contradicted", ("no",), (), "e", 0.0)
    assert combine_verdicts([sup, abst])[0] == "supported"  # abstentions drop out
    assert combine_verdicts([abst])[:2] == ("uncertain", None)
    assert combine_verdicts([sup, unc])[0] == "uncertain"
    assert combine_verdicts([sup, err])[0] == "supported"
    assert combine_verdicts([err])[0] == "error"
    assert combine_verdicts([sup, unc, con])[:2] == ("contradicted", 0.0)
    assert combine_verdicts([])[0] == "uncertain"


class FakeRegion:
    """Stands in for the issue-5 RegionChecker: flags right-sided claims as wrong-side."""

    name = "region"

    def __init__(self):
        self.calls = []

    def check_images(self, images, views, claims):
        self.calls.append((tuple(images), tuple(views), len(claims)))
        out = []
        for cc in claims:
            if any(f.laterality == "right" and f.presence == "present" for f in cc.findings):
                out.append(Verdict(cc.claim, "contradicted", ("evidence lies on the left",), (), self.name, 0.1))
            elif cc.findings and all(f.presence == "absent" for f in cc.findings):
                out.append(Verdict(cc.claim, "uncertain", ("negative claim left to other checkers",), (), self.name, None))
        return out


def test_region_checker_is_called_for_studies_with_images_and_joins_the_verdicts():
    region = FakeRegion()
    p = pipe(region=region)
    study = Study("s", images=("a.png",), views=("PA",))
    r = p.check("s", "Right effusion. No pneumothorax.", "Right effusion.", study=study)
    assert region.calls == [(("a.png",), ("PA",), 2)]
    claims = by_text(r)
    right = claims["Right effusion."]
    assert right.status == "contradicted"  # graph supported, region contradicted
    assert [v.checker for v in right.verdicts] == ["graph", "region"]
    assert right.reasons[0] == "region: evidence lies on the left"
    assert claims["No pneumothorax."].status == "supported"  # the region abstention drops out
    assert r.summary["evidence"] == ["image", "reference", "self"] and r.summary["checkers"] == ["graph", "region"]


def test_region_checker_is_not_called_without_images_and_its_failure_is_contained():
    region = FakeRegion()
    pipe(region=region).check("s", "Right effusion.", study=Study("s"))
    pipe(region=region).check("s", "Right effusion.")
    assert region.calls == []

    class Crashing(FakeRegion):
        def check_images(self, images, views, claims):
            raise RuntimeError("no GPU")

    r = pipe(region=Crashing()).check("s", "Right effusion.", "Right effusion.", study=Study("s", images=("a.png",)))
    c = r.claims[0]
    assert c.status == "supported" and any("E320" in x for x in c.reasons)


def test_region_error_from_the_caller_keeps_the_graph_verdicts_and_image_meta_is_recorded():
    from reportgen.types import EvidenceItem

    region = FakeRegion()
    r = pipe(region=region).check("s", "Right effusion. No pneumothorax.", "Right effusion.",
                                  region_error="r.jsonl:4: E705 image 'a.png' not found")
    assert region.calls == []  # not run
    for c in r.claims:
        assert [v.checker for v in c.verdicts] == ["graph", "region"] and c.verdicts[1].status == "error"
        assert c.status == c.verdicts[0].status  # the error drops out: the graph decides
    assert r.summary["region_error"] == "r.jsonl:4: E705 image 'a.png' not found"
    assert "image" not in r.summary["evidence"]
    assert pipe().check("s", "Right effusion.", region_error="ignored without a region checker").summary.get("region_error") is None

    class WithMeta(FakeRegion):
        def check_images(self, images, views, claims):
            ev = EvidenceItem(source="image", text="map", meta={"zone": ["right_base"], "cnr": 1.5, "best_zone": "right_base"})
            return [Verdict(cc.claim, "supported", ("ok",), (ev,), self.name, 0.9) for cc in claims]

    rec = pipe(region=WithMeta()).check("s", "Right effusion.", study=Study("s", images=("a.png",))).to_record()
    graph_v, region_v = rec["claims"][0]["verdicts"]
    assert region_v["evidence_meta"] == [{"zone": ["right_base"], "cnr": 1.5, "best_zone": "right_base"}]
    assert "evidence_meta" not in graph_v and region_v["evidence"] == ["image 'map'"]


def test_check_many_yields_one_result_per_item():
    out = list(pipe().check_many([("a", "Right effusion.", None), ("b", "", None), ("c", "No effusion.", "No effusion.")]))
    assert [r.id for r in out] == ["a", "b", "c"]
    assert out[1].error and out[2].claims[0].status == "supported"


def test_hand_written_serialisation_matches_the_core_types():
    from reportgen.types import Entity, Relation

    ents = (Entity("e0", "effusion", 6, 14, "OBS-DP", "pleural effusion"), Entity("e1", "right", 0, 5, "ANAT-DP"))
    graph = EntityGraph(ents, (Relation("located_at", "e0", "e1"),))
    f = Finding("pleural effusion", "present", "right", ("base",), "pleura", "small", "new", "effusion", 6, 14)
    cr = ClaimResult(Claim("Right effusion.", "findings", 0, 15), graph, (f,), "supported")
    d = cr.to_dict()
    assert d["entities"] == [e.to_dict() for e in ents]
    assert d["relations"] == [r.to_dict() for r in graph.relations]
    assert d["findings"] == [f.to_dict()]


@pytest.mark.skipif(__import__("importlib").util.find_spec("torchxrayvision") is None, reason="IU reports ship with torchxrayvision")
def test_throughput_benchmark_runs_and_writes_json(tmp_path, capsys):
    from evals.bench.check_throughput import main as bench

    out = tmp_path / "ct.json"
    assert bench(["--limit", "40", "--repeat", "1", "--out", str(out)]) == 0
    res = json.loads(out.read_text())
    # torch may be imported: spaCy (the sentence splitter's fallback, loaded at start-up)
    # imports thinc, which imports torch when it is installed; the bench says so
    assert res["reports"] == 40 and isinstance(res["torch_imported"], bool) and res["startup_s"] > 0
    assert {r["stage"] for r in res["stages"]} == {"read_report", "self_evidence", "graph_checker", "end_to_end"}
    assert res["end_to_end_cold_reports_per_s"] > 0 and res["stages"][0]["warm_s"] is not None
    assert "end to end (cold)" in capsys.readouterr().out
