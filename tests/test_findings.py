"""Findings read off graphs (rules graphs of hand-checked IU sentences, and radgraph-style
graphs without normal forms), and read_report end to end."""

from __future__ import annotations

import pytest

from reportgen.checkers.findings import findings_from_graph
from reportgen.checkers.read import ReadReport, read_many, read_report
from reportgen.errors import ReportgenError
from reportgen.types import Entity, EntityGraph, Relation


def _f(text: str):
    """(observation, presence, laterality, locations, anatomy, severity, change) of every claim."""
    rr = read_report(text)
    return [(f.observation, f.presence, f.laterality, f.locations, f.anatomy, f.severity, f.change)
            for c in rr.claims for f in c.findings]


def _obs(text: str):
    return {(f[0], f[1]) for f in _f(text)}


def test_negated_coordination(iu_by_id):
    # CXR558: "No pleural effusion or pneumothorax."
    assert _f("No pleural effusion or pneumothorax.") == [
        ("pleural effusion", "absent", None, (), "pleura", None, None),
        ("pneumothorax", "absent", None, (), "pleura", None, None),
    ]


def test_laterality_zone_severity(iu_by_id):
    # CXR2334 impression: "Bilateral small pleural effusions." / findings: "Patchy left basal airspace opacity."
    assert _f("Bilateral small pleural effusions.") == [("pleural effusion", "present", "bilateral", (), "pleura", "small", None)]
    assert _f("Patchy left basal airspace opacity.") == [("opacity", "present", "left", ("base",), "lung", None, None)]
    # CXR3328: "Minimal cardiomegaly."
    assert _f("Minimal cardiomegaly.") == [("cardiomegaly", "present", None, (), "heart", "minimal", None)]


def test_side_carried_by_the_word(iu_by_id):
    # CXR1056: "Levoscoliosis of the thoracolumbar spine."; CXR822: "Bibasilar subsegmental atelectasis or scarring."
    assert _f("Levoscoliosis of the thoracolumbar spine.") == [("scoliosis", "present", "left", (), "spine", None, None)]
    got = _f("Bibasilar subsegmental atelectasis or scarring.")
    assert [(g[0], g[1], g[2], g[3]) for g in got] == [
        ("atelectasis", "uncertain", "bilateral", ("base",)), ("scarring", "uncertain", "bilateral", ("base",))]


def test_two_zones_and_change(iu_by_id):
    # CXR134: "Calcified granulomata are present in the right middle lobe and right upper lobe."
    (f,) = _f("Calcified granulomata are present in the right middle lobe and right upper lobe.")
    assert f[:3] == ("calcified granuloma", "present", "right") and set(f[3]) == {"middle lobe", "upper lobe"}
    # CXR45: "Stable cardiomegaly without overt pulmonary edema."
    assert _f("Stable cardiomegaly without overt pulmonary edema.") == [
        ("cardiomegaly", "present", None, (), "heart", None, "stable"), ("pulmonary edema", "absent", None, (), "lung", None, None)]


def test_hedged_alternatives_take_the_location_they_suggest(iu_by_id):
    t = iu_by_id["CXR590"].report.text  # There is right middle lobe airspace disease, may reflect atelectasis or pneumonia.
    i = t.index("There is right middle lobe")
    got = _f(t[i : t.index(".", i) + 1])
    assert got == [
        ("airspace disease", "present", "right", ("middle lobe",), "lung", None, None),
        ("atelectasis", "uncertain", "right", ("middle lobe",), "lung", None, None),
        ("pneumonia", "uncertain", "right", ("middle lobe",), "lung", None, None),
    ]


def test_normal_statements_deny_findings_where_they_speak(iu_by_id):
    lungs = _f("The lungs are clear.")  # CXR558
    assert ("abnormality", "absent", None, (), "lung", None, None) in lungs
    assert {(o, p, a) for o, p, *_x, a, _s, _c in lungs} >= {("opacity", "absent", "lung"), ("consolidation", "absent", "lung")}
    assert all(p == "absent" for _o, p, *_ in lungs) and not any(o in ("pleural effusion", "cardiomegaly") for o, *_ in lungs)
    heart = _obs("Normal heart size.")  # CXR1056
    assert heart == {("abnormality", "absent"), ("cardiomegaly", "absent")}
    acute = _f("No acute cardiopulmonary abnormality.")  # CXR3513
    assert {(o, a, c) for o, p, _l, _z, a, _s, c in acute if o == "acute abnormality"} == {
        ("acute abnormality", s, "acute") for s in ("lung", "pleura", "heart", "mediastinum")}
    assert ("pneumothorax", "absent") in {(f[0], f[1]) for f in acute}
    # a specific predicate: CXR10 "The lungs are normally inflated ..." denies volume findings only
    assert _obs("The lungs are normally inflated.") == {("hypoinflation", "absent"), ("hyperinflation", "absent")}


def test_contextual_observations(iu_by_id):
    # CXR206 "The heart is borderline enlarged."; CXR9 "The cardiac silhouette is not enlarged."
    assert _f("The heart is borderline enlarged.") == [("cardiomegaly", "present", None, (), "heart", "borderline", None)]
    assert _obs("The cardiac silhouette is not enlarged.") == {("cardiomegaly", "absent")}
    # CXR53 "There extremely low lung volumes."; CXR569 "The left hemidiaphragm remains elevated."
    assert _obs("There extremely low lung volumes.") == {("hypoinflation", "present")}
    assert _f("The left hemidiaphragm remains elevated.") == [("elevated hemidiaphragm", "present", "left", (), "diaphragm", None, "stable")]


def test_uncertain_and_negated_suggestions(iu_by_id):
    # CXR973 "A subtle infiltrate cannot be excluded."; CXR8 "There is no focal air space opacity to suggest a pneumonia."
    assert _obs("A subtle infiltrate cannot be excluded.") == {("infiltrate", "uncertain")}
    assert _obs("There is no focal air space opacity to suggest a pneumonia.") == {("opacity", "absent"), ("pneumonia", "absent")}


def test_findings_from_a_radgraph_style_graph_without_normal_forms():
    # "The lungs are clear. Mild cardiomegaly. Small right effusion." as RadGraph annotates it
    text = "The lungs are clear. Mild cardiomegaly. Small right effusion."
    ents = (Entity("1", "lungs", 4, 9, "ANAT-DP"), Entity("2", "clear", 14, 19, "OBS-DP"),
            Entity("3", "Mild", 21, 25, "OBS-DP"), Entity("4", "cardiomegaly", 26, 38, "OBS-DP"),
            Entity("5", "Small", 40, 45, "OBS-DP"), Entity("6", "right", 46, 51, "ANAT-DP"), Entity("7", "effusion", 52, 60, "OBS-DP"))
    assert all(text[e.start : e.end] == e.text for e in ents)
    rels = (Relation("located_at", "2", "1"), Relation("modify", "3", "4"), Relation("modify", "5", "7"),
            Relation("located_at", "7", "6"))
    fs = findings_from_graph(EntityGraph(ents, rels))
    got = {(f.observation, f.presence, f.laterality, f.anatomy, f.severity) for f in fs}
    assert ("abnormality", "absent", None, "lung", None) in got and ("opacity", "absent", None, "lung", None) in got
    assert ("cardiomegaly", "present", None, "heart", "mild") in got
    assert ("pleural effusion", "present", "right", "pleura", "small") in got
    assert not any(f.observation in ("mild", "small", "normal", "clear") for f in fs)
    assert all(text[f.start : f.end] == f.text for f in fs)


def test_read_report_offsets_into_the_original_text(iu_by_id):
    t = iu_by_id["CXR3328"].report.text
    rr = read_report(t)
    assert isinstance(rr, ReadReport) and rr.report.text == t
    for cc in rr.claims:
        assert all(t[f.start : f.end] == f.text for f in cc.findings)
        assert all(t[e.start : e.end] == e.text for e in cc.graph.entities)
    d = rr.to_dict()
    assert d["claims"][0]["claim"]["text"] == "Minimal cardiomegaly."
    # cached and uncached reads agree (the same sentence in another report at another offset)
    again = read_report("IMPRESSION: Something else. " + iu_by_id["CXR3328"].impression)
    assert [f.observation for c in again.claims for f in c.findings][-6:] == [f.observation for c in rr.claims for f in c.findings][-6:]


def test_read_many_and_bad_input():
    out = read_many(["Mild cardiomegaly.", "", "No effusion."])
    assert [len(r.claims) for r in out] == [1, 0, 1]
    with pytest.raises(ReportgenError) as e:
        read_report(None)  # type: ignore[arg-type]
    assert e.value.code == "E230"


def test_a_long_report_is_read():
    text = "FINDINGS: " + " ".join(["No pleural effusion or pneumothorax. Mild cardiomegaly."] * 2000)
    rr = read_report(text)
    assert len(rr.claims) == 6000
    assert rr.claims[-1].claim.end <= len(text)


def test_context_makes_the_finding(iu_by_id):
    # CXR2771 "Soft tissue edema with no visible bony injury."; CXR3479 "No laryngeal edema."
    assert ("soft tissue edema", "present") in _obs("Soft tissue edema with no visible bony injury.")
    assert _obs("No laryngeal edema.") == {("laryngeal edema", "absent")}
    # CXR702: "... passive atelectasis of the right middle and lower lobes." (an explicit side beats the plural)
    got = _f("Large right pleural effusion with associated passive atelectasis of the right middle and lower lobes.")
    assert ("atelectasis", "present", "right") in {g[:3] for g in got}
    assert ("pleural effusion", "present", "right", (), "pleura", "large", None) in got


def test_acute_umbrella_specifics_are_acute(iu_by_id):
    got = _f(iu_by_id["CXR2"].impression)  # "No acute pulmonary findings."
    assert got[0] == ("acute abnormality", "absent", None, (), "lung", None, "acute")
    assert {g[6] for g in got} == {"acute"} and ("nodule", "absent") in {(g[0], g[1]) for g in got}


def test_recommendation_hedges(iu_by_id):
    # CXR468: "Further evaluation XXXX chest should be considered to exclude the possibility of pulmonary malignancy."
    t = iu_by_id["CXR468"].report.text
    i = t.index("Further evaluation")
    # a request, not a hedged finding (issue 11 section 3: was "uncertain")
    assert _obs(t[i : t.index(".", i) + 1]) == {("mass", "hypothetical")}
