"""Load radiographs as PIL images: PNG, JPEG and DICOM.

Every backend sees the same pixels: the in-process ``hf`` backend and the ``vllm`` backend
(which sends the image as a PNG data URL) both call :func:`load_image`.

DICOM follows the standard's display pipeline, in floating point until the very end so
12-16-bit precision is not lost before the final 8-bit conversion:

1. stored values -> Modality LUT (a Modality LUT Sequence, or Rescale Slope/Intercept);
2. VOI: the first Window Center/Width (LINEAR, LINEAR_EXACT or SIGMOID per VOI LUT
   Function), else a VOI LUT Sequence, else the data range (min..max) of the image;
3. MONOCHROME1 (white = low values) is inverted so bone is bright in every output;
4. one rounding to 8 bits. Colour DICOMs (RGB, YBR) come back as RGB.

Only the first frame of a multi-frame DICOM is used (and only it is decoded). pydicom and
Pillow are imported lazily (the ``draft`` extra).

Hostile files get a clear per-image error, never a crash or an unbounded allocation: the
size in the header is checked against ``MAX_PIXELS`` before any pixel is decoded (a 30,000
x 30,000 PNG of zeros is 900 MB decoded from under 1 MB: E142); truncated files and DICOMs
without pixel data are E501/E502; a photometric interpretation other than MONOCHROME1/2,
PALETTE COLOR, RGB or YBR_* is E143. Presentation LUT Shape INVERSE on a MONOCHROME2 image
inverts it (MONOCHROME1 is inverted once, whatever its shape says); pixels equal to the
Pixel Padding Value (or inside the Pixel Padding Range Limit) are left out of the data-range
window and come out black.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reportgen.errors import InputError, ReportgenError

DICOM_SUFFIXES = (".dcm", ".dicom", ".dic")

# The most pixels (width x height x samples) one image may have: 64 M (an 8,000 x 8,000
# grey radiograph; chest films are 2-4 k a side). $REPORTGEN_MAX_IMAGE_PIXELS overrides it.
MAX_PIXELS = 64_000_000
GREY = ("MONOCHROME1", "MONOCHROME2")


def max_pixels() -> int:
    try:
        return int(os.environ.get("REPORTGEN_MAX_IMAGE_PIXELS", MAX_PIXELS))
    except ValueError:
        return MAX_PIXELS


def _check_size(p: Path, width: int, height: int, samples: int = 1) -> None:
    limit = max_pixels()
    if width <= 0 or height <= 0:
        raise InputError("E142", f"image {p.name!r} declares {width} x {height} pixels", fix="check the file")
    if width * height * samples > limit:
        raise InputError(
            "E142", f"image {p.name!r} declares {width:,} x {height:,} pixels, over the limit of {limit:,} "
            "(a decompression bomb or not a radiograph)",
            fix="downscale it, or raise $REPORTGEN_MAX_IMAGE_PIXELS if it is a real image",
        )

# ViewPosition (0018,5101) values and what we call them. LL/RL are left/right lateral.
VIEW_NAMES = {
    "PA": "PA", "AP": "AP", "LL": "LATERAL", "RL": "LATERAL", "LAT": "LATERAL", "LATERAL": "LATERAL",
    "LLD": "DECUBITUS", "RLD": "DECUBITUS", "LAO": "OBLIQUE", "RAO": "OBLIQUE", "LPO": "OBLIQUE", "RPO": "OBLIQUE",
}


# ---------------------------------------------------------------------- image policy
# Defaults sized for chest radiographs: a 3056x2544 film becomes about 560x470 (~262k
# pixels, ~340 Qwen2-VL tokens) instead of ~9,900 tokens at the processor's own limit;
# two images (frontal, then lateral) per study, the limit `reportgen serve` passes to vLLM.
DEFAULT_MAX_PIXELS = 512 * 512
DEFAULT_MIN_PIXELS = 0
DEFAULT_MAX_IMAGES = 2
FRONTAL_VIEWS = frozenset({"PA", "AP", "FRONTAL", "AP AXIAL", "PA LLD", "AP LLD", "AP RLD", "PA RLD"})
LATERAL_VIEWS = frozenset({"LATERAL", "LAT", "LL", "RL", "LLD-LAT", "RLD-LAT", "LEFT LATERAL", "RIGHT LATERAL"})


@dataclass(frozen=True)
class ImagePolicy:
    """How many images of a study a prompt gets and at what size, the same in ``train``,
    the ``hf`` and ``vllm`` backends and ``serve``.

    ``max_images``: images per prompt, chosen frontal first, then lateral (see
    :meth:`order`); None: all.
    ``max_pixels`` / ``min_pixels``: an image with more (fewer) pixels is resized, aspect
    kept, to fit (0/None: no bound). Resizing happens before the processor and before the
    vLLM backend's base64 encoding, so both see the same pixels.
    """

    max_pixels: int | None = DEFAULT_MAX_PIXELS
    min_pixels: int | None = DEFAULT_MIN_PIXELS
    max_images: int | None = DEFAULT_MAX_IMAGES

    def __post_init__(self) -> None:
        for name in ("max_pixels", "min_pixels", "max_images"):
            v = getattr(self, name)
            if v is not None and (not isinstance(v, int) or isinstance(v, bool) or v < 0):
                raise ReportgenError("E580", f"image policy: {name} must be an integer >= 0 or None, got {v!r}",
                                     fix=f"e.g. --{name.replace('_', '-')} " + ("2" if name == "max_images" else "262144"))
        if self.max_images == 0:
            raise ReportgenError("E580", "image policy: max_images 0 leaves no image", fix="use 1 or more (2: frontal + lateral)")
        if self.max_pixels and self.min_pixels and self.min_pixels > self.max_pixels:
            raise ReportgenError("E580", f"image policy: min_pixels {self.min_pixels} is above max_pixels {self.max_pixels}",
                                 fix="lower --min-pixels or raise --max-pixels")

    @classmethod
    def of(cls, max_pixels: Any = DEFAULT_MAX_PIXELS, min_pixels: Any = DEFAULT_MIN_PIXELS,
           max_images: Any = DEFAULT_MAX_IMAGES) -> "ImagePolicy":
        """A policy from CLI/spec values (0 or None for max_pixels/max_images: no limit)."""
        return cls(max_pixels=max_pixels or None, min_pixels=min_pixels or 0, max_images=max_images or None)

    def to_dict(self) -> dict[str, Any]:
        return {"max_pixels": self.max_pixels, "min_pixels": self.min_pixels, "max_images": self.max_images}

    def size_for(self, width: int, height: int) -> tuple[int, int]:
        """The (width, height) an image of this size is resized to (the same when it fits)."""
        import math

        area = width * height
        scale = 1.0
        if self.max_pixels and area > self.max_pixels:
            scale = math.sqrt(self.max_pixels / area)
        elif self.min_pixels and area < self.min_pixels:
            scale = math.sqrt(self.min_pixels / area)
        if scale == 1.0:
            return width, height
        rnd = math.ceil if scale > 1 else math.floor  # never short of min_pixels, never over max_pixels
        return max(1, int(rnd(width * scale))), max(1, int(rnd(height * scale)))

    def fit(self, image):
        """``image`` (PIL) resized to the pixel bounds, aspect kept (Lanczos); as is when it fits."""
        size = self.size_for(*image.size)
        if size == image.size:
            return image
        from PIL import Image

        return image.resize(size, Image.Resampling.LANCZOS)

    def order(self, views) -> list[int]:
        """Indices of the images to keep, in prompt order: the first frontal view, the
        first lateral, then images whose view is not given, further frontals, further
        laterals, other views (decubitus, oblique, ...); input order within each group."""
        seen: set[int] = set()

        def rank(view) -> int:
            v = str(view or "").strip().upper()
            group = 0 if v in FRONTAL_VIEWS else 1 if v in LATERAL_VIEWS else 2 if not v else 5
            if group in (0, 1):
                if group in seen:
                    return group + 3
                seen.add(group)
            return group

        ranks = [rank(v) for v in views]
        idx = sorted(range(len(views)), key=lambda i: (ranks[i], i))
        return idx[: self.max_images] if self.max_images else idx


DEFAULT_POLICY = ImagePolicy()


def is_dicom(path: str | os.PathLike[str]) -> bool:
    """True for a DICOM file: by suffix, else by the ``DICM`` magic at byte 128."""
    p = Path(path)
    if p.suffix.lower() in DICOM_SUFFIXES:
        return True
    try:
        with p.open("rb") as fh:
            head = fh.read(132)
    except OSError:
        return False
    return len(head) == 132 and head[128:132] == b"DICM"


def load_image(path: str | os.PathLike[str]):
    """Read ``path`` (PNG, JPEG, other Pillow formats, or DICOM) as an 8-bit PIL image.

    Grey-scale images come back in mode ``L``, colour ones in ``RGB``. Raises
    ``InputError`` E500 (missing file), E501 (unreadable) or E502 (unsupported pixels).
    """
    p = Path(path)
    if not p.is_file():
        raise InputError("E500", f"image {str(p)!r} does not exist", fix="check the study's image paths")
    if is_dicom(p):
        return _load_dicom(p)
    return _load_raster(p)


def _load_raster(p: Path):
    from PIL import Image, ImageOps, UnidentifiedImageError

    import warnings

    try:
        with warnings.catch_warnings():  # our own limit (MAX_PIXELS) is checked below, before decoding
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            im = Image.open(p)
        with im:
            _check_size(p, im.size[0], im.size[1], max(1, len(im.getbands())))  # before decoding anything
            im.load()
            im = ImageOps.exif_transpose(im) or im
    except ReportgenError:
        raise
    except Image.DecompressionBombError as e:
        raise InputError("E142", f"image {p.name!r}: {e}", fix="downscale it") from e
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, EOFError) as e:
        raise InputError("E501", f"cannot read image {str(p)!r}: {e}", fix="use PNG, JPEG or DICOM") from e
    if im.mode in ("L", "RGB"):
        return im
    if im.mode in ("I", "I;16", "I;16B", "I;16L", "F"):
        import numpy as np

        return _to_uint8_image(_window_range(np.asarray(im, dtype=np.float64)))
    if im.mode in ("1", "LA", "La"):
        return im.convert("L")
    if im.mode == "P":
        return im.convert("RGBA").convert("RGB") if "transparency" in im.info else im.convert("RGB")
    try:
        return im.convert("RGB")
    except (ValueError, OSError) as e:  # CMYK, YCbCr, ... convert; anything else is refused
        raise InputError("E502", f"image {str(p)!r} has unsupported mode {im.mode}", fix="save it as 8-bit PNG") from e


def _window_range(x, ignore=None):
    """Scale to [0, 1] by the data range (a constant image becomes all zeros); pixels where
    ``ignore`` is True (padding) do not count toward the range."""
    import numpy as np

    values = x[~ignore] if ignore is not None and (~ignore).any() else x
    lo, hi = float(np.min(values)), float(np.max(values))
    if hi <= lo:
        return np.zeros_like(x, dtype=np.float64)
    return np.clip((x - lo) / (hi - lo), 0.0, 1.0)


def _to_uint8_image(unit, mode: str | None = None):
    """[0, 1] floats -> an 8-bit PIL image (the one rounding of the pipeline)."""
    import numpy as np
    from PIL import Image

    arr = np.clip(np.rint(np.asarray(unit, dtype=np.float64) * 255.0), 0, 255).astype(np.uint8)
    return Image.fromarray(arr, mode=mode) if mode else Image.fromarray(arr)


def _first_number(value: Any) -> float | None:
    """Window Center/Width can be multi-valued: the first value is the default window."""
    if value is None:
        return None
    try:
        return float(value[0]) if not isinstance(value, (str, bytes)) and hasattr(value, "__len__") else float(value)
    except (TypeError, ValueError, IndexError):
        return None


def _read_dicom(p: Path, stop_before_pixels: bool = False):
    try:
        import pydicom
    except ImportError as e:  # pragma: no cover - pydicom is in the draft extra
        raise ReportgenError("E503", "reading DICOM needs pydicom", fix="pip install 'reportgen-cxr[draft]'") from e
    try:
        return pydicom.dcmread(str(p), stop_before_pixels=stop_before_pixels)
    except Exception as e:  # pydicom raises many types for bad files
        raise InputError("E501", f"cannot read DICOM {str(p)!r}: {e}", fix="check that the file is a valid DICOM") from e


def _load_dicom(p: Path):
    import numpy as np

    ds = _read_dicom(p)
    if "PixelData" not in ds and "FloatPixelData" not in ds and "DoubleFloatPixelData" not in ds:
        raise InputError("E502", f"DICOM {p.name!r} has no pixel data (a header-only or structured-report file?)",
                         fix="give the image's DICOM, not a header or report object")
    try:
        rows, cols = int(ds.Rows), int(ds.Columns)
        samples = int(getattr(ds, "SamplesPerPixel", 1) or 1)
    except (AttributeError, TypeError, ValueError) as e:
        raise InputError("E502", f"DICOM {p.name!r} has no valid Rows/Columns ({e})", fix="check the file") from e
    _check_size(p, cols, rows, samples)
    photometric = str(ds.get("PhotometricInterpretation", "") or "").strip().upper()
    if photometric not in (*GREY, "PALETTE COLOR", "RGB") and not photometric.startswith("YBR"):
        raise InputError("E143", f"DICOM {p.name!r} has photometric interpretation {photometric or 'none'!r}",
                         fix="convert it to MONOCHROME2 (or RGB) grey-scale pixels")
    frames = int(getattr(ds, "NumberOfFrames", 1) or 1)
    try:
        if frames > 1:
            from pydicom.pixels import pixel_array

            arr = pixel_array(ds, index=0)  # decode the first frame only
        else:
            arr = ds.pixel_array
    except Exception as e:  # missing pixel data or an undecodable transfer syntax
        raise InputError(
            "E502", f"cannot decode the pixels of DICOM {str(p)!r}: {e}",
            fix="install the decoder pydicom names (e.g. pylibjpeg, gdcm) or convert the file",
        ) from e
    if frames > 1 and arr.ndim == (4 if samples == 3 else 3):
        arr = arr[0]
    if photometric == "PALETTE COLOR":
        from pydicom.pixels import apply_color_lut

        try:
            rgb = apply_color_lut(arr, ds)
        except Exception as e:  # noqa: BLE001 - a missing or broken palette
            raise InputError("E143", f"DICOM {p.name!r}: PALETTE COLOR without a usable palette ({e})",
                             fix="convert it to MONOCHROME2 grey-scale pixels") from e
        bits = int(ds.get("RedPaletteColorLookupTableDescriptor", [0, 0, 16])[2] or 16)
        return _to_uint8_image(np.asarray(rgb, dtype=np.float64) / float((1 << bits) - 1), "RGB")
    if samples == 3:
        # pydicom returns RGB (YBR converted); scale higher bit depths to 8 bits once.
        bits = int(getattr(ds, "BitsStored", 8) or 8)
        unit = arr.astype(np.float64) / float((1 << bits) - 1)
        return _to_uint8_image(unit, "RGB")
    if arr.ndim != 2:
        raise InputError("E502", f"DICOM {str(p)!r} has pixel shape {arr.shape}", fix="use a 2-D grey-scale or RGB image")
    unit = dicom_to_unit(ds, arr)
    return _to_uint8_image(unit, "L")


def padding_mask(ds, arr):
    """True where a stored value is padding (Pixel Padding Value, up to the Pixel Padding
    Range Limit when given), None when the file declares no padding."""
    import numpy as np

    ppv = _first_number(ds.get("PixelPaddingValue"))
    if ppv is None:
        return None
    limit = _first_number(ds.get("PixelPaddingRangeLimit"))
    a = np.asarray(arr)
    if limit is None:
        mask = a == ppv
    else:
        lo, hi = min(ppv, limit), max(ppv, limit)
        mask = (a >= lo) & (a <= hi)
    return mask if mask.any() else None


def dicom_to_unit(ds, arr):
    """Modality LUT, VOI and MONOCHROME1 inversion of a 2-D frame -> floats in [0, 1]."""
    import numpy as np
    from pydicom.pixels import apply_modality_lut, apply_voi_lut

    pad = padding_mask(ds, arr)
    if "ModalityLUTSequence" in ds:
        x = np.asarray(apply_modality_lut(arr, ds), dtype=np.float64)
    else:
        slope = _first_number(ds.get("RescaleSlope")) or 1.0
        intercept = _first_number(ds.get("RescaleIntercept")) or 0.0
        x = arr.astype(np.float64) * slope + intercept
    center = _first_number(ds.get("WindowCenter"))
    width = _first_number(ds.get("WindowWidth"))
    if center is not None and width is not None and width > 0:
        func = str(ds.get("VOILUTFunction", "LINEAR") or "LINEAR").upper()
        unit = window(x, center, width, func)
    elif "VOILUTSequence" in ds:
        unit = _window_range(np.asarray(apply_voi_lut(x, ds, prefer_lut=True), dtype=np.float64), pad)
    else:
        unit = _window_range(x, pad)
    photometric = str(ds.get("PhotometricInterpretation", "")).strip().upper()
    shape = str(ds.get("PresentationLUTShape", "") or "").strip().upper()
    if photometric == "MONOCHROME1" or (photometric == "MONOCHROME2" and shape == "INVERSE"):
        unit = 1.0 - unit
    if pad is not None:
        unit = np.where(pad, 0.0, unit)  # padding (outside the body) is black
    return unit


def window(x, center: float, width: float, function: str = "LINEAR"):
    """The DICOM VOI functions (PS3.3 C.11.2.1.2) scaled to [0, 1] output."""
    import numpy as np

    x = np.asarray(x, dtype=np.float64)
    if function == "SIGMOID":
        return 1.0 / (1.0 + np.exp(-4.0 * (x - center) / width))
    if function == "LINEAR_EXACT":
        return np.clip((x - (center - width / 2.0)) / width, 0.0, 1.0)
    if width <= 1:  # LINEAR with width 1 is a threshold
        return (x > center - 0.5).astype(np.float64)
    return np.clip((x - (center - 0.5)) / (width - 1.0) + 0.5, 0.0, 1.0)


def view_from_dicom(path: str | os.PathLike[str]) -> str | None:
    """The view of a DICOM radiograph: "PA", "AP", "LATERAL", ... or None when unknown.

    Reads only the header: ViewPosition (0018,5101), else the View Code Sequence's meaning.
    """
    ds = _read_dicom(Path(path), stop_before_pixels=True)
    raw = str(ds.get("ViewPosition", "") or "").strip().upper()
    if raw:
        return VIEW_NAMES.get(raw, raw)
    seq = ds.get("ViewCodeSequence")
    if seq:
        meaning = str(getattr(seq[0], "CodeMeaning", "") or "").lower()
        if "lateral" in meaning:
            return "LATERAL"
        if "postero-anterior" in meaning or "posteroanterior" in meaning:
            return "PA"
        if "antero-posterior" in meaning or "anteroposterior" in meaning:
            return "AP"
    return None
