"""Throughput of ``reportgen.rewards`` (completions per second on one core).

A GRPO-like batch: ``--prompts`` IU reports as references, each with ``--generations``
completions (the error-injection benchmark's perturbed copies, one seed per generation, so
most completions differ from each other and from the reference). Every completion text is
new to the reward (cold caches); the references repeat across a group, as in GRPO. Wall and
process CPU seconds are recorded (the rewards are single-threaded: CPU s = one core).

    python -m evals.bench.rewards_bench [--prompts 500] [--generations 4] [--out runs/bench/rewards_bench.json]

Target: >= 500 completions/s on one core for each reward.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

from evals.bench import write_json

TARGET = 500.0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--prompts", type=int, default=500)
    ap.add_argument("--generations", type=int, default=4)
    ap.add_argument("--out", default="runs/bench/rewards_bench.json")
    args = ap.parse_args(argv)

    from reportgen import rewards
    from reportgen.evals.inject import build_benchmark
    from reportgen.iu import load_iu_reports

    load_before = os.getloadavg()
    reps = load_iu_reports(require_text=True)
    pairs = [(r.id, r.report.text) for r in reps[: args.prompts]]
    gens = [{b.id: b.perturbed for b in build_benchmark(pairs, seed=100 + g, rate=0.3)} for g in range(args.generations)]
    completions = [gens[g][i] for i, _ in pairs for g in range(args.generations)]
    references = [t for _, t in pairs for _ in range(args.generations)]
    prompts = ["FINDINGS:"] * len(completions)
    rewards.claim_reward(prompts[:2], ["Warm up.", "No effusion."], reference=["No effusion."] * 2)  # spaCy and lexicons loaded

    rows = {}
    for name, fn in (("claim_reward", rewards.claim_reward), ("chexpert_f1_reward", rewards.chexpert_f1_reward)):
        rewards._pipeline.cache_clear()
        rewards._labels.cache_clear()
        t0, c0 = time.perf_counter(), time.process_time()
        vals = fn(prompts, completions, reference=references)
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        rows[name] = {"wall_s": round(wall, 3), "cpu_s": round(cpu, 3), "per_s_wall": round(len(vals) / wall, 1),
                      "per_s_cpu": round(len(vals) / cpu, 1), "mean": round(sum(vals) / len(vals), 4)}
    load_after = os.getloadavg()
    n = len(completions)
    print(f"{n} completions ({args.prompts} references x {args.generations}); load average {load_before[0]:.1f} -> {load_after[0]:.1f} "
          f"on {os.cpu_count()} CPUs")
    print(f"{'reward':<22}{'wall s':>8}{'CPU s':>8}{'/s wall':>10}{'/s CPU':>10}{'mean':>8}")
    for k, r in rows.items():
        print(f"{k:<22}{r['wall_s']:>8.2f}{r['cpu_s']:>8.2f}{r['per_s_wall']:>10.0f}{r['per_s_cpu']:>10.0f}{r['mean']:>8.3f}"
              f"   target >= {TARGET:.0f}/s one core: {'met' if r['per_s_cpu'] >= TARGET else 'NOT met'}")
    path = write_json(args.out, {"completions": n, "prompts": args.prompts, "generations": args.generations, "rewards": rows,
                                 "target_per_s": TARGET, "machine": {"cpus": os.cpu_count(), "load_before": load_before,
                                                                     "load_after": load_after}}, indent=1)
    print(f"wrote {path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
