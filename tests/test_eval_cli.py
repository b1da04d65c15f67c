"""`reportgen eval`: JSON and HTML written, one-sided ids and bad lines listed, metric
values on pairs whose answers are known, the injection and grounded modes."""

from __future__ import annotations

import json
import os
import stat

import pytest

from reportgen.cli import main

SAME = "FINDINGS: Mild cardiomegaly. Small right pleural effusion. No pneumothorax.\n\nIMPRESSION: Cardiomegaly and right effusion."


def _jsonl(path, records):
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in records))
    return str(path)


@pytest.fixture()
def files(tmp_path):
    pred = _jsonl(tmp_path / "p.jsonl", [
        {"id": "same", "report": SAME},
        {"id": "flip", "report": SAME.replace("right", "left")},
        {"id": "pred-only", "report": "Normal chest."},
        {"id": "empty", "report": "  "},
        "{broken",
    ])
    ref = _jsonl(tmp_path / "r.jsonl", [
        {"id": "same", "report": SAME},
        {"id": "flip", "report": SAME},
        {"id": "ref-only", "report": "No acute disease."},
    ])
    return tmp_path, pred, ref


def test_eval_pairs_json_html_and_listed_ids(files, capsys):
    tmp, pred, ref = files
    out, page = tmp / "m.json", tmp / "m.html"
    assert main(["eval", "--pred", pred, "--ref", ref, "--out", str(out), "--html", str(page), "--bootstrap", "50"]) == 0
    table = capsys.readouterr().out
    assert "radgraph_complete" in table and "95% CI" in table
    m = json.loads(out.read_text())
    # issue 14: the reference study without a prediction is scored as a failure (it was
    # left out: n_pairs 2), still listed under only_in_ref
    assert m["n_pairs"] == 3 and m["n_scored"] == 3 and m["n_pairs_with_prediction"] == 2
    assert m["n_missing_predictions"] == 1 and m["missing_predictions"][0]["id"] == "ref-only"
    assert m["n_failed_predictions"] == 1 and m["failed_predictions"][0]["id"] == "ref-only"
    # An empty prediction is a failed draft (scored as a failure when it has a reference),
    # no longer an input error; this one has no reference, so it is listed as pred-only.
    assert m["only_in_pred"] == ["empty", "pred-only"] and m["only_in_ref"] == ["ref-only"]
    errs = {e["id"]: e["error"] for e in m["input_errors"]}
    assert "empty" not in errs and "E103" in errs["line:5"]
    rows = {r["id"]: r for r in m["per_study"]}
    same, flip = rows["same"], rows["flip"]
    # Identical reports: every similarity is perfect and nothing is flagged.
    assert same["bleu4"] == pytest.approx(1.0) and same["rouge_l"] == 1.0
    assert same["radgraph_simple"] == same["radgraph_complete"] == 1.0
    assert same["green"] == 1.0 and same["radfact_logical_precision"] == 1.0 and same["radfact_logical_recall"] == 1.0
    assert same["hallucination_rate"] == 0.0 and same["flagged_claims"] == []
    # Swapped side: the effusion claims are contradicted, GREEN counts a location error.
    assert flip["hallucination_rate"] > 0 and all(c["status"] == "contradicted" for c in flip["flagged_claims"])
    assert any("left" in c["text"] for c in flip["flagged_claims"])
    assert flip["green_counts"]["wrong_location"] >= 1 and flip["radfact_logical_precision"] < 1.0
    assert flip["pred_labels"] == same["pred_labels"]  # CheXpert labels carry no side
    c = m["corpus"]
    assert c["hallucination_rate"]["estimate"] == pytest.approx(sum(r["flagged"] for r in rows.values()) / sum(r["claims"] for r in rows.values()))
    assert c["rouge_l"]["low"] <= c["rouge_l"]["estimate"] <= c["rouge_l"]["high"]
    # same and flip agree on their 4 positive labels; the failed ref-only misses its 1
    missed = sum(v == 1 for v in rows["ref-only"]["ref_labels"].values())
    assert rows["ref-only"]["prediction_failed"] and missed == 1
    assert c["chexpert_micro_f1_14"]["estimate"] == pytest.approx(8 / 9)
    assert set(m["timings_s"]) >= {"read", "check", "bleu", "rouge", "radgraph"}
    html = page.read_text()
    assert html.startswith("<!DOCTYPE html>") and html.count("data:image/png;base64,") >= 2
    assert "ref-only" in html and "pred-only" in html


def test_eval_names_a_broken_lines_id_and_the_error_code(tmp_path, capsys):
    # issue 9 item 6 in eval: a prediction line that is not JSON is a bad line, not a missing id
    pred = _jsonl(tmp_path / "p.jsonl", [{"id": "a", "report": SAME}, '{"id": "b", "report": "cut', "{broken"])
    ref = _jsonl(tmp_path / "r.jsonl", [{"id": "a", "report": SAME}, {"id": "b", "report": SAME}, {"id": "c", "report": SAME}])
    out = tmp_path / "m.json"
    old = os.umask(0o027)  # issue 9 item 5: the output gets the umask's permissions, not 0600
    try:
        assert main(["eval", "--pred", pred, "--ref", ref, "--out", str(out), "--bootstrap", "0", "-q"]) == 0
    finally:
        os.umask(old)
    assert stat.S_IMODE(out.stat().st_mode) == 0o640
    m = json.loads(out.read_text())
    assert m["only_in_ref"] == ["c"]  # b has a (broken) prediction line: listed below with its id, not as missing
    assert m["input_errors"] == [
        {"side": "pred", "id": "line:2", "error": f"{pred}:2: E103 malformed JSON (Unterminated string starting at column 23)",
         "error_code": "E103", "id_hint": "b"},
        {"side": "pred", "id": "line:3", "error": f"{pred}:3: E103 malformed JSON (Expecting property name enclosed in double quotes at column 2)",
         "error_code": "E103"},
    ]


def test_eval_argument_errors(files, capsys):
    tmp, pred, ref = files
    assert main(["eval", "--pred", pred, "--out", str(tmp / "x.json")]) == 1
    assert "E471" in capsys.readouterr().err
    assert main(["eval", "--pred", pred, "--ref", ref, "--out", str(tmp / "x.json"), "--judge-url", "http://127.0.0.1:9/v1"]) == 1
    assert "E470" in capsys.readouterr().err and not (tmp / "x.json").exists()
    # a negative count used to slice the IU reports from the end (--n -1: all but one)
    assert main(["eval", "--inject", "--n", "-1", "--out", str(tmp / "i.json")]) == 1
    assert "E735" in capsys.readouterr().err and not (tmp / "i.json").exists()
    # no valid reference at all: a clear error naming the input errors (it was a numpy traceback)
    bad = tmp / "bad_ref.jsonl"
    bad.write_text('{"id": "a"}\n{"id": "b", "report": 5}\n')
    assert main(["eval", "--pred", pred, "--ref", str(bad), "--out", str(tmp / "x.json")]) == 1
    err = capsys.readouterr().err
    assert "E474" in err and "E105" in err and "Traceback" not in err and not (tmp / "x.json").exists()


def test_eval_inject_mode(tmp_path, capsys):
    out, bench = tmp_path / "i.json", tmp_path / "b.jsonl"
    assert main(["eval", "--inject", "--n", "40", "--rate", "0.5", "--seed", "3", "--out", str(out), "--bench-out", str(bench),
                 "--categories", "laterality_swap", "negation_flip", "omitted_finding"]) == 0
    assert "false-flag" in capsys.readouterr().out
    res = json.loads(out.read_text())
    rows = {r["category"]: r for r in res["rows"]}
    assert set(rows) == {"laterality_swap", "negation_flip", "omitted_finding", "all"}
    assert res["settings"]["reports"] == 40 and res["settings"]["seed"] == 3
    assert rows["negation_flip"]["errors"] > 0 and rows["negation_flip"]["recall"] > 0.5
    assert 0 <= rows["all"]["false_flag_rate"] < 0.5
    # false flags on verbatim sentences with self-consistency on (issue 11 section 2): a column of its own
    assert res["settings"]["convention"] == "chexpert"
    assert all(0 <= r["false_flag_rate_self_check"] <= 0.01 for r in rows.values())
    lines = [json.loads(x) for x in bench.read_text().splitlines()]
    assert {x["run"] for x in lines} == {"laterality_swap", "negation_flip", "omitted_finding"} and len(lines) == 120
    inj = next(i for x in lines for i in x["injections"] if i["category"] == "negation_flip")
    assert inj["text"] and inj["start"] < inj["end"]


def test_eval_grounded_mode_on_the_hand_written_examples(test_data, tmp_path):
    out = tmp_path / "g.json"
    assert main(["eval", "--grounded", str(test_data / "grounded_examples.json"), "--out", str(out), "-q"]) == 0
    res = json.loads(out.read_text())
    rows = {r["id"]: r for r in res["per_example"]}
    assert res["n_examples"] == 4 and list(rows) == ["hand-1", "hand-2", "hand-3", "hand-4"]
    # hand-1 and hand-4 say only what their targets say; hand-2 says cardiomegaly where the
    # heart is normal, hand-3 a pneumothorax that is absent: half of each is wrong, and the
    # target's sentence that it contradicts is not entailed either
    assert [r["logical_precision"] for r in rows.values()] == [1.0, 0.5, 0.5, 1.0]
    assert rows["hand-2"]["logical_recall"] == rows["hand-3"]["logical_recall"] == 0.5
    # boxes: the wrong sentences' boxes are not spatially supported; no boxes -> None
    assert rows["hand-2"]["spatial_precision"] == 0.5 and rows["hand-4"]["spatial_precision"] is None
    assert rows["hand-1"]["grounding_precision"] == 1.0 and rows["hand-4"]["grounding_precision"] is None
    assert res["corpus"]["logical_precision"] == 0.75 and res["corpus"]["n_candidate_phrases_with_boxes"] == 1.25


def test_eval_grounded_mode(shared_data, tmp_path, capsys):
    out = tmp_path / "g.json"
    src = shared_data / "radfact" / "grounded_reporting_examples.json"
    assert main(["eval", "--grounded", str(src), "--out", str(out), "-q"]) == 0
    res = json.loads(out.read_text())
    assert res["n_examples"] == 20 and len(res["per_example"]) == 20
    c = res["corpus"]
    assert 0 < c["logical_precision"] < 1 and 0 < c["logical_recall"] < 1
    assert c["n_candidate_phrases_with_boxes"] > 0
    assert c["grounding_precision"] is None or 0 <= c["grounding_precision"] <= 1


def test_eval_with_llm_judge_counts_failed_calls(files, capsys):
    from tests.test_metrics_judge import _JudgeServer

    tmp, pred, ref = files
    boom = _jsonl(tmp / "p2.jsonl", [{"id": "same", "report": SAME}, {"id": "flip", "report": "boom. Small left pleural effusion."}])
    out = tmp / "j.json"
    with _JudgeServer() as url:
        assert main(["eval", "--pred", boom, "--ref", ref, "--out", str(out), "--bootstrap", "0", "-q",
                     "--judge-url", url, "--judge-model", "m", "--judge-concurrency", "2", "--judge-retries", "0"]) == 0
    m = json.loads(out.read_text())
    assert m["settings"]["entailment"] == "llm" and m["judge_errors"] >= 1
    rows = {r["id"]: r for r in m["per_study"]}
    assert rows["flip"]["radfact_errors"] >= 1
    # The fake judge entails only hypotheses mentioning "left": errors are excluded, not "not entailed".
    assert rows["flip"]["radfact_logical_precision"] == 1.0
    assert "judge calls failed" in capsys.readouterr().err
