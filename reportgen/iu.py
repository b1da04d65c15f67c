"""The Indiana University (Open-i) chest X-ray reports shipped inside torchxrayvision.

torchxrayvision carries ``data/NLMCXR_reports.tgz``: 3,955 report XMLs with FINDINGS,
IMPRESSION, INDICATION, COMPARISON, human MeSH ``major`` tags and image ids (CC BY-NC-ND
4.0). We read the archive from the installed package without importing it (importing
torchxrayvision imports torch), so the checker stays torch-free.
"""

from __future__ import annotations

import importlib.util
import tarfile
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Iterator

from reportgen.errors import BackendUnavailable
from reportgen.types import Report

ARCHIVE = "NLMCXR_reports.tgz"


@dataclass(frozen=True)
class IUReport:
    """One IU report. ``id`` is "CXR<n>"; ``mesh_major`` holds tags such as
    "Opacity/lung/upper lobe/right"; ``images`` the Open-i image ids."""

    id: str
    findings: str | None
    impression: str | None
    indication: str | None
    comparison: str | None
    mesh_major: tuple[str, ...]
    images: tuple[str, ...]

    @property
    def report(self) -> Report:
        """FINDINGS and IMPRESSION as one Report with exact section offsets."""
        return Report.from_sections({"findings": self.findings, "impression": self.impression})

    def to_dict(self) -> dict:
        return {
            "id": self.id, "findings": self.findings, "impression": self.impression,
            "indication": self.indication, "comparison": self.comparison,
            "mesh_major": list(self.mesh_major), "images": list(self.images),
        }


def archive_path() -> Path:
    """Path of the IU archive inside the installed torchxrayvision package."""
    spec = importlib.util.find_spec("torchxrayvision")
    if spec is None or not spec.submodule_search_locations:
        raise BackendUnavailable(
            "E201", "the IU reports come with the torchxrayvision package, which is not installed",
            fix="pip install 'reportgen-cxr[iu]' (or pip install torchxrayvision)",
        )
    path = Path(list(spec.submodule_search_locations)[0]) / "data" / ARCHIVE
    if not path.exists():
        raise BackendUnavailable("E202", f"torchxrayvision is installed but {path} is missing", fix="reinstall torchxrayvision")
    return path


def _text(root: ET.Element, label: str) -> str | None:
    for node in root.iter("AbstractText"):
        if node.get("Label") == label:
            text = (node.text or "").strip()
            return text or None
    return None


def parse_xml(data: bytes) -> IUReport:
    root = ET.fromstring(data)
    uid = root.find("uId")
    rid = uid.get("id") if uid is not None else None
    if not rid:
        raise ValueError("IU XML without uId")
    mesh = tuple((m.text or "").strip() for m in root.iterfind("MeSH/major") if (m.text or "").strip())
    images = tuple(p.get("id", "") for p in root.iterfind("parentImage") if p.get("id"))
    return IUReport(
        id=rid, findings=_text(root, "FINDINGS"), impression=_text(root, "IMPRESSION"),
        indication=_text(root, "INDICATION"), comparison=_text(root, "COMPARISON"),
        mesh_major=mesh, images=images,
    )


@lru_cache(maxsize=2)
def _load_all(path: str) -> tuple[IUReport, ...]:
    out: list[IUReport] = []
    with tarfile.open(path, "r:gz") as tar:
        for member in tar:
            if not member.isfile() or not member.name.endswith(".xml"):
                continue
            fh = tar.extractfile(member)
            if fh is None:
                continue
            out.append(parse_xml(fh.read()))
    # Stable, numeric order: CXR1, CXR2, ... regardless of archive order.
    out.sort(key=lambda r: int(r.id[3:]) if r.id[3:].isdigit() else 10**9)
    return tuple(out)


def load_iu_reports(path: str | Path | None = None, *, require_text: bool = False) -> tuple[IUReport, ...]:
    """All IU reports, ordered by number. ``require_text`` drops reports with neither
    findings nor impression."""
    reports = _load_all(str(path or archive_path()))
    if require_text:
        reports = tuple(r for r in reports if r.findings or r.impression)
    return reports


def iter_iu_reports(path: str | Path | None = None) -> Iterator[IUReport]:
    yield from load_iu_reports(path)
