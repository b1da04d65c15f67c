"""Issue 11 section 3: error classes seen on real IU reports, one regression test each."""

from __future__ import annotations

from reportgen.checkers.pipeline import Pipeline
from reportgen.checkers.read import read_report
from reportgen.evals.metrics.chexpert import chexpert_labels
from reportgen.evals.metrics.green import green_counts


def findings(text: str) -> dict[str, list[tuple]]:
    return {cc.claim.text: [(f.observation, f.presence) for f in cc.findings] for cc in read_report(text).claims}


def claims(report: str, reference: str | None = None, **kw) -> dict:
    return {c.claim.text: c for c in Pipeline(**kw).check("x", report, reference).claims}


# --- requests are hypothetical, never hedged findings -----------------------------------------

def test_requests_are_hypothetical_findings():
    f = findings("FINDINGS: Evaluate for pneumonia. Recommend CT to exclude mass. Correlate clinically for pneumonia. "
                 "Rule out effusion. Right lower lobe opacity.")
    assert f["Evaluate for pneumonia."] == [("pneumonia", "hypothetical")]
    assert f["Recommend CT to exclude mass."] == [("mass", "hypothetical")]
    assert f["Correlate clinically for pneumonia."] == [("pneumonia", "hypothetical")]
    assert f["Rule out effusion."] == [("pleural effusion", "hypothetical")]
    assert f["Right lower lobe opacity."] == [("opacity", "present")]


def test_conditions_and_caveats_are_hypothetical_too():
    """IU impressions: "If there is concern for fracture, consider rib series." and the
    disclaimer "fractures may not be demonstrated" were hedged fractures (MeSH-untagged)."""
    f = findings("FINDINGS: If there is concern for fracture, consider rib series. "
                 "Please note that fractures may not be demonstrated. Fracture is possible, if the pain is localized here. "
                 "Healed right rib fracture.")
    assert f["If there is concern for fracture, consider rib series."] == [("fracture", "hypothetical")]
    assert f["Please note that fractures may not be demonstrated."] == [("fracture", "hypothetical")]
    # the condition follows the hedged finding: it stays a hedge
    assert f["Fracture is possible, if the pain is localized here."] == [("fracture", "uncertain")]
    assert f["Healed right rib fracture."] == [("fracture", "present")]
    # a statement about the method: "CT is more sensitive in detecting small nodules"
    assert findings("FINDINGS: CT scan is more sensitive in detecting small nodules.") == {
        "CT scan is more sensitive in detecting small nodules.": [("nodule", "hypothetical")]}
    assert findings("FINDINGS: Further evaluation with CT can be performed to identify a small nodule.") == {
        "Further evaluation with CT can be performed to identify a small nodule.": [("nodule", "hypothetical")]}


def test_external_monitor_leads_are_not_a_pacemaker():
    assert findings("FINDINGS: Overlying external cardiac monitor leads. Pacemaker leads in the right ventricle.") == {
        "Overlying external cardiac monitor leads.": [("device", "present")],
        "Pacemaker leads in the right ventricle.": [("pacemaker", "present")]}


def test_hedges_that_contain_a_request_word_stay_hedged():
    for text in ("Cannot rule out pneumonia.", "Pneumonia cannot be excluded.", "Difficult to exclude effusion.",
                 "Unable to rule out pneumonia."):
        (fs,) = findings(f"FINDINGS: {text}").values()
        assert [p for _, p in fs] == ["uncertain"], text


def test_a_hypothetical_claim_never_supports_or_contradicts():
    c = claims("FINDINGS: Evaluate for pneumonia.\n\nIMPRESSION: No pneumonia.", "FINDINGS: Right lower lobe pneumonia.")
    request = c["Evaluate for pneumonia."]
    assert (request.status, request.basis, request.score) == ("uncertain", "hypothetical", None)
    assert c["No pneumonia."].status == "contradicted"  # by the reference, not by the request
    assert not any("Evaluate" in r for r in c["No pneumonia."].reasons)
    # as evidence a request supports nothing either
    c2 = claims("FINDINGS: Pneumonia.", "FINDINGS: Evaluate for pneumonia.", self_check=False)
    assert c2["Pneumonia."].status == "unsupported"


def test_hypothetical_findings_give_no_chexpert_label_and_no_green_error():
    (cc,) = read_report("FINDINGS: Evaluate for pneumonia.").claims
    assert chexpert_labels(cc.findings)["Pneumonia"] is None
    assert green_counts(cc.findings, ()).false_finding == 0


# --- hedged statements that disagree on size, side or location are a mismatch ---------------

def test_hedged_statements_that_disagree_are_a_mismatch():
    ref = "FINDINGS: Questionable large right midlung nodule. Possible left pleural effusion."
    c = claims("FINDINGS: Questionable small right midlung nodule. Possible right pleural effusion. "
               "Possible left pleural effusion.", ref, self_check=False)
    size = c["Questionable small right midlung nodule."]
    assert (size.status, size.basis) == ("contradicted", "conflicting") and "severity mismatch" in size.reasons[0]
    side = c["Possible right pleural effusion."]
    assert (side.status, side.basis) == ("contradicted", "conflicting") and "laterality mismatch" in side.reasons[0]
    same = c["Possible left pleural effusion."]
    assert (same.status, same.basis) == ("uncertain", "hedged")


# --- evidence must match anatomy ------------------------------------------------------------

def test_evidence_about_another_anatomy_does_not_support_a_claim():
    ref = "FINDINGS: Degenerative changes of the right shoulder. No cavitary lesions."
    c = claims("FINDINGS: Degenerative changes of the thoracic spine. The right lung is clear.", ref, self_check=False)
    spine = c["Degenerative changes of the thoracic spine."]
    assert (spine.status, spine.basis) == ("uncertain", "no_evidence")
    assert "other anatomy (claim spine, evidence shoulder)" in spine.reasons[0]
    # a narrower negative does not prove a broader one: the claim is judged as unmentioned
    lung = c["The right lung is clear."]
    assert (lung.status, lung.basis) == ("supported", "convention")
    assert not any("cavitary" in r for r in lung.reasons)
    strict = claims("FINDINGS: The right lung is clear.", ref, self_check=False, convention="radfact")
    assert (strict["The right lung is clear."].status, strict["The right lung is clear."].basis) == ("unsupported", "no_evidence")
    # the same anatomy still matches, and a broader negative still supports a narrower one
    same = claims("FINDINGS: Degenerative changes of the thoracic spine. No pneumothorax.",
                  "FINDINGS: Thoracic spine degenerative changes. No acute cardiopulmonary abnormality.", self_check=False)
    assert same["Degenerative changes of the thoracic spine."].status == "supported"
    assert (same["No pneumothorax."].status, same["No pneumothorax."].basis) == ("supported", "matched")


# --- negation scope after the finding; coordinated modifiers of one head -------------------

def test_a_normal_predicate_scopes_over_the_observations_of_its_subject():
    f = findings("FINDINGS: Heart size and pulmonary vascular engorgement appear within limits of normal.")
    (fs,) = f.values()
    assert ("vascular congestion", "present") not in fs and ("vascular congestion", "absent") in fs
    # a coordinated part with its own subject keeps its finding
    f2 = findings("FINDINGS: Mild cardiomegaly and lungs are clear.")
    assert f2["Mild cardiomegaly."] == [("cardiomegaly", "present")]


def test_coordinated_modifiers_of_one_head_are_one_claim():
    text = "FINDINGS: Blunting of the lateral and posterior right costophrenic sulcus may represent small effusion."
    (claim,) = findings(text)
    assert claim == text[len("FINDINGS: "):]
    assert list(findings("FINDINGS: No pleural effusion or pneumothorax.")) == ["No pleural effusion.", "No pneumothorax."]


# --- negation reaches list items that open with an attributive "visible"; "no findings to suggest"

def test_visible_before_a_finding_does_not_end_the_negation():
    """IU: "No focal consolidation, visible pneumothorax or large pleural effusion." read a
    hedged pneumothorax and effusion: "visible" is also a copula ("no pneumothorax visible"),
    which opened a new clause."""
    f = findings("FINDINGS: No focal consolidation, visible pneumothorax or large pleural effusion. No pneumothorax visible. "
                 "A right pneumothorax is visible.")
    assert [p for fs in f.values() for _, p in fs] == ["absent", "absent", "absent", "absent", "present"]


def test_no_findings_to_suggest_is_a_negation():
    f = findings("FINDINGS: No findings to suggest pleural effusion. Nothing to suggest pneumonia. "
                 "No radiographic findings to suggest pneumothorax.")
    assert list(f.values()) == [[("pleural effusion", "absent")], [("pneumonia", "absent")], [("pneumothorax", "absent")]]


# --- coordinated findings share the anatomy a contextual rule joins them to

def test_coordinated_findings_share_the_aorta():
    """IU: "The aorta is calcified and tortuous" read a bare "tortuosity" (a separate claim
    "Tortuous.") instead of a tortuous aorta; 20 IU reports tagged Aorta/tortuous were missed."""
    for text in ("The aorta is calcified and tortuous.", "Tortuous and calcified aorta.", "Aortic calcifications and tortuosity.",
                 "Mild unfolding and atherosclerotic calcification of the aorta."):
        (fs,) = findings(f"FINDINGS: {text}").values()  # one claim: the parts share the aorta
        assert ("tortuous aorta", "present") in fs, text
    # two names of one finding joined by "/" are no alternative: not hedged
    (fs,) = findings("FINDINGS: Aortic calcifications and ectasia/tortuosity.").values()
    assert {p for o, p in fs if o == "tortuous aorta"} == {"present"}
    # no contextual rule joins cardiomegaly to the aorta: two claims, nothing moved
    assert findings("FINDINGS: Cardiomegaly and calcified aorta.") == {
        "Cardiomegaly.": [("cardiomegaly", "present")], "Calcified aorta.": [("calcification", "present")]}
    # a place given as a heading does not keep the finding from the anatomy after it (RadFact-
    # style "Mediastinal contours: ..."), and a denied umbrella keeps its own place
    (fs,) = findings("FINDINGS: Mediastinal contours: Tortuous and calcified aorta.").values()
    assert ("tortuous aorta", "present") in fs
    f = findings("FINDINGS: Mild degenerative disc disease of the thoracolumbar spine, without acute osseous abnormality.")
    assert [x for fs in f.values() for x in fs if x[0] == "degenerative change"] == [("degenerative change", "present")]
    # an observation with its own place keeps it
    f = findings("FINDINGS: Diffusely increased interstitial and mild patchy airspace opacities.")
    assert ("opacity", "present") in [x for fs in f.values() for x in fs]


def test_calcified_reaches_its_granuloma_over_size_side_and_place():
    """IU: "Calcified 5 mm right midlung granuloma" read a calcification beside a granuloma
    (the modifier reached at most three words), "calcific granulomas" and "granulomatous
    calcifications" were no calcified granuloma either."""
    for text in ("Calcified 5 mm right midlung granuloma.", "Calcified 8mm right apical granuloma.",
                 "Calcific granulomas are present in the right upper lobe.", "Granulomatous calcifications in the paratracheal region."):
        (fs,) = findings(f"FINDINGS: {text}").values()
        assert [o for o, _ in fs] == ["calcified granuloma"], text
    # words that are no size, side or place still separate them
    (fs,) = findings("FINDINGS: Calcified tortuous aorta.").values()
    assert [o for o, _ in fs] == ["calcification", "tortuous aorta"]


def test_lung_volume_words_written_apart_and_body_jewelry():
    """IU: "Lungs are hyper expanded" and "Lungs are mildly under expanded" read hypoinflation
    ABSENT (the normal predicate "expanded"); "Nipple ring on left" read a nipple shadow."""
    assert findings("FINDINGS: Lungs are hyper expanded consistent with COPD.") == {
        "Lungs are hyper expanded consistent with COPD.": [("hyperinflation", "present"), ("copd", "present")]}
    for text in ("Lungs are mildly under expanded.", "The lungs are hypoventilated."):
        assert list(findings(f"FINDINGS: {text}").values()) == [[("hypoinflation", "present")]], text
    assert list(findings("FINDINGS: The lungs are expanded and clear.").values()) == [[("hypoinflation", "absent")]]
    for text in ("Nipple ring on left.", "Umbilical piercing.", "Two bullets overlie the left chest."):
        assert [o for fs in findings(f"FINDINGS: {text}").values() for o, _ in fs] == ["foreign body"], text


def test_coarse_or_crowded_markings_are_increased_markings():
    f = findings("FINDINGS: Mild right hemidiaphragm elevation with crowded markings in the right lung base. "
                 "Coarse central interstitial markings. Bronchovascular crowding, indistinct central vascular margination.")
    got = [o for fs in f.values() for o, p in fs if p == "present"]
    assert got.count("increased markings") == 3 and "vascular congestion" in got


def test_a_negation_closed_by_its_predicate_stops_at_the_comma():
    """IU: "No definite pleural effusion seen, left bronchovascular crowding ..." denied the
    crowding too: the cue's clause ends with its predicate ("seen")."""
    f = findings("FINDINGS: No pleural effusion seen, right basilar atelectasis. No pneumothorax, effusion or consolidation seen. "
                 "No pneumothorax is seen, or effusion.")
    assert [(o, p) for fs in f.values() for o, p, in fs] == [
        ("pleural effusion", "absent"), ("atelectasis", "present"), ("pneumothorax", "absent"), ("pleural effusion", "absent"),
        ("consolidation", "absent"), ("pneumothorax", "absent"), ("pleural effusion", "absent")]


def test_an_enlarged_aorta_is_not_a_tortuous_aorta():
    """IU: "Prominent ascending aorta", "Enlarged calcified thoracic aorta" were read as a
    tortuous aorta (the indexers tag Aorta/prominent, Aorta/enlarged)."""
    for text in ("Prominent ascending aorta.", "The thoracic aorta is prominent.", "Dilated aorta."):
        assert [o for fs in findings(f"FINDINGS: {text}").values() for o, _ in fs] == ["aortic enlargement"], text
    assert [o for fs in findings("FINDINGS: The aorta is tortuous.").values() for o, _ in fs] == ["tortuous aorta"]
    (fs,) = findings("FINDINGS: The aorta is normal in caliber.").values()
    assert ("aortic enlargement", "absent") in fs and ("tortuous aorta", "absent") in fs


def test_a_fractured_wire_or_lead_is_a_device_fracture_not_a_bone_fracture():
    for text in ("Fractured sternotomy wires.", "Left central venous catheter fracture.", "The lateral most screw is fractured.",
                 "Fractured XXXX sternotomy XXXX."):
        obs = [o for fs in findings(f"FINDINGS: {text}").values() for o, _ in fs]
        assert "device fracture" in obs and "fracture" not in obs, text
    # a bone fracture in the same sentence as a device stays one
    obs = [o for fs in findings("FINDINGS: Status post sternotomy with old rib fractures.").values() for o, _ in fs]
    assert "fracture" in obs and "device fracture" not in obs
    assert findings("FINDINGS: Correlate clinically with history of fracture.") == {
        "Correlate clinically with history of fracture.": [("fracture", "hypothetical")]}


def test_bullous_emphysema_has_bullae():
    """MeSH tags "bullous emphysema" Bullous Emphysema (the Cysts / Bullae row): it was read as
    plain emphysema."""
    (fs,) = findings("FINDINGS: There is right greater than left biapical bullous emphysema.").values()
    assert [o for o, _ in fs] == ["cyst", "emphysema"]


# --- clause starts without punctuation; normal words used attributively; "there is" ----------

def test_a_negation_stops_where_a_run_on_sentence_starts_a_new_clause():
    """IU: "There is no pneumothorax the lungs are hyperinflated." denied the hyperinflation:
    a clause-start word right after a finding, with a copula later, opens a new clause."""
    f = findings("FINDINGS: There is no pneumothorax the lungs are hyperinflated. No effusion or pneumothorax is seen.")
    assert [x for fs in f.values() for x in fs] == [("pneumothorax", "absent"), ("hyperinflation", "present"),
                                                    ("pleural effusion", "absent"), ("pneumothorax", "absent")]


def test_a_normal_word_before_its_anatomy_is_no_predicate():
    """IU: "XXXX opacities are seen within the aerated right lung" read the opacities as absent:
    "aerated" modifies the lung there, it is not the predicate of "opacities"."""
    for text in ("Opacities are seen within the aerated right lung.", "Nodule is seen in the well-aerated right lung."):
        (fs,) = findings(f"FINDINGS: {text}").values()
        assert fs[0][1] == "present" and ("hypoinflation", "absent") in fs, text
    (fs,) = findings("FINDINGS: Heart size and pulmonary vascular engorgement appear within limits of normal.").values()
    assert ("vascular congestion", "present") not in fs and ("vascular congestion", "absent") in fs


def test_a_finding_after_there_is_is_no_subject_of_a_normal_predicate():
    """IU: "There is hyperinflation of the lungs appear to be clear." denied the hyperinflation."""
    (fs,) = findings("FINDINGS: There is hyperinflation of the lungs appear to be clear.").values()
    assert fs[0] == ("hyperinflation", "present") and ("opacity", "absent") in fs


def test_a_participle_opening_a_list_item_is_attributive():
    """IU: "There is no evidence of focal infiltrate, pneumothorax, pleural effusion, or
    identified mass lesion." read a present mass: "identified" had started a new clause."""
    f = findings("FINDINGS: There is no evidence of focal infiltrate, pneumothorax, or identified mass lesion. "
                 "No pneumothorax identified, right effusion.")
    assert [x for fs in f.values() for x in fs] == [("infiltrate", "absent"), ("pneumothorax", "absent"), ("mass", "absent"),
                                                    ("pneumothorax", "absent"), ("pleural effusion", "present")]


def test_hedges_after_the_finding():
    """IU: "Pulmonary edema difficult to entirely exclude.", "... small bilateral pleural effusions
    suspected.", "Aspiration or edema are also possible" were read as definite findings."""
    for text in ("Pulmonary edema difficult to entirely exclude.", "Small bilateral pleural effusions suspected.",
                 "Aspiration or edema are also possible but less likely.", "Vascular aneurysm would be possible."):
        (fs,) = findings(f"FINDINGS: {text}").values()
        assert [p for _, p in fs] == ["uncertain"], text
    # a pre-cue with a finding after it keeps to that finding
    f = findings("FINDINGS: Large hiatal hernia as well as possible small bowel loops. Atelectasis, possible pneumonia.")
    assert [x for fs in f.values() for x in fs] == [("hernia", "present"), ("atelectasis", "present"), ("pneumonia", "uncertain")]


def test_chronic_lung_disease_is_broader_than_copd():
    """IU: "Changes of chronic lung disease" was read as COPD (the indexers tag COPD in 3 of
    the 16 reports that say it). It is a broader finding: emphysema supports it, it does not
    support COPD."""
    (fs,) = findings("FINDINGS: Changes of chronic lung disease.").values()
    assert fs == [("chronic lung disease", "present")]
    assert claims("Chronic lung disease.", "Emphysema.")["Chronic lung disease."].status == "supported"
    assert claims("COPD.", "Chronic lung disease.")["COPD."].status == "uncertain"
    assert claims("COPD.", "COPD.")["COPD."].status == "supported"


def test_foot_and_hand_bones_are_extremities_not_the_spine():
    """IU (a foot film reported with the chest): "There are midfoot degenerative changes" took
    the spine, the default organ of degenerative change."""
    (cc,) = read_report("FINDINGS: There are midfoot degenerative changes.").claims
    assert [(f.observation, f.anatomy) for f in cc.findings] == [("degenerative change", "extremity")]
    (cc,) = read_report("FINDINGS: Mild degenerative changes of the thoracic spine.").claims
    assert [(f.observation, f.anatomy) for f in cc.findings] == [("degenerative change", "spine")]


def test_a_negation_does_not_reach_a_coordinated_clause_with_its_own_verb():
    """IU: "This does not look like an acute infiltrate, and more XXXX represents a granuloma."
    denied the granuloma (tagged Granuloma). A suggestive verb opening a chunk after "and" starts
    a clause; after a bare comma it still links the denial ("No focal consolidation, to suggest
    pneumonia")."""
    f = findings("FINDINGS: This does not look like an acute infiltrate, and more likely represents a granuloma. "
                 "No focal consolidation, to suggest pneumonia.")
    assert [x for fs in f.values() for x in fs] == [("infiltrate", "absent"), ("granuloma", "uncertain"),
                                                    ("consolidation", "absent"), ("pneumonia", "absent")]


def test_a_tip_in_a_central_vein_is_a_catheter_whose_name_was_redacted():
    """IU de-identification blanks the device ("Right chest XXXX tip is visualized in the mid
    SVC", "Left XXXX-a-XXXX remains in XXXX": a port): 39 device sentences had no finding."""
    for text, side in (("Right chest XXXX tip is visualized in the mid SVC.", "right"),
                       ("The tip projects over the lower superior XXXX XXXX.", None),
                       ("Left XXXX-a-XXXX remains in XXXX.", "left"),
                       ("Portacatheter is noted with its tip in the cavoatrial junction.", None)):
        (cc,) = read_report(f"FINDINGS: {text}").claims
        assert [(f.observation, f.presence, f.laterality) for f in cc.findings] == [("catheter", "present", side)], text
    # the tip of a named catheter is that catheter, not a second one; "and" keeps two findings
    (cc,) = read_report("FINDINGS: Right IJ catheter with tip in the SVC.").claims
    assert [(f.observation, f.laterality) for f in cc.findings] == [("catheter", "right")]
    # other tips are no device
    assert findings("FINDINGS: Vague density in the right mid lung related to scapular tip.") == {
        "Vague density in the right mid lung related to scapular tip.": [("opacity", "present")]}
    assert [o for fs in findings("FINDINGS: Endotracheal tube with tip 5 cm above the carina.").values() for o, _ in fs] == ["tube"]


def test_places_coordinated_before_one_head_are_one_finding():
    """IU: "Calcified left lung and left hilar granulomas." read a calcified left lung and
    (uncalcified) hilar granulomas: the places share the head noun and its "calcified"."""
    for text in ("Calcified left lung and left hilar granulomas.", "There are large calcified mediastinal and right hilar granulomas.",
                 "Calcified bilateral lung and perihilar granulomas."):
        (cc,) = read_report(f"FINDINGS: {text}").claims
        assert [(f.observation, f.presence) for f in cc.findings] == [("calcified granuloma", "present")], text
    (cc,) = read_report("FINDINGS: Right lung and left lower lobe atelectasis.").claims
    assert [(f.observation, f.laterality) for f in cc.findings] == [("atelectasis", "bilateral")]
    # two nouns, a normal statement, or a place that makes the head another finding stay apart
    obs = [o for fs in findings("FINDINGS: Calcified lymph nodes and granuloma are noted.").values() for o, _ in fs]
    assert obs == ["calcification", "granuloma"]
    (fs,) = findings("FINDINGS: Clear right lung and left lower lobe pneumonia.").values()
    assert ("pneumonia", "absent") in fs and ("pneumonia", "present") in fs
    (fs,) = findings("FINDINGS: Diffuse bilateral interstitial and alveolar opacities.").values()
    assert fs == [("interstitial opacity", "present")]


def test_a_denied_incidental_finding_is_contradicted_by_a_narrower_one():
    """"No granuloma." against "Calcified granuloma." was supported by default: the rule that a
    broader statement never denies an incidental finding ("the lungs are clear" beside
    granulomas) also kept an incidental broader finding from denying its own kind."""
    assert claims("No granuloma.", "Calcified granuloma.")["No granuloma."].status == "contradicted"
    assert claims("No degenerative changes.", "Thoracic spine osteophytes.")["No degenerative changes."].status == "contradicted"
    # a broader statement that is not incidental still never denies one
    assert claims("The lungs are clear.", "Calcified granuloma.")["The lungs are clear."].status == "supported"
    assert claims("No nodule.", "Calcified granuloma.")["No nodule."].status == "supported"


def test_bibasilar_states_both_sides():
    """IU: "Bibasilar and left perihilar airspace opacities." read a left opacity: "bibasilar"
    was taken as a plural ("bases"), whose implied side an explicit one overrides ("right middle
    and lower lobes" stays right)."""
    for text, side in (("Bibasilar and left perihilar airspace opacities.", "bilateral"),
                       ("Bibasilar and right midlung pulmonary opacities.", "bilateral"),
                       ("Right middle and lower lobe opacities.", "right")):
        (cc,) = read_report(f"FINDINGS: {text}").claims
        assert [f.laterality for f in cc.findings] == [side], text


# --- RadFact's narrative examples (MIT, ../shared/data/radfact): MIMIC-style phrasing ----------

def test_radfact_style_sentences_are_read():
    """Reading errors found in RadFact's findings-generation examples: a participle before the
    subject taken for its copula ("Previously noted infiltrative processes ... are clear" kept
    a present infiltrate), the markings' prominence read at the lungs (a bare "enlargement"),
    and vocabulary ("adequately inflated", a tendon anchor, loss of vertebral body height)."""
    def only(text):
        (cc,) = read_report(f"FINDINGS: {text}").claims
        return [(f.observation, f.presence) for f in cc.findings]

    assert only("Previously noted infiltrative processes in both lung bases are clear.")[0] == ("infiltrate", "absent")
    assert only("Atelectasis is seen lungs are clear.")[0] == ("atelectasis", "present")
    assert only("There is prominence of the interstitial markings in both lung fields.") == [("increased markings", "present")]
    # a compound place keeps its head's reading
    assert only("Mild biapical pleural-peripheral scarring.") == [("scarring", "present")]
    assert only("The lungs are adequately inflated.") == [("hypoinflation", "absent")]
    assert only("Tendon anchor in the right shoulder.") == [("orthopedic hardware", "present")]
    assert only("There is progressive loss of vertebral body heights in the lower dorsal spine.") == [("deformity", "present")]
    # a curvature of the thoracic spine is no statement about the whole chest
    assert only("Thoracic curvature is normal.") == [("scoliosis", "absent")]
    assert only("Bones/joints: unremarkable.")[:2] == [("abnormality", "absent"), ("fracture", "absent")]


def test_a_side_listed_before_a_finding_that_names_its_place_first_is_kept():
    """RadFact example: "Chronic anterior right fifth, sixth and seventh rib fractures." had no
    side: "rib fractures" names its place inside the finding, so the listed "right fifth, sixth"
    found no place to share; IU: "small right and XXXX left pleural effusions" was left only."""
    for text, side in (("Chronic anterior right fifth, sixth and seventh rib fractures.", "right"),
                       ("Old healed left 5th and 6th rib fractures are seen laterally.", "left"),
                       ("There are small right and XXXX left pleural effusions.", "bilateral")):
        (cc,) = read_report(f"FINDINGS: {text}").claims
        assert [f.laterality for f in cc.findings] == [side], text
