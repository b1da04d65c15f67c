"""Grounded reports: sentences with boxes (RadFact / MAIRA-2 style), checked against the
zones their findings point at and, when an image and a region model are given, against
where the model's evidence lies.

Input format (RadFact's ``grounded_reporting_examples.json``): a report is a list of
``{"text": sentence, "boxes": [{"x_min", "y_min", "x_max", "y_max"}] | null}`` with boxes
normalised to 0..1 of the displayed image; a file holds a list of examples
``{"example_id", "prediction": [...], "target": [...]}`` or a bare list of sentences.

Rules for one positive finding with boxes (thresholds from ``Calibration``):
- a box's side is the patient side holding >= ``box_side_min`` of its area (patient left
  = image right on frontal views); else it straddles the midline;
- right/left claims: contradicted when a box lies on the opposite side; contradicted
  (location) when the boxes on the claimed side overlap the claimed zones by less than
  ``box_overlap_min`` of their area; else supported;
- bilateral claims: supported when the boxes cover both sides, else unsupported;
- claims without a side: supported when the boxes overlap the claimed zones by at least
  ``box_overlap_min``, else contradicted (location);
- the location rules apply only when the finding names a location or anatomy (a
  "fracture of the lateral right seventh rib" box outside the lung zones is fine);
- with a region map: the box CNR (map inside the boxes vs the rest of the thorax) must
  reach ``cnr_threshold``, else unsupported-by-image.
Sentences without boxes get no verdict; negative or hedged findings with boxes get
"uncertain" (a box on an absent finding is not checkable).

Scores: the verdict score is in [0, 1] like every checker's: boxes alone give 1.0
(supported) or 0.0 (contradicted, unsupported); with a map, a supported claim scores
``support(box CNR, cnr_threshold)`` (reportgen.checkers.region.evidence). The raw box CNR stays in
the evidence item's score and ``meta["box_cnr"]``; not-checkable verdicts score None.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from reportgen.checkers.region.evidence import Calibration, cnr, support
from reportgen.checkers.region.zones import GRID, Atlas, ZoneSet, box_mask, pretty, view_kind
from reportgen.errors import ReportgenError
# The grounded-report types are defined once in the core and shared with the RadFact
# metrics (reportgen.evals.metrics.radfact); importable from here as before.
from reportgen.grounding import Box, GroundedExample, GroundedPhrase, parse_grounded_examples, parse_grounded_report
from reportgen.types import Claim, EvidenceItem, Finding, Verdict

CHECKER = "region-box"


GroundedSentence = GroundedPhrase  # one sentence with its boxes (None: not grounded)


def box_tuple(b: Box) -> tuple[float, float, float, float]:
    return b.as_tuple()


def box_dict(b: Box) -> dict[str, float]:
    return b.to_dict()


def box_from_coco(bbox: Sequence[float], width: float, height: float) -> Box:
    """COCO ``[x, y, w, h]`` in pixels -> a normalised box (clipped to the image)."""
    x, y, w, h = (float(v) for v in bbox)
    return Box(max(0.0, x / width), max(0.0, y / height), min(1.0, (x + w) / width), min(1.0, (y + h) / height))


def load_grounded(path: str | Path) -> list[GroundedExample]:
    """RadFact-style examples (or one bare grounded report, as example "0") from a JSON file.
    Errors name the file (E607) and keep the metrics' code and fix."""
    p = Path(path)
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ReportgenError("E607", f"grounded report file {p} not found") from None
    except json.JSONDecodeError as e:
        raise ReportgenError("E607", f"{p}:{e.lineno}: not valid JSON ({e.msg})") from None
    try:
        if isinstance(data, list) and data and isinstance(data[0], Mapping) and "text" in data[0]:
            return [GroundedExample("0", parse_grounded_report(data), ())]
        return parse_grounded_examples(data)
    except ReportgenError as e:
        raise ReportgenError("E607", f"{p}: {e}", fix=e.fix) from None
    except (KeyError, TypeError, AttributeError) as e:
        raise ReportgenError("E607", f"{p}: malformed grounded sentence ({e!r})", fix="each sentence needs 'text' and 'boxes' (list or null)") from None


@dataclass(frozen=True)
class BoxCheck:
    """``score``: the raw box CNR (with a map); ``support``: the verdict score in [0, 1]
    (None: not checkable)."""

    status: str
    reasons: tuple[str, ...]
    meta: Mapping[str, Any]
    score: float | None = None
    support: float | None = None


def box_sides(box: Box, zones: ZoneSet) -> dict[str, float]:
    """Fraction of the box area on the patient's right and left (frontal views)."""
    m = box_mask(box_tuple(box), zones.shape)
    total = max(int(m.sum()), 1)
    return {s: float((m & zones.side_mask(s)).sum() / total) for s in ("right", "left")}


def box_zone_overlaps(box: Box, zones: ZoneSet) -> dict[str, float]:
    """Fraction of the box area inside each zone."""
    m = box_mask(box_tuple(box), zones.shape)
    total = max(int(m.sum()), 1)
    return {name: float((m & z).sum() / total) for name, z in zones.masks.items()}


def best_box_zone(box: Box, zones: ZoneSet) -> tuple[str, float]:
    ov = box_zone_overlaps(box, zones)
    # prefer the three-level lung zones and the midline structures when naming a box
    primary = {k: v for k, v in ov.items() if k.endswith(("_zone", "silhouette", "mediastinum", "hilum"))} or ov
    name = max(primary, key=primary.get)
    return (name, primary[name]) if primary[name] > 0 else ("outside_the_atlas_zones", 0.0)


def check_box(
    finding: Finding, boxes: Sequence[Box], *, view: str | None = "PA", atlas: Atlas | None = None,
    calibration: Calibration | None = None, sim: np.ndarray | None = None, mirrored: bool = False,
) -> BoxCheck:
    """Check a finding's boxes against its claimed side/zones (and a similarity map)."""
    atlas = atlas or Atlas.load()
    calib = calibration or Calibration()
    zones = atlas.zone_set(view, shape=(sim.shape if sim is not None else (GRID, GRID)), mirrored=mirrored)
    claimed = atlas.claim_zones(finding, view)
    zmask = zones.union(claimed.zones)
    per_box = []
    for b in boxes:
        m = box_mask(box_tuple(b), zones.shape)
        sides = box_sides(b, zones) if zones.kind == "frontal" else {"right": 0.0, "left": 0.0}
        side = next((s for s, f in sides.items() if f >= calib.box_side_min), None)
        zname, zfrac = best_box_zone(b, zones)
        per_box.append({
            "box": box_dict(b), "side": side, "side_fractions": {k: round(v, 3) for k, v in sides.items()},
            "claimed_overlap": round(float((m & zmask).sum() / max(int(m.sum()), 1)), 3),
            "best_zone": zname, "best_zone_overlap": round(zfrac, 3),
        })
    meta: dict[str, Any] = {
        "zone": list(claimed.zones), "laterality": claimed.laterality, "boxes": per_box,
        "view_kind": zones.kind, "box_side_min": calib.box_side_min, "box_overlap_min": calib.box_overlap_min,
        "checkable": True,
    }
    where = ", ".join(pretty(z) for z in claimed.zones)
    desc = "; ".join(f"box {i + 1} in {pretty(p['best_zone'])} ({p['side'] or 'midline/both'} side)" for i, p in enumerate(per_box))
    if finding.presence != "present":
        meta["checkable"] = False
        return BoxCheck("uncertain", (f"box given for a {finding.presence} finding: not checkable ({desc})",), meta, None, None)
    lat = claimed.laterality
    status, reason = "supported", ""
    if lat in ("right", "left") and zones.kind == "frontal":
        other = "left" if lat == "right" else "right"
        wrong = [i for i, p in enumerate(per_box) if p["side"] == other]
        on_side = [p for p in per_box if p["side"] != other]
        if wrong:
            status = "contradicted"
            reason = (f"wrong side: box {', '.join(str(i + 1) for i in wrong)} lies on the patient's {other} "
                      f"(image {'right' if other == 'left' else 'left'}) but the claim says {lat} ({desc})")
        elif claimed.explicit and on_side and max(p["claimed_overlap"] for p in on_side) < calib.box_overlap_min:
            status = "contradicted"
            reason = f"location: the boxes do not overlap the claimed {where} (max overlap {max(p['claimed_overlap'] for p in on_side):.2f} < {calib.box_overlap_min:.2f}; {desc})"
        else:
            reason = f"boxes on the claimed {lat} side within {where} ({desc})"
    elif lat == "bilateral" and zones.kind == "frontal":
        covered = {s for p in per_box for s, f in p["side_fractions"].items() if f >= 1 - calib.box_side_min}
        if {"right", "left"} <= covered:
            reason = f"bilateral claim with boxes on both sides ({desc})"
        else:
            status = "unsupported"
            reason = f"bilateral claim but the boxes cover only the {' and '.join(sorted(covered)) or 'no'} side ({desc})"
    else:
        best = max(p["claimed_overlap"] for p in per_box)
        if claimed.explicit and best < calib.box_overlap_min:
            status = "contradicted"
            reason = f"location: the boxes do not overlap the claimed {where} (max overlap {best:.2f} < {calib.box_overlap_min:.2f}; {desc})"
        else:
            reason = f"boxes overlap the claimed {where} (max overlap {best:.2f}; {desc})"
    reasons = [reason]
    score = None
    if sim is not None:
        union = np.zeros(zones.shape, dtype=bool)
        for b in boxes:
            union |= box_mask(box_tuple(b), zones.shape)
        region = zones.thorax | union
        score = cnr(sim, union, region)
        meta["box_cnr"] = round(score, 4)
        meta["threshold"] = calib.cnr_threshold
        if score < calib.cnr_threshold:
            reasons.append(f"unsupported by image: evidence is not concentrated in the boxes (CNR {score:.2f} < {calib.cnr_threshold:.2f})")
            if status == "supported":
                status = "unsupported"
        else:
            reasons.append(f"image evidence concentrated in the boxes (CNR {score:.2f} >= {calib.cnr_threshold:.2f})")
    supp = 1.0 if status == "supported" else 0.0
    if score is not None and status == "supported":
        supp = support(score, calib.cnr_threshold, calib.score_scale)
    return BoxCheck(status, tuple(reasons), meta, score, supp)


def check_grounded(
    sentences: Sequence[GroundedPhrase], *, reader: Callable[[str], Any] | None = None, view: str | None = "PA",
    atlas: Atlas | None = None, calibration: Calibration | None = None, image: Any = None, region: Any = None,
) -> list[Verdict]:
    """Verdicts (checker "region-box") for the boxed sentences of one grounded report.

    The sentences are joined with single spaces into one report text (claim offsets
    refer to it) and read with ``reader`` (default ``reportgen.checkers.read.read_report``). Each
    claim inherits the boxes of the sentence it lies in. With ``image`` and ``region``
    (a RegionChecker) the box CNR of each claim's similarity map is checked as well.
    """
    if reader is None:
        from reportgen.checkers.region.calibrate import default_reader

        reader = default_reader()
    atlas = atlas or (region.atlas if region is not None else Atlas.load())
    calib = calibration or (region.calibration if region is not None else Calibration())
    text, spans, pos = [], [], 0
    for s in sentences:
        spans.append((pos, pos + len(s.text)))
        text.append(s.text)
        pos += len(s.text) + 1
    report = " ".join(text)
    claims = reader(report)
    enc = region.encode_image(image, view) if (image is not None and region is not None) else None
    if enc is not None:
        view = enc.view
    out: list[Verdict] = []
    for cc in claims:
        c: Claim = cc.claim
        k = next((i for i, (a, b) in enumerate(spans) if a <= c.start < b + 1), None)
        if k is None or not sentences[k].boxes:
            continue
        boxes = sentences[k].boxes
        checks: list[tuple[Finding, BoxCheck]] = []
        for f in cc.findings:
            sim = None
            if enc is not None:
                from reportgen.checkers.region.checker import finding_query

                q = c.text if calib.query == "claim" else finding_query(f)
                sim = region.similarity_maps(enc, [q])[0]
            checks.append((f, check_box(f, boxes, view=view, atlas=atlas, calibration=calib, sim=sim,
                                        mirrored=bool(enc.mirrored) if enc is not None else False)))
        if not checks:
            continue
        order = {"contradicted": 0, "unsupported": 1, "uncertain": 2, "supported": 3}
        status = min((b.status for _, b in checks), key=order.__getitem__)
        reasons = tuple(r for _, b in checks for r in b.reasons)
        scores = [b.support for _, b in checks if b.support is not None]
        ev = tuple(EvidenceItem(source="box", text=f"{len(boxes)} box(es) of sentence {k + 1}", findings=(f,),
                                score=b.score, meta={**b.meta, "sentence": k}) for f, b in checks)
        out.append(Verdict(c, status, reasons, ev, CHECKER, min(scores) if scores else None))
    return out


def tbx11k_boxes(path: str | Path) -> dict[str, list[tuple[str, Box]]]:
    """TBX11K COCO boxes -> {image file name: [(category, normalised Box), ...]}."""
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    cats = {c["id"]: c["name"] for c in data.get("categories", [])}
    imgs = {i["id"]: i for i in data.get("images", [])}
    out: dict[str, list[tuple[str, Box]]] = {Path(i["file_name"]).name: [] for i in imgs.values()}
    for a in data.get("annotations", []):
        im = imgs[a["image_id"]]
        out[Path(im["file_name"]).name].append((cats.get(a["category_id"], str(a["category_id"])),
                                                 box_from_coco(a["bbox"], im["width"], im["height"])))
    return out


def describe_box(box: Box, *, view: str | None = "PA", atlas: Atlas | None = None, calibration: Calibration | None = None) -> dict[str, Any]:
    """Side and best zone of a box (for TBX11K-style boxes without text)."""
    atlas = atlas or Atlas.load()
    calib = calibration or Calibration()
    zones = atlas.zone_set(view)
    sides = box_sides(box, zones) if view_kind(view) == "frontal" else {"right": 0.0, "left": 0.0}
    side = next((s for s, f in sides.items() if f >= calib.box_side_min), None)
    zname, zfrac = best_box_zone(box, zones)
    return {"box": box_dict(box), "side": side, "side_fractions": {k: round(v, 3) for k, v in sides.items()},
            "best_zone": zname, "best_zone_overlap": round(zfrac, 3)}
