"""Paired significance tests between two systems scored on the same studies, and
multiple-testing corrections.

A figure is a statistic of summed per-study rows (``reportgen.evals.suite.Figure``): a mean
over studies, a pooled ratio, corpus BLEU, micro F1. Both tests work on the two systems'
rows for the SAME studies in the same order:

- paired bootstrap (Koehn 2004; Efron & Tibshirani): studies are resampled with replacement,
  the same resample for both systems; the difference's percentile interval is reported and
  the two-sided p-value is that of the shifted null, ``(1 + #{|d* - d| >= |d|}) / (B + 1)``;
- approximate randomization (Noreen 1989; Riezler & Maxwell 2005): each study's two outputs
  are swapped with probability 1/2; ``p = (1 + #{|d_r| >= |d|}) / (R + 1)``.

Both are seeded (``numpy.random.default_rng``). Resamples where the statistic is undefined
(NaN) never count as extreme. Corrections: Holm (step-down, controls the family-wise error
rate), Bonferroni, or none.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from reportgen.errors import ReportgenError

CORRECTIONS = ("holm", "bonferroni", "none")

Stat = Callable[[np.ndarray], np.ndarray]


@dataclass(frozen=True)
class PairedTest:
    estimate_a: float
    estimate_b: float
    difference: float  # a - b
    ci_low: float
    ci_high: float
    p_bootstrap: float
    p_permutation: float
    n_studies: int

    def to_dict(self) -> dict[str, float | int | None]:
        def num(x: float) -> float | None:
            return None if x is None or np.isnan(x) else float(x)

        return {"estimate_a": num(self.estimate_a), "estimate_b": num(self.estimate_b), "difference": num(self.difference),
                "ci_low": num(self.ci_low), "ci_high": num(self.ci_high), "p_bootstrap": num(self.p_bootstrap),
                "p_permutation": num(self.p_permutation), "n_studies": self.n_studies}


def bootstrap_weights(n: int, n_resamples: int, seed: int) -> np.ndarray:
    """``(n_resamples, n)`` counts: how often each study is drawn in each resample."""
    if n_resamples < 1:
        raise ReportgenError("E858", f"resamples must be at least 1, got {n_resamples}", fix="use --resamples 1000")
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, max(n, 1), size=(n_resamples, n))
    w = np.zeros((n_resamples, n))
    rows = np.repeat(np.arange(n_resamples), n)
    np.add.at(w, (rows, idx.reshape(-1)), 1.0)
    return w


def swap_masks(n: int, n_permutations: int, seed: int) -> np.ndarray:
    """``(n_permutations, n)`` zeros and ones: 1 where a study's two outputs are swapped."""
    if n_permutations < 1:
        raise ReportgenError("E858", f"permutations must be at least 1, got {n_permutations}", fix="use --permutations 1000")
    return np.random.default_rng(seed + 1).integers(0, 2, size=(n_permutations, n)).astype(float)


def paired_test(rows_a: np.ndarray, rows_b: np.ndarray, stat: Stat, *, weights: np.ndarray, masks: np.ndarray,
                level: float = 0.95) -> PairedTest:
    """Both tests for one figure of two systems (rows of the same studies, same order)."""
    ra, rb = np.asarray(rows_a, dtype=float), np.asarray(rows_b, dtype=float)
    if ra.shape != rb.shape:
        raise ReportgenError("E859", f"the two systems' rows differ in shape {ra.shape} vs {rb.shape}",
                             fix="score both systems on the same studies")
    if ra.shape[0] == 0:
        return tests_from_sums(ra.sum(axis=0), rb.sum(axis=0), None, None, None, stat, 0, level)
    swapped = masks @ (rb - ra)
    return tests_from_sums(ra.sum(axis=0), rb.sum(axis=0), weights @ ra, weights @ rb, swapped, stat, ra.shape[0], level)


def tests_from_sums(total_a: np.ndarray, total_b: np.ndarray, boot_a: np.ndarray | None, boot_b: np.ndarray | None,
                    swapped: np.ndarray | None, stat: Stat, n: int, level: float = 0.95) -> PairedTest:
    """Both tests from precomputed sums: the systems' column totals, their resampled sums
    (``weights @ rows``) and the permutation shifts (``masks @ (rows_b - rows_a)``), so that
    one matrix product per system (bootstrap) and per pair (permutation) serves every figure."""
    def value(sums: np.ndarray) -> np.ndarray:
        return np.asarray(stat(np.atleast_2d(sums)), dtype=float)

    ea, eb = float(value(total_a)[0]), float(value(total_b)[0])
    d = ea - eb
    nan = float("nan")
    if n == 0 or np.isnan(d) or boot_a is None:
        return PairedTest(ea, eb, d, nan, nan, nan, nan, n)
    boot = value(boot_a) - value(boot_b)
    ok = ~np.isnan(boot)
    alpha = (1 - level) / 2 * 100
    lo, hi = np.percentile(boot[ok], [alpha, 100 - alpha]) if ok.any() else (nan, nan)
    extreme = np.abs(boot[ok] - d) >= abs(d) - 1e-12
    p_boot = (1 + int(extreme.sum())) / (int(ok.sum()) + 1)
    perm = value(np.atleast_2d(total_a) + swapped) - value(np.atleast_2d(total_b) - swapped)  # a takes b's swapped studies
    okp = ~np.isnan(perm)
    p_perm = (1 + int((np.abs(perm[okp]) >= abs(d) - 1e-12).sum())) / (int(okp.sum()) + 1)
    return PairedTest(ea, eb, d, float(lo), float(hi), float(p_boot), float(p_perm), n)


def adjust(pvalues: Sequence[float], method: str = "holm") -> list[float]:
    """Adjusted p-values (NaN stays NaN and is not counted in the family)."""
    if method not in CORRECTIONS:
        raise ReportgenError("E860", f"unknown multiple-testing correction {method!r}", fix=f"use one of {', '.join(CORRECTIONS)}")
    p = np.asarray(pvalues, dtype=float)
    out = p.copy()
    ok = np.flatnonzero(~np.isnan(p))
    m = len(ok)
    if method == "none" or m == 0:
        return out.tolist()
    if method == "bonferroni":
        out[ok] = np.minimum(1.0, p[ok] * m)
        return out.tolist()
    order = ok[np.argsort(p[ok], kind="stable")]
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p[i]))
        out[i] = running
    return out.tolist()
