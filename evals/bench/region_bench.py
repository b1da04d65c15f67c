"""Region checker throughput on CPU: claims/s and images/s for a ViT-B/16-sized open_clip
model (open_clip's ViT-B-16 config, RANDOM weights: no download; speed does not depend
on the weights), the image encoded once per study, the claims of a study in one batch.

    python -m evals.bench.region_bench [--studies 6 --claims 10 --threads 2] [--out runs/region_bench.json]

Three rows, side by side in one run: "cold, full context" (every claim text new, the text
tower run on open_clip's whole padded context, as ``model.encode_text`` does), "cold"
(every claim text new, the text tower run on the batch's longest sequence: what the
checker does; the same embeddings, checked here) and "warm" (texts already cached, as for
repeated report sentences: image encoding + maps + verdicts).
Target: >= 20 claims/s (cold) with the image encoded once per study.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from evals.bench import write_json

REPO = Path(__file__).resolve().parents[2]
OBS = ("opacity", "pleural effusion", "atelectasis", "consolidation", "nodule", "pneumothorax", "cardiomegaly", "edema")
LOCS = (("upper lobe",), ("lower lobe",), ("base",), ("apex",), ())


def make_claims(n: int, study: int):
    from reportgen.protocols import CheckedClaim
    from reportgen.types import Claim, EntityGraph, Finding

    out = []
    for i in range(n):
        side = ("right", "left", None)[i % 3]
        sev = ("mild", "small", "moderate", None)[(i + study) % 4]
        f = Finding(OBS[(i + study) % len(OBS)], "present", side, LOCS[i % len(LOCS)], severity=sev)
        text = f"study {study} claim {i}: {sev or ''} {side or ''} {f.observation}."
        out.append(CheckedClaim(Claim(text, "findings", 0, len(text)), EntityGraph(), (f,)))
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="ViT-B-16")
    ap.add_argument("--studies", type=int, default=6)
    ap.add_argument("--claims", type=int, default=10, help="claims per study")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--query", choices=("claim", "finding"), default="claim",
                    help="'claim' encodes every claim text (worst case); 'finding' the finding phrases")
    ap.add_argument("--repeats", type=int, default=3, help="rounds of the three rows; the median round is reported")
    ap.add_argument("--out", default=str(REPO / "runs" / "region_bench.json"))
    args = ap.parse_args(argv)

    import torch

    from reportgen.checkers.region.checker import RegionChecker
    from reportgen.checkers.region.evidence import Calibration
    from reportgen.checkers.region.model import ClipBackend

    torch.set_num_threads(args.threads)
    rc = RegionChecker(ClipBackend(args.model, warn_random=False), calibration=Calibration(query=args.query))
    rng = np.random.default_rng(0)
    images = [rng.random((512, 512), dtype=np.float32) for _ in range(args.studies)]
    # warm-up (model load, first kernels)
    rc.check_images([images[0]], ["PA"], make_claims(2, -1))
    calls = {"img": 0, "txt": 0}
    enc_i, enc_t = rc.backend.encode_images, rc.backend.encode_texts

    def ci(*a, **k):
        calls["img"] += 1
        return enc_i(*a, **k)

    def ct(*a, **k):
        calls["txt"] += 1
        return enc_t(*a, **k)

    rc.backend.encode_images, rc.backend.encode_texts = ci, ct
    labels = ("cold, full context", "cold", "warm")
    runs: dict[str, list[dict]] = {k: [] for k in labels}
    txt_calls = {k: 0 for k in labels}
    # The rows are interleaved, round after round, so a load swing on a shared machine hits
    # them alike; each round's claims are new texts (offset study numbers), so "cold" is cold.
    for rnd in range(args.repeats):
        base = 2 * rnd * args.studies
        fresh = {"cold, full context": [make_claims(args.claims, base + s) for s in range(args.studies)],
                 "cold": [make_claims(args.claims, base + args.studies + s) for s in range(args.studies)]}
        fresh["warm"] = fresh["cold"]  # the same texts again: cached
        for label in labels:
            if label != "warm":
                rc._text_cache.clear()  # finding queries repeat across rounds: cold must re-encode them
            before = calls["txt"]
            rc.backend.trim_text = label != "cold, full context"
            t0 = time.perf_counter()
            n = 0
            for img, claims in zip(images, fresh[label]):
                n += len(rc.check_images([img], ["PA"], claims))
            dt = time.perf_counter() - t0
            runs[label].append({"claims": n, "seconds": dt, "rate": n / dt})
            txt_calls[label] += calls["txt"] - before
    rc.backend.trim_text = True
    rows = {}
    for label, rs in runs.items():
        by_rate = sorted(rs, key=lambda r: r["rate"])
        med = by_rate[len(by_rate) // 2]
        rows[label] = {"claims": med["claims"], "studies": args.studies, "seconds": round(med["seconds"], 3),
                       "claims_per_s": round(med["rate"], 1), "images_per_s": round(args.studies / med["seconds"], 2),
                       "claims_per_s_min": round(by_rate[0]["rate"], 1), "claims_per_s_max": round(by_rate[-1]["rate"], 1)}
    img_calls = calls["img"]
    t0 = time.perf_counter()
    for img in images:
        rc.backend.encode_images(rc.backend.prepare(img)[None])
    t_img = (time.perf_counter() - t0) / args.studies
    texts = [c.claim.text for c in make_claims(args.claims, 10**6)]
    t0 = time.perf_counter()
    trimmed = rc.backend.encode_texts(texts)
    t_txt = time.perf_counter() - t0
    t0 = time.perf_counter()
    full = rc.backend.encode_texts(texts, trim=False)
    t_txt_full = time.perf_counter() - t0
    max_diff = float((trimmed - full).abs().max())
    result = {
        "model": args.model, "weights": "random (architecture only)", "threads": args.threads, "query": args.query,
        "claims_per_study": args.claims, "rows": rows, "image_encode_s": round(t_img, 4),
        f"text_batch_{args.claims}_s": round(t_txt, 4), f"text_batch_{args.claims}_full_context_s": round(t_txt_full, 4),
        "trimmed_vs_full_max_abs_diff": max_diff,
        "image_encodes_per_study": img_calls / (len(rows) * args.studies * args.repeats), "repeats": args.repeats,
        "text_batches_cold_and_warm": txt_calls, "torch": torch.__version__, "target_claims_per_s": 20,
    }
    print(f"region bench: {args.model} (random weights), {args.threads} threads, {args.claims} claims/study, query={args.query}")
    print(f"median of {args.repeats} interleaved rounds")
    print(f"{'run':19} {'claims':>7} {'seconds':>8} {'claims/s':>9} {'(min-max)':>12} {'images/s':>9}")
    for k, r in rows.items():
        rng_ = f"{r['claims_per_s_min']:.0f}-{r['claims_per_s_max']:.0f}"
        print(f"{k:19} {r['claims']:>7} {r['seconds']:>8.2f} {r['claims_per_s']:>9.1f} {rng_:>12} {r['images_per_s']:>9.2f}")
    print(f"one image encode {t_img * 1000:.0f} ms; one batch of {args.claims} claim texts {t_txt * 1000:.0f} ms "
          f"(full context {t_txt_full * 1000:.0f} ms; max |difference| {max_diff:.1e}); "
          f"image encodes per study {result['image_encodes_per_study']:.1f}")
    write_json(args.out, result)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
