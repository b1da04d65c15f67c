"""reportgen: draft chest X-ray reports with a LoRA-tuned VLM and check every claim.

The front door. The core types load with the package; the checking pipeline, the claim
reader and the metric suite load on first use (PEP 562), so ``import reportgen`` stays
light and the core never imports upward::

    from reportgen import Pipeline, read_report
    result = Pipeline("rules").check("s1", "Small right pleural effusion.",
                                     reference_text="Small left pleural effusion.")
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

__version__ = "0.1.0"

from reportgen.errors import ReportgenError  # noqa: E402
from reportgen.types import (  # noqa: E402
    Claim, Entity, EntityGraph, EvidenceItem, Finding, Relation, Report, Section, Study, Verdict,
)

# name -> module that defines it; imported on first access
_LAZY = {
    "Pipeline": "reportgen.checkers.pipeline",
    "ReportResult": "reportgen.checkers.pipeline",
    "read_report": "reportgen.checkers.read",
    "Suite": "reportgen.evals.suite",
    "load_iu_reports": "reportgen.iu",
    "read_jsonl": "reportgen.jsonl",
}

__all__ = [
    "Claim", "Entity", "EntityGraph", "EvidenceItem", "Finding", "Relation", "Report",
    "ReportgenError", "Section", "Study", "Verdict", "__version__", *_LAZY,
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'reportgen' has no attribute {name!r}")
    value = getattr(import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
