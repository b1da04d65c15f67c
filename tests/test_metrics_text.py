"""BLEU-4 / ROUGE-L against nltk and rouge-score themselves, hand-computed values, and the
seeded bootstrap."""

from __future__ import annotations

import math

import numpy as np
import pytest
from nltk.translate.bleu_score import SmoothingFunction, corpus_bleu, sentence_bleu

from reportgen.evals.metrics.bootstrap import bootstrap_mean, bootstrap_ratio, bootstrap_statistic, resample_indices
from reportgen.evals.metrics.text import bleu_counts, bleu_tokens, corpus_bleu4, rouge_l, sentence_bleu4

HYPS = [
    "The heart size is normal. No pleural effusion or pneumothorax.",
    "Mild cardiomegaly. Small right pleural effusion.",
    "Lungs are clear.",
    "",
    "No acute cardiopulmonary abnormality. Stable calcified granuloma in the right upper lobe.",
]
REFS = [
    "Heart size is normal. There is no pleural effusion or pneumothorax.",
    "Moderate cardiomegaly. Small left pleural effusion. Lungs otherwise clear.",
    "The lungs are clear without focal consolidation.",
    "No acute disease.",
    "No acute cardiopulmonary abnormality. Calcified granuloma right upper lobe.",
]


def test_bleu_equals_nltk():
    counts = bleu_counts(HYPS, REFS)
    toks_h = [bleu_tokens(h) for h in HYPS]
    toks_r = [[bleu_tokens(r)] for r in REFS]
    assert corpus_bleu4(counts) == pytest.approx(corpus_bleu(toks_r, toks_h), abs=1e-15)
    m1 = SmoothingFunction().method1
    expected = [sentence_bleu(r, h, smoothing_function=m1) if h else 0.0 for r, h in zip(toks_r, toks_h)]
    assert sentence_bleu4(counts) == pytest.approx(expected, abs=1e-15)
    # A subset by indices (with repeats) is the corpus BLEU of that multiset of pairs.
    idx = np.array([1, 1, 4])
    assert corpus_bleu4(counts, idx) == pytest.approx(corpus_bleu([toks_r[i] for i in idx], [toks_h[i] for i in idx]))


def test_bleu_and_rouge_by_hand():
    counts = bleu_counts(["a b c d e"], ["a b c d f"])
    # p1..p4 = 4/5, 3/4, 2/3, 1/2; equal lengths so BP = 1.
    assert corpus_bleu4(counts) == pytest.approx((4 / 5 * 3 / 4 * 2 / 3 * 1 / 2) ** 0.25)
    assert corpus_bleu4(bleu_counts(["x y z w"], ["a b c d"])) == 0.0
    # Shorter hypothesis: BP = exp(1 - 5/4).
    c = bleu_counts(["a b c d"], ["a b c d e"])
    assert corpus_bleu4(c) == pytest.approx(math.exp(1 - 5 / 4))
    # LCS("a b c d", "a c d e") = 3: P = R = 3/4.
    assert rouge_l(["a b c d"], ["a c d e"])[0] == pytest.approx(0.75)
    assert rouge_l(["same text"], ["Same text."])[0] == pytest.approx(1.0)


def test_bootstrap_is_seeded_and_brackets_the_estimate():
    values = np.array([0.0, 1.0, 0.5, 0.25, 0.75, 1.0, 0.0, 0.5])
    a = bootstrap_mean(values, n_resamples=500, seed=7)
    b = bootstrap_mean(values, n_resamples=500, seed=7)
    c = bootstrap_mean(values, n_resamples=500, seed=8)
    assert a == b and a != c
    assert a.estimate == pytest.approx(values.mean())
    assert a.low < a.estimate < a.high and 0.0 <= a.low and a.high <= 1.0
    const = bootstrap_mean(np.full(10, 0.3), n_resamples=100)
    assert const.low == pytest.approx(0.3) and const.high == pytest.approx(0.3)
    # NaN values are excluded, not counted as zero.
    with_nan = bootstrap_mean([1.0, float("nan"), 1.0], n_resamples=50)
    assert with_nan.estimate == 1.0 and with_nan.low == 1.0


def test_bootstrap_shared_indices_ratio_and_statistic():
    idx = resample_indices(5, 200, seed=3)
    assert idx.shape == (200, 5) and idx.min() >= 0 and idx.max() <= 4
    r = bootstrap_ratio([1, 2, 0, 3, 4], [2, 2, 1, 4, 4], indices=idx)
    assert r.estimate == pytest.approx(10 / 13) and r.n_resamples == 200
    counts = bleu_counts(HYPS, REFS)
    s = bootstrap_statistic(lambda rows: corpus_bleu4(counts, rows), len(counts), indices=idx)
    assert s.estimate == pytest.approx(corpus_bleu4(counts))
    assert s.low <= s.estimate <= s.high


def test_rouge_l_equals_rouge_score_on_varied_pairs():
    from rouge_score import rouge_scorer

    import random

    rng = random.Random(0)
    words = "no pleural effusion or pneumothorax mild cardiomegaly the lungs are clear right left base".split()
    hyps, refs = list(HYPS), list(REFS)
    for _ in range(200):
        ref = " ".join(rng.choice(words) for _ in range(rng.randrange(0, 25)))
        toks = ref.split()
        for _ in range(rng.randrange(0, 4)):  # edits: replace, insert, delete
            k = rng.randrange(0, len(toks) + 1)
            op = rng.choice("rid")
            if op == "i" or not toks:
                toks.insert(k, rng.choice(words))
            elif op == "r":
                toks[min(k, len(toks) - 1)] = rng.choice(words)
            else:
                del toks[min(k, len(toks) - 1)]
        hyps.append(" ".join(toks))
        refs.append(ref)
    scorer = rouge_scorer.RougeScorer(["rougeL"])
    expected = [scorer.score(r, h)["rougeL"].fmeasure for h, r in zip(hyps, refs)]
    assert rouge_l(hyps, refs).tolist() == expected  # identical, not approximately
