"""Issue 9 item 8 and issue 11 section 1: every verdict says why (``basis``), and the
convention for unmentioned findings is a named choice (check, eval, Python API)."""

from __future__ import annotations

import json

import pytest

from reportgen.checkers.graph_checker import GraphChecker
from reportgen.checkers.pipeline import Pipeline
from reportgen.cli import main
from reportgen.errors import ReportgenError
from reportgen.types import VERDICT_BASES, Claim, Verdict

REPORT = ("FINDINGS: Mild cardiomegaly. There may be a small right pleural effusion. No pneumothorax.\n\n"
          "IMPRESSION: Mild cardiomegaly.")
REFERENCE = "FINDINGS: Heart size is mildly enlarged. No pleural effusion.\n\nIMPRESSION: Mild cardiomegaly."


def by_text(result):
    out = {}
    for c in result.claims:
        out.setdefault(c.claim.text, c)
    return out


def test_verdict_basis_round_trip_default_and_validation():
    claim = Claim("No pneumothorax.", "findings", 0, 16)
    v = Verdict(claim, "uncertain", ("r",), (), "graph", 0.5, "hedged")
    assert Verdict.from_dict(json.loads(json.dumps(v.to_dict()))) == v
    assert v.to_dict()["basis"] == "hedged"
    # left out, the basis follows from the status (old records, other checkers)
    assert Verdict(claim, "supported").basis == "matched"
    assert Verdict(claim, "contradicted").basis == "conflicting"
    assert Verdict(claim, "uncertain").basis == "no_evidence"  # an abstention: nothing to compare
    assert Verdict(claim, "uncertain", score=0.5).basis == "weak_evidence"
    assert Verdict.from_dict({"claim": claim.to_dict(), "status": "error"}).basis == "error"
    with pytest.raises(ReportgenError, match="basis"):
        Verdict(claim, "supported", basis="because")


def test_hedged_and_unmentioned_uncertain_claims_are_told_apart():
    r = Pipeline(self_check=True).check("a", "FINDINGS: There may be a small right pleural effusion. No pneumothorax.")
    c = by_text(r)
    hedged = c["There may be a small right pleural effusion."]
    unmentioned = c["No pneumothorax."]
    assert hedged.status == unmentioned.status == "uncertain"  # the status contract is unchanged
    assert hedged.basis == "hedged"
    assert unmentioned.basis == "no_evidence"
    rec = r.to_record()
    assert [x["basis"] for x in rec["claims"]] == ["hedged", "no_evidence"]
    assert all(v["basis"] in VERDICT_BASES for x in rec["claims"] for v in x["verdicts"])


def test_conventions_differ_only_on_unmentioned_negative_claims():
    chexpert = by_text(Pipeline(self_check=False).check("a", REPORT, REFERENCE))
    radfact = by_text(Pipeline(self_check=False, convention="radfact").check("a", REPORT, REFERENCE))
    assert (chexpert["No pneumothorax."].status, chexpert["No pneumothorax."].basis) == ("supported", "convention")
    assert "chexpert convention" in chexpert["No pneumothorax."].reasons[0]
    assert (radfact["No pneumothorax."].status, radfact["No pneumothorax."].basis) == ("unsupported", "no_evidence")
    # everything the reference speaks about is judged the same way
    for text in ("Mild cardiomegaly.", "There may be a small right pleural effusion."):
        assert (chexpert[text].status, chexpert[text].basis) == (radfact[text].status, radfact[text].basis)
    assert chexpert["Mild cardiomegaly."].basis == "matched"
    # a hedged claim the reference denies ("No pleural effusion.") is unsupported in both
    # conventions (issue 11 quality goals; it was uncertain/hedged before)
    assert (radfact["There may be a small right pleural effusion."].status,
            radfact["There may be a small right pleural effusion."].basis) == ("unsupported", "conflicting")


def test_convention_is_stated_in_every_summary_and_unknown_names_fail():
    assert Pipeline().check("a", REPORT).summary["convention"] == "chexpert"
    assert Pipeline(convention="radfact").check("a", "  ").summary["convention"] == "radfact"  # error records too
    with pytest.raises(ReportgenError) as e:
        Pipeline(convention="mimic")
    assert e.value.code == "E350"
    with pytest.raises(ReportgenError):
        GraphChecker(convention="mimic")


def _write(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


def test_check_cli_convention_basis_table_legend_and_html(tmp_path, capsys):
    reports = _write(tmp_path / "r.jsonl", [{"id": "a", "report": REPORT}])
    ref = _write(tmp_path / "ref.jsonl", [{"id": "a", "report": REFERENCE}])
    out, page = tmp_path / "v.jsonl", tmp_path / "v.html"
    assert main(["check", "--reports", reports, "--reference", ref, "--out", str(out), "--convention", "radfact",
                 "--format", "table", "--html", str(page), "-q"]) == 0
    table = capsys.readouterr().out
    flat = " ".join(table.split())
    assert "source[start:end]" in flat and "self = another sentence of the same report" in flat  # the legend
    assert "no_evidence" in table and "No pneumothorax." in table
    row = next(line for line in table.splitlines() if line.rstrip().endswith("No pneumothorax."))
    assert row.split()[:2] == ["unsupported", "no_evidence"]
    rec = json.loads(out.read_text().splitlines()[0])
    assert rec["summary"]["convention"] == "radfact"
    claim = next(c for c in rec["claims"] if c["text"] == "No pneumothorax.")
    assert (claim["status"], claim["basis"]) == ("unsupported", "no_evidence")
    assert claim["verdicts"][0]["basis"] == "no_evidence"
    html = page.read_text()
    assert "<th>basis</th>" in html and "class='basis'" in html and "no_evidence" in html
    assert "source[start:end]" in html


def test_eval_states_the_convention_and_defaults_to_radfact(tmp_path):
    pred = _write(tmp_path / "p.jsonl", [{"id": "a", "report": "No pneumothorax. Mild cardiomegaly."}])
    ref = _write(tmp_path / "r.jsonl", [{"id": "a", "report": "Mild cardiomegaly."}])
    scores = {}
    for conv in ("radfact", "chexpert"):
        out = tmp_path / f"{conv}.json"
        args = ["eval", "--pred", pred, "--ref", ref, "--out", str(out), "--bootstrap", "0", "-q"]
        assert main(args + ([] if conv == "radfact" else ["--convention", conv])) == 0
        m = json.loads(out.read_text())
        assert m["settings"]["convention"] == conv
        assert m["settings"]["hallucination_convention"] == "chexpert"
        scores[conv] = m["corpus"]["radfact_logical_precision"]["estimate"]
        assert m["corpus"]["hallucination_rate"]["estimate"] == 0.0  # the hallucination rate keeps chexpert
    # "No pneumothorax." is entailed only when silence means absent
    assert scores == {"radfact": 0.5, "chexpert": 1.0}
