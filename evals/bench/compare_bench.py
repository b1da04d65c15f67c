"""Speed of ``reportgen compare``: three systems on all IU report pairs, 1,000 resamples.

Three systems are built from the IU reports (3,927 with text) with the error-injection
benchmark: A and B perturbed at rate 0.3 with different seeds, C at rate 0.6.

End to end (what a user waits for): the reference and the three systems are written as
JSONL files and ``python -m reportgen compare --ref R --pred A=a --pred B=b --pred C=c
--out cmp.json`` is run as a command, imports, reading the files and the reports (claims,
graphs, findings), checking, every metric with its CIs, 78 paired tests and writing the
JSON included. Side by side in one run: ``before`` is one process (``--workers 1``: how
``compare`` ran until now) and ``after`` the default (``--workers 0``: one process per
usable CPU, ``--workers`` here to choose); both outputs must be byte-identical but for
``timings_s`` (the bench fails otherwise). Wall time, and CPU time of the command and its
worker processes (``getrusage(RUSAGE_CHILDREN)``).

Given the texts read (as in ``metrics_bench``; ``--skip-given-read`` leaves it out): the
reports are read once beforehand (timed apart), imports are warmed on five studies, and
``compare`` runs in this process twice, side by side: ``before`` checks each convention
separately (three graph-checker passes per pair) with the collector's default settings,
``after`` takes both forward checks from one pass (``Pipeline.check_conventions``) and
scores each system under ``batch_gc``; the two outputs must be identical.

    python -m evals.bench.compare_bench [--n 0] [--resamples 1000] [--workers 0] [--repeat 2] [--skip-given-read] [--only-after] [--out runs/bench/compare_bench.json]

On a shared machine the rounds alternate (before, after, before, after, ...) and the
fastest of each by CPU time is shown, with every round's times in the JSON.

Target: ``reportgen compare`` with 3 systems and 1,000 resamples under 30 s, end to end.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

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
    ap.add_argument("--workers", type=int, default=0, help="compare --workers of the 'after' command (default 0: choose)")
    ap.add_argument("--skip-given-read", action="store_true", help="time only end to end (leave out the in-process comparison)")
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
    e2e = end_to_end(ref, systems, args)
    if args.skip_given_read:
        out = {"studies": len(pairs), "resamples": args.resamples, "permutations": args.permutations, "target_s": TARGET_S,
               **e2e, "machine": {"cpus": os.cpu_count(), "load_before": load_before, "load_after": os.getloadavg()}}
        path = write_json(args.out, out, indent=1)
        print(f"wrote {path}", file=sys.stderr)
        return 0 if e2e["end_to_end_identical"] is not False else 1
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
    print(f"given the reports read: after {total:.1f} s wall; "
          f"{len(res['comparisons'])} tests" + ("" if same is None else f"; before and after outputs identical: {same}"))
    tm = res["timings_s"]
    out = {"studies": len(pairs), "resamples": args.resamples, "permutations": args.permutations,
           "read_s": round(read_s, 3), "read_cpu_s": round(read_cpu, 3), "compare_s": round(total, 3), "compare_cpu_s": round(cpu, 3),
           "check_s": round(check(runs["after"]), 3), "tests_s": tm["tests"], "score_stages_s": tm["score_stages"], "target_s": TARGET_S,
           "given_read_under_target": met, "n_tests": len(res["comparisons"]), **e2e,
           "side_by_side": {x: {"compare_s": round(r[0], 3), "compare_cpu_s": round(r[1], 3), "check_s": round(check(r), 3),
                                "tests_s": r[2]["timings_s"]["tests"], "score_stages_s": r[2]["timings_s"]["score_stages"]}
                            for x, r in runs.items()},
           "before_after_identical": same, "rounds_wall_cpu_s": all_runs,
           "machine": {"cpus": os.cpu_count(), "load_before": load_before, "load_after": load_after}}
    path = write_json(args.out, out, indent=1)
    print(f"wrote {path}", file=sys.stderr)
    return 0 if same is not False and e2e["end_to_end_identical"] is not False else 1


def end_to_end(ref: dict[str, str], systems: dict[str, dict[str, str]], args: argparse.Namespace) -> dict:
    """``reportgen compare`` run as a command on JSONL files, one process (before) and
    ``--workers`` (after), alternating; prints the table, returns the JSON part."""
    with tempfile.TemporaryDirectory(prefix="compare_bench_") as tmp:
        d = Path(tmp)

        def jsonl(name: str, texts: dict[str, str]) -> str:
            path = d / f"{name}.jsonl"
            path.write_text("".join(json.dumps({"id": i, "report": t}) + "\n" for i, t in texts.items()), encoding="utf-8")
            return str(path)

        cmd = [sys.executable, "-m", "reportgen", "compare", "--ref", jsonl("ref", ref),
               *[x for name, texts in systems.items() for x in ("--pred", f"{name}={jsonl(name, texts)}")],
               "--resamples", str(args.resamples), "--permutations", str(args.permutations), "--seed", "0", "-q"]
        paths = (("before", ["--workers", "1"]), ("after", ["--workers", str(args.workers)]))
        labels = [x for x, _ in paths if not (args.only_after and x == "before")]
        rounds: dict[str, list] = {}
        best: dict[str, tuple] = {}
        outputs: dict[str, dict] = {}
        load_before = os.getloadavg()
        for _ in range(max(1, args.repeat)):
            for label, extra in paths:
                if label not in labels:
                    continue
                out = d / f"{label}.json"
                r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
                t0 = time.perf_counter()
                done = subprocess.run(cmd + ["--out", str(out), *extra], capture_output=True, text=True)
                wall = time.perf_counter() - t0
                r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
                if done.returncode != 0:
                    raise SystemExit(f"reportgen compare ({label}) failed: {done.stderr[-2000:]}")
                cpu = (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)
                res = json.loads(out.read_text(encoding="utf-8"))
                timings = res.pop("timings_s")
                outputs[label] = res
                rounds.setdefault(label, []).append([round(wall, 3), round(cpu, 3)])
                if label not in best or cpu < best[label][1]:
                    best[label] = (wall, cpu, timings)
        load_after = os.getloadavg()
    same = (json.dumps(outputs["before"], indent=1) == json.dumps(outputs["after"], indent=1)) if "before" in outputs else None
    print(f"\nEND TO END: `reportgen compare` as a command, {len(ref)} studies, 3 systems, {args.resamples} resamples, "
          f"{args.permutations} permutations; load average {load_before[0]:.1f} -> {load_after[0]:.1f} on {os.cpu_count()} CPUs")
    print(f"fastest of {max(1, args.repeat)} alternating rounds by CPU time; every round (wall, CPU s): {rounds}")
    head = {x: f"{x} ({best[x][2]['workers']}p)" for x in labels}
    print(f"{'end to end (s)':<52}" + "".join(f"{head[x]:>14}" for x in labels))

    def row(name: str, f) -> None:
        print(f"{name:<52}" + "".join(f"{f(best[x]):>14.2f}" for x in labels))

    metric_stages = lambda t: sum(v for k, v in t["score_stages_cpu"].items() if k not in ("read", "check", "bootstrap"))
    row("wall: the command, reading included", lambda b: b[0])
    row("CPU: the command and its workers", lambda b: b[1])
    row("  CPU in stages: read the reports", lambda b: b[2]["score_stages_cpu"]["read"])
    row("  CPU in stages: graph checker, all directions", lambda b: b[2]["score_stages_cpu"]["check"])
    row("  CPU in stages: metrics", lambda b: metric_stages(b[2]))
    row("  CPU in stages: per-system CIs", lambda b: b[2]["score_stages_cpu"]["bootstrap"])
    row("  wall: paired tests, all metrics x 3 pairs", lambda b: b[2]["tests"])
    wall = best["after"][0]
    met = wall < TARGET_S
    print(f"target < {TARGET_S:.0f} s end to end: {'met' if met else 'NOT met'} (after: {wall:.1f} s wall, {best['after'][1]:.1f} s CPU)"
          + ("" if same is None else f"; before and after outputs identical (timings_s aside): {same}"))
    return {"end_to_end_s": round(wall, 3), "end_to_end_cpu_s": round(best["after"][1], 3), "target_met": met,
            "end_to_end_identical": same, "end_to_end_rounds_wall_cpu_s": rounds,
            "end_to_end": {x: {"wall_s": round(best[x][0], 3), "cpu_s": round(best[x][1], 3), "timings_s": best[x][2]} for x in labels},
            "end_to_end_load": {"before": load_before, "after": load_after}}


if __name__ == "__main__":
    raise SystemExit(main())
