"""`reportgen check`: JSONL in and out, bad input, reference matching, atomic output.

Most tests replace the claim reader with the keyword stand-in of test_pipeline (the
command's I/O does not depend on the lexicon); the end-to-end tests use the real one.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

import reportgen.checkers.pipeline as pipeline_mod
from reportgen.cli import main
from tests.test_pipeline import fake_reader


@pytest.fixture
def fake_read(monkeypatch):
    monkeypatch.setattr(pipeline_mod, "default_reader", lambda extractor, splitter="rules": fake_reader)


def write_jsonl(path: Path, rows) -> Path:
    with path.open("wb") as fh:
        for row in rows:
            fh.write(row if isinstance(row, bytes) else (json.dumps(row) + "\n").encode())
    return path


def read_out(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_one_record_per_input_with_extras_passed_through(tmp_path, fake_read, capsys):
    reports = write_jsonl(tmp_path / "r.jsonl", [
        {"id": "a", "report": "Right effusion. Normal chest.", "model": "m1", "meta": {"k": 1}},
        {"id": "b", "report": "No effusion.", "summary": "theirs"},
    ])
    out = tmp_path / "v.jsonl"
    assert main(["check", "--reports", str(reports), "--out", str(out), "--quiet"]) == 0
    recs = read_out(out)
    assert [r["id"] for r in recs] == ["a", "b"]
    a, b = recs
    assert a["error"] is None and a["model"] == "m1" and a["meta"] == {"k": 1}
    assert "report" not in a  # the input text is not copied
    assert [c["status"] for c in a["claims"]] == ["contradicted", "contradicted"]
    assert a["summary"]["contradicted"] == 2 and a["summary"]["evidence"] == ["self"]
    # an extra key that clashes with the contract is kept, never overwrites it
    assert isinstance(b["summary"], dict) and b["input"] == {"summary": "theirs"}
    assert capsys.readouterr().out == ""


def test_bad_input_lines_give_error_records_and_the_rest_is_checked(tmp_path, fake_read, capsys):
    reports = write_jsonl(tmp_path / "r.jsonl", [
        {"id": "ok1", "report": "No effusion."},
        {"id": "empty", "report": ""},
        {"id": "huge", "report": "No effusion. " * 80_000},  # over 1 MB
        b'{"id": "latin", "report": "caf\xe9 effusion"}\n',
        b'{"id": "broken", "report": \n',
        {"report": "No effusion."},
        {"id": "notext"},
        {"id": "ok2", "report": "Left effusion."},
    ])
    out = tmp_path / "v.jsonl"
    assert main(["check", "--reports", str(reports), "--out", str(out), "--quiet"]) == 0
    recs = read_out(out)
    assert [r["id"] for r in recs] == ["ok1", "empty", "huge", "line:4", "line:5", "line:6", "notext", "ok2"]
    errors = {r["id"]: r["error"] for r in recs}
    assert errors["ok1"] is None and errors["ok2"] is None
    expect = {"empty": ":2: E109", "huge": ":3: E108", "line:4": ":4: E102", "line:5": ":5: E103", "line:6": ":6: E105", "notext": ":7: E105"}
    for rid, fragment in expect.items():
        assert str(reports) + fragment in errors[rid], (rid, errors[rid])
    for r in recs:
        assert set(r) >= {"id", "error", "claims", "summary"}
        if r["error"]:
            assert r["claims"] == [] and r["summary"]["claims"] == 0
    assert recs[-1]["claims"][0]["status"] == "uncertain"  # self-check: nothing to compare
    assert main(["check", "--reports", str(reports), "--out", str(out), "--quiet", "--strict"]) == 1


def test_reference_matching_and_missing_ids(tmp_path, fake_read, capsys):
    reports = write_jsonl(tmp_path / "r.jsonl", [
        {"id": "a", "report": "Left effusion."},
        {"id": "b", "report": "No pneumothorax."},
        {"id": "c", "report": "No effusion."},
    ])
    ref = write_jsonl(tmp_path / "ref.jsonl", [
        {"id": "a", "report": "No effusion."},
        {"id": "c", "report": ""},
        {"id": "z", "report": "No effusion."},
    ])
    out = tmp_path / "v.jsonl"
    assert main(["check", "--reports", str(reports), "--reference", str(ref), "--out", str(out)]) == 0
    a, b, c = read_out(out)
    assert a["claims"][0]["status"] == "contradicted" and a["summary"]["reference"] == "given"
    assert b["summary"]["reference"] == "missing" and b["error"] is None and b["claims"]
    assert c["summary"]["reference"] == "invalid" and "E109" in c["summary"]["reference_error"]
    err = capsys.readouterr().err
    assert "E307 2 report id(s) have no usable reference" in err and "b, c" in err
    assert "E304 1 reference id(s) have no report: z" in err
    assert "ref.jsonl:2: E109" in err


def test_a_crash_mid_batch_leaves_the_previous_output_intact(tmp_path, fake_read, monkeypatch):
    reports = write_jsonl(tmp_path / "r.jsonl", [{"id": f"r{i}", "report": "No effusion."} for i in range(5)])
    out = tmp_path / "v.jsonl"
    out.write_text('{"id": "previous"}\n')
    calls = {"n": 0}
    real = pipeline_mod.Pipeline.check

    def crash_on_third(self, id, text, ref=None, study=None):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return real(self, id, text, ref, study)

    monkeypatch.setattr(pipeline_mod.Pipeline, "check", crash_on_third)
    assert main(["check", "--reports", str(reports), "--out", str(out), "--quiet"]) == 130
    assert out.read_text() == '{"id": "previous"}\n'
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.jsonl", "v.jsonl"]  # no temp file left


def test_stdout_jsonl_without_out_and_table_format(tmp_path, fake_read, capsys):
    reports = write_jsonl(tmp_path / "r.jsonl", [{"id": "a", "report": "Right effusion. Normal chest."}, {"id": "b", "report": ""}])
    assert main(["check", "--reports", str(reports), "--quiet"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [json.loads(line)["id"] for line in lines] == ["a", "b"]
    out = tmp_path / "v.jsonl"
    assert main(["check", "--reports", str(reports), "--format", "table", "--out", str(out), "--quiet"]) == 0
    table = capsys.readouterr().out
    assert "== a: 2 claims (2 contradicted) ==" in table
    assert "contradicted" in table and "Normal chest." in table and "presence flipped" in table
    assert "== b: 0 claims ==" in table and "E109" in table
    assert len(read_out(out)) == 2


def test_missing_input_file_is_a_clear_error(tmp_path, fake_read, capsys):
    assert main(["check", "--reports", str(tmp_path / "nope.jsonl"), "--out", str(tmp_path / "v.jsonl")]) == 1
    assert "E101" in capsys.readouterr().err
    assert not (tmp_path / "v.jsonl").exists()


def test_report_text_is_never_logged(tmp_path, fake_read, capsys, caplog):
    secret = "Zebra-patient-Smith right effusion."
    reports = write_jsonl(tmp_path / "r.jsonl", [{"id": "a", "report": secret}, {"id": "b", "report": "x" * 300_000 + secret}])
    with caplog.at_level(logging.DEBUG):
        assert main(["-vv", "check", "--reports", str(reports), "--out", str(tmp_path / "v.jsonl")]) == 0
    captured = capsys.readouterr()
    assert "Zebra" not in caplog.text and "Zebra" not in captured.err and "Zebra" not in captured.out


def test_end_to_end_with_the_rules_reader_offsets_point_into_the_input(tmp_path, capsys):
    report = "  FINDINGS:\r\n Small left pleural effusion. No pneumothorax.\r\n\r\nIMPRESSION: Normal chest."
    reports = write_jsonl(tmp_path / "r.jsonl", [{"id": "a", "report": report, "site": "x"}])
    ref = write_jsonl(tmp_path / "ref.jsonl", [{"id": "a", "report": "FINDINGS: No pleural effusion or pneumothorax."}])
    out = tmp_path / "v.jsonl"
    assert main(["check", "--reports", str(reports), "--reference", str(ref), "--out", str(out), "-q"]) == 0
    (rec,) = read_out(out)
    assert rec["site"] == "x" and rec["summary"]["evidence"] == ["reference", "self"]
    by_text = {c["text"]: c for c in rec["claims"]}
    for c in rec["claims"]:
        assert report[c["start"]:c["end"]] == c["text"]
        for e in c["entities"]:
            assert report[e["start"]:e["end"]] == e["text"]
    effusion = by_text["Small left pleural effusion."]
    assert effusion["status"] == "contradicted"
    assert any("reference[" in r for r in effusion["reasons"]) and any("self[" in r for r in effusion["reasons"])
    assert by_text["No pneumothorax."]["status"] == "supported"
    # the reference supports "Normal chest." (issue 11 section 2: the partner, the effusion, carries the flag)
    normal = by_text["Normal chest."]
    assert normal["status"] == "supported"
    assert any(r.startswith("self-conflict") and "Small left pleural effusion." in r for r in normal["reasons"])


def test_an_unexpected_failure_on_one_record_becomes_an_error_record(tmp_path, fake_read, monkeypatch):
    reports = write_jsonl(tmp_path / "r.jsonl", [{"id": f"r{i}", "report": "No effusion."} for i in range(3)])
    real = pipeline_mod.Pipeline.check

    def fail_on_r1(self, id, text, ref=None, study=None):
        if id == "r1":
            raise RuntimeError("bug")
        return real(self, id, text, ref, study)

    monkeypatch.setattr(pipeline_mod.Pipeline, "check", fail_on_r1)
    out = tmp_path / "v.jsonl"
    assert main(["check", "--reports", str(reports), "--out", str(out), "-q"]) == 0
    recs = read_out(out)
    assert [r["id"] for r in recs] == ["r0", "r1", "r2"]
    assert recs[1]["error"].startswith(f"{reports}:2: E399 checking failed: RuntimeError") and recs[1]["claims"] == []
    assert recs[0]["error"] is None and recs[2]["error"] is None


def test_error_records_carry_the_code_as_its_own_field(tmp_path, fake_read, monkeypatch):
    reports = write_jsonl(tmp_path / "r.jsonl", [
        {"id": "ok", "report": "No effusion.", "error_code": "E565"},  # e.g. a draft record: kept under "input"
        {"id": "empty", "report": ""},
        b'{"id": "broken", "report": \n',
        {"id": "boom", "report": "No effusion."},
    ])
    real = pipeline_mod.Pipeline.check

    def fail_on_boom(self, id, text, ref=None, study=None):
        if id == "boom":
            raise RuntimeError("bug")
        return real(self, id, text, ref, study)

    monkeypatch.setattr(pipeline_mod.Pipeline, "check", fail_on_boom)
    out = tmp_path / "v.jsonl"
    assert main(["check", "--reports", str(reports), "--out", str(out), "-q"]) == 0
    ok, empty, broken, boom = read_out(out)
    assert "error_code" not in ok and ok["input"] == {"error_code": "E565"}  # never mistaken for ours
    assert [r["error_code"] for r in (empty, broken, boom)] == ["E109", "E103", "E399"]
    for r in (empty, broken, boom):
        assert list(r)[:3] == ["id", "error", "error_code"]  # beside the message, which is unchanged
    assert empty["error"] == f"{reports}:2: E109 'report' is empty"
    assert boom["error"].startswith(f"{reports}:4: E399 checking failed: RuntimeError")


def test_a_reference_whose_report_line_is_broken_says_so(tmp_path, fake_read, capsys):
    # issue 9 item 6: "E304 1 reference id(s) have no report: A2" when A2's line was malformed
    reports = write_jsonl(tmp_path / "r.jsonl", [
        {"id": "A1", "report": "No effusion."},
        ('{"id": "A2", "report": "Left effusion. ' + "x" * 100 + "\n").encode(),  # cut short
        {"id": "A3", "report": "No effusion."},
    ])
    ref = write_jsonl(tmp_path / "ref.jsonl", [{"id": i, "report": "No effusion."} for i in ("A1", "A2", "A3", "A9")])
    out = tmp_path / "v.jsonl"
    assert main(["check", "--reports", str(reports), "--reference", str(ref), "--out", str(out)]) == 0
    err = capsys.readouterr().err
    # A9 is absent from the reports: which side lacks it
    assert f"E304 1 reference id(s) have no report: A9 (no line of --reports {reports} has them)" in err
    # A2 has a line, but it is an error record: where, and why
    assert ("E020 1 reference id(s) have no usable report: their line in --reports is an error record: "
            f"A2 ({reports}:2: E103 malformed JSON (Unterminated string starting at column 24)") in err
    assert "have no report: A2" not in err and "A2," not in err
    assert [r["id"] for r in read_out(out)] == ["A1", "line:2", "A3"]  # the error record keeps its line id


def test_a_report_whose_reference_line_is_broken_says_so(tmp_path, fake_read, capsys):
    # the other side: A2's reference line is not JSON, so A2's reference is invalid, not missing
    reports = write_jsonl(tmp_path / "r.jsonl", [{"id": i, "report": "No effusion."} for i in ("A1", "A2", "A3")])
    ref = write_jsonl(tmp_path / "ref.jsonl", [
        {"id": "A1", "report": "No effusion."},
        b'{"id": "A2", "report": "No effusion."\n',
    ])
    out = tmp_path / "v.jsonl"
    assert main(["check", "--reports", str(reports), "--reference", str(ref), "--out", str(out)]) == 0
    a1, a2, a3 = read_out(out)
    assert a1["summary"]["reference"] == "given"
    assert a2["summary"]["reference"] == "invalid"
    assert a2["summary"]["reference_error"] == f"{ref}:2: E103 malformed JSON (Expecting ',' delimiter at column 38, the end of the line)"
    assert a3["summary"]["reference"] == "missing" and "reference_error" not in a3["summary"]


@pytest.mark.parametrize("umask", [0o022, 0o027])
def test_outputs_get_the_permissions_of_the_umask(tmp_path, fake_read, umask):
    # issue 9 item 5: --out and --html were 0600 whatever the umask
    import os
    import stat

    reports = write_jsonl(tmp_path / "r.jsonl", [{"id": "a", "report": "No effusion."}])
    out, page = tmp_path / "v.jsonl", tmp_path / "v.html"
    old = os.umask(umask)
    try:
        assert main(["check", "--reports", str(reports), "--out", str(out), "--html", str(page), "-q"]) == 0
    finally:
        os.umask(old)
    assert stat.S_IMODE(out.stat().st_mode) == 0o666 & ~umask
    assert stat.S_IMODE(page.stat().st_mode) == 0o666 & ~umask
