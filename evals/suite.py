"""The metric suite behind ``reportgen eval`` and ``evals/bench/metrics_bench.py``.

For each (id, prediction, reference) pair: both reports are read once (claims, entity
graphs, findings: ``reportgen.checkers.read.read_report``), the prediction's claims are checked
against the reference and the reference's claims against the prediction
(``reportgen.checkers.pipeline.Pipeline`` with the graph checker), and every metric of
``reportgen.evals.metrics`` is computed from those results. Corpus figures come with seeded
bootstrap CIs over the same resamples of reports. Stage times are recorded.
"""

from __future__ import annotations

import math
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Mapping, Sequence

import numpy as np

from reportgen.evals.metrics import bootstrap as bs
from reportgen.evals.metrics.chexpert import CHEXPERT_LABELS, chexpert_labels, f1_from_counts, label_counts, label_f1
from reportgen.evals.metrics.green import GREEN_CATEGORIES, GreenCounts, HallucinationRate, green_counts, hallucination_rate
from reportgen.evals.metrics.radfact import Judged, RadFactScore, aggregate, judged_from_verdict, logical_score
from reportgen.evals.metrics.radgraph_f1 import LEVELS, RadGraphScore, reward, to_radgraph
from reportgen.evals.metrics.text import bleu4_from_sums, bleu_counts, rouge_l, sentence_bleu4

STAGES = ("read", "check", "radgraph", "chexpert", "green", "radfact", "hallucination", "bleu", "rouge", "bootstrap")


@dataclass(frozen=True)
class PairResult:
    """Every per-study figure of one (prediction, reference) pair; ``error`` when unscored."""

    id: str
    error: str | None = None
    bleu4: float | None = None
    rouge_l: float | None = None
    radgraph: RadGraphScore | None = None
    pred_labels: Mapping[str, int | None] | None = None
    ref_labels: Mapping[str, int | None] | None = None
    green: GreenCounts | None = None
    radfact: RadFactScore | None = None
    hallucination: HallucinationRate | None = None
    flagged_claims: tuple[dict, ...] = ()

    def row(self) -> dict[str, Any]:
        if self.error is not None:
            return {"id": self.id, "error": self.error}
        rf = self.radfact.to_dict() if self.radfact else {}
        return {
            "id": self.id, "error": None,
            "bleu4": self.bleu4, "rouge_l": self.rouge_l,
            **{f"radgraph_{k}": v for k, v in (self.radgraph.to_dict() if self.radgraph else {}).items()},
            "green": self.green.score if self.green else None,
            "green_counts": {c: getattr(self.green, c) for c in GREEN_CATEGORIES + ("matched",)} if self.green else None,
            "radfact_logical_precision": rf.get("logical_precision"), "radfact_logical_recall": rf.get("logical_recall"),
            "radfact_logical_f1": rf.get("logical_f1"), "radfact_unscored": rf.get("n_unscored"), "radfact_errors": rf.get("n_errors"),
            "hallucination_rate": self.hallucination.to_dict()["rate"] if self.hallucination else None,
            "claims": self.hallucination.total if self.hallucination else None,
            "flagged": self.hallucination.flagged if self.hallucination else None,
            "pred_labels": dict(self.pred_labels or {}), "ref_labels": dict(self.ref_labels or {}),
            "flagged_claims": list(self.flagged_claims),
        }


@dataclass
class SuiteResult:
    results: list[PairResult]
    corpus: dict[str, bs.CI]
    chexpert_per_label: dict[str, float]
    green_totals: dict[str, int]
    judge_errors: int
    timings: dict[str, float] = field(default_factory=dict)  # wall-clock seconds per stage
    cpu_timings: dict[str, float] = field(default_factory=dict)  # this process's CPU seconds per stage

    @property
    def scored(self) -> list[PairResult]:
        return [r for r in self.results if r.error is None]


class CachedReader:
    """A report reader that reads each distinct text once (a pair's texts are read by the
    forward and the reverse check, and by the metrics)."""

    def __init__(self, read: Callable[[str], Any], max_items: int = 50_000):
        self.read = read
        self.max_items = max_items
        self.cache: dict[str, Any] = {}

    def __call__(self, text: str) -> Any:
        hit = self.cache.get(text)
        if hit is None:
            if len(self.cache) >= self.max_items:
                self.cache.clear()
            hit = self.cache[text] = self.read(text)
        return hit


def graph_checker_flags(extractor: str = "rules", self_check: bool = False,
                        convention: str = "chexpert") -> Callable[[Sequence[tuple[str, str]]], list]:
    """``check(pairs) -> [[(start, end, status), ...]]``: the pipeline's graph checker on
    (candidate, reference) text pairs, as ``reportgen.evals.inject.run_benchmark`` wants it."""
    from reportgen.checkers.pipeline import Pipeline, default_reader

    pipe = Pipeline(extractor, self_check=self_check, reader=CachedReader(default_reader(extractor)), convention=convention)

    def check(pairs: Sequence[tuple[str, str]]) -> list:
        out = []
        for k, (cand, ref) in enumerate(pairs):
            r = pipe.check(f"pair{k}", cand, ref)
            out.append([] if r.error else [(c.claim.start, c.claim.end, c.status) for c in r.claims])
        return out

    return check


class Suite:
    """Reads, checks and scores report pairs. ``judge``: an LLMJudge for RadFact (graph
    entailment otherwise); ``self_check``: add internal-consistency evidence to the
    hallucination check (off by default: the reference decides).

    ``convention``: how graph entailment for RadFact's logical precision/recall reads a
    finding the other report never mentions: ``"radfact"`` (default, RadFact's own reading:
    not entailed) or ``"chexpert"`` (read as absent). ``hallucination_convention``: the same
    for the hallucination rate and the flagged claims (default ``"chexpert"``: a negative
    claim the reference does not mention is not a hallucination)."""

    def __init__(self, extractor: str = "rules", *, judge: Any = None, self_check: bool = False,
                 policy: str = "uncertain-as-positive", reader: Callable[[str], Any] | None = None,
                 convention: str = "radfact", hallucination_convention: str = "chexpert"):
        from reportgen.checkers.pipeline import Pipeline, default_reader

        self.extractor = extractor
        self.judge = judge
        self.policy = policy
        self._read = CachedReader(reader or default_reader(extractor))
        self.timings: dict[str, float] = dict.fromkeys(STAGES, 0.0)
        self.cpu_timings: dict[str, float] = dict.fromkeys(STAGES, 0.0)
        self.pipeline = Pipeline(extractor, self_check=self_check, reader=self._read, convention=hallucination_convention)
        # RadFact's entailment: both directions, reference evidence only
        self.entailment = Pipeline(extractor, self_check=False, reader=self._read, convention=convention)
        self.convention = self.entailment.convention
        self.hallucination_convention = self.pipeline.convention
        self._same = not self_check and self.convention == self.hallucination_convention  # one forward check serves both

    @contextmanager
    def _timed(self, stage: str) -> Iterator[None]:
        t0, c0 = time.perf_counter(), time.process_time()
        try:
            yield
        finally:
            self.timings[stage] += time.perf_counter() - t0
            self.cpu_timings[stage] += time.process_time() - c0

    def evaluate(self, pairs: Sequence[tuple[str, str, str]], *, n_bootstrap: int = 1000, seed: int = 0,
                 progress: Callable[[int], None] | None = None) -> SuiteResult:
        """Score ``(id, prediction, reference)`` pairs; corpus figures with bootstrap CIs
        (``n_bootstrap`` 0: point estimates only)."""
        self._read.cache.clear()
        results: list[PairResult | None] = [None] * len(pairs)
        work: list[tuple[int, Any, Any, Any, Any]] = []
        for k, (pid, pred, ref) in enumerate(pairs):
            with self._timed("read"):
                problem = _problem("prediction", pred) or _problem("reference", ref)
                if problem is None:
                    try:
                        rp, rr = self._read(pred), self._read(ref)
                    except Exception as e:  # one bad report must not stop the corpus
                        problem = f"reading failed: {type(e).__name__}: {e}"
            if problem is None:
                with self._timed("check"):
                    fwd = self.pipeline.check(pid, pred, ref)
                    if self.judge is None:
                        ent_fwd = fwd if self._same else self.entailment.check(pid, pred, ref)
                        rev = self.entailment.check(pid, ref, pred)
                    else:
                        ent_fwd, rev = fwd, fwd
                problem = fwd.error or ent_fwd.error or rev.error
            if problem is not None:
                results[k] = PairResult(pid, error=problem)
            else:
                work.append((k, rp, rr, fwd, (ent_fwd, rev)))
            if progress:
                progress(k)

        judged = self._judge_all(pairs, work) if self.judge is not None else None
        for w, (k, rp, rr, fwd, (ent_fwd, rev)) in enumerate(work):
            pid, pred, ref = pairs[k]
            with self._timed("radgraph"):
                rg = reward(to_radgraph([c.graph for c in rp.claims], pred), to_radgraph([c.graph for c in rr.claims], ref))
            fp = [f for c in rp.claims for f in c.findings]
            fr = [f for c in rr.claims for f in c.findings]
            with self._timed("chexpert"):
                lp, lr = chexpert_labels(fp), chexpert_labels(fr)
            with self._timed("green"):
                g = green_counts(fp, fr)
            with self._timed("radfact"):
                if judged is not None:
                    cj, rj = judged[w]
                else:
                    cj = _judged(ent_fwd, rr)
                    rj = _judged(rev, rp)
                rf = logical_score(cj, rj)
            with self._timed("hallucination"):
                h = hallucination_rate(c.status for c in fwd.claims)
                flagged = tuple({"text": c.claim.text, "start": c.claim.start, "end": c.claim.end, "status": c.status,
                                 "reasons": list(c.reasons[:2])} for c in fwd.claims if c.status in ("contradicted", "unsupported"))
            results[k] = PairResult(pid, None, None, None, rg, lp, lr, g, rf, h, flagged)

        ok = [k for k, r in enumerate(results) if r is not None and r.error is None]
        with self._timed("bleu"):
            counts = bleu_counts([pairs[k][1] for k in ok], [pairs[k][2] for k in ok])
            sent = sentence_bleu4(counts)
        with self._timed("rouge"):
            rl = rouge_l([pairs[k][1] for k in ok], [pairs[k][2] for k in ok])
        for j, k in enumerate(ok):
            r = results[k]
            results[k] = PairResult(r.id, None, float(sent[j]), float(rl[j]), r.radgraph, r.pred_labels, r.ref_labels,
                                    r.green, r.radfact, r.hallucination, r.flagged_claims)
        final = [r for r in results if r is not None]
        with self._timed("bootstrap"):
            out = self._corpus(final, counts, n_bootstrap, seed)
        out.timings = dict(self.timings)
        out.cpu_timings = dict(self.cpu_timings)
        return out

    def _judge_all(self, pairs, work) -> list[tuple[list[Judged], list[Judged]]]:
        with self._timed("radfact"):
            batch = []
            for k, rp, rr, _, _ in work:
                cp = [c.claim.text for c in rp.claims]
                cr = [c.claim.text for c in rr.claims]
                batch += [(cp, cr), (cr, cp)]
            out = self.judge.judge_many(batch)
        return [(out[2 * i], out[2 * i + 1]) for i in range(len(work))]

    def _corpus(self, results: list[PairResult], counts, n_boot: int, seed: int) -> SuiteResult:
        ok = [r for r in results if r.error is None]
        n = len(ok)
        weights = bs.resample_weights(bs.resample_indices(n, n_boot, seed), n) if n_boot and n else None

        def ci_mean(values) -> bs.CI:
            v = np.asarray(values, dtype=float)
            if weights is None:
                est = float(np.nanmean(v)) if v.size and not np.all(np.isnan(v)) else float("nan")
                return bs.CI(est, float("nan"), float("nan"), 0.95, 0, seed)
            return bs.bootstrap_mean(v, weights=weights, seed=seed)

        def ci_sums(per_report, stat) -> bs.CI:
            arr = np.asarray(per_report, dtype=float)
            if weights is None:
                return bs.CI(float(np.asarray(stat(arr.sum(axis=0)[None]))[0]), float("nan"), float("nan"), 0.95, 0, seed)
            return bs.bootstrap_sums(arr, stat, weights=weights, seed=seed)

        corpus: dict[str, bs.CI] = {}
        corpus["bleu4"] = ci_sums(counts.matrix(), bleu4_from_sums)
        corpus["bleu4_sentence_mean"] = ci_mean([r.bleu4 for r in ok])
        corpus["rouge_l"] = ci_mean([r.rouge_l for r in ok])
        for lv in LEVELS:
            corpus[f"radgraph_{lv}"] = ci_mean([getattr(r.radgraph, lv) for r in ok])
        lc = label_counts([r.pred_labels for r in ok], [r.ref_labels for r in ok], self.policy)
        for sub in ("14", "5"):
            corpus[f"chexpert_micro_f1_{sub}"] = ci_sums(lc, lambda t, sub=sub: f1_from_counts(t, sub)[0])
            corpus[f"chexpert_macro_f1_{sub}"] = ci_sums(lc, lambda t, sub=sub: f1_from_counts(t, sub)[1])
        corpus["green"] = ci_mean([r.green.score for r in ok])
        for c in GREEN_CATEGORIES:
            corpus[f"green_{c}_per_report"] = ci_mean([getattr(r.green, c) for r in ok])
        p = np.array([_nan(r.radfact.logical_precision) for r in ok])
        rc = np.array([_nan(r.radfact.logical_recall) for r in ok])
        corpus["radfact_logical_precision"] = ci_mean(p)
        corpus["radfact_logical_recall"] = ci_mean(rc)
        corpus["radfact_logical_f1"] = _f1_ci(p, rc, weights, seed)
        corpus["hallucination_rate"] = ci_sums(
            [[r.hallucination.flagged, r.hallucination.total] for r in ok],
            lambda s: np.where(np.atleast_2d(s)[:, 1] > 0, np.atleast_2d(s)[:, 0] / np.maximum(np.atleast_2d(s)[:, 1], 1), np.nan))
        corpus["hallucination_rate_per_report_mean"] = ci_mean([_nan(r.hallucination.rate) for r in ok])
        per_label = label_f1([r.pred_labels for r in ok], [r.ref_labels for r in ok], self.policy).per_label if ok else {}
        totals = sum((r.green for r in ok), GreenCounts())
        return SuiteResult(results, corpus, dict(per_label), totals.to_dict(),
                           sum(r.radfact.n_errors for r in ok))


def _nan(x: float | None) -> float:
    return float("nan") if x is None else float(x)


def _f1_ci(p: np.ndarray, r: np.ndarray, weights: np.ndarray | None, seed: int) -> bs.CI:
    """Logical F1 of the corpus precision and recall (RadFact's logical_f1), resampled."""
    def f1(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(a + b > 0, 2 * a * b / np.where(a + b > 0, a + b, 1), np.where(np.isnan(a + b), np.nan, 0.0))

    ones = np.ones((1, len(p)))
    est = float(f1(bs.resampled_means(p, ones), bs.resampled_means(r, ones))[0]) if len(p) else float("nan")
    if weights is None:
        return bs.CI(est, float("nan"), float("nan"), 0.95, 0, seed)
    vals = f1(bs.resampled_means(p, weights), bs.resampled_means(r, weights))
    return bs.percentile_interval(est, vals, 0.95, weights.shape[0], seed)


def _problem(kind: str, text: Any) -> str | None:
    if not isinstance(text, str):
        return f"E460 {kind} must be a string, got {type(text).__name__}"
    if not text.strip():
        return f"E461 {kind} is empty"
    return None


def _judged(result: Any, other: Any) -> list[Judged]:
    """Graph-checker verdicts of one direction as RadFact judgements; evidence indices are
    the other report's claims (matched by span)."""
    index = {(c.claim.start, c.claim.end): i for i, c in enumerate(other.claims)}
    out = []
    for c in result.claims:
        v = next((v for v in c.verdicts if v.checker == "graph"), None)
        out.append(judged_from_verdict(v, index) if v is not None else Judged(None))
    return out


# --- grounded reports (RadFact's grounded JSON) ---------------------------------------------

def _join(phrases: Sequence[Any]) -> tuple[str, list[tuple[int, int]]]:
    """One text from phrases (single spaces between) and each phrase's span."""
    parts, spans, pos = [], [], 0
    for p in phrases:
        t = p.text.strip()
        if parts:
            parts.append(" ")
            pos += 1
        spans.append((pos, pos + len(t)))
        parts.append(t)
        pos += len(t)
    return "".join(parts), spans


def _phrase_of(spans: Sequence[tuple[int, int]], start: int) -> int | None:
    for i, (a, b) in enumerate(spans):
        if a <= start < b:
            return i
    return None


def _phrase_judgements(result: Any, spans: Sequence[tuple[int, int]], other_spans: Sequence[tuple[int, int]]) -> list[Judged]:
    """Claims' verdicts -> one judgement per phrase: entailed when every scored claim of
    the phrase is; not scored when none of its claims is; evidence = the other report's
    phrases holding the evidence claims."""
    per: list[list[Judged]] = [[] for _ in spans]
    for c in result.claims:
        k = _phrase_of(spans, c.claim.start)
        v = next((v for v in c.verdicts if v.checker == "graph"), None)
        if k is None or v is None:
            continue
        j = judged_from_verdict(v)
        ev = tuple(dict.fromkeys(i for e in v.evidence if (i := _phrase_of(other_spans, e.start)) is not None))
        per[k].append(Judged(j.entailed, ev, j.error))
    out = []
    for js in per:
        scored = [j for j in js if j.entailed is not None]
        errors = [j for j in js if j.error]
        if not scored:
            out.append(Judged(None, error=errors[0].error) if errors else Judged(None))
        else:
            out.append(Judged(all(j.entailed for j in scored), tuple(dict.fromkeys(i for j in scored for i in j.evidence))))
    return out


def grounded_scores(examples: Sequence[Any], *, extractor: str = "rules", judge: Any = None,
                    convention: str = "radfact") -> tuple[list[RadFactScore], RadFactScore]:
    """RadFact logical, spatial and grounding scores of grounded examples
    (``reportgen.evals.metrics.radfact.parse_grounded_examples``): per example and aggregated.
    ``convention``: the graph entailment's reading of an unmentioned finding (``Suite``)."""
    from reportgen.checkers.pipeline import Pipeline
    from reportgen.evals.metrics.radfact import radfact_score

    pipe = Pipeline(extractor, self_check=False, convention=convention)
    scores = []
    for ex in examples:
        ct, cs = _join(ex.prediction)
        rt, rs = _join(ex.target)
        if judge is not None:
            cj, rj = judge.judge_many([([p.text for p in ex.prediction], [p.text for p in ex.target]),
                                       ([p.text for p in ex.target], [p.text for p in ex.prediction])])
        elif not ct.strip() or not rt.strip():
            cj, rj = [Judged(None)] * len(ex.prediction), [Judged(None)] * len(ex.target)
        else:
            cj = _phrase_judgements(pipe.check(ex.id, ct, rt), cs, rs)
            rj = _phrase_judgements(pipe.check(ex.id, rt, ct), rs, cs)
        scores.append(radfact_score(ex.prediction, cj, ex.target, rj))
    return scores, aggregate(scores)
