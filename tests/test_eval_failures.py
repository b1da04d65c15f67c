"""Issue 14's counting bugs, each with its regression test: failed predictions scored as
failures, the judge-failure exit, GREEN's several errors per finding and comparisons
after a comma, multi-label CheXpert findings, named GREEN figures, grounded CIs."""

from __future__ import annotations

import json

import pytest

from reportgen.cli import main
from reportgen.evals.metrics.chexpert import chexpert_labels
from reportgen.evals.metrics.green import GreenCounts, green_counts, with_trailing_comparisons
from reportgen.types import Finding

SAME = "FINDINGS: Mild cardiomegaly. Small right pleural effusion. No pneumothorax.\n\nIMPRESSION: Cardiomegaly and right effusion."


def _jsonl(path, records):
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in records))
    return str(path)


def F(obs, presence="present", **kw):
    return Finding(observation=obs, presence=presence, **kw)


def test_failed_predictions_are_scored_as_empty_reports(tmp_path, capsys):
    pred = _jsonl(tmp_path / "p.jsonl", [
        {"id": "ok", "report": SAME},
        {"id": "null", "report": None, "error": "E231 backend timed out"},  # reportgen draft's failure record
        {"id": "blank", "report": "   "},
        {"id": "absent"},
        {"id": "number", "report": 7},  # a wrong type stays an input error, and its study a failure (issue 14)
    ])
    ref = _jsonl(tmp_path / "r.jsonl", [{"id": i, "report": SAME} for i in ("ok", "null", "blank", "absent", "number")])
    out, page = tmp_path / "m.json", tmp_path / "m.html"
    assert main(["eval", "--pred", pred, "--ref", ref, "--out", str(out), "--bootstrap", "20", "--html", str(page)]) == 0
    err = capsys.readouterr().err
    assert "4 failed predictions scored as empty reports" in err and "1 reference studies without a prediction scored as failures" in err
    assert "failed predictions, scored as empty reports (4)" in page.read_text() and "E231 backend timed out" in page.read_text()
    m = json.loads(out.read_text())
    assert m["n_pairs"] == 5 and m["n_scored"] == 5 and m["n_failed_predictions"] == 4 and m["n_pairs_with_prediction"] == 4
    reasons = {f["id"]: f["reason"] for f in m["failed_predictions"]}
    assert set(reasons) == {"null", "blank", "absent", "number"} and "E231 backend timed out" in reasons["null"]
    assert [e["id"] for e in m["input_errors"]] == ["number"] and "E107" in m["input_errors"][0]["error"]
    assert m["missing_predictions"] == [{"id": "number", "reason": reasons["number"]}] and "input error" in reasons["number"]
    rows = {r["id"]: r for r in m["per_study"]}
    for i in ("null", "blank", "absent", "number"):
        r = rows[i]
        assert r["prediction_failed"] and r["error"] is None
        assert r["bleu4"] == r["rouge_l"] == r["rouge1"] == r["rouge2"] == 0.0
        assert r["radgraph_simple"] == r["radgraph_partial"] == r["radgraph_complete"] == 0.0
        assert r["temporal_f1"] == 0.0 and r["green"] == 0.0
        # every positive reference finding missed (findings and impression mentions differ in size or side)
        assert r["green_counts"]["missed_finding"] == rows["ok"]["green_counts"]["matched"] - 1 and r["green_counts"]["matched"] == 0
        assert r["radfact_logical_recall"] == 0.0 and r["radfact_logical_precision"] is None  # nothing claimed
        assert all(v is None for v in r["pred_labels"].values())  # not even "No Finding"
        assert r["claims"] == 0 and r["flagged_claims"] == []
    c = m["corpus"]
    # Five studies, one perfect: the failures pull every mean down instead of vanishing.
    assert c["rouge_l"]["estimate"] == pytest.approx(0.2) and c["radgraph_complete"]["estimate"] == pytest.approx(0.2)
    assert c["radfact_logical_recall"]["estimate"] == pytest.approx(0.2)
    assert c["chexpert_micro_f1_14"]["estimate"] < 0.5


def test_suite_scores_none_and_blank_predictions():
    from reportgen.evals.suite import Suite

    res = Suite().evaluate([("a", None, SAME), ("b", "", SAME), ("c", SAME, SAME), ("d", SAME, "")], n_bootstrap=0,
                           failures={"a": "draft failed"})
    by = {r.id: r for r in res.results}
    assert by["a"].failed == "draft failed" and by["b"].failed and by["c"].failed is None
    assert by["d"].error and "reference" in by["d"].error  # only a bad reference leaves a pair unscored
    assert len(res.scored) == 3 and len(res.failed) == 2
    assert res.corpus["bleu4_sentence_mean"].estimate == pytest.approx(1 / 3)


def test_judge_failures_over_the_share_exit_non_zero(tmp_path, capsys):
    pred = _jsonl(tmp_path / "p.jsonl", [{"id": "a", "report": SAME}, {"id": "b", "report": "No pneumothorax."}])
    ref = _jsonl(tmp_path / "r.jsonl", [{"id": "a", "report": SAME}, {"id": "b", "report": SAME}])
    out = tmp_path / "m.json"
    dead = ["--judge-url", "http://127.0.0.1:9/v1", "--judge-model", "m", "--judge-retries", "0", "--judge-timeout", "2"]
    assert main(["eval", "--pred", pred, "--ref", ref, "--out", str(out), "--bootstrap", "0", "-q", *dead]) == 1
    err = capsys.readouterr().err
    assert "E491" in err and "radfact for 2/2 studies" in err
    m = json.loads(out.read_text())  # written before the exit: nothing lost
    assert m["metric_failures"]["radfact"]["share"] == 1.0 and m["metric_failures"]["radfact"]["ids"] == ["a", "b"]
    assert m["corpus"]["radfact_logical_f1"]["estimate"] is None
    assert main(["eval", "--pred", pred, "--ref", ref, "--out", str(out), "--bootstrap", "0", "-q", *dead, "--max-failed-share", "1"]) == 0
    assert main(["eval", "--pred", pred, "--ref", ref, "--out", str(out), "--max-failed-share", "2"]) == 1
    assert "E492" in capsys.readouterr().err


def test_green_counts_several_errors_per_finding():
    # Wrong side, wrong size and wrong comparison: three errors, none hides another.
    g = green_counts([F("pleural effusion", laterality="left", severity="large", change="new")],
                     [F("pleural effusion", laterality="right", severity="small", change="stable")])
    assert (g.wrong_location, g.wrong_severity, g.false_comparison, g.matched) == (1, 1, 1, 0)
    # Same place: the severity error no longer hides the comparison error.
    g = green_counts([F("pulmonary edema", severity="moderate", change="worsened")], [F("pulmonary edema", severity="mild")])
    assert (g.wrong_severity, g.false_comparison, g.matched) == (1, 1, 0)
    g = green_counts([F("pulmonary edema", severity="moderate")], [F("pulmonary edema", severity="mild", change="improved")])
    assert (g.wrong_severity, g.missed_comparison) == (1, 1)
    assert g.score == 0.0 and GreenCounts(matched=1, wrong_severity=1).score == 0.5


def test_comparison_after_a_comma_is_kept():
    from reportgen.checkers.read import read_report

    text = "Moderate pulmonary edema, worsened since prior. Left effusion, new since prior, and right pneumothorax. Cardiomegaly."
    changes = {f.observation: f.change for c in read_report(text).claims for f in with_trailing_comparisons(text, c.findings, c.claim.end)}
    assert changes["pulmonary edema"] == "worsened" and changes["pleural effusion"] == "new"
    assert changes["cardiomegaly"] is None
    # Through the suite: "worsened" against a reference stating no change is a false comparison.
    from reportgen.evals.suite import Suite

    res = Suite().evaluate([("x", "Moderate pulmonary edema, worsened since prior.", "Moderate pulmonary edema.")], n_bootstrap=0)
    g = res.results[0].green
    assert g.false_comparison == 1 and g.matched == 1
    res = Suite().evaluate([("x", "Moderate pulmonary edema, worsened since prior.", "Moderate pulmonary edema, increased.")], n_bootstrap=0)
    assert res.results[0].green.errors == 0


def test_hydropneumothorax_is_effusion_and_pneumothorax():
    from reportgen.checkers.read import read_report

    labels = chexpert_labels([F("hydropneumothorax", laterality="right")])
    assert labels["Pleural Effusion"] == 1 and labels["Pneumothorax"] == 1 and labels["No Finding"] is None
    found = [f for c in read_report("Small right hydropneumothorax.").claims for f in c.findings]
    labels = chexpert_labels(found)
    assert labels["Pleural Effusion"] == labels["Pneumothorax"] == 1
    assert chexpert_labels([F("hydropneumothorax", "absent")])["Pneumothorax"] == 0


def test_map_values_must_be_names_or_lists(tmp_path):
    from reportgen.errors import ReportgenError
    from reportgen.evals.metrics.chexpert import ChexpertMap

    bad = tmp_path / "m.json"
    bad.write_text(json.dumps({"version": "x", "observations": {"a": []}}))
    with pytest.raises(ReportgenError, match="E411"):
        ChexpertMap.load(bad)
    bad.write_text(json.dumps({"version": "x", "observations": {"a": ["Edema", "Nope"]}}))
    with pytest.raises(ReportgenError, match="Nope"):
        ChexpertMap.load(bad)


def test_metrics_json_names_both_green_figures(tmp_path):
    # Study a: 1 matched, 0 errors (1.0); study b: 1 matched, 3 errors (0.25).
    pred = _jsonl(tmp_path / "p.jsonl", [{"id": "a", "report": "Mild cardiomegaly."},
                                         {"id": "b", "report": "Mild cardiomegaly. Pneumonia. Large left effusion. Nodule."}])
    ref = _jsonl(tmp_path / "r.jsonl", [{"id": "a", "report": "Mild cardiomegaly."}, {"id": "b", "report": "Mild cardiomegaly."}])
    out = tmp_path / "m.json"
    assert main(["eval", "--pred", pred, "--ref", ref, "--out", str(out), "--bootstrap", "0", "-q"]) == 0
    m = json.loads(out.read_text())
    c, rows = m["corpus"], {r["id"]: r for r in m["per_study"]}
    per = [rows[i]["green"] for i in ("a", "b")]
    assert c["green_mean_per_report"]["estimate"] == pytest.approx(sum(per) / 2) == c["green"]["estimate"]
    matched = sum(rows[i]["green_counts"]["matched"] for i in "ab")
    errors = sum(sum(v for k, v in rows[i]["green_counts"].items() if k != "matched") for i in "ab")
    assert c["green_pooled"]["estimate"] == pytest.approx(matched / (matched + errors)) == m["green_totals"]["green_pooled"]
    assert c["green_pooled"]["estimate"] != pytest.approx(c["green_mean_per_report"]["estimate"])
    assert "mean over studies" in m["figure_notes"]["green_mean_per_report"] and "sum" in m["figure_notes"]["green_pooled"]


def test_grounded_mode_gives_a_ci_on_every_figure(tmp_path):
    box = {"x_min": 0.1, "y_min": 0.1, "x_max": 0.5, "y_max": 0.6}
    other = {"x_min": 0.6, "y_min": 0.1, "x_max": 0.9, "y_max": 0.6}
    ex = []
    for i in range(6):
        ex.append({"example_id": f"e{i}",
                   "prediction": [{"text": "Right lower lobe opacity.", "boxes": [box if i % 2 else other]},
                                  {"text": "No pneumothorax.", "boxes": None}] + ([{"text": "Left effusion.", "boxes": None}] if i % 3 == 0 else []),
                   "target": [{"text": "Right lower lobe opacity.", "boxes": [box]}, {"text": "No pneumothorax.", "boxes": None}]})
    src, out = tmp_path / "g.json", tmp_path / "o.json"
    src.write_text(json.dumps(ex))
    assert main(["eval", "--grounded", str(src), "--out", str(out), "--bootstrap", "200", "--seed", "1", "-q"]) == 0
    res = json.loads(out.read_text())
    ci = res["corpus_ci"]
    assert set(ci) >= {"logical_precision", "logical_recall", "logical_f1", "spatial_precision", "spatial_recall",
                       "grounding_precision", "grounding_recall"}
    for k, v in ci.items():
        assert v["n_resamples"] == 200 and v["seed"] == 1
        assert v["estimate"] == pytest.approx(res["corpus"][k])
        if v["low"] is not None:
            assert v["low"] <= v["estimate"] + 1e-12 and v["estimate"] <= v["high"] + 1e-12
    assert ci["logical_precision"]["low"] < ci["logical_precision"]["high"]  # the examples differ


def test_reference_studies_missing_from_predictions_are_failures_as_in_compare(tmp_path, capsys):
    """issue 14: eval scores a reference study that --pred lacks as a failure (it was only
    listed under only_in_ref), with the same figures as ``reportgen compare``."""
    from reportgen.iu import load_iu_reports

    reports = [(r.id, r.report.text) for r in load_iu_reports(require_text=True)[:12]]
    ref = _jsonl(tmp_path / "r.jsonl", [{"id": i, "report": t} for i, t in reports])
    kept = reports[3:]  # the first three studies have no prediction
    pred = _jsonl(tmp_path / "p.jsonl", [{"id": i, "report": t} for i, t in kept])
    out, cmp = tmp_path / "m.json", tmp_path / "c.json"
    assert main(["eval", "--pred", pred, "--ref", ref, "--out", str(out), "--bootstrap", "0", "-q"]) == 0
    assert "3 reference studies without a prediction scored as failures" in capsys.readouterr().err
    m = json.loads(out.read_text())
    missing = sorted(i for i, _ in reports[:3])
    assert m["n_pairs"] == 12 and m["n_scored"] == 12 and m["n_missing_predictions"] == 3 and m["n_failed_predictions"] == 3
    assert sorted(x["id"] for x in m["missing_predictions"]) == missing == m["only_in_ref"]
    rows = {r["id"]: r for r in m["per_study"]}
    assert all(rows[i]["prediction_failed"] and rows[i]["rouge_l"] == 0.0 and rows[i]["radfact_logical_recall"] == 0.0 for i in missing)
    assert all(rows[i]["rouge_l"] == 1.0 and not rows[i]["prediction_failed"] for i, _ in kept)  # the rest are perfect
    assert m["corpus"]["rouge_l"]["estimate"] == pytest.approx(9 / 12)
    assert main(["compare", "--ref", ref, "--pred", f"A={pred}", "--pred", f"B={pred}", "--out", str(cmp),
                 "--resamples", "5", "--permutations", "5", "-q"]) == 0
    c = json.loads(cmp.read_text())
    assert c["systems"]["A"]["n_failed"] == 3
    for name, v in c["systems"]["A"]["corpus"].items():
        assert m["corpus"][name]["estimate"] == pytest.approx(v["estimate"], nan_ok=True), name
