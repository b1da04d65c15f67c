"""Regressions of the graph checker found with the error-injection benchmark (negation flips
missed after the IU self-consistency review): real sentences through the rules extractor,
checked with ``Pipeline`` against a reference or for internal consistency."""

from __future__ import annotations

import pytest

from reportgen.checkers.pipeline import Pipeline
from reportgen.checkers.read import read_report
from reportgen.types import Finding


@pytest.fixture(scope="module")
def ref_pipe() -> Pipeline:
    return Pipeline(self_check=False)


@pytest.fixture(scope="module")
def self_pipe() -> Pipeline:
    return Pipeline()


def statuses(pipe: Pipeline, text: str, reference: str | None = None) -> list[str]:
    res = pipe.check("r", text, reference)
    assert res.error is None
    return [c.status for c in res.claims]


def only(pipe: Pipeline, text: str, reference: str | None = None):
    res = pipe.check("r", text, reference)
    assert res.error is None and len(res.claims) == 1, [c.claim.text for c in res.claims]
    return res.claims[0]


# --- a drafted report asserting what the reference denies is contradicted ------------------


@pytest.mark.parametrize("claim, reference", [
    ("Acute cardiopulmonary process.", "No acute cardiopulmonary process."),
    ("Acute cardiopulmonary abnormality.", "No acute cardiopulmonary abnormality."),
    ("There is an acute cardiopulmonary abnormality.", "No acute cardiopulmonary abnormality."),
    ("Active disease.", "No active disease."),
    ("1. active disease.", "1. No active disease."),
    ("Positive for acute abnormality.", "Negative for acute abnormality."),
    ("Disease.", "No disease."),
    ("Abnormality.", "No abnormality."),
])
def test_an_asserted_umbrella_the_reference_denies_is_contradicted(ref_pipe, claim, reference):
    c = only(ref_pipe, claim, reference)
    assert c.status == "contradicted", c.reasons
    assert "presence flipped" in c.reasons[0]


def test_an_acute_umbrella_is_denied_only_where_the_statement_speaks(ref_pipe):
    # "no acute bony abnormality" says nothing about the lungs
    c = only(ref_pipe, "Acute cardiopulmonary process.", "No acute bony abnormality.")
    assert c.status == "unsupported", c.reasons


def test_bare_umbrellas_without_assertion_still_give_no_finding(ref_pipe):
    for text in ("Findings.", "Chronic changes.", "Findings discussed with Dr. XXXX."):
        assert not read_report(text).claims[0].findings, text
    c = only(ref_pipe, "Findings.", "No findings.")
    assert c.status == "uncertain" and c.score is None


def test_negative_before_a_finding_negates_it_but_negative_chest_stays_normal():
    f = read_report("Negative acute cardiopulmonary abnormality.").claims[0].findings
    assert f and all(x.presence == "absent" for x in f)
    g = read_report("Negative chest.").claims[0].findings
    assert ("abnormality", "absent") in {(x.observation, x.presence) for x in g}


# --- redacted qualifiers: uncertain at most, never supported ------------------------------


@pytest.mark.parametrize("claim, reference", [
    ("No XXXX left lower lobe nodule.", "XXXX left lower lobe nodule."),
    ("No XXXX opacity persists in the right midlung.", "XXXX opacity persists in the right midlung."),
])
def test_a_negative_with_a_redacted_qualifier_never_drops_the_reference_finding(ref_pipe, claim, reference):
    c = only(ref_pipe, claim, reference)
    assert c.status == "uncertain" and c.score is not None, c.reasons
    assert "redacted" in c.reasons[0]
    # a broader normal statement elsewhere in the reference does not make it supported
    res = ref_pipe.check("r", claim, reference + " Pulmonary XXXX are normal. No focal infiltrates.")
    assert [x.status for x in res.claims] == ["uncertain"], res.claims[0].reasons


def test_a_positive_claim_against_a_redacted_denial_is_unsupported(ref_pipe):
    c = only(ref_pipe, "XXXX left lower lobe nodule.", "No XXXX left lower lobe nodule.")
    assert c.status == "unsupported", c.reasons


def test_a_redacted_word_after_the_finding_narrows_nothing(ref_pipe):
    # "costophrenic XXXX" is the redacted "angle", not a qualifier of the denial
    c = only(ref_pipe, "No blunting of the left costophrenic XXXX.", "Blunting of the left costophrenic XXXX.")
    assert c.status == "contradicted", c.reasons


def test_self_consistency_keeps_redacted_statements_from_denying(self_pipe):
    text = "FINDINGS: Normal mediastinal contour, pulmonary XXXX.\n\nIMPRESSION: There is right basal XXXX patchy opacity."
    assert "contradicted" not in statuses(self_pipe, text)
    text = ("FINDINGS: No nodules noted within the lungs on a recent outside XXXX from XXXX. "
            "There is a 1.2 cm nodule in the right midlung.")
    assert "contradicted" not in statuses(self_pipe, text)
    # with a reference too, the self evidence keeps the conservative reading
    assert "contradicted" not in statuses(self_pipe, text, "Heart size is normal.")
    text = "FINDINGS: Normal mediastinal contour, pulmonary XXXX.\n\nIMPRESSION: There is right basal XXXX patchy opacity."
    assert "contradicted" not in statuses(self_pipe, text, "There is right basal XXXX patchy opacity. Normal mediastinal contour.")


# --- what the self-consistency review was for stays ----------------------------------------


def test_no_new_x_does_not_deny_a_stable_finding(ref_pipe, self_pipe):
    assert only(ref_pipe, "No new opacity.", "Stable right basilar opacity.").status == "supported"
    assert "contradicted" not in statuses(self_pipe, "FINDINGS: Stable right basilar opacity.\n\nIMPRESSION: No new opacity.")


def test_vague_chronic_changes_are_not_denied_by_clear_lungs(self_pipe):
    assert "contradicted" not in statuses(self_pipe, "FINDINGS: The lungs are clear.\n\nIMPRESSION: Chronic lung changes.")


@pytest.mark.parametrize("claim, reference, status", [
    # each side names a zone the other does not: a location change, although both name the middle lobe
    ("Right middle and upper lobe opacities.", "Right middle and lower lobe opacities.", "contradicted"),
    # the claim only adds a zone: supported, but the extra zone is named as not confirmed
    ("Right middle and lower lobe opacities.", "Right lower lobe opacity.", "supported"),
    ("Right lower lobe opacity.", "Right middle and lower lobe opacities.", "supported"),
    ("Right middle and lower lobe opacities.", "Right middle and lower lobe opacities.", "supported"),
])
def test_several_zones_are_compared_zone_by_zone(claim, reference, status):
    (c,) = Pipeline().check("z", claim, reference).claims
    assert c.status == status, c.verdicts[0].reasons
    if claim.startswith("Right middle and lower") and reference == "Right lower lobe opacity.":
        assert "does not give the location (middle lobe)" in c.verdicts[0].reasons[0] and c.score < 1.0
    if status == "contradicted":
        assert "location mismatch" in c.verdicts[0].reasons[0]
        assert "right middle lobe and upper lobe opacity" in c.verdicts[0].reasons[0]


@pytest.mark.parametrize("claim, reference, status", [
    # a zone word gives the pleural finding the lung as anatomy; a plain negative still denies it
    ("No pneumothorax.", "Left apical pneumothorax.", "contradicted"),
    ("No pneumothorax.", "Small left apical pneumothorax.", "contradicted"),
    ("No pleural effusion.", "Small left basilar pleural effusion.", "contradicted"),
    ("Left apical pneumothorax.", "No pneumothorax.", "contradicted"),
    # a statement about another region still says nothing about it
    ("The heart is normal.", "Left apical pneumothorax.", "supported"),
    ("The lungs are clear.", "Small left pleural effusion.", "supported"),
])
def test_a_plain_negative_denies_its_finding_wherever_the_other_statement_places_it(claim, reference, status):
    (c,) = Pipeline().check("z", claim, reference).claims
    assert c.status == status, c.verdicts[0].reasons


# --- issue 11 quality goals: errors of the open injection benchmark (vocabulary 1.1) -------


@pytest.mark.parametrize("claim, reference", [
    ("Pneumothorax or pleural effusion.", "FINDINGS: No pneumothorax or pleural effusion. Mild cardiomegaly."),
    ("Suspicious pulmonary nodules or masses.", "FINDINGS: No suspicious pulmonary nodules or masses."),
])
def test_hedged_claim_the_reference_denies_is_unsupported(ref_pipe, claim, reference):
    res = ref_pipe.check("r", f"FINDINGS: {claim}", reference)
    assert [c.status for c in res.claims] and all(c.status == "unsupported" and c.basis == "conflicting" for c in res.claims)
    # the same hedge in the reference agrees with it: uncertain, as before
    same = ref_pipe.check("r", f"FINDINGS: {claim}", f"FINDINGS: {claim}")
    assert all(c.status == "uncertain" for c in same.claims)


@pytest.mark.parametrize("claim, reference, what", [
    ("Severe cardiomegaly.", "FINDINGS: Mild cardiomegaly.\n\nIMPRESSION: Cardiomegaly.", "severity mismatch"),
    ("Mild scarring at the left apex.", "FINDINGS: Mild scarring at the right apex.\n\nIMPRESSION: Scarring.", "laterality mismatch"),
    ("Large right pleural effusion.", "FINDINGS: Small right pleural effusion.\n\nIMPRESSION: Right pleural effusion.", "severity mismatch"),
])
def test_a_detail_stated_otherwise_beats_a_statement_without_it(ref_pipe, claim, reference, what):
    c = only(ref_pipe, f"FINDINGS: {claim}", reference)
    assert c.status == "contradicted" and what in c.reasons[0]
    # a statement that confirms the detail keeps it supported
    ok = only(ref_pipe, f"FINDINGS: {claim}", reference + f" {claim}")
    assert ok.status == "supported"


def test_an_opacity_the_reference_explains_is_no_evidence_for_another_finding(ref_pipe):
    ref = "FINDINGS: There are streaky opacities in both lung bases which may represent atelectasis or scarring."
    c = only(ref_pipe, "FINDINGS: Mild interstitial pulmonary edema.", ref)
    assert c.status == "unsupported" and c.basis == "no_evidence"
    # an unexplained opacity stays weak evidence for it
    weak = only(ref_pipe, "FINDINGS: Mild interstitial pulmonary edema.", "FINDINGS: Streaky opacities in both lung bases.")
    assert weak.status == "uncertain" and weak.basis == "weak_evidence"


@pytest.mark.parametrize("claim, reference", [
    ("There are acute bony findings.", "FINDINGS: There are no acute bony findings."),
    ("Acute osseous abnormality.", "FINDINGS: No acute osseous abnormality."),
])
def test_bony_umbrellas_are_read_both_ways(ref_pipe, claim, reference):
    # lexicon 1.5.0 had "bony findings" / "osseous abnormality" as anatomy words: neither
    # the statement nor its negation gave a finding
    c = only(ref_pipe, f"FINDINGS: {claim}", reference)
    assert c.status == "contradicted" and any(f.observation == "acute abnormality" and f.anatomy == "bone" for f in c.findings)


@pytest.mark.parametrize("claim, reference", [
    ("No calcified granuloma periphery left lung.", "FINDINGS: Calcified granuloma periphery left lung. The lungs are clear."),
    ("1. No right perihilar lung nodule.", "FINDINGS: 1. Right perihilar lung nodule."),
])
def test_a_negative_placed_outside_the_lung_bands_denies_the_finding_there(ref_pipe, claim, reference):
    c = only(ref_pipe, f"FINDINGS: {claim}", reference)
    assert c.status == "contradicted"
    # ... and nothing placed elsewhere
    other = only(ref_pipe, f"FINDINGS: {claim}", "FINDINGS: Right upper lobe nodule. Calcified granuloma in the left upper lobe.")
    assert other.status != "contradicted"


@pytest.mark.parametrize("text, side, zone", [
    ("In the right midlung zone there is identified a 1.5 cm nodule.", "right", "midlung"),
    ("Within the left lower lobes there are XXXX airspace opacities.", "left", "lower lobe"),
    ("In the left lung base there is a small opacity.", "left", "base"),
])
def test_a_place_that_opens_the_sentence_places_its_finding(ref_pipe, text, side, zone):
    (f,) = read_report(f"FINDINGS: {text}").claims[0].findings
    assert (f.laterality, f.locations) == (side, (zone,))
    swapped = text.replace(side, "left" if side == "right" else "right")
    assert only(ref_pipe, f"FINDINGS: {swapped}", f"FINDINGS: {text}").status == "contradicted"
    # "In addition there is ...", "At this time there is ...": no place, nothing placed
    (g,) = read_report("FINDINGS: In addition there is a small effusion.").claims[0].findings
    assert g.locations == () and g.laterality is None


@pytest.mark.parametrize("text, side", [
    ("Bibasilar opacities, right greater than left.", "right"),
    ("There is left greater than right biapical bullous emphysema.", "left"),
    ("Obliteration of the bilateral pleural sinus, more on the right than left side.", "right"),
    ("Bibasilar airspace disease, left-sided predominance.", "left"),
])
def test_the_predominant_side_of_a_bilateral_finding_is_compared(ref_pipe, text, side):
    # ("bullous emphysema" is two findings since lexicon 1.9.0, bullae and emphysema: both get the side)
    for f in read_report(f"FINDINGS: {text}").claims[0].findings:
        assert f.predominant == side and f.to_dict()["predominant"] == side
    other = "left" if side == "right" else "right"
    swapped = text.replace(side, "@").replace(other, side).replace("@", other)
    c = only(ref_pipe, f"FINDINGS: {swapped}", f"FINDINGS: {text}")
    assert c.status == "contradicted" and "greater" in c.reasons[0]
    # the same statement is supported, and a statement without the asymmetry elsewhere does
    # not support the swapped one (it leaves the side unconfirmed)
    assert only(ref_pipe, f"FINDINGS: {text}", f"FINDINGS: {text}").status == "supported"
    res = ref_pipe.check("r", f"FINDINGS: {swapped}", f"FINDINGS: Bibasilar opacities. Emphysema. Pleural thickening. {text}")
    assert res.claims[0].status == "contradicted"


def test_a_phrase_naming_one_side_twice_or_a_one_sided_finding_gets_no_predominant_side():
    (f,) = read_report("FINDINGS: Right greater than right basilar opacity.").claims[0].findings
    assert f.predominant is None
    (g,) = read_report("FINDINGS: Left lower lobe opacity, greater than on the prior exam.").claims[0].findings
    assert g.predominant is None and g.laterality == "left"


def test_a_statement_giving_the_detail_supports_leave_open_decides(ref_pipe):
    # the granulomas are bilateral but say nothing of the apex; the statement about the apex
    # puts the opacity on the other side
    ref = ("FINDINGS: Stable bilateral calcified granulomas. Opacity in the left apex consistent with "
           "radiation change seen on prior CT.")
    c = only(ref_pipe, "FINDINGS: Opacity in the right apex consistent with radiation change seen on prior CT.", ref)
    assert c.status == "contradicted" and "laterality mismatch" in c.reasons[0]
    # without the statement about the apex the broader support stands, and the true side is supported
    assert only(ref_pipe, "FINDINGS: Opacity in the right apex.", "FINDINGS: Stable bilateral calcified granulomas.").status == "supported"
    assert only(ref_pipe, "FINDINGS: Opacity in the left apex.", ref).status == "supported"


def test_an_irregular_rib_is_a_sided_deformity(ref_pipe):
    ref = "FINDINGS: There is stable irregularity of the posterior left 6th rib which XXXX represents an old fracture."
    (f, g) = read_report(ref).claims[0].findings
    assert (f.observation, f.laterality, g.observation, g.laterality) == ("deformity", "left", "fracture", "left")
    assert only(ref_pipe, ref.replace("left", "right"), ref).status == "contradicted"
    # elsewhere an irregularity stays one (no bone deformity in the lung)
    (h, *_) = read_report("FINDINGS: Right apical pleural-parenchymal irregularities compatible with scarring.").claims[0].findings
    assert (h.observation, h.anatomy) == ("irregularity", "lung")


def test_the_sides_of_the_zones_of_one_finding_are_compared(ref_pipe):
    ref = "FINDINGS: Opacities in the left upper lobe and right lower lobe. Bilateral pleural effusions."
    (f,) = read_report("FINDINGS: Opacities in the left upper lobe and right lower lobe.").claims[0].findings
    assert f.zone_sides == ("left upper lobe", "right lower lobe") and f.laterality == "bilateral"
    assert Finding.from_dict(f.to_dict()) == f
    swapped = "FINDINGS: Opacities in the right upper lobe and left lower lobe."
    c = only(ref_pipe, swapped, ref)
    assert c.status == "contradicted" and "laterality mismatch" in c.reasons[0]
    assert only(ref_pipe, "FINDINGS: Opacities in the left upper lobe and right lower lobe.", ref).status == "supported"
    # one side for all zones: no zone sides
    (g,) = read_report("FINDINGS: Right middle and lower lobe opacities.").claims[0].findings
    assert g.zone_sides == ()


def test_the_zones_of_each_side_are_compared(ref_pipe):
    """"left lower lobe and right upper lobe" against "left upper lobe and right upper lobe" was
    supported: the evidence's zones were keyed by zone only (its left upper lobe was lost to
    the right one), and each side's places were not compared."""
    ref = "FINDINGS: Pneumonia in the left upper lobe and right upper lobe."
    c = only(ref_pipe, "FINDINGS: Pneumonia in the left lower lobe and right upper lobe.", ref)
    assert c.status == "contradicted" and "location mismatch" in c.reasons[0]
    assert only(ref_pipe, "FINDINGS: Pneumonia in the right upper lobe.", ref).status == "supported"
    assert only(ref_pipe, ref, ref).status == "supported"
    ref = "FINDINGS: Patchy left apical and right basilar airspace disease."
    c = only(ref_pipe, "FINDINGS: Patchy left basilar and right basilar airspace disease.", ref)
    assert c.status == "contradicted" and "location mismatch" in c.reasons[0]


# --- issue 11 laterality, benchmark 1.3 (written from odd-numbered IU reports' misses) -------


SIDE_LESS_HEDGES = {"opacity": "FINDINGS: XXXX subsegmental atelectasis or scar seen on lateral view.",
                    "humerus": "FINDINGS: Shoulder degenerative changes with subluxation."}


@pytest.mark.parametrize("claim, reference, status, what", [
    # a hedged claim that a side-giving statement denies, beside a hedged statement that
    # leaves the side open ("atelectasis or scar", no side): the side-giving one decides
    ("Questioned some vague left lower lobe opacity on the frontal film.",
     "FINDINGS: Left lung clear. Questioned some vague right lower lobe opacity on the frontal film. "
     "XXXX subsegmental atelectasis or scar seen on lateral view.", "unsupported", "presence flipped"),
    # a hedged claim put on the other side than the hedged statement that gives the side,
    # beside one that gives none ("subluxation")
    ("Probable chronic dislocation of the right humerus.",
     "FINDINGS: Probable chronic dislocation of the left humerus.\n\nIMPRESSION: Shoulder degenerative changes with "
     "subluxation.", "contradicted", "laterality mismatch"),
])
def test_a_hedged_claim_is_judged_by_the_statement_that_gives_its_side(ref_pipe, claim, reference, status, what):
    c = only(ref_pipe, f"FINDINGS: {claim}", reference)
    assert c.status == status and what in c.reasons[0], c.reasons
    # the side-less hedged statement alone keeps it uncertain; so does one on the same side
    side_less = next(v for k, v in SIDE_LESS_HEDGES.items() if k in claim)
    assert only(ref_pipe, f"FINDINGS: {claim}", side_less).status == "uncertain"
    assert only(ref_pipe, f"FINDINGS: {claim}", reference + f" {claim}").status == "uncertain"


def test_a_list_of_zones_after_a_finding_with_anatomy_before_it_places_the_finding(ref_pipe):
    text = "There are small bilateral pulmonary nodules in the right midlung and left upper lung XXXX."
    (f,) = read_report(f"FINDINGS: {text}").claims[0].findings
    assert f.locations == ("midlung", "apex") and f.zone_sides == ("right midlung", "left apex")
    swapped = text.replace("right", "@").replace("left", "right").replace("@", "left")
    c = only(ref_pipe, f"FINDINGS: {swapped}", f"FINDINGS: {text}")
    assert c.status == "contradicted" and "laterality mismatch" in c.reasons[0]
    # anatomy that is no zone, or a side compared with another, is not attached
    (g,) = read_report("FINDINGS: Soft tissue density identified in the medial right apex which is asymmetric compared to left.").claims[0].findings
    assert (g.laterality, g.locations) == ("right", ("apex",))
    (h,) = read_report("FINDINGS: Subtle airspace density within the medial right lung base, not obscuring the right heart XXXX.").claims[0].findings
    assert (h.anatomy, h.locations) == ("lung", ("base",))


@pytest.mark.parametrize("text, side, zone", [
    ("anterior segment of upper lobe, rounded focal density.", None, "upper lobe"),
    ("Right upper lobe, rounded focal density.", "right", "upper lobe"),
    ("Bilateral upper lobe XXXX, fibronodular infiltrates which have been there on prior exams.", "bilateral", "upper lobe"),
])
def test_a_place_a_comma_and_a_finding_places_the_finding(ref_pipe, text, side, zone):
    (f,) = read_report(f"FINDINGS: {text}").claims[0].findings
    assert (f.laterality, f.locations) == (side, (zone,))
    moved = text.replace("upper", "lower")
    c = only(ref_pipe, f"FINDINGS: {moved}", f"FINDINGS: {text}")
    assert c.status == "contradicted" and "location mismatch" in c.reasons[0]
    # not when the place is inside a clause, or a cue opens the finding's chunk
    (g,) = read_report("FINDINGS: Radiodensity overlying the middle cardiac silhouette, XXXX representing a hiatal hernia.").claims[0].findings
    assert g.anatomy == "abdomen"
    (h, *_) = read_report("FINDINGS: Visualized osseous structures of the thorax demonstrate healed, remote bilateral rib fractures.").claims[0].findings
    assert h.anatomy == "bone"
    # the finding of a list that ends in its own anatomy stays there (MeSH: aorta, no cardiomegaly)
    obs = {f.observation for c in read_report("FINDINGS: Stable heart size, moderately enlarged and tortuous calcified aorta.").claims
           for f in c.findings}
    assert "cardiomegaly" not in obs


# --- "calcified" (lexicon 1.8.0): a finding of its own unless a rule joins it to the next one -----


@pytest.mark.parametrize("text, expected", [
    ("Calcified tortuous aorta.", {"calcification", "tortuous aorta"}),  # the calcification was lost
    ("Densely calcified aorta.", {"calcification"}),  # nothing was read
    ("Calcified pleural plaque at the right base.", {"calcification", "pleural thickening"}),
    ("Calcified granuloma in the left upper lobe.", {"calcified granuloma"}),  # a modifier rule: one finding
    ("Calcified hilar lymphadenopathy.", {"calcification"}),
    ("Noncalcified nodule in the right upper lobe.", {"nodule"}),  # was read as a calcified granuloma
])
def test_calcified_is_a_finding_unless_a_rule_makes_one_of_the_two(text, expected):
    found = {f.observation for cc in read_report(f"FINDINGS: {text}").claims for f in cc.findings if f.presence == "present"}
    assert found == expected


def test_the_upper_and_lower_hemithorax_are_zones(ref_pipe):
    """Lexicon 1.8.1 (a location miss of an odd-numbered IU report): "left lower hemithorax"
    placed the mass nowhere, so "left upper hemithorax" was supported."""
    ref = "IMPRESSION: Approximately 4.8 cm mass in the left lower hemithorax."
    (f,) = read_report(ref).claims[0].findings
    assert (f.laterality, f.locations) == ("left", ("base",))
    c = only(ref_pipe, ref.replace("lower", "upper"), ref)
    assert c.status == "contradicted" and "location mismatch" in c.reasons[0]
    assert only(ref_pipe, ref, ref).status == "supported"


# --- MeSH review of "definite, untagged" findings (lexicon 1.8.0): reading errors found ------------


@pytest.mark.parametrize("text, expected", [
    ("Pneumonia should be considered.", {("pneumonia", "uncertain")}),  # was read as present
    ("XXXX B-lines are also noted.", {("septal thickening", "present")}),  # was a catheter ("lines")
    ("Mild pectus excavatum deformity is noted.", {("pectus deformity", "present")}),  # and a spine deformity
    ("Stable resection of distal left clavicle.", {("postsurgical change", "present")}),  # was a pneumonectomy
    ("Recommend CT of the chest with intravenous contrast for further evaluation.", set()),  # was contrast present
    ("Contrast is seen in the colon.", {("contrast", "present")}),  # contrast itself is still read
])
def test_reading_errors_found_in_the_mesh_review(text, expected):
    found = {(f.observation, f.presence) for cc in read_report(f"FINDINGS: {text}").claims for f in cc.findings}
    assert found == expected


# --- systematic MeSH review of "definite, untagged" findings (issue 11): reading errors -----------


@pytest.mark.parametrize("text, expected", [
    # resolved findings and requests
    ("There has been clearing of left base airspace opacities.", {("opacity", "absent")}),  # was present
    ("Partial clearing of the left base opacity.", {("opacity", "present")}),  # improving, not gone
    ("Follow-up radiograph to confirm clearing of the opacities.", {("opacity", "hypothetical")}),
    ("Correlation with history of malignancy is recommended.", {("mass", "hypothetical")}),  # was a mass
    # hedges the cues missed
    ("It would be difficult to completely exclude a superimposed pneumonia.", {("pneumonia", "uncertain")}),
    ("Atypical infection is another consideration.", {("pneumonia", "uncertain")}),
    ("Pneumonia is in the differential.", {("pneumonia", "uncertain")}),
    ("Maybe due to pulmonary fibrosis.", {("fibrosis", "uncertain")}),
    ("Malignancy cannot be confidently excluded on the available images.", {("mass", "uncertain")}),
    ("There has been previous surgical resection of the left 6th rib.", {("postsurgical change", "present")}),  # was a pneumonectomy
    ("The previously seen nodule is not well seen on today's study.", {("nodule", "uncertain")}),  # was present
    ("New 9 mm right lower lobe nodule, not seen on prior exams.", {("nodule", "present")}),  # was absent
    # a finding attributed to a benign mimic (lexicon contextual.mimics) is not definite
    ("Nodular opacity in the left lower lung, most likely the nipple.", {("nodule", "uncertain"), ("nipple shadow", "uncertain")}),
    ("Nodular densities over the lower ribs are consistent with nipple shadows.", {("nodule", "uncertain"), ("nipple shadow", "present")}),
    ("Nodular density in the right midlung likely represents an artifact.", {("nodule", "uncertain"), ("artifact", "uncertain")}),
    ("Density at the left base secondary to soft tissue overlay.", {("opacity", "uncertain"), ("artifact", "present")}),
    # words read in another sense
    ("Bone density is decreased.", {("osteopenia", "present")}),  # was a (lung) opacity
    ("Configuration of breast shadows suggests prior right lumpectomy.", set()),  # "shadows" was an opacity
    ("Changes of cystic fibrosis.", {("cystic fibrosis", "present")}),  # was (pulmonary) fibrosis
    ("Right upper lobe cavity, consistent with prior tuberculous infection.", {("cavitation", "present"), ("tuberculosis", "present")}),
    ("Unchanged loculated right pleural fusion.", {("pleural effusion", "present")}),  # "fusion" was spinal hardware
    ("Low lung lines.", set()),  # "lines" was a catheter
    ("It is attached to the coracoid process.", set()),  # "process" was a degenerative change of the spine
    ("Central vascular markings are mildly prominent.", {("vascular congestion", "present")}),  # was increased markings
    # descriptions, not diagnoses: what the sentence says is seen ("interstitial opacity" is
    # narrower than "interstitial disease" in checking.json, so each still supports the other)
    ("Interstitial opacities at both bases.", {("interstitial opacity", "present")}),  # was interstitial disease
    ("Mild interstitial prominence.", {("increased markings", "present")}),  # was interstitial disease
    ("Increased interstitial lung markings.", {("increased markings", "present")}),  # was interstitial disease
    ("Calcified nodule in the right upper lobe.", {("calcification", "present"), ("nodule", "present")}),  # was a calcified granuloma
    ("Stable groundglass at the lung bases.", {("opacity", "present")}),  # nothing was read
    # one noun phrase, one finding
    ("Calcified right upper lobe 5 mm granuloma.", {("calcified granuloma", "present")}),  # was calcification + granuloma
    ("Calcific granulomas in the right upper lobe.", {("calcified granuloma", "present")}),
    ("Granulomatous calcifications in the mediastinum.", {("calcified granuloma", "present")}),
    ("7 mm non calcified nodule.", {("nodule", "present")}),  # was a calcified granuloma
])
def test_reading_errors_found_in_the_systematic_mesh_review(text, expected):
    found = {(f.observation, f.presence) for cc in read_report(f"FINDINGS: {text}").claims for f in cc.findings}
    assert found == expected


@pytest.mark.parametrize("text, anatomy", [
    ("Degenerative changes of the right shoulder.", "shoulder"),  # was "bone", as the spine's neighbours
    ("There is bilateral acromioclavicular degenerative joint disease.", "shoulder"),
    ("Degenerative changes of the thoracic spine and right shoulder.", "spine"),  # the finding's own organ first
    ("Degenerative changes of the costochondral junctions.", "bone"),  # was the spine (no anatomy read)
    ("Mild degenerative changes of the thoracic spine.", "spine"),
])
def test_degenerative_changes_keep_their_anatomy(text, anatomy):
    (f,) = [f for cc in read_report(f"FINDINGS: {text}").claims for f in cc.findings]
    assert (f.observation, f.anatomy) == ("degenerative change", anatomy)


def test_a_mimic_attribution_is_not_a_definite_nodule_for_the_checker(ref_pipe):
    """"Nodular opacity, most likely the nipple" neither supports a nodule nor is denied by
    "no nodules": the nodule is only possible."""
    ref = "FINDINGS: Nodular opacity in the left lower lung, most likely the nipple."
    assert only(ref_pipe, "FINDINGS: Left lower lung nodule.", ref).status != "supported"
    assert only(ref_pipe, "FINDINGS: No pulmonary nodules.", ref).status != "contradicted"


def test_interstitial_opacities_and_interstitial_disease_still_support_each_other(ref_pipe):
    """An "interstitial opacity" (lexicon: opacity at the interstitium) is an interstitial
    disease to the checker, not a generic opacity that would leave a focal finding uncertain."""
    ref = "FINDINGS: Diffuse bilateral interstitial opacities."
    assert only(ref_pipe, "FINDINGS: Diffuse interstitial lung disease.", ref).status == "supported"
    assert only(ref_pipe, "FINDINGS: A 1.5 cm nodule in the left upper lobe.", ref).status == "unsupported"
    assert only(ref_pipe, "FINDINGS: No interstitial lung disease.", ref).status == "contradicted"
