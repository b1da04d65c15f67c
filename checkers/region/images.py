"""Reading radiographs for the region checker.

Pixels come from ``reportgen.images.load_image`` (the drafting backends' loader: PNG,
JPEG, DICOM with Modality LUT, VOI window and MONOCHROME1 inversion), so the region
model sees the same pixels as the drafter. This module adds what the zones need: the
view (DICOM ``ViewPosition`` / View Code Sequence via ``reportgen.images.view_from_dicom``)
and whether the image is mirrored (DICOM ``PatientOrientation`` rows toward the patient's
right instead of the usual left on frontal views).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from reportgen.checkers.region.zones import normalise_view
from reportgen.errors import ReportgenError


@dataclass(frozen=True)
class RadiographImage:
    """Pixels (H, W) float32 in 0..1, the view and orientation found in the file."""

    pixels: np.ndarray
    path: str
    view: str | None = None
    mirrored: bool = False

    @property
    def shape(self) -> tuple[int, int]:
        return self.pixels.shape  # type: ignore[return-value]


def load_radiograph(path: str | Path) -> RadiographImage:
    """Read one radiograph; errors (E603) name the file and the problem."""
    from reportgen import images

    p = Path(path)
    try:
        im = images.load_image(p)
        arr = np.asarray(im.convert("L"), dtype=np.float32) / 255.0
    except ReportgenError as e:
        raise ReportgenError("E603", f"image {p}: {e.code} {e.message.rstrip('.')}", fix=e.fix) from None
    except ImportError:
        raise ReportgenError("E611", "reading images needs Pillow (and pydicom for DICOM)", fix="pip install 'reportgen-cxr[clip]'") from None
    view, mirrored = None, False
    if images.is_dicom(p):
        view = normalise_view(images.view_from_dicom(p))
        mirrored = _mirrored(p, view)
    return RadiographImage(arr, str(p), view, mirrored)


def _mirrored(p: Path, view: str | None) -> bool:
    """True when PatientOrientation says the rows run toward the patient's RIGHT on a
    frontal view (the standard display has them toward the patient's left, "L")."""
    if view == "LATERAL":
        return False
    try:
        import pydicom

        ds = pydicom.dcmread(str(p), stop_before_pixels=True)
        orient = ds.get("PatientOrientation")
        return bool(orient) and str(list(orient)[0]).upper().startswith("R")
    except Exception:  # noqa: BLE001 - a header we cannot read says nothing about orientation
        return False
