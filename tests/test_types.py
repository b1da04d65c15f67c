"""Core types: validation in __post_init__ and exact JSON round trips."""

import json

import pytest

from reportgen.errors import ReportgenError
from reportgen.types import (
    Claim, Entity, EntityGraph, EvidenceItem, Finding, Relation, Report, Section, Study, Verdict,
)


def roundtrip(obj):
    return type(obj).from_dict(json.loads(json.dumps(obj.to_dict())))


def sample_graph():
    ents = (
        Entity("1", "pleural", 10, 17, "ANAT-DP", "pleura"),
        Entity("2", "effusion", 18, 26, "OBS-DA", "pleural effusion"),
    )
    return EntityGraph(ents, (Relation("located_at", "2", "1"),))


def test_every_type_round_trips_through_json():
    claim = Claim("No pneumothorax.", "findings", 30, 42, 10, 43)
    finding = Finding("pleural effusion", "absent", "left", ("base",), "pleura", "small", None, "effusion", 18, 26)
    ev = EvidenceItem("reference", "Small left effusion.", 0, 20, (finding,), 0.9, {"zone": "left base"})
    objs = [
        Report.from_sections({"findings": "Lungs clear.", "impression": "Normal."}),
        Study("s1", ("a.png", "b.png"), ("PA", "LATERAL"), "cough", "none", Report("x"), {"site": 3}),
        claim, sample_graph(), finding, ev,
        Verdict(claim, "contradicted", ("presence flipped",), (ev,), "graph", 0.1),
    ]
    for obj in objs:
        assert roundtrip(obj) == obj


def test_report_from_sections_offsets_are_exact():
    r = Report.from_sections({"findings": "Heart normal.", "impression": "No acute disease."})
    assert r.findings == "Heart normal."
    assert r.impression == "No acute disease."
    assert [s.name for s in r.sections] == ["findings", "impression"]
    for s in r.sections:
        assert r.text[s.start:s.end] == r.section_text(s.name)


def test_report_rejects_section_past_text():
    with pytest.raises(ReportgenError, match="E002"):
        Report("short", (Section("findings", 0, 99),))


@pytest.mark.parametrize("bad", [
    lambda: Entity("1", "x", 0, 1, "OBS-XX"),
    lambda: Relation("causes", "1", "2"),
    lambda: Verdict(Claim("x", "text", 0, 1), "maybe"),
    lambda: Finding("effusion", "probably"),
    lambda: Finding("effusion", "present", laterality="up"),
    lambda: Claim("x", "text", 5, 2),
])
def test_invalid_values_raise_coded_errors_that_list_options(bad):
    with pytest.raises(ReportgenError) as e:
        bad()
    assert e.value.code in {"E001", "E002"}


def test_graph_rejects_dangling_relations_and_duplicate_ids():
    e = Entity("1", "x", 0, 1, "OBS-DP")
    with pytest.raises(ReportgenError, match="unknown entity"):
        EntityGraph((e,), (Relation("modify", "1", "9"),))
    with pytest.raises(ReportgenError, match="unique"):
        EntityGraph((e, e))


def test_graph_navigation_within_and_shift():
    g = sample_graph()
    assert [x.id for x in g.related("2", "located_at")] == ["1"]
    assert g.within(18, 26).entities == (g.entities[1],)
    assert g.within(18, 26).relations == ()
    moved = g.shifted(100)
    assert [(e.start, e.end) for e in moved.entities] == [(110, 117), (118, 126)]


def test_study_from_dict_keeps_extra_keys_and_expands_view():
    s = Study.from_dict({"id": "a", "images": "x.png", "view": "PA", "reference": "Normal.", "site": "IU"})
    assert s.images == ("x.png",) and s.views == ("PA",) and s.view == "PA"
    assert s.reference == Report("Normal.")
    assert s.meta == {"site": "IU"}
    with pytest.raises(ReportgenError, match="E004"):
        Study("b", ("x.png",), ("PA", "LL"))
    with pytest.raises(ReportgenError, match="E003"):
        Study("")


def test_types_are_frozen():
    c = Claim("x", "text", 0, 1)
    with pytest.raises(Exception):
        c.text = "y"  # type: ignore[misc]
