"""The dependency-parse scope mode against the fast rules, side by side on the same data.

    python -m evals.bench.scope_compare [--out runs/scope_compare.json] [--limit N] [--offset N]
                                        [--examples K] [--tests]

Two extractors that differ only in how an observation's assertion is decided: ``rules``
(``RulesExtractor``, NegEx-style scopes) and ``rules-parse`` (``evals/bench/scope_parse.py``:
the same mentions, relations and claims, assertions from spaCy's dependency parse with
NegBio-style patterns). In one run:

(a) IU MeSH agreement, micro P/R/F1 (``evals/bench/mesh_agreement.py``'s ``run``);
(b) the open injection benchmark's ``negation_flip`` category (``evals/inject.py``; the graph
    checker, reference evidence only, convention chexpert, as ``reportgen eval --inject``):
    recall, false flags on untouched sentences;
(c) agreement of the two on presence, per finding (same span and observation) over the IU
    reports, with counts per disagreement kind (rules -> parse); ``--examples K`` adds K
    sentences per kind to the JSON (IU reports are public; off by default);
(d) speed: reports/s of ``read_report`` over the IU reports, cold (the MeSH pass; the spaCy
    model is loaded before it, its load time reported apart);
(e) with ``--tests``: the negation / uncertainty regression test files run under pytest as
    they are and with the parse mode standing in for the rules extractor
    (``-p evals.bench.parse_as_rules``): passed / failed per mode.

Prints a table and writes JSON.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

from evals.bench import write_json

ROOT = Path(__file__).resolve().parents[2]
# the test files holding the negation / uncertainty / hypothetical regression tests
SCOPE_TESTS = ("tests/test_error_classes.py", "tests/test_findings.py", "tests/test_graphs.py",
               "tests/test_graph_checker_regressions.py", "tests/test_claims.py")


def _extractors() -> dict[str, Any]:
    from evals.bench.scope_parse import ParseScopeExtractor
    from reportgen.checkers.graphs.rules import RulesExtractor

    return {"rules": RulesExtractor(), "rules-parse": ParseScopeExtractor()}


def mesh(ex: Any, reports: tuple, limit: int) -> dict[str, Any]:
    from evals.bench import mesh_agreement

    ns = argparse.Namespace(extractor=ex.name, uncertain="positive", min_support=10, limit=limit,
                            map=str(mesh_agreement.DATA), show_errors=None)
    res = mesh_agreement.run(ns, extractor=ex, reports=list(reports))
    res.pop("_errors", None)
    return res


def injection(ex: Any, reports: tuple, seed: int, rate: float) -> dict[str, Any]:
    from reportgen.evals.inject import run_benchmark
    from reportgen.evals.suite import graph_checker_flags

    pairs = [(r.id, r.report.text) for r in reports]
    t0 = time.perf_counter()
    rows, _ = run_benchmark(pairs, graph_checker_flags(ex), seed=seed, rate=rate, categories=("negation_flip",))
    row = next(r for r in rows if r.category == "negation_flip")
    return {**row.to_dict(), "wall_s": time.perf_counter() - t0}


def _findings(rr) -> dict[tuple[int, int, str], tuple[str, tuple[int, int]]]:
    out = {}
    for cc in rr.claims:
        c = cc.claim
        sent = (c.sentence_start if c.sentence_start is not None else c.start, c.sentence_end if c.sentence_end is not None else c.end)
        for f in cc.findings:
            out.setdefault((f.start, f.end, f.observation), (f.presence, sent))
    return out


def agreement(exs: dict[str, Any], reports: tuple, examples: int) -> dict[str, Any]:
    """Presence of the same finding (span, observation) read by the two extractors."""
    from reportgen.checkers.read import read_report

    a_name, b_name = list(exs)
    kinds: Counter = Counter()
    samples: dict[str, list[str]] = defaultdict(list)
    same = both = only_a = only_b = 0
    for r in reports:
        text = r.report.text
        fa, fb = (_findings(read_report(text, ex)) for ex in exs.values())
        for key in fa.keys() | fb.keys():
            if key not in fb:
                only_a += 1
                continue
            if key not in fa:
                only_b += 1
                continue
            both += 1
            (pa, sent), (pb, _) = fa[key], fb[key]
            if pa == pb:
                same += 1
                continue
            kind = f"{key[2]}: {pa} -> {pb}"
            kinds[f"{pa} -> {pb}"] += 1
            if len(samples[f"{pa} -> {pb}"]) < examples:
                samples[f"{pa} -> {pb}"].append(f"{r.id} [{kind}] {text[sent[0]:sent[1]]}")
    return {"findings_in_both": both, "same_presence": same, "agreement": same / both if both else None,
            f"only_{a_name}": only_a, f"only_{b_name}": only_b, "kinds": dict(kinds.most_common()),
            "examples": dict(samples)}


_SUMMARY = re.compile(r"(\d+) (passed|failed|skipped|error|errors)")


def regression_tests() -> dict[str, Any]:
    """The scope regression test files, as they are and with the parse mode as ``rules``."""
    out = {}
    for mode, extra in (("rules", []), ("rules-parse", ["-p", "evals.bench.parse_as_rules"])):
        cmd = [sys.executable, "-m", "pytest", *SCOPE_TESTS, "-q", "-p", "no:cacheprovider", *extra]
        p = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, env=_env())
        tail = p.stdout.strip().splitlines()[-1] if p.stdout.strip() else p.stderr[-500:]
        counts = {k: int(n) for n, k in _SUMMARY.findall(tail)}
        failed = [ln.split(" ", 1)[1].split(" - ")[0] for ln in p.stdout.splitlines() if ln.startswith("FAILED ")]
        out[mode] = {"passed": counts.get("passed", 0), "failed": counts.get("failed", 0), "skipped": counts.get("skipped", 0),
                     "failed_tests": failed, "summary": tail}
    out["files"] = list(SCOPE_TESTS)
    return out


def _env() -> dict[str, str]:
    import os

    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    return env


def run(args: argparse.Namespace) -> dict[str, Any]:
    from reportgen.iu import load_iu_reports

    reports = load_iu_reports(require_text=True)[getattr(args, "offset", 0):]
    if args.limit:
        reports = reports[: args.limit]
    exs = _extractors()
    t0 = time.perf_counter()
    exs["rules-parse"].nlp  # noqa: B018 (load the spaCy model outside the timings)
    load_s = time.perf_counter() - t0
    res: dict[str, Any] = {"benchmark": "scope_compare", "reports": len(reports),
                           "settings": {"seed": args.seed, "rate": args.rate, "limit": args.limit, "offset": getattr(args, "offset", 0),
                                        "patterns_version": exs["rules-parse"].patterns.version,
                                        "model": exs["rules-parse"].model_name, "model_load_s": load_s},
                           "modes": {}}
    for name, ex in exs.items():
        m = mesh(ex, reports, 0)
        res["modes"][name] = {"mesh": {"micro": m["micro"], "macro": m["macro_rows_with_support"],
                                       "side_agreement": m["side_agreement"], "disagreements": m["disagreements"]["total"],
                                       "rows": {x["row"]: {k: x[k] for k in ("tp", "fp", "fn", "f1")} for x in m["rows"]}},
                              "speed": {"reports": m["reports"], "cpu_s": m["timing"]["cpu_s"], "wall_s": m["timing"]["wall_s"],
                                        "reports_per_cpu_s": m["timing"]["reports_per_cpu_s"],
                                        "reports_per_wall_s": m["reports"] / m["timing"]["wall_s"] if m["timing"]["wall_s"] else None}}
    for name, ex in exs.items():
        res["modes"][name]["negation_flip"] = injection(ex, reports, args.seed, args.rate)
    res["presence_agreement"] = agreement(exs, reports, args.examples)
    if args.tests:
        res["regression_tests"] = regression_tests()
    return res


def format_table(res: dict[str, Any]) -> str:
    def pct(x):
        return "-" if x is None else f"{100 * x:.1f}"

    names = list(res["modes"])
    rows = [("MeSH micro P %", lambda m: pct(m["mesh"]["micro"]["precision"])),
            ("MeSH micro R %", lambda m: pct(m["mesh"]["micro"]["recall"])),
            ("MeSH micro F1 %", lambda m: pct(m["mesh"]["micro"]["f1"])),
            ("MeSH tp / fp / fn", lambda m: f"{m['mesh']['micro']['tp']} / {m['mesh']['micro']['fp']} / {m['mesh']['micro']['fn']}"),
            ("negation_flip recall", lambda m: f"{m['negation_flip']['recall']:.3f} ({m['negation_flip']['detected']}/{m['negation_flip']['errors']})"),
            ("negation_flip false flags", lambda m: f"{m['negation_flip']['fp_flags']} / {m['negation_flip']['untouched_claims']} "
                                                    f"({m['negation_flip']['false_flag_rate']:.4f})"),
            ("reports/s (cold, CPU)", lambda m: f"{m['speed']['reports_per_cpu_s']:.0f}"),
            ("reports/s (cold, wall)", lambda m: f"{m['speed']['reports_per_wall_s']:.0f}")]
    lines = [f"Scope modes over {res['reports']} IU reports (seed {res['settings']['seed']}, rate {res['settings']['rate']})",
             f"{'':<32}" + "".join(f"{n:>26}" for n in names)]
    for label, fn in rows:
        lines.append(f"{label:<32}" + "".join(f"{fn(res['modes'][n]):>26}" for n in names))
    if "regression_tests" in res:
        t = res["regression_tests"]
        lines.append(f"{'scope regression tests passed':<32}" + "".join(
            f"{str(t[n]['passed']) + '/' + str(t[n]['passed'] + t[n]['failed']):>26}" for n in names))
    a = res["presence_agreement"]
    lines.append(f"presence agreement: {a['same_presence']}/{a['findings_in_both']} findings ({pct(a['agreement'])} %); "
                 + ", ".join(f"{k}: {v}" for k, v in a["kinds"].items() if not k.startswith("only")))
    lines.append("findings read by one mode only: " + ", ".join(f"{k[5:]} {v}" for k, v in a.items() if k.startswith("only_")))
    lines.append(f"spaCy model load: {res['settings']['model_load_s']:.2f} s (not in the speeds)")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m evals.bench.scope_compare", description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default="runs/scope_compare.json", help="JSON result (default runs/scope_compare.json)")
    p.add_argument("--limit", type=int, default=0, help="only the first N IU reports with text (default: all)")
    p.add_argument("--offset", type=int, default=0, help="skip the first N IU reports with text (a held-out part; default 0)")
    p.add_argument("--seed", type=int, default=0, help="injection seed (default 0)")
    p.add_argument("--rate", type=float, default=0.3, help="injection rate (default 0.3)")
    p.add_argument("--examples", type=int, default=0, help="sentences per disagreement kind in the JSON (report text; default 0)")
    p.add_argument("--tests", action="store_true", help="also run the scope regression test files in both modes")
    args = p.parse_args(argv)
    res = run(args)
    print(format_table(res))
    out = write_json(args.out, res)
    print(f"wrote {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
