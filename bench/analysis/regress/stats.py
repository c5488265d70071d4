"""The statistics of `bench regress`: the tests (Mann-Whitney U, the run-noise z-test, the prediction interval of
several baseline runs, the Wilcoxon signed-rank test of recall per query, Yuen's trimmed paired t-test) and the
Holm-Bonferroni adjustment. Numbers in, p-values out: nothing here knows about result rows."""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

import numpy as np

EXACT_LIMIT = 50_000  # enumerate splits exactly up to this many
TRIM = 0.2  # the share of pairs trimmed from each end of the pair differences (Yuen's test)


def _u_statistic(x: Sequence[float], y: Sequence[float]) -> float:
    """U of x: pairs (xi, yj) with xi > yj, ties counting one half."""
    return sum(1.0 if a > b else 0.5 if a == b else 0.0 for a in x for b in y)


def mann_whitney_p(x: Sequence[float], y: Sequence[float]) -> float:
    """Two-sided p-value of the Mann-Whitney U test; exact (every split of the pooled values) when feasible."""
    n, m = len(x), len(y)
    if n == 0 or m == 0:
        return 1.0
    pooled = list(x) + list(y)
    if len(set(pooled)) == 1:
        return 1.0
    center = n * m / 2.0
    observed = abs(_u_statistic(x, y) - center)
    if math.comb(n + m, n) <= EXACT_LIMIT:
        extreme = total = 0
        idx = range(n + m)
        for chosen in itertools.combinations(idx, n):
            s = set(chosen)
            xs = [pooled[i] for i in chosen]
            ys = [pooled[i] for i in idx if i not in s]
            total += 1
            if abs(_u_statistic(xs, ys) - center) >= observed - 1e-9:
                extreme += 1
        return extreme / total
    from scipy.stats import mannwhitneyu

    p = float(mannwhitneyu(x, y, alternative="two-sided", method="asymptotic").pvalue)
    return 1.0 if math.isnan(p) else p


def smallest_p(n: int, m: int) -> float:
    """The smallest two-sided p an n-against-m test can give (all of one side above all of the other)."""
    return min(1.0, 2.0 / math.comb(n + m, n)) if n and m else 1.0


def prediction_p(run_medians: Sequence[float], c: float) -> float:
    """Two-sided p of a new run's value c under the runs' spread: c against the prediction interval for one
    more draw, (c - mean) / (s * sqrt(1 + 1/n)) ~ Student's t with n - 1 degrees of freedom."""
    from scipy.stats import t as student_t

    n = len(run_medians)
    if n < 2:
        return 1.0
    m, s = float(np.mean(run_medians)), float(np.std(run_medians, ddof=1))
    if s == 0:
        return 1.0 if c == m else 0.0
    stat = abs(c - m) / (s * math.sqrt(1 + 1 / n))
    return float(2 * student_t.sf(stat, n - 1))


def run_noise_p(change: float, base: Sequence[float], cand: Sequence[float], b: float, c: float, relative: bool,
                run_sd: float) -> float:
    """Two-sided p of a change between two single runs, given the machine's run-to-run standard deviation:
    z = change / sqrt(2 run_sd^2 + se_b^2 + se_c^2), where se are the standard errors of the two runs' trial
    means (relative to the medians when the tolerance is relative). A random-effects model whose between-run
    variance is measured once per machine, because one run cannot show it."""
    from scipy.stats import norm

    def se(values: Sequence[float], center: float) -> float:
        if len(values) < 2:
            return 0.0
        sd = float(np.std(values, ddof=1))
        return (sd / abs(center) if relative and center else sd) / math.sqrt(len(values))

    total = math.sqrt(2 * run_sd**2 + se(base, b) ** 2 + se(cand, c) ** 2)
    if total == 0:
        return 1.0 if change == 0 else 0.0
    if math.isinf(change):
        return 0.0
    return float(2 * norm.sf(abs(change) / total))


def paired_queries_p(base: np.ndarray, cand: np.ndarray) -> tuple[float, int]:
    """Two-sided Wilcoxon signed-rank p of the per-query differences (queries searched on both sides), and how
    many queries were paired."""
    both = ~np.isnan(base) & ~np.isnan(cand)
    d = (cand[both] - base[both]).astype(np.float64)
    if not d.size or not np.any(d):
        return 1.0, int(d.size)
    from scipy.stats import wilcoxon

    p = float(wilcoxon(d, zero_method="pratt", alternative="two-sided").pvalue)
    return (1.0 if math.isnan(p) else p), int(d.size)


def holm_adjust(p_values: Sequence[float]) -> list[float]:
    """Holm-Bonferroni adjusted p-values: the i-th smallest of m is multiplied by m - i (0-based) and made
    non-decreasing. Rejecting where the adjusted p < alpha keeps the chance of any false alarm among all m
    checks of one comparison below alpha."""
    m = len(p_values)
    order = sorted(range(m), key=lambda i: p_values[i])
    out = [1.0] * m
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p_values[i]))
        out[i] = running
    return out


def trimmed_pairs(d: np.ndarray, trim: float = TRIM) -> tuple[float, float, int]:
    """Yuen's trimmed mean of the pair differences, its standard error and degrees of freedom: g = floor(trim n)
    pairs cut from each end, the variance from the differences winsorized at the same points (Yuen 1974; Wilcox,
    "Introduction to Robust Estimation", 4.5). One pair hit by a burst of load moves neither."""
    n = len(d)
    g = int(math.floor(trim * n))
    s = np.sort(d)
    h = n - 2 * g
    tmean = float(np.mean(s[g:n - g]))
    w = np.clip(s, s[g], s[n - g - 1])
    sw2 = float(np.var(w, ddof=1)) if n > 1 else 0.0
    se = math.sqrt((n - 1) * sw2 / (h * (h - 1))) if h > 1 else math.inf
    return tmean, se, h - 1


def paired_p(d: np.ndarray, trim: float = TRIM) -> float:
    """Two-sided p of Yuen's trimmed paired t-test: are the pair differences centred away from zero? With fewer
    than five pairs nothing is trimmed (a plain paired t-test)."""
    if len(d) < 2:
        return 1.0
    tmean, se, df = trimmed_pairs(d, trim)
    if se == 0:
        return 1.0 if tmean == 0 else 0.0
    if not math.isfinite(se) or df < 1:
        return 1.0
    from scipy.stats import t as student_t

    return float(2 * student_t.sf(abs(tmean) / se, df))
