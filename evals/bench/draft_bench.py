"""Drafting throughput: reports/s and tokens/s of the ``hf`` and ``vllm`` backends, side by
side in one run, on the same studies and the same rendered prompts.

    python -m evals.bench.draft_bench                       # tiny Qwen2-VL + tiny LoRA, CPU
    python -m evals.bench.draft_bench --model Qwen/Qwen2-VL-2B-Instruct --adapter runs/lora \\
        --studies studies.jsonl --n 64 --backends hf,vllm   # a real model (GPU: pip install vllm)
    python -m evals.bench.draft_bench --backends vllm --vllm-url http://127.0.0.1:8000 --vllm-model cxr

Each backend drafts ``--warmup`` studies first (not timed: first-call compilation and
caches), then the ``--n`` studies; reported: wall time, reports/s, completion tokens/s
(tokens counted by each backend, eos included), latency p50/p95, errors, and how many
drafts the two backends agree on exactly (greedy decoding: 100 % on CPU float32). Unless
``--vllm-url`` is given, the script starts the vLLM server itself (``reportgen serve``
machinery: .venv-vllm or $REPORTGEN_VLLM_PYTHON or `vllm` on PATH), measures vLLM first and
stops the server before the hf run, so the two never compete for the machine. The device
(CPU model and cores, or the CUDA device name) is named in the output.

Prints a table and writes JSON (``--out``, default runs/bench/draft_bench.json).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any, Sequence

from evals.bench import write_json

REPO = Path(__file__).resolve().parents[2]


# -- device ------------------------------------------------------------------------------
def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def cpu_desc() -> str:
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return f"CPU: {cpu_name()} ({cores} cores)"


def torch_device_desc(device: str | None) -> str:
    try:
        import torch
    except ImportError:
        return cpu_desc()
    if str(device or "").startswith("cuda") and torch.cuda.is_available():
        idx = torch.device(device).index or 0
        return f"CUDA: {torch.cuda.get_device_name(idx)}"
    return cpu_desc()


def vllm_device_desc(python: str | None) -> str:
    """The device of a vLLM environment on this machine (CUDA name, else CPU)."""
    if not python:
        return "remote server"
    code = "import torch; print(torch.cuda.get_device_name(0) if torch.cuda.is_available() else '')"
    try:
        out = subprocess.run([python, "-c", code], capture_output=True, text=True, timeout=120).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        out = ""
    return f"CUDA: {out}" if out else cpu_desc()


def _launcher_python(launcher: Sequence[str]) -> str | None:
    """The interpreter behind a launcher (``python -m ...`` or the ``vllm`` script's shebang)."""
    if launcher[-1] != "serve":
        return launcher[0]
    try:
        first = Path(launcher[0]).read_text(errors="replace").splitlines()[0]
    except (OSError, IndexError):
        return None
    return first[2:].strip().split()[0] if first.startswith("#!") else None


# -- studies -----------------------------------------------------------------------------
def load_studies(path: Path, n: int) -> list[Any]:
    """``n`` studies from a JSONL file (cycled with new ids when it has fewer)."""
    from reportgen.drafts import load_studies as read

    base = [s for _, s, err, _ in read(path) if s is not None]
    if not base:
        raise SystemExit(f"draft_bench: no usable study in {path}")
    out = []
    for i in range(n):
        s = base[i % len(base)]
        out.append(s if i < len(base) else replace(s, id=f"{s.id}#{i // len(base)}"))
    return out


def tiny_setup(folder: Path, with_adapter: bool) -> tuple[Path, Path | None, Path]:
    """The test suite's tiny Qwen2-VL, its manifest and (optionally) its trained LoRA."""
    sys.path.insert(0, str(REPO))
    from tests.tiny_models import build_tiny_adapter, build_tiny_qwen2vl, write_tiny_manifest

    model = build_tiny_qwen2vl(folder / "model")
    manifest = write_tiny_manifest(folder / "manifest")
    adapter = build_tiny_adapter(model, folder / "adapter", manifest) if with_adapter else None
    return model, adapter, manifest


# -- measuring ---------------------------------------------------------------------------
def measure(drafter: Any, studies: Sequence[Any], warmup: Sequence[Any]) -> tuple[dict[str, Any], dict[str, str | None]]:
    from reportgen.backends.base import iter_results

    for _ in iter_results(drafter, warmup):
        pass
    lat: list[float] = []
    tokens = errors = 0
    reports: dict[str, str | None] = {}
    t0 = time.perf_counter()
    for r in iter_results(drafter, studies):
        if r.ok:
            lat.append(float(r.latency_s or r.draft.latency_s))
            tokens += int(r.completion_tokens or 0)
            reports[r.study_id] = r.draft.report
        else:
            errors += 1
            reports[r.study_id] = None
    wall = time.perf_counter() - t0
    done = len(studies) - errors
    q = statistics.quantiles(lat, n=20) if len(lat) >= 2 else lat * 19
    return {
        "reports": done, "errors": errors, "wall_s": round(wall, 3),
        "reports_per_s": round(done / wall, 3) if wall else None,
        "completion_tokens": tokens, "tokens_per_s": round(tokens / wall, 1) if wall else None,
        "mean_tokens_per_report": round(tokens / done, 1) if done else None,
        "latency_p50_s": round(statistics.median(lat), 4) if lat else None,
        "latency_p95_s": round(q[18], 4) if lat else None,
    }, reports


def run_vllm(args: argparse.Namespace, model: str, adapter: str | None, studies, warmup) -> tuple[dict[str, Any], dict]:
    from reportgen.backends.vllm import VLLMDrafter

    server = None
    info: dict[str, Any] = {"backend": "vllm"}
    url = args.vllm_url
    served_model = args.vllm_model
    try:
        if not url:
            from reportgen.serve import ServeConfig, VLLMServer, find_launcher

            launcher = find_launcher(args.vllm_python)
            adapters = (("bench", adapter),) if adapter else ()
            env = (("VLLM_CPU_KVCACHE_SPACE", os.environ.get("VLLM_CPU_KVCACHE_SPACE", "2")),)
            extra = tuple(args.vllm_arg or ())
            cfg = ServeConfig(model=model, adapters=adapters, port=0, max_lora_rank=args.max_lora_rank, dtype=args.dtype,
                              max_model_len=args.max_model_len, env=env, extra_args=extra)
            server = VLLMServer(cfg, launcher=launcher, log_path=Path(args.out).with_suffix(".vllm.log"))
            t0 = time.perf_counter()
            server.start()
            info["server_start_s"] = round(time.perf_counter() - t0, 1)
            url = server.url
            served_model = served_model or ("bench" if adapter else None)
            info["device"] = vllm_device_desc(_launcher_python(launcher))
        else:
            info["device"] = "server at " + url
        drafter = VLLMDrafter(url, model=served_model, task=args.task, max_new_tokens=args.max_new_tokens,
                              concurrency=args.concurrency, timeout_s=args.timeout_s)
        stats, reports = measure(drafter, studies, warmup)
        info.update(stats, url=url, model=drafter.resolve()[0], concurrency=args.concurrency)
        drafter.close()
        return info, reports
    finally:
        if server is not None:
            server.stop()


def run_hf(args: argparse.Namespace, model: str, adapter: str | None, studies, warmup) -> tuple[dict[str, Any], dict]:
    from reportgen.backends.hf import HFDrafter

    t0 = time.perf_counter()
    drafter = HFDrafter(model, adapter=adapter, task=args.task, max_new_tokens=args.max_new_tokens,
                        batch_size=args.batch_size, device=args.device, dtype=args.dtype)
    info: dict[str, Any] = {"backend": "hf", "load_s": round(time.perf_counter() - t0, 1)}
    info["device"] = torch_device_desc(str(drafter.loaded.device))
    stats, reports = measure(drafter, studies, warmup)
    info.update(stats, batch_size=args.batch_size, dtype=str(drafter.loaded.dtype).replace("torch.", ""))
    return info, reports


def print_table(rows: list[dict[str, Any]]) -> None:
    cols = [("backend", "backend"), ("reports", "reports"), ("errors", "errors"), ("wall_s", "wall s"),
            ("reports_per_s", "reports/s"), ("tokens_per_s", "tokens/s"), ("latency_p50_s", "p50 s"),
            ("latency_p95_s", "p95 s"), ("device", "device")]
    table = [[str(r.get(k, "")) for k, _ in cols] for r in rows]
    widths = [max(len(h), *(len(t[i]) for t in table)) for i, (_, h) in enumerate(cols)]
    print("  ".join(h.ljust(w) for (_, h), w in zip(cols, widths)))
    for t in table:
        print("  ".join(v.ljust(w) for v, w in zip(t, widths)))


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="tiny", help="hub id or folder; 'tiny' builds the test suite's tiny Qwen2-VL (default)")
    p.add_argument("--adapter", default=None, help="LoRA adapter folder, or 'none' (default with --model tiny: the trained tiny adapter; otherwise none)")
    p.add_argument("--studies", default=None, help="studies JSONL (default with --model tiny: the tiny manifest)")
    p.add_argument("--n", type=int, default=24, help="studies to draft per backend (cycled; default 24)")
    p.add_argument("--warmup", type=int, default=2, help="untimed studies first (default 2)")
    p.add_argument("--backends", default="hf,vllm", help="comma-separated: hf, vllm (default both)")
    p.add_argument("--task", default="findings", choices=("findings", "impression", "full"))
    p.add_argument("--max-new-tokens", type=int, default=64)
    p.add_argument("--batch-size", type=int, default=8, help="hf: studies per generate call (default 8)")
    p.add_argument("--concurrency", type=int, default=8, help="vllm: requests in flight (default 8)")
    p.add_argument("--device", default=None, help="hf device (default cuda when available)")
    p.add_argument("--dtype", default=None, help="hf and vLLM dtype (default: float32 for the tiny model, else auto)")
    p.add_argument("--vllm-url", default=None, help="use a running server instead of starting one")
    p.add_argument("--vllm-model", default=None, help="with --vllm-url: the served model/adapter name")
    p.add_argument("--vllm-python", default=None, help="python of the vLLM environment (default: found like `reportgen serve`)")
    p.add_argument("--vllm-arg", action="append", help="extra vLLM server argument (repeatable, e.g. --vllm-arg=--max-num-seqs=16)")
    p.add_argument("--max-lora-rank", type=int, default=16)
    p.add_argument("--max-model-len", type=int, default=None)
    p.add_argument("--timeout-s", type=float, default=600.0)
    p.add_argument("--out", default="runs/bench/draft_bench.json")
    args = p.parse_args(argv)

    backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    if not set(backends) <= {"hf", "vllm"} or not backends:
        p.error("--backends takes hf, vllm or hf,vllm")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    if args.model == "tiny":
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
    with tempfile.TemporaryDirectory(prefix="draft-bench-") as tmp:
        model, adapter, studies_path = args.model, args.adapter, args.studies
        if model == "tiny":
            m, a, manifest = tiny_setup(Path(tmp), with_adapter=adapter in (None, "tiny"))
            model, adapter = str(m), (str(a) if a else None if adapter in (None, "tiny", "none") else adapter)
            studies_path = studies_path or str(manifest)
            args.dtype = args.dtype or "float32"
            args.max_model_len = args.max_model_len or 2048
        if adapter == "none":
            adapter = None
        if not studies_path:
            p.error("--studies is needed with a model other than 'tiny'")
        studies = load_studies(Path(studies_path), args.n)
        warmup = [replace(s, id=f"warmup-{i}") for i, s in enumerate(studies[: args.warmup])]
        rows, reports = [], {}
        for b in sorted(backends, key=lambda x: x != "vllm"):  # vllm first, its server stopped before hf
            runner = run_vllm if b == "vllm" else run_hf
            row, reports[b] = runner(args, model, adapter, studies, warmup)
            rows.append(row)
    result: dict[str, Any] = {
        "model": args.model, "adapter": args.adapter or ("tiny" if args.model == "tiny" else None), "task": args.task,
        "n": len(studies), "max_new_tokens": args.max_new_tokens, "machine": cpu_desc(),
        "python": platform.python_version(), "backends": rows,
    }
    if len(reports) == 2:
        same = sum(1 for k, v in reports["hf"].items() if v is not None and reports["vllm"].get(k) == v)
        result["identical_drafts"] = f"{same}/{len(studies)}"
        by = {r["backend"]: r for r in rows}
        if by["hf"].get("reports_per_s") and by["vllm"].get("reports_per_s"):
            result["vllm_speedup"] = round(by["vllm"]["reports_per_s"] / by["hf"]["reports_per_s"], 2)
    print_table(rows)
    extra = {k: result[k] for k in ("identical_drafts", "vllm_speedup") if k in result}
    if extra:
        print("  ".join(f"{k}: {v}" for k, v in extra.items()))
    write_json(args.out, result)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
