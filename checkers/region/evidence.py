"""Region evidence statistics and verdict rules (numpy only; no model needed).

Given a similarity map on the normalised grid (``zones.GRID``), the zones of an image
and the zones a finding points at, this module computes contrast-to-noise ratios and
decides a status. It is separated from the model so the rules can be tested (and
reused by the grounded-box checker) on synthetic maps.

CNR (as in BioViL, Boecking et al. 2022): for a zone Z inside the thorax T,
``cnr(Z) = (mean(M|Z) - mean(M|T\\Z)) / sqrt(var(M|Z) + var(M|T\\Z))``; signed, so a
negative value means the evidence lies outside Z.

Scores: ``Verdict.score`` means "how strongly the evidence supports the claim", in [0, 1]
for every checker (``docs/checking.md``). The raw CNR is unbounded, so the verdict score
is a logistic of the CNR's distance to the calibrated threshold,
``support(x, t) = 1 / (1 + exp(-(x - t) / calib.score_scale))`` (0.5 exactly at the
threshold), and the raw CNR stays in ``EvidenceItem.score`` and ``meta["cnr"]``. See
``judge_finding`` for the rule per claim type.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from reportgen.checkers.region.zones import ClaimZones, ZoneSet, pretty
from reportgen.errors import ReportgenError

CALIBRATION_FILE = "reportgen_region.json"
_EPS = 1e-6


@dataclass(frozen=True)
class Calibration:
    """Thresholds of the verdict rules; saved next to a checkpoint as reportgen_region.json.

    - ``cnr_threshold``: a positive claim is supported when the CNR of its claimed zone
      reaches this (else unsupported-by-image).
    - ``side_margin``: a lateralised claim is contradicted when the mirrored zone's CNR
      reaches ``cnr_threshold`` and beats the claimed zone's CNR by this margin.
    - ``absence_threshold``: when set (calibrated on labelled negative claims), a negative
      claim is contradicted when the best CNR over its zones reaches it, and supported
      otherwise; when None, absence is not checked (verdict "uncertain", not checkable).
    - ``box_side_min`` / ``box_overlap_min``: the grounded-box rules (fraction of a box's
      area on one side / inside the claimed zones).
    - ``score_scale``: the CNR distance from a threshold that moves the verdict score
      from 0.5 to 0.73 (logistic slope; see ``support``). Not fitted by calibration.
    """

    cnr_threshold: float = 0.5
    side_margin: float = 0.25
    absence_threshold: float | None = None
    box_side_min: float = 0.75
    box_overlap_min: float = 0.1
    score_scale: float = 0.25
    calibrated: bool = False
    query: str = "finding"
    stats: Mapping[str, Any] = field(default_factory=dict)
    version: int = 1

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["stats"] = dict(self.stats)
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], where: str = "<dict>") -> "Calibration":
        known = {f for f in cls.__dataclass_fields__}
        unknown = set(d) - known
        if unknown:
            raise ReportgenError("E610", f"{where}: unknown calibration keys {sorted(unknown)}",
                                 fix=f"use only {', '.join(sorted(known))}")
        try:
            c = cls(**{k: v for k, v in d.items()})
            float(c.cnr_threshold), float(c.side_margin)
            if not float(c.score_scale) > 0:
                raise ValueError(f"score_scale must be > 0, not {c.score_scale!r}")
        except (TypeError, ValueError) as e:
            raise ReportgenError("E610", f"{where}: invalid calibration ({e})") from None
        if c.query not in ("finding", "claim"):
            raise ReportgenError("E610", f"{where}: query must be 'finding' or 'claim', not {c.query!r}")
        return c

    @classmethod
    def load(cls, path: str | Path) -> "Calibration":
        p = Path(path)
        if p.is_dir():
            p = p / CALIBRATION_FILE
        try:
            data = json.loads(p.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ReportgenError("E610", f"calibration file {p} not found",
                                 fix="run `reportgen train-clip ... --calibrate LABELS.jsonl` or pass thresholds") from None
        except json.JSONDecodeError as e:
            raise ReportgenError("E610", f"{p}:{e.lineno}: calibration file is not valid JSON ({e.msg})") from None
        return cls.from_dict(data, str(p))

    def save(self, path: str | Path) -> Path:
        p = Path(path)
        if p.is_dir():
            p = p / CALIBRATION_FILE
        p.write_text(json.dumps(self.to_dict(), indent=2) + "\n", encoding="utf-8")
        return p


def cnr(sim: np.ndarray, inside: np.ndarray, region: np.ndarray) -> float:
    """Signed contrast-to-noise ratio of ``sim`` inside vs outside (within ``region``)."""
    a = sim[inside & region]
    b = sim[region & ~inside]
    if a.size == 0 or b.size == 0:
        return 0.0
    return float((a.mean() - b.mean()) / np.sqrt(a.var() + b.var() + _EPS))


def support(x: float, threshold: float, scale: float) -> float:
    """Verdict score in [0, 1] from a CNR (or a CNR difference) and its threshold: a
    logistic, 0.5 at the threshold, increasing with ``x`` (``scale`` > 0: the slope)."""
    z = (float(x) - float(threshold)) / max(float(scale), _EPS)
    if z >= 0:
        return 1.0 / (1.0 + math.exp(-min(z, 700.0)))
    e = math.exp(max(z, -700.0))
    return e / (1.0 + e)


def zone_cnrs(sim: np.ndarray, zones: ZoneSet) -> dict[str, float]:
    """CNR of every zone of the atlas against the rest of the thorax."""
    return {name: cnr(sim, m, zones.thorax) for name, m in zones.masks.items()}


@dataclass(frozen=True)
class Judgement:
    """The region verdict for one finding on one image, before it becomes a Verdict.

    ``score``: the verdict score in [0, 1] (None: not checkable, an abstention);
    ``cnr``: the raw CNR that decided it (the claimed zone's; for absence the highest
    zone's), kept as the evidence item's score."""

    status: str
    reasons: tuple[str, ...]
    score: float | None
    meta: Mapping[str, Any]
    cnr: float | None = None


def _zones_words(names: Sequence[str]) -> str:
    return ", ".join(pretty(n) for n in names) if names else "none"


def _fmt(x: float) -> str:
    return f"{x:.2f}"


def judge_finding(
    sim: np.ndarray, zones: ZoneSet, claimed: ClaimZones, presence: str, calib: Calibration,
    *, label: str = "finding",
) -> Judgement:
    """Status for one finding given its similarity map.

    Rules (``tau = calib.cnr_threshold``):
    - present, lateralised (right/left on a frontal view): contradicted when the mirrored
      zone has CNR >= tau and exceeds the claimed zone's CNR by ``side_margin``;
      supported when the claimed zone's CNR >= tau; else unsupported.
    - present, bilateral: each side must reach tau (else unsupported, naming the side).
    - present, no side (or a lateral view): supported when the claimed zones reach tau.
    - uncertain (hedged): "uncertain", numbers reported.
    - absent: with ``absence_threshold`` set: contradicted when the best CNR over the
      zones the finding could occupy reaches it, else supported; without it: "uncertain",
      not checkable.

    Score (``s = calib.score_scale``, ``support`` the logistic): present without side or on
    a lateral view ``support(c_claim, tau)``; right/left on a frontal view
    ``min(support(c_claim, tau), support(c_claim - c_mirror, -side_margin))`` (low when the
    mirror side beats the claimed side by the margin); bilateral ``support(min side CNR,
    tau)``; absent ``support(-max CNR, -absence_threshold)``; hedged claims keep the
    score of the rules. So supported >= 0.5 > unsupported, contradicted <= 0.5, and the
    score never decreases as the claimed zone's CNR grows.
    """
    tau = float(calib.cnr_threshold)
    scale = float(calib.score_scale)
    per_zone = zone_cnrs(sim, zones)
    best_zone = max(per_zone, key=per_zone.get) if per_zone else None
    best = per_zone.get(best_zone, 0.0) if best_zone else 0.0
    claim_mask = zones.union(claimed.zones)
    c_claim = cnr(sim, claim_mask, zones.thorax)
    meta: dict[str, Any] = {
        "zone": list(claimed.zones), "cnr": round(c_claim, 4), "best_zone": best_zone,
        "best_cnr": round(best, 4), "threshold": tau, "calibrated": calib.calibrated,
        "laterality": claimed.laterality, "view_kind": zones.kind, "zones_source": zones.source,
        "checkable": True, "score_scale": scale,
    }
    tau_words = f"threshold {_fmt(tau)}" + ("" if calib.calibrated else " (uncalibrated default)")
    where = _zones_words(claimed.zones)
    best_words = f"best-matching zone {pretty(best_zone)} (CNR {_fmt(best)})" if best_zone else "no zone"

    if presence == "absent":
        if calib.absence_threshold is None:
            meta["checkable"] = False
            return Judgement(
                "uncertain",
                (f"absence not checkable by region model: no absence threshold calibrated "
                 f"(for {label} in {where}; {best_words}); left to the other checkers",),
                None, meta,
            )
        t_abs = float(calib.absence_threshold)
        scope = {z: per_zone[z] for z in claimed.zones if z in per_zone}
        zmax = max(scope, key=scope.get) if scope else best_zone
        cmax = scope.get(zmax, best) if scope else best
        meta.update({"absence_threshold": t_abs, "max_zone": zmax, "max_cnr": round(cmax, 4)})
        if cmax >= t_abs:
            return Judgement("contradicted", (
                f"image evidence for {label} in {pretty(zmax)} (CNR {_fmt(cmax)} >= absence threshold {_fmt(t_abs)}) "
                f"although the claim says it is absent",), support(-cmax, -t_abs, scale), meta, cmax)
        return Judgement("supported", (
            f"no image evidence for {label} in {where} (max CNR {_fmt(cmax)} in {pretty(zmax)} "
            f"< absence threshold {_fmt(t_abs)})",), support(-cmax, -t_abs, scale), meta, cmax)

    lat = claimed.laterality
    if lat in ("right", "left") and zones.kind == "frontal":
        mirror = claimed.mirrored()
        c_mirror = cnr(sim, zones.union(mirror), zones.thorax) if mirror else float("-inf")
        meta.update({"mirror_zone": list(mirror), "mirror_cnr": round(c_mirror, 4) if mirror else None})
        status, reasons = _lateral_rule(c_claim, c_mirror, mirror, lat, where, best_words, tau, tau_words, calib, label)
        score = support(c_claim, tau, scale)
        if mirror:
            score = min(score, support(c_claim - c_mirror, -float(calib.side_margin), scale))
    elif lat == "bilateral" and zones.kind == "frontal":
        side_cnr = {}
        for s in ("right", "left"):
            names = tuple(claimed.by_side.get(s, ())) + claimed.midline
            side_cnr[s] = cnr(sim, zones.union(names), zones.thorax) if names else 0.0
        meta["side_cnr"] = {s: round(v, 4) for s, v in side_cnr.items()}
        weak = [s for s, v in side_cnr.items() if v < tau]
        score = support(min(side_cnr.values()), tau, scale)
        if not weak:
            status = "supported"
            reasons = (f"bilateral {label}: evidence on both sides (right CNR {_fmt(side_cnr['right'])}, "
                       f"left CNR {_fmt(side_cnr['left'])} >= {tau_words}); {best_words}",)
        else:
            status = "unsupported"
            reasons = (f"unsupported by image: bilateral {label} claimed but evidence is below {tau_words} on the "
                       f"{' and '.join(weak)} side (right CNR {_fmt(side_cnr['right'])}, left CNR {_fmt(side_cnr['left'])}); {best_words}",)
    else:
        score = support(c_claim, tau, scale)
        if c_claim >= tau:
            status = "supported"
            reasons = (f"image evidence for {label} concentrated in the claimed {where} (CNR {_fmt(c_claim)} >= {tau_words}); {best_words}",)
        else:
            status = "unsupported"
            reasons = (f"unsupported by image: evidence for {label} in the claimed {where} is weak (CNR {_fmt(c_claim)} < {tau_words}); {best_words}",)

    if presence == "uncertain":
        reasons = (f"hedged claim: region evidence reported, not judged ({status} by the rules: {reasons[0]})",)
        status = "uncertain"
    return Judgement(status, reasons, score, meta, c_claim)


def _lateral_rule(c_claim, c_mirror, mirror, lat, where, best_words, tau, tau_words, calib, label):
    other = "left" if lat == "right" else "right"
    margin = float(calib.side_margin)
    if mirror and c_mirror >= tau and c_mirror - c_claim >= margin:
        return "contradicted", (
            f"wrong side: evidence for {label} lies on the patient's {other} ({_zones_words(mirror)}, CNR {_fmt(c_mirror)}) "
            f"opposite to the claimed {lat} ({where}, CNR {_fmt(c_claim)}; margin {_fmt(c_mirror - c_claim)} >= {_fmt(margin)}); {best_words}",
        )
    if c_claim >= tau:
        return "supported", (
            f"image evidence for {label} concentrated in the claimed {where} (CNR {_fmt(c_claim)} >= {tau_words}); {best_words}",
        )
    return "unsupported", (
        f"unsupported by image: evidence for {label} in the claimed {where} is weak (CNR {_fmt(c_claim)} < {tau_words}); "
        f"mirrored side CNR {_fmt(c_mirror) if mirror else 'n/a'}; {best_words}",
    )


def combine(judgements: Sequence[Judgement]) -> tuple[str, tuple[str, ...], float | None]:
    """One status for a claim with several findings: contradicted > unsupported >
    uncertain > supported; reasons of all findings are kept."""
    order = {"contradicted": 0, "unsupported": 1, "uncertain": 2, "supported": 3}
    status = min((j.status for j in judgements), key=lambda s: order.get(s, 9))
    reasons = tuple(r for j in judgements for r in j.reasons)
    scores = [j.score for j in judgements if j.score is not None]
    return status, reasons, (min(scores) if scores else None)
