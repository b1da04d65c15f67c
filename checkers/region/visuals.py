"""PNG figures of region evidence: the radiograph, each claim's similarity map as an
overlay, the claimed zone outlined (solid) and the best-matching zone (dashed).

matplotlib with the Agg canvas (no pyplot state, no display needed). Returns PNG bytes,
so the HTML report can inline them (``data:image/png;base64,...``) and notebooks can show
them with ``IPython.display.Image(data=...)``.
"""

from __future__ import annotations

import base64
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np


@dataclass(frozen=True)
class Panel:
    """One overlay: a map on the normalised grid, the claimed zone mask, the best zone
    mask (both optional), and a caption."""

    sim: np.ndarray
    zone: np.ndarray | None
    best: np.ndarray | None
    caption: str
    zone_label: str | None = None  # written on the image at the claimed zone
    best_label: str | None = None  # written on the image at the best-matching zone


def render_panels(
    pixels: np.ndarray, panels: Sequence[Panel], *, out: str | Path | None = None,
    title: str | None = None, max_cols: int = 3, dpi: int = 80, right_marker: str | None = "left",
) -> bytes:
    """The image alone (no panels) or one subplot per panel; PNG bytes. ``right_marker``:
    where the patient's right is ("left" of the image on a standard frontal view,
    "right" on a mirrored one, None for lateral views): an "R" is drawn there."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        from reportgen.errors import BackendUnavailable

        raise BackendUnavailable("E611", "matplotlib is needed for region figures", fix="pip install 'reportgen-cxr[clip]'") from None
    n = max(1, len(panels))
    cols = min(n, max_cols)
    rows = (n + cols - 1) // cols
    h, w = pixels.shape
    aspect = h / w
    fig = Figure(figsize=(4 * cols + (0.8 if panels else 0), 4 * aspect * rows + (0.4 if title else 0) + 0.6 * rows), dpi=dpi,
                 layout="constrained")
    FigureCanvasAgg(fig)
    extent = (0.0, 1.0, 1.0, 0.0)
    # one colour scale for every panel (so maps compare), shown by one labelled colour bar
    lo = min((float(np.nanmin(p.sim)) for p in panels), default=0.0)
    hi = max((float(np.nanmax(p.sim)) for p in panels), default=1.0)
    hi = hi if hi > lo else lo + 1e-6
    axes, im = [], None
    for i in range(n):
        ax = fig.add_subplot(rows, cols, i + 1)
        axes.append(ax)
        ax.imshow(pixels, cmap="gray", extent=extent, aspect=aspect, vmin=0, vmax=1)
        if panels:
            p = panels[i]
            im = ax.imshow(p.sim, cmap="jet", alpha=0.4, extent=extent, aspect=aspect, interpolation="bilinear", vmin=lo, vmax=hi)
            if p.zone is not None and p.zone.any():
                ax.contour(*_centres(p.zone), p.zone.astype(float), levels=[0.5], colors="white", linewidths=1.5)
                _label(ax, p.zone, p.zone_label, "white")
            if p.best is not None and p.best.any():
                ax.contour(*_centres(p.best), p.best.astype(float), levels=[0.5], colors="yellow",
                           linewidths=1.0, linestyles="dashed")
                if p.best_label and p.best_label != p.zone_label:
                    _label(ax, p.best, f"best: {p.best_label}", "yellow")
            ax.set_title(_wrap(p.caption), fontsize=8)
        ax.set_xticks([])
        ax.set_yticks([])
        if right_marker:
            ax.text(0.02 if right_marker == "left" else 0.94, 0.03, "R", color="white", fontsize=9, transform=ax.transAxes)
    if im is not None:
        bar = fig.colorbar(im, ax=axes, fraction=0.03, pad=0.02, shrink=0.9)
        bar.set_label("similarity of image patch and claim (cosine; one scale for all panels)", fontsize=8)
        bar.ax.tick_params(labelsize=7)
    if title:
        fig.suptitle(title, fontsize=10)
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    data = buf.getvalue()
    if out is not None:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        Path(out).write_bytes(data)
    return data


def _label(ax, mask: np.ndarray, text: str | None, colour: str) -> None:
    """The zone's name written on the image at the zone's centre."""
    if not text:
        return
    ys, xs = np.nonzero(mask)
    h, w = mask.shape
    ax.text((xs.mean() + 0.5) / w, (ys.mean() + 0.5) / h, _wrap(text, 18), color=colour, fontsize=7, ha="center", va="center",
            fontweight="bold", bbox={"facecolor": "black", "alpha": 0.45, "pad": 1, "edgecolor": "none"})


def _centres(mask: np.ndarray):
    h, w = mask.shape
    return (np.arange(w) + 0.5) / w, (np.arange(h) + 0.5) / h


def _wrap(text: str, width: int = 48) -> str:
    lines = []
    for para in text.split("\n"):
        while len(para) > width:
            cut = para.rfind(" ", 0, width)
            cut = cut if cut > 0 else width
            lines.append(para[:cut])
            para = para[cut:].lstrip()
        lines.append(para)
    return "\n".join(lines[:4])


def png_data_uri(png: bytes) -> str:
    """PNG bytes -> a data URI for <img src=...> in HTML reports."""
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")
