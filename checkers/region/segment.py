"""Lung segmentation for the zones of the region checker.

Two segmenters, both ``fn(pixels) -> LungMasks | None`` (the ``Segmenter`` hook of
``reportgen.checkers.region.zones``), chosen by name with ``RegionChecker(segmenter=...)``:

- ``"threshold"`` (:func:`threshold_lungs`): classical, numpy + scipy only. The aerated
  lungs are the dark regions INSIDE the body of a frontal film: Otsu threshold within a
  shape prior (the atlas lungs grown by a margin), the air outside the body (darkest
  class reached from the border) removed, morphological clean-up, the largest component
  on each half, holes filled; the heart between the lungs. Returns None when the result
  is not plausible (a lung too small or too large, one lung only, lungs not side by side,
  a mediastinum no brighter than the lungs): the checker then uses the atlas.
- ``"xrv-pspnet"`` (:class:`XrvPSPNetLungs`): torchxrayvision's pretrained ChestX-Det
  PSPNet. torch is imported on the first call, never at import; the weights are never
  downloaded by reportgen (E613 names the file and where to get it).

Sides: pixels carry no orientation, so every segmenter labels the lungs as on a STANDARD
frontal display: ``right`` = the patient's right lung = the lung on the IMAGE LEFT. The
checker swaps them for images flagged mirrored (DICOM PatientOrientation), so that
``LungMasks`` hold the patient's sides in the displayed orientation as
``Atlas.zone_set`` expects.

Parameters (thresholds, plausibility limits) live in ``checkers/data/segment.json``.
"""

from __future__ import annotations

import json
import os
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np

from reportgen.checkers.region.zones import LungMasks
from reportgen.checkers.region.zones import resize_mask  # nearest neighbour, pixel centres
from reportgen.errors import ReportgenError

PARAMS_PATH = Path(__file__).resolve().parents[1] / "data" / "segment.json"


# ---- parameters ----------------------------------------------------------------------------
def load_params(path: str | Path | None = None) -> Mapping[str, Any]:
    """The segmenter parameters (``checkers/data/segment.json`` by default); E612 when invalid."""
    if path is None:
        return _default_params()
    return _read_params(Path(path))


@lru_cache(maxsize=1)
def _default_params() -> Mapping[str, Any]:
    return _read_params(PARAMS_PATH)


def _read_params(p: Path) -> Mapping[str, Any]:
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ReportgenError("E612", f"segmenter parameters {p} not found", fix="pass an existing JSON file or None for the built-in one") from None
    except json.JSONDecodeError as e:
        raise ReportgenError("E612", f"{p}:{e.lineno}: segmenter parameters are not valid JSON ({e.msg})") from None
    for key in ("version", "threshold", "plausible", "heart", "xrv_pspnet"):
        if key not in data:
            raise ReportgenError("E612", f"{p}: segmenter parameters need a {key!r} entry", fix=f"see {PARAMS_PATH}")
    return data


# ---- small image tools (scipy) ------------------------------------------------------------
def _ndimage():
    try:
        from scipy import ndimage
    except ImportError:
        raise ReportgenError("E614", "the threshold lung segmenter needs scipy", fix="pip install scipy") from None
    return ndimage


def _disk(radius: int) -> np.ndarray:
    r = int(radius)
    y, x = np.ogrid[-r:r + 1, -r:r + 1]
    return x * x + y * y <= r * r


def _resize(img: np.ndarray, shape: tuple[int, int], order: int = 1) -> np.ndarray:
    ndimage = _ndimage()
    zoom = (shape[0] / img.shape[0], shape[1] / img.shape[1])
    out = ndimage.zoom(img, zoom, order=order, grid_mode=True, mode="nearest")
    return out[: shape[0], : shape[1]]


def otsu_threshold(values: np.ndarray, bins: int = 256) -> float:
    """Otsu's threshold of values in 0..1 (maximises the between-class variance)."""
    hist, edges = np.histogram(values, bins=bins, range=(0.0, 1.0))
    p = hist.astype(np.float64) / max(hist.sum(), 1)
    centres = (edges[:-1] + edges[1:]) / 2
    w0 = np.cumsum(p)
    mu = np.cumsum(p * centres)
    mu_t = mu[-1]
    w1 = 1.0 - w0
    with np.errstate(divide="ignore", invalid="ignore"):
        between = (mu_t * w0 - mu) ** 2 / (w0 * w1)
    between[~np.isfinite(between)] = -1.0
    return float(edges[int(np.argmax(between)) + 1])


# ---- plausibility -------------------------------------------------------------------------
def implausible(
    right: np.ndarray, left: np.ndarray, params: Mapping[str, Any] | None = None, image: np.ndarray | None = None,
) -> str | None:
    """Why two lung masks (standard display: ``right`` on the image left) are not a
    plausible frontal segmentation, or None when they are. With ``image`` (grey levels
    stretched to 0..1, same shape) the mediastinum between the lungs must also be brighter
    than the lungs (a negative film is not)."""
    lim = (params or load_params())["plausible"]
    h, w = right.shape
    area = h * w
    stats = {}
    for side, m in (("right", right), ("left", left)):
        n = int(m.sum())
        if n == 0:
            return f"no {side} lung found"
        frac = n / area
        lo, hi = lim["lung_area"]
        if not lo <= frac <= hi:
            return f"{side} lung covers {frac:.1%} of the image (plausible {lo:.0%}-{hi:.0%})"
        ys, xs = np.nonzero(m)
        cx, cy = (xs.mean() + 0.5) / w, (ys.mean() + 0.5) / h
        lo, hi = lim[f"{side}_centre_x"]
        if not lo <= cx <= hi:
            return f"{side} lung centred at x={cx:.2f} (plausible {lo}-{hi}): lungs not side by side"
        lo, hi = lim["centre_y"]
        if not lo <= cy <= hi:
            return f"{side} lung centred at y={cy:.2f} (plausible {lo}-{hi})"
        top, bottom = ys.min(), ys.max() + 1
        if (bottom - top) / h < lim["min_height"]:
            return f"{side} lung only {(bottom - top) / h:.0%} of the image high"
        stats[side] = (n, top, bottom)
    (nr, tr, br), (nl, tl, bl) = stats["right"], stats["left"]
    overlap = (min(br, bl) - max(tr, tl)) / max(min(br - tr, bl - tl), 1)
    if overlap < lim["min_vertical_overlap"]:
        return f"the lungs overlap over {overlap:.0%} of their height (plausible >= {lim['min_vertical_overlap']:.0%})"
    ratio = max(nr, nl) / min(nr, nl)
    if ratio > lim["max_area_ratio"]:
        return f"one lung is {ratio:.1f}x the other (plausible <= {lim['max_area_ratio']})"
    if image is not None:
        between = _between(right, left)
        if between.any():
            contrast = float(image[between].mean() - image[right | left].mean())
            if contrast < lim["min_mediastinum_contrast"]:
                return (f"the mediastinum is only {contrast:+.2f} brighter than the lungs (plausible >= "
                        f"{lim['min_mediastinum_contrast']}): an inverted (negative) film or not lungs")
    return None


def _between(right: np.ndarray, left: np.ndarray, rows: np.ndarray | None = None) -> np.ndarray:
    """Per row where both lungs are present (or ``rows``): the columns between their medial edges."""
    out = np.zeros(right.shape, dtype=bool)
    if rows is None:
        rows = np.nonzero(right.any(axis=1) & left.any(axis=1))[0]
    for r in rows:
        if not (right[r].any() and left[r].any()):
            continue
        c0 = np.nonzero(right[r])[0].max() + 1
        c1 = np.nonzero(left[r])[0].min()
        if c1 > c0:
            out[r, c0:c1] = True
    return out


def heart_from_lungs(right: np.ndarray, left: np.ndarray, params: Mapping[str, Any] | None = None) -> np.ndarray | None:
    """The cardiac silhouette between two lung masks (standard display), or None.

    Per row from ``heart.top`` of the lungs' common height down to the last row where
    both lungs are present: the columns between the right lung's medial edge and the
    left lung's medial edge, except rows wider than ``heart.max_width`` of the image.
    """
    hp = (params or load_params())["heart"]
    rr = np.nonzero(right.any(axis=1))[0]
    lr = np.nonzero(left.any(axis=1))[0]
    if not len(rr) or not len(lr):
        return None
    both = np.intersect1d(rr, lr)
    if not len(both):
        return None
    top = int(round(both[0] + hp["top"] * (both[-1] + 1 - both[0])))
    heart = _between(right, left, both[both >= top])
    # below the cardiophrenic angles only the lateral recesses remain and the gap spans the
    # abdomen: rows wider than max_width are not heart
    heart[heart.sum(axis=1) > hp["max_width"] * heart.shape[1]] = False
    lo, hi = hp["area"]
    frac = heart.mean()
    return heart if lo <= frac <= hi else None


# ---- the threshold segmenter --------------------------------------------------------------
@lru_cache(maxsize=4)
def lung_prior(n: int, margin: float) -> np.ndarray:
    """Where a lung may lie on an (n, n) grid: the built-in atlas lungs (checkers/data/zones.json)
    grown by ``margin`` (normalised units) - a shape prior that keeps the shoulders, neck
    and abdomen out of the threshold. Read-only (cached)."""
    ndimage = _ndimage()
    from reportgen.checkers.region.zones import Atlas, rasterise_polygon

    st = Atlas.load().data["frontal"]["structures"]
    lungs = rasterise_polygon(st["lung_right"]["polygon"], (n, n)) | rasterise_polygon(st["lung_left"]["polygon"], (n, n))
    r = max(1, int(round(margin * n)))
    prior = ndimage.binary_dilation(lungs, _disk(r))
    prior.flags.writeable = False  # cached: shared by every call
    return prior


def threshold_lungs_detail(pixels: np.ndarray, params: Mapping[str, Any] | None = None) -> tuple[LungMasks | None, str]:
    """(masks or None, what happened): :func:`threshold_lungs` with the reason it gave up."""
    ndimage = _ndimage()
    params = params or load_params()
    tp = params["threshold"]
    img = np.asarray(pixels, dtype=np.float32)
    if img.ndim != 2 or min(img.shape) < 16:
        return None, f"image of shape {img.shape} is not a 2-D radiograph"
    n = int(tp["size"])
    small = _resize(img, (n, n))
    lo, hi = np.percentile(small, tp["percentiles"])
    if hi - lo < 1e-3:
        return None, "blank image (no contrast)"
    small = np.clip((small - lo) / (hi - lo), 0.0, 1.0)
    stretched = small
    small = ndimage.gaussian_filter(small, float(tp["smooth_sigma"]))
    prior = lung_prior(n, float(tp["prior_margin"]))
    t = otsu_threshold(small[prior]) * float(tp["otsu_scale"])
    dark = small < t
    # air outside the body: the darkest class (Otsu within the dark pixels) reached from the border
    t_air = otsu_threshold(small[dark]) if dark.any() else 0.0
    air, _ = ndimage.label(small < t_air)
    m = int(tp["border_margin"])
    edge = np.zeros_like(dark)
    edge[:m, :] = edge[-m:, :] = edge[:, :m] = edge[:, -m:] = True
    outside = np.isin(air, np.unique(air[edge & (air > 0)]))
    outside = ndimage.binary_dilation(outside, _disk(tp["open_radius"]))
    dark &= prior & ~outside
    dark = ndimage.binary_opening(dark, _disk(tp["open_radius"]))
    labels, count = ndimage.label(dark)
    if count == 0:
        return None, "no dark region inside the body"
    idx = np.arange(1, count + 1)
    sizes = ndimage.sum_labels(dark, labels, idx)
    cx = ndimage.mean(np.broadcast_to(np.arange(n)[None, :], dark.shape), labels, idx)
    best = {"right": (0, 0.0), "left": (0, 0.0)}  # standard display: patient right on the image left
    for lab, size, c in zip(idx, sizes, cx):
        side = "right" if (c + 0.5) / n < 0.5 else "left"
        if size > best[side][1]:
            best[side] = (int(lab), float(size))
    lungs = {}
    for side, (lab, _) in best.items():
        if lab == 0:
            return None, f"no {side} lung found (no dark region inside the body on that half)"
        mk = labels == lab
        pad = int(tp["close_radius"])
        mk = np.pad(mk, pad)
        mk = ndimage.binary_closing(mk, _disk(tp["close_radius"]))[pad:-pad, pad:-pad]
        lungs[side] = ndimage.binary_fill_holes(mk)
    why = implausible(lungs["right"], lungs["left"], params, image=stretched)
    if why is not None:
        return None, why
    heart = heart_from_lungs(lungs["right"], lungs["left"], params)
    shape = img.shape
    out = LungMasks(resize_mask(lungs["right"], shape), resize_mask(lungs["left"], shape),
                    resize_mask(heart, shape) if heart is not None else None)
    return out, "ok"


def threshold_lungs(pixels: np.ndarray, params: Mapping[str, Any] | None = None) -> LungMasks | None:
    """Lung fields of a frontal radiograph (H, W grey in 0..1) by thresholding, at the
    image's resolution; None when no plausible pair of lungs is found."""
    return threshold_lungs_detail(pixels, params)[0]


threshold_lungs.segmenter_name = "threshold"  # type: ignore[attr-defined]


# ---- torchxrayvision PSPNet ---------------------------------------------------------------
class XrvPSPNetLungs:
    """Lungs and heart from torchxrayvision's ChestX-Det PSPNet (``baseline_models.chestx_det``).

    ``weights``: the ``pspnet_chestxray_best_model_4.pth`` file (default: torchxrayvision's
    cache path from ``segment.json``). Nothing is loaded at construction; the first call
    imports torch, builds the network and loads the weights (E613 when the file is missing,
    E614 when torch/torchxrayvision are not installed). The image is resized WHOLE to the
    network's 512x512 input and the masks back to the image.

    Sides: the two lung channels are told apart by the network, but which one is the
    patient's right is decided by position on the displayed image (the one on the image left
    is the patient's right on a standard display), like the threshold segmenter; the
    checker swaps them for mirrored images. So the mapping does not depend on whether the
    channel names ('Right Lung', 'Left Lung') mean the patient's sides (the radiological
    convention, presumably ChestX-Det's) or the image's: that could not be checked here
    without the weights.
    """

    segmenter_name = "xrv-pspnet"
    LUNG_CHANNELS = ("Right Lung", "Left Lung")
    HEART_CHANNEL = "Heart"

    def __init__(self, weights: str | Path | None = None, *, device: str = "cpu", params: Mapping[str, Any] | None = None):
        self.params = params or load_params()
        xp = self.params["xrv_pspnet"]
        self.weights = Path(os.path.expanduser(str(weights if weights is not None else xp["weights_path"])))
        self.device = device
        self._net = None
        self._targets: list[str] | None = None

    def _missing_weights(self) -> ReportgenError:
        url = self.params["xrv_pspnet"]["weights_url"]
        return ReportgenError(
            "E613", f"xrv-pspnet lung segmenter: weights file {self.weights} not found",
            fix=f"download {url} on a machine with network access and copy it to {self.weights} "
                f"(or name the file: segmenter 'xrv-pspnet:PATH'); reportgen never downloads it",
        )

    def load(self) -> Any:
        """Build the network and load the weights (once)."""
        if self._net is not None:
            return self._net
        if not self.weights.is_file():
            raise self._missing_weights()
        try:
            import torch
            from torchxrayvision.baseline_models.chestx_det import PSPNet
            from torchxrayvision.baseline_models.chestx_det.ptsemseg.pspnet import pspnet
        except ImportError as e:
            raise ReportgenError("E614", f"xrv-pspnet lung segmenter needs torch and torchxrayvision ({e})",
                                 fix="pip install torchxrayvision") from None
        net = pspnet(len(PSPNet.targets))
        try:
            state = torch.load(str(self.weights), map_location="cpu", weights_only=True)
            if state and all(k.startswith("module.") for k in state):  # saved from torch's DataParallel
                state = {k[len("module."):]: v for k, v in state.items()}
            net.load_state_dict(state)
        except Exception as e:  # noqa: BLE001 - any failure to read the file is the user's file
            raise ReportgenError("E613", f"xrv-pspnet weights {self.weights} could not be loaded ({type(e).__name__}: {e})",
                                 fix=f"replace the file with {self.params['xrv_pspnet']['weights_url']}") from None
        net.eval().to(self.device)
        self._net = net
        self._targets = list(PSPNet.targets)
        return net

    def probabilities(self, pixels: np.ndarray) -> dict[str, np.ndarray]:
        """Per-channel sigmoid probabilities at the network's input size (square)."""
        import torch

        net = self.load()
        size = int(self.params["xrv_pspnet"]["input_size"])
        x = torch.as_tensor(np.asarray(pixels, dtype=np.float32))[None, None]
        x = torch.nn.functional.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
        # torchxrayvision's PSPNet.forward: grey 0..1 -> 3 channels, ImageNet normalisation
        x = x.clamp(0, 1).repeat(1, 3, 1, 1)
        mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
        std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
        x = ((x - mean) / std).to(self.device)
        with torch.no_grad():
            y = torch.sigmoid(net(x))[0].float().cpu().numpy()
        return {name: y[i] for i, name in enumerate(self._targets or [])}

    def __call__(self, pixels: np.ndarray) -> LungMasks | None:
        img = np.asarray(pixels, dtype=np.float32)
        probs = self.probabilities(img)
        thr = float(self.params["xrv_pspnet"]["threshold"])
        a, b = (probs[c] >= thr for c in self.LUNG_CHANNELS)
        if not a.any() or not b.any():
            return None
        # the lung whose centroid lies on the image left is the patient's right (standard display)
        if np.nonzero(a)[1].mean() > np.nonzero(b)[1].mean():
            a, b = b, a
        if implausible(a, b, self.params) is not None:
            return None
        heart = probs[self.HEART_CHANNEL] >= thr
        shape = img.shape
        return LungMasks(resize_mask(a, shape), resize_mask(b, shape), resize_mask(heart, shape) if heart.any() else None)


# ---- selection by name ----------------------------------------------------------------------
SEGMENTERS: dict[str, Callable[[], Callable[[np.ndarray], LungMasks | None]]] = {
    "threshold": lambda: threshold_lungs,
    "xrv-pspnet": XrvPSPNetLungs,
}


def resolve_segmenter(spec: Any, *, device: str = "cpu") -> Callable[[np.ndarray], LungMasks | None] | None:
    """None (the atlas), a segmenter name (``SEGMENTERS``; ``"xrv-pspnet:PATH"`` names the
    weights file) or a callable -> the callable. Unknown names: E612 listing the valid ones."""
    if spec is None or callable(spec):
        return spec
    name = str(spec).strip()
    if name.lower() in ("", "none", "atlas"):
        return None
    key, _, arg = name.partition(":")
    key = key.lower()
    if key == "xrv-pspnet":
        return XrvPSPNetLungs(weights=arg or None, device=device)
    if key not in SEGMENTERS or arg:
        raise ReportgenError("E612", f"unknown lung segmenter {spec!r}",
                             fix=f"use one of {', '.join(sorted(SEGMENTERS))} (xrv-pspnet:PATH for a weights file), "
                                 "'none' (the atlas) or a callable pixels -> LungMasks")
    return SEGMENTERS[key]()


def segmenter_name(fn: Any) -> str | None:
    """A short name of a segmenter for verdict metadata."""
    if fn is None:
        return None
    return getattr(fn, "segmenter_name", None) or getattr(fn, "__name__", None) or type(fn).__name__
