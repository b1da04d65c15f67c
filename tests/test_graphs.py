"""Entity graphs (RadGraph schema) of the rules extractor on hand-checked IU sentences, the
extractor registry, per-claim graphs, user lexicons and the radgraph backend (with a fake
``radgraph`` module: the real package and its weights are not available offline)."""

from __future__ import annotations

import json
import sys
import types

import pytest

from reportgen.checkers.claims import split_claims, split_sections
from reportgen.checkers.graphs import claim_graphs, get_extractor
from reportgen.checkers.graphs.radgraph_backend import RadGraphExtractor, graph_from_annotation, map_label, map_relation
from reportgen.checkers.graphs.rules import RulesExtractor
from reportgen.errors import ReportgenError
from reportgen.protocols import GraphExtractor


def _by_text(g):
    """{entity text: (label, norm)} (first entity of each text) and relations as text triples."""
    ents = {}
    for e in g.entities:
        ents.setdefault(e.text, (e.label, e.norm))
    names = {e.id: e.text for e in g.entities}
    rels = {(names[r.source], r.type, names[r.target]) for r in g.relations}
    return ents, rels


def _sentence(iu, rid: str, start: str) -> str:
    t = iu[rid].report.text
    i = t.index(start)
    return t[i : t.index(".", i) + 1]


# ---- registry --------------------------------------------------------------------------------
def test_registry_names_and_unknown_name():
    ex = get_extractor("rules")
    assert isinstance(ex, GraphExtractor) and ex.name == "rules"
    with pytest.raises(ReportgenError) as e:
        get_extractor("spacy")
    assert e.value.code == "E220" and "rules" in str(e.value) and "radgraph" in str(e.value)


# ---- rules graphs on IU sentences ------------------------------------------------------------
def test_severity_modifies_the_observation(iu_by_id, rules_extractor):
    s = _sentence(iu_by_id, "CXR3328", "Minimal cardiomegaly")  # "Minimal cardiomegaly."
    ents, rels = _by_text(rules_extractor.extract(s))
    assert ents == {"Minimal": ("OBS-DP", "minimal"), "cardiomegaly": ("OBS-DP", "cardiomegaly")}
    assert rels == {("Minimal", "modify", "cardiomegaly")}


def test_laterality_location_and_suggestive_of(iu_by_id, rules_extractor):
    # CXR2334 impression: "Left base opacity may represent early infection or atelectasis."
    s = _sentence(iu_by_id, "CXR2334", "Left base opacity")
    ents, rels = _by_text(rules_extractor.extract(s))
    assert ents["Left"] == ("ANAT-DP", "left") and ents["base"] == ("ANAT-DP", "base")
    assert ents["opacity"] == ("OBS-DP", "opacity")
    assert ents["infection"] == ("OBS-U", "pneumonia") and ents["atelectasis"] == ("OBS-U", "atelectasis")
    assert {("Left", "modify", "base"), ("opacity", "located_at", "base"), ("opacity", "suggestive_of", "infection")} <= rels


def test_pleural_effusion_is_split_into_anatomy_and_observation(iu_by_id, rules_extractor):
    # CXR3328: "Probable very small pleural effusions and minimal questionable interstitial edema."
    s = _sentence(iu_by_id, "CXR3328", "Probable very small")
    ents, rels = _by_text(rules_extractor.extract(s))
    assert ents["pleural"] == ("ANAT-DP", "pleura") and ents["effusions"] == ("OBS-U", "pleural effusion")
    assert ents["edema"] == ("OBS-U", "pulmonary edema") and ents["interstitial"] == ("ANAT-DP", "interstitium")
    assert {("effusions", "located_at", "pleural"), ("edema", "located_at", "interstitial"),
            ("very small", "modify", "effusions"), ("minimal", "modify", "edema")} <= rels


def test_post_negation_resolved(iu_by_id, rules_extractor):
    s = _sentence(iu_by_id, "CXR569", "Previously seen left pleural effusion")  # "... has resolved."
    ents, rels = _by_text(rules_extractor.extract(s))
    assert ents["effusion"][0] == "OBS-DA" and ("left", "modify", "pleural") in rels


def test_post_uncertainty(iu_by_id, rules_extractor):
    s = _sentence(iu_by_id, "CXR973", "A subtle infiltrate")  # "A subtle infiltrate cannot be excluded."
    ents, _ = _by_text(rules_extractor.extract(s))
    assert ents["infiltrate"] == ("OBS-U", "infiltrate")


def test_negation_reaches_every_coordinated_finding(iu_by_id, rules_extractor):
    # CXR3513: "No focal consolidation, suspicious pulmonary opacity, pneumothorax or definite pleural effusion."
    s = _sentence(iu_by_id, "CXR3513", "No focal consolidation")
    g = rules_extractor.extract(s)
    obs = {e.norm: e.label for e in g.entities if e.label.startswith("OBS") and e.norm in
           ("consolidation", "opacity", "pneumothorax", "pleural effusion")}
    assert obs == dict.fromkeys(("consolidation", "opacity", "pneumothorax", "pleural effusion"), "OBS-DA")


def test_negated_observation_negates_what_it_would_suggest(iu_by_id, rules_extractor):
    s = _sentence(iu_by_id, "CXR8", "There is no focal air space opacity")  # "... to suggest a pneumonia."
    ents, rels = _by_text(rules_extractor.extract(s))
    assert ents["opacity"][0] == "OBS-DA" and ents["pneumonia"][0] == "OBS-DA"
    assert ("opacity", "suggestive_of", "pneumonia") in rels


def test_pseudo_negation_no_change(iu_by_id, rules_extractor):
    g = rules_extractor.extract("No change right upper lobe scar.")  # CXR240 impression
    ents, rels = _by_text(g)
    assert ents["scar"] == ("OBS-DP", "scarring") and ents["No change"] == ("OBS-DP", "unchanged")
    assert ("No change", "modify", "scar") in rels
    # CXR264: the "no" of "No significant interval change" denies nothing; the second "no" does
    s = _sentence(iu_by_id, "CXR264", "No significant interval change")
    assert [(e.text, e.label) for e in rules_extractor.extract(s).entities if e.label.startswith("OBS")] == [("infiltrates", "OBS-DA")]



def test_every_negated_unchanged_phrase_is_a_pseudo_negation():
    """The change list is the one place "no change" phrases are written: each one that opens
    with a negation word negates nothing. "without significant interval change" was missing
    and denied every finding of the sentence (CXR3103's "redemonstration without significant
    interval change of mild subsegmental atelectasis of the left base")."""
    from reportgen.checkers.lexicon import load_lexicon
    from reportgen.checkers.read import read_report

    lex = load_lexicon()
    negated = [p for p in lex.data["change"]["unchanged"] if p.split()[0] in ("no", "not", "without")]
    assert "without significant interval change" in negated and len(negated) >= 10
    for phrase in negated:
        findings = [f for cc in read_report(f"{phrase.capitalize()} of the mild left basilar atelectasis.").claims for f in cc.findings]
        assert [(f.observation, f.presence) for f in findings] == [("atelectasis", "present")], phrase
    read = read_report("There is redemonstration without significant interval change of mild subsegmental atelectasis of the left base.")
    assert [(f.observation, f.presence, f.laterality) for cc in read.claims for f in cc.findings] == [("atelectasis", "present", "left")]
    # a real negation is untouched
    read = read_report("Without evidence of pleural effusion.")
    assert [(f.observation, f.presence) for cc in read.claims for f in cc.findings] == [("pleural effusion", "absent")]

def test_contextual_normal_form(iu_by_id, rules_extractor):
    s = _sentence(iu_by_id, "CXR206", "The heart is borderline enlarged")
    ents, rels = _by_text(rules_extractor.extract(s))
    assert ents["enlarged"] == ("OBS-DP", "cardiomegaly") and ("enlarged", "located_at", "heart") in rels
    assert ("borderline", "modify", "enlarged") in rels


def test_normal_statement_graph_says_what_is_absent_where(iu_by_id, rules_extractor):
    g = rules_extractor.extract("The lungs are clear.")  # CXR558
    by = [(e.text, e.label, e.norm) for e in g.entities]
    assert by == [("lungs", "ANAT-DP", "lung"), ("clear", "OBS-DP", "normal"), ("clear", "OBS-DA", "abnormality")]
    assert {(r.source, r.type, r.target) for r in g.relations} == {("e2", "located_at", "e1"), ("e3", "located_at", "e1")}
    # CXR3513 impression: the generic finding itself is denied, with its "acute" qualifier
    ents, rels = _by_text(rules_extractor.extract("No acute cardiopulmonary abnormality."))
    assert ents["abnormality"] == ("OBS-DA", "acute abnormality")
    assert ("abnormality", "located_at", "cardiopulmonary") in rels and ("acute", "modify", "abnormality") in rels
    # a specific predicate denies its own findings only (CXR3513: "Visualized osseous structures appear intact.")
    g = rules_extractor.extract("Visualized osseous structures appear intact.")
    assert sorted(e.norm for e in g.entities if e.label == "OBS-DA") == ["dislocation", "fracture"]


def test_extract_on_a_whole_report_uses_text_offsets(iu_by_id, rules_extractor):
    t = iu_by_id["CXR558"].report.text
    g = rules_extractor.extract(t)
    assert all(t[e.start : e.end] == e.text for e in g.entities)
    assert len({e.id for e in g.entities}) == len(g.entities)
    assert sum(e.norm == "pneumothorax" and e.label == "OBS-DA" for e in g.entities) == 2


# ---- graphs per claim ------------------------------------------------------------------------
def test_claim_graphs_are_in_report_offsets_and_split_claims_keep_the_negation(iu_by_id, rules_extractor):
    t = iu_by_id["CXR558"].report.text
    rep = split_sections(t)
    claims = split_claims(rep)
    graphs = claim_graphs(rules_extractor, rep, claims)
    assert len(graphs) == len(claims)
    for c, g in zip(claims, graphs):
        for e in g.entities:
            assert t[e.start : e.end] == e.text and c.sentence_start <= e.start < e.end <= c.sentence_end
    k = next(i for i, c in enumerate(claims) if c.text == "No pneumothorax.")
    assert [(e.text, e.label) for e in graphs[k].entities] == [("pneumothorax", "OBS-DA")]
    seen: dict[str, tuple] = {}  # an id names one entity in the whole report (sentences are prefixed)
    for g in graphs:
        for e in g.entities:
            assert seen.setdefault(e.id, (e.start, e.end, e.norm)) == (e.start, e.end, e.norm)
    assert len(seen) > len(graphs)


def test_shared_predicate_goes_to_each_part_without_the_other_anatomy(iu_by_id, rules_extractor):
    t = iu_by_id["CXR1"].report.text  # The cardiac silhouette and mediastinum size are within normal limits.
    rep = split_sections(t)
    claims = split_claims(rep)
    graphs = claim_graphs(rules_extractor, rep, claims)
    first, second = graphs[0], graphs[1]
    assert {e.norm for e in first.entities} == {"heart", "normal", "abnormality"}
    assert {e.norm for e in second.entities} == {"mediastinum", "normal", "abnormality"}
    assert all(e.label != "ANAT-DP" or e.norm == "heart" for e in first.entities)


def test_claim_graphs_accept_a_name(iu_by_id):
    rep = split_sections("FINDINGS: Mild cardiomegaly.")
    assert claim_graphs("rules", rep, split_claims(rep))[0].entities[1].norm == "cardiomegaly"


# ---- user lexicons ---------------------------------------------------------------------------
def test_user_lexicon_is_merged_or_replaces(tmp_path):
    user = tmp_path / "extra.json"
    user.write_text(json.dumps({"version": "test-1", "observations": {"pleural effusion": ["pleural collection"]}}))
    merged = RulesExtractor(lexicon=user)
    ents, _ = _by_text(merged.extract("Small right pleural collection."))
    assert ents["collection"] == ("OBS-DP", "pleural effusion") and ents["pleural"] == ("ANAT-DP", "pleura")
    assert "test-1" in merged.lexicon.version
    ents, _ = _by_text(merged.extract("Mild cardiomegaly. Small pleural fluid."))  # the default lexicon is still there
    assert ents["cardiomegaly"] == ("OBS-DP", "cardiomegaly") and ents["fluid"] == ("OBS-DP", "pleural effusion")
    only = get_extractor("rules", lexicon=str(user), lexicon_mode="replace")
    assert only.extract("Mild cardiomegaly.").entities == ()


def test_bad_user_lexicon_files(tmp_path):
    with pytest.raises(ReportgenError) as e:
        RulesExtractor(lexicon=tmp_path / "missing.json")
    assert e.value.code == "E210"
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ReportgenError) as e:
        RulesExtractor(lexicon=bad)
    assert e.value.code == "E211"
    nover = tmp_path / "nover.json"
    nover.write_text("{}")
    with pytest.raises(ReportgenError, match="version"):
        RulesExtractor(lexicon=nover)


# ---- radgraph backend ------------------------------------------------------------------------
def test_label_and_relation_mapping_both_styles():
    assert map_label("Observation::definitely present") == "OBS-DP"
    assert map_label("Observation::uncertain") == "OBS-U"
    assert map_label("Observation::definitely absent") == "OBS-DA"
    assert map_label("Anatomy::definitely present") == "ANAT-DP"
    assert map_label("Anatomy::definitely absent") == "ANAT-DP"
    assert [map_label(x) for x in ("OBS-DP", "OBS-U", "OBS-DA", "ANAT-DP")] == ["OBS-DP", "OBS-U", "OBS-DA", "ANAT-DP"]
    assert map_label("Observation") is None and map_label("Device::present") is None
    assert [map_relation(x) for x in ("located_at", "Located_At", "modify", "suggestive_of", "suggestive of")] == [
        "located_at", "located_at", "modify", "suggestive_of", "suggestive_of"]
    assert map_relation("causes") is None


def _fake_radgraph(monkeypatch, answer=None, fail: Exception | None = None):
    calls = {"init": 0, "texts": []}

    class RadGraph:
        def __init__(self, **kw):
            calls["init"] += 1
            calls["kw"] = kw
            if fail is not None:
                raise fail

        def __call__(self, texts):
            calls["texts"].append(list(texts))
            return {str(k): answer(t) for k, t in enumerate(texts)}

    mod = types.ModuleType("radgraph")
    mod.RadGraph = RadGraph
    monkeypatch.setitem(sys.modules, "radgraph", mod)
    return calls


def _xl_annotation(text: str) -> dict:
    # what radgraph-xl answers for "No evidence of pneumothorax following chest tube removal." (its README)
    assert text.startswith("No evidence of pneumothorax")
    return {
        "text": "No evidence of pneumothorax following chest tube removal .",
        "entities": {
            "1": {"tokens": "pneumothorax", "label": "Observation::definitely absent", "start_ix": 3, "end_ix": 3, "relations": []},
            "2": {"tokens": "chest", "label": "Anatomy::definitely present", "start_ix": 5, "end_ix": 5, "relations": []},
            "3": {"tokens": "tube", "label": "Observation::definitely present", "start_ix": 6, "end_ix": 6,
                  "relations": [["located_at", "2"]]},
        },
    }


def test_radgraph_backend_maps_labels_offsets_and_relations(monkeypatch):
    calls = _fake_radgraph(monkeypatch, _xl_annotation)
    ex = get_extractor("radgraph")
    assert calls["init"] == 0  # nothing loads on construction
    text = "No evidence of pneumothorax following chest tube removal."
    g = ex.extract(text)
    assert calls["init"] == 1 and calls["kw"]["model_type"] == "radgraph-xl"
    assert [(e.text, e.label, e.norm) for e in g.entities] == [
        ("pneumothorax", "OBS-DA", None), ("chest", "ANAT-DP", None), ("tube", "OBS-DP", None)]
    assert all(text[e.start : e.end] == e.text for e in g.entities)
    names = {e.id: e.text for e in g.entities}
    assert [(names[r.source], r.type, names[r.target]) for r in g.relations] == [("tube", "located_at", "chest")]
    ex.extract_many([text, text])
    assert calls["init"] == 1 and len(calls["texts"][-1]) == 2


def test_radgraph_backend_short_labels_and_unknown_entries():
    ann = {"text": "Mild cardiomegaly .", "entities": {
        "1": {"label": "OBS-DP", "start_ix": 0, "end_ix": 0, "relations": [["modify", "2"]]},
        "2": {"label": "OBS-DP", "start_ix": 1, "end_ix": 1, "relations": [["causes", "1"]]},
        "3": {"label": "Something::else", "start_ix": 0, "end_ix": 1, "relations": []},
        "4": {"label": "OBS-DP", "start_ix": 7, "end_ix": 9, "relations": []},
    }}
    g = graph_from_annotation(ann, "Mild cardiomegaly.")
    assert [(e.text, e.label) for e in g.entities] == [("Mild", "OBS-DP"), ("cardiomegaly", "OBS-DP")]
    assert [(r.type, r.source, r.target) for r in g.relations] == [("modify", "e1", "e2")]


def test_radgraph_missing_package_names_the_rules_backend(monkeypatch):
    monkeypatch.setitem(sys.modules, "radgraph", None)  # "import radgraph" fails, find_spec says None
    with pytest.raises(ReportgenError) as e:
        get_extractor("radgraph")
    assert e.value.code == "E240" and "rules" in str(e.value)


def test_radgraph_missing_weights_is_a_clear_error_at_first_use(monkeypatch):
    _fake_radgraph(monkeypatch, _xl_annotation, fail=OSError("Cannot download the file (offline)"))
    ex = RadGraphExtractor(model_type="radgraph")
    with pytest.raises(ReportgenError) as e:
        ex.extract("No effusion.")
    assert e.value.code == "E241" and "rules" in str(e.value) and "offline" in str(e.value)
    with pytest.raises(ReportgenError) as e:
        RadGraphExtractor(model_type="bert")
    assert e.value.code == "E243"


def test_read_report_with_the_radgraph_backend(monkeypatch):
    from reportgen.checkers.read import read_report

    _fake_radgraph(monkeypatch, _xl_annotation)
    rr = read_report("FINDINGS: No evidence of pneumothorax following chest tube removal.", RadGraphExtractor())
    (cc,) = rr.claims
    assert {(f.observation, f.presence) for f in cc.findings} == {("pneumothorax", "absent"), ("tube", "present")}
    assert all(rr.report.text[e.start : e.end] == e.text for e in cc.graph.entities)
