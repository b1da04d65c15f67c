"""`reportgen train-clip`: contrastive fine-tuning of an open_clip model on (image,
sentence) pairs; saves a local-dir checkpoint for the region checker.

    reportgen train-clip --manifest pairs.jsonl --model local-dir:base --out runs/clip \\
        [--epochs 5 --lr 1e-4 --batch-size 32 --seed 0] [--calibrate labels.jsonl]
        [--dense-loss 0.5 --group-by image --warmup 40 --schedule cosine --weight-decay 0.01]

Manifest records: {"image": PATH, "text": SENTENCE} or studies {"id", "images": [...],
"report": TEXT}; see checkers/region/train.py and docs/region.md.
"""

from __future__ import annotations

import argparse
import json
import sys

from reportgen.errors import ReportgenError


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--manifest", required=True, help="JSONL of {image, text} pairs or studies with images and a report")
    p.add_argument("--model", required=True,
                   help="open_clip model: hf-hub:ORG/REPO, local-dir:PATH, a built-in name (ViT-B-16) or a config .json")
    p.add_argument("--pretrained", default=None, help="pretrained tag or weights file for a built-in name / config file")
    p.add_argument("--out", required=True, help="output folder (a local-dir checkpoint)")
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--lr", type=float, default=1e-4)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--weight-decay", type=float, default=0.01,
                   help="AdamW weight decay (not on biases, norm gains or the temperature)")
    p.add_argument("--dense-loss", type=float, default=0.0, metavar="W",
                   help="weight in [0, 1] of the token-level loss (max cosine over patches), so the dense maps point "
                        "at findings; 0.5 in the semi-synthetic evaluation (docs/region.md)")
    p.add_argument("--group-by", choices=("none", "image", "study"), default="none",
                   help="draw every batch from one image / one study (manifest 'study' or 'id'), so in-batch negatives "
                        "differ in the finding, not the patient")
    p.add_argument("--warmup", type=int, default=0, metavar="STEPS", help="linear learning-rate warm-up steps")
    p.add_argument("--schedule", choices=("constant", "cosine"), default="constant",
                   help="learning rate after the warm-up: constant or cosine decay to 0")
    p.add_argument("--device", default="cpu")
    p.add_argument("--calibrate", metavar="LABELS.jsonl", default=None,
                   help="calibrate the region thresholds on labelled claims and save reportgen_region.json")
    p.add_argument("--format", choices=("table", "json"), default="table", help="summary format on stdout")
    p.add_argument("--allow-outside-root", action="store_true",
                   help="read images outside the manifest's folder ('../', absolute paths, symlinks out)")


def run(args: argparse.Namespace) -> int:
    from reportgen.checkers.region.train import train_clip

    def progress(epoch: int, loss: float) -> None:
        print(f"epoch {epoch + 1}/{args.epochs}: loss {loss:.4f}", file=sys.stderr)

    res = train_clip(
        args.manifest, args.model, args.out, epochs=args.epochs, lr=args.lr, batch_size=args.batch_size,
        seed=args.seed, pretrained=args.pretrained, device=args.device, calibrate_labels=args.calibrate,
        progress=progress, weight_decay=args.weight_decay, dense_weight=args.dense_loss, group_by=args.group_by,
        warmup=args.warmup, schedule=args.schedule, allow_outside_root=args.allow_outside_root,
    )
    summary = {
        "out": str(res.out), "model": f"local-dir:{res.out}", "pairs": res.n_pairs, "epochs": res.epochs,
        "loss_first": res.losses[0], "loss_last": res.losses[-1], "skipped": len(res.skipped),
        "seconds": round(res.seconds, 1), "steps": res.extra.get("steps"),
        "options": {k: res.extra.get(k) for k in ("dense_weight", "group_by", "warmup", "schedule", "weight_decay")},
        "calibration": res.calibration.to_dict() if res.calibration is not None else None,
    }
    if args.format == "json":
        print(json.dumps(summary, indent=2))
    else:
        for k, v in summary.items():
            if k != "calibration":
                print(f"{k:12} {v}")
        if res.calibration is not None:
            c = res.calibration
            print(f"{'calibration':12} cnr_threshold={c.cnr_threshold:.3f} side_margin={c.side_margin:.3f} "
                  f"absence_threshold={c.absence_threshold}")
        for s in res.skipped[:20]:
            from reportgen.phi import scrub

            print(f"skipped: {scrub(s)}", file=sys.stderr)
    if not res.losses:
        raise ReportgenError("E608", "training ran no step")
    return 0
