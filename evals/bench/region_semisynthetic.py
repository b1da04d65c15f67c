"""Semi-synthetic evaluation of the region checker on REAL radiographs with INSERTED lesions.

THIS IS SEMI-SYNTHETIC: the radiographs are real (../shared/data/cxr), the lesions are
not. It measures whether the machinery (dense maps -> zones -> CNR -> verdicts) finds a
lesion of known position and flags claims on the wrong side; it says nothing about real
pathology.

Method
- Base images: real radiographs of ../shared/data/cxr resized to 256x256 grey. TRAIN_BASES
  (3 patients) are used for training and calibration; TEST_BASES (3 other patients) for the
  held-out numbers; "train bases" rows use fresh lesions on the training patients. During
  training every film is varied per sample (``vary_base``: mirrored half the time BEFORE the
  lesion goes in, scale, rotation, shift, gamma) and jittered in brightness/contrast.
- Lesion: a Gaussian-blob opacity ``I' = I + c * (1 - I) * exp(-r^2 / (2 s^2))`` (it brightens
  toward white, as an opacity does) with contrast c in [0.35, 0.6] and s in [0.035, 0.055]
  of the image width, centred in one of six atlas zones (right/left x upper/middle/lower
  lung zone of checkers/data/zones.json; patient left = image right), at a point of the
  zone darker than the zone's median on that radiograph (the lung field: the atlas is not
  fitted to each film, and on bone, heart or outside the body ``c * (1 - I)`` adds almost
  nothing). Ground truth: the zone and the disk of radius 2s around the centre.
- Sentences: a lesion image gets "<Side> <upper|mid|lower> lung opacity." (70%) or the
  finding phrase "opacity" (30%, the checker's map query); a clear image (30% of the
  samples) "No opacity.". One sentence per zone: paraphrases would be negatives of each other.
- Model: a SMALL open_clip ModifiedResNet (CLIP's RN layout, widths /8: 128x128 input ->
  4x4 map grid) and a 2-layer text tower, built from a config (no download), trained from
  RANDOM weights with ``reportgen train-clip``'s code (reportgen.checkers.region.train.train_clip):
  global CLIP loss + the token-level (max over patches) loss with weight 0.5, every batch
  drawn from one base radiograph (``group_by``), lr 1e-3, 40 warm-up steps and cosine decay,
  1,200 steps of 32, and during the first
  40% of the steps denser lesions (contrast raised toward 1, annealed to the test range).
  Lesions and sentences are drawn on the fly, so no training image is ever seen twice.
- Calibration: the thresholds are calibrated (reportgen.checkers.region.calibrate) on lesions inserted
  into the TRAIN bases; tested on fresh lesions.
- Metrics, query "opacity" (the checker's finding query): pointing game (argmax of the map
  inside the thorax falls in the lesion's zone / in the lesion disk), CNR of the map
  (lesion disk vs the rest of the thorax), claim verdicts of the region checker (the
  correct-side claim, the same level on the wrong side, a claim on a clear image), and the
  AUC of the claimed-zone CNR for true vs false claims (correct vs wrong-side and
  clear-image claims). The untrained (random) model is the baseline.
- TBX11K: the three TBX11K images' boxes (COCO xywh pixels) go through the grounded box
  checker: side and zone of each box, a claim on the box's side (supported) and on the
  other side (contradicted), and the trained model's box CNR (out of distribution: TB is
  not a Gaussian blob).

    python -m evals.bench.region_semisynthetic [--steps 1200] [--out runs/region_semisynthetic.json]
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
import time
from pathlib import Path

import numpy as np

from evals.bench import write_json

REPO = Path(__file__).resolve().parents[2]
DATA = REPO.parent / "shared" / "data"
TRAIN_BASES = ("00000001_000.png", "tbx11k/h0001.png", "tbx11k/tb0007.png")
TEST_BASES = ("00027426_000.png", "16747_3_1.jpg", "tbx11k/tb0005.png")
SIDES = ("right", "left")
LEVELS = ("upper", "middle", "lower")
LEVEL_WORD = {"upper": "upper", "middle": "mid", "lower": "lower"}  # "mid lung" is what the claim reader knows
BASE_SIZE = 256
QUERY = "opacity"  # the checker's query for the finding of every claim below
CLEAR_SENTENCE = "No opacity."

EVAL_CONFIG = {
    "embed_dim": 64,
    "vision_cfg": {"image_size": 128, "layers": [1, 1, 1, 1], "width": 8, "head_width": 32},
    "text_cfg": {"context_length": 24, "vocab_size": 49408, "width": 64, "heads": 2, "layers": 2},
}


def load_bases(names, data: Path = DATA) -> dict[str, np.ndarray]:
    import torch
    import torch.nn.functional as F

    from reportgen.checkers.region.images import load_radiograph

    out = {}
    for n in names:
        px = load_radiograph(data / "cxr" / n).pixels
        t = F.interpolate(torch.from_numpy(px)[None, None], size=(BASE_SIZE, BASE_SIZE), mode="bilinear", antialias=True)
        out[n] = t[0, 0].numpy().astype(np.float32)
    return out


def _blur(img: np.ndarray, radius: int = 8) -> np.ndarray:
    """Box blur (2 * radius + 1 wide) with edge padding: the local brightness of the film."""
    k = 2 * radius + 1
    p = np.pad(img, radius, mode="edge").cumsum(0).cumsum(1)
    p = np.pad(p, ((1, 0), (1, 0)))
    return (p[k:, k:] - p[:-k, k:] - p[k:, :-k] + p[:-k, :-k]) / (k * k)


class LesionSampler:
    """Gaussian-blob opacities inside atlas zones, in the lung field of the image they go
    into (see the module docstring)."""

    def __init__(self):
        from reportgen.checkers.region.zones import Atlas

        self.zones = Atlas.load().zone_set("PA", shape=(BASE_SIZE, BASE_SIZE))
        self.points = {(s, lv): np.argwhere(self.zones.masks[f"{s}_{lv}_zone"]) for s in SIDES for lv in LEVELS}

    def candidates(self, img: np.ndarray, side: str, level: str) -> np.ndarray:
        """The points of the zone darker than the zone's median on this image (its lung field)."""
        pts = self.points[(side, level)]
        v = _blur(img)[pts[:, 0], pts[:, 1]]
        return pts[v <= np.median(v)]

    def insert(self, img: np.ndarray, side: str, level: str, rng: np.random.Generator, boost: float = 0.0):
        """(pixels with the lesion, truth). ``boost`` in [0, 1] raises the contrast toward 1."""
        pts = self.candidates(img, side, level)
        r, c = pts[rng.integers(len(pts))]
        sigma = rng.uniform(0.035, 0.055) * BASE_SIZE
        contrast = rng.uniform(0.35, 0.6)
        contrast += boost * (1 - contrast)
        yy, xx = np.mgrid[0:BASE_SIZE, 0:BASE_SIZE]
        g = np.exp(-((yy - r) ** 2 + (xx - c) ** 2) / (2 * sigma**2)).astype(np.float32)
        out = np.clip(img + contrast * (1 - img) * g, 0, 1)
        disk = ((yy - r) ** 2 + (xx - c) ** 2) <= (2 * sigma) ** 2
        return out, {"side": side, "level": level, "row": int(r), "col": int(c), "sigma": float(sigma),
                     "contrast": float(contrast), "disk": disk}


def vary_base(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A new "patient" from a base film for training: mirrored half of the time (BEFORE the
    lesion goes in, so the sentence's side stays true), scaled 0.9-1.1, rotated +-5 degrees,
    shifted +-5%, gamma 0.8-1.25."""
    import torch
    import torch.nn.functional as F

    if rng.random() < 0.5:
        img = img[:, ::-1]
    a = np.deg2rad(rng.uniform(-5, 5))
    k = 1 / rng.uniform(0.9, 1.1)
    theta = torch.tensor([[k * np.cos(a), -k * np.sin(a), rng.uniform(-0.05, 0.05)],
                          [k * np.sin(a), k * np.cos(a), rng.uniform(-0.05, 0.05)]], dtype=torch.float32)[None]
    t = torch.from_numpy(np.ascontiguousarray(img, dtype=np.float32))[None, None]
    grid = F.affine_grid(theta, list(t.shape), align_corners=False)
    out = F.grid_sample(t, grid, mode="bilinear", padding_mode="border", align_corners=False)[0, 0].numpy()
    return np.clip(out, 0, 1) ** rng.uniform(0.8, 1.25)


def claim_text(side: str, level: str) -> str:
    return f"{side.capitalize()} {LEVEL_WORD[level]} lung opacity."


def jitter(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Brightness/contrast jitter (no flips: they would swap the sides)."""
    a, b = rng.uniform(0.85, 1.15), rng.uniform(-0.08, 0.08)
    return np.clip((img - 0.5) * a + 0.5 + b, 0, 1).astype(np.float32)


def make_augment(sampler: LesionSampler, batch_size: int, boost_steps: int, p_lesion: float = 0.7, p_phrase: float = 0.3,
                 vary: bool = True):
    """train_clip's augment hook: each pair (text = the base's name) becomes a fresh image
    (the base varied by ``vary_base``) with a lesion ("<Side> <level> lung opacity." or
    "opacity") or a clear one ("No opacity."). During the first ``boost_steps`` steps the
    lesion contrast is raised (linearly less)."""
    calls = [0]

    def augment(px, pair, rng):
        step = calls[0] // batch_size
        calls[0] += 1
        px = jitter(vary_base(px, rng) if vary else px, rng)
        if rng.random() < p_lesion:
            side, level = SIDES[rng.integers(2)], LEVELS[rng.integers(3)]
            boost = 0.8 * max(0.0, 1 - step / boost_steps) if boost_steps else 0.0
            px, _ = sampler.insert(px, side, level, rng, boost=boost)
            return px, (QUERY if rng.random() < p_phrase else claim_text(side, level))
        return px, CLEAR_SENTENCE

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
            rows.append({"image": jitter(img, rng), "view": "PA", "text": claim_text(side, level), "label": False})
    return rows


def evaluate(rc, bases, sampler, rng, n_per_base: int = 24) -> dict:
    """Pointing game, CNR, claim verdicts and CNR AUCs on fresh lesions in the given bases."""
    from reportgen.checkers.region.calibrate import youden
    from reportgen.checkers.region.evidence import cnr
    from reportgen.checkers.region.zones import resize_mask

    hits_disk = hits_zone = 0
    cnrs = []
    verdicts = {"correct": [], "wrong_side": [], "clear": []}
    scores = {"correct": [], "wrong_side": [], "clear": []}
    side_diff = {"correct": [], "wrong_side": []}
    n = 0
    for name, img in bases.items():
        for k in range(n_per_base):
            side, level = SIDES[k % 2], LEVELS[(k // 2) % 3]
            px, les = sampler.insert(jitter(img, rng), side, level, rng)
            enc = rc.encode_image(px, "PA")
            m = rc.similarity_maps(enc, [QUERY])[0]
            zs = enc.zones
            disk = resize_mask(les["disk"], m.shape)
            masked = np.where(zs.thorax, m, -np.inf)
            r, c = np.unravel_index(np.argmax(masked), m.shape)
            hits_disk += bool(disk[r, c])
            hits_zone += bool(zs.masks[f"{side}_{level}_zone"][r, c])
            cnrs.append(cnr(m, disk, zs.thorax | disk))
            other = "left" if side == "right" else "right"
            for key, image, text in (("correct", px, claim_text(side, level)), ("wrong_side", px, claim_text(other, level)),
                                     ("clear", jitter(img, rng), claim_text(side, level))):
                (v,) = rc.check_images([image], ["PA"], _reader(text))
                meta = v.evidence[0].meta
                verdicts[key].append(v.status)
                scores[key].append(meta["cnr"])
                if key != "clear":
                    side_diff[key].append(meta["mirror_cnr"] - meta["cnr"])
            n += 1
    frac = lambda xs, s: float(np.mean([x == s for x in xs]))  # noqa: E731
    auc = youden(scores["correct"] + scores["wrong_side"] + scores["clear"],
                 [True] * n + [False] * (2 * n))["auc"]
    side_auc = youden(side_diff["wrong_side"] + side_diff["correct"], [True] * n + [False] * n)["auc"]
    return {
        "n_lesions": n,
        "pointing_zone": hits_zone / n, "pointing_disk": hits_disk / n,
        "cnr_mean": float(np.mean(cnrs)), "cnr_median": float(np.median(cnrs)),
        "correct_supported": frac(verdicts["correct"], "supported"),
        "correct_contradicted": frac(verdicts["correct"], "contradicted"),
        "wrong_side_contradicted": frac(verdicts["wrong_side"], "contradicted"),
        "wrong_side_flagged": float(np.mean([v in ("contradicted", "unsupported") for v in verdicts["wrong_side"]])),
        "clear_unsupported": frac(verdicts["clear"], "unsupported"),
        "cnr_auc": auc, "side_auc": side_auc,
    }


def tbx11k_check(rc, data: Path = DATA) -> list[dict]:
    from reportgen.checkers.region.grounded import check_box, describe_box, tbx11k_boxes
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
                sim = rc.similarity_maps(enc, [QUERY])[0] if enc is not None else None
                same = check_box(f, [box], calibration=rc.calibration if rc else None)
                wrong = check_box(other, [box])
                row.update({"claim_same_side": same.status, "claim_other_side": wrong.status})
                if sim is not None:
                    row["box_cnr"] = round(check_box(f, [box], sim=sim, calibration=rc.calibration).meta["box_cnr"], 3)
            rows.append(row)
    return rows


COLUMNS = ("pointing_zone", "pointing_disk", "cnr_mean", "correct_supported", "correct_contradicted",
           "wrong_side_contradicted", "wrong_side_flagged", "clear_unsupported", "cnr_auc", "side_auc")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--steps", type=int, default=1200, help="optimisation steps (batches)")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--dense-weight", type=float, default=0.5, help="weight of the token-level loss (0 = CLIP loss only)")
    ap.add_argument("--no-vary", action="store_true", help="train on the base films as they are (no mirror/affine/gamma)")
    ap.add_argument("--train-bases", default=",".join(TRAIN_BASES), help="comma-separated files under DATA/cxr")
    ap.add_argument("--p-phrase", type=float, default=0.3, help="share of lesion captions that are the bare finding phrase")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--n-test", type=int, default=24, help="test lesions per base image")
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    ap.add_argument("--data", default=str(DATA))
    ap.add_argument("--out", default=str(REPO / "runs" / "region_semisynthetic.json"))
    ap.add_argument("--workdir", default=str(REPO / "runs" / "region_semisynthetic"))
    ap.add_argument("--figure", action="store_true", help="also write an example PNG of flagged claims")
    ap.add_argument("--device", default="cpu", help="torch device for training and maps (cpu, cuda)")
    args = ap.parse_args(argv)

    import torch

    from reportgen.checkers.region.calibrate import calibrate
    from reportgen.checkers.region.checker import RegionChecker
    from reportgen.checkers.region.evidence import Calibration
    from reportgen.checkers.region.model import ClipBackend
    from reportgen.checkers.region.train import Pair, model_config, save_local_dir, train_clip

    if args.threads:
        torch.set_num_threads(args.threads)
    data = Path(args.data)
    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    cfg_path = work / "region-semisynthetic-rn.json"
    cfg_path.write_text(json.dumps(EVAL_CONFIG))
    names = tuple(args.train_bases.split(","))
    train_bases = load_bases(names, data)
    test_bases = load_bases(TEST_BASES, data)
    sampler = LesionSampler()
    bs = args.batch_size
    results: dict = {"semi_synthetic": True, "config": EVAL_CONFIG, "train_bases": names, "vary_bases": not args.no_vary, "test_bases": TEST_BASES,
                     "steps": args.steps, "batch_size": bs, "lr": args.lr, "dense_weight": args.dense_weight, "p_phrase": args.p_phrase,
                     "seed": args.seed, "query": QUERY, "torch_threads": torch.get_num_threads()}

    t0 = time.perf_counter()
    # one "epoch" = one batch per base radiograph; every batch holds one base (group_by)
    pairs = [Pair(train_bases[n], n, "PA") for n in names for _ in range(bs)]
    epochs = max(1, math.ceil(args.steps / len(names)))
    rows, training = {}, {}
    for label in ("untrained", "fine-tuned"):
        out_dir = work / label
        t1 = time.perf_counter()
        if label == "untrained":  # same architecture, random weights, same calibration procedure
            torch.manual_seed(args.seed)
            _, cfg = model_config(str(cfg_path))
            save_local_dir(ClipBackend(str(cfg_path), warn_random=False, device=args.device).load().model, cfg, out_dir)
        else:
            res = train_clip(
                pairs, str(cfg_path), out_dir, epochs=epochs, lr=args.lr, batch_size=bs, device=args.device, seed=args.seed,
                augment=make_augment(sampler, bs, boost_steps=int(0.4 * epochs * len(names)), p_phrase=args.p_phrase, vary=not args.no_vary),
                dense_weight=args.dense_weight, group_by=lambda p: p.text, warmup=40, schedule="cosine",
                progress=lambda e, l: print(f"  step {(e + 1) * len(names)}/{epochs * len(names)} loss {l:.3f}",
                                            file=sys.stderr) if (e + 1) % 25 == 0 else None,
            )
            sl, fl = res.extra["step_losses"], res.extra["loss_floors"]
            k = max(1, len(sl) // 10)
            training = {"steps": len(sl), "loss_first": float(np.mean(sl[:k])), "loss_last": float(np.mean(sl[-k:])),
                        "chance": math.log(bs), "floor": float(np.mean(fl)), "seconds": round(time.perf_counter() - t1, 1)}
            results["training"] = training
            print(f"  trained {len(sl)} steps in {training['seconds']} s", file=sys.stderr)
        rc = RegionChecker(f"local-dir:{out_dir}", calibration=Calibration(), device=args.device)
        calib = calibrate(rc, calibration_labels(train_bases, sampler, np.random.default_rng(args.seed + 1)),
                          reader=_reader, save=True)
        rc = RegionChecker(f"local-dir:{out_dir}", device=args.device)
        for where, bases, seed in (("test bases", test_bases, 2), ("train bases", train_bases, 3)):
            m = evaluate(rc, bases, sampler, np.random.default_rng(args.seed + seed), args.n_test)
            m.update({"cnr_threshold": calib.cnr_threshold, "side_margin": calib.side_margin,
                      "calibration_auc": calib.stats["positive"]["auc"]})
            rows[f"{label} / {where}"] = m
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

    print("SEMI-SYNTHETIC (real radiographs, inserted Gaussian-blob lesions); held-out patients:", ", ".join(TEST_BASES))
    if training:
        print(f"training: {training['steps']} steps, loss {training['loss_first']:.2f} -> {training['loss_last']:.2f} "
              f"(chance {training['chance']:.2f}, floor {training['floor']:.2f}), {training['seconds']} s")
    print(f"{'model / bases':26} " + " ".join(f"{c[:12]:>12}" for c in COLUMNS + ("calibration_auc",)))
    for label, m in rows.items():
        print(f"{label:26} " + " ".join(f"{m[c]:>12.3f}" for c in COLUMNS + ("calibration_auc",)))
    print("\nTBX11K boxes (grounded box checker):")
    for r in results.get("tbx11k", []):
        print("  " + ", ".join(f"{k}={v}" for k, v in r.items()))
    write_json(args.out, results)
    print(f"\nwrote {args.out} ({results['seconds']} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
