"""The error registry: one table (reportgen.errors.ERRORS), docs/errors.md generated from
it, every code the code base writes registered, and the code as its own record field."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from reportgen.errors import CODES, ERRORS, ReportgenError, error_code, explain, markdown, with_error_code

ROOT = Path(__file__).resolve().parent.parent
SOURCES = ("reportgen", "checkers", "evals")
CODE = re.compile(r"\bE\d{3}\b")
# Not uses of a code: flake8's "noqa: E402, E731" and prose ranges such as "E700-E729".
NOT_A_USE = re.compile(r"noqa:[^\n]*|\bE\d{3}\s*-\s*E\d{3}\b")


REGISTRY = ROOT / "reportgen" / "errors.py"  # the table itself is not a use


def used_codes() -> dict[str, list[str]]:
    """Every code written in the library's sources (not the registry) -> the files."""
    found: dict[str, list[str]] = {}
    for top in SOURCES:
        for path in sorted((ROOT / top).rglob("*")):
            if path.suffix not in (".py", ".json") or not path.is_file() or "__pycache__" in path.parts or path == REGISTRY:
                continue
            text = NOT_A_USE.sub("", path.read_text(encoding="utf-8"))
            for code in set(CODE.findall(text)):
                found.setdefault(code, []).append(str(path.relative_to(ROOT)))
    return found


def test_docs_errors_md_is_generated_from_the_registry():
    doc = ROOT / "docs" / "errors.md"
    assert doc.is_file(), "docs/errors.md is missing: run python scripts/errors_doc.py"
    assert doc.read_text(encoding="utf-8") == markdown(), "docs/errors.md differs from reportgen/errors.py: run python scripts/errors_doc.py"
    for e in ERRORS:  # every row is on the page
        assert f"| {e.code} | " in markdown()


def test_the_doc_script_checks_and_writes(tmp_path):
    out = tmp_path / "errors.md"
    script = [sys.executable, str(ROOT / "scripts" / "errors_doc.py"), "--out", str(out)]
    assert subprocess.run([*script, "--check"], capture_output=True).returncode == 1  # no page yet: out of date
    assert subprocess.run(script, capture_output=True).returncode == 0
    assert out.read_text(encoding="utf-8") == markdown()
    assert subprocess.run([*script, "--check"], capture_output=True).returncode == 0


def test_every_code_written_in_the_sources_is_registered():
    used = used_codes()
    assert len(used) > 100  # the grep sees the code base (about 150 codes)
    missing = {c: files for c, files in sorted(used.items()) if c not in CODES}
    assert not missing, f"codes used but not in reportgen/errors.py ERRORS (add a row each, then run scripts/errors_doc.py): {missing}"


def test_every_registered_code_is_used_somewhere():
    stale = sorted(set(CODES) - set(used_codes()))
    assert not stale, f"registered codes no source writes any more (drop their rows): {stale}"


def test_the_registry_is_one_ordered_table_of_unique_codes():
    codes = [e.code for e in ERRORS]
    assert len(codes) == len(set(codes)), "a code is registered twice"
    assert codes == sorted(codes), "keep ERRORS in code order"
    for e in ERRORS:
        assert re.fullmatch(r"E\d{3}", e.code)
        assert e.meaning.strip() and e.fix.strip() and "\n" not in e.meaning + e.fix, e.code
    assert explain("E103").fix and explain("E103") is CODES["E103"]
    with pytest.raises(KeyError):
        explain("E999")


def test_the_grep_catches_a_code_that_is_not_registered(tmp_path):
    # The scanner's own check: a code in a message or a raise counts, noqa and ranges do not.
    text = 'raise ReportgenError("E998", "x")\nf"{rec.where}: E997 bad"\nimport x  # noqa: E402\n"""E700-E729 here"""\n'
    cleaned = NOT_A_USE.sub("", text)
    assert set(CODE.findall(cleaned)) == {"E998", "E997"}


@pytest.mark.parametrize("message, code", [
    ("data/r.jsonl:3: E103 malformed JSON (Expecting ',' delimiter at column 138)", "E103"),
    ("reference data/r.jsonl:2: E305 duplicate id 'a'", "E305"),
    ("E560: unknown backend 'x'. Fix: use one of ...", "E560"),
    ("r.jsonl:4: E603 image x.png: E501 cannot read image", "E603"),  # the outer code is the record's
    ("/data/E123/r.jsonl:4: E399 checking failed: KeyError: 'x'", "E399"),  # a code-like folder name is not the code
    ("ConnectError: connection refused", None),
    ("", None),
    (None, None),
])
def test_error_code_reads_the_code_a_message_carries(message, code):
    assert error_code(message) == code


def test_error_code_of_a_raised_error_is_its_code():
    e = ReportgenError("E251", "no text to extract from", fix="give text")
    assert error_code(str(e)) == e.code == "E251"
    assert error_code(f"r.jsonl:7: {e}") == "E251"


def test_with_error_code_adds_the_field_beside_the_message():
    rec = {"id": "a", "error": "r.jsonl:2: E109 'report' is empty", "claims": [], "summary": {}}
    out = with_error_code(rec)
    assert list(out) == ["id", "error", "error_code", "claims", "summary"]
    assert out["error_code"] == "E109" and out["error"] == rec["error"]  # the message is kept as it is
    ok = {"id": "b", "error": None, "claims": []}
    assert with_error_code(ok) == ok and "error_code" not in with_error_code(ok)  # no error, no code key
    assert with_error_code({"id": "c", "error": "TimeoutError: read timed out"})["error_code"] is None


def test_every_code_the_documentation_names_is_registered():
    pages = [ROOT / "README.md", ROOT / "DEVELOPERS.md", *sorted((ROOT / "docs").glob("*.md"))]
    pages.remove(ROOT / "docs" / "errors.md")  # generated from the registry (its E123 is the how-to example)
    named = {}
    for page in pages:
        for code in set(CODE.findall(NOT_A_USE.sub("", page.read_text(encoding="utf-8")))):
            named.setdefault(code, []).append(page.name)
    unknown = {c: p for c, p in sorted(named.items()) if c not in CODES}
    assert not unknown, f"the documentation names codes the registry does not have: {unknown}"


def test_python_users_get_the_code_in_a_failed_reports_record_too():
    from reportgen import Pipeline

    rec = Pipeline().check("x", "").to_record()
    assert list(rec)[:3] == ["id", "error", "error_code"]
    assert rec["error"] == "E301 report is empty" and rec["error_code"] == "E301"
    assert Pipeline().check("y", 5).to_record()["error_code"] == "E302"
