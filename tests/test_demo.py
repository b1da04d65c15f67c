"""`reportgen demo`: runs offline on the IU reports, alters sentences visibly, catches them."""

from __future__ import annotations

import importlib.util
import json

import pytest

from reportgen.checkers.pipeline import default_reader
from reportgen.cli import main
from reportgen.commands.demo import CAUGHT, FABRICATE, FLIP, SWAP, alter

needs_iu = pytest.mark.skipif(importlib.util.find_spec("torchxrayvision") is None, reason="the IU reports ship with torchxrayvision")

FINDINGS = "The heart is normal in size. No pneumothorax. Small right pleural effusion."
IMPRESSION = "Small right effusion."


@pytest.fixture(scope="module")
def read():
    return default_reader("rules")


def test_negation_flip(read):
    report, alt = alter(FINDINGS, IMPRESSION, FLIP, read)
    assert alt.kind == FLIP and alt.original == "No pneumothorax." and alt.altered == "Pneumothorax is present."
    assert report.text[alt.start:alt.end] == alt.altered
    assert report.impression == IMPRESSION


def test_laterality_swap(read):
    report, alt = alter(FINDINGS, IMPRESSION, SWAP, read)
    assert alt.original == "Small right pleural effusion." and alt.altered == "Small left pleural effusion."
    assert report.text[alt.start:alt.end] == alt.altered


def test_fabricated_finding_names_something_the_report_never_mentions(read):
    report, alt = alter(FINDINGS, IMPRESSION, FABRICATE, read)
    assert alt.original == "" and "pneumothorax" not in alt.altered  # pneumothorax is mentioned (absent)
    assert report.text[alt.start:alt.end] == alt.altered
    assert report.findings.startswith(FINDINGS)


def test_no_applicable_sentence_gives_none(read):
    assert alter("The heart is normal in size.", None, SWAP, read) is None


@needs_iu
def test_demo_runs_offline_and_catches_every_altered_sentence(tmp_path, capsys):
    out = tmp_path / "demo.jsonl"
    assert main(["demo", "--n", "6", "--seed", "0", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "A. Internal consistency" in text and "B. Altered reports" in text
    assert "altered sentences caught (contradicted or unsupported): 6/6" in text
    assert "*N " in text and "*L " in text and "*+ " in text
    recs = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(recs) == 12
    altered = [r for r in recs if r["demo"]["part"] == "altered-vs-reference"]
    assert {r["demo"]["altered"][0]["kind"] for r in altered} == {FLIP, SWAP, FABRICATE}
    for r in altered:
        change = r["demo"]["altered"][0]
        hit = [c for c in r["claims"] if change["start"] <= c["start"] < change["end"]]
        assert hit and any(c["status"] in CAUGHT for c in hit), (r["id"], change)
        assert r["summary"]["reference"] == "given"
    assert all(r["error"] is None for r in recs)


@needs_iu
def test_demo_is_seeded(capsys):
    assert main(["demo", "--n", "2", "--seed", "7"]) == 0
    first = capsys.readouterr().out
    assert main(["demo", "--n", "2", "--seed", "7"]) == 0
    second = capsys.readouterr().out
    strip = lambda s: "\n".join(line for line in s.splitlines() if "took" not in line)
    assert strip(first) == strip(second)
