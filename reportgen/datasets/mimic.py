"""MIMIC-CXR-JPG in its official layout -> studies JSONL records.

    root/mimic-cxr-2.0.0-split.csv[.gz]      dicom_id, study_id, subject_id, split
    root/mimic-cxr-2.0.0-metadata.csv[.gz]   dicom_id, ..., ViewPosition, ... (views; optional)
    root/files/p10/p10000032/s50414267/<dicom_id>.jpg
    reports/files/p10/p10000032/s50414267.txt  (MIMIC-CXR's free-text reports; ``reports``
                                               defaults to ``root``)

One record per study: its images (ordered frontal first, then lateral; the image policy
picks from them), their ViewPosition, ``patient_id`` (subject_id), the official ``split``
("train", "validate", "test"), indication/comparison/findings/impression found by the
report's headings, and ``report``: the section to train on. Studies without that section,
without a report file or without any image file are left out and counted by reason.
The data is credentialed (PhysioNet); tests run on a synthetic tree in the same layout.
"""

from __future__ import annotations

import csv
import gzip
import io
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from reportgen.datasets import record, sections_of
from reportgen.errors import ReportgenError
from reportgen.jsonl import check_in_dir

SPLIT_FILE = "mimic-cxr-2.0.0-split.csv"
METADATA_FILE = "mimic-cxr-2.0.0-metadata.csv"
SPLITS = ("train", "validate", "test")


@dataclass
class LoadStats:
    studies: int = 0
    written: int = 0
    skipped: Counter = field(default_factory=Counter)
    by_split: Counter = field(default_factory=Counter)


def _open_csv(root: Path, name: str, required: bool) -> Iterator[dict[str, str]] | None:
    for p in (root / name, root / (name + ".gz")):
        if p.is_file():
            raw = gzip.open(p, "rb") if p.suffix == ".gz" else open(p, "rb")
            with raw, io.TextIOWrapper(raw, encoding="utf-8", newline="") as fh:
                try:
                    yield from csv.DictReader(fh)
                except (UnicodeDecodeError, csv.Error, OSError, EOFError) as e:  # OSError, EOFError: a broken .gz
                    raise ReportgenError("E738", f"{str(p)!r} cannot be read as UTF-8 CSV ({type(e).__name__})",
                                         fix="restore the file from the MIMIC-CXR-JPG download") from None
            return None
    if required:
        raise ReportgenError("E110", f"{str(root / name)!r} (or .gz) not found: not a MIMIC-CXR-JPG folder",
                             fix="give --root the folder holding mimic-cxr-2.0.0-split.csv and files/")
    return None


def _image_path(root: Path, subject: str, study: str, dicom: str) -> Path:
    return root / "files" / f"p{subject[:2]}" / f"p{subject}" / f"s{study}" / f"{dicom}.jpg"


def _report_path(reports: Path, subject: str, study: str) -> Path:
    return reports / "files" / f"p{subject[:2]}" / f"p{subject}" / f"s{study}.txt"


def load_mimic_cxr(root: str | Path, reports: str | Path | None = None, *, section: str = "findings",
                   splits: tuple[str, ...] = SPLITS, stats: LoadStats | None = None) -> Iterator[dict[str, Any]]:
    """Studies JSONL records of MIMIC-CXR-JPG (see the module docstring), in split-file
    order; ``splits`` keeps only those official splits; ``stats`` counts what was left out."""
    from reportgen.images import FRONTAL_VIEWS, LATERAL_VIEWS, VIEW_NAMES

    root = Path(root).expanduser()
    reports_root = Path(reports).expanduser() if reports else root
    stats = stats if stats is not None else LoadStats()
    bad = [s for s in splits if s not in SPLITS]
    if bad:
        raise ReportgenError("E112", f"unknown MIMIC-CXR split(s) {', '.join(bad)}", fix=f"use {', '.join(SPLITS)}")
    for flag, folder in (("--root", root), ("--reports", reports_root)):
        check_in_dir(folder, flag, "E110", fix=f"give {flag} the MIMIC-CXR{'-JPG' if flag == '--root' else ''} folder")
    if not (root / "files").is_dir():
        raise ReportgenError("E110", f"{str(root / 'files')!r} does not exist: not a MIMIC-CXR-JPG folder",
                             fix="give --root the folder holding mimic-cxr-2.0.0-split.csv and files/")
    views: dict[str, str] = {}
    meta = _open_csv(root, METADATA_FILE, required=False)
    for row in meta or ():
        v = (row.get("ViewPosition") or "").strip().upper()
        if v:
            views[row["dicom_id"]] = VIEW_NAMES.get(v, v)
    studies: dict[tuple[str, str], list[str]] = defaultdict(list)
    split_of: dict[tuple[str, str], str] = {}
    for row in _open_csv(root, SPLIT_FILE, required=True) or ():
        try:
            key = (row["subject_id"].strip(), row["study_id"].strip())
            studies[key].append(row["dicom_id"].strip())
            split_of[key] = row["split"].strip().lower()
        except (KeyError, AttributeError) as e:
            raise ReportgenError("E111", f"{SPLIT_FILE} lacks the column {e}", fix="use the official split file") from e
    for (subject, study), dicoms in studies.items():
        split = split_of[(subject, study)]
        if split not in splits:
            continue
        stats.studies += 1
        imgs = [(d, _image_path(root, subject, study, d)) for d in dicoms]
        present = [(d, p) for d, p in imgs if p.is_file()]
        if len(present) < len(imgs):
            stats.skipped["image files missing (images left out)"] += len(imgs) - len(present)
        if not present:
            stats.skipped["no image file"] += 1
            continue
        rp = _report_path(reports_root, subject, study)
        if not rp.is_file():
            stats.skipped["no report file"] += 1
            continue
        secs = sections_of(rp.read_text(encoding="utf-8", errors="replace"))

        def rank(d: str) -> int:
            v = views.get(d, "")
            return 0 if v in FRONTAL_VIEWS else 1 if v in LATERAL_VIEWS else 2

        present.sort(key=lambda dp: rank(dp[0]))
        rec = record(f"s{study}", [str(p.resolve()) for _, p in present], [views.get(d) for d, _ in present],
                     subject, secs, section, split, mimic_study_id=study)
        if rec is None:
            stats.skipped[f"no {section} section"] += 1
            continue
        stats.written += 1
        stats.by_split[split] += 1
        yield rec
