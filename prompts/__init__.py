"""Prompt templates as data files (installed as ``reportgen.prompts``).

``load(name)`` returns the text of ``<name>`` from this folder, e.g.
``load("draft_findings.yaml")``. Templates are versioned in their own files.
"""

from __future__ import annotations

from importlib import resources


def path(name: str):
    return resources.files(__name__) / name


def load(name: str) -> str:
    p = path(name)
    if not p.is_file():
        available = sorted(x.name for x in resources.files(__name__).iterdir() if not x.name.startswith("_"))
        from reportgen.errors import ReportgenError

        raise ReportgenError("E010", f"no prompt template {name!r}", fix=f"use one of {', '.join(available)}")
    return p.read_text(encoding="utf-8")
