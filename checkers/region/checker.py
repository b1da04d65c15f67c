"""The region checker: image-region evidence for every claim of a report.

For each study the primary image (the first frontal one; a lateral one when there is
no frontal) is encoded ONCE into patch embeddings; the query texts of all claims are
encoded in ONE batch (cached, LRU by text); each query's cosine-similarity map is smoothed,
upsampled to the normalised analysis grid and compared with the zones the claim's
finding points at (``checkers/data/zones.json``). See docs/region.md for the rules.
"""

from __future__ import annotations

import logging
import os
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from reportgen.checkers.region.evidence import CALIBRATION_FILE, Calibration, Judgement, combine, judge_finding
from reportgen.checkers.region.images import RadiographImage, load_radiograph
from reportgen.checkers.region.model import DEFAULT_MODEL, ClipBackend
from reportgen.checkers.region.segment import resolve_segmenter, segmenter_name
from reportgen.checkers.region.zones import GRID, Atlas, LungMasks, Segmenter, ZoneSet, normalise_view, pretty, view_kind
from reportgen.errors import ReportgenError
from reportgen.protocols import CheckedClaim
from reportgen.types import FLAGGED, EvidenceItem, Finding, Verdict

log = logging.getLogger(__name__)

@dataclass(frozen=True)
class EncodedImage:
    """One image after encoding: dense patch embeddings and its zones."""

    path: str
    view: str | None
    mirrored: bool
    pixels: np.ndarray
    dense: Any  # torch (gh, gw, D), L2-normalised
    pooled: Any  # torch (D,)
    zones: ZoneSet
    view_assumed: bool
    zones_note: str = "atlas"  # where the zones came from, for the evidence meta


def finding_query(finding: Finding) -> str:
    """The text whose map is computed for a finding: severity + observation, without
    laterality or location words (the zone comes from the graph, the map from the image)."""
    words = [finding.severity, finding.observation] if finding.severity else [finding.observation]
    return " ".join(w for w in words if w)


class RegionChecker:
    """Checker "region": claims vs image-region evidence of an open_clip model.

    ``model``: a model spec (see ``reportgen.checkers.region.model``) or a ``ClipBackend``.
    ``calibration``: a Calibration, a path to reportgen_region.json, or None (the file
    next to a ``local-dir:`` checkpoint when there is one, else the uncalibrated defaults).
    ``segmenter``: lung segmentation for the frontal zones: None (the atlas, default), a
    name (``"threshold"``, ``"xrv-pspnet"``; ``reportgen.checkers.region.segment.SEGMENTERS``) or a
    callable pixels -> LungMasks | None (sides as on a standard display; swapped here for
    mirrored images). When it finds no plausible lungs the atlas is used, and the
    evidence meta ``zones`` says so.
    """

    name = "region"

    def __init__(
        self, model: str | ClipBackend = DEFAULT_MODEL, *, pretrained: str | None = None, device: str = "cpu",
        calibration: Calibration | str | Path | None = None, atlas: Atlas | str | Path | None = None,
        segmenter: Segmenter | str | None = None, sigma: float = 1.0, grid: int = GRID,
        text_cache_size: int = 4096, image_cache_size: int = 8,
    ):
        self.backend = model if isinstance(model, ClipBackend) else ClipBackend(model, pretrained=pretrained, device=device)
        self.atlas = atlas if isinstance(atlas, Atlas) else Atlas.load(atlas)
        self.segmenter = resolve_segmenter(segmenter, device=device)
        self.segmenter_name = segmenter_name(self.segmenter)
        self.sigma = float(sigma)
        self.grid = int(grid)
        self.calibration = self._resolve_calibration(calibration)
        self._text_cache: OrderedDict[str, Any] = OrderedDict()
        self._text_cache_size = int(text_cache_size)
        self._image_cache: OrderedDict[tuple, EncodedImage] = OrderedDict()
        self._image_cache_size = int(image_cache_size)

    def _resolve_calibration(self, calibration) -> Calibration:
        if isinstance(calibration, Calibration):
            return calibration
        if calibration is not None:
            return Calibration.load(calibration)
        local = self.backend.local_dir
        if local is not None and (local / CALIBRATION_FILE).is_file():
            return Calibration.load(local / CALIBRATION_FILE)
        return Calibration()

    # ---- encoding with caches ----------------------------------------------------------
    def text_embeddings(self, texts: Sequence[str]):
        """(N, D) embeddings; texts not cached are encoded in ONE batch (LRU cache by text)."""
        import torch

        found: dict[str, Any] = {}
        missing: list[str] = []
        for t in dict.fromkeys(texts):
            if t in self._text_cache:
                self._text_cache.move_to_end(t)
                found[t] = self._text_cache[t]
            else:
                missing.append(t)
        if missing:
            feats = self.backend.encode_texts(missing)
            for t, f in zip(missing, feats):
                found[t] = self._text_cache[t] = f
            while len(self._text_cache) > self._text_cache_size:
                self._text_cache.popitem(last=False)
        if not texts:
            return torch.zeros((0, 1))
        return torch.stack([found[t] for t in texts])

    def encode_image(self, image: Any, view: str | None = None, mirrored: bool | None = None) -> EncodedImage:
        """Encode one image (path, RadiographImage or (H, W) array in 0..1), cached by
        path + mtime + size. ``view`` from the manifest wins over the file's DICOM view;
        ``mirrored`` (True/False, from the study record) wins over the DICOM orientation,
        and is the only way to mark a PNG/JPEG as mirrored (None: the file decides)."""
        key = None
        if isinstance(image, (str, os.PathLike)):
            p = Path(image)
            try:
                st = p.stat()
                key = (str(p.resolve()), st.st_mtime_ns, st.st_size, normalise_view(view), mirrored)
            except OSError:
                key = None
            if key is not None and key in self._image_cache:
                self._image_cache.move_to_end(key)
                return self._image_cache[key]
            rad = load_radiograph(p)
        elif isinstance(image, RadiographImage):
            rad = image
        else:
            arr = np.asarray(image, dtype=np.float32)
            if arr.ndim != 2:
                raise ReportgenError("E603", f"image array has shape {arr.shape}, expected (H, W) grey pixels in 0..1")
            rad = RadiographImage(arr, "<array>")
        if mirrored is not None and bool(mirrored) != rad.mirrored:
            rad = RadiographImage(rad.pixels, rad.path, rad.view, bool(mirrored))
        v = normalise_view(view) or rad.view
        lungs, note = self._lungs(rad, v)
        zones = self.atlas.zone_set(v, shape=(self.grid, self.grid), mirrored=rad.mirrored, lungs=lungs)
        pooled, dense = self.backend.encode_images(self.backend.prepare(rad.pixels)[None])
        enc = EncodedImage(rad.path, v, rad.mirrored, rad.pixels, dense[0], pooled[0], zones, v is None, note)
        if key is not None:
            self._image_cache[key] = enc
            while len(self._image_cache) > self._image_cache_size:
                self._image_cache.popitem(last=False)
        return enc

    def _lungs(self, rad: RadiographImage, view: str | None) -> tuple[LungMasks | None, str]:
        """The segmenter's lungs for a frontal image (patient sides in the displayed
        orientation) and the zones note: "atlas", "segmentation (NAME)" or
        "atlas (NAME segmenter: no plausible lungs)"."""
        if self.segmenter is None or view_kind(view) != "frontal":
            return None, "atlas"
        lungs = self.segmenter(rad.pixels)
        if lungs is None:
            return None, f"atlas ({self.segmenter_name} segmenter: no plausible lungs)"
        if rad.mirrored:  # segmenters label sides as on a standard display (patient right = image left)
            lungs = LungMasks(lungs.left, lungs.right, lungs.heart)
        return lungs, f"segmentation ({self.segmenter_name})"

    def similarity_maps(self, enc: EncodedImage, texts: Sequence[str]) -> np.ndarray:
        """(N, grid, grid) smoothed cosine maps of ``texts`` on the encoded image."""
        from reportgen.checkers.region.model import smooth_and_upsample

        if not texts:
            return np.zeros((0, self.grid, self.grid), dtype=np.float32)
        t = self.text_embeddings(texts).to(enc.dense.dtype)
        sim = enc.dense @ t.T  # (gh, gw, N)
        return smooth_and_upsample(sim.permute(2, 0, 1), self.sigma, (self.grid, self.grid))

    # ---- checking ----------------------------------------------------------------------
    def _query(self, cc: CheckedClaim, f: Finding) -> str:
        return cc.claim.text if self.calibration.query == "claim" else finding_query(f)

    def _primary(self, images: Sequence[Any], views: Sequence[str | None]) -> tuple[int, list[str | None]]:
        vs = [normalise_view(v) for v in (list(views) if views else [None] * len(images))]
        if len(vs) != len(images):
            raise ReportgenError("E604", f"{len(views)} views for {len(images)} images", fix="give one view per image, or none")
        for i, v in enumerate(vs):
            if v in ("PA", "AP"):
                return i, vs
        for i, v in enumerate(vs):
            if v is None:
                return i, vs  # unknown: the DICOM header or the frontal assumption decides
        return 0, vs

    def check_images(
        self, images: Sequence[Any], views: Sequence[str | None], claims: Sequence[CheckedClaim],
        mirrored: Sequence[bool | None] | None = None,
    ) -> list[Verdict]:
        """Verdicts (checker "region") for the claims of one study with ``images``.

        Claims without (localisable) findings get no verdict: diffuse, device, spine and
        normal-statement findings are left to the other checkers (``zones.json``
        ``not_localised_*``). Positive and hedged findings are judged
        on the primary image; negative findings only when the calibration has an absence
        threshold, else an "uncertain" verdict marked ``checkable: False``. ``mirrored``:
        one True/False/None per image (the study record's flag; None: the file decides).
        Verdicts of a model with random weights, or with uncalibrated thresholds, say so in
        their reasons.
        """
        if not images:
            return []
        todo = [(cc, f) for cc in claims for f in cc.findings if f.presence != "hypothetical" and self.atlas.localisable(f)]
        if not todo:
            return []
        idx, vs = self._primary(images, views)
        enc = self.encode_image(images[idx], vs[idx], _flag(mirrored, idx, len(images)))
        queries = [self._query(cc, f) for cc, f in todo]
        uniq = list(dict.fromkeys(queries))
        maps = self.similarity_maps(enc, uniq)
        by_query = {q: maps[i] for i, q in enumerate(uniq)}
        per_claim: dict[int, list[tuple[Finding, str, Judgement]]] = {}
        for (cc, f), q in zip(todo, queries):
            claimed = self.atlas.claim_zones(f, enc.view)
            j = judge_finding(by_query[q], enc.zones, claimed, f.presence, self.calibration, label=repr(q))
            per_claim.setdefault(id(cc), []).append((f, q, j))
        out: list[Verdict] = []
        for cc in claims:
            items = per_claim.get(id(cc))
            if not items:
                continue
            status, reasons, score = combine([j for _, _, j in items])
            if enc.view_assumed:
                reasons = reasons + ("view unknown: the image was assumed frontal (PA/AP)",)
            if enc.zones_note.startswith("atlas ("):
                reasons = reasons + (f"zones from the atlas: the {self.segmenter_name} segmenter found no plausible lungs",)
            reasons = reasons + self._caveats()
            evidence = tuple(self._evidence(enc, f, q, j, idx, images) for f, q, j in items)
            out.append(Verdict(cc.claim, status, reasons, evidence, self.name, score))
        return out

    def _caveats(self) -> tuple[str, ...]:
        """What makes every verdict of this checker weak evidence, said in its reasons."""
        out = []
        if getattr(self.backend, "random_weights", False):
            out.append(f"region model {self.backend.spec!r} has RANDOM weights (no pretrained tag or weights file): "
                       "this verdict carries no image evidence")
        if not self.calibration.calibrated:
            out.append("region thresholds are uncalibrated defaults (no reportgen_region.json fitted on labelled claims)")
        return tuple(out)

    def _evidence(self, enc: EncodedImage, f: Finding, q: str, j: Judgement, idx: int, images) -> EvidenceItem:
        meta = dict(j.meta)
        meta.update({
            "image": enc.path, "image_index": idx, "view": enc.view, "mirrored": enc.mirrored,
            "query": q, "model": self.backend.spec, "sigma": self.sigma, "atlas_version": self.atlas.version,
            "zones": enc.zones_note,
        })
        name = Path(enc.path).name if enc.path != "<array>" else "image"
        # The evidence keeps the raw CNR; the verdict's score is the [0, 1] support (evidence.support).
        return EvidenceItem(source="image", text=f"similarity map of {q!r} on {name}", findings=(f,),
                            score=j.cnr, meta=meta)

    def check(self, claims: Sequence[CheckedClaim], evidence: Sequence[EvidenceItem]) -> list[Verdict]:
        """Checker protocol: images come as evidence items with source "image" and
        ``meta={"image": path, "view": "PA", "mirrored": bool?}``; without them there is nothing to check."""
        imgs = [e for e in evidence if e.source == "image" and e.meta.get("image")]
        if not imgs:
            return []
        return self.check_images([e.meta["image"] for e in imgs], [e.meta.get("view") for e in imgs], claims,
                                 [e.meta.get("mirrored") for e in imgs])

    # ---- visuals -------------------------------------------------------------------------
    def render_study(
        self, images: Sequence[Any], views: Sequence[str | None], verdicts: Sequence[Verdict], *,
        flagged_only: bool = True, out: str | Path | None = None, title: str | None = None,
        mirrored: Sequence[bool | None] | None = None,
    ) -> bytes:
        """``render`` on the image ``check_images`` judges for this study (the first
        frontal one): the PNG of a study, as ``reportgen check --region-png-dir`` writes it."""
        if not images:
            raise ReportgenError("E603", "no image to render", fix="give the study's images")
        idx, vs = self._primary(images, views)
        return self.render(images[idx], vs[idx], verdicts, flagged_only=flagged_only, out=out, title=title,
                           mirrored=_flag(mirrored, idx, len(images)))

    def render(
        self, image: Any, view: str | None, verdicts: Sequence[Verdict], *, flagged_only: bool = True,
        out: str | Path | None = None, title: str | None = None, mirrored: bool | None = None,
    ) -> bytes:
        """PNG of the image with the similarity map of each (flagged) verdict and its claimed
        zone outlined. Returns the PNG bytes (also written to ``out`` when given)."""
        from reportgen.checkers.region.visuals import Panel, render_panels

        enc = self.encode_image(image, view, mirrored)
        panels = []
        for v in verdicts:
            if v.checker != self.name or (flagged_only and v.status not in FLAGGED):
                continue
            for e in v.evidence:
                if e.source != "image" or "query" not in e.meta:
                    continue
                m = self.similarity_maps(enc, [e.meta["query"]])[0]
                zone = enc.zones.union(e.meta.get("zone", ())) if e.meta.get("zone") else None
                best = enc.zones.masks.get(e.meta.get("best_zone")) if e.meta.get("best_zone") else None
                claimed = ", ".join(pretty(z) for z in e.meta.get("zone", ())) or "no zone"
                best_name = pretty(e.meta["best_zone"]) if e.meta.get("best_zone") else "none"
                caption = (f"{v.status}: {v.claim.text}\nclaimed {claimed} (CNR {float(e.meta.get('cnr', 0.0)):.2f}); "
                           f"best {best_name}")
                panels.append(Panel(m, zone, best, caption, zone_label=claimed, best_label=best_name))
        marker = None if enc.zones.kind == "lateral" else ("right" if enc.mirrored else "left")
        return render_panels(enc.pixels, panels, out=out, title=title, right_marker=marker)


def _flag(mirrored: Sequence[bool | None] | None, idx: int, n: int) -> bool | None:
    """The study record's mirrored flag of image ``idx`` (None: not given)."""
    if not mirrored:
        return None
    if len(mirrored) != n:
        raise ReportgenError("E140", f"{len(mirrored)} mirrored flags for {n} images",
                             fix="give one true/false/null per image in 'mirrored', or one true/false for all")
    value = mirrored[idx]
    return None if value is None else bool(value)


def load_region_checker(model: str, *, pretrained: str | None = None, device: str | None = None,
                        calibration: str | None = None, segmenter: Any = None) -> RegionChecker:
    """A RegionChecker with its model (and segmenter weights) loaded now, so a model that
    cannot load stops a batch before any record is read (E701 names the model)."""
    rc = RegionChecker(model, pretrained=pretrained, device=device, calibration=calibration, segmenter=segmenter)
    if hasattr(rc.segmenter, "load"):
        rc.segmenter.load()  # missing weights (E613/E614)
    try:
        rc.backend.load()
    except ReportgenError:
        raise
    except Exception as e:  # network, corrupt weights, ...: say which model
        raise ReportgenError("E701", f"region model {model!r} could not be loaded ({type(e).__name__}: {e})",
                             fix="check the model spec; offline, use local-dir:PATH (e.g. written by `reportgen train-clip`)") from None
    return rc
