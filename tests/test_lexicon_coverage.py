"""The rules lexicon covers the CheXpert labeler's mention phrases (issue 11 section 3), and
docs/lexicon.md reports that coverage as scripts/lexicon_coverage.py measures it."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def cov_module():
    spec = importlib.util.spec_from_file_location("lexicon_coverage", ROOT / "scripts" / "lexicon_coverage.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def cov(cov_module):
    return cov_module.coverage()


def test_phrase_file_states_its_source_and_licence():
    data = json.loads((ROOT / "evals" / "data" / "chexpert_mention_phrases.json").read_text(encoding="utf-8"))
    assert "stanfordmlgroup/chexpert-labeler" in data["source"] and data["licence"].startswith("MIT")
    assert len(data["labels"]) == 14
    assert all(len(spec["commit"]) == 40 and spec["path"].endswith(".txt") and spec["phrases"] for spec in data["labels"].values())


def test_every_uncovered_phrase_says_why_and_coverage_does_not_drop(cov, cov_module):
    rows = cov["rows"]
    assert len(rows) == 148
    uncovered = [r for r in rows if not r["covered"]]
    assert len(rows) - len(uncovered) >= 138
    assert all(r["phrase"] in cov_module.UNCOVERED for r in uncovered), [r["phrase"] for r in uncovered]


@pytest.mark.parametrize("phrase, label, observation", [
    ("atelecta", "Atelectasis", "atelectasis"),  # a stem: every lexicon word starting with it is probed
    ("pleuro-parenchymal scar", "Pleural Other", "pleural thickening"),
    ("mediport", "Support Devices", "catheter"),
    ("decreased translucency", "Lung Opacity", "opacity"),
])
def test_phrases_read_as_their_label(cov, phrase, label, observation):
    row = next(r for r in cov["rows"] if r["phrase"] == phrase and r["label"] == label)
    assert row["covered"] and observation in row["read_as"]


def test_docs_report_the_measured_coverage(cov_module):
    assert cov_module.main(["--check"]) == 0


@pytest.fixture(scope="module")
def fcov(cov_module):
    return cov_module.fleischner_coverage()


def test_fleischner_radiograph_terms_are_read_and_every_term_iu_uses_is_covered(fcov, cov_module):
    rows = fcov["rows"]
    assert len(rows) >= 100 and fcov["n_ct"] >= 5
    uncovered = [r for r in rows if not r["covered"]]
    assert len(uncovered) <= 1 and all(r["term"] in cov_module.F_UNCOVERED for r in uncovered), uncovered
    used = [r for r in rows if r["iu_reports"]]
    assert len(used) >= 50 and all(r["covered"] for r in used)


@pytest.mark.parametrize("text, observation", [
    ("Kerley B lines at the bases.", "septal thickening"),  # was read as a catheter through "lines"
    ("Air bronchograms in the right lower lobe.", "consolidation"),
    ("Left apical cap.", "pleural thickening"),
    ("Intra-aortic balloon pump in place.", "device"),
    ("VP shunt tubing overlies the right chest.", "catheter"),
])
def test_glossary_terms_read_as_their_finding(cov_module, text, observation):
    found = cov_module._read_as(text)
    assert observation in found
    assert observation == "catheter" or "catheter" not in found
