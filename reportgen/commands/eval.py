"""`reportgen eval`: report-generation and hallucination metrics in one offline run.

    reportgen eval --pred P.jsonl --ref R.jsonl --out metrics.json [--html metrics.html]
                   [--bootstrap 1000 --seed 0] [--judge-url URL --judge-model NAME]
    reportgen eval --inject [--n 1000 --rate 0.3 --seed 0] --out inject.json
    reportgen eval --grounded grounded_reporting_examples.json --out radfact.json

Pair mode: records ``{"id", "report"}`` in both files are matched by id; ids present on
one side only, and bad lines, are listed in the output (never dropped silently). Each bad
line and each unscored pair carries its ``error`` message and ``error_code`` (docs/errors.md);
a line that is not JSON but seems to carry an id names it as ``id_hint`` (that id is then
not listed as present on the other side only: its line is broken, not missing). Prints a
table of corpus figures with bootstrap 95% CIs; writes JSON with settings, corpus
figures, per-study rows and stage timings; ``--html`` adds a page with matplotlib plots.
Metrics: BLEU-4, ROUGE-L, RadGraph F1 (simple/partial/complete), CheXpert label F1
(micro/macro over 14 and 5), GREEN-style counts and score, RadFact logical
precision/recall/F1 (graph entailment, or an LLM judge), hallucination rate.

``--inject``: the error-injection benchmark on the IU reports (evals/inject.py), scored
for the graph checker: precision, recall, F1 and false-flag rate per category.
``--grounded``: RadFact logical, spatial and grounding precision/recall on RadFact's
grounded-report JSON. See docs/metrics.md.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any, TextIO

from reportgen.errors import ReportgenError, with_error_code
from reportgen.jsonl import MAX_RECORD_CHARS, atomic_writer, json_safe, read_jsonl

DEFAULT_MAX_FAILED_SHARE = 0.05


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--pred", metavar="P.jsonl", help='predictions, one {"id": str, "report": str} per line')
    p.add_argument("--ref", metavar="R.jsonl", help="references, same shape, matched by id")
    p.add_argument("--out", metavar="OUT.json", help="metrics JSON, written atomically")
    p.add_argument("--html", metavar="OUT.html", help="also write an HTML page with plots of metric distributions")
    p.add_argument("--bootstrap", type=int, default=1000, metavar="N", help="bootstrap resamples for 95%% CIs (default 1000; 0: none)")
    p.add_argument("--seed", type=int, default=0, help="seed of the bootstrap and of the error injection (default 0)")
    p.add_argument("--extractor", choices=("rules", "radgraph"), default="rules", help="entity graph backend (default: rules, offline)")
    p.add_argument("--policy", choices=("uncertain-as-positive", "uncertain-as-negative"), default="uncertain-as-positive",
                   help="CheXpert label F1: how uncertain (-1) labels count (default uncertain-as-positive, CheXbert 'rrg')")
    p.add_argument("--self-check", action="store_true", help="hallucination check also against the report's own sentences")
    p.add_argument("--convention", choices=("radfact", "chexpert"), default="radfact",
                   help="RadFact logical precision/recall with graph entailment: how a finding the other report never "
                        "mentions is read; radfact (default, RadFact's metric): not entailed; chexpert: read as absent, so "
                        "an unmentioned negative claim is entailed. The hallucination rate keeps chexpert. Stated in settings")
    p.add_argument("--max-chars", type=int, default=MAX_RECORD_CHARS, help=f"longest report accepted (default {MAX_RECORD_CHARS:,})")
    p.add_argument("--max-failed-share", type=float, default=DEFAULT_MAX_FAILED_SHARE, metavar="F",
                   help="exit non-zero (E491) when a requested metric (RadFact with a judge, a model metric) could not be "
                        f"computed for more than this share of studies (default {DEFAULT_MAX_FAILED_SHARE}; failed predictions are "
                        "scored, not counted here)")
    m = p.add_argument_group("model-based metrics (optional backends, local weights only; see docs/metrics.md)")
    m.add_argument("--bertscore", nargs="?", const="default", metavar="MODEL",
                   help="BERTScore (bert-score package) with MODEL: a Hugging Face name or a local folder "
                        "(default: RadEval's distilbert-base-uncased, layer 5, baseline-rescaled)")
    m.add_argument("--bertscore-layers", type=int, metavar="N", help="BERTScore layer (default: bert-score's for MODEL; 5 for RadEval's)")
    m.add_argument("--bertscore-baseline", metavar="TSV", help="baseline file for rescaling (default: bert-score's own when it has one)")
    m.add_argument("--model-metrics", nargs="+", metavar="NAME", default=[],
                   help="more model metrics: ratescore, srr_bert, chexbert; 'auto' uses each one installed with local weights "
                        "and skips the others with a message")
    m.add_argument("--labeler", choices=("rules", "chexbert"), default="rules",
                   help="CheXpert labels from our findings (rules, default) or from CheXbert (f1chexbert + local chexbert.pth), "
                        "the labeler published CheXbert F1 numbers need")
    m.add_argument("--with-radeval", action="store_true", help="add RadEval's metrics (radeval extra) to metrics.json, names prefixed radeval_")
    m.add_argument("--radeval-metrics", metavar="NAMES",
                   help="RadEval metrics for --with-radeval, comma-separated RadEval names (default: bleu,rouge,bertscore,radgraph,"
                        "f1chexbert,ratescore,temporal,srrbert; bleu,rouge need no weights)")
    m.add_argument("--radeval-python", metavar="PYTHON",
                   help="run RadEval (--with-radeval, srr_bert) in this interpreter, an environment of its own (RadEval pins numpy "
                        "1.26 and spaCy 3.7); default: $REPORTGEN_RADEVAL_PYTHON, else RadEval imported here")
    g = p.add_argument_group("LLM judge (RadFact entailment through an OpenAI-compatible endpoint, e.g. vLLM)")
    g.add_argument("--judge-url", metavar="URL", help="base URL of the endpoint, e.g. http://127.0.0.1:8000/v1")
    g.add_argument("--judge-model", metavar="NAME", help="model name served there")
    g.add_argument("--judge-api-key-env", metavar="VAR", default="OPENAI_API_KEY",
                   help="environment variable holding the API key (default OPENAI_API_KEY; vLLM needs none)")
    g.add_argument("--judge-concurrency", type=int, default=4, help="judge requests in flight (default 4)")
    g.add_argument("--judge-retries", type=int, default=2, help="retries of a failed judge call before it counts as an error (default 2)")
    g.add_argument("--judge-timeout", type=float, default=60.0, help="seconds per judge call (default 60)")
    g.add_argument("--judge-structured", choices=("auto", "json_schema", "text"), default="auto",
                   help="structured output mode (default auto: json_schema when the model offers it)")
    i = p.add_argument_group("error-injection benchmark")
    i.add_argument("--inject", action="store_true", help="run the error-injection benchmark on the IU reports")
    i.add_argument("--n", type=int, default=1000, help="IU reports to use (default 1000; 0: all)")
    i.add_argument("--rate", type=float, default=0.3, help="probability that an eligible sentence gets an error (default 0.3)")
    i.add_argument("--mode", choices=("separate", "mixed"), default="separate", help="one run per category (default) or all in one")
    i.add_argument("--categories", nargs="+", metavar="CAT", help="categories to inject (default: all six)")
    i.add_argument("--bench-out", metavar="B.jsonl", help="also write the injected reports with their labels")
    i.add_argument("--check-convention", dest="convention_check", choices=("chexpert", "radfact"), default="chexpert",
                   help="the checker's convention for unmentioned findings in the benchmark (default chexpert)")
    p.add_argument("--grounded", metavar="G.json", help="RadFact grounded-report JSON: logical, spatial and grounding scores")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar, no table")


def _judge(args: argparse.Namespace) -> Any:
    if not args.judge_url and not args.judge_model:
        return None
    if not (args.judge_url and args.judge_model):
        raise ReportgenError("E470", "the LLM judge needs both --judge-url and --judge-model", fix="give both, or neither for graph entailment")
    from reportgen.evals.metrics.judge import LLMJudge

    return LLMJudge.from_endpoint(args.judge_url, args.judge_model, api_key=os.environ.get(args.judge_api_key_env),
                                  structured=args.judge_structured, max_concurrency=args.judge_concurrency,
                                  max_retries=args.judge_retries, timeout=args.judge_timeout)


def model_metrics(args: argparse.Namespace) -> tuple[list[Any], list[dict[str, str]]]:
    """The requested model-based metrics (``reportgen.evals.metrics.backends``): scorers, and
    the ones skipped with why. A metric named explicitly that cannot run is an error before
    any study is scored; under 'auto' it is skipped with a message."""
    from reportgen.evals.metrics import backends as be

    names = list(getattr(args, "model_metrics", []) or [])
    if getattr(args, "with_radeval", False):
        names.append("radeval")
    if getattr(args, "labeler", "rules") == "chexbert" and "chexbert" not in names:
        names.append("chexbert")
    specs = []
    if getattr(args, "bertscore", None):
        specs.append(("bertscore", {"model": None if args.bertscore == "default" else args.bertscore,
                                    "num_layers": args.bertscore_layers, "baseline_path": args.bertscore_baseline}, True))
    auto = "auto" in names
    radeval_python = getattr(args, "radeval_python", None)

    radeval_metrics = [x.strip() for x in (getattr(args, "radeval_metrics", None) or "").split(",") if x.strip()] or None

    def options(n: str) -> dict[str, Any]:
        if n == "radeval":
            return {"radeval_python": radeval_python, "metrics": radeval_metrics}
        return {"radeval_python": radeval_python} if n in be.RADEVAL_BACKED else {}

    for n in names:
        if n == "auto":
            specs += [(x, options(x), False) for x in be.AUTO if x not in names]
        else:
            specs.append((n, options(n), True))
    scorers, skipped = [], []
    for name, kw, explicit in specs:
        try:
            scorers.append(be.load(name, **kw))
        except ReportgenError as e:
            if explicit and not (auto and name in be.AUTO):
                raise
            skipped.append({"metric": name, "reason": f"{e.code}: {e.message}", "fix": e.fix or ""})
    return scorers, skipped


def write_json(path: str, obj: Any) -> None:
    """A metrics file (eval, compare): atomic, indented, NaN refused (``json_safe`` first)."""
    with atomic_writer(path) as fh:
        json.dump(obj, fh, indent=1, ensure_ascii=False, allow_nan=False)
        fh.write("\n")


def run(args: argparse.Namespace) -> int:
    if args.inject:
        return _run_inject(args)
    if args.grounded:
        return _run_grounded(args)
    if not (args.pred and args.ref and args.out):
        raise ReportgenError("E471", "eval needs --pred, --ref and --out (or --inject / --grounded)",
                             fix="reportgen eval --pred P.jsonl --ref R.jsonl --out metrics.json")
    return _run_pairs(args)


# --- pairs ------------------------------------------------------------------------------------

def load_side(path: str, max_chars: int, side: str, failures: dict[str, str] | None = None
              ) -> tuple[dict[str, str | None], list[dict[str, str]], list[str]]:
    """Texts by id (later duplicates win), problems of bad lines, duplicate ids.

    With ``failures`` (the prediction side), a record whose report is null, empty or
    missing (a failed draft: ``reportgen draft`` writes ``"report": null`` with its
    ``error``) is NOT an input error: its text is None and ``failures[id]`` says why, so
    the pair is scored as a failure (an empty report)."""
    texts: dict[str, str | None] = {}
    problems: list[dict[str, str]] = []
    dups: list[str] = []
    require = ("id",) if failures is not None else ("id", "report")
    for rec in read_jsonl(path, require=require, text_fields=("report",), max_chars=max_chars):
        empty = rec.error is not None and rec.error.endswith(": E109 'report' is empty")  # read_jsonl's message
        failed = failures is not None and rec.id is not None and (empty or (rec.error is None and rec.data.get("report") is None))
        if failed:
            if rec.id in texts:
                dups.append(rec.id)
            texts[rec.id] = None
            err = rec.data.get("error")
            failures[rec.id] = (f"failed prediction: {err}" if isinstance(err, str) and err.strip()
                                else "failed prediction: " + ("report is null or missing" if rec.error is None else "report is empty"))
            continue
        if rec.error:
            problem = {"side": side, "id": rec.fallback_id(), "error": rec.error, "error_code": rec.error_code}
            if rec.id is None and rec.id_hint:
                problem["id_hint"] = rec.id_hint
            problems.append(problem)
            if rec.id is not None:  # a bad later line replaces an earlier good one: no silent fallback
                texts.pop(rec.id, None)
            continue
        if rec.id in texts:
            dups.append(rec.id)
        texts[rec.id] = rec.data["report"]
        if failures is not None:
            failures.pop(rec.id, None)
    return texts, problems, dups


def _table(corpus: dict[str, Any], out: TextIO) -> None:
    print(f"{'metric':<38}{'estimate':>10}{'95% CI':>22}", file=out)
    for k, v in corpus.items():
        est, lo, hi = v.get("estimate"), v.get("low"), v.get("high")
        ci = f"[{lo:.4f}, {hi:.4f}]" if lo is not None and hi is not None else ""
        print(f"{k:<38}{'-' if est is None else format(est, '.4f'):>10}{ci:>22}", file=out)


def _run_pairs(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from reportgen.checkers.pipeline import batch_gc
    from reportgen.evals.suite import FIGURE_NOTES, Suite

    failures: dict[str, str] = {}
    pred, pred_problems, pred_dups = load_side(args.pred, args.max_chars, "pred", failures)
    ref, ref_problems, ref_dups = load_side(args.ref, args.max_chars, "ref")
    if not ref:
        first = "; ".join(f"{p['id']}: {p['error']}" for p in ref_problems[:3])
        raise ReportgenError("E474", f"no valid reference record in --ref ({len(ref_problems)} input errors{': ' + first if first else ''})",
                             fix='give a JSONL of {"id", "report"} records')
    bad_ids = {p.get("id_hint", p["id"]) for p in pred_problems + ref_problems}
    bad_pred = {p.get("id_hint", p["id"]) for p in pred_problems}
    pairs = [(i, pred[i], ref[i]) for i in pred if i in ref]
    n_with_prediction = len(pairs)
    only_pred = sorted(i for i in pred if i not in ref and i not in bad_ids)
    only_ref = sorted(i for i in ref if i not in pred and i not in bad_ids)
    # A reference study without a usable prediction is a FAILURE of the system (as in
    # ``reportgen compare``): scored as an empty report, counted and listed, never dropped.
    missing: list[dict[str, str]] = []
    for i in ref:
        if i not in pred:
            why = ("missing prediction: its line in --pred is an input error (see input_errors)" if i in bad_pred
                   else "missing prediction: the study is not in --pred")
            failures[i] = why
            missing.append({"id": i, "reason": why})
            pairs.append((i, None, ref[i]))
    _check_share(args)
    judge = _judge(args)
    backends, skipped = model_metrics(args)
    suite = Suite(args.extractor, judge=judge, self_check=args.self_check, policy=args.policy, convention=args.convention,
                  model_metrics=backends)
    bar = tqdm(total=len(pairs), file=sys.stderr, unit="pair", disable=args.quiet or not sys.stderr.isatty(), desc="eval")
    with batch_gc():  # the collector as `reportgen check` sets it (fewer, cheaper collections)
        res = suite.evaluate(pairs, n_bootstrap=args.bootstrap, seed=args.seed, progress=lambda k: bar.update(1), failures=failures)
    bar.close()
    rows = [with_error_code(r.row()) if r.error else r.row() for r in res.results]
    uncomputed = metric_failures(rows, judge is not None, [n for b in backends for n in b.names])
    metrics = json_safe({
        "version": 1,
        "settings": {"extractor": args.extractor, "policy": args.policy, "bootstrap": args.bootstrap, "seed": args.seed,
                     "self_check": args.self_check, "entailment": "llm" if judge else "graph",
                     "convention": None if judge else suite.convention, "hallucination_convention": suite.hallucination_convention,
                     "judge_model": args.judge_model if judge else None, "pred": args.pred, "ref": args.ref,
                     "judge_structured": (None if not judge else "json_schema" if judge.structured else "text"),
                     "judge_fallback": getattr(judge, "fallback", None),
                     "model_metrics": {b.name: getattr(b, "settings", {}) for b in backends},
                     "labeler": "chexbert" if any(b.name == "chexbert" for b in backends) else "rules",
                     "missing_predictions": "scored as failures (empty reports), as in reportgen compare"},
        "n_pairs": len(pairs), "n_scored": len(res.scored), "n_pairs_with_prediction": n_with_prediction,
        "only_in_pred": only_pred, "only_in_ref": only_ref,
        "n_missing_predictions": len(missing), "missing_predictions": missing,
        "input_errors": pred_problems + ref_problems,
        "duplicate_ids": {"pred": sorted(set(pred_dups)), "ref": sorted(set(ref_dups))},
        "errors": [with_error_code({"id": r.id, "error": r.error}) for r in res.results if r.error],
        "n_failed_predictions": len(res.failed),
        "failed_predictions": [{"id": r.id, "reason": r.failed} for r in res.failed],
        "metric_failures": {k: {"n": len(v), "share": len(v) / max(len(res.scored), 1), "ids": v} for k, v in uncomputed.items()},
        "max_failed_share": args.max_failed_share,
        "skipped_metrics": skipped,
        "corpus": {k: v.to_dict() for k, v in res.corpus.items()},
        "figure_notes": FIGURE_NOTES,
        "chexpert": {"policy": args.policy, "per_label_f1": res.chexpert_per_label},
        "green_totals": res.green_totals,
        "judge_errors": res.judge_errors,
        "timings_s": {k: round(v, 4) for k, v in res.timings.items()},
        "per_study": rows,
    })
    write_json(args.out, metrics)
    if args.html:
        from reportgen.evals.html import render_html

        with atomic_writer(args.html) as fh:
            fh.write(render_html(metrics, rows))
    if not args.quiet:
        _table(metrics["corpus"], sys.stdout)
    notes = [f"{len(res.scored)}/{len(pairs)} pairs scored -> {args.out}"]
    if res.failed:
        notes.append(f"{len(res.failed)} failed predictions scored as empty reports (listed)")
    for s in skipped:
        notes.append(f"{s['metric']} skipped: {s['reason']} (fix: {s['fix']})")
    if missing:
        notes.append(f"{len(missing)} reference studies without a prediction scored as failures (missing_predictions)")
    if only_pred:
        notes.append(f"{len(only_pred)} ids only in --pred, not scored (listed in the JSON)")
    if pred_problems or ref_problems:
        notes.append(f"{len(pred_problems) + len(ref_problems)} bad input lines (listed)")
    if res.judge_errors:
        notes.append(f"{res.judge_errors} judge calls failed (excluded, listed per study)")
    print("reportgen eval: " + "; ".join(notes), file=sys.stderr)
    return _share_exit(uncomputed, len(res.scored), args.max_failed_share, args.out)


def metric_failures(rows: list[dict[str, Any]], judged: bool, model_names: list[str]) -> dict[str, list[str]]:
    """Requested metrics that could not be computed, with the studies concerned: RadFact
    (LLM judge) when a study's judge calls failed and left its logical F1 undefined; a
    model metric when it gave no value for a study whose prediction did not fail. Failed
    predictions are scored (as empty reports), never counted here."""
    out: dict[str, list[str]] = {}
    scored = [r for r in rows if not r.get("error")]
    if judged:
        bad = [r["id"] for r in scored if (r.get("radfact_errors") or 0) > 0 and r.get("radfact_logical_f1") is None]
        if bad:
            out["radfact"] = bad
    for name in model_names:
        bad = [r["id"] for r in scored if r.get(name) is None and not r.get("prediction_failed")]
        if bad:
            out[name] = bad
    return out


def _check_share(args: argparse.Namespace) -> None:
    if not 0.0 <= args.max_failed_share <= 1.0:
        raise ReportgenError("E492", f"--max-failed-share must be between 0 and 1, got {args.max_failed_share}",
                             fix="e.g. --max-failed-share 0.05 (1 never fails the run)")


def _share_exit(uncomputed: dict[str, list[str]], n_scored: int, max_share: float, out: str) -> int:
    """Non-zero exit (E491) when a requested metric failed for more than ``max_share`` of
    the scored studies; the outputs are written first, nothing is lost."""
    over = {k: len(v) for k, v in uncomputed.items() if n_scored and len(v) / n_scored > max_share}
    if not over:
        return 0
    what = ", ".join(f"{k} for {n}/{n_scored} studies" for k, n in over.items())
    print(f"reportgen eval: E491 requested metrics could not be computed: {what} (over --max-failed-share {max_share}); "
          f"results so far are in {out} (metric_failures). Fix: check the judge endpoint / model weights, or raise --max-failed-share",
          file=sys.stderr)
    return 1


# --- error injection --------------------------------------------------------------------------

def injection_table(rows: list[Any], out: TextIO, self_check_ff: dict[str, float | None] | None = None) -> None:
    """The benchmark table; ``self_check_ff``: the false-flag rate on verbatim sentences with
    self-consistency evidence added, per category (a column of its own)."""
    extra = f"{'ff self-check':>15}" if self_check_ff is not None else ""
    print(f"{'category':<20}{'errors':>8}{'detected':>10}{'precision':>11}{'recall':>9}{'F1':>8}{'false-flag':>12}{extra}", file=out)

    def f(x: float | None) -> str:
        return "-" if x is None else f"{x:.3f}"

    for r in rows:
        more = f"{f(self_check_ff.get(r.category)):>15}" if self_check_ff is not None else ""
        print(f"{r.category:<20}{r.errors:>8}{r.detected:>10}{f(r.precision):>11}{f(r.recall):>9}{f(r.f1):>8}{f(r.false_flag_rate):>12}{more}", file=out)


def _run_inject(args: argparse.Namespace) -> int:
    from reportgen.evals.inject import CATEGORIES, Vocabulary, run_benchmark
    from reportgen.evals.suite import graph_checker_flags
    from reportgen.iu import load_iu_reports

    if not args.out:
        raise ReportgenError("E472", "--inject needs --out", fix="reportgen eval --inject --out inject.json")
    cats = tuple(args.categories or CATEGORIES)
    reports = load_iu_reports(require_text=True)
    reports = reports if args.n == 0 else reports[: args.n]
    pairs = [(r.id, r.report.text) for r in reports]
    vocab = Vocabulary.load()
    rows, benches = run_benchmark(pairs, graph_checker_flags(args.extractor, args.self_check, args.convention_check), seed=args.seed,
                                  rate=args.rate, categories=cats, mode=args.mode, vocab=vocab)
    # False flags on verbatim (reference-identical) sentences when the report's own sentences
    # are evidence too (issue 11 section 2): the same benchmark, self-consistency on.
    rows_self = rows if args.self_check else run_benchmark(
        pairs, graph_checker_flags(args.extractor, True, args.convention_check), seed=args.seed, rate=args.rate,
        categories=cats, mode=args.mode, vocab=vocab)[0]
    ff_self = {r.category: r.false_flag_rate for r in rows_self}
    result = json_safe({
        "version": 1,
        "settings": {"reports": len(pairs), "rate": args.rate, "seed": args.seed, "mode": args.mode, "categories": list(cats),
                     "extractor": args.extractor, "self_check": args.self_check, "vocabulary_version": vocab.version,
                     "checker": "graph", "convention": args.convention_check,
                     "false_flag_rate_self_check": "flagged claims / claims on verbatim sentences, self-consistency on"},
        "rows": [{**r.to_dict(), "false_flag_rate_self_check": ff_self.get(r.category)} for r in rows],
    })
    write_json(args.out, result)
    if args.bench_out:
        from reportgen.jsonl import dumps

        with atomic_writer(args.bench_out) as fh:
            for run_name, bench in benches.items():
                for b in bench:
                    fh.write(dumps({"run": run_name, **b.to_dict()}) + "\n")
    if not args.quiet:
        injection_table(rows, sys.stdout, ff_self)
    print(f"reportgen eval --inject: {len(pairs)} IU reports, rate {args.rate}, seed {args.seed}, {args.mode} -> {args.out}", file=sys.stderr)
    return 0


# --- grounded ---------------------------------------------------------------------------------

def _run_grounded(args: argparse.Namespace) -> int:
    from reportgen.evals.metrics.radfact import parse_grounded_examples
    from reportgen.evals.suite import grounded_cis, grounded_scores

    if not args.out:
        raise ReportgenError("E472", "--grounded needs --out", fix="reportgen eval --grounded G.json --out radfact.json")
    try:
        with open(args.grounded, encoding="utf-8") as fh:
            data = json.load(fh)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ReportgenError("E473", f"cannot read grounded examples {args.grounded!r}: {e}", fix="give RadFact's grounded JSON") from None
    examples = parse_grounded_examples(data)
    per, agg = grounded_scores(examples, extractor=args.extractor, judge=_judge(args), convention=args.convention)
    cis = grounded_cis(per, n_bootstrap=args.bootstrap, seed=args.seed)
    result = json_safe({
        "version": 1,
        "settings": {"extractor": args.extractor, "entailment": "llm" if args.judge_url else "graph",
                     "convention": None if args.judge_url else args.convention, "grid": 224, "box_precision_threshold": 0.5,
                     "bootstrap": args.bootstrap, "seed": args.seed},
        "n_examples": len(examples),
        "corpus": agg.to_dict(),
        "corpus_ci": {k: v.to_dict() for k, v in cis.items()},
        "per_example": [{"id": ex.id, **s.to_dict()} for ex, s in zip(examples, per)],
    })
    write_json(args.out, result)
    if not args.quiet:
        for k, v in result["corpus"].items():
            ci = result["corpus_ci"].get(k) or {}
            band = f"[{ci['low']:.4f}, {ci['high']:.4f}]" if ci.get("low") is not None and ci.get("high") is not None else ""
            print(f"{k:<36}{'-' if v is None else (format(v, '.4f') if isinstance(v, float) else v):>10}{band:>22}")
    print(f"reportgen eval --grounded: {len(examples)} examples -> {args.out}", file=sys.stderr)
    return 0
