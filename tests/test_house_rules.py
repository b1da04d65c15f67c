"""House rules of issue 10, checked on the library's source: core types are built only
through their constructors, and no library module manipulates ``sys.modules``."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
# installed library code (evals/bench holds scripts, not installed)
LIBRARY = [p for d in ("reportgen", "checkers", "evals", "prompts") for p in sorted((REPO / d).rglob("*.py"))
           if "bench" not in p.relative_to(REPO).parts]
BYPASS = re.compile(r"object\.__new__|__dict__\.update|\b_new\s*=\s*object")
MODULES_HACK = re.compile(r"sys\.modules\s*\[[^\]]*\]\s*=|del\s+sys\.modules|sys\.modules\.(pop|update|setdefault|clear|__setitem__)")


def _hits(pattern: re.Pattern) -> list[str]:
    return [f"{p.relative_to(REPO)}:{n}: {line.strip()}" for p in LIBRARY
            for n, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1) if pattern.search(line)]


def test_the_library_is_searched():
    assert len(LIBRARY) > 50 and any(p.name == "graph_checker.py" for p in LIBRARY)


def test_no_core_type_is_built_around_its_constructor():
    assert _hits(BYPASS) == []


def test_no_library_module_manipulates_sys_modules():
    assert _hits(MODULES_HACK) == []


def test_core_types_are_frozen_slotted_dataclasses():
    import reportgen.types as types
    from reportgen.checkers.pipeline import ClaimResult, ReportResult
    from reportgen.protocols import CheckedClaim

    core = [c for c in vars(types).values() if isinstance(c, type) and dataclasses.is_dataclass(c)]
    assert len(core) >= 9
    for cls in core + [CheckedClaim, ClaimResult, ReportResult]:
        assert cls.__dataclass_params__.frozen and "__slots__" in vars(cls), cls.__name__
    e = types.Entity("e1", "effusion", 0, 8, "OBS-DP")
    with pytest.raises(AttributeError):
        e.__dict__  # noqa: B018


# the CLI sits on top: library modules never import it, even lazily inside a function
UPWARD = re.compile(r"^\s*(from\s+reportgen\.(commands|cli)\b|import\s+reportgen\.(commands|cli)\b)")


def test_no_library_module_imports_the_cli():
    top = {"reportgen/cli.py", "reportgen/__main__.py"}
    hits = [h for h in _hits(UPWARD) if not h.startswith("reportgen/commands/") and h.split(":", 1)[0] not in top]
    assert hits == []


def test_the_upward_import_pattern_matches_what_it_must():
    assert UPWARD.search("        from reportgen.commands.draft import load_studies")
    assert UPWARD.search("import reportgen.cli")
    assert not UPWARD.search("from reportgen.drafts import load_studies")
