"""JSONL input: one Record per line with the problem named; crash-safe output."""

import json

import pytest

from reportgen.errors import InputError
from reportgen.jsonl import AppendWriter, atomic_writer, read_jsonl


def write_lines(path, lines: list[bytes]):
    path.write_bytes(b"\n".join(lines) + b"\n")


def test_each_bad_line_gets_its_own_error_and_the_rest_parse(tmp_path):
    p = tmp_path / "in.jsonl"
    write_lines(p, [
        b'{"id": "a", "report": "Lungs clear."}',
        b'{"id": "b", "report": ',                        # malformed
        b'{"report": "no id"}',                            # missing id
        b'{"id": "d", "report": "caf\xe9"}',               # latin-1, not UTF-8
        b'{"id": "e", "report": "   "}',                   # empty
        b'{"id": "f", "report": "' + b"x" * 1_000_000 + b'"}',  # 1 MB
        b'[1, 2]',
        b'',
        b'{"id": "g", "report": "No effusion.", "extra": 1}',
    ])
    recs = list(read_jsonl(p, text_fields=("report",)))
    assert [r.line for r in recs] == [1, 2, 3, 4, 5, 6, 7, 9]
    ok = [r for r in recs if r.error is None]
    assert [r.id for r in ok] == ["a", "g"]
    assert ok[1].data["extra"] == 1
    errors = {r.line: r.error for r in recs if r.error}
    assert "E103" in errors[2] and "malformed JSON" in errors[2]
    assert "E105" in errors[3] and "'id'" in errors[3]
    assert "E102" in errors[4] and "UTF-8" in errors[4]
    assert "E109" in errors[5] and "empty" in errors[5]
    assert "E108" in errors[6] and "1,000,000" in errors[6]
    assert "E104" in errors[7]
    for line, err in errors.items():
        assert err.startswith(f"{p}:{line}: ")
    assert recs[1].fallback_id() == "line:2"
    assert recs[4].fallback_id() == "e"


def test_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(InputError, match="E101"):
        list(read_jsonl(tmp_path / "nope.jsonl"))


def test_atomic_writer_leaves_old_file_on_crash(tmp_path):
    out = tmp_path / "out.jsonl"
    out.write_text("old\n")
    with pytest.raises(RuntimeError):
        with atomic_writer(out) as fh:
            fh.write("partial\n")
            raise RuntimeError("crash")
    assert out.read_text() == "old\n"
    assert list(tmp_path.iterdir()) == [out]
    with atomic_writer(out) as fh:
        fh.write("new\n")
    assert out.read_text() == "new\n"


def test_append_writer_resumes_and_repairs_a_torn_line(tmp_path):
    out = tmp_path / "drafts.jsonl"
    with AppendWriter(out) as w:
        w.write({"id": "a", "report": "x"})
        w.write({"id": "b", "report": "y"})
    with out.open("a") as fh:
        fh.write('{"id": "c", "rep')  # a crash mid-line
    w = AppendWriter(out)
    assert w.done_ids() == {"a", "b"}
    w.write({"id": "c", "report": "z"})
    w.close()
    lines = [json.loads(x) for x in out.read_text().splitlines()]
    assert [r["id"] for r in lines] == ["a", "b", "c"]
