"""BLEU-4 (nltk) and ROUGE-L (rouge-score): the n-gram metrics users report beside
clinical ones.

Tokenisation for BLEU: lower-cased ``\\w+`` words (punctuation dropped, as pycocoevalcap's
PTB tokenizer does for captioning BLEU). The n-gram counting is nltk's own
(``modified_precision``, ``closest_ref_length``): we keep each report's clipped match
counts and n-gram totals so that corpus BLEU-4 for any subset (a bootstrap resample) is a
sum, not a re-count. ``corpus_bleu4`` equals ``nltk.translate.bleu_score.corpus_bleu`` with
its defaults; ``sentence_bleu4`` equals nltk's ``sentence_bleu`` with smoothing method1
(epsilon 0.1), the per-report figure for distributions.

ROUGE-L is ``rouge_score.rouge_scorer.RougeScorer(["rougeL"])`` F-measure per report
(its own tokenizer: lower-case, non-alphanumerics removed; no stemming by default), and
the corpus figure is the mean over reports.
"""

from __future__ import annotations

import math
import re
import sys
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from reportgen.errors import ReportgenError

_WORD = re.compile(r"\w+")
MAX_N = 4


def bleu_tokens(text: str) -> list[str]:
    return _WORD.findall(text.lower())


@dataclass(frozen=True)
class BleuCounts:
    """Per report: clipped n-gram matches and hypothesis n-gram totals (n = 1..4, nltk's
    numerator and denominator), hypothesis length and closest reference length."""

    matches: np.ndarray  # (reports, 4) int
    totals: np.ndarray  # (reports, 4) int
    hyp_len: np.ndarray  # (reports,) int
    ref_len: np.ndarray  # (reports,) int

    def __len__(self) -> int:
        return int(self.hyp_len.shape[0])


def bleu_counts(hyps: Sequence[str], refs: Sequence[str]) -> BleuCounts:
    """Count n-gram matches per (hypothesis, reference) pair with nltk."""
    from nltk.translate.bleu_score import closest_ref_length, modified_precision

    if len(hyps) != len(refs):
        raise ReportgenError("E407", f"{len(hyps)} hypotheses for {len(refs)} references", fix="pair each hypothesis with one reference")
    n = len(hyps)
    matches = np.zeros((n, MAX_N), dtype=np.int64)
    totals = np.zeros((n, MAX_N), dtype=np.int64)
    hyp_len = np.zeros(n, dtype=np.int64)
    ref_len = np.zeros(n, dtype=np.int64)
    for i, (h, r) in enumerate(zip(hyps, refs)):
        ht, rt = bleu_tokens(h), [bleu_tokens(r)]
        for k in range(MAX_N):
            p = modified_precision(rt, ht, k + 1)
            matches[i, k], totals[i, k] = p.numerator, p.denominator
        hyp_len[i] = len(ht)
        ref_len[i] = closest_ref_length(rt, len(ht))
    return BleuCounts(matches, totals, hyp_len, ref_len)


def _brevity_penalty(ref_len: float, hyp_len: float) -> float:
    if hyp_len > ref_len:
        return 1.0
    if hyp_len == 0:
        return 0.0
    return math.exp(1 - ref_len / hyp_len)


def _bleu(matches: Sequence[float], totals: Sequence[float], hyp_len: float, ref_len: float, epsilon: float | None) -> float:
    if matches[0] == 0:
        return 0.0
    logs = []
    for m, t in zip(matches, totals):
        if m == 0:
            # nltk method0 uses sys.float_info.min (BLEU ~ 0); method1 adds epsilon counts.
            p = sys.float_info.min if epsilon is None else (m + epsilon) / t
        else:
            p = m / t
        logs.append(0.25 * math.log(p))
    return _brevity_penalty(ref_len, hyp_len) * math.exp(math.fsum(logs))


def corpus_bleu4(counts: BleuCounts, indices: np.ndarray | None = None) -> float:
    """Corpus BLEU-4 over all reports (or the rows ``indices``, repeats allowed)."""
    sel = slice(None) if indices is None else indices
    m = counts.matches[sel].sum(axis=0)
    t = counts.totals[sel].sum(axis=0)
    return _bleu(m.tolist(), t.tolist(), int(counts.hyp_len[sel].sum()), int(counts.ref_len[sel].sum()), None)


def sentence_bleu4(counts: BleuCounts) -> np.ndarray:
    """Per-report BLEU-4 with nltk's smoothing method1 (epsilon 0.1)."""
    return np.array([
        _bleu(counts.matches[i].tolist(), counts.totals[i].tolist(), int(counts.hyp_len[i]), int(counts.ref_len[i]), 0.1)
        for i in range(len(counts))
    ])


def rouge_l(hyps: Sequence[str], refs: Sequence[str], *, use_stemmer: bool = False) -> np.ndarray:
    """Per-report ROUGE-L F-measure (rouge-score)."""
    from rouge_score import rouge_scorer

    if len(hyps) != len(refs):
        raise ReportgenError("E407", f"{len(hyps)} hypotheses for {len(refs)} references", fix="pair each hypothesis with one reference")
    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=use_stemmer)
    return np.array([scorer.score(r, h)["rougeL"].fmeasure for h, r in zip(hyps, refs)], dtype=float)
