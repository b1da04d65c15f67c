"""Calibrating the region checker's thresholds on a labelled set.

Labels (JSONL), one claim per line:
``{"image": "a.png", "view": "PA", "text": "Right upper lobe opacity.", "label": true}``
where ``label`` says whether the claim is TRUE for the image (false: the finding is not
there, or on the other side). Relative image paths resolve against the file's folder.
Optional: ``"mirrored": true`` (the image shows the patient's right on its right) and, on
a false lateral claim, ``"wrong_side": true|false`` (the finding IS on the image, on the
other side / it is not there at all).

- ``cnr_threshold``: Youden-optimal threshold on the claimed-zone CNR of positive claims
  (true vs false);
- ``side_margin``: among lateralised positive claims, Youden-optimal threshold on
  ``mirror CNR - claimed CNR`` between TRUE claims and WRONG-SIDE claims about a real
  lesion only (a false claim about a clear film says nothing about sides). A false claim
  is wrong-side when it says ``"wrong_side": true``, or, without that key, when the same
  image has a true claim of the same finding on the other side; other false claims are
  left out of the side statistics (``stats["side"]["n_excluded_no_lesion"]``);
- ``absence_threshold``: when there are at least ``min_per_class`` true and false NEGATIVE
  claims ("No effusion."), Youden-optimal threshold on the best CNR over the claim's zones
  (false negatives = the finding is there); else None (absence stays uncheckable).
The statistics (counts, AUC, sensitivity, specificity) are saved with the thresholds;
``score_scale`` and the other settings not fitted here are kept from ``base``.
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


def _image_key(image: Any) -> Any:
    """The same image in two label rows: the same path, or the very same array object."""
    return str(Path(image).resolve()) if isinstance(image, (str, Path)) else id(image)


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
            if "wrong_side" in d and not isinstance(d["wrong_side"], bool):
                raise ReportgenError("E141", f"{rec.where}: 'wrong_side' must be true or false")
            if d.get("mirrored") is not None and not isinstance(d["mirrored"], bool):
                raise ReportgenError("E141", f"{rec.where}: 'mirrored' must be true, false or null")
            p = Path(d["image"])
            d["image"] = str(p if p.is_absolute() else root / p)
            d["_where"] = rec.where
            rows.append(d)
    else:
        rows = [dict(r, _where=f"labels[{i}]") for i, r in enumerate(labels)]

    read = [list(reader(r["text"])) for r in rows]
    # Which (finding, side) pairs each image truly has: a false claim of the same finding on
    # the other side of the same image is a wrong-side claim about a real lesion.
    truly: dict[Any, set[tuple[str, str]]] = {}
    for r, claims in zip(rows, read):
        if r["label"]:
            for cc in claims:
                for f in cc.findings:
                    if f.presence == "present" and f.laterality in ("right", "left"):
                        truly.setdefault(_image_key(r["image"]), set()).add((f.observation, f.laterality))

    pos_s, pos_y, side_d, side_y, neg_s, neg_y = [], [], [], [], [], []
    no_lesion = 0
    for r, claims in zip(rows, read):
        enc = rc.encode_image(r["image"], r.get("view"), r.get("mirrored"))
        for cc in claims:
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
                        if not r["label"]:
                            other = "left" if f.laterality == "right" else "right"
                            wrong_side = r.get("wrong_side")
                            if wrong_side is None:
                                wrong_side = (f.observation, other) in truly.get(_image_key(r["image"]), set())
                            if not wrong_side:
                                no_lesion += 1
                                continue
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
        stats["side"] = {**youden(side_d, side_y), "n_excluded_no_lesion": no_lesion}
        kw["side_margin"] = max(0.0, stats["side"]["threshold"])
    else:
        stats["side"] = {"calibrated": False, "n_wrong_side": int(sum(side_y)), "n_true": len(side_y) - int(sum(side_y)),
                         "n_excluded_no_lesion": no_lesion}
    absence = None
    if sum(neg_y) >= min_per_class and len(neg_y) - sum(neg_y) >= min_per_class:
        stats["absence"] = youden(neg_s, neg_y)
        absence = stats["absence"]["threshold"]
    calib = Calibration(
        cnr_threshold=kw["cnr_threshold"], side_margin=kw.get("side_margin", base.side_margin),
        absence_threshold=absence, box_side_min=base.box_side_min, box_overlap_min=base.box_overlap_min,
        score_scale=base.score_scale, calibrated=True, query=base.query, stats={**stats, "n_records": len(rows), "model": rc.backend.spec},
    )
    if save:
        local = rc.backend.local_dir
        if local is None:
            raise ReportgenError("E609", "save=True needs a local-dir: checkpoint to write reportgen_region.json into")
        calib.save(local)
    rc.calibration = calib
    return calib
