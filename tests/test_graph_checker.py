"""Verdict logic of the graph checker, on hand-made findings and on real IU sentences."""

from __future__ import annotations

import json

import pytest

from reportgen.checkers import graph_checker as gc
from reportgen.checkers.graph_checker import CheckingRules, GraphChecker, describe_finding, is_abstention
from reportgen.errors import ReportgenError
from reportgen.protocols import CheckedClaim
from reportgen.types import Claim, EntityGraph, EvidenceItem, Finding

F = Finding


def claim(text: str, *findings: Finding, start: int = 0, section: str = "findings") -> CheckedClaim:
    return CheckedClaim(Claim(text, section, start, start + len(text)), EntityGraph(), tuple(findings))


def ev(text: str, *findings: Finding, source: str = "reference", start: int = 500) -> EvidenceItem:
    return EvidenceItem(source, text, start, start + len(text), tuple(findings))


@pytest.fixture(scope="module")
def checker() -> GraphChecker:
    return GraphChecker()


def one(checker: GraphChecker, c: CheckedClaim, *items: EvidenceItem):
    (v,) = checker.check([c], list(items))
    assert v.checker == "graph"
    return v


NO_EFFUSION = ev("No pleural effusion.", F("pleural effusion", "absent"))
LEFT_LLL_PNEUMONIA = ev("Left lower lobe pneumonia.", F("pneumonia", "present", "left", ("lower lobe",)), start=600)
MILD_CARDIOMEGALY = ev("Mild cardiomegaly.", F("cardiomegaly", "present", severity="mild"), start=700)
NO_ACUTE = ev("No acute cardiopulmonary abnormality.", F("acute abnormality", "absent", anatomy="cardiopulmonary"), start=800)


# --- contradictions -----------------------------------------------------------------


def test_presence_flip_present_claim_vs_absent_evidence(checker):
    v = one(checker, claim("Small right pleural effusion.", F("pleural effusion", "present", "right", severity="small")), NO_EFFUSION)
    assert v.status == "contradicted" and v.score == 0.0
    assert "presence flipped" in v.reasons[0]
    assert NO_EFFUSION.describe() in v.reasons[0]
    assert v.evidence == (NO_EFFUSION,)


def test_presence_flip_absent_claim_vs_present_evidence(checker):
    v = one(checker, claim("No pneumonia.", F("pneumonia", "absent")), LEFT_LLL_PNEUMONIA)
    assert v.status == "contradicted"
    assert LEFT_LLL_PNEUMONIA.describe() in v.reasons[0]


def test_a_denial_of_the_other_side_is_no_flip(checker):
    no_left = ev("No left effusion.", F("pleural effusion", "absent", "left"))
    v = one(checker, claim("Right effusion.", F("pleural effusion", "present", "right")), no_left)
    assert v.status == "unsupported"  # nothing about the right side in the reference
    v = one(checker, claim("Bilateral effusions.", F("pleural effusion", "present", "bilateral")), no_left)
    assert v.status == "contradicted"  # the left half is denied


def test_no_large_effusion_does_not_deny_a_small_one(checker):
    no_large = ev("No large pleural effusion.", F("pleural effusion", "absent", severity="large"))
    assert one(checker, claim("Small effusion.", F("pleural effusion", "present", severity="small")), no_large).status == "unsupported"
    assert one(checker, claim("Large effusion.", F("pleural effusion", "present", severity="large")), no_large).status == "contradicted"


def test_laterality_mismatch(checker):
    v = one(checker, claim("Right lower lobe pneumonia.", F("pneumonia", "present", "right", ("lower lobe",))), LEFT_LLL_PNEUMONIA)
    assert v.status == "contradicted"
    assert "laterality mismatch (claim right, evidence left)" in v.reasons[0]
    assert "'Left lower lobe pneumonia.'" in v.reasons[0]


def test_bilateral_claim_vs_one_sided_evidence_is_a_mismatch_but_not_the_reverse(checker):
    right = ev("Right effusion.", F("pleural effusion", "present", "right"))
    both = ev("Bilateral effusions.", F("pleural effusion", "present", "bilateral"))
    assert one(checker, claim("Bilateral effusions.", F("pleural effusion", "present", "bilateral")), right).status == "contradicted"
    assert one(checker, claim("Right effusion.", F("pleural effusion", "present", "right")), both).status == "supported"


def test_location_mismatch_and_compatible_zones(checker):
    v = one(checker, claim("Left upper lobe pneumonia.", F("pneumonia", "present", "left", ("upper lobe",))), LEFT_LLL_PNEUMONIA)
    assert v.status == "contradicted" and "location mismatch" in v.reasons[0]
    # "base" and "lower lobe" lie in the same band: no mismatch.
    v = one(checker, claim("Left basilar pneumonia.", F("pneumonia", "present", "left", ("base",))), LEFT_LLL_PNEUMONIA)
    assert v.status == "supported"
    # Zones the rules do not place never contradict.
    v = one(checker, claim("Left perihilar pneumonia.", F("pneumonia", "present", "left", ("perihilar",))), LEFT_LLL_PNEUMONIA)
    assert v.status == "supported"


def test_severity_mismatch_and_synonyms(checker):
    v = one(checker, claim("Severe cardiomegaly.", F("cardiomegaly", "present", severity="severe")), MILD_CARDIOMEGALY)
    assert v.status == "contradicted" and "severity mismatch (claim severe, evidence mild)" in v.reasons[0]
    # small and mild share a level
    small = ev("Small effusion.", F("pleural effusion", "present", severity="small"))
    assert one(checker, claim("Mild effusion.", F("pleural effusion", "present", severity="mild")), small).status == "supported"


def test_change_mismatch(checker):
    worse = ev("Increased effusion.", F("pleural effusion", "present", change="increased"))
    v = one(checker, claim("Improved effusion.", F("pleural effusion", "present", change="improved")), worse)
    assert v.status == "contradicted" and "change mismatch" in v.reasons[0]


# --- support ------------------------------------------------------------------------


def test_exact_match_is_supported_with_full_score(checker):
    v = one(checker, claim("Left lower lobe pneumonia.", F("pneumonia", "present", "left", ("lower lobe",))), LEFT_LLL_PNEUMONIA)
    assert v.status == "supported" and v.score == 1.0
    assert v.reasons[0].startswith("supported:") and LEFT_LLL_PNEUMONIA.describe() in v.reasons[0]


def test_claim_more_specific_than_evidence_is_supported_with_a_lower_score(checker):
    v = one(checker, claim("Small right effusion.", F("pleural effusion", "present", "right", severity="small")),
            ev("Effusion.", F("pleural effusion", "present")))
    assert v.status == "supported" and v.score < 1.0
    assert "does not give the side, severity" in v.reasons[0]


def test_normal_statement_supports_a_specific_negative(checker):
    v = one(checker, claim("No pneumothorax.", F("pneumothorax", "absent")), NO_ACUTE)
    assert v.status == "supported"
    assert NO_ACUTE.describe() in v.reasons[0]


# --- unsupported and the no-evidence policy -----------------------------------------


def test_positive_claim_without_reference_evidence_is_unsupported(checker):
    v = one(checker, claim("Right upper lobe nodule.", F("nodule", "present", "right", ("upper lobe",))), NO_EFFUSION)
    assert v.status == "unsupported" and v.score == 0.0
    assert "no reference evidence mentions" in v.reasons[0]


def test_negative_claim_without_reference_evidence_is_supported_by_default(checker):
    v = one(checker, claim("No pneumothorax.", F("pneumothorax", "absent")), MILD_CARDIOMEGALY)
    assert v.status == "supported"
    assert v.score == checker.rules.scores["supported_by_default"] < 1.0
    assert "supported by default" in v.reasons[0]


def test_self_evidence_abstains_when_nothing_matches(checker):
    v = one(checker, claim("Right upper lobe nodule.", F("nodule", "present", "right")),
            ev("No pneumothorax.", F("pneumothorax", "absent"), source="self"))
    assert is_abstention(v) and "not checked" in v.reasons[0]


def test_claim_without_findings_abstains(checker):
    v = one(checker, claim("Comparison made to prior study."), NO_EFFUSION)
    assert v.status == "uncertain" and v.score is None and is_abstention(v)
    assert "no finding could be read" in v.reasons[0]


def test_no_evidence_at_all_abstains(checker):
    assert is_abstention(one(checker, claim("Right effusion.", F("pleural effusion", "present", "right"))))


# --- hedging ------------------------------------------------------------------------


def test_hedged_claim_is_uncertain_and_says_what_the_evidence_says(checker):
    v = one(checker, claim("Possible pneumonia.", F("pneumonia", "uncertain")), LEFT_LLL_PNEUMONIA)
    assert v.status == "uncertain" and v.score == 0.5
    assert "hedged claim" in v.reasons[0] and LEFT_LLL_PNEUMONIA.describe() in v.reasons[0]
    # a hedged claim the reference denies outright raises what the reference rules out:
    # unsupported (issue 11 quality goals; it was "uncertain" with a lower score before)
    denied = one(checker, claim("Possible effusion.", F("pleural effusion", "uncertain")), NO_EFFUSION)
    assert denied.status == "unsupported" and denied.basis == "conflicting" and denied.score < v.score
    assert "hedged claim" in denied.reasons[0] and "presence flipped" in denied.reasons[0]
    alone = one(checker, claim("Possible effusion.", F("pleural effusion", "uncertain")), MILD_CARDIOMEGALY)
    assert alone.status == "uncertain" and "no reference evidence mentions" in alone.reasons[0]


def test_hedged_evidence_makes_a_definite_claim_uncertain(checker):
    maybe = ev("Possible right lower lobe pneumonia.", F("pneumonia", "uncertain", "right", ("lower lobe",)))
    v = one(checker, claim("Right lower lobe pneumonia.", F("pneumonia", "present", "right", ("lower lobe",))), maybe)
    assert v.status == "uncertain" and "hedged evidence" in v.reasons[0] and maybe.describe() in v.reasons[0]


# --- normal statements and the hierarchy --------------------------------------------


def test_normal_impression_vs_effusion_in_findings_is_contradicted(checker):
    effusion = ev("Small left pleural effusion.", F("pleural effusion", "present", "left", severity="small"), source="self", start=0)
    normal = claim("Normal chest.", F("abnormality", "absent", anatomy="chest"), start=100, section="impression")
    v = one(checker, normal, effusion)
    assert v.status == "contradicted" and effusion.describe() in v.reasons[0]


def test_no_acute_disease_does_not_deny_chronic_findings(checker):
    granuloma = claim("Calcified granuloma.", F("calcified granuloma", "present"))
    v = one(checker, granuloma, ev("No acute disease.", F("acute abnormality", "absent"), source="self"))
    assert is_abstention(v)
    v = one(checker, claim("Left effusion.", F("pleural effusion", "present", "left")), NO_ACUTE)
    assert v.status == "contradicted"


def test_normal_statement_with_anatomy_speaks_only_for_its_region(checker):
    lungs_clear = ev("The lungs are clear.", F("abnormality", "absent", anatomy="lung"))
    assert one(checker, claim("Cardiomegaly.", F("cardiomegaly", "present")), lungs_clear).status == "unsupported"
    assert one(checker, claim("Consolidation.", F("consolidation", "present")), lungs_clear).status == "contradicted"


def test_specific_match_beats_a_normal_statement_elsewhere(checker):
    effusion = ev("Left effusion.", F("pleural effusion", "present", "left"))
    v = one(checker, claim("Left effusion.", F("pleural effusion", "present", "left")), NO_ACUTE, effusion)
    assert v.status == "supported" and v.evidence == (effusion,)


def test_broader_claim_supported_by_narrower_evidence_but_not_the_reverse(checker):
    consolidation = ev("Right lower lobe consolidation.", F("consolidation", "present", "right", ("lower lobe",)))
    assert one(checker, claim("Right basilar opacity.", F("opacity", "present", "right", ("base",))), consolidation).status == "supported"
    opacity = ev("Right basilar opacity.", F("opacity", "present", "right", ("base",)))
    v = one(checker, claim("Right lower lobe pneumonia.", F("pneumonia", "present", "right", ("lower lobe",))), opacity)
    assert v.status == "uncertain" and "less specific" in v.reasons[0]


# --- several findings, sources; self evidence ---------------------------------------


def test_worst_finding_decides_the_claim(checker):
    c = claim("Mild cardiomegaly and small right effusion.", F("cardiomegaly", "present", severity="mild"),
              F("pleural effusion", "present", "right", severity="small"))
    v = one(checker, c, MILD_CARDIOMEGALY, NO_EFFUSION)
    assert v.status == "contradicted"
    assert v.reasons[0].startswith("contradicted: small right pleural effusion")
    assert any(r.startswith("supported: mild cardiomegaly") for r in v.reasons[1:])


def test_reference_support_wins_over_a_self_contradiction_which_stays_as_a_secondary_reason(checker):
    # issue 11 section 2 (was: contradicted): the reference decides which sentence is wrong
    c = claim("Left effusion.", F("pleural effusion", "present", "left"), start=0)
    ref = ev("Left effusion.", F("pleural effusion", "present", "left"))
    own = ev("No pleural effusion.", F("pleural effusion", "absent"), source="self", start=50)
    v = one(checker, c, ref, own)
    assert (v.status, v.basis) == ("supported", "matched")
    assert ref.describe() in v.reasons[0]
    assert v.reasons[1].startswith("self-conflict (secondary") and own.describe() in v.reasons[1]
    # without a reference the self-contradiction flags the claim, as before
    alone = one(checker, c, own)
    assert (alone.status, alone.basis) == ("contradicted", "conflicting")
    # a reference that does not support the claim leaves the self-contradiction deciding
    other = ev("Mild cardiomegaly.", F("cardiomegaly", "present", severity="mild"))
    assert one(checker, c, other, own).status == "contradicted"


def test_self_evidence_from_the_claims_own_sentence_is_skipped(checker):
    text = "No pleural effusion or pneumothorax."
    c = CheckedClaim(Claim("No pleural effusion.", "findings", 3, 19, 0, len(text)), EntityGraph(), (F("pleural effusion", "absent"),))
    same_sentence = EvidenceItem("self", "No pleural effusion.", 3, 19, (F("pleural effusion", "absent"),),
                                 meta={"sentence_start": 0, "sentence_end": len(text)})
    later = EvidenceItem("self", "No pleural effusion.", 60, 80, (F("pleural effusion", "absent"),),
                         meta={"sentence_start": 57, "sentence_end": 80})
    assert is_abstention(one(checker, c, same_sentence))
    assert one(checker, c, same_sentence, later).status == "supported"


def test_image_evidence_plugs_in_as_another_source(checker):
    img = EvidenceItem("image", "region map: right lower zone", findings=(F("opacity", "present", "right", ("lower lobe",)),), score=2.5,
                       meta={"zone": "right lower"})
    v = one(checker, claim("Left lower lobe opacity.", F("opacity", "present", "left", ("lower lobe",))), img)
    assert v.status == "contradicted" and "image 'region map: right lower zone'" in v.reasons[0]
    # Image evidence that says nothing about a claim abstains rather than flags it.
    assert is_abstention(one(checker, claim("Cardiomegaly.", F("cardiomegaly", "present")), img))


def test_a_failing_claim_gives_an_error_verdict_and_the_rest_are_checked(monkeypatch):
    checker = GraphChecker()
    real = checker._judge_found

    def flaky(source, c, *rest):
        if c.observation == "boom":
            raise ValueError("broken finding")
        return real(source, c, *rest)

    monkeypatch.setattr(checker, "_judge_found", flaky)
    bad = claim("Boom.", F("boom", "present"))
    good = claim("Left lower lobe pneumonia.", F("pneumonia", "present", "left", ("lower lobe",)))
    v_bad, v_good = checker.check([bad, good], [LEFT_LLL_PNEUMONIA])
    assert v_bad.status == "error" and v_bad.reasons[0].startswith("E310") and "ValueError" in v_bad.reasons[0]
    assert v_good.status == "supported"


def test_identical_evidence_supports_even_where_the_evidence_contradicts_itself(checker):
    normal = ev("Normal chest.", F("abnormality", "absent", anatomy="chest"), start=0)
    effusion = ev("Small left pleural effusion.", F("pleural effusion", "present", "left", severity="small"), start=20)
    v = one(checker, claim("Normal chest.", F("abnormality", "absent", anatomy="chest")), normal, effusion)
    assert v.status == "supported" and "states the same" in v.reasons[0] and v.evidence == (normal,)


def test_verdicts_round_trip_json(checker):
    from reportgen.types import Verdict

    v = one(checker, claim("Right lower lobe pneumonia.", F("pneumonia", "present", "right", ("lower lobe",))), LEFT_LLL_PNEUMONIA)
    assert Verdict.from_dict(json.loads(json.dumps(v.to_dict()))) == v


def test_describe_finding():
    assert describe_finding(F("pleural effusion", "present", "right", ("base",), severity="small")) == "small right base pleural effusion (present)"


# --- the rules file ----------------------------------------------------------------


def test_rules_file_is_versioned_and_bad_files_give_e330(tmp_path):
    rules = CheckingRules.load()
    assert rules.version and "acute abnormality" in rules.ancestors["pleural effusion"]
    assert "abnormality" in rules.ancestors["calcified granuloma"]
    bad = tmp_path / "rules.json"
    bad.write_text("{}")
    with pytest.raises(ReportgenError) as e:
        CheckingRules.load(bad)
    assert e.value.code == "E330"
    raw = json.loads(gc.RULES_PATH.read_text())
    raw["hierarchy"]["parents"]["abnormality"] = ["opacity"]
    cyc = tmp_path / "cycle.json"
    cyc.write_text(json.dumps(raw))
    with pytest.raises(ReportgenError, match="cycle"):
        CheckingRules.load(cyc)
    raw = json.loads(gc.RULES_PATH.read_text())
    raw["no_evidence"]["reference"]["present"] = "maybe"
    pol = tmp_path / "policy.json"
    pol.write_text(json.dumps(raw))
    with pytest.raises(ReportgenError, match="no_evidence"):
        CheckingRules.load(pol)


def test_policy_is_read_from_the_rules_file(tmp_path):
    raw = json.loads(gc.RULES_PATH.read_text())
    raw["no_evidence"]["reference"]["absent"] = "abstain"
    p = tmp_path / "r.json"
    p.write_text(json.dumps(raw))
    strict = GraphChecker(p)
    assert is_abstention(one(strict, claim("No pneumothorax.", F("pneumothorax", "absent")), MILD_CARDIOMEGALY))


def test_no_acute_abnormality_does_not_deny_stable_or_chronic_findings(checker):
    stable = claim("Stable small left effusion.", F("pleural effusion", "present", "left", severity="small", change="stable"))
    assert one(checker, stable, NO_ACUTE).status == "unsupported"  # not denied, and nothing else mentions it
    assert one(checker, claim("Small left effusion.", F("pleural effusion", "present", "left")), NO_ACUTE).status == "contradicted"


def test_a_narrow_normal_statement_covers_only_its_own_region(checker):
    heart = ev("Heart size is normal.", F("abnormality", "absent", anatomy="heart"))
    assert one(checker, claim("Mild cardiomegaly.", F("cardiomegaly", "present", severity="mild")), heart).status == "contradicted"
    assert one(checker, claim("Right upper lobe nodule.", F("nodule", "present", "right", ("upper lobe",))), heart).status == "unsupported"
    # "something abnormal" without a place is not denied by a statement about one organ
    assert one(checker, claim("Chronic changes.", F("abnormality", "present", change="chronic")), heart).status == "unsupported"


def test_incidental_findings_are_denied_only_by_a_statement_about_them(checker):
    clear = ev("The lungs are clear.", F("abnormality", "absent", anatomy="lung"), F("nodule", "absent", anatomy="lung"))
    granulomas = claim("Scattered calcified granulomas.", F("calcified granuloma", "present", anatomy="lung"))
    assert one(checker, granulomas, clear).status == "unsupported"
    none = ev("No calcified granulomas.", F("calcified granuloma", "absent"))
    assert one(checker, granulomas, none).status == "contradicted"


def test_a_statement_with_exceptions_supports_but_never_denies(checker):
    otherwise = ev("The lungs are otherwise clear.", F("opacity", "absent", anatomy="lung"), F("abnormality", "absent", anatomy="lung"))
    opacity = claim("Left basilar opacity.", F("opacity", "present", "left", ("base",), anatomy="lung"))
    assert one(checker, opacity, otherwise).status == "unsupported"
    assert one(checker, claim("No opacity.", F("opacity", "absent")), otherwise).status == "supported"
    other = ev("No other nodules.", F("nodule", "absent"))
    assert one(checker, claim("Right upper lobe nodule.", F("nodule", "present", "right", ("upper lobe",))), other).status == "unsupported"
    # and a claim that makes exceptions is not contradicted by the finding it excepts
    own = claim("Otherwise the lungs are clear.", F("opacity", "absent", anatomy="lung"))
    assert one(checker, own, ev("Left basilar opacity.", F("opacity", "present", "left", ("base",)))).status == "supported"


def test_comparisons_are_cached_but_reasons_name_each_evidence(checker):
    a = ev("No pleural effusion.", F("pleural effusion", "absent"), start=10)
    b = ev("No pleural effusion.", F("pleural effusion", "absent"), start=90)
    c = claim("Right effusion.", F("pleural effusion", "present", "right"))
    assert a.describe() in one(checker, c, a).reasons[0]
    assert b.describe() in one(checker, c, b).reasons[0]


def test_a_specific_finding_beats_another_normal_statement_for_a_normal_claim(checker):
    clear = ev("The lungs are clear.", F("abnormality", "absent", anatomy="lung"), source="self", start=0)
    effusion = ev("Small left pleural effusion.", F("pleural effusion", "present", "left", severity="small"), source="self", start=25)
    normal = claim("Normal chest.", F("abnormality", "absent", anatomy="chest"), start=100, section="impression")
    v = one(checker, normal, clear, effusion)
    assert v.status == "contradicted" and v.evidence == (effusion,)
    assert one(checker, normal, clear).status == "supported"


# --- real IU sentences, read with the rules extractor -------------------------------
# Each sentence below occurs verbatim in the Indiana University reports; the expected
# verdicts were checked by hand.


@pytest.fixture(scope="module")
def ref_pipeline():
    from reportgen.checkers.pipeline import Pipeline

    return Pipeline(self_check=False)


@pytest.fixture(scope="module")
def self_pipeline():
    from reportgen.checkers.pipeline import Pipeline

    return Pipeline()


def statuses(result) -> dict[str, str]:
    assert result.error is None, result.error
    return {c.claim.text: c.status for c in result.claims}


def reasons_of(result, text: str) -> str:
    return " | ".join(next(c for c in result.claims if c.claim.text == text).reasons)


@pytest.mark.parametrize("claim_text, reference, status, why", [
    ("Small right pneumothorax.", "No pleural effusion or pneumothorax.", "contradicted", "presence flipped"),
    ("Right upper lobe pneumonia.", "Left upper lobe pneumonia.", "contradicted", "laterality mismatch"),
    ("Right lower lobe pneumonia.", "Right upper lobe pneumonia.", "contradicted", "location mismatch"),
    ("Severe cardiomegaly.", "Mild cardiomegaly.", "contradicted", "severity mismatch"),
    ("Moderate right pleural effusion.", "Small right pleural effusion.", "contradicted", "severity mismatch"),
    ("Small left pleural effusion.", "Mild cardiomegaly.", "unsupported", "no reference evidence mentions"),
    ("Right lower lobe pneumonia.", "Right lower lobe airspace disease.", "uncertain", "less specific"),
    ("Right upper lobe pneumonia.", "Right upper lobe pneumonia.", "supported", "states the same"),
    ("Small right pleural effusion.", "Associated right pleural effusion.", "supported", "does not give the severity"),
    ("Mild cardiomegaly.", "Normal chest.", "contradicted", "presence flipped"),
])
def test_real_sentences_against_a_reference(ref_pipeline, claim_text, reference, status, why):
    r = ref_pipeline.check("t", f"FINDINGS: {claim_text}", f"FINDINGS: {reference}")
    assert statuses(r) == {claim_text: status}
    reasons = reasons_of(r, claim_text)
    assert why in reasons
    if status != "unsupported":
        assert "reference[" in reasons  # names the evidence claim it compared with


def test_real_coordination_gives_two_negative_claims(ref_pipeline):
    r = ref_pipeline.check("t", "FINDINGS: No pleural effusion or pneumothorax.", "FINDINGS: No pneumothorax.")
    s = statuses(r)
    assert s == {"No pleural effusion.": "supported", "No pneumothorax.": "supported"}
    assert "supported by default" in reasons_of(r, "No pleural effusion.")
    assert "states the same: reference[" in reasons_of(r, "No pneumothorax.")


def test_real_hedged_claim_is_uncertain(ref_pipeline):
    r = ref_pipeline.check("t", "FINDINGS: This may represent an early pneumonia.", "FINDINGS: Right lower lobe pneumonia.")
    (c,) = r.claims
    assert c.status == "uncertain" and "hedged claim" in c.reasons[0]


def test_real_normal_impression_vs_effusion_in_findings(self_pipeline):
    r = self_pipeline.check("t", "FINDINGS: Small left pleural effusion.\n\nIMPRESSION: Normal chest.")
    assert statuses(r) == {"Small left pleural effusion.": "contradicted", "Normal chest.": "contradicted"}
    assert "'Small left pleural effusion.'" in reasons_of(r, "Normal chest.")


def test_real_clear_lungs_and_granulomas_are_consistent(self_pipeline):
    text = ("FINDINGS: The lungs are clear. There is no focal airspace consolidation. "
            "There are a few scattered calcified granulomas.\n\nIMPRESSION: No evidence of active disease.")
    s = statuses(self_pipeline.check("CXR558-like", text))
    assert "contradicted" not in s.values()
    assert s["There is no focal airspace consolidation."] == "supported"


def test_real_heart_size_normal_vs_cardiomegaly(ref_pipeline):
    r = ref_pipeline.check("t", "FINDINGS: Heart size is normal.", "FINDINGS: Moderate cardiomegaly.")
    assert statuses(r) == {"Heart size is normal.": "contradicted"}


def test_self_mismatch_counts_across_sections_only(checker):
    right = claim("Right apical scarring.", F("scarring", "present", "right", ("apex",)), start=0)
    left_same = EvidenceItem("self", "Left basilar scarring.", 30, 52, (F("scarring", "present", "left", ("base",)),),
                             meta={"section": "findings", "sentence_start": 30, "sentence_end": 52})
    assert is_abstention(one(checker, right, left_same))  # two instances in one section
    left_impression = EvidenceItem("self", "Left basilar scarring.", 90, 112, (F("scarring", "present", "left", ("base",)),),
                                   meta={"section": "impression", "sentence_start": 90, "sentence_end": 112})
    v = one(checker, right, left_impression)
    assert v.status == "contradicted" and "laterality mismatch" in v.reasons[0]
    # against a reference the same mismatch always counts
    ref = EvidenceItem("reference", "Left basilar scarring.", 0, 22, (F("scarring", "present", "left", ("base",)),), meta={"section": "findings"})
    assert one(checker, right, ref).status == "contradicted"


def test_a_redacted_subject_makes_a_normal_statement_deny_nothing(checker):
    redacted = ev("Pulmonary XXXX are normal.", F("abnormality", "absent", anatomy="lung"), F("consolidation", "absent", anatomy="lung"))
    assert one(checker, claim("Consolidation.", F("consolidation", "present")), redacted).status == "unsupported"
    assert one(checker, claim("No consolidation.", F("consolidation", "absent")), redacted).status == "supported"


def test_no_new_finding_does_not_deny_a_stable_one(checker):
    no_new = ev("No new opacity.", F("opacity", "absent", change="new"))
    assert one(checker, claim("Stable left base opacity.", F("opacity", "present", "left", ("base",), change="stable")), no_new).status == "unsupported"
    assert one(checker, claim("New left base opacity.", F("opacity", "present", "left", ("base",), change="new")), no_new).status == "contradicted"


def test_low_severity_words_share_a_level(checker):
    small = ev("Small amount of right basilar atelectasis.", F("atelectasis", "present", "right", ("base",), severity="small"))
    assert one(checker, claim("Minimal right basilar atelectasis.", F("atelectasis", "present", "right", ("base",), severity="minimal")), small).status == "supported"
    assert one(checker, claim("Moderate right basilar atelectasis.", F("atelectasis", "present", "right", ("base",), severity="moderate")), small).status == "contradicted"


def test_an_acute_negative_does_not_deny_chronic_or_incidental_findings(checker):
    no_acute_nodule = ev("No acute pulmonary findings.", F("nodule", "absent", change="acute"))
    granuloma_like = claim("Dense nodule, previous granulomatous process.", F("calcified granuloma", "present"))
    assert one(checker, granuloma_like, no_acute_nodule).status == "unsupported"
    old = claim("Chronic nodule.", F("nodule", "present", change="chronic"))
    assert one(checker, old, no_acute_nodule).status == "unsupported"
    assert one(checker, claim("Right lower lobe nodule.", F("nodule", "present", "right", ("lower lobe",))), no_acute_nodule).status == "contradicted"
