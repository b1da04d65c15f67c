"""Speed of ``reportgen compare``: three systems on all IU report pairs, 1,000 resamples.

Three systems are built from the IU reports (3,927 with text) with the error-injection
benchmark: A and B perturbed at rate 0.3 with different seeds, C at rate 0.6. Reading the
reports (claims, graphs, findings) is done once beforehand and timed apart, as in
``metrics_bench``; imports are warmed on five studies first; then ``compare`` scores each
system (graph checker both directions and every metric with its 1,000-resample CI) and
runs the paired bootstrap (1,000 resamples) and approximate randomization (1,000 trials)
for every metric and pair.

By default the same comparison is run twice in this process, side by side: ``before``
checks each convention separately (three graph-checker passes per pair: forward under
chexpert for the hallucination rate, forward and reverse under radfact for RadFact) with
the collector's default settings, and ``after`` takes both forward checks from one pass
(``Pipeline.check_conventions``) and scores each system under ``batch_gc``; the two
outputs must be identical (the bench fails otherwise). ``--only-after`` skips ``before``.

    python -m evals.bench.compare_bench [--n 0] [--resamples 1000] [--only-after] [--repeat 2] [--out runs/bench/compare_bench.json]

On a shared machine the rounds alternate (before, after, before, after, ...) and the
fastest of each by CPU time is shown, with every round's times in the JSON.

Target: compare with 3 systems and 1,000 resamples under 30 s (given the reports read).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

from evals.bench import write_json

TARGET_S = 30.0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=0, help="IU reports (0: all)")
    ap.add_argument("--resamples", type=int, default=1000)
    ap.add_argument("--permutations", type=int, default=1000)
    ap.add_argument("--only-after", action="store_true", help="time only the current code path (no side-by-side)")
    ap.add_argument("--repeat", type=int, default=2,
                    help="rounds of (before, after), alternating; the fastest of each by CPU time is reported (default 2)")
    ap.add_argument("--out", default="runs/bench/compare_bench.json")
    args = ap.parse_args(argv)

    from reportgen.checkers.read import read_report
    from reportgen.commands.compare import compare
    from reportgen.evals.inject import build_benchmark
    from reportgen.iu import load_iu_reports

    load_before = os.getloadavg()
    reports = load_iu_reports(require_text=True)
    reports = reports if args.n == 0 else reports[: args.n]
    pairs = [(r.id, r.report.text) for r in reports]
    ref = dict(pairs)
    systems = {name: {b.id: b.perturbed for b in build_benchmark(pairs, seed=seed, rate=rate)}
               for name, seed, rate in (("A", 1, 0.3), ("B", 2, 0.3), ("C", 3, 0.6))}
    t0, c0 = time.perf_counter(), time.process_time()
    read = {}
    for texts in [ref, *systems.values()]:
        for t in texts.values():
            if t not in read:
                read[t] = read_report(t)
    read_s, read_cpu = time.perf_counter() - t0, time.process_time() - c0

    def reader(text: str):
        hit = read.get(text)
        return hit if hit is not None else read_report(text)

    few = sorted(ref)[:5]
    compare({i: ref[i] for i in few}, {s: {i: t[i] for i in few} for s, t in systems.items()}, {}, resamples=10,
            permutations=10, seed=0, reader=reader)  # imports (numpy, tokenizers) once

    runs: dict = {}
    all_runs: dict = {}
    for _ in range(max(1, args.repeat)):
        for label, one_pass in (() if args.only_after else (("before", False),)) + (("after", True),):
            t0, c0 = time.perf_counter(), time.process_time()
            res = compare(ref, systems, {}, resamples=args.resamples, permutations=args.permutations, seed=0, reader=reader,
                          one_pass=one_pass, gc_batch=one_pass)
            run = (time.perf_counter() - t0, time.process_time() - c0, res)
            all_runs.setdefault(label, []).append([round(run[0], 3), round(run[1], 3)])
            if label not in runs or run[1] < runs[label][1]:
                runs[label] = run
    same = None
    if "before" in runs:
        strip = [{k: v for k, v in r[2].items() if k != "timings_s"} for r in runs.values()]
        same = json.dumps(strip[0], sort_keys=True, default=str) == json.dumps(strip[1], sort_keys=True, default=str)
    load_after = os.getloadavg()
    print(f"{len(pairs)} IU studies, 3 systems, {args.resamples} resamples, {args.permutations} permutations; "
          f"load average {load_before[0]:.1f} -> {load_after[0]:.1f} on {os.cpu_count()} CPUs")
    print(f"read all texts once (before compare): {read_s:.2f} s wall, {read_cpu:.2f} s CPU")
    labels = list(runs)
    print(f"fastest of {max(1, args.repeat)} alternating rounds by CPU time; every round (wall, CPU s): {all_runs}")
    print(f"{'stage (wall s)':<48}" + "".join(f"{x:>10}" for x in labels))

    def row(name: str, f) -> None:
        print(f"{name:<48}" + "".join(f"{f(runs[x]):>10.2f}" for x in labels))

    def check(r) -> float:
        return r[2]["timings_s"]["score_stages"].get("check", 0.0)

    row("compare: graph checker, all directions", check)
    row("compare: metrics + per-system CIs", lambda r: r[2]["timings_s"]["score"] - check(r))
    row("compare: paired tests, all metrics x 3 pairs", lambda r: r[2]["timings_s"]["tests"])
    row("compare total (given read), wall", lambda r: r[0])
    row("compare total (given read), CPU", lambda r: r[1])
    total, cpu, res = runs["after"]
    met = total < TARGET_S
    print(f"target < {TARGET_S:.0f} s (compare given the reports read): {'met' if met else 'NOT met'} (after, wall); "
          f"{len(res['comparisons'])} tests" + ("" if same is None else f"; before and after outputs identical: {same}"))
    tm = res["timings_s"]
    out = {"studies": len(pairs), "resamples": args.resamples, "permutations": args.permutations,
           "read_s": round(read_s, 3), "read_cpu_s": round(read_cpu, 3), "compare_s": round(total, 3), "compare_cpu_s": round(cpu, 3),
           "check_s": round(check(runs["after"]), 3), "tests_s": tm["tests"], "score_stages_s": tm["score_stages"], "target_s": TARGET_S,
           "target_met": met, "n_tests": len(res["comparisons"]),
           "side_by_side": {x: {"compare_s": round(r[0], 3), "compare_cpu_s": round(r[1], 3), "check_s": round(check(r), 3),
                                "tests_s": r[2]["timings_s"]["tests"], "score_stages_s": r[2]["timings_s"]["score_stages"]}
                            for x, r in runs.items()},
           "before_after_identical": same, "rounds_wall_cpu_s": all_runs,
           "machine": {"cpus": os.cpu_count(), "load_before": load_before, "load_after": load_after}}
    path = write_json(args.out, out, indent=1)
    print(f"wrote {path}", file=sys.stderr)
    return 0 if same is not False else 1


if __name__ == "__main__":
    raise SystemExit(main())
