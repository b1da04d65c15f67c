"""BLEU-4 (nltk) and ROUGE-L (rouge-score): the n-gram metrics users report beside
clinical ones.

Tokenisation for BLEU: lower-cased ``\\w+`` words (punctuation dropped, as pycocoevalcap's
PTB tokenizer does for captioning BLEU). The n-gram counting is nltk's own
(``modified_precision``, ``closest_ref_length``): we keep each report's clipped match
counts and n-gram totals so that corpus BLEU-4 for any subset (a bootstrap resample) is a
sum, not a re-count. ``corpus_bleu4`` equals ``nltk.translate.bleu_score.corpus_bleu`` with
its defaults; ``sentence_bleu4`` equals nltk's ``sentence_bleu`` with smoothing method1
(epsilon 0.1), the per-report figure for distributions.

ROUGE-1/2/L are ``rouge_score.rouge_scorer.RougeScorer`` F-measures per report (its
tokenizer: lower-case, non-alphanumerics removed; no stemming by default; the same
numbers, computed faster for near-identical pairs, see ``rouge_l``), and the corpus figure
is the mean over reports. Without stemming rouge-score is not imported (its import pulls
nltk, about 1.3 s): ``rouge_tokens`` and the formulas are copied and tested identical.
"""

from __future__ import annotations

import math
import re
import sys
from collections import Counter
from dataclasses import dataclass
from typing import Callable, Sequence

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

    def matrix(self) -> np.ndarray:
        """(reports, 10): matches 1-4, totals 1-4, hypothesis length, reference length;
        corpus BLEU of any set of reports is ``bleu4_from_sums`` of their summed rows."""
        return np.concatenate([self.matches, self.totals, self.hyp_len[:, None], self.ref_len[:, None]], axis=1)


def bleu_counts(hyps: Sequence[str], refs: Sequence[str], cache: dict | None = None) -> BleuCounts:
    """Count n-gram matches per (hypothesis, reference) pair: the numerator and denominator
    of nltk's ``modified_precision`` (clipped matches; hypothesis n-grams, at least 1) and
    ``closest_ref_length`` (one reference: its length), computed with one Counter per text
    and order (each distinct text counted once)."""
    if len(hyps) != len(refs):
        raise ReportgenError("E407", f"{len(hyps)} hypotheses for {len(refs)} references", fix="pair each hypothesis with one reference")
    n = len(hyps)
    matches = np.zeros((n, MAX_N), dtype=np.int64)
    totals = np.zeros((n, MAX_N), dtype=np.int64)
    hyp_len = np.zeros(n, dtype=np.int64)
    ref_len = np.zeros(n, dtype=np.int64)
    cache = {} if cache is None else cache  # text -> (length, n-gram Counters); callers may share it

    def grams(text: str) -> tuple[int, list[Counter]]:
        hit = cache.get(text)
        if hit is None:
            t = bleu_tokens(text)
            hit = cache[text] = (len(t), [Counter(zip(*(t[j:] for j in range(k + 1)))) for k in range(MAX_N)])
        return hit

    for i, (h, r) in enumerate(zip(hyps, refs)):
        (hl, hg), (rl, rg) = grams(h), grams(r)
        for k in range(MAX_N):
            matches[i, k] = _overlap(hg[k], rg[k])
            totals[i, k] = max(1, max(0, hl - k))
        hyp_len[i] = hl
        ref_len[i] = rl
    return BleuCounts(matches, totals, hyp_len, ref_len)


def _overlap(a: Counter, b: Counter) -> int:
    """Sum over the n-grams of ``a`` of min(count in a, count in b): nltk's clipped matches
    and rouge-score's n-gram intersection (the same integer, in one loop with ``dict.get``,
    without Counter's ``__missing__`` for n-grams absent from ``b``)."""
    inter = 0
    get = b.get
    for g, c in a.items():
        other = get(g)
        if other:
            inter += c if c < other else other
    return inter


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
    rows = counts.matrix() if indices is None else counts.matrix()[indices]
    return float(bleu4_from_sums(rows.sum(axis=0)[None])[0])


def bleu4_from_sums(sums: np.ndarray) -> np.ndarray:
    """Corpus BLEU-4 for each row of summed ``BleuCounts.matrix()`` rows, shape (k, 10)
    (vectorised ``_bleu`` without smoothing: nltk's method0, a zero count gives
    ``sys.float_info.min``)."""
    sums = np.atleast_2d(np.asarray(sums, dtype=float))
    m, t, hyp, ref = sums[:, 0:4], sums[:, 4:8], sums[:, 8], sums[:, 9]
    with np.errstate(divide="ignore", invalid="ignore"):
        p = np.where(m > 0, m / np.where(t > 0, t, 1), sys.float_info.min)
        logs = 0.25 * np.log(p)
        bp = np.where(hyp > ref, 1.0, np.where(hyp == 0, 0.0, np.exp(1 - ref / np.where(hyp > 0, hyp, 1))))
        out = bp * np.exp(logs.sum(axis=1))
    return np.where(m[:, 0] == 0, 0.0, out)


def sentence_bleu4(counts: BleuCounts) -> np.ndarray:
    """Per-report BLEU-4 with nltk's smoothing method1 (epsilon 0.1)."""
    return np.array([
        _bleu(counts.matches[i].tolist(), counts.totals[i].tolist(), int(counts.hyp_len[i]), int(counts.ref_len[i]), 0.1)
        for i in range(len(counts))
    ])


_NON_ALNUM = re.compile(r"[^a-z0-9]+")


def rouge_tokens(text: str) -> list[str]:
    """rouge-score's tokenizer without stemming (``rouge_score.tokenize.tokenize(text, None)``:
    lower-cased, every run of characters other than a-z and 0-9 a separator), without
    importing rouge-score, whose import pulls nltk (about 1.3 s); tested identical."""
    return _NON_ALNUM.sub(" ", text.lower()).split()


def _rouge_tokenizer(use_stemmer: bool) -> Callable[[str], list[str]]:
    """Our copy of rouge-score's tokenizer, or with stemming its own (nltk's Porter stemmer)."""
    if not use_stemmer:
        return rouge_tokens
    from rouge_score import rouge_scorer

    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True)
    tokenize = getattr(getattr(scorer, "_tokenizer", None), "tokenize", None)
    if tokenize is None:
        raise ReportgenError("E872", "this rouge-score version has no tokenizer object (ROUGE with stemming)",
                             fix="use rouge-score >= 0.1.2, or ROUGE without stemming")
    return tokenize


def _fmeasure(precision: float, recall: float) -> float:
    """rouge-score's ``scoring.fmeasure``."""
    return 2 * precision * recall / (precision + recall) if precision + recall > 0 else 0.0


def _ngrams(tokens: Sequence[str], n: int) -> Counter:
    """rouge-score's ``_create_ngrams``: counts of the n-token tuples (the same tuples, made
    by ``zip`` over shifted lists)."""
    return Counter(zip(*(tokens[j:] for j in range(n))))


def _ngram_f(target: Counter, prediction: Counter) -> float:
    """rouge-score's ``_score_ngrams`` F-measure (the same integer overlap and the same float
    operations, so the same floats)."""
    inter = _overlap(target, prediction)
    precision = inter / max(sum(prediction.values()), 1)
    recall = inter / max(sum(target.values()), 1)
    return _fmeasure(precision, recall)


def rouge_l(hyps: Sequence[str], refs: Sequence[str], *, use_stemmer: bool = False) -> np.ndarray:
    """Per-report ROUGE-L F-measure, equal to ``RougeScorer(["rougeL"]).score(ref, hyp)``.

    rouge-score's tokenizer (``rouge_tokens``) and F-measure; tokens shared at the start and
    end of both reports are counted before the LCS (LCS(a+m+c, a+n+c) = |a| + LCS(m, n) + |c|
    exactly), which makes near-identical pairs cheap.
    """
    if len(hyps) != len(refs):
        raise ReportgenError("E407", f"{len(hyps)} hypotheses for {len(refs)} references", fix="pair each hypothesis with one reference")
    tokenize = _rouge_tokenizer(use_stemmer)
    return _lcs_f([tokenize(h) for h in hyps], [tokenize(r) for r in refs], None, _fmeasure)


def _lcs_f(hyp_tokens: Sequence[list[str]], ref_tokens: Sequence[list[str]], lcs_table, fmeasure) -> np.ndarray:
    """ROUGE-L F-measure per pair of token lists, rouge-score's formula. Shared leading and
    trailing tokens are counted first (LCS(a+m+c, a+n+c) = |a| + LCS(m, n) + |c|); the middle
    LCS length is the bit-parallel one (Allison & Dix 1986; Crochemore et al. 2001) on Python
    integers, equal to the last cell of rouge-score's table (tested) at a fraction of the cost.
    ``lcs_table`` is unused (kept for callers)."""
    out = np.zeros(len(hyp_tokens))
    for i, (ht, rt) in enumerate(zip(hyp_tokens, ref_tokens)):
        if not ht or not rt:
            continue
        n = min(len(ht), len(rt))
        a = 0
        while a < n and ht[a] == rt[a]:
            a += 1
        c = 0
        while c < n - a and ht[-1 - c] == rt[-1 - c]:
            c += 1
        mh, mr = ht[a: len(ht) - c], rt[a: len(rt) - c]
        lcs = a + c + (lcs_length(mr, mh) if mh and mr else 0)
        out[i] = fmeasure(lcs / len(ht), lcs / len(rt))
    return out


def lcs_length(a: Sequence[str], b: Sequence[str]) -> int:
    """Length of the longest common subsequence of two token sequences (bit-parallel)."""
    masks: dict[str, int] = {}
    for i, tok in enumerate(a):
        masks[tok] = masks.get(tok, 0) | (1 << i)
    full = (1 << len(a)) - 1
    s = full
    for tok in b:
        m = masks.get(tok)
        if m:
            u = s & m
            s = ((s + u) | (s - u)) & full
    return len(a) - bin(s).count("1")


ROUGE_TYPES = ("rouge1", "rouge2", "rougeL")


def rouge_all(hyps: Sequence[str], refs: Sequence[str], *, use_stemmer: bool = False, cache: dict | None = None) -> dict[str, np.ndarray]:
    """Per-report ROUGE-1, ROUGE-2 and ROUGE-L F-measures, equal to
    ``RougeScorer(["rouge1", "rouge2", "rougeL"]).score(ref, hyp)`` (tested identical): each
    text is tokenized once (rouge-score's tokenizer, ``rouge_tokens``) and scored with
    rouge-score's n-gram and LCS formulas; rouge-score itself is imported only for stemming."""
    if len(hyps) != len(refs):
        raise ReportgenError("E407", f"{len(hyps)} hypotheses for {len(refs)} references", fix="pair each hypothesis with one reference")
    tokenize = _rouge_tokenizer(use_stemmer)
    cache = {} if cache is None else cache  # (use_stemmer, text) -> (tokens, unigrams, bigrams); callers may share it

    def counted(text: str) -> tuple:
        g = cache.get((use_stemmer, text))
        if g is None:
            t = tokenize(text)
            g = cache[(use_stemmer, text)] = (t, _ngrams(t, 1), _ngrams(t, 2))
        return g

    out = {"rouge1": np.zeros(len(hyps)), "rouge2": np.zeros(len(hyps))}
    for i, (h, r) in enumerate(zip(hyps, refs)):
        gh, gr = counted(h), counted(r)
        out["rouge1"][i] = _ngram_f(gr[1], gh[1])
        out["rouge2"][i] = _ngram_f(gr[2], gh[2])
    out["rougeL"] = _lcs_f([counted(h)[0] for h in hyps], [counted(r)[0] for r in refs], None, _fmeasure)
    return out
