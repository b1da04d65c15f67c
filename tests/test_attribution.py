"""Issue 11 section 2: with a reference, a self-contradiction is attributed to the sentence
the reference does not support; the sentence it supports keeps ``supported`` with the
conflict as a secondary reason naming its partner."""

from __future__ import annotations

from reportgen.checkers.pipeline import Pipeline

CANDIDATE = "FINDINGS: There is a pleural effusion.\n\nIMPRESSION: No acute cardiopulmonary abnormality."
REFERENCE = "FINDINGS: No pleural effusion.\n\nIMPRESSION: No acute cardiopulmonary abnormality."


def claims(result):
    return {c.claim.text: c for c in result.claims}


def test_the_reference_decides_which_sentence_of_a_self_conflict_is_flagged():
    c = claims(Pipeline().check("a", CANDIDATE, REFERENCE))
    wrong, right = c["There is a pleural effusion."], c["No acute cardiopulmonary abnormality."]
    assert (wrong.status, wrong.basis) == ("contradicted", "conflicting")  # the partner carries the flag
    assert any("reference[" in r for r in wrong.reasons)
    assert (right.status, right.basis) == ("supported", "matched")
    secondary = [r for r in right.reasons if r.startswith("self-conflict (secondary")]
    assert secondary and "'There is a pleural effusion.'" in secondary[0] and "self[10:38]" in secondary[0]
    assert CANDIDATE[10:38] == "There is a pleural effusion."
    assert right.reasons[0].startswith("supported")  # the deciding reason first


def test_without_a_reference_self_consistency_flags_both_sentences_as_before():
    c = claims(Pipeline().check("a", CANDIDATE))
    assert c["There is a pleural effusion."].status == "contradicted"
    assert c["No acute cardiopulmonary abnormality."].status == "contradicted"
    assert not any(r.startswith("self-conflict") for x in c.values() for r in x.reasons)


def test_a_reference_that_supports_both_partners_flags_neither():
    report = "FINDINGS: Mild cardiomegaly.\n\nIMPRESSION: Normal chest."
    c = claims(Pipeline().check("a", report, report))
    assert {x.status for x in c.values()} == {"supported"}
    assert any(r.startswith("self-conflict") for r in c["Mild cardiomegaly."].reasons)
