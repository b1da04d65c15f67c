"""`reportgen extract`: graphs and findings of text given on the command line or stdin."""

from __future__ import annotations

import io
import json
import sys

from reportgen.cli import main


def test_table_lists_claims_entities_relations_findings(capsys):
    # CXR2334 impression: "Left base opacity may represent early infection or atelectasis."
    assert main(["extract", "Left base opacity may represent early infection or atelectasis."]) == 0
    out = capsys.readouterr().out
    assert "Left base opacity may represent early infection or atelectasis." in out
    assert "'opacity' (s0.e3) -located_at-> 'base' (s0.e2)" in out
    assert "'opacity' (s0.e3) -suggestive_of-> 'infection' (s0.e4)" in out
    assert "= uncertain pneumonia @ left, base, lung" in out


def test_json_from_stdin_with_exact_offsets(capsys, monkeypatch):
    text = "FINDINGS: No pleural effusion or pneumothorax.\n\nIMPRESSION: No acute disease."
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(text.encode("utf-8"))))
    assert main(["extract", "-", "--format", "json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["extractor"] == "rules" and d["text"] == text
    assert [s["name"] for s in d["sections"]] == ["findings", "impression"]
    assert [c["text"] for c in d["claims"]] == ["No pleural effusion.", "No pneumothorax.", "No acute disease."]
    for c in d["claims"]:
        for e in c["entities"]:
            assert text[e["start"] : e["end"]] == e["text"]
    assert d["claims"][1]["findings"][0]["observation"] == "pneumothorax" and d["claims"][1]["findings"][0]["presence"] == "absent"


def test_words_are_joined_and_a_user_lexicon_is_used(capsys, tmp_path):
    lex = tmp_path / "lex.json"
    lex.write_text(json.dumps({"version": "1", "observations": {"pleural effusion": ["pleural collection"]}}))
    assert main(["extract", "Small", "right", "pleural", "collection.", "--lexicon", str(lex), "--format", "json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["text"] == "Small right pleural collection."
    (f,) = d["claims"][0]["findings"]
    assert (f["observation"], f["laterality"], f["severity"]) == ("pleural effusion", "right", "small")


def test_errors_are_clear(capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "radgraph", None)
    assert main(["extract", "No effusion.", "--extractor", "radgraph"]) == 1
    err = capsys.readouterr().err
    assert "E240" in err and "rules" in err
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"\xff\xfe bad")))
    assert main(["extract", "-"]) == 1
    assert "E250" in capsys.readouterr().err
    assert main(["extract", "   "]) == 1
    assert "E251" in capsys.readouterr().err
    assert main(["extract", "x", "--extractor", "radgraph", "--lexicon", "l.json"]) == 1


def test_no_claims(capsys):
    assert main(["extract", "INDICATION: cough"]) == 0
    assert capsys.readouterr().out.strip() == "(no claims)"
