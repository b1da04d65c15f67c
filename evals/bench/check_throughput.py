"""Throughput of claim checking on one core: all 3,955 IU reports, reports/s.

Stages: ``read_report`` (sections, claims, entity graphs, findings), self-evidence, the
graph checker (self-consistency), and the whole ``Pipeline.check`` with the JSONL record
serialised. Each measurement runs in a fresh process pinned to one CPU
(``os.sched_setaffinity``) and is timed in CPU seconds of that process
(``time.process_time``: what one dedicated core takes, so other processes on a shared
machine distort it little). The first pass is **cold**: the extractor's sentence cache and
the checker's comparison cache start empty. Later passes over the same reports are
**warm** (IU reports repeat many sentences, so real batches sit in between). The headline
is the cold end-to-end pass: the median of ``--runs`` fresh processes (each run's cold
time and the machine's load average are kept in the JSON). The end-to-end pass is also
timed with the garbage-collector settings ``reportgen check`` uses
(``reportgen.checkers.pipeline.batch_gc``), in as many runs, interleaved with the others; the
target is judged on the default settings. Start-up (lexicon, rules, and spaCy, the sentence
splitter's fallback, which imports torch through thinc when torch is installed) is timed
apart (``startup_s``), not in the passes.

    python -m evals.bench.check_throughput [--runs 3] [--out runs/bench/check_throughput.json]

Prints a table and writes JSON. Target: >= 1,000 reports/s end to end (issue 2); the
radgraph model costs about 158 ms a report (~6 reports/s).
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import io
import json
import os
import platform
import pstats
import statistics
import subprocess
import sys
import time
from contextlib import nullcontext
from typing import Any, Callable, Sequence

from evals.bench import write_json

TARGET = 1000.0


def pin_one_core(cpu: int | None) -> int | None:
    """Pin this process to one CPU; returns the CPU or None where unsupported."""
    if not hasattr(os, "sched_setaffinity"):
        return None
    allowed = sorted(os.sched_getaffinity(0))
    chosen = cpu if cpu is not None else allowed[-1]
    os.sched_setaffinity(0, {chosen})
    return chosen


def _timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    """CPU seconds of this (single-threaded, pinned) process: what one dedicated core
    would take, unaffected by other processes waiting for the same core."""
    gc.collect()
    t = time.process_time()
    out = fn()
    return time.process_time() - t, out


def worker(mode: str, args: argparse.Namespace) -> dict[str, Any]:
    """One fresh process: cold pass, then warm passes, of one mode."""
    cpu = pin_one_core(args.cpu)
    from reportgen.checkers.claims import warm_up
    from reportgen.checkers.evidence import self_evidence
    from reportgen.checkers.graph_checker import GraphChecker
    from reportgen.checkers.pipeline import Pipeline, default_reader
    from reportgen.iu import load_iu_reports
    from reportgen.jsonl import dumps

    reports = load_iu_reports()
    if args.limit:
        reports = reports[: args.limit]
    items = [(r.id, r.report.text) for r in reports]
    texts = [t for _, t in items if t.strip()]
    t0 = time.perf_counter()
    read = default_reader(args.extractor)
    read("FINDINGS: The lungs are clear.")  # load the lexicon and tokenizer, not a corpus sentence
    warm_up()  # the sentence splitter's spaCy fallback (spaCy imports thinc, thinc imports torch when installed)
    startup = time.perf_counter() - t0
    out: dict[str, Any] = {"cpu": cpu, "startup_s": startup, "reports": len(items), "non_empty": len(texts),
                           "torch_imported": "torch" in sys.modules}
    passes = 1 + args.repeat

    if mode == "read_stages":  # the reader's own split of its cold path, when it offers one
        from reportgen.checkers import read as reader_module

        split = getattr(reader_module, "benchmark_stages", None)
        out["read_stages"] = {}
        if callable(split):
            for name, fn in split(args.extractor).items():
                s, _ = _timed(lambda fn=fn: fn(texts))
                out["read_stages"][name] = s
        return out
    if mode == "stages":
        checker = GraphChecker()
        rows: dict[str, list[float]] = {"read_report": [], "self_evidence": [], "graph_checker": []}
        for _ in range(passes):
            s, reads = _timed(lambda: [read(t) for t in texts])
            rows["read_report"].append(s)
            s, evs = _timed(lambda: [self_evidence(r) for r in reads])
            rows["self_evidence"].append(s)
            s, verdicts = _timed(lambda: [checker.check(r.claims, e) for r, e in zip(reads, evs)])
            rows["graph_checker"].append(s)
        out["seconds"] = rows
        out["claims"] = sum(len(v) for v in verdicts)
    else:
        from reportgen.checkers.pipeline import batch_gc

        pipeline = Pipeline(extractor=args.extractor, reader=read)

        def end_to_end() -> int:
            return sum(len(dumps(pipeline.check(rid, text).to_record())) for rid, text in items)

        secs = []
        out["load_average_1m"] = _load()
        with batch_gc() if mode == "end_to_end_batch_gc" else nullcontext():
            for _ in range(passes):
                s, n_bytes = _timed(end_to_end)
                secs.append(s)
        out["seconds"] = {"end_to_end": secs}
        out["output_bytes"] = n_bytes
        if args.profile:
            prof = cProfile.Profile()
            prof.enable()
            end_to_end()
            prof.disable()
            buf = io.StringIO()
            pstats.Stats(prof, stream=buf).sort_stats("tottime").print_stats(args.profile)
            out["profile"] = buf.getvalue()
    return out


def _load() -> float | None:
    return round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None


def _spawn(mode: str, args: argparse.Namespace) -> dict[str, Any]:
    cmd = [sys.executable, "-m", "evals.bench.check_throughput", "--worker", mode, "--repeat", str(args.repeat),
           "--limit", str(args.limit), "--extractor", args.extractor, "--profile", str(args.profile)]
    if args.cpu is not None:
        cmd += ["--cpu", str(args.cpu)]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"benchmark worker {mode} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


LABELS = {
    "read_report": "read_report (sections, claims, graphs, findings)",
    "self_evidence": "self evidence",
    "graph_checker": "graph checker (self-consistency)",
    "end_to_end": "end to end: Pipeline.check + JSONL record",
}


def _median_runs(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """One worker result from several end-to-end runs: the median cold time and the median
    of each run's best warm time; the runs themselves under "runs"."""
    colds = [r["seconds"]["end_to_end"][0] for r in runs]
    warms = [min(r["seconds"]["end_to_end"][1:]) for r in runs if len(r["seconds"]["end_to_end"]) > 1]
    out = dict(runs[0])
    out["seconds"] = {"end_to_end": [statistics.median(colds)] + ([statistics.median(warms)] if warms else [])}
    out["runs"] = [{"cold_s": round(c, 4), "warm_s": round(min(r["seconds"]["end_to_end"][1:]), 4) if len(r["seconds"]["end_to_end"]) > 1 else None,
                    "load_average_1m": r.get("load_average_1m")} for c, r in zip(colds, runs)]
    return out


def run(args: argparse.Namespace) -> dict[str, Any]:
    load_at_start = _load()
    stages = _spawn("stages", args)
    plain, tuned = [], []
    for k in range(max(1, args.runs)):  # interleaved, so a change of load hits both alike
        plain.append(_spawn("end_to_end", args if k == 0 else argparse.Namespace(**{**vars(args), "profile": 0})))
        tuned.append(_spawn("end_to_end_batch_gc", argparse.Namespace(**{**vars(args), "profile": 0})))
    e2e = _median_runs(plain)
    e2e_gc = _median_runs(tuned)
    reader = _spawn("read_stages", args)
    n_texts = stages["non_empty"]
    read_split = [
        {"stage": name, "reports": n_texts, "cpu_s": round(sec, 4), "reports_per_s": round(n_texts / sec, 1) if sec else None,
         "ms_per_report": round(1000 * sec / n_texts, 4)}
        for name, sec in reader["read_stages"].items()
    ]
    rows = []
    for res, n in ((stages, stages["non_empty"]), (e2e, e2e["reports"])):
        for name, secs in res["seconds"].items():
            cold, warm = secs[0], min(secs[1:]) if len(secs) > 1 else None
            rows.append({
                "stage": name, "label": LABELS[name], "reports": n,
                "cold_s": round(cold, 4), "cold_reports_per_s": round(n / cold, 1), "cold_ms_per_report": round(1000 * cold / n, 4),
                "warm_s": None if warm is None else round(warm, 4),
                "warm_reports_per_s": None if warm is None else round(n / warm, 1),
                "warm_ms_per_report": None if warm is None else round(1000 * warm / n, 4),
            })
    headline = next(r for r in rows if r["stage"] == "end_to_end")
    n = e2e["reports"]
    gc_cold, gc_warm = e2e_gc["seconds"]["end_to_end"][0], (e2e_gc["seconds"]["end_to_end"][1:] or [None])[0]
    batch_gc_row = {
        "stage": "end_to_end_batch_gc", "label": "end to end, gc as in reportgen check", "reports": n,
        "cold_s": round(gc_cold, 4), "cold_reports_per_s": round(n / gc_cold, 1), "cold_ms_per_report": round(1000 * gc_cold / n, 4),
        "warm_s": None if gc_warm is None else round(gc_warm, 4),
        "warm_reports_per_s": None if gc_warm is None else round(n / gc_warm, 1),
        "warm_ms_per_report": None if gc_warm is None else round(1000 * gc_warm / n, 4),
        "runs": e2e_gc["runs"],
    }
    return {
        "benchmark": "check_throughput",
        "reports": e2e["reports"], "non_empty_reports": stages["non_empty"], "claims": stages["claims"],
        "output_bytes_per_report": round(e2e["output_bytes"] / e2e["reports"], 1),
        "extractor": args.extractor, "warm_passes": args.repeat, "cpu": stages["cpu"],
        "python": platform.python_version(), "machine": platform.machine(), "cpus_on_machine": os.cpu_count(),
        "load_average_1m": load_at_start,
        "load_average_1m_at_end": _load(),
        "end_to_end_runs": e2e["runs"],
        "end_to_end_batch_gc": batch_gc_row,
        "end_to_end_batch_gc_cold_reports_per_s": batch_gc_row["cold_reports_per_s"],
        "torch_imported": stages["torch_imported"] or e2e["torch_imported"],
        "startup_s": round(e2e["startup_s"], 3),
        "stages": rows,
        "read_report_split": read_split,
        "end_to_end_cold_reports_per_s": headline["cold_reports_per_s"],
        "end_to_end_warm_reports_per_s": headline["warm_reports_per_s"],
        "target_reports_per_s": TARGET, "meets_target": headline["cold_reports_per_s"] >= TARGET,
        "radgraph_model_reports_per_s_for_comparison": round(1 / 0.158, 1),
        "timing": "CPU seconds of one pinned single-threaded process (time.process_time)",
        "runs": max(1, args.runs),
        "note": ("one pinned core, fresh process per mode and run; cold = first pass with empty caches; end to end = median of the runs; "
                 "the machine may be shared (see the load averages)"),
        "profile": e2e.get("profile"),
    }


def print_table(res: dict[str, Any]) -> None:
    def load(x: float | None) -> str:
        return "?" if x is None else f"{x:.1f}"

    print(f"check throughput: {res['reports']:,} IU reports ({res['claims']:,} claims), extractor {res['extractor']}, "
          f"one core (cpu {res['cpu']}), CPU time, load average {load(res['load_average_1m'])} at start, "
          f"{load(res['load_average_1m_at_end'])} at end; end to end: median of {res['runs']} fresh processes")
    print(f"{'stage':<52}{'cold rep/s':>11}{'cold ms':>9}{'warm rep/s':>12}{'warm ms':>9}")
    for r in [*res["stages"], res["end_to_end_batch_gc"]]:
        warm = f"{r['warm_reports_per_s']:>12,.0f}{r['warm_ms_per_report']:>9.3f}" if r["warm_s"] is not None else f"{'-':>12}{'-':>9}"
        print(f"{r['label']:<52}{r['cold_reports_per_s']:>11,.0f}{r['cold_ms_per_report']:>9.3f}{warm}")
    for name, runs in (("end to end", res["end_to_end_runs"]), ("gc as in reportgen check", res["end_to_end_batch_gc"]["runs"])):
        cells = ", ".join(f"{res['reports'] / r['cold_s']:,.0f} (load {load(r['load_average_1m'])})" for r in runs)
        print(f"  cold runs, {name}: {cells} reports/s")
    if res.get("read_report_split"):
        print("read_report split (the reader's benchmark_stages; one pass each, in order, over all non-empty reports):")
        for r in res["read_report_split"]:
            print(f"  {r['stage']:<50}{r['reports_per_s']:>11,.0f}{r['ms_per_report']:>9.3f}")
    verdict = "meets" if res["meets_target"] else "MISSES"
    print(f"end to end (cold) {res['end_to_end_cold_reports_per_s']:,.0f} reports/s: {verdict} the target of "
          f"{res['target_reports_per_s']:,.0f} (radgraph model: ~{res['radgraph_model_reports_per_s_for_comparison']} reports/s); "
          f"torch imported: {res['torch_imported']}")
    if res.get("profile"):
        print(res["profile"])


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default="runs/bench/check_throughput.json", help="JSON result path")
    p.add_argument("--extractor", default="rules", choices=("rules", "radgraph"))
    p.add_argument("--repeat", type=int, default=2, help="warm passes after the cold one")
    p.add_argument("--runs", type=int, default=3, help="end-to-end runs (fresh processes) whose median is reported")
    p.add_argument("--limit", type=int, default=0, help="first N reports only (0: all)")
    p.add_argument("--cpu", type=int, default=None, help="CPU to pin to (default: the last allowed one)")
    p.add_argument("--profile", type=int, default=0, metavar="N", help="also print the N most expensive functions")
    p.add_argument("--worker", choices=("stages", "end_to_end", "end_to_end_batch_gc", "read_stages"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(args.worker, args)))
        return 0
    res = run(args)
    print_table(res)
    out = write_json(args.out, res)
    print(f"written to {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
