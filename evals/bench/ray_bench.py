"""Checking throughput: the Ray engine against the local engine, side by side, one run.

The IU reports (all 3,927 with text) are repeated with fresh ids until ``--n`` reports
(default 100,000) and written to a JSONL file; then ``reportgen check`` runs over it as a
user would (a fresh process per row, wall-clock time, output written to a file):
local with 1 worker, local with 2 workers (``--workers 2``), and Ray Data with 2 checker
actors on a local Ray (``--engine ray --ray-num-cpus 2``; its start-up is included, as a
user pays it). Each row says reports/s and the wall time per report; the ray row also the
overhead over the local 2-worker row. Every output is compared with the local 1-worker
output (byte-identical, or the row says DIFFERENT).

    python -m evals.bench.ray_bench [--n 100000] [--block-size 2048] [--out runs/bench/ray_bench.json]

Prints a table and writes JSON. On a shared machine the load average before each row is
kept in the JSON: compare rows of one run only.
"""

from __future__ import annotations

import argparse
import filecmp
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Sequence

from evals.bench import write_json


def make_input(path: Path, n: int) -> int:
    from reportgen.iu import load_iu_reports

    reps = [r for r in load_iu_reports() if r.report.text.strip()]
    with path.open("w", encoding="utf-8") as fh:
        for i in range(n):
            r = reps[i % len(reps)]
            fh.write(json.dumps({"id": f"{r.id}-{i // len(reps)}", "report": r.report.text}) + "\n")
    return n


def _load() -> float | None:
    try:
        return round(os.getloadavg()[0], 2)
    except OSError:
        return None


def run_row(name: str, args: Sequence[str], reports: Path, out: Path) -> dict[str, Any]:
    cmd = [sys.executable, "-m", "reportgen", "check", "-q", "--reports", str(reports), "--out", str(out), *args]
    load = _load()
    t = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True)
    took = time.perf_counter() - t
    row: dict[str, Any] = {"row": name, "args": list(args), "seconds": round(took, 2), "load_before": load, "rc": done.returncode}
    if done.returncode != 0:
        row["error"] = done.stderr.strip().splitlines()[-1][:300] if done.stderr.strip() else "failed"
    return row


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m evals.bench.ray_bench", description=__doc__.split("\n\n")[0])
    p.add_argument("--n", type=int, default=100_000, help="reports to check (IU repeated; default 100,000)")
    p.add_argument("--block-size", type=int, default=2048, help="ray engine lines per block (default 2048)")
    p.add_argument("--actors", type=int, default=2)
    p.add_argument("--out", default="runs/bench/ray_bench.json")
    args = p.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="ray_bench_") as tmp:
        d = Path(tmp)
        reports = d / "reports.jsonl"
        n = make_input(reports, args.n)
        rows = [
            ("local, 1 worker", []),
            ("local, 2 workers", ["--workers", "2"]),
            (f"ray, {args.actors} actors", ["--engine", "ray", "--ray-num-cpus", str(args.actors), "--ray-actors", str(args.actors),
                                            "--ray-block-size", str(args.block_size)]),
        ]
        results = []
        for i, (name, extra) in enumerate(rows):
            out = d / f"out{i}.jsonl"
            row = run_row(name, extra, reports, out)
            if row["rc"] == 0:
                row["reports_per_s"] = round(n / row["seconds"], 1)
                row["ms_per_report"] = round(1000 * row["seconds"] / n, 3)
                row["identical_to_local_1"] = i == 0 or filecmp.cmp(d / "out0.jsonl", out, shallow=False)
            results.append(row)
    local2 = next((r for r in results if r["row"] == "local, 2 workers" and r["rc"] == 0), None)
    for r in results:
        if r["row"].startswith("ray") and r["rc"] == 0 and local2:
            r["overhead_ms_per_report_vs_local_2"] = round(r["ms_per_report"] - local2["ms_per_report"], 3)

    print(f"checking throughput, {n:,} reports (IU repeated), {os.cpu_count()} CPUs, Python {platform.python_version()}")
    print(f"{'engine':<22}{'seconds':>9}{'reports/s':>11}{'ms/report':>11}{'identical':>11}{'load':>7}")
    for r in results:
        if r["rc"] != 0:
            print(f"{r['row']:<22}  failed: {r.get('error')}")
            continue
        same = "yes" if r["identical_to_local_1"] else "DIFFERENT"
        print(f"{r['row']:<22}{r['seconds']:>9.1f}{r['reports_per_s']:>11,.0f}{r['ms_per_report']:>11.3f}{same:>11}{r['load_before'] or 0:>7.2f}")
    for r in results:
        if "overhead_ms_per_report_vs_local_2" in r:
            print(f"ray overhead over local 2 workers: {r['overhead_ms_per_report_vs_local_2']:+.3f} ms a report")
    write_json(args.out, {"n": n, "cpus": os.cpu_count(), "rows": results})
    print(f"wrote {args.out}")
    return 0 if all(r["rc"] == 0 for r in results) else 1


if __name__ == "__main__":
    raise SystemExit(main())
