"""Semi-synthetic evaluation of the region checker on REAL radiographs with INSERTED lesions.

THIS IS SEMI-SYNTHETIC: the radiographs are real (../shared/data/cxr), the lesions are
not. It measures whether the machinery (dense maps -> zones -> CNR -> verdicts) finds a
lesion of known position and flags claims on the wrong side; it says nothing about real
pathology.

Method
- Base images: the real radiographs of ../shared/data/cxr (NIH, RSNA DICOM, COVID, TBX11K),
  resized to 256x256 grey. Bases are split: TRAIN_BASES for fine-tuning and calibration,
  TEST_BASES (other patients) for every reported number.
- Lesion: a Gaussian-blob opacity ``I' = I + c * (1 - I) * exp(-r^2 / (2 s^2))`` (it brightens
  toward white, as an opacity does) with contrast c in [0.35, 0.6] and s in [0.035, 0.055]
  of the image width, centred uniformly inside one of six atlas zones (right/left x
  upper/middle/lower lung zone of checkers/data/zones.json; patient left = image right).
  Ground truth: the zone and the disk of radius 2s around the centre.
- Sentences: a lesion image gets "<Side> <level> lung opacity." (or a paraphrase, or the
  unlocalised "Focal opacity."); a clear image gets "No focal opacity." / "The lungs are clear.".
- Model: a SMALL open_clip ViT built from a config (no download; 96x96 input, 8x8 patches ->
  12x12 grid, 3 layers, average pooling) fine-tuned from random weights with
  ``reportgen train-clip``'s code (contrastive loss), lesions inserted on the fly.
- Calibration: the thresholds are calibrated (checkers.region.calibrate) on lesions inserted
  into the TRAIN bases; tested on the TEST bases.
- Metrics on fresh test lesions, query "opacity" (the checker's finding query):
  pointing game (argmax of the map inside the thorax falls in the lesion disk / in the
  lesion's zone), CNR of the map (lesion disk vs the rest of the thorax), and claim-level
  verdicts of the region checker: correct-side claims, wrong-side claims (same level,
  other side), and claims on clear images. The untrained (random) model is the baseline.
- TBX11K: the three TBX11K images' boxes (COCO xywh pixels) go through the grounded box
  checker: side and zone of each box, a claim on the box's side (supported) and on the
  other side (contradicted), and the trained model's box CNR (out of distribution: TB is
  not a Gaussian blob).

    python -m evals.region_semisynthetic [--steps 600] [--out runs/region_semisynthetic.json]
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"
TRAIN_BASES = ("00000001_000.png", "tbx11k/h0001.png", "tbx11k/tb0007.png")
TEST_BASES = ("00027426_000.png", "16747_3_1.jpg", "tbx11k/tb0005.png")
SIDES = ("right", "left")
LEVELS = ("upper", "middle", "lower")
LEVEL_WORD = {"upper": "upper", "middle": "mid", "lower": "lower"}  # "mid lung" is what the claim reader knows
BASE_SIZE = 256

EVAL_CONFIG = {
    "embed_dim": 64,
    "vision_cfg": {"image_size": 96, "layers": 3, "width": 96, "head_width": 32, "patch_size": 8, "pool_type": "avg"},
    "text_cfg": {"context_length": 24, "vocab_size": 49408, "width": 64, "heads": 2, "layers": 2},
}


def load_bases(names, data: Path = DATA) -> dict[str, np.ndarray]:
    from checkers.region.images import load_radiograph

    out = {}
    for n in names:
        px = load_radiograph(data / "cxr" / n).pixels
        import torch
        import torch.nn.functional as F

        t = F.interpolate(torch.from_numpy(px)[None, None], size=(BASE_SIZE, BASE_SIZE), mode="bilinear", antialias=True)
        out[n] = t[0, 0].numpy().astype(np.float32)
    return out


class LesionSampler:
    """Gaussian-blob opacities inside atlas zones (see the module docstring)."""

    def __init__(self):
        from checkers.region.zones import Atlas

        self.zones = Atlas.load().zone_set("PA", shape=(BASE_SIZE, BASE_SIZE))
        self.points = {
            (s, lv): np.argwhere(self.zones.masks[f"{s}_{lv}_zone"]) for s in SIDES for lv in LEVELS
        }

    def insert(self, img: np.ndarray, side: str, level: str, rng: np.random.Generator):
        pts = self.points[(side, level)]
        r, c = pts[rng.integers(len(pts))]
        sigma = rng.uniform(0.035, 0.055) * BASE_SIZE
        contrast = rng.uniform(0.35, 0.6)
        yy, xx = np.mgrid[0:BASE_SIZE, 0:BASE_SIZE]
        g = np.exp(-((yy - r) ** 2 + (xx - c) ** 2) / (2 * sigma**2)).astype(np.float32)
        out = np.clip(img + contrast * (1 - img) * g, 0, 1)
        disk = ((yy - r) ** 2 + (xx - c) ** 2) <= (2 * sigma) ** 2
        return out, {"side": side, "level": level, "row": int(r), "col": int(c), "sigma": float(sigma),
                     "contrast": float(contrast), "disk": disk}


def claim_text(side: str, level: str) -> str:
    return f"{side.capitalize()} {LEVEL_WORD[level]} lung opacity."


def lesion_sentence(side: str, level: str, rng: np.random.Generator) -> str:
    level = LEVEL_WORD[level]
    forms = (f"{side.capitalize()} {level} lung opacity.", f"Opacity in the {side} {level} zone.",
             f"Focal opacity in the {side} {level} lung.", "Focal opacity.")
    return forms[rng.choice(4, p=[0.3, 0.25, 0.25, 0.2])]


def clear_sentence(rng: np.random.Generator) -> str:
    return ("No focal opacity.", "The lungs are clear.")[rng.integers(2)]


def jitter(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Brightness/contrast jitter (no flips: they would swap the sides)."""
    a, b = rng.uniform(0.85, 1.15), rng.uniform(-0.08, 0.08)
    return np.clip((img - 0.5) * a + 0.5 + b, 0, 1).astype(np.float32)


def make_augment(sampler: LesionSampler, p_lesion: float = 0.7):
    def augment(px, pair, rng):
        px = jitter(px, rng)
        if rng.random() < p_lesion:
            side, level = SIDES[rng.integers(2)], LEVELS[rng.integers(3)]
            px, _ = sampler.insert(px, side, level, rng)
            return px, lesion_sentence(side, level, rng)
        return px, clear_sentence(rng)

    return augment


_TEMPLATE = re.compile(r"(right|left) (upper|mid|lower) lung opacity\.", re.I)


def _reader(text: str):
    """The claims of this evaluation's template sentences ("Left mid lung opacity.") as the
    rules reader reads them (side + zone word): the evaluation isolates the region checker
    from the text reader, whose handling of these sentences is tested with it."""
    from reportgen.protocols import CheckedClaim
    from reportgen.types import Claim, EntityGraph, Finding

    loc = {"upper": "upper lobe", "mid": "midlung", "lower": "lower lobe"}
    out = []
    for m in _TEMPLATE.finditer(text):
        f = Finding("opacity", "present", m.group(1).lower(), (loc[m.group(2).lower()],), "lung", start=m.start(), end=m.end())
        out.append(CheckedClaim(Claim(m.group(0), "findings", m.start(), m.end()), EntityGraph(), (f,)))
    return out


def calibration_labels(bases, sampler, rng, n_per_base: int = 12) -> list[dict]:
    rows = []
    for name, img in bases.items():
        for k in range(n_per_base):
            side, level = SIDES[k % 2], LEVELS[(k // 2) % 3]
            px, _ = sampler.insert(jitter(img, rng), side, level, rng)
            other = "left" if side == "right" else "right"
            rows.append({"image": px, "view": "PA", "text": claim_text(side, level), "label": True})
            rows.append({"image": px, "view": "PA", "text": claim_text(other, level), "label": False})
            clear = jitter(img, rng)
            rows.append({"image": clear, "view": "PA", "text": claim_text(side, level), "label": False})
    return rows


def evaluate(rc, bases, sampler, rng, n_per_base: int = 24) -> dict:
    """Pointing game, CNR and claim verdicts on fresh lesions in the given bases."""
    from checkers.region.evidence import cnr

    hits_disk = hits_zone = 0
    cnrs = []
    verdicts = {"correct": [], "wrong_side": [], "clear": []}
    n = 0
    for name, img in bases.items():
        for k in range(n_per_base):
            side, level = SIDES[k % 2], LEVELS[(k // 2) % 3]
            px, les = sampler.insert(jitter(img, rng), side, level, rng)
            enc = rc.encode_image(px, "PA")
            m = rc.similarity_maps(enc, ["opacity"])[0]
            zs = enc.zones
            disk = _resize_bool(les["disk"], m.shape)
            masked = np.where(zs.thorax, m, -np.inf)
            r, c = np.unravel_index(np.argmax(masked), m.shape)
            hits_disk += bool(disk[r, c])
            hits_zone += bool(zs.masks[f"{side}_{level}_zone"][r, c])
            cnrs.append(cnr(m, disk, zs.thorax | disk))
            other = "left" if side == "right" else "right"
            claims = _reader(f"{claim_text(side, level)} {claim_text(other, level)}")
            vs = rc.check_images([px], ["PA"], claims)
            st = {v.claim.text.split()[0].lower(): v.status for v in vs}
            verdicts["correct"].append(st.get(side))
            verdicts["wrong_side"].append(st.get(other))
            clear_claims = _reader(claim_text(side, level))
            (cv,) = rc.check_images([jitter(img, rng)], ["PA"], clear_claims)
            verdicts["clear"].append(cv.status)
            n += 1
    frac = lambda xs, s: float(np.mean([x == s for x in xs]))  # noqa: E731
    return {
        "n_lesions": n,
        "pointing_disk": hits_disk / n, "pointing_zone": hits_zone / n,
        "cnr_mean": float(np.mean(cnrs)), "cnr_median": float(np.median(cnrs)),
        "correct_supported": frac(verdicts["correct"], "supported"),
        "correct_contradicted": frac(verdicts["correct"], "contradicted"),
        "wrong_side_contradicted": frac(verdicts["wrong_side"], "contradicted"),
        "wrong_side_flagged": float(np.mean([v in ("contradicted", "unsupported") for v in verdicts["wrong_side"]])),
        "clear_unsupported": frac(verdicts["clear"], "unsupported"),
    }


def _resize_bool(mask: np.ndarray, shape) -> np.ndarray:
    from checkers.region.zones import _resize_mask

    return _resize_mask(mask, shape)


def tbx11k_check(rc, data: Path = DATA) -> list[dict]:
    from checkers.region.grounded import check_box, describe_box, tbx11k_boxes
    from reportgen.types import Finding

    rows = []
    boxes = tbx11k_boxes(data / "cxr" / "tbx11k" / "TBX11K_boxes.json")
    for name, items in boxes.items():
        for cat, box in items:
            d = describe_box(box)
            side = d["side"]
            level = d["best_zone"].split("_")[1] if d["best_zone"].count("_") >= 2 else None
            row = {"image": name, "category": cat, "side": side, "best_zone": d["best_zone"],
                   "zone_overlap": d["best_zone_overlap"]}
            if side in ("right", "left"):
                locs = (f"{level} lobe",) if level else ()
                f = Finding("opacity", "present", side, locs)
                other = Finding("opacity", "present", "left" if side == "right" else "right", locs)
                enc = rc.encode_image(str(data / "cxr" / "tbx11k" / name), "PA") if rc is not None else None
                sim = rc.similarity_maps(enc, ["opacity"])[0] if enc is not None else None
                same = check_box(f, [box], calibration=rc.calibration if rc else None)
                wrong = check_box(other, [box])
                row.update({"claim_same_side": same.status, "claim_other_side": wrong.status})
                if sim is not None:
                    row["box_cnr"] = round(check_box(f, [box], sim=sim, calibration=rc.calibration).meta["box_cnr"], 3)
            rows.append(row)
    return rows


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--steps", type=int, default=600, help="optimisation steps (batches)")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--lr", type=float, default=5e-4)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--n-test", type=int, default=24, help="test lesions per test base image")
    ap.add_argument("--data", default=str(DATA))
    ap.add_argument("--out", default=str(REPO / "runs" / "region_semisynthetic.json"))
    ap.add_argument("--workdir", default=str(REPO / "runs" / "region_semisynthetic"))
    ap.add_argument("--figure", action="store_true", help="also write an example PNG of flagged claims")
    ap.add_argument("--device", default="cpu", help="torch device for training and maps (cpu, cuda)")
    ap.add_argument("--init-logit-scale", type=float, default=None,
                    help="initial log temperature of the CLIP loss (open_clip's default is log(1/0.07) = 2.66)")
    args = ap.parse_args(argv)

    import torch

    from checkers.region.calibrate import calibrate
    from checkers.region.checker import RegionChecker
    from checkers.region.evidence import Calibration
    from checkers.region.train import Pair, train_clip

    data = Path(args.data)
    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    cfg_path = work / "region-semisynthetic-vit.json"
    config = dict(EVAL_CONFIG)
    if args.init_logit_scale is not None:
        config["init_logit_scale"] = args.init_logit_scale
    cfg_path.write_text(json.dumps(config))
    train_bases = load_bases(TRAIN_BASES, data)
    test_bases = load_bases(TEST_BASES, data)
    sampler = LesionSampler()
    results: dict = {"semi_synthetic": True, "config": config, "train_bases": TRAIN_BASES, "test_bases": TEST_BASES,
                     "steps": args.steps, "batch_size": args.batch_size, "lr": args.lr, "seed": args.seed}

    # the untrained baseline: same architecture, random weights, same calibration procedure
    t0 = time.perf_counter()
    per_epoch = args.batch_size * 4
    pairs = [Pair(train_bases[TRAIN_BASES[i % len(TRAIN_BASES)]], "", "PA") for i in range(per_epoch)]
    epochs = max(1, args.steps // 4)
    rows = {}
    for label, ep in (("untrained", 0), ("fine-tuned", epochs)):
        out_dir = work / label
        if ep == 0:
            from checkers.region.train import model_config, save_local_dir
            from checkers.region.model import ClipBackend

            torch.manual_seed(args.seed)
            name, cfg = model_config(str(cfg_path))
            b = ClipBackend(str(cfg_path), warn_random=False, device=args.device).load()
            save_local_dir(b.model, cfg, out_dir)
            losses = []
        else:
            res = train_clip(pairs, str(cfg_path), out_dir, epochs=ep, lr=args.lr, batch_size=args.batch_size, device=args.device,
                             seed=args.seed, augment=make_augment(sampler),
                             progress=lambda e, l: print(f"  epoch {e + 1}/{ep} loss {l:.3f}", file=sys.stderr) if (e + 1) % 10 == 0 else None)
            losses = list(res.losses)
        rc = RegionChecker(f"local-dir:{out_dir}", calibration=Calibration(), device=args.device)
        rng = np.random.default_rng(args.seed + 1)
        calib = calibrate(rc, calibration_labels(train_bases, sampler, rng), reader=_reader, save=True)
        rc = RegionChecker(f"local-dir:{out_dir}", device=args.device)
        metrics = evaluate(rc, test_bases, sampler, np.random.default_rng(args.seed + 2), args.n_test)
        metrics.update({"cnr_threshold": calib.cnr_threshold, "side_margin": calib.side_margin,
                        "calibration_auc": calib.stats["positive"]["auc"], "loss_first": losses[0] if losses else None,
                        "loss_last": losses[-1] if losses else None})
        rows[label] = metrics
        if label == "fine-tuned":
            results["tbx11k"] = tbx11k_check(rc, data)
            if args.figure:
                rng = np.random.default_rng(7)
                img = test_bases[TEST_BASES[0]]
                px, _ = sampler.insert(img, "left", "upper", rng)
                vs = rc.check_images([px], ["PA"], _reader(f"{claim_text('right', 'upper')} {claim_text('left', 'upper')}"))
                rc.render(px, "PA", vs, flagged_only=False, out=work / "example.png", title="semi-synthetic lesion: patient left upper zone")
                results["figure"] = str(work / "example.png")
    results["rows"] = rows
    results["seconds"] = round(time.perf_counter() - t0, 1)

    cols = ("pointing_disk", "pointing_zone", "cnr_mean", "correct_supported", "correct_contradicted",
            "wrong_side_contradicted", "wrong_side_flagged", "clear_unsupported", "calibration_auc")
    print("SEMI-SYNTHETIC (real radiographs, inserted Gaussian-blob lesions) - test bases:", ", ".join(TEST_BASES))
    print(f"{'model':12} " + " ".join(f"{c:>14}" for c in cols))
    for label, m in rows.items():
        print(f"{label:12} " + " ".join(f"{m[c]:>14.3f}" for c in cols))
    print("\nTBX11K boxes (grounded box checker):")
    for r in results.get("tbx11k", []):
        print("  " + ", ".join(f"{k}={v}" for k, v in r.items()))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=2) + "\n")
    print(f"\nwrote {args.out} ({results['seconds']} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
