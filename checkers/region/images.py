"""Reading radiographs for the region checker: PNG/JPEG via Pillow, DICOM via pydicom.

Returns grey-scale float32 pixels in 0..1 (higher = brighter as displayed; MONOCHROME1
is inverted) plus what the file says about the view: DICOM ``ViewPosition`` and whether
``PatientOrientation`` says the rows run toward the patient's right (a mirrored image).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from checkers.region.zones import normalise_view
from reportgen.errors import ReportgenError

DICOM_SUFFIXES = (".dcm", ".dicom", ".dic")


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


def _is_dicom(p: Path) -> bool:
    if p.suffix.lower() in DICOM_SUFFIXES:
        return True
    try:
        with p.open("rb") as f:
            head = f.read(132)
        return head[128:132] == b"DICM"
    except OSError:
        return False


def load_radiograph(path: str | Path) -> RadiographImage:
    """Read one radiograph. Errors (E603) name the file and the problem."""
    p = Path(path)
    if not p.is_file():
        raise ReportgenError("E603", f"image {p} not found", fix="check the study's image paths (relative paths are resolved against the manifest's folder)")
    if _is_dicom(p):
        return _load_dicom(p)
    try:
        from PIL import Image

        with Image.open(p) as im:
            im.load()
            if im.mode in ("I;16", "I;16B", "I;16L", "I"):
                arr = np.asarray(im, dtype=np.float32)
            else:
                arr = np.asarray(im.convert("L"), dtype=np.float32)
    except ImportError:
        raise ReportgenError("E611", "Pillow is needed to read PNG/JPEG images", fix="pip install 'reportgen[clip]'") from None
    except Exception as e:  # noqa: BLE001 - any decoder failure is a bad file
        raise ReportgenError("E603", f"image {p} could not be read ({type(e).__name__}: {e})", fix="use PNG, JPEG or DICOM") from None
    return RadiographImage(_to_unit(arr), str(p))


def _to_unit(arr: np.ndarray) -> np.ndarray:
    arr = np.asarray(arr, dtype=np.float32)
    if arr.ndim == 3:
        arr = arr.mean(axis=-1)
    if arr.ndim != 2 or arr.size == 0:
        raise ReportgenError("E603", f"image has shape {arr.shape}, expected a 2-D grey-scale image")
    lo, hi = np.percentile(arr, 0.5), np.percentile(arr, 99.5)
    if hi <= lo:
        lo, hi = float(arr.min()), float(arr.max())
    if hi <= lo:
        return np.zeros_like(arr, dtype=np.float32)
    return np.clip((arr - lo) / (hi - lo), 0.0, 1.0).astype(np.float32)


def _load_dicom(p: Path) -> RadiographImage:
    try:
        import pydicom
        from pydicom.pixels import apply_modality_lut, apply_voi_lut
    except ImportError:
        raise ReportgenError("E611", "pydicom is needed to read DICOM images", fix="pip install 'reportgen[clip]'") from None
    try:
        ds = pydicom.dcmread(str(p))
        arr = ds.pixel_array.astype(np.float32)
        try:
            arr = apply_modality_lut(arr, ds)
            arr = apply_voi_lut(arr, ds)
        except Exception:  # noqa: BLE001 - LUTs are optional refinements
            pass
    except Exception as e:  # noqa: BLE001
        raise ReportgenError("E603", f"DICOM {p} could not be read ({type(e).__name__}: {e})") from None
    if arr.ndim == 3 and arr.shape[0] > 1 and arr.shape[-1] not in (3, 4):
        arr = arr[0]  # multi-frame: the first frame
    unit = _to_unit(arr)
    if str(getattr(ds, "PhotometricInterpretation", "")).upper() == "MONOCHROME1":
        unit = 1.0 - unit
    view = normalise_view(getattr(ds, "ViewPosition", None))
    mirrored = False
    orient = getattr(ds, "PatientOrientation", None)
    if orient and view != "LATERAL":
        try:
            row_dir = str(list(orient)[0]).upper()
        except Exception:  # noqa: BLE001
            row_dir = ""
        # Standard frontal display: columns increase toward the patient's LEFT ("L").
        mirrored = row_dir.startswith("R")
    return RadiographImage(unit, str(p), view, mirrored)
