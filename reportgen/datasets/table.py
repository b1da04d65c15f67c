"""A CSV with one row per image -> studies JSONL records (CheXpert-Plus, or any CSV).

Columns are named by a :class:`Columns` mapping; ``PRESETS["chexpert-plus"]`` is the
layout of CheXpert-Plus' ``df_chexpert_plus_240401.csv`` (images ``path_to_image`` under
the image root, studies keyed by patient and report order, ``section_findings`` /
``section_impression`` / ``section_clinical_history``, ``frontal_lateral`` + ``ap_pa``
for views). Rows of one study are grouped; a study keeps its first non-empty text of each
section. The official ``split`` column is kept when the CSV has one.
"""

from __future__ import annotations

import csv
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from reportgen.datasets import clean, record, sections_of
from reportgen.errors import ReportgenError
from reportgen.jsonl import check_in_dir, check_in_file


@dataclass(frozen=True)
class Columns:
    image: str
    study: tuple[str, ...]
    patient: str
    view: str | None = None
    view_detail: str | None = None
    findings: str | None = None
    impression: str | None = None
    indication: str | None = None
    comparison: str | None = None
    report: str | None = None  # a free-text report to split into sections when no section columns
    split: str | None = None


PRESETS = {
    "chexpert-plus": Columns(
        image="path_to_image", study=("deid_patient_id", "patient_report_date_order"), patient="deid_patient_id",
        view="frontal_lateral", view_detail="ap_pa", findings="section_findings", impression="section_impression",
        indication="section_clinical_history", comparison="section_comparison", report="report", split="split",
    ),
}


def _view(row: dict[str, str], cols: Columns) -> str | None:
    v = (row.get(cols.view) or "").strip().upper() if cols.view else ""
    d = (row.get(cols.view_detail) or "").strip().upper() if cols.view_detail else ""
    if v.startswith("LAT"):
        return "LATERAL"
    if d in ("AP", "PA"):
        return d
    return "FRONTAL" if v.startswith("FRONT") else (v or None)


def load_table(csv_path: str | Path, image_root: str | Path | None = None, *, columns: Columns | str = "chexpert-plus",
               section: str = "findings", splits: tuple[str, ...] | None = None,
               stats: Counter | None = None) -> Iterator[dict[str, Any]]:
    """Studies JSONL records from ``csv_path`` (see the module docstring). Relative image
    paths are read under ``image_root`` (default: the CSV's folder)."""
    cols = PRESETS.get(columns) if isinstance(columns, str) else columns
    if cols is None:
        raise ReportgenError("E112", f"unknown CSV preset {columns!r}", fix=f"use one of {', '.join(PRESETS)}")
    path = Path(csv_path).expanduser()
    check_in_file(path, "CSV", "E110", fix="check --csv")
    root = Path(image_root).expanduser() if image_root else path.parent
    check_in_dir(root, "--image-root", "E110", fix="give the folder the CSV's relative image paths start in")  # else every image would be 'missing'
    stats = stats if stats is not None else Counter()
    groups: dict[tuple[str, ...], list[dict[str, str]]] = {}
    with path.open(encoding="utf-8-sig", newline="") as fh:  # -sig: the BOM a spreadsheet writes is no part of a name
        reader = csv.DictReader(fh)
        try:
            need = [cols.image, cols.patient, *cols.study]
            missing = [c for c in need if c not in (reader.fieldnames or [])]
            if missing:
                raise ReportgenError("E111", f"{str(path)!r} lacks the column(s) {', '.join(missing)}",
                                     fix="pick the preset of this CSV or name its columns")
            for row in reader:
                groups.setdefault(tuple(row[c] for c in cols.study), []).append(row)
        except (UnicodeDecodeError, csv.Error) as e:
            what = "is not UTF-8 text" if isinstance(e, UnicodeDecodeError) else f"is not a readable CSV ({e})"
            raise ReportgenError("E738", f"{str(path)!r} {what}, near line {reader.line_num + 1}",
                                 fix="save the table as UTF-8 CSV (comma-separated, one row per image)") from None
    for key, rows in groups.items():
        split = (rows[0].get(cols.split) or "").strip().lower() if cols.split else ""
        split = {"valid": "validate", "val": "validate"}.get(split, split)
        if splits and split not in splits:
            continue
        images, views = [], []
        for r in rows:
            p = Path(r[cols.image])
            p = p if p.is_absolute() else root / p
            if p.is_file():
                images.append(str(p.resolve()))
                views.append(_view(r, cols))
            else:
                stats["image files missing (images left out)"] += 1
        if not images:
            stats["no image file"] += 1
            continue
        secs: dict[str, str | None] = {}
        for name in ("findings", "impression", "indication", "comparison"):
            col = getattr(cols, name)
            secs[name] = next((clean(r.get(col)) for r in rows if col and clean(r.get(col))), None)
        if cols.report and not (secs["findings"] or secs["impression"]):
            text = next((r.get(cols.report) for r in rows if (r.get(cols.report) or "").strip()), "")
            secs.update({k: v for k, v in sections_of(text).items() if not secs.get(k)})
        study_id = "_".join(key)
        rec = record(study_id, images, views, rows[0][cols.patient], secs, section, split or None)
        if rec is None:
            stats[f"no {section} section"] += 1
            continue
        stats["written"] += 1
        yield rec
