"""Elliptical coordination of lung zones ("right middle and lower lobe"): every coordinated
zone is an anatomy entity with its completed normal form, at its exact offsets, modified by
the shared side, and the finding's locations hold all zones in text order. Zone phrases
spelled out in full, and words that are no lung zone ("upper and lower extremities"), are
read as before."""

from __future__ import annotations

import pytest

from reportgen.checkers.findings import findings_from_graph
from reportgen.checkers.graphs.rules import RulesExtractor
from reportgen.checkers.lexicon import load_lexicon
from reportgen.checkers.read import read_report


def _anat(g):
    """(text, start, end, norm) of every anatomy entity, in order."""
    return [(e.text, e.start, e.end, e.norm) for e in g.entities if e.label == "ANAT-DP"]


def _rels(g):
    names = {e.id: (e.text, e.start) for e in g.entities}
    return {(names[r.source], r.type, names[r.target]) for r in g.relations}


def _located(text: str) -> list[tuple[str, str | None, tuple[str, ...]]]:
    """(observation, laterality, locations) of every finding of read_report."""
    return [(f.observation, f.laterality, f.locations) for c in read_report(text).claims for f in c.findings]


@pytest.mark.parametrize("text, elided, zone, side, locations", [
    # (sentence, elided word, its completed normal form, side, finding locations in text order)
    ("Right middle and lower lobe opacities.", "middle", "middle lobe", "right", ("middle lobe", "lower lobe")),
    ("Opacity in the left upper and lower lobes.", "upper", "upper lobe", "left", ("upper lobe", "lower lobe")),
    ("Opacities in the upper and mid lung zones.", "upper", "apex", "bilateral", ("apex", "midlung")),
    ("Right upper and middle lobe opacities.", "upper", "upper lobe", "right", ("upper lobe", "middle lobe")),
    ("Opacity in the left mid and lower lung.", "mid", "midlung", "left", ("midlung", "base")),
    # "middle lobe" is always the right one
    ("Opacity in the middle or lower lobe.", "middle", "middle lobe", "right", ("middle lobe", "lower lobe")),
    ("Opacity in the upper/lower lobes.", "upper", "upper lobe", "bilateral", ("upper lobe", "lower lobe")),
    # IU (CXR sentences): "lower" alone is also a modifier word ("lung volumes are lower")
    ("There is a large airspace opacity in the right lower and middle lobes.", "lower", "lower lobe", "right",
     ("lower lobe", "middle lobe")),
])
def test_elided_zone_gets_its_own_entity_and_location(rules_extractor, text, elided, zone, side, locations):
    g = rules_extractor.extract(text)
    start = text.index(f" {elided} ") + 1 if f" {elided} " in text else text.index(f" {elided}/") + 1
    end = start + len(elided)
    anat = _anat(g)
    assert (text[start:end], start, end, zone) in anat
    for e in g.entities:  # exact offsets of every entity
        assert text[e.start : e.end] == e.text
    (f,) = findings_from_graph(g)
    assert f.locations == locations and f.laterality == side
    assert f.observation == "opacity" and f.presence == "present" and f.anatomy == "lung"
    assert _located(text) == [("opacity", side, locations)]


def test_relations_as_radgraph_annotates_them(rules_extractor):
    text = "Right middle and lower lobe opacities."
    g = rules_extractor.extract(text)
    assert _anat(g) == [("Right", 0, 5, "right"), ("middle", 6, 12, "middle lobe"), ("lower lobe", 17, 27, "lower lobe")]
    right, middle, lower, opac = ("Right", 0), ("middle", 6), ("lower lobe", 17), ("opacities", 28)
    assert _rels(g) == {
        (right, "modify", middle), (right, "modify", lower),  # the shared side modifies each zone
        (opac, "located_at", middle), (opac, "located_at", lower),
    }


def test_three_zones_and_negation(rules_extractor):
    text = "Right upper, middle and lower lobe opacities."
    (f,) = findings_from_graph(rules_extractor.extract(text))
    assert f.locations == ("upper lobe", "middle lobe", "lower lobe") and f.laterality == "right"
    text = "No right middle or lower lobe opacity."
    g = rules_extractor.extract(text)
    assert ("middle", 9, 15, "middle lobe") in _anat(g)
    (f,) = findings_from_graph(g)
    assert (f.presence, f.laterality, f.locations) == ("absent", "right", ("middle lobe", "lower lobe"))


def test_iu_sentences_with_coordinated_zones(iu_by_id):
    # CXR sentences of the IU collection read with all their zones (report offsets kept)
    found = {}
    for rid, r in iu_by_id.items():
        text = r.report.text
        for c in read_report(text).claims:
            if c.claim.text.startswith(("Opacity within the right middle and lower lobes",
                                        "Opacification of the right middle and lower lobes")):
                for f in c.findings:
                    assert text[f.start : f.end] == f.text
                    found[c.claim.text] = (f.observation, f.laterality, f.locations)
    assert found == {
        "Opacity within the right middle and lower lobes.": ("opacity", "right", ("middle lobe", "lower lobe")),
        "Opacification of the right middle and lower lobes.": ("opacity", "right", ("middle lobe", "lower lobe")),
    }


@pytest.mark.parametrize("text, anat, locations", [
    # explicit zones: two anatomy entities, as before, locations in text order
    ("Lower lobe and middle lobe opacities.", [("Lower lobe", 0, 10, "lower lobe"), ("middle lobe", 15, 26, "middle lobe")],
     ("lower lobe", "middle lobe")),
    # no lung zone completes "upper": nothing is added
    ("Degenerative changes of the upper and lower extremities.", [], None),
    ("Clips in the upper abdomen and lower chest.", [("upper abdomen", 13, 26, "upper abdomen"), ("chest", 37, 42, "chest")], ()),
    # a word between the zone words is no coordinator: no elision
    ("Upper normal heart size and lower lobe atelectasis.", None, None),
])
def test_no_over_matching(rules_extractor, text, anat, locations):
    g = rules_extractor.extract(text)
    if anat is not None:
        assert _anat(g) == anat
    assert not any(e.label == "ANAT-DP" and e.text.lower() in ("upper", "middle", "mid", "lower") for e in g.entities)
    if locations is not None:
        assert [f.locations for f in findings_from_graph(g)][-1] == locations


def test_word_lists_come_from_the_lexicon(tmp_path):
    lex = load_lexicon()
    assert {"upper", "middle", "mid", "lower"} <= lex.elidable_zone_words
    assert {"and", "or", "/"} <= lex.zone_coordinator_tokens
    assert lex.completed_zone("middle", ("lobe",)).norm == "middle lobe"
    assert lex.completed_zone("upper", ("lung", "zones")).norm == "apex"
    assert lex.completed_zone("upper", ("extremities",)) is None
    # completions come from the anatomy synonyms: a user synonym "mid lobe" completes "mid"
    p = tmp_path / "lex.json"
    p.write_text('{"version": "mid-lobe", "anatomy": {"middle lobe": {"synonyms": ["mid lobe"]}}}')
    text = "Right mid and lower lobe opacities."
    assert [f.locations for f in findings_from_graph(RulesExtractor().extract(text))] == [("lower lobe",)]
    g = RulesExtractor(lexicon=p).extract(text)
    assert ("mid", 6, 9, "middle lobe") in _anat(g)
    assert [f.locations for f in findings_from_graph(g)] == [("middle lobe", "lower lobe")]
