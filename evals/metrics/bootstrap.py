"""Seeded bootstrap confidence intervals for corpus-level figures.

Reports are resampled with replacement (``numpy.random.default_rng(seed)``); every metric
of one evaluation uses the SAME resamples (``resample_indices`` once, pass ``indices=``),
so CIs of different metrics are paired. The interval is the percentile interval
(``numpy.nanpercentile``, linear interpolation) at ``level`` (default 95%): resamples
where a statistic is undefined (NaN, e.g. a precision with no candidate claims) are left
out of its percentiles.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from reportgen.errors import ReportgenError


@dataclass(frozen=True)
class CI:
    """A point estimate with its bootstrap interval."""

    estimate: float
    low: float
    high: float
    level: float = 0.95
    n_resamples: int = 0
    seed: int = 0

    def to_dict(self) -> dict[str, float | int | None]:
        def num(x: float) -> float | None:
            return None if x is None or np.isnan(x) else float(x)

        return {"estimate": num(self.estimate), "low": num(self.low), "high": num(self.high),
                "level": self.level, "n_resamples": self.n_resamples, "seed": self.seed}


def resample_indices(n: int, n_resamples: int = 1000, seed: int = 0) -> np.ndarray:
    """``(n_resamples, n)`` row indices drawn with replacement."""
    if n_resamples < 1:
        raise ReportgenError("E408", f"n_resamples must be at least 1, got {n_resamples}", fix="use --bootstrap 1000 (or 0 to skip CIs)")
    rng = np.random.default_rng(seed)
    return rng.integers(0, max(n, 1), size=(n_resamples, n))


def percentile_interval(estimate: float, values: np.ndarray, level: float, n_resamples: int, seed: int) -> CI:
    values = np.asarray(values, dtype=float)
    if np.all(np.isnan(values)):
        return CI(estimate, float("nan"), float("nan"), level, n_resamples, seed)
    alpha = (1 - level) / 2 * 100
    low, high = np.nanpercentile(values, [alpha, 100 - alpha])
    return CI(float(estimate), float(low), float(high), level, n_resamples, seed)


def bootstrap_mean(values, *, indices: np.ndarray | None = None, weights: np.ndarray | None = None,
                   n_resamples: int = 1000, seed: int = 0, level: float = 0.95) -> CI:
    """CI of the mean of per-report values; NaN values are excluded (nanmean).

    Pass ``weights`` (``resample_weights``) to reuse resamples across metrics: each
    resampled mean is then one matrix-vector product."""
    v = np.asarray(values, dtype=float)
    est = float(np.nanmean(v)) if v.size and not np.all(np.isnan(v)) else float("nan")
    if weights is None:
        idx = resample_indices(len(v), n_resamples, seed) if indices is None else indices
        weights = resample_weights(idx, len(v))
    if v.size == 0:
        return CI(est, float("nan"), float("nan"), level, weights.shape[0], seed)
    means = resampled_means(v, weights)
    return percentile_interval(est, means, level, weights.shape[0], seed)


def resampled_means(values: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """NaN-ignoring mean of ``values`` in each resample (rows of ``weights``)."""
    v = np.asarray(values, dtype=float)
    ok = ~np.isnan(v)
    with np.errstate(invalid="ignore", divide="ignore"):
        counts = weights @ ok.astype(float)
        sums = weights @ np.where(ok, v, 0.0)
        return np.where(counts > 0, sums / np.where(counts > 0, counts, 1), np.nan)


def bootstrap_ratio(numerators, denominators, *, indices: np.ndarray | None = None, n_resamples: int = 1000,
                    seed: int = 0, level: float = 0.95) -> CI:
    """CI of sum(numerators) / sum(denominators) (a micro average, a pooled rate)."""
    num = np.asarray(numerators, dtype=float)
    den = np.asarray(denominators, dtype=float)
    idx = resample_indices(len(num), n_resamples, seed) if indices is None else indices
    est = float(num.sum() / den.sum()) if den.sum() > 0 else float("nan")
    if num.size == 0:
        return CI(est, float("nan"), float("nan"), level, idx.shape[0], seed)
    with np.errstate(invalid="ignore", divide="ignore"):
        d = den[idx].sum(axis=1)
        values = np.where(d > 0, num[idx].sum(axis=1) / np.where(d > 0, d, 1), np.nan)
    return percentile_interval(est, values, level, idx.shape[0], seed)


def bootstrap_statistic(statistic: Callable[[np.ndarray], float], n: int, *, indices: np.ndarray | None = None,
                        n_resamples: int = 1000, seed: int = 0, level: float = 0.95) -> CI:
    """CI of any statistic of a set of report rows: ``statistic(row_indices) -> float``."""
    idx = resample_indices(n, n_resamples, seed) if indices is None else indices
    est = float(statistic(np.arange(n)))
    values = np.array([statistic(row) for row in idx], dtype=float) if n else np.array([np.nan])
    return percentile_interval(est, values, level, idx.shape[0], seed)


def resample_weights(indices: np.ndarray, n: int) -> np.ndarray:
    """``(n_resamples, n)``: how many times each report is drawn in each resample."""
    w = np.zeros((indices.shape[0], n), dtype=np.float64)
    for b, row in enumerate(indices):
        w[b] = np.bincount(row, minlength=n)
    return w


def bootstrap_sums(per_report: np.ndarray, statistic: Callable[[np.ndarray], np.ndarray], *,
                   indices: np.ndarray | None = None, weights: np.ndarray | None = None, n_resamples: int = 1000,
                   seed: int = 0, level: float = 0.95) -> CI:
    """CI of a statistic of SUMMED per-report counts (micro F1, corpus BLEU, pooled rates).

    ``per_report`` has shape ``(n, ...)``; ``statistic`` maps summed counts of shape
    ``(k, ...)`` to ``k`` values. Resampled sums are one matrix product, so this is fast for
    thousands of resamples. Pass ``weights`` (from ``resample_weights``) to reuse them.
    """
    arr = np.asarray(per_report, dtype=np.float64)
    n = arr.shape[0]
    if weights is None:
        idx = resample_indices(n, n_resamples, seed) if indices is None else indices
        weights = resample_weights(idx, n)
    est = float(np.asarray(statistic(arr.sum(axis=0)[None]))[0])
    if n == 0:
        return CI(est, float("nan"), float("nan"), level, weights.shape[0], seed)
    sums = (weights @ arr.reshape(n, -1)).reshape((weights.shape[0],) + arr.shape[1:])
    return percentile_interval(est, np.asarray(statistic(sums), dtype=float), level, weights.shape[0], seed)
