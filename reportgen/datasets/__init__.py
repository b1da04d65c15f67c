"""Dataset loaders that write the studies JSONL `reportgen train` and `reportgen draft` read.

- :mod:`reportgen.datasets.mimic`: MIMIC-CXR-JPG in its official layout (split and metadata
  CSVs, ``files/pXX/pXXXXXXXX/sYYYYYYYY/*.jpg``) with the free-text reports of MIMIC-CXR.
- :mod:`reportgen.datasets.table`: one row per image in a CSV (CheXpert-Plus preset, or any
  CSV with named columns).

Every record: ``{"id", "images", "views", "patient_id", "split"?, "indication"?,
"comparison"?, "findings"?, "impression"?, "report"}`` where ``report`` is the section the
task trains on. Splits stay by patient: `reportgen train` honours ``split`` and otherwise
splits by ``patient_id``.
"""

from __future__ import annotations

import re
from typing import Any, Mapping

from reportgen.errors import ReportgenError

SECTIONS = ("findings", "impression", "full")
_WS = re.compile(r"\s+")


def clean(text: str | None) -> str | None:
    """Whitespace collapsed (report lines are wrapped at ~80 columns); None when empty."""
    if text is None:
        return None
    out = _WS.sub(" ", text).strip()
    return out or None


def sections_of(text: str) -> dict[str, str]:
    """findings / impression / indication / comparison of a free-text report, found with
    the checker's section headings (checkers/data lexicon: FINDINGS:, IMPRESSION:,
    INDICATION:, HISTORY:, COMPARISON:, ...)."""
    from reportgen.checkers.claims import split_sections

    rep = split_sections(text)
    out: dict[str, str] = {}
    for s in rep.sections:
        name = {"history": "indication", "clinical history": "indication", "reason for exam": "indication"}.get(s.name, s.name)
        if name in ("findings", "impression", "indication", "comparison") and name not in out:
            value = clean(text[s.start : s.end])
            if value:
                out[name] = value
    return out


def target_report(secs: Mapping[str, str | None], section: str) -> str | None:
    """The training target of a study for ``section`` ("findings", "impression" or
    "full": "FINDINGS: ...\\n\\nIMPRESSION: ..."); None when the study lacks it."""
    if section not in SECTIONS:
        raise ReportgenError("E112", f"unknown section {section!r}", fix=f"use one of {', '.join(SECTIONS)}")
    if section != "full":
        return secs.get(section)
    if not secs.get("findings") and not secs.get("impression"):
        return None
    from reportgen.types import Report

    return Report.from_sections({"findings": secs.get("findings"), "impression": secs.get("impression")}).text


def record(study_id: str, images: list[str], views: list[str | None], patient_id: str, secs: Mapping[str, str | None],
           section: str, split: str | None = None, **extra: Any) -> dict[str, Any] | None:
    """One studies-JSONL record (None when the study lacks the section to train on)."""
    report = target_report(secs, section)
    if report is None:
        return None
    rec: dict[str, Any] = {"id": study_id, "images": images, "views": views, "patient_id": patient_id}
    if split:
        rec["split"] = split
    for k in ("indication", "comparison", "findings", "impression"):
        if secs.get(k):
            rec[k] = secs[k]
    rec.update(extra)
    rec["report"] = report
    return rec
