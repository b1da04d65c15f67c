"""Calibrating the region checker's thresholds on a labelled set.

Labels (JSONL), one claim per line:
``{"image": "a.png", "view": "PA", "text": "Right upper lobe opacity.", "label": true}``
where ``label`` says whether the claim is TRUE for the image (false: the finding is not
there, or on the other side). Relative image paths resolve against the file's folder.

- ``cnr_threshold``: Youden-optimal threshold on the claimed-zone CNR of positive claims
  (true vs false);
- ``side_margin``: among lateralised positive claims, Youden-optimal threshold on
  ``mirror CNR - claimed CNR`` (false claims should exceed it, true ones not);
- ``absence_threshold``: when there are at least ``min_per_class`` true and false NEGATIVE
  claims ("No effusion."), Youden-optimal threshold on the best CNR over the claim's zones
  (false negatives = the finding is there); else None (absence stays uncheckable).
The statistics (counts, AUC, sensitivity, specificity) are saved with the thresholds.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from reportgen.checkers.region.evidence import Calibration, cnr
from reportgen.errors import ReportgenError


def youden(scores: Sequence[float], labels: Sequence[bool]) -> dict[str, float]:
    """Threshold t maximising sensitivity + specificity - 1 for "score >= t means positive";
    with the AUC (Mann-Whitney) and the sensitivity/specificity at t."""
    s = np.asarray(scores, dtype=np.float64)
    y = np.asarray(labels, dtype=bool)
    if y.all() or (~y).all():
        raise ReportgenError("E609", "calibration needs both true and false examples",
                             fix="label some claims true and some false")
    cands = np.unique(s)
    mids = np.concatenate([[cands[0] - 1e-6], (cands[:-1] + cands[1:]) / 2, [cands[-1] + 1e-6]])
    best = None
    for t in mids:
        pred = s >= t
        sens = (pred & y).sum() / y.sum()
        spec = (~pred & ~y).sum() / (~y).sum()
        j = sens + spec - 1
        if best is None or j > best[0] + 1e-12:
            best = (j, t, sens, spec)
    pos, neg = s[y], s[~y]
    auc = float(((pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()) / (len(pos) * len(neg)))
    j, t, sens, spec = best  # type: ignore[misc]
    return {"threshold": float(t), "youden_j": float(j), "sensitivity": float(sens), "specificity": float(spec),
            "auc": auc, "n_true": int(y.sum()), "n_false": int((~y).sum())}


def default_reader() -> Callable[[str], Sequence[Any]]:
    try:
        from reportgen.checkers.read import read_report  # type: ignore[import-not-found]
    except ImportError:
        raise ReportgenError("E609", "calibration needs reportgen.checkers.read.read_report to read claims",
                             fix="pass reader=... (text -> CheckedClaims)") from None
    return lambda text: read_report(text).claims


def calibrate(
    checker: Any, labels: str | Path | Sequence[dict], *, reader: Callable[[str], Sequence[Any]] | None = None,
    save: bool = False, min_per_class: int = 5, base: Calibration | None = None,
) -> Calibration:
    """Thresholds from a labelled set. ``checker``: a RegionChecker or a model spec;
    ``save``: write reportgen_region.json into the checker's local-dir checkpoint."""
    from reportgen.checkers.region.checker import RegionChecker, finding_query
    from reportgen.jsonl import read_jsonl

    rc = checker if isinstance(checker, RegionChecker) else RegionChecker(checker, calibration=base or Calibration())
    reader = reader or default_reader()
    base = base or rc.calibration
    if isinstance(labels, (str, Path)):
        root = Path(labels).resolve().parent
        rows = []
        for rec in read_jsonl(labels, require=("image", "text", "label")):
            if rec.error:
                raise ReportgenError("E609", rec.error)
            d = dict(rec.data or {})
            if not isinstance(d["label"], bool):
                raise ReportgenError("E609", f"{rec.where}: 'label' must be true or false")
            p = Path(d["image"])
            d["image"] = str(p if p.is_absolute() else root / p)
            d["_where"] = rec.where
            rows.append(d)
    else:
        rows = [dict(r, _where=f"labels[{i}]") for i, r in enumerate(labels)]

    pos_s, pos_y, side_d, side_y, neg_s, neg_y = [], [], [], [], [], []
    for r in rows:
        enc = rc.encode_image(r["image"], r.get("view"))
        for cc in reader(r["text"]):
            for f in cc.findings:
                if not rc.atlas.localisable(f):
                    continue
                q = cc.claim.text if base.query == "claim" else finding_query(f)
                m = rc.similarity_maps(enc, [q])[0]
                cz = rc.atlas.claim_zones(f, enc.view)
                zs = enc.zones
                c = cnr(m, zs.union(cz.zones), zs.thorax)
                if f.presence == "present":
                    pos_s.append(c)
                    pos_y.append(bool(r["label"]))
                    mirror = cz.mirrored()
                    if mirror:
                        side_d.append(cnr(m, zs.union(mirror), zs.thorax) - c)
                        side_y.append(not r["label"])
                elif f.presence == "absent":
                    neg_s.append(max(cnr(m, zs.masks[z], zs.thorax) for z in cz.zones))
                    neg_y.append(not r["label"])  # "finding present" is the positive class
    if len(pos_s) < 2:
        raise ReportgenError("E609", f"calibration found {len(pos_s)} positive claims with findings",
                             fix="label more positive claims (e.g. 'Left lower lobe opacity.')")
    stats: dict[str, Any] = {"positive": youden(pos_s, pos_y)}
    kw: dict[str, Any] = {"cnr_threshold": stats["positive"]["threshold"]}
    if sum(side_y) >= 1 and len(side_y) - sum(side_y) >= 1:
        stats["side"] = youden(side_d, side_y)
        kw["side_margin"] = max(0.0, stats["side"]["threshold"])
    absence = None
    if sum(neg_y) >= min_per_class and len(neg_y) - sum(neg_y) >= min_per_class:
        stats["absence"] = youden(neg_s, neg_y)
        absence = stats["absence"]["threshold"]
    calib = Calibration(
        cnr_threshold=kw["cnr_threshold"], side_margin=kw.get("side_margin", base.side_margin),
        absence_threshold=absence, box_side_min=base.box_side_min, box_overlap_min=base.box_overlap_min,
        calibrated=True, query=base.query, stats={**stats, "n_records": len(rows), "model": rc.backend.spec},
    )
    if save:
        local = rc.backend.local_dir
        if local is None:
            raise ReportgenError("E609", "save=True needs a local-dir: checkpoint to write reportgen_region.json into")
        calib.save(local)
    rc.calibration = calib
    return calib
