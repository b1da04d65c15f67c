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
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Iterator, Mapping, Sequence

import numpy as np

from reportgen.evals.metrics import bootstrap as bs
from reportgen.evals.metrics.chexpert import CHEXPERT_LABELS, chexpert_labels, f1_from_counts, label_counts, label_f1
from reportgen.evals.metrics.green import (GREEN_CATEGORIES, GreenCounts, HallucinationRate, green_counts, hallucination_rate,
                                          with_trailing_comparisons)
from reportgen.evals.metrics.radfact import Judged, RadFactScore, aggregate, judged_from_verdict, logical_score
from reportgen.evals.metrics.radgraph_f1 import LEVELS, RadGraphScore, annotation_keys, reward_of_keys, to_radgraph
from reportgen.evals.metrics.temporal import temporal_entities, temporal_f1
from reportgen.evals.metrics.text import bleu4_from_sums, bleu_counts, rouge_all, sentence_bleu4
from reportgen.types import FLAGGED

STAGES = ("read", "check", "radgraph", "chexpert", "green", "radfact", "hallucination", "temporal", "bleu", "rouge",
          "bootstrap")


@dataclass(frozen=True)
class PairResult:
    """Every per-study figure of one (prediction, reference) pair; ``error`` when unscored.

    ``failed``: the prediction is missing, null or empty (a failed draft, a study absent
    from a system): the pair is SCORED as an empty report (zero for the overlap metrics,
    every reference finding missed), never left out."""

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
    rouge1: float | None = None
    rouge2: float | None = None
    temporal_f1: float | None = None
    failed: str | None = None
    extra: Mapping[str, float | None] = field(default_factory=dict)  # optional model metrics, by name

    def row(self) -> dict[str, Any]:
        if self.error is not None:
            return {"id": self.id, "error": self.error}
        rf = self.radfact.to_dict() if self.radfact else {}
        return {
            "id": self.id, "error": None, "prediction_failed": self.failed,
            "bleu4": self.bleu4, "rouge_l": self.rouge_l, "rouge1": self.rouge1, "rouge2": self.rouge2,
            **{f"radgraph_{k}": v for k, v in (self.radgraph.to_dict() if self.radgraph else {}).items()},
            "green": self.green.score if self.green else None,
            "green_counts": {c: getattr(self.green, c) for c in GREEN_CATEGORIES + ("matched",)} if self.green else None,
            "radfact_logical_precision": rf.get("logical_precision"), "radfact_logical_recall": rf.get("logical_recall"),
            "radfact_logical_f1": rf.get("logical_f1"), "radfact_unscored": rf.get("n_unscored"), "radfact_errors": rf.get("n_errors"),
            "hallucination_rate": self.hallucination.to_dict()["rate"] if self.hallucination else None,
            "claims": self.hallucination.total if self.hallucination else None,
            "flagged": self.hallucination.flagged if self.hallucination else None,
            "temporal_f1": self.temporal_f1,
            **dict(self.extra),
            "pred_labels": dict(self.pred_labels or {}), "ref_labels": dict(self.ref_labels or {}),
            "flagged_claims": list(self.flagged_claims),
        }


@dataclass(frozen=True)
class Figure:
    """One corpus figure as a statistic of summed per-study rows: ``rows`` (studies, k) and
    ``stat`` mapping summed rows (m, k) to m values. A mean over studies is rows
    ``[value, 1]`` (``[0, 0]`` where undefined); micro F1, corpus BLEU and pooled rates are
    sums of counts. Resamples (bootstrap, paired tests) are then one matrix product."""

    rows: np.ndarray
    stat: Callable[[np.ndarray], np.ndarray]

    def estimate(self) -> float:
        return float(np.asarray(self.stat(self.rows.sum(axis=0)[None]), dtype=float)[0]) if len(self.rows) else float("nan")

    def resampled(self, weights: np.ndarray) -> np.ndarray:
        """The figure in each resample (rows of ``weights``: how often each study is drawn)."""
        return np.asarray(self.stat(weights @ self.rows), dtype=float)


def mean_figure(values: Sequence[float | None]) -> Figure:
    """Mean over studies; None/NaN values are left out (nanmean)."""
    v = np.array([np.nan if x is None else float(x) for x in values], dtype=float).reshape(-1)
    ok = ~np.isnan(v)
    return Figure(np.stack([np.where(ok, v, 0.0), ok.astype(float)], axis=1), _ratio)


def ratio_figure(num: Sequence[float], den: Sequence[float], zero: float = float("nan")) -> Figure:
    """sum(num) / sum(den) (pooled); ``zero`` where the denominator sums to 0."""
    rows = np.stack([np.asarray(num, dtype=float).reshape(-1), np.asarray(den, dtype=float).reshape(-1)], axis=1)
    return Figure(rows, lambda s, z=zero: _ratio(s, z))


def _ratio(s: np.ndarray, zero: float = float("nan")) -> np.ndarray:
    s = np.atleast_2d(s)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(s[:, 1] > 0, s[:, 0] / np.where(s[:, 1] > 0, s[:, 1], 1), zero)


def _f1_of_means(s: np.ndarray) -> np.ndarray:
    s = np.atleast_2d(s)
    p, r = _ratio(s[:, 0:2]), _ratio(s[:, 2:4])
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(p + r > 0, 2 * p * r / np.where(p + r > 0, p + r, 1), np.where(np.isnan(p + r), np.nan, 0.0))


def _chexpert_stat(sub: str, which: int) -> Callable[[np.ndarray], np.ndarray]:
    def stat(s: np.ndarray) -> np.ndarray:
        s = np.atleast_2d(s)
        return f1_from_counts(s.reshape(s.shape[0], len(CHEXPERT_LABELS), 3), sub)[which]
    return stat


def figures(results: Sequence[PairResult], bleu_matrix: np.ndarray, policy: str = "uncertain-as-positive") -> dict[str, Figure]:
    """Every corpus figure of scored pairs (failed predictions included, errors left out)."""
    ok = [r for r in results if r.error is None]
    n = len(ok)
    out: dict[str, Figure] = {}
    out["bleu4"] = Figure(np.asarray(bleu_matrix, dtype=float).reshape(n, -1), bleu4_from_sums)
    out["bleu4_sentence_mean"] = mean_figure([r.bleu4 for r in ok])
    out["rouge_l"] = mean_figure([r.rouge_l for r in ok])
    out["rouge1"] = mean_figure([r.rouge1 for r in ok])
    out["rouge2"] = mean_figure([r.rouge2 for r in ok])
    for lv in LEVELS:
        out[f"radgraph_{lv}"] = mean_figure([getattr(r.radgraph, lv) for r in ok])
    lc = label_counts([r.pred_labels for r in ok], [r.ref_labels for r in ok], policy).reshape(n, -1).astype(float)
    for sub in ("14", "5"):
        out[f"chexpert_micro_f1_{sub}"] = Figure(lc, _chexpert_stat(sub, 0))
        out[f"chexpert_macro_f1_{sub}"] = Figure(lc, _chexpert_stat(sub, 1))
    green = mean_figure([r.green.score for r in ok])
    out["green"] = green  # kept for existing readers: the same figure as green_mean_per_report
    out["green_mean_per_report"] = green
    out["green_pooled"] = ratio_figure([r.green.matched for r in ok], [r.green.matched + r.green.errors for r in ok], zero=0.0)
    for c in GREEN_CATEGORIES:
        out[f"green_{c}_per_report"] = mean_figure([getattr(r.green, c) for r in ok])
    p = mean_figure([r.radfact.logical_precision for r in ok])
    rc = mean_figure([r.radfact.logical_recall for r in ok])
    out["radfact_logical_precision"], out["radfact_logical_recall"] = p, rc
    out["radfact_logical_f1"] = Figure(np.concatenate([p.rows, rc.rows], axis=1), _f1_of_means)
    out["hallucination_rate"] = ratio_figure([r.hallucination.flagged for r in ok], [r.hallucination.total for r in ok])
    out["hallucination_rate_per_report_mean"] = mean_figure([_nan(r.hallucination.rate) for r in ok])
    out["temporal_f1"] = mean_figure([r.temporal_f1 for r in ok])
    for name in sorted({k for r in ok for k in r.extra}):
        out[name] = mean_figure([r.extra.get(name) for r in ok])
    return out


FIGURE_NOTES = {
    "green": "same as green_mean_per_report (kept for existing readers)",
    "green_mean_per_report": "mean over studies of each study's matched / (matched + errors)",
    "green_pooled": "sum of matched / sum of (matched + errors) over all studies",
    "hallucination_rate": "pooled: flagged claims / claims over all studies",
    "hallucination_rate_per_report_mean": "mean over studies of each study's flagged / claims",
    "bleu4": "corpus BLEU-4 (nltk corpus_bleu)",
    "bleu4_sentence_mean": "mean of per-study smoothed BLEU-4",
    "radfact_logical_f1": "F1 of the corpus logical precision and recall (RadFact)",
    "temporal_f1": "RadEval's temporal F1, mean over studies",
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
    figures: dict[str, Figure] = field(default_factory=dict)

    @property
    def scored(self) -> list[PairResult]:
        return [r for r in self.results if r.error is None]

    @property
    def failed(self) -> list[PairResult]:
        """Scored pairs whose prediction failed (scored as empty reports)."""
        return [r for r in self.results if r.error is None and r.failed is not None]


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
    hallucination check (off by default: the reference decides); ``model_metrics``: optional
    model-based scorers (``reportgen.evals.metrics.backends``), each adding per-study figures.

    ``convention``: how graph entailment for RadFact's logical precision/recall reads a
    finding the other report never mentions: ``"radfact"`` (default, RadFact's own reading:
    not entailed) or ``"chexpert"`` (read as absent). ``hallucination_convention``: the same
    for the hallucination rate and the flagged claims (default ``"chexpert"``: a negative
    claim the reference does not mention is not a hallucination). ``one_pass`` (default):
    the forward checks of the two conventions come from one graph pass
    (``Pipeline.check_conventions``: the same verdicts); False checks each separately."""

    def __init__(self, extractor: str = "rules", *, judge: Any = None, self_check: bool = False,
                 policy: str = "uncertain-as-positive", reader: Callable[[str], Any] | None = None,
                 convention: str = "radfact", hallucination_convention: str = "chexpert",
                 model_metrics: Sequence[Any] = (), memo: dict | None = None, one_pass: bool = True):
        from reportgen.checkers.pipeline import Pipeline, default_reader

        # Per-text results that do not depend on the other report (RadGraph export, CheXpert
        # labels, findings with comparisons, temporal entities): ``compare`` shares one memo
        # between systems so that each reference is processed once.
        self.memo: dict = {} if memo is None else memo
        self._own_memo = memo is None
        self.extractor = extractor
        self.judge = judge
        self.policy = policy
        self.model_metrics = tuple(model_metrics)
        self._read = CachedReader(reader or default_reader(extractor))
        self.timings: dict[str, float] = dict.fromkeys(STAGES, 0.0)
        self.cpu_timings: dict[str, float] = dict.fromkeys(STAGES, 0.0)
        self.pipeline = Pipeline(extractor, self_check=self_check, reader=self._read, convention=hallucination_convention)
        # RadFact's entailment: both directions, reference evidence only
        self.entailment = Pipeline(extractor, self_check=False, reader=self._read, convention=convention)
        self.convention = self.entailment.convention
        self.hallucination_convention = self.pipeline.convention
        self._same = not self_check and self.convention == self.hallucination_convention  # one forward check serves both
        # what a pair's figures depend on besides its two texts (the key of a scored pair in the memo)
        self._config = (extractor, self_check, self.convention, self.hallucination_convention)
        # Without self evidence the forward checks of the two conventions differ only in the
        # last rule (an unmentioned finding): one graph pass gives both (check_conventions).
        self._one_pass = (one_pass and not self_check and not self._same and self.pipeline.region is None
                          and all(hasattr(c, "check_conventions") for c in self.pipeline.checkers))

    @contextmanager
    def _timed(self, stage: str) -> Iterator[None]:
        t0, c0 = time.perf_counter(), time.process_time()
        try:
            yield
        finally:
            self.timings[stage] = self.timings.get(stage, 0.0) + time.perf_counter() - t0
            self.cpu_timings[stage] = self.cpu_timings.get(stage, 0.0) + time.process_time() - c0

    def evaluate(self, pairs: Sequence[tuple[str, str | None, str]], *, n_bootstrap: int = 1000, seed: int = 0,
                 progress: Callable[[int], None] | None = None, failures: Mapping[str, str] | None = None) -> SuiteResult:
        """Score ``(id, prediction, reference)`` pairs; corpus figures with bootstrap CIs
        (``n_bootstrap`` 0: point estimates only).

        A prediction that is None, not a string or blank is a FAILED prediction: scored as
        an empty report (``PairResult.failed`` says why; ``failures`` maps ids to the
        reason, e.g. the drafting error). Only a bad reference leaves a pair unscored."""
        scored = self.score(pairs, progress=progress, failures=failures)
        with self._timed("bootstrap"):
            out = corpus_result(scored.results, scored.bleu, n_bootstrap, seed, self.policy)
        out.timings = dict(self.timings)
        out.cpu_timings = dict(self.cpu_timings)
        return out

    def score(self, pairs: Sequence[tuple[str, str | None, str]], *, progress: Callable[[int], None] | None = None,
              failures: Mapping[str, str] | None = None) -> "ScoredPairs":
        """The per-study part of ``evaluate``: every pair read, checked and scored, without
        the corpus figures. Each pair's figures depend on that pair only, so the pairs may be
        scored in parts (several processes, ``reportgen compare --workers``) and the parts
        joined (``ScoredPairs.join``) before ``corpus_result``: the same numbers."""
        t0 = dict(self.timings), dict(self.cpu_timings)
        self._read.cache.clear()
        if self._own_memo:
            self.memo.clear()
        failures = failures or {}
        results: list[PairResult | None] = [None] * len(pairs)
        work: list[tuple[int, Any, Any, Any, Any, str | None]] = []
        # A pair's figures depend on its two texts only: a (prediction, reference) pair seen
        # before (another study with the same reports, another system with the same
        # prediction; ``compare`` shares the memo between systems) is scored once.
        pair_key: dict[int, tuple] = {}
        copies: list[tuple[int, int]] = []
        first: dict[tuple, int] = {}
        for k, (pid, pred, ref) in enumerate(pairs):
            failed = None
            if not isinstance(pred, str) or not pred.strip():
                failed = failures.get(pid) or ("no prediction" if pred is None else _problem("prediction", pred))
            elif self.judge is None and isinstance(ref, str):
                key = ("pair", self._config, pred, ref)
                hit = self.memo.get(key)
                if hit is not None:
                    results[k] = replace(hit, id=pid)
                elif key in first and results[first[key]] is None:  # the first is being scored (not an error)
                    copies.append((k, first[key]))
                else:
                    first[key] = k
                    pair_key[k] = key
                if hit is not None or k not in pair_key:
                    if progress:
                        progress(k)
                    continue
            with self._timed("read"):
                problem = _problem("reference", ref)
                if problem is None:
                    try:
                        rp = self._read("") if failed else self._read(pred)
                        rr = self._read(ref)
                    except Exception as e:  # one bad report must not stop the corpus
                        problem = f"reading failed: {type(e).__name__}: {e}"
            fwd = ent_fwd = rev = None
            if problem is None and not failed:
                with self._timed("check"):
                    if self.judge is None and self._one_pass:
                        fwd, ent_fwd = self.pipeline.check_conventions(pid, pred, ref, (self.hallucination_convention, self.convention))
                    else:
                        fwd = self.pipeline.check(pid, pred, ref)
                    if self.judge is None:
                        if not self._one_pass:
                            ent_fwd = fwd if self._same else self.entailment.check(pid, pred, ref)
                        rev = self.entailment.check(pid, ref, pred)
                    else:
                        ent_fwd, rev = fwd, fwd
                problem = fwd.error or ent_fwd.error or rev.error
            if problem is not None:
                results[k] = PairResult(pid, error=problem)
            else:
                work.append((k, rp, rr, fwd, (ent_fwd, rev), failed))
            if progress:
                progress(k)

        judged = self._judge_all(work) if self.judge is not None else None
        for w, (k, rp, rr, fwd, (ent_fwd, rev), failed) in enumerate(work):
            pid, pred, ref = pairs[k]
            pred_text = "" if failed else pred
            with self._timed("radgraph"):
                # each text's annotation keys once (a reference is scored against every system)
                rg = reward_of_keys(
                    self._memo("radgraph", pred_text, lambda: annotation_keys(to_radgraph([c.graph for c in rp.claims], pred_text))),
                    self._memo("radgraph", ref, lambda: annotation_keys(to_radgraph([c.graph for c in rr.claims], ref))))
            with self._timed("chexpert"):
                lp = dict.fromkeys(CHEXPERT_LABELS) if failed else self._memo(
                    "chexpert", pred_text, lambda: chexpert_labels([f for c in rp.claims for f in c.findings]))
                lr = self._memo("chexpert", ref, lambda: chexpert_labels([f for c in rr.claims for f in c.findings]))
            with self._timed("green"):
                g = green_counts(self._memo("green", pred_text, lambda: _with_comparisons(pred_text, rp)),
                                 self._memo("green", ref, lambda: _with_comparisons(ref, rr)))
            with self._timed("radfact"):
                if failed:  # nothing said: no candidate claim, every reference claim not entailed
                    cj, rj = [], [Judged(False)] * len(rr.claims)
                elif judged is not None:
                    cj, rj = judged[w]
                else:
                    cj = _judged(ent_fwd, rr)
                    rj = _judged(rev, rp)
                rf = logical_score(cj, rj)
            with self._timed("hallucination"):
                claims = () if failed else fwd.claims
                h = hallucination_rate(c.status for c in claims)
                flagged = tuple({"text": c.claim.text, "start": c.claim.start, "end": c.claim.end, "status": c.status,
                                 "reasons": list(c.reasons[:2])} for c in claims if c.status in FLAGGED)
            with self._timed("temporal"):
                tf = 0.0 if failed else temporal_f1(
                    self._memo("temporal", pred_text, lambda: temporal_entities(pred_text, (e.text for c in rp.claims for e in c.graph.entities))),
                    self._memo("temporal", ref, lambda: temporal_entities(ref, (e.text for c in rr.claims for e in c.graph.entities))))
            results[k] = PairResult(pid, None, None, None, rg, lp, lr, g, rf, h, flagged, temporal_f1=tf, failed=failed)
            if k in pair_key:
                self._remember(pair_key[k], results[k])
        for k, j in copies:
            results[k] = replace(results[j], id=pairs[k][0])

        ok = [k for k, r in enumerate(results) if r is not None and r.error is None]
        hyps = ["" if results[k].failed else pairs[k][1] for k in ok]
        refs = [pairs[k][2] for k in ok]
        with self._timed("bleu"):
            counts = bleu_counts(hyps, refs, cache=self.memo.setdefault(("bleu-grams", ""), {}))
            sent = sentence_bleu4(counts)
        with self._timed("rouge"):
            rouge = rouge_all(hyps, refs, cache=self.memo.setdefault(("rouge-grams", ""), {}))
        labeler = next((m for m in self.model_metrics if hasattr(m, "labels")), None)
        if labeler is not None:  # a model labeler (CheXbert) replaces the findings' CheXpert labels
            with self._timed("chexpert"):
                lab = labeler.labels(hyps + refs)
            for j, k in enumerate(ok):
                r = results[k]
                results[k] = replace(r, pred_labels=dict.fromkeys(CHEXPERT_LABELS) if r.failed else lab[j], ref_labels=lab[len(ok) + j])
        extra: dict[str, list] = {}
        for metric in self.model_metrics:
            with self._timed(metric.name):
                for name, values in metric.score(hyps, refs).items():
                    extra[name] = list(values)
        for j, k in enumerate(ok):
            r = results[k]
            # a failed prediction scores zero on every model similarity too
            ex = {name: (0.0 if r.failed else _num(v[j])) for name, v in extra.items()}
            results[k] = replace(r, bleu4=float(sent[j]), rouge_l=float(rouge["rougeL"][j]), rouge1=float(rouge["rouge1"][j]),
                                 rouge2=float(rouge["rouge2"][j]), extra=ex)
        final = [r for r in results if r is not None]
        return ScoredPairs(final, np.asarray(counts.matrix(), dtype=float),
                           {k: v - t0[0].get(k, 0.0) for k, v in self.timings.items()},
                           {k: v - t0[1].get(k, 0.0) for k, v in self.cpu_timings.items()})

    def _remember(self, key: tuple, value: Any) -> None:
        if len(self.memo) >= 400_000:
            self.memo.clear()
        self.memo[key] = value

    def _memo(self, kind: str, text: str, compute: Callable[[], Any]) -> Any:
        key = (kind, text)
        hit = self.memo.get(key)
        if hit is None:
            if len(self.memo) >= 400_000:
                self.memo.clear()
            hit = self.memo[key] = compute()
        return hit

    def _judge_all(self, work) -> list[tuple[list[Judged], list[Judged]]]:
        with self._timed("radfact"):
            batch, where = [], []
            for i, (k, rp, rr, _, _, failed) in enumerate(work):
                if failed:
                    continue
                cp = [c.claim.text for c in rp.claims]
                cr = [c.claim.text for c in rr.claims]
                where.append(i)
                batch += [(cp, cr), (cr, cp)]
            out = self.judge.judge_many(batch) if batch else []
        res: list[tuple[list[Judged], list[Judged]]] = [([], [])] * len(work)
        for j, i in enumerate(where):
            res[i] = (out[2 * j], out[2 * j + 1])
        return res


@dataclass(frozen=True)
class ScoredPairs:
    """Scored pairs before the corpus figures (``Suite.score``): every result in the pairs'
    order (errors included), the BLEU count rows of the scored ones (``BleuCounts.matrix``)
    and the stage times (wall and CPU seconds) of this part."""

    results: list[PairResult]
    bleu: np.ndarray
    timings: dict[str, float]
    cpu_timings: dict[str, float]

    @staticmethod
    def join(parts: Sequence["ScoredPairs"]) -> "ScoredPairs":
        """Parts of one list of pairs, in order, as one (stage times summed)."""
        timings: dict[str, float] = {}
        cpu: dict[str, float] = {}
        for p in parts:
            for k, v in p.timings.items():
                timings[k] = timings.get(k, 0.0) + v
            for k, v in p.cpu_timings.items():
                cpu[k] = cpu.get(k, 0.0) + v
        bleu = [p.bleu for p in parts if len(p.bleu)]
        return ScoredPairs([r for p in parts for r in p.results],
                           np.concatenate(bleu, axis=0) if bleu else np.zeros((0, 10)), timings, cpu)


def corpus_result(results: list[PairResult], bleu_matrix: np.ndarray, n_boot: int, seed: int,
                  policy: str = "uncertain-as-positive", weights: np.ndarray | None = None) -> SuiteResult:
    """Corpus figures with their bootstrap CIs (``n_boot`` resamples, seeded) of scored
    pairs (``bleu_matrix``: the BLEU count rows of the pairs without error, in order).
    ``weights``: those resamples drawn already (``resample_weights`` of ``resample_indices(n,
    n_boot, seed)``), used when their shape fits."""
    ok = [r for r in results if r.error is None]
    n = len(ok)
    figs = figures(ok, bleu_matrix, policy)
    if weights is None or weights.shape != (n_boot, n) or not n:
        weights = bs.resample_weights(bs.resample_indices(n, n_boot, seed), n) if n_boot and n else None
    corpus = figure_cis(figs, weights, seed)
    per_label = label_f1([r.pred_labels for r in ok], [r.ref_labels for r in ok], policy).per_label if ok else {}
    totals = sum((r.green for r in ok), GreenCounts()).to_dict()
    totals["green_pooled"] = totals["green"]
    return SuiteResult(results, corpus, dict(per_label), totals, sum(r.radfact.n_errors for r in ok), figures=figs)


def figure_cis(figs: Mapping[str, Figure], weights: np.ndarray | None, seed: int, level: float = 0.95) -> dict[str, bs.CI]:
    """``figure_ci`` of every figure with ONE product of the resample weights with all
    figures' rows side by side (the weights are read once, not once per figure)."""
    if weights is None or not figs or not len(next(iter(figs.values())).rows):
        return {name: figure_ci(f, weights, seed, level) for name, f in figs.items()}
    names = list(figs)
    sums = weights @ np.concatenate([figs[m].rows for m in names], axis=1)
    out, start = {}, 0
    for m in names:
        k = figs[m].rows.shape[1]
        vals = np.asarray(figs[m].stat(sums[:, start:start + k]), dtype=float)
        out[m] = bs.percentile_interval(figs[m].estimate(), vals, level, weights.shape[0], seed)
        start += k
    return out


def figure_ci(f: Figure, weights: np.ndarray | None, seed: int, level: float = 0.95) -> bs.CI:
    """The figure's point estimate with its percentile bootstrap interval over ``weights``."""
    est = f.estimate()
    if weights is None or not len(f.rows):
        return bs.CI(est, float("nan"), float("nan"), level, 0 if weights is None else weights.shape[0], seed)
    return bs.percentile_interval(est, f.resampled(weights), level, weights.shape[0], seed)


def _with_comparisons(text: str, read: Any) -> list:
    """A report's findings, with comparisons stated after a comma attached (GREEN)."""
    return [f for c in read.claims for f in with_trailing_comparisons(text, c.findings, c.claim.end)]


def _num(x: Any) -> float | None:
    if x is None:
        return None
    x = float(x)
    return None if math.isnan(x) else x


def _nan(x: float | None) -> float:
    return float("nan") if x is None else float(x)


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


GROUNDED_FIGURES = ("logical_precision", "logical_recall", "spatial_precision", "spatial_recall",
                    "grounding_precision", "grounding_recall")


def grounded_cis(scores: Sequence[RadFactScore], *, n_bootstrap: int = 1000, seed: int = 0) -> dict[str, bs.CI]:
    """Bootstrap CIs (examples resampled, the same resamples for every figure) of the
    grounded RadFact figures: each mean over examples as ``aggregate`` computes it, and the
    logical F1 of the corpus precision and recall."""
    figs = {name: mean_figure([_nan(getattr(s, name)) for s in scores]) for name in GROUNDED_FIGURES}
    figs["logical_f1"] = Figure(np.concatenate([figs["logical_precision"].rows, figs["logical_recall"].rows], axis=1), _f1_of_means)
    n = len(scores)
    weights = bs.resample_weights(bs.resample_indices(n, n_bootstrap, seed), n) if n_bootstrap and n else None
    return {name: figure_ci(f, weights, seed) for name, f in figs.items()}
