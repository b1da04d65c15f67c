"""One contract: the record a Python user builds (``reportgen.checkers.batch``) is the
record `reportgen check` writes, and ``Pipeline.check().to_record()`` carries the region
state the command reports."""

from __future__ import annotations

import json

from reportgen.checkers.batch import RecordChecker, check_records, load_reference
from reportgen.checkers.pipeline import Pipeline
from reportgen.cli import main
from reportgen.idset import IdSet
from reportgen.jsonl import read_jsonl
from reportgen.types import Study
from tests.test_check_cli import fake_read, read_out, write_jsonl  # noqa: F401  (fixture)
from tests.test_pipeline import FakeRegion, fake_reader

ROWS = [
    {"id": "a", "report": "Right effusion. Normal chest.", "model": "m1"},
    {"id": "b", "report": "No effusion.", "summary": "theirs"},
    {"id": "a", "report": ""},
    b"{not json\n",
    {"id": "c", "report": "Left effusion."},
]


def test_python_batch_and_the_command_give_the_same_records(tmp_path, fake_read):
    reports = write_jsonl(tmp_path / "r.jsonl", ROWS)
    ref = write_jsonl(tmp_path / "ref.jsonl", [{"id": "a", "report": "Right effusion."}, {"id": "b", "report": ""}])
    out = tmp_path / "out.jsonl"
    assert main(["check", "--reports", str(reports), "--reference", str(ref), "--out", str(out), "--quiet"]) == 0
    refs, problems = load_reference(str(ref), 200_000)
    checker = RecordChecker(Pipeline(), references=refs, reference_problems=problems, base=tmp_path)
    mine = [json.loads(json.dumps(c.record)) for c in checker.check_all(read_jsonl(reports, require=("id", "report"), text_fields=("report",)))]
    assert mine == read_out(out)
    counts = checker.counts
    assert (counts.records, counts.errors, set(counts.seen), counts.missing_reference, counts.missing_reference_ids) == (
        5, 2, {"a", "b", "c"}, 2, ["b", "c"])
    assert counts.statuses["contradicted"] + counts.statuses["supported"] + counts.statuses["unsupported"] > 0
    assert mine[1]["summary"]["reference"] == "invalid" and mine[4]["summary"]["reference"] == "missing"
    assert mine[3]["error"].startswith(f"{reports}:4:")
    assert list(check_records(Pipeline(), read_jsonl(reports, require=("id", "report"), text_fields=("report",)),
                              references=refs, reference_problems=problems)) == mine


def test_pipeline_record_says_the_region_state_itself():
    p = Pipeline(reader=fake_reader, region=FakeRegion())
    assert p.check("s", "Right effusion.", study=Study("s", images=("a.png",))).to_record()["summary"]["region"] == "checked"
    assert p.check("s", "Right effusion.").to_record()["summary"]["region"] == "no_images"
    errored = p.check("s", "Right effusion.", region_error="x.png missing").to_record()["summary"]
    assert (errored["region"], errored["region_error"]) == ("error", "x.png missing")
    assert "region" not in Pipeline(reader=fake_reader).check("s", "Right effusion.").to_record()["summary"]


def test_workers_give_the_same_records_in_order(tmp_path):
    from reportgen.iu import load_iu_reports

    rows = [{"id": r.id, "report": r.report.text, "k": n} for n, r in enumerate(load_iu_reports()[:60])]
    rows[5:5] = [b"{broken\n", {"id": "empty", "report": " "}]
    reports = write_jsonl(tmp_path / "r.jsonl", rows)
    one, two = tmp_path / "one.jsonl", tmp_path / "two.jsonl"
    assert main(["check", "--reports", str(reports), "--out", str(one), "--quiet"]) == 0
    assert main(["check", "--reports", str(reports), "--out", str(two), "--quiet", "--workers", "2"]) == 0
    assert one.read_bytes() == two.read_bytes() and len(read_out(two)) == 62


def test_workers_refuse_a_region_model_and_bad_counts(tmp_path, capsys):
    reports = write_jsonl(tmp_path / "r.jsonl", [{"id": "a", "report": "No effusion."}])
    assert main(["check", "--reports", str(reports), "--workers", "0"]) != 0
    assert "E343" in capsys.readouterr().err
    assert main(["check", "--reports", str(reports), "--workers", "2", "--region-model", "ViT-B-16"]) != 0
    assert "E341" in capsys.readouterr().err


def test_a_pipeline_of_objects_is_not_rebuilt_elsewhere():
    import pytest

    from reportgen.errors import ReportgenError

    assert Pipeline(extractor="rules", self_check=False).spec() == {"extractor": "rules", "checkers": ("graph",), "self_check": False, "splitter": "rules", "convention": "chexpert"}
    with pytest.raises(ReportgenError, match="E342"):
        Pipeline(reader=fake_reader).spec()


def test_duplicate_ids_are_found_after_the_id_set_moved_to_disk(tmp_path):
    # issue 16: the ids a long stream has seen live in a bounded store; duplicates are still exact
    warnings = []
    rows = [{"id": f"r{i}", "report": "No effusion."} for i in range(5)] + [{"id": "r2", "report": "No effusion."}]
    path = write_jsonl(tmp_path / "r.jsonl", rows)
    checker = RecordChecker(Pipeline(), warn=warnings.append)
    checker.counts.seen = IdSet(in_memory=2)
    out = [c.record for c in checker.check_all(read_jsonl(path, require=("id", "report"), text_fields=("report",)))]
    assert len(out) == 6 and checker.counts.seen.on_disk and len(checker.counts.seen) == 5
    assert [w.split(": ", 1)[1] for w in warnings] == ["E306 duplicate id 'r2'; both records are checked"]
