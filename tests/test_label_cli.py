"""`reportgen label`: one record per input line, CheXpert names exactly, error records."""

from __future__ import annotations

import json

import pytest

from reportgen.cli import main

NAMES = ["No Finding", "Enlarged Cardiomediastinum", "Cardiomegaly", "Lung Lesion", "Lung Opacity", "Edema",
         "Consolidation", "Pneumonia", "Atelectasis", "Pneumothorax", "Pleural Effusion", "Pleural Other",
         "Fracture", "Support Devices"]


def _write(path, lines):
    path.write_bytes(b"\n".join(x if isinstance(x, bytes) else x.encode() for x in lines) + b"\n")


def test_label_records(tmp_path, capsys):
    src = tmp_path / "r.jsonl"
    _write(src, [
        json.dumps({"id": "a", "report": "FINDINGS: Mild cardiomegaly. Small left pleural effusion. No pneumothorax."}),
        json.dumps({"id": "b", "report": "IMPRESSION: No acute cardiopulmonary abnormality."}),
        json.dumps({"id": "c", "report": "Possible right lower lobe pneumonia. Left chest tube in place."}),
        json.dumps({"id": "d", "report": ""}),
        b"{not json",
        b'{"report": "no id"}',
        b'{"id": "e", "report": "caf\xe9"}',
    ])
    out = tmp_path / "l.jsonl"
    assert main(["label", "--reports", str(src), "--out", str(out), "-q"]) == 0
    recs = [json.loads(x) for x in out.read_text().splitlines()]
    assert [r["id"] for r in recs] == ["a", "b", "c", "d", "line:5", "line:6", "line:7"]
    a, b, c = recs[0]["labels"], recs[1]["labels"], recs[2]["labels"]
    for r in recs[:3]:
        assert list(r["labels"]) == NAMES and r["error"] is None
    assert (a["Cardiomegaly"], a["Pleural Effusion"], a["Pneumothorax"], a["No Finding"], a["Edema"]) == (1, 1, 0, None, None)
    assert b["No Finding"] == 1
    assert all(v in (0, None) for k, v in b.items() if k != "No Finding")
    assert c["Pneumonia"] == -1 and c["Support Devices"] == 1 and c["No Finding"] is None
    assert "E109" in recs[3]["error"] and recs[3]["labels"] is None
    assert "E103" in recs[4]["error"] and "E105" in recs[5]["error"] and "E102" in recs[6]["error"]
    assert [r["error_code"] for r in recs[3:]] == ["E109", "E103", "E105", "E102"]  # the code on its own too
    assert all("error_code" not in r for r in recs[:3])
    assert main(["label", "--reports", str(src), "--out", str(out), "-q", "--strict"]) == 1


def test_label_missing_input_leaves_no_output(tmp_path, capsys):
    out = tmp_path / "l.jsonl"
    assert main(["label", "--reports", str(tmp_path / "nope.jsonl"), "--out", str(out)]) == 1
    assert "E101" in capsys.readouterr().err and not out.exists()
