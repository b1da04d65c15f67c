"""reportgen: draft chest X-ray reports with a LoRA-tuned VLM and check every claim."""

__version__ = "0.1.0"

from reportgen.errors import ReportgenError  # noqa: E402
from reportgen.types import (  # noqa: E402
    Claim, Entity, EntityGraph, EvidenceItem, Finding, Relation, Report, Section, Study, Verdict,
)

__all__ = [
    "Claim", "Entity", "EntityGraph", "EvidenceItem", "Finding", "Relation", "Report",
    "ReportgenError", "Section", "Study", "Verdict", "__version__",
]
