"""`reportgen compare`: every metric for every system on the same studies, with paired tests.

    reportgen compare --ref R.jsonl --pred A=a.jsonl --pred B=b.jsonl [--pred C=c.jsonl]
                      --out cmp.json [--html cmp.html] [--resamples 1000 --permutations 1000 --seed 0]
                      [--correction holm|bonferroni|none] [--workers N]

The studies are the reference's (valid records). A study a system lacks, or whose
prediction is null or empty (a failed draft), counts as a FAILURE for that system (scored as
an empty report, listed), never dropped from the others. Each system gets every corpus
figure of ``reportgen eval`` with its bootstrap CI; each pair of systems and each figure
gets a paired bootstrap test (difference, its CI, p-value) and an approximate-randomization
test (p-value), seeded; p-values are adjusted over the system pairs of each figure with the
correction named in the output (Holm by default). See docs/metrics.md.

``--workers N``: the studies are read, checked and scored in N processes, in blocks of
studies (every system's prediction of a study and its reference in the same process, so a
reference is read once); the corpus figures and tests are computed from the joined rows in
study order: the output is the same whatever N (only ``timings_s`` differs between runs).
The default (0) chooses N from the usable CPUs and the number of studies.
"""

from __future__ import annotations

import argparse
import itertools
import os
import sys
import time
from typing import Any

from reportgen.errors import ReportgenError, with_error_code
from reportgen.jsonl import MAX_RECORD_CHARS, atomic_writer


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--ref", metavar="R.jsonl", required=True, help='references, one {"id", "report"} per line')
    p.add_argument("--pred", metavar="NAME=P.jsonl", action="append", required=True,
                   help="a system's predictions (give --pred at least twice)")
    p.add_argument("--out", metavar="CMP.json", required=True, help="comparison JSON, written atomically")
    p.add_argument("--html", metavar="CMP.html", help="also write an HTML page with the tables")
    p.add_argument("--resamples", type=int, default=1000, help="bootstrap resamples (default 1000)")
    p.add_argument("--permutations", type=int, default=1000, help="approximate-randomization trials (default 1000)")
    p.add_argument("--seed", type=int, default=0, help="seed of both tests (default 0)")
    p.add_argument("--correction", choices=("holm", "bonferroni", "none"), default="holm",
                   help="multiple-testing correction over the system pairs of each metric (default holm)")
    p.add_argument("--alpha", type=float, default=0.05, help="significance level for the 'significant' flag (default 0.05)")
    p.add_argument("--metrics", nargs="+", metavar="NAME", help="only these corpus figures (default: all)")
    p.add_argument("--extractor", choices=("rules", "radgraph"), default="rules", help="entity graph backend (default rules)")
    p.add_argument("--policy", choices=("uncertain-as-positive", "uncertain-as-negative"), default="uncertain-as-positive",
                   help="CheXpert label F1 uncertain policy (default uncertain-as-positive)")
    p.add_argument("--max-chars", type=int, default=MAX_RECORD_CHARS, help=f"longest report accepted (default {MAX_RECORD_CHARS:,})")
    p.add_argument("--workers", type=int, default=0, metavar="N",
                   help="processes that read, check and score the studies (default 0: one per usable CPU, at most "
                        f"{MAX_AUTO_WORKERS}, one per {MIN_STUDIES_PER_WORKER} studies; 1: this process only); "
                        "the output is the same for every N")
    p.add_argument("-q", "--quiet", action="store_true", help="no table")


# --workers 0 (the default): one process per usable CPU, at most MAX_AUTO_WORKERS, and at
# least MIN_STUDIES_PER_WORKER studies each (below that, starting processes costs more
# than it saves: each worker reads the sentences its studies share with other workers' again).
MAX_AUTO_WORKERS = 8
MIN_STUDIES_PER_WORKER = 250
# Studies per block handed to a worker (blocks are scored in any order, joined in order).
BLOCK = 128


def usable_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def choose_workers(workers: int, n_studies: int) -> int:
    """The number of scoring processes: ``workers`` when given (>= 1), else (0) one per
    usable CPU, at most ``MAX_AUTO_WORKERS``, with at least ``MIN_STUDIES_PER_WORKER``
    studies each; never more than the blocks of studies."""
    if workers < 0:
        raise ReportgenError("E730", f"--workers must be 0 (choose) or more, got {workers}",
                             fix="give --workers 0 (one per CPU), 1 (this process only) or N")
    n = workers or min(usable_cpus(), MAX_AUTO_WORKERS, n_studies // MIN_STUDIES_PER_WORKER)
    return max(1, min(n, -(-n_studies // BLOCK)))


def parse_systems(specs: list[str]) -> dict[str, str]:
    systems: dict[str, str] = {}
    for s in specs:
        name, sep, path = s.partition("=")
        if not sep or not name.strip() or not path:
            raise ReportgenError("E861", f"--pred {s!r} is not NAME=PATH", fix="e.g. --pred baseline=a.jsonl")
        if name in systems:
            raise ReportgenError("E861", f"system name {name!r} given twice", fix="give each --pred a distinct NAME")
        systems[name.strip()] = path
    if len(systems) < 2:
        raise ReportgenError("E862", f"compare needs at least two systems, got {len(systems)}", fix="give --pred NAME=PATH twice or more")
    return systems


def compare(ref: dict[str, str], systems: dict[str, dict[str, str | None]], failures: dict[str, dict[str, str]], *,
            extractor: str = "rules", policy: str = "uncertain-as-positive", resamples: int = 1000, permutations: int = 1000,
            seed: int = 0, correction: str = "holm", alpha: float = 0.05, metrics: list[str] | None = None,
            reader: Any = None, one_pass: bool = True, gc_batch: bool = True, workers: int = 1) -> dict[str, Any]:
    """The comparison of ``systems`` (name -> {study id: text or None}) on the studies of
    ``ref``; a study missing in a system is a failure for it. ``one_pass``: ``Suite``'s (the
    two conventions' forward checks from one graph pass); ``gc_batch``: score under
    ``batch_gc``. Both False only to measure their gain (``evals.bench.compare_bench``).
    ``workers``: processes that score the studies (``choose_workers``; 0: choose); the
    result is the same for every number (``timings_s`` aside)."""
    import numpy as np

    from reportgen.evals.metrics.significance import adjust, bootstrap_weights, swap_masks, tests_from_sums
    from reportgen.evals.suite import FIGURE_NOTES, ScoredPairs, corpus_result

    t0 = time.perf_counter()
    studies = sorted(ref)
    n_workers = choose_workers(workers, len(studies))
    # The resamples (the same for every system's CIs and the paired bootstrap when every
    # system scored every study), drawn before scoring so that bad counts fail at once.
    weights_all = bootstrap_weights(len(studies), resamples, seed)
    swap_masks(0, permutations, seed)  # E858 now, not after scoring
    reasons = {name: {i: failures.get(name, {}).get(i) or f"missing in system {name!r}" for i in studies if texts.get(i) is None}
               for name, texts in systems.items()}
    blocks = [studies[k:k + BLOCK] for k in range(0, len(studies), BLOCK)] if n_workers > 1 else [studies]
    jobs = [{name: ([(i, texts.get(i), ref[i]) for i in block], {i: reasons[name][i] for i in block if i in reasons[name]})
             for name, texts in systems.items()} for block in blocks]
    settings = {"extractor": extractor, "policy": policy, "one_pass": one_pass, "gc_batch": gc_batch, "reader": reader}
    parts = _score_blocks(jobs, settings, n_workers)
    stages: dict[str, float] = {}  # wall seconds per stage, summed over systems (and workers)
    stages_cpu: dict[str, float] = {}  # CPU seconds of the process that ran each stage, summed the same way
    per: dict[str, Any] = {}
    out_systems: dict[str, Any] = {}
    for name, texts in systems.items():
        scored = ScoredPairs.join([p[name] for p in parts])
        t1, c1 = time.perf_counter(), time.process_time()
        res = corpus_result(scored.results, scored.bleu, resamples, seed, policy, weights=weights_all)
        for k, v in {**scored.timings, "bootstrap": scored.timings.get("bootstrap", 0.0) + time.perf_counter() - t1}.items():
            stages[k] = stages.get(k, 0.0) + v
        for k, v in {**scored.cpu_timings, "bootstrap": scored.cpu_timings.get("bootstrap", 0.0) + time.process_time() - c1}.items():
            stages_cpu[k] = stages_cpu.get(k, 0.0) + v
        per[name] = res
        out_systems[name] = {
            "n_scored": len(res.scored), "n_failed": len(res.failed),
            "failed": [{"id": r.id, "reason": r.failed} for r in res.failed],
            "missing": sorted(i for i in studies if i not in texts),
            "errors": [with_error_code({"id": r.id, "error": r.error}) for r in res.results if r.error],
            "corpus": {k: v.to_dict() for k, v in res.corpus.items()},
        }
    t_score = time.perf_counter() - t0
    # The studies every system scored (only a bad reference or an unreadable text is unscored).
    index = {s: {r.id: k for k, r in enumerate(per[s].scored)} for s in systems}
    common = [i for i in studies if all(i in index[s] for s in systems)]
    names = [m for m in per[next(iter(systems))].figures if metrics is None or m in metrics]
    names = [m for m in names if m != "green" and all(m in per[s].figures for s in systems)]  # "green" = green_mean_per_report
    n = len(common)
    weights = weights_all if n == len(studies) else bootstrap_weights(n, resamples, seed)
    masks = swap_masks(n, permutations, seed)
    comparisons: list[dict[str, Any]] = []
    # One block of columns per figure; one bootstrap product per system, one permutation
    # product per pair, sliced per figure.
    cols, start = {}, 0
    for metric in names:
        k = per[next(iter(systems))].figures[metric].rows.shape[1]
        cols[metric] = slice(start, start + k)
        start += k
    rows = {s: np.concatenate([per[s].figures[m].rows[np.array([index[s][i] for i in common], dtype=int)]
                               for m in names], axis=1) if names and n else np.zeros((n, start)) for s in systems}
    boot = {s: weights @ rows[s] if n else None for s in systems}
    tests: dict[tuple[str, str, str], Any] = {}
    for a, b in itertools.combinations(systems, 2):
        swapped = masks @ (rows[b] - rows[a]) if n else None
        ta, tb = rows[a].sum(axis=0), rows[b].sum(axis=0)
        for metric in names:
            sl = cols[metric]
            tests[(metric, a, b)] = tests_from_sums(ta[sl], tb[sl], None if boot[a] is None else boot[a][:, sl],
                                                    None if boot[b] is None else boot[b][:, sl],
                                                    None if swapped is None else swapped[:, sl], per[a].figures[metric].stat, n)
    for metric in names:
        block = [{"metric": metric, "a": a, "b": b, **tests[(metric, a, b)].to_dict()} for a, b in itertools.combinations(systems, 2)]
        for key in ("p_bootstrap", "p_permutation"):
            adj = adjust([np.nan if c[key] is None else c[key] for c in block], correction)
            for c, v in zip(block, adj):
                c[f"{key}_adjusted"] = None if np.isnan(v) else v
        for c in block:
            c["significant"] = c["p_permutation_adjusted"] is not None and c["p_permutation_adjusted"] < alpha
        comparisons += block
    return {
        "version": 1,
        "settings": {"resamples": resamples, "permutations": permutations, "seed": seed, "alpha": alpha,
                     "correction": correction, "correction_family": "the system pairs of each metric",
                     "tests": {"bootstrap": "paired bootstrap over studies, two-sided p of the shifted null",
                               "permutation": "approximate randomization: each study's two outputs swapped with probability 1/2"},
                     "extractor": extractor, "policy": policy, "failures": "a study missing or empty in a system is scored as an empty report for it"},
        "n_studies": len(studies), "n_compared": n,
        "systems": out_systems,
        "comparisons": comparisons,
        "figure_notes": FIGURE_NOTES,
        "timings_s": {"score": round(t_score, 3), "tests": round(time.perf_counter() - t0 - t_score, 3),
                      "score_stages": {k: round(v, 3) for k, v in stages.items()},
                      "score_stages_cpu": {k: round(v, 3) for k, v in stages_cpu.items()}, "workers": n_workers},
    }


# --- scoring the studies, in this process or in several ------------------------------------

_WORKER: dict[str, Any] = {}


def _start_worker(settings: dict[str, Any]) -> None:
    """A scoring process's state: one Suite per system, sharing one report reader and one
    memo (a reference is read and processed once for every system)."""
    from reportgen.checkers.pipeline import default_reader
    from reportgen.evals.suite import CachedReader

    _WORKER.clear()
    _WORKER.update(settings)
    _WORKER["shared"] = settings["reader"] or CachedReader(default_reader(settings["extractor"]))
    _WORKER["memo"] = {}
    _WORKER["suites"] = {}


def _score_block(job: dict[str, tuple[list, dict[str, str]]]) -> dict[str, Any]:
    """Every system's ScoredPairs for one block of studies (``Suite.score``)."""
    import contextlib

    from reportgen.checkers.pipeline import batch_gc
    from reportgen.evals.suite import Suite

    w = _WORKER
    out = {}
    for name, (pairs, reasons) in job.items():
        suite = w["suites"].get(name)
        if suite is None:
            suite = w["suites"][name] = Suite(w["extractor"], policy=w["policy"], reader=w["shared"], memo=w["memo"],
                                              one_pass=w["one_pass"])
        # the collector as ``reportgen check`` sets it (young collections every 10,000
        # allocations, what is alive before frozen): 2-3 s less CPU over 3 x 3,927 pairs
        with batch_gc() if w["gc_batch"] else contextlib.nullcontext():
            out[name] = suite.score(pairs, failures=reasons)
    return out


def _score_blocks(jobs: list[dict[str, Any]], settings: dict[str, Any], workers: int) -> list[dict[str, Any]]:
    """``_score_block`` of every job, in the jobs' order: in this process (``workers`` 1) or
    in ``workers`` processes (forked where the platform can: the parent's loaded modules,
    lexicons and spaCy are shared; spawned elsewhere)."""
    if workers <= 1:
        _start_worker(settings)
        try:
            return [_score_block(j) for j in jobs]
        finally:
            _WORKER.clear()
    from concurrent.futures import ProcessPoolExecutor
    from concurrent.futures.process import BrokenProcessPool

    from reportgen.checkers.batch import pool_context
    from reportgen.checkers.pipeline import default_reader

    ctx = pool_context()
    if ctx.get_start_method() == "fork":
        default_reader(settings["extractor"])  # the extractor's lexicons and rules, loaded once before the fork
    elif settings["reader"] is not None:
        raise ReportgenError("E731", "a reader object cannot be sent to worker processes on this platform (no fork)",
                             fix="call compare with workers=1 when giving a reader")
    try:
        with ProcessPoolExecutor(workers, mp_context=ctx, initializer=_start_worker, initargs=(settings,)) as pool:
            return list(pool.map(_score_block, jobs))
    except BrokenProcessPool as e:
        raise ReportgenError("E732", f"a scoring process of compare ended without an answer ({e}); nothing was written",
                             fix="give fewer --workers (each holds its studies' reports in memory) or --workers 1") from None


def run(args: argparse.Namespace) -> int:
    from reportgen.commands.eval import load_side, write_json
    from reportgen.jsonl import json_safe

    spec = parse_systems(args.pred)
    ref, ref_problems, _ = load_side(args.ref, args.max_chars, "ref")
    systems, failures, problems = {}, {}, list(ref_problems)
    for name, path in spec.items():
        f: dict[str, str] = {}
        texts, probs, _ = load_side(path, args.max_chars, name, f)
        systems[name], failures[name] = texts, f
        problems += probs
    if not ref:
        raise ReportgenError("E863", f"no valid reference in {args.ref!r}", fix="give a JSONL of {\"id\", \"report\"} records")
    result = compare(ref, systems, failures, extractor=args.extractor, policy=args.policy, resamples=args.resamples,
                     permutations=args.permutations, seed=args.seed, correction=args.correction, alpha=args.alpha,
                     metrics=args.metrics, workers=args.workers)
    result["settings"]["ref"] = args.ref
    result["settings"]["systems"] = spec
    result["input_errors"] = problems
    result["only_in_pred"] = {s: sorted(i for i in t if i not in ref) for s, t in systems.items()}
    result = json_safe(result)
    write_json(args.out, result)
    if args.html:
        from reportgen.evals.html import render_compare_html

        with atomic_writer(args.html) as fh:
            fh.write(render_compare_html(result))
    if not args.quiet:
        table(result, sys.stdout)
    fails = ", ".join(f"{s}: {v['n_failed']} failed" for s, v in result["systems"].items())
    print(f"reportgen compare: {result['n_studies']} studies, {len(spec)} systems ({fails}) -> {args.out}", file=sys.stderr)
    return 0


def table(result: dict[str, Any], out: Any) -> None:
    def f(x: Any) -> str:
        return "-" if x is None else f"{x:.4f}"

    print(f"{'metric':<34}{'A':>10}{'B':>10}{'A':>9}{'B':>9}{'A-B':>9}{'p boot':>9}{'p perm':>9}{'adj':>8}", file=out)
    for c in result["comparisons"]:
        star = "*" if c["significant"] else ""
        print(f"{c['metric']:<34}{c['a'][:10]:>10}{c['b'][:10]:>10}{f(c['estimate_a']):>9}{f(c['estimate_b']):>9}"
              f"{f(c['difference']):>9}{f(c['p_bootstrap']):>9}{f(c['p_permutation']):>9}{f(c['p_permutation_adjusted']):>8}{star}", file=out)
