"""Anatomical zones on chest radiographs, from the atlas ``checkers/data/zones.json``.

Pure numpy (no torch): zone masks are rasterised on a square grid in NORMALISED image
coordinates (x right, y down, 0..1 over the whole displayed image, whatever its aspect).
Every map, box and mask of the region checker lives on such a grid, so a zone means the
same thing on a 512x512 PNG and a 1036x885 JPEG.

Laterality convention: on frontal (PA/AP) views the patient's LEFT is the IMAGE RIGHT.
``side`` always names the patient's side. An image flagged ``mirrored`` (DICOM
PatientOrientation rows toward the patient's right) gets its masks flipped. Lateral
views get no left/right zones.

Lung masks from a segmentation (``LungMasks``; segmenters in ``reportgen.checkers.region.segment``)
replace the atlas lungs (and the cardiac silhouette, when they give a heart) when given;
the zones are then cut from the segmented lungs by the same bands.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from reportgen.errors import ReportgenError

ATLAS_PATH = Path(__file__).resolve().parents[1] / "data" / "zones.json"
GRID = 128  # default analysis grid (normalised coordinates)

FRONTAL_VIEWS = ("PA", "AP")
_VIEW_ALIASES = {
    "PA": "PA", "POSTERO_ANTERIOR": "PA", "POSTEROANTERIOR": "PA", "FRONTAL": "PA",
    "AP": "AP", "ANTERO_POSTERIOR": "AP", "ANTEROPOSTERIOR": "AP", "AP SUPINE": "AP", "AP_SUPINE": "AP",
    "SUPINE": "AP", "AP ERECT": "AP", "PORTABLE": "AP",
    "LATERAL": "LATERAL", "LAT": "LATERAL", "LL": "LATERAL", "RL": "LATERAL", "RLAT": "LATERAL", "LLAT": "LATERAL",
    "LATERAL-LEFT": "LATERAL", "LATERAL-RIGHT": "LATERAL",
}


def normalise_view(view: str | None) -> str | None:
    """"PA", "AP", "LATERAL" or None (unknown) from a manifest or DICOM ViewPosition value."""
    if view is None:
        return None
    key = str(view).strip().upper().replace("-", "_") if str(view).strip() else ""
    if not key:
        return None
    if key in _VIEW_ALIASES:
        return _VIEW_ALIASES[key]
    key2 = key.replace("_", " ")
    if key2 in _VIEW_ALIASES:
        return _VIEW_ALIASES[key2]
    if "LAT" in key:
        return "LATERAL"
    if key.startswith("AP"):
        return "AP"
    if key.startswith("PA"):
        return "PA"
    return None


def view_kind(view: str | None) -> str:
    """"lateral" for lateral views, else "frontal" (unknown views are assumed frontal)."""
    return "lateral" if normalise_view(view) == "LATERAL" else "frontal"


@dataclass(frozen=True)
class LungMasks:
    """A lung segmentation in the displayed image's orientation (any resolution):
    boolean masks of the patient's right and left lung, optionally the heart."""

    right: np.ndarray
    left: np.ndarray
    heart: np.ndarray | None = None


@dataclass(frozen=True)
class ClaimZones:
    """The zones a finding points at on one view.

    ``zones``: all claimed zone names; ``by_side``: the sided part per patient side;
    ``midline``: zones without a side; ``laterality``: the side used (None when the
    view is lateral or the finding names none); ``groups``: the atlas groups matched;
    ``explicit``: whether they came from the finding's locations/anatomy (else from the
    observation's default or the fallback, e.g. "nodule" -> the whole lung).
    """

    zones: tuple[str, ...]
    by_side: Mapping[str, tuple[str, ...]]
    midline: tuple[str, ...]
    laterality: str | None
    groups: tuple[str, ...]
    explicit: bool = True  # False when the zones are an observation default or the fallback

    def mirrored(self) -> tuple[str, ...]:
        """The same zones on the opposite side (empty when nothing is lateralised)."""
        if self.laterality not in ("right", "left"):
            return ()
        other = "left" if self.laterality == "right" else "right"
        return tuple(other + z[len(self.laterality):] for z in self.by_side.get(self.laterality, ()))


@dataclass(frozen=True)
class ZoneSet:
    """Zone masks of one image on a square normalised grid."""

    kind: str  # "frontal" | "lateral"
    masks: Mapping[str, np.ndarray]
    sides: Mapping[str, str | None]
    thorax: np.ndarray
    source: str = "atlas"  # "atlas" | "segmentation"
    mirrored: bool = False
    structures: Mapping[str, np.ndarray] = field(default_factory=dict)

    @property
    def shape(self) -> tuple[int, int]:
        return self.thorax.shape  # type: ignore[return-value]

    def union(self, names: Sequence[str]) -> np.ndarray:
        out = np.zeros(self.shape, dtype=bool)
        for n in names:
            if n not in self.masks:
                raise ReportgenError("E606", f"unknown zone {n!r} on a {self.kind} view",
                                     fix=f"use one of {', '.join(sorted(self.masks))}")
            out |= self.masks[n]
        return out

    def side_mask(self, side: str) -> np.ndarray:
        """The image half that holds the patient's ``side`` (frontal views)."""
        h, w = self.shape
        xs = (np.arange(w) + 0.5) / w
        # Standard display: patient right on the image left.
        right_half = xs < 0.5
        if self.mirrored:
            right_half = ~right_half
        half = right_half if side == "right" else ~right_half
        return np.broadcast_to(half[None, :], (h, w)).copy()


def pretty(zone: str) -> str:
    """Zone id -> words for reasons: "left_upper_zone" -> "left upper zone"."""
    return zone.replace("_", " ")


def rasterise_polygon(polygon: Sequence[Sequence[float]], shape: tuple[int, int]) -> np.ndarray:
    """Boolean mask of the pixels whose centres lie inside ``polygon`` (even-odd rule)."""
    h, w = shape
    pts = np.asarray(polygon, dtype=np.float64)
    ys = (np.arange(h) + 0.5) / h
    xs = (np.arange(w) + 0.5) / w
    X, Y = np.meshgrid(xs, ys)
    inside = np.zeros(shape, dtype=bool)
    x0, y0 = pts[:, 0], pts[:, 1]
    x1, y1 = np.roll(x0, -1), np.roll(y0, -1)
    for ax, ay, bx, by in zip(x0, y0, x1, y1):
        if ay == by:
            continue
        crosses = (ay > Y) != (by > Y)
        xint = ax + (Y - ay) * (bx - ax) / (by - ay)
        inside ^= crosses & (X < xint)
    return inside


def box_mask(box: tuple[float, float, float, float], shape: tuple[int, int]) -> np.ndarray:
    """Mask of a normalised box (x_min, y_min, x_max, y_max); at least one pixel."""
    h, w = shape
    x0, y0, x1, y1 = box
    c0, c1 = int(np.floor(x0 * w)), int(np.ceil(x1 * w))
    r0, r1 = int(np.floor(y0 * h)), int(np.ceil(y1 * h))
    c1, r1 = max(c1, c0 + 1), max(r1, r0 + 1)
    out = np.zeros(shape, dtype=bool)
    out[max(r0, 0):min(r1, h), max(c0, 0):min(c1, w)] = True
    return out


def resize_mask(mask: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Nearest-neighbour resize of a boolean mask (no scipy needed)."""
    m = np.asarray(mask).astype(bool)
    h, w = shape
    rows = np.minimum((np.arange(h) + 0.5) * m.shape[0] / h, m.shape[0] - 1).astype(int)
    cols = np.minimum((np.arange(w) + 0.5) * m.shape[1] / w, m.shape[1] - 1).astype(int)
    return m[rows][:, cols]


class Atlas:
    """The zone atlas: zone masks per view and the mapping from findings to zones."""

    def __init__(self, data: Mapping[str, Any], path: str = "<dict>"):
        self.path = path
        self.data = data
        self._validate()

    @classmethod
    def load(cls, path: str | Path | None = None) -> "Atlas":
        p = Path(path) if path is not None else ATLAS_PATH
        if path is None:
            return _default_atlas()
        return cls(_read_json(p), str(p))

    @property
    def version(self) -> str:
        return str(self.data["version"])

    def _validate(self) -> None:
        d = self.data
        where = self.path
        if not isinstance(d, Mapping) or "version" not in d:
            raise ReportgenError("E605", f"{where}: zone atlas needs a 'version' key", fix="see checkers/data/zones.json")
        for kind in ("frontal", "lateral"):
            sect = d.get(kind)
            if not isinstance(sect, Mapping) or "structures" not in sect or "zones" not in sect:
                raise ReportgenError("E605", f"{where}: section {kind!r} needs 'structures' and 'zones'")
            for name, s in sect["structures"].items():
                poly = s.get("polygon")
                if not isinstance(poly, list) or len(poly) < 3 or any(
                    len(p) != 2 or not all(0.0 <= float(v) <= 1.0 for v in p) for p in poly
                ):
                    raise ReportgenError("E605", f"{where}: {kind} structure {name!r} needs a polygon of >= 3 [x, y] points in 0..1")
            for name, z in sect["zones"].items():
                if name == "comment":
                    continue
                if z.get("structure") not in sect["structures"]:
                    raise ReportgenError("E605", f"{where}: {kind} zone {name!r} names unknown structure {z.get('structure')!r}")
            for gname in ("sided_groups", "midline_groups"):
                for g, zs in sect.get(gname, {}).items():
                    if g == "comment":
                        continue
                    for z in zs:
                        full = [z] if gname == "midline_groups" else [f"right_{z}", f"left_{z}"]
                        for f in full:
                            if f not in sect["zones"]:
                                raise ReportgenError("E605", f"{where}: group {g!r} names unknown zone {f!r} ({kind})")

    # ---- masks -------------------------------------------------------------------------
    def zone_set(
        self, view: str | None = None, *, shape: tuple[int, int] = (GRID, GRID),
        mirrored: bool = False, lungs: LungMasks | None = None,
    ) -> ZoneSet:
        """Zone masks for an image of ``view`` on a ``shape`` grid (normalised coords)."""
        kind = view_kind(view)
        if lungs is None and not mirrored:
            return _cached_zone_set(self, kind, shape)
        return self._build(kind, shape, mirrored, lungs)

    def _build(self, kind: str, shape: tuple[int, int], mirrored: bool, lungs: LungMasks | None) -> ZoneSet:
        sect = self.data[kind]
        structures: dict[str, np.ndarray] = {
            name: rasterise_polygon(s["polygon"], shape) for name, s in sect["structures"].items()
        }
        sides = {name: s.get("side") for name, s in sect["structures"].items()}
        source = "atlas"
        if lungs is not None and kind == "frontal":
            source = "segmentation"
            seg = {"lung_right": lungs.right, "lung_left": lungs.left}
            if lungs.heart is not None:
                seg["cardiac_silhouette"] = lungs.heart
            for name, m in seg.items():
                m = resize_mask(m, shape)
                structures[name] = m[:, ::-1] if mirrored else m  # to the standard orientation
        masks: dict[str, np.ndarray] = {}
        zone_sides: dict[str, str | None] = {}
        for name, z in sect["zones"].items():
            if name == "comment":
                continue
            base = structures[z["structure"]]
            m = base.copy()
            if "band" in z and base.any():
                rows = np.nonzero(base.any(axis=1))[0]
                top, bottom = rows[0], rows[-1] + 1
                b0, b1 = z["band"]
                r0 = int(round(top + b0 * (bottom - top)))
                r1 = int(round(top + b1 * (bottom - top)))
                band = np.zeros(shape[0], dtype=bool)
                band[r0:r1] = True
                m &= band[:, None]
            if "lateral" in z and base.any():
                cols = np.nonzero(base.any(axis=0))[0]
                left_c, right_c = cols[0], cols[-1] + 1
                f0, f1 = z["lateral"]
                width = right_c - left_c
                keep = np.zeros(shape[1], dtype=bool)
                if sides.get(z["structure"]) == "left":  # lateral wall on the image right
                    keep[int(round(right_c - f1 * width)):int(round(right_c - f0 * width))] = True
                else:
                    keep[int(round(left_c + f0 * width)):int(round(left_c + f1 * width))] = True
                m &= keep[None, :]
            masks[name] = m
            zone_sides[name] = sides.get(z["structure"])
        thorax = np.zeros(shape, dtype=bool)
        for m in structures.values():
            thorax |= m
        if mirrored:
            masks = {k: v[:, ::-1].copy() for k, v in masks.items()}
            structures = {k: v[:, ::-1].copy() for k, v in structures.items()}
            thorax = thorax[:, ::-1].copy()
        return ZoneSet(kind, masks, zone_sides, thorax, source, mirrored, structures)

    # ---- findings -> zones -------------------------------------------------------------
    def _lookup(self, word: str, table: str) -> Mapping[str, Any] | None:
        terms = self.data["terms"]
        w = " ".join(str(word).lower().replace("the ", " ").split())
        hit = terms.get(table, {}).get(w)
        if hit is None and w.endswith("s"):
            hit = terms.get(table, {}).get(w[:-1])
        if hit is None and table == "locations":
            for key, rule in terms.get("location_keywords", []):
                if key in w:
                    return rule
        return hit

    def localisable(self, finding: Any) -> bool:
        """False for findings the region checker does not judge: diffuse, extrathoracic,
        device or normal-statement observations (``terms.not_localised_*``) without a location."""
        terms = self.data["terms"]
        if getattr(finding, "locations", ()):
            return True
        if str(getattr(finding, "observation", "")).lower() in terms.get("not_localised_observations", ()):
            return False
        anatomy = getattr(finding, "anatomy", None)
        return not (anatomy and str(anatomy).lower() in terms.get("not_localised_anatomy", ()))

    def claim_zones(self, finding: Any, view: str | None = None) -> ClaimZones:
        """Zones a finding (``reportgen.types.Finding`` or anything with observation,
        laterality, locations, anatomy) points at on ``view``."""
        kind = view_kind(view)
        terms = self.data["terms"]
        groups: list[str] = []
        forced: str | None = None
        for loc in getattr(finding, "locations", ()) or ():
            rule = self._lookup(loc, "locations")
            if rule:
                groups += rule["groups"]
                forced = forced or rule.get("force_side")
        explicit = bool(groups)
        anatomy = getattr(finding, "anatomy", None)
        arule = self._lookup(anatomy, "anatomy") if anatomy else None
        if not groups and arule and not arule.get("generic"):
            groups += arule["groups"]
            forced = forced or arule.get("force_side")
            explicit = True
        if not groups:
            rule = terms.get("observations", {}).get(str(getattr(finding, "observation", "")).lower())
            groups += (rule or arule or terms["fallback"])["groups"]
        groups = list(dict.fromkeys(groups))
        side = getattr(finding, "laterality", None)
        if side not in ("right", "left", "bilateral"):
            side = None
        if forced and side in (None, forced):
            side = forced
        sect = self.data[kind]
        sided = sect.get("sided_groups", {})
        midline_groups = sect.get("midline_groups", {})
        by_side: dict[str, list[str]] = {"right": [], "left": []}
        midline: list[str] = []
        for g in groups:
            if g in sided:
                for s in (("right", "left") if side in (None, "bilateral") else (side,)):
                    by_side[s] += [f"{s}_{z}" for z in sided[g]]
            elif g in midline_groups:
                midline += list(midline_groups[g])
        if not any(by_side.values()) and not midline:  # e.g. a sided-only group on a lateral view
            midline = list(midline_groups.get("lung", ())) or [z for z in sect["zones"] if z != "comment"]
        by = {s: tuple(dict.fromkeys(v)) for s, v in by_side.items() if v}
        mid = tuple(dict.fromkeys(midline))
        zones = tuple(dict.fromkeys([z for v in by.values() for z in v] + list(mid)))
        lat = side if kind == "frontal" else None
        return ClaimZones(zones, by, mid, lat, tuple(groups), explicit)


def _read_json(p: Path) -> Any:
    try:
        return json.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ReportgenError("E605", f"zone atlas {p} not found", fix="pass an existing JSON file or None for the built-in atlas") from None
    except json.JSONDecodeError as e:
        raise ReportgenError("E605", f"{p}:{e.lineno}: zone atlas is not valid JSON ({e.msg})") from None


@lru_cache(maxsize=1)
def _default_atlas() -> Atlas:
    return Atlas(_read_json(ATLAS_PATH), str(ATLAS_PATH))


_ZONE_CACHE: dict[tuple[int, str, tuple[int, int]], ZoneSet] = {}


def _cached_zone_set(atlas: Atlas, kind: str, shape: tuple[int, int]) -> ZoneSet:
    key = (id(atlas), kind, tuple(shape))
    zs = _ZONE_CACHE.get(key)
    if zs is None:
        if len(_ZONE_CACHE) > 32:
            _ZONE_CACHE.clear()
        zs = _ZONE_CACHE[key] = atlas._build(kind, tuple(shape), False, None)
    return zs


# A segmentation hook: image (H, W float 0..1) -> LungMasks, or None where it cannot tell.
# Pixels carry no orientation, so a segmenter labels the sides as on a STANDARD frontal
# display (right = the lung on the image left); RegionChecker swaps them for images flagged
# mirrored before ``zone_set``. Built-in segmenters: reportgen.checkers.region.segment.
Segmenter = Callable[[np.ndarray], "LungMasks | None"]
