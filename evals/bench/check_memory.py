"""Peak memory of `reportgen check` streaming a large JSONL of reports (issue 16).

Generates ``--size`` bytes of report records in a temporary folder (the 3,955 IU reports
again and again, each copy with its own id; never committed), runs ``reportgen check
--reports FILE`` in a child process with its JSONL written to stdout (read and counted
here, then dropped), and samples the child's resident memory (``VmRSS`` / the peak
``VmHWM`` from /proc) as the records stream out. Memory is bounded when the peak stops
growing with the input: the table shows the peak after 1%, 10%, 25%, 50% and 100% of the
input, and the JSON keeps every sample.

    python -m evals.bench.check_memory [--size 1G] [--tmp /tmp] [--max-minutes 60]
        [--out runs/bench/check_memory.json]

Linux only (/proc). A run stopped by ``--max-minutes`` keeps the samples it has (marked
``"complete": false``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

from evals.bench import write_json


def parse_size(text: str) -> int:
    units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
    t = text.strip().upper().rstrip("B")
    return int(float(t[:-1]) * units[t[-1]]) if t and t[-1] in units else int(t)


def make_input(path: Path, size: int) -> tuple[int, int]:
    """(records, bytes) of a JSONL of IU reports repeated up to ``size`` bytes (reused when present)."""
    from reportgen.iu import load_iu_reports

    meta = path.with_suffix(".meta.json")
    if path.exists() and meta.exists():
        m = json.loads(meta.read_text())
        if m.get("size") == size:
            return m["records"], m["bytes"]
    lines = []
    for r in load_iu_reports():
        text = r.report.text if hasattr(r.report, "text") else r.report
        lines.append(json.dumps({"report": text}, ensure_ascii=False)[1:])  # '"report": ...}'
    n = written = 0
    with path.open("w", encoding="utf-8") as fh:
        while written < size:
            for line in lines:
                rec = f'{{"id": "r{n}", {line}\n'
                fh.write(rec)
                written += len(rec.encode("utf-8"))
                n += 1
                if written >= size:
                    break
    meta.write_text(json.dumps({"size": size, "records": n, "bytes": written}))
    return n, written


def _mem_kb(pid: int) -> tuple[int, int]:
    rss = hwm = 0
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1])
            elif line.startswith("VmHWM:"):
                hwm = int(line.split()[1])
    return rss, hwm


def measure(path: Path, records: int, max_s: float) -> dict:
    cmd = [sys.executable, "-m", "reportgen", "check", "--reports", str(path), "--format", "json", "-q"]
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    samples = []
    step = max(1, records // 200)
    n = 0
    complete = True
    for _ in proc.stdout:
        n += 1
        if n % step == 0 or n == 1:
            try:
                rss, hwm = _mem_kb(proc.pid)
            except OSError:
                break
            samples.append({"records": n, "fraction": round(n / records, 4), "rss_mb": round(rss / 1024, 1),
                            "peak_mb": round(hwm / 1024, 1), "seconds": round(time.perf_counter() - t0, 1)})
        if time.perf_counter() - t0 > max_s:
            complete = False
            proc.kill()
            break
    # the child's own peak, from the kernel when it is reaped (exact, whatever the sampling missed)
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    peak_mb = round(usage.ru_maxrss / 1024, 1)
    if complete:
        samples.append({"records": n, "fraction": round(n / records, 4), "rss_mb": None, "peak_mb": peak_mb,
                        "seconds": round(time.perf_counter() - t0, 1)})
    return {"records_done": n, "complete": complete and n == records, "returncode": proc.returncode, "peak_mb": peak_mb,
            "seconds": round(time.perf_counter() - t0, 1), "samples": samples}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size", default="1G", help="input size: 1G, 100M, ... (default 1G)")
    ap.add_argument("--tmp", default="/tmp", help="folder for the generated input (default /tmp)")
    ap.add_argument("--max-minutes", type=float, default=60.0)
    ap.add_argument("--out", default="runs/bench/check_memory.json")
    args = ap.parse_args(argv)
    size = parse_size(args.size)
    path = Path(args.tmp) / f"reportgen-check-memory-{args.size}.jsonl"
    records, nbytes = make_input(path, size)
    res = measure(path, records, args.max_minutes * 60)
    res.update({"input": str(path), "input_bytes": nbytes, "records": records, "python": platform.python_version(),
                "machine": platform.machine(), "cpus": os.cpu_count(), "load_avg": os.getloadavg()})
    print(f"reportgen check over {nbytes / 2**20:,.0f} MB ({records:,} reports), {res['seconds']} s"
          + ("" if res["complete"] else f" (stopped after {res['records_done']:,} reports)"))
    print(f"{'input read':>12} {'reports':>10} {'RSS MB':>8} {'peak MB':>8}")
    shown = set()
    for frac in (0.01, 0.10, 0.25, 0.50, 1.0):
        s = next((x for x in res["samples"] if x["fraction"] >= frac - 1e-9), None)
        if s is None or s["records"] in shown:
            continue
        shown.add(s["records"])
        rss = "-" if s["rss_mb"] is None else s["rss_mb"]
        print(f"{s['fraction'] * nbytes / 2**20:>9,.0f} MB {s['records']:>10,} {rss:>8} {s['peak_mb']:>8}")
    write_json(args.out, res)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
