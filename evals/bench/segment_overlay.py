"""Lung segmentation vs the zone atlas on real radiographs: an overlay PNG and an IoU table.

For every frontal film (default: the radiographs of ../shared/data/cxr, or of the
repository's tests/data/cxr without it; PNG, JPEG and DICOM) the segmenter's lungs (solid: red = the patient's right, cyan = the patient's left,
lime = the heart) are drawn over the film with the atlas lungs and cardiac silhouette of
checkers/data/zones.json (dashed yellow / orange), and the agreement is measured on the
128x128 normalised grid the region checker uses:

- IoU of each segmented lung with the atlas lung of the same side, of both lungs
  together, and of the heart with the atlas cardiac silhouette;
- ``atlas only``: the fraction of the atlas lungs the segmentation leaves out (atlas lung
  over the diaphragm, the dense hila, or lung the segmenter missed);
- ``seg only``: the fraction of the segmented lungs outside the atlas.

There is no ground-truth lung mask here: IoU says how far the atlas is from what the
segmenter found on that film, not which of the two is right. Look at the PNG.

    python -m evals.bench.segment_overlay [--segmenter threshold|xrv-pspnet] [--images A.png B.dcm ...]
        [--out runs/segment_overlay]     # writes overlay.png and segment_overlay.json
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

from evals.bench import write_json

REPO = Path(__file__).resolve().parents[2]
SHARED_CXR = REPO.parent / "shared" / "data" / "cxr"
DEFAULT_DATA = SHARED_CXR if SHARED_CXR.is_dir() else REPO / "tests" / "data" / "cxr"
GRID = 128


def film_paths(folder: Path) -> list[Path]:
    """The radiographs under ``folder`` (PNG, JPEG, DICOM), sorted."""
    exts = {".png", ".jpg", ".jpeg", ".dcm"}
    return sorted(p for p in folder.rglob("*") if p.suffix.lower() in exts)


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / max((a | b).sum(), 1))


def measure(pixels: np.ndarray, segmenter, atlas) -> dict:
    """Agreement of one film's segmentation with the atlas (see the module docstring)."""
    from reportgen.checkers.region.segment import resize_mask, threshold_lungs_detail

    t0 = time.perf_counter()
    if segmenter is None:
        masks, why = threshold_lungs_detail(pixels)
    else:
        masks = segmenter(pixels)
        why = "ok" if masks is not None else "no plausible lungs"
    row: dict = {"seconds": round(time.perf_counter() - t0, 3), "result": why if masks is None else "ok"}
    if masks is None:
        return row
    st = atlas.zone_set("PA", shape=(GRID, GRID)).structures
    ar, al, ah = st["lung_right"], st["lung_left"], st["cardiac_silhouette"]
    r, l = resize_mask(masks.right, (GRID, GRID)), resize_mask(masks.left, (GRID, GRID))
    both, atlas_both = r | l, ar | al
    row.update({
        "iou_right": round(_iou(r, ar), 3), "iou_left": round(_iou(l, al), 3), "iou_both": round(_iou(both, atlas_both), 3),
        "iou_heart": round(_iou(resize_mask(masks.heart, (GRID, GRID)), ah), 3) if masks.heart is not None else None,
        "atlas_only": round(float((atlas_both & ~both).sum() / atlas_both.sum()), 3),
        "seg_only": round(float((both & ~atlas_both).sum() / max(both.sum(), 1)), 3),
        "right_centre_x": round(float((np.nonzero(r)[1].mean() + 0.5) / GRID), 3),
        "left_centre_x": round(float((np.nonzero(l)[1].mean() + 0.5) / GRID), 3),
        "lung_area": [round(float(masks.right.mean()), 3), round(float(masks.left.mean()), 3)],
    })
    row["_masks"] = masks
    return row


def draw(films: list[tuple[str, np.ndarray, dict]], atlas, out: Path, dpi: int = 70) -> bytes:
    """One panel per film: atlas dashed, segmentation solid; PNG bytes written to ``out``."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    st = atlas.zone_set("PA", shape=(GRID, GRID)).structures
    cols = min(4, max(1, len(films)))
    rows = (len(films) + cols - 1) // cols
    fig = Figure(figsize=(4 * cols, 4.4 * rows), dpi=dpi)
    FigureCanvasAgg(fig)
    g = (np.arange(GRID) + 0.5) / GRID
    for i, (name, pixels, row) in enumerate(films):
        ax = fig.add_subplot(rows, cols, i + 1)
        ax.imshow(pixels, cmap="gray", vmin=0, vmax=1, extent=(0, 1, 1, 0), aspect="auto")
        for key, colour in (("lung_right", "yellow"), ("lung_left", "yellow"), ("cardiac_silhouette", "orange")):
            ax.contour(g, g, st[key].astype(float), levels=[0.5], colors=colour, linestyles="dashed", linewidths=1)
        masks = row.get("_masks")
        if masks is not None:
            for m, colour in ((masks.right, "red"), (masks.left, "cyan"), (masks.heart, "lime")):
                if m is None:
                    continue
                gy, gx = (np.arange(m.shape[0]) + 0.5) / m.shape[0], (np.arange(m.shape[1]) + 0.5) / m.shape[1]
                ax.contour(gx, gy, m.astype(float), levels=[0.5], colors=colour, linewidths=1.2)
            caption = f"IoU R {row['iou_right']:.2f} L {row['iou_left']:.2f} both {row['iou_both']:.2f}"
        else:
            caption = f"atlas fallback: {row['result']}"
        ax.set_title(f"{name[:28]}\n{caption[:60]}", fontsize=8)
        ax.text(0.02, 0.04, "R", color="white", fontsize=9, transform=ax.transAxes)
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle("lungs: segmentation solid (red = patient right, cyan = patient left, lime = heart); atlas dashed", fontsize=9)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, format="png")
    return out.read_bytes()


def table(rows: list[dict]) -> str:
    """Markdown table of the measurements."""
    head = "| film | result | IoU right | IoU left | IoU both | IoU heart | atlas only | seg only | s |"
    lines = [head, "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    fmt = lambda v: "-" if v is None else f"{v:.2f}"  # noqa: E731
    for r in rows:
        lines.append(f"| {r['film']} | {r['result']} | {fmt(r.get('iou_right'))} | {fmt(r.get('iou_left'))} | "
                     f"{fmt(r.get('iou_both'))} | {fmt(r.get('iou_heart'))} | {fmt(r.get('atlas_only'))} | "
                     f"{fmt(r.get('seg_only'))} | {r['seconds']:.2f} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--images", nargs="*", type=Path, help="radiographs (default: every film under --data)")
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA, help="folder of radiographs (default ../shared/data/cxr, else tests/data/cxr)")
    ap.add_argument("--segmenter", default="threshold", help="threshold (default) or xrv-pspnet")
    ap.add_argument("--out", type=Path, default=REPO / "runs" / "segment_overlay", help="output folder")
    args = ap.parse_args(argv)

    from reportgen.checkers.region.images import load_radiograph
    from reportgen.checkers.region.segment import resolve_segmenter
    from reportgen.checkers.region.zones import Atlas
    from reportgen.errors import ReportgenError

    paths = list(args.images or film_paths(args.data))
    if not paths:
        print(f"no radiographs found under {args.data}", file=sys.stderr)
        return 2
    try:
        seg = None if args.segmenter == "threshold" else resolve_segmenter(args.segmenter)
        atlas = Atlas.load()
        rows, films = [], []
        for p in paths:
            rad = load_radiograph(p)
            row = measure(rad.pixels, seg, atlas)
            name = str(p.relative_to(args.data)) if p.is_relative_to(args.data) else p.name
            row = {"film": name, **row}
            rows.append(row)
            films.append((name, rad.pixels, row))
    except ReportgenError as e:
        print(f"error {e.code}: {e.message}" + (f" (fix: {e.fix})" if e.fix else ""), file=sys.stderr)
        return 1
    png = args.out / "overlay.png"
    draw(films, atlas, png)
    clean = [{k: v for k, v in r.items() if not k.startswith("_")} for r in rows]
    payload = {"segmenter": args.segmenter, "atlas_version": atlas.version, "grid": GRID, "films": clean}
    write_json(args.out / "segment_overlay.json", payload)
    print(table(clean))
    print(f"\nwrote {png} and {args.out / 'segment_overlay.json'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
