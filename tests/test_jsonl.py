"""JSONL input: one Record per line with the problem named; crash-safe output."""

import json
import os
import stat

import pytest

from reportgen.errors import InputError
from reportgen.jsonl import AppendWriter, atomic_writer, dumps, read_jsonl


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


def test_malformed_json_points_at_the_real_column(tmp_path):
    # issue 9 item 4: a line cut short after 137 characters failed "at column 1" (it was
    # parsed with its newline, so the parser stopped on line 2); the fault is at column 138.
    cut = '{"id": "A2", "report": "' + "x" * 112 + '"'
    assert len(cut) == 137
    mid = '{"id": "b" "report": "No effusion."}'  # the comma is missing at column 12
    p = tmp_path / "in.jsonl"
    p.write_bytes((cut + "\n" + mid + "\r\n" + cut).encode())  # LF, CRLF, and no newline at the end
    errors = [r.error for r in read_jsonl(p)]
    assert errors[0] == f"{p}:1: E103 malformed JSON (Expecting ',' delimiter at column 138, the end of the line)"
    assert errors[1] == f"{p}:2: E103 malformed JSON (Expecting ',' delimiter at column 12)"
    assert errors[2] == f"{p}:3: E103 malformed JSON (Expecting ',' delimiter at column 138, the end of the line)"
    assert mid[11] == '"'  # column 12 (1-based) is where the parser stopped: the next key's quote
    # multi-byte characters count as one column each, as an editor shows them
    p.write_text('{"id": "é", "report": "ü" x}\n', encoding="utf-8")
    (rec,) = read_jsonl(p)
    assert rec.error.endswith("(Expecting ',' delimiter at column 27)") and '{"id": "é", "report": "ü" x}'[26] == "x"


def test_a_broken_line_keeps_the_id_it_seems_to_carry_as_a_hint_only(tmp_path):
    p = tmp_path / "in.jsonl"
    write_lines(p, [
        b'{"id": "A2", "report": "cut sh',
        b'{"report": "he said \\"id\\": \\"z\\"", "id": "q\\"1" oops}',  # an escaped "id" inside text is not it
        b'{"id": 7, "report": ',
        b'{"id": "d\xe9", "report": "x"}',  # not UTF-8: the hint still names the record
        b'{"id": "ok", "report": "fine"}',
    ])
    recs = list(read_jsonl(p, text_fields=("report",)))
    assert [r.id_hint for r in recs] == ["A2", 'q"1', None, "d\ufffd", None]
    assert [r.id for r in recs] == [None, None, None, None, "ok"]  # never used as the id
    assert [r.fallback_id() for r in recs[:2]] == ["line:1", "line:2"]
    assert [r.error_code for r in recs] == ["E103", "E103", "E103", "E102", None]


@pytest.mark.parametrize("umask", [0o022, 0o077])
def test_atomic_writes_get_the_permissions_open_would_give(tmp_path, umask):
    # issue 9 item 5: mkstemp made every output 0600 whatever the umask
    old = os.umask(umask)
    try:
        with open(tmp_path / "plain.txt", "w") as fh:
            fh.write("x")
        with atomic_writer(tmp_path / "atomic.txt") as fh:
            fh.write("x")
    finally:
        os.umask(old)
    plain = stat.S_IMODE((tmp_path / "plain.txt").stat().st_mode)
    atomic = stat.S_IMODE((tmp_path / "atomic.txt").stat().st_mode)
    assert plain == 0o666 & ~umask
    assert atomic == plain


def test_overwriting_keeps_the_old_files_permissions_as_open_does(tmp_path):
    out = tmp_path / "out.jsonl"
    out.write_text("old\n")
    out.chmod(0o640)
    old = os.umask(0o077)
    try:
        with atomic_writer(out) as fh:
            fh.write("new\n")
    finally:
        os.umask(old)
    assert out.read_text() == "new\n" and stat.S_IMODE(out.stat().st_mode) == 0o640
    assert list(tmp_path.iterdir()) == [out]  # no temporary file left


def test_dumps_writes_what_json_dumps_writes_with_the_jsonl_options():
    rec = {"id": "ü-1", "report": "Größe\n\t\"quoted\" \\ \x01 \u2028", "score": 1e-05, "big": 1e16, "nan": float("nan"),
           "nested": [{"a": (1, 2.5, None, True)}, []], "empty": {}, 3: "int key"}
    assert dumps(rec) == json.dumps(rec, ensure_ascii=False, separators=(",", ":"))
    shared = ["same"]
    assert dumps({"a": shared, "b": shared}) == '{"a":["same"],"b":["same"]}'  # shared, not circular
