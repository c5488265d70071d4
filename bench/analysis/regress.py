"""`bench regress`: is the candidate worse than the baseline?

For every configuration present in both (the key columns of the results schema: backend, workload, op,
ef_search, k, concurrency, target rate, filter, ...) and every figure named in the config, a figure regressed when
it moved the wrong way by more than its tolerance (the practical threshold, from the config) AND a test on the
right statistical unit finds the move clear (p < alpha):

- Latency and throughput against a baseline of one run: one run cannot show how runs differ, so the config
  gives each figure the machine's run-to-run standard deviation (`run_sd`, measured by
  benchmarks/regress_false_alarms.py) and the change is tested against it, z = change / sqrt(2 run_sd^2 + the
  two runs' standard errors^2) (a random-effects model with a measured between-run variance). Without
  `run_sd`, a two-sided Mann-Whitney U test on the trials (exact, by enumerating every split, when that is
  small), which sees only how one run's trials spread, and the summary says so. With 5 against 5 trials its
  smallest possible p is 2/252 = 0.0079; with 3 against 3 it is 0.1, so fewer than 4 trials a side can never
  show a regression.
- Latency and throughput against a baseline of several runs (`bench baseline save --append`): the trials of one
  run share its process, its built index and its neighbours on the machine, so they show less spread than runs
  do and a test on them is falsely certain. The unit is then the run: the candidate's trimmed median is tested
  against a prediction interval for one more run drawn like the baseline runs (Student's t with n-1 degrees
  of freedom on the runs' medians), and the change counts from the mean of their medians.
- Recall: a property of the built index, identical in every trial of a run, so trials are no replicates of it
  at all. Each trial records recall per query (`recall_per_query`); the runs' per-query recall is paired query
  by query and a Wilcoxon signed-rank test (Pratt's treatment of zero differences) asks whether the candidate is
  systematically worse. Two builds of the same index differ per query with no direction, so only a shift
  common to the queries counts.
"""

from __future__ import annotations

import itertools
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from bench.analysis.failed_trials import failed_trial_notes
from bench.analysis.load import require_complete, trials_frame
from bench.errors import UserError
from bench.results import keys
from bench.results.aggregate import trimmed

# every parameter that tells configurations apart; run_id, workload_kind and phase follow from the others
EXACT_LIMIT = 50_000  # enumerate splits exactly up to this many


class FigureRule(BaseModel):
    model_config = ConfigDict(extra="forbid")
    better: Literal["higher", "lower"]
    relative: float | None = Field(None, ge=0, description="tolerated change as a fraction of the baseline")
    absolute: float | None = Field(None, ge=0, description="tolerated change in the figure's own unit")
    run_sd: float | None = Field(None, ge=0, description="the machine's run-to-run standard deviation of the figure "
                                 "(a fraction when the tolerance is relative, else in the figure's unit), as "
                                 "benchmarks/regress_false_alarms.py measures it; used against a one-run baseline")

    @model_validator(mode="after")
    def _one_tolerance(self) -> FigureRule:
        if (self.relative is None) == (self.absolute is None):
            raise ValueError("give exactly one of 'relative' or 'absolute'")
        return self


class RegressConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    alpha: float = Field(0.05, gt=0, lt=1, description="significance level of the Mann-Whitney U test")
    sentinel: bool = Field(True, description="a regression the suite's sentinel shows too is the machine's: unclear")
    host: bool = Field(True, description="a regression measured on a busier machine than its baseline: unclear")
    busier_cores: float = Field(0.25, ge=0, description="other processes' mean cores more in the candidate than in "
                                "the baseline that make its machine busier")
    figures: dict[str, FigureRule] = Field(default_factory=lambda: dict(DEFAULT_FIGURES))


DEFAULT_FIGURES = {  # as configs/regress.toml, which `bench regress` reads by default
    "qps": FigureRule(better="higher", relative=0.05, run_sd=0.055),
    "p50_us": FigureRule(better="lower", relative=0.10, run_sd=0.05),
    "p99_us": FigureRule(better="lower", relative=0.10, run_sd=0.11),
    "recall": FigureRule(better="higher", absolute=0.01),
}


def load_config(path: str | Path | None) -> RegressConfig:
    if path is None:
        return RegressConfig()
    from bench.spec import format_validation_error, read_toml

    data = read_toml(Path(path), "regress config")
    try:
        return RegressConfig.model_validate(data)
    except ValidationError as e:
        raise UserError(format_validation_error(e, f"Regress config {path}", model=RegressConfig), "fix the value in the file") from None


# -- the test ---------------------------------------------------------------------------------------------

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


# -- comparing --------------------------------------------------------------------------------------------

Verdict = Literal["regression", "improvement", "within tolerance", "unclear", "too few trials"]


@dataclass
class FigureCheck:
    key: dict
    figure: str
    baseline: float
    candidate: float
    change: float  # candidate - baseline, relative (fraction) or absolute as the rule says
    tolerance: float
    relative: bool
    p: float
    n_baseline: int
    n_candidate: int
    verdict: Verdict
    worse: bool  # moved the wrong way beyond the tolerance (whatever the test says)
    baseline_runs: int = 1
    baseline_range: tuple[float, float] | None = None  # lowest and highest median of the baseline runs
    # "mann-whitney" (trials), "run-noise" (one run a side, the machine's run_sd), "prediction" (several baseline
    # runs), "wilcoxon" (recall: queries paired across runs)
    test: str = "mann-whitney"
    p_adjusted: float = 1.0  # Holm-Bonferroni over every check of the comparison; the verdict rests on it
    better: bool = False  # moved the right way beyond the tolerance
    floor: float = 0.0  # the smallest p the test could give (Mann-Whitney on few trials)
    figure_better: str = "lower"  # the rule's direction: "higher" or "lower"
    reason: str | None = None  # why a move beyond tolerance is "unclear" (the machine: sentinel, host load)
    note: str | None = None  # what the reader should know beside the verdict

    def describe_change(self) -> str:
        return f"{self.change:+.1%}" if self.relative else f"{self.change:+.4g}"


@dataclass
class RegressResult:
    baseline: str
    candidate: str
    alpha: float
    checks: list[FigureCheck] = field(default_factory=list)
    only_baseline: list[dict] = field(default_factory=list)
    only_candidate: list[dict] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    sentinel: list[FigureCheck] = field(default_factory=list)  # the sentinel's own checks (never verdicts)
    paired: bool = False  # an interleaved A/B run: arm A against arm B, trial by trial

    @property
    def regressions(self) -> list[FigureCheck]:
        return [c for c in self.checks if c.verdict == "regression"]

    def markdown(self) -> str:
        return render_markdown(self)


def _norm(v: object) -> object:
    if v is None or (isinstance(v, float) and math.isnan(v)) or v is pd.NA:
        return None
    if isinstance(v, float) and v.is_integer():
        return int(v)
    return v.item() if hasattr(v, "item") else v


def match_keys(across: Sequence[str] = ()) -> list[str]:
    """The keys a baseline and a candidate configuration must share, less those the user pairs across (key
    names, or whole groups: "data", "index", "load", "variant")."""
    drop = set()
    for a in across:
        drop |= set(keys.names(a)) if a in keys.GROUPS else {keys.get(a).name}
    return [k for k in keys.match_names() if k not in drop]


def _groups(df: pd.DataFrame, names: list[str]) -> dict[tuple, pd.DataFrame]:
    ok = df[df["status"] == "ok"]
    out: dict[tuple, pd.DataFrame] = {}
    for key, g in ok.groupby(names, dropna=False, sort=True):
        out[tuple(_norm(v) for v in key)] = g
    return out


def _values(g: pd.DataFrame, figure: str) -> list[float]:
    return [float(v) for v in g[figure] if v is not None and not pd.isna(v)]


def _change(c: float, ref: float, relative: bool) -> float:
    if not relative:
        return c - ref
    if ref:
        return (c - ref) / abs(ref)
    return 0.0 if c == ref else math.copysign(math.inf, c - ref)


def _built_diff(base: set[str], cand: set[str]) -> str:
    """What differs between the index read back in the baseline and in the candidate, briefly."""
    def flat(texts: set[str]) -> dict[str, set]:
        out: dict[str, set] = {}
        for t in texts:
            try:
                d = json.loads(t)
            except json.JSONDecodeError:
                continue
            items = {"kind": d.get("kind"), **(d.get("params") or {})}
            for k, v in items.items():
                out.setdefault(k, set()).add(json.dumps(v, sort_keys=True))
        return out

    fb, fc = flat(base), flat(cand)
    diffs = [f"{k}: {'/'.join(sorted(fb.get(k, {'-'})))} -> {'/'.join(sorted(fc.get(k, {'-'})))}"
             for k in sorted(set(fb) | set(fc)) if fb.get(k) != fc.get(k)]
    return "; ".join(diffs) or "substitutions or counts differ"


def _verdict(worse: bool, better: bool, p: float, alpha: float, floor: float) -> Verdict:
    if not (worse or better):
        return "within tolerance"
    if p < alpha:
        return "regression" if worse else "improvement"
    return "too few trials" if floor >= alpha else "unclear"


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


def check_figure(key: dict, figure: str, rule: FigureRule, base: list[float], cand: list[float],
                 alpha: float, base_runs: list[list[float]] | None = None,
                 per_query: tuple[np.ndarray, np.ndarray] | None = None) -> FigureCheck | None:
    """Compare one figure of one configuration; None when either side has no value.

    base holds every baseline trial, base_runs the same trials split by baseline run, per_query the baseline's
    and the candidate's mean recall per query (recall only). See the module docstring for which test is used.
    """
    c = trimmed(cand).median
    runs = [m for m in (trimmed(r).median for r in (base_runs or [base])) if m is not None]
    if c is None or not runs:
        return None
    relative = rule.relative is not None
    tol = rule.relative if relative else rule.absolute
    assert tol is not None
    if len(runs) >= 2:
        b = float(np.mean(runs))
    else:
        b = trimmed(base).median
        assert b is not None
    change = _change(c, b, relative)
    worse = change < -tol if rule.better == "higher" else change > tol
    better = change > tol if rule.better == "higher" else change < -tol
    n_base, n_cand = len(base), len(cand)
    if per_query is not None:
        p, paired = paired_queries_p(*per_query)
        test, floor, n_base = "wilcoxon", 0.0, paired
        n_cand = paired
    elif len(runs) >= 2:
        p, test, floor = prediction_p(runs, c), "prediction", 0.0
        n_base, n_cand = len(runs), 1
    elif rule.run_sd is not None:
        p, test, floor = run_noise_p(change, base, cand, b, c, relative, rule.run_sd), "run-noise", 0.0
    else:
        p, test, floor = mann_whitney_p(base, cand), "mann-whitney", smallest_p(len(base), len(cand))
    verdict = _verdict(worse, better, p, alpha, floor)
    return FigureCheck(key, figure, b, c, change, tol, relative, p, n_base, n_cand, verdict, worse,
                       len(runs), (min(runs), max(runs)), test, p_adjusted=p, better=better, floor=floor,
                       figure_better=rule.better)


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


def apply_holm(checks: list[FigureCheck], alpha: float) -> None:
    """Decide every check of one comparison on its Holm-adjusted p: each configuration and figure is one more
    chance of a false alarm, and a nightly job compares dozens."""
    for c, adj in zip(checks, holm_adjust([c.p for c in checks]), strict=True):
        c.p_adjusted = adj
        c.verdict = _verdict(c.worse, c.better, adj, alpha, c.floor)


def apply_conditions(res: RegressResult, cfg: RegressConfig, hosts: dict[tuple, tuple]) -> None:
    """The machine's part (bench.analysis.conditions): a regression the candidate's busier host or the sentinel
    explains becomes "unclear", with the reason."""
    from bench.analysis import conditions

    moved = conditions.drift(res.sentinel) if cfg.sentinel else {}
    for c in res.checks:
        if not c.worse:
            continue
        if c.figure == "recall" and c.test == "wilcoxon":  # the same queries on a built index: the ids an engine
            continue  # returns do not depend on how busy the machine was, so the machine cannot explain a change
        reasons = []
        if cfg.host:
            hb, hc = hosts.get(_key_tuple(c.key), (None, None))
            why = conditions.busier(hb, hc, cfg.busier_cores) if hb is not None and hc is not None else None
            if why:
                reasons.append(why)
        why = conditions.machine_reason(c, moved) if moved else None
        if why:
            reasons.append(why)
        if reasons:
            c.reason = "; ".join(reasons)
            if c.verdict == "regression":
                c.verdict = "unclear"


def _key_tuple(k: dict) -> tuple:
    return tuple(sorted((n, str(v)) for n, v in k.items()))


def _per_query(g: pd.DataFrame) -> np.ndarray | None:
    """Mean recall per query index over the ok trials of these rows (NaN: never searched); None when the
    results do not record it (older results, YCSB) or the trials disagree on the number of queries."""
    if "recall_per_query" not in g.columns:
        return None
    arrs = [np.asarray(v, dtype=np.float64) for v in g["recall_per_query"] if isinstance(v, list | np.ndarray)]
    if not arrs or len({a.shape for a in arrs}) != 1:
        return None
    stack = np.vstack(arrs)
    seen = ~np.isnan(stack)
    counts = seen.sum(axis=0)
    sums = np.where(seen, stack, 0.0).sum(axis=0)
    out = np.full(stack.shape[1], np.nan)
    out[counts > 0] = sums[counts > 0] / counts[counts > 0]
    return out


def compare_frames(base: pd.DataFrame, cand: pd.DataFrame, cfg: RegressConfig, baseline: str = "baseline",
                   candidate: str = "candidate", across: Sequence[str] = ()) -> RegressResult:
    from bench.analysis.conditions import split_sentinel

    res = RegressResult(baseline, candidate, cfg.alpha)
    _require_figures(base, cand, cfg)
    names = match_keys(across)
    (base, base_s), (cand, cand_s) = split_sentinel(base), split_sentinel(cand)
    hosts: dict[tuple, tuple] = {}
    res.checks = _checks(base, cand, cfg, names, res, hosts, list_apart=True)
    res.sentinel = _checks(base_s, cand_s, cfg, names, res, {}, list_apart=False)
    apply_holm(res.checks, cfg.alpha)
    apply_holm(res.sentinel, cfg.alpha)
    if not res.checks:
        why, hint = _why_apart(base, cand, names)
        raise UserError(f"Nothing in {candidate} is comparable with {baseline}: {why}", hint)
    apply_conditions(res, cfg, hosts)
    return res


def _require_figures(base: pd.DataFrame, cand: pd.DataFrame, cfg: RegressConfig) -> None:
    for fig in cfg.figures:
        if fig not in base.columns or fig not in cand.columns:
            raise UserError(f"The regress config names the figure '{fig}', which the results do not have",
                            "use columns of trials.parquet such as qps, p50_us, p99_us, p999_us, recall")


def _checks(base: pd.DataFrame, cand: pd.DataFrame, cfg: RegressConfig, names: list[str], res: RegressResult,
            hosts: dict[tuple, tuple], list_apart: bool) -> list[FigureCheck]:
    """Every figure of every configuration found on both sides (and the host load of each side in `hosts`)."""
    from bench.analysis.conditions import host_of

    gb, gc = _groups(base, names), _groups(cand, names)
    if list_apart:
        res.only_baseline += [dict(zip(names, k, strict=True)) for k in sorted(set(gb) - set(gc), key=str)]
        res.only_candidate += [dict(zip(names, k, strict=True)) for k in sorted(set(gc) - set(gb), key=str)]
    out = []
    for key in sorted(set(gb) & set(gc), key=str):
        kd = dict(zip(names, key, strict=True))
        b, c = gb[key], gc[key]
        if _apart_note(kd, b, c, res):
            continue
        hosts[_key_tuple(kd)] = (host_of(b), host_of(c))
        for fig, rule in cfg.figures.items():
            by_run = [_values(g, fig) for _, g in b.groupby("run_id", sort=True)]
            pq = None
            if fig == "recall":
                qb, qc = _per_query(b), _per_query(c)
                if qb is not None and qc is not None and qb.shape == qc.shape:
                    pq = (qb, qc)
            chk = check_figure(kd, fig, rule, _values(b, fig), _values(c, fig), cfg.alpha, by_run, pq)
            if chk is not None:
                out.append(chk)
    return out


def _apart_note(kd: dict, b: pd.DataFrame, c: pd.DataFrame, res: RegressResult) -> bool:
    """True when the two sides loaded different data (not compared); a note when the engine built another
    index."""
    hb, hc = set(b.get("dataset_hash", pd.Series(dtype=object)).dropna()), set(
        c.get("dataset_hash", pd.Series(dtype=object)).dropna())
    if hb and hc and hb != hc:
        res.notes.append(f"{_key_text(kd)}: not compared, the datasets differ (hash {sorted(hb)[0][:12]} "
                         f"against {sorted(hc)[0][:12]})")
        return True
    ib = set(b.get("index_built", pd.Series(dtype=object)).dropna())
    ic = set(c.get("index_built", pd.Series(dtype=object)).dropna())
    if ib and ic and ib != ic:
        res.notes.append(f"{_key_text(kd)}: the engine built another index in the candidate than in the "
                         f"baseline ({_built_diff(ib, ic)}); a change may come from that")
    return False


# -- interleaved A/B (bench ab): arm A against arm B, trial by trial -----------------------------------------

TRIM = 0.2  # the share of pairs trimmed from each end of the pair differences (Yuen's test)


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


def paired_check(key: dict, figure: str, rule: FigureRule, a: dict[int, float], b: dict[int, float],
                 alpha: float) -> FigureCheck | None:
    """One figure of one configuration of an A/B run: the trials paired by their number (trial i of A and of B
    ran next to each other). Relative figures are tested on the log ratios B/A and their change is the ratio of
    the trimmed mean log ratio, minus 1; absolute ones on the differences B - A, their change the trimmed mean
    difference. The test is Yuen's trimmed paired t-test (paired_p)."""
    relative = rule.relative is not None
    pairs = [t for t in sorted(set(a) & set(b)) if not relative or (a[t] > 0 and b[t] > 0)]
    if not pairs:
        return None
    av, bv = np.array([a[t] for t in pairs]), np.array([b[t] for t in pairs])
    d = np.log(bv / av) if relative else bv - av
    centre = trimmed_pairs(d)[0]  # the trimmed mean: a pair hit by a burst of load does not swing it
    change = math.expm1(centre) if relative else centre
    tol = rule.relative if relative else rule.absolute
    assert tol is not None
    worse = change < -tol if rule.better == "higher" else change > tol
    better = change > tol if rule.better == "higher" else change < -tol
    p, floor = (paired_p(d), 0.0) if len(d) >= 3 else (1.0, 1.0)  # two pairs tell no spread
    base, cand = trimmed(av).median, trimmed(bv).median
    assert base is not None and cand is not None
    return FigureCheck(key, figure, base, cand, change, tol, relative, p, len(d), len(d),
                       _verdict(worse, better, p, alpha, floor), worse, 1, None, "paired", p_adjusted=p,
                       better=better, floor=floor, figure_better=rule.better)


def _by_trial(g: pd.DataFrame, figure: str) -> dict[int, float]:
    out: dict[int, list[float]] = {}
    for t, v in zip(g["trial"], g[figure], strict=True):
        if v is not None and not pd.isna(v) and t is not None and not pd.isna(t):
            out.setdefault(int(t), []).append(float(v))
    return {t: float(np.mean(v)) for t, v in out.items()}


def is_ab(df: pd.DataFrame) -> bool:
    return "ab_arm" in df and {"A", "B"} <= set(df["ab_arm"].dropna())


def compare_paired(df: pd.DataFrame, cfg: RegressConfig, name: str = "A/B run",
                   across: Sequence[str] = ()) -> RegressResult:
    """Arm B of an interleaved A/B run (bench ab) against its arm A, configuration by configuration, each figure
    by a paired test on the trials (recall: per query, as in compare_frames); Holm over every check; a
    regression measured while B's trials saw a busier machine than A's is unclear."""
    res = RegressResult(f"{name} arm A", f"{name} arm B", cfg.alpha, paired=True)
    _require_figures(df, df, cfg)
    names = match_keys(across)
    ga, gb = (_groups(df[df["ab_arm"] == arm], names) for arm in ("A", "B"))
    res.only_baseline = [dict(zip(names, k, strict=True)) for k in sorted(set(ga) - set(gb), key=str)]
    res.only_candidate = [dict(zip(names, k, strict=True)) for k in sorted(set(gb) - set(ga), key=str)]
    hosts: dict[tuple, tuple] = {}
    from bench.analysis.conditions import host_of

    for key in sorted(set(ga) & set(gb), key=str):
        kd = dict(zip(names, key, strict=True))
        a, b = ga[key], gb[key]
        if _apart_note(kd, a, b, res):
            continue
        hosts[_key_tuple(kd)] = (host_of(a), host_of(b))
        for fig, rule in cfg.figures.items():
            qa, qb = (_per_query(a), _per_query(b)) if fig == "recall" else (None, None)
            if qa is not None and qb is not None and qa.shape == qb.shape:
                chk = check_figure(kd, fig, rule, _values(a, fig), _values(b, fig), cfg.alpha, None, (qa, qb))
            else:
                chk = paired_check(kd, fig, rule, _by_trial(a, fig), _by_trial(b, fig), cfg.alpha)
            if chk is not None:
                res.checks.append(chk)
    apply_holm(res.checks, cfg.alpha)
    if not res.checks:
        why, hint = _why_apart(df[df["ab_arm"] == "A"], df[df["ab_arm"] == "B"], names)
        raise UserError(f"Nothing in arm B of {name} is comparable with its arm A: {why}", hint)
    apply_conditions(res, cfg, hosts)
    return res


def _why_apart(base: pd.DataFrame, cand: pd.DataFrame, names: list[str]) -> tuple[str, str]:
    """The real reason no configuration pairs: the keys whose values the two sides do not share."""
    apart = []
    for n in names:
        vb, vc = ({_norm(v) for v in df[n].tolist()} if n in df else {None} for df in (base, cand))
        if not vb & vc:
            apart.append((n, vb, vc))
    if not apart:
        return ("no configuration has ok trials on both sides with the same " + ", ".join(names),
                "compare runs of the same workload and backend")

    def show(vals: set) -> str:
        return ", ".join(sorted(str(v)[:16] for v in vals))

    diff = "; ".join(f"{keys.get(n).label} ({n}) is {show(b)} in the baseline but {show(c)} in the candidate"
                     for n, b, c in apart[:3])
    groups = sorted({keys.get(n).group for n, _, _ in apart})
    return (f"they measured different things: {diff}",
            f"compare runs of the same {' and '.join(groups)}; to pair across it on purpose (an A/B of index "
            f"settings, say), add --across {' --across '.join(groups)}")


def regress(baseline: str | Path | None, candidate: str | Path, config: str | Path | None = None,
            across: Sequence[str] = (), allow_incomplete: bool = False) -> RegressResult:
    """Candidate against baseline; with no baseline, the candidate must be an A/B run (bench ab), and its arm B
    is compared with its arm A, trial pair by trial pair."""
    for a in across:
        if a not in keys.GROUPS and a not in keys.names():
            raise UserError(f"--across {a!r} is neither a key group nor a result key",
                            f"use one of {', '.join(keys.GROUPS)} or a key such as index_m")
    cfg = load_config(config)
    if baseline is None:
        df = trials_frame([candidate])
        if not is_ab(df):
            raise UserError(f"{candidate} is not an A/B run (its rows carry no arms A and B), and no --baseline "
                            "was given", "give --baseline, or a run folder made by `bench ab`")
        notes = require_complete(df, "A/B run", allow_incomplete) + failed_trial_notes(df, "A/B run")
        res = compare_paired(df, cfg, str(candidate), across)
        res.notes += notes
        return res
    base = trials_frame([baseline])
    cand = trials_frame([candidate])
    notes = require_complete(base, "baseline", allow_incomplete) + require_complete(cand, "candidate",
                                                                                    allow_incomplete)
    notes += failed_trial_notes(base, "baseline") + failed_trial_notes(cand, "candidate")
    res = compare_frames(base, cand, cfg, str(baseline), str(candidate), across)
    res.notes += notes
    return res


# -- the summary ------------------------------------------------------------------------------------------

def _key_text(k: dict) -> str:
    return f"{k['backend']} {k['workload']} {k['op']} " + keys.label(k)


def _evidence(c: FigureCheck) -> str:
    p = f"p = {c.p:.3g}" + (f" (Holm {c.p_adjusted:.3g})" if c.p_adjusted != c.p else "")
    if c.test == "wilcoxon":
        return f"{p}, {c.n_baseline} queries paired"
    if c.test == "prediction":
        return f"{p} against {c.baseline_runs} baseline runs"
    if c.test == "run-noise":
        return f"{p}, one run a side, with the configured run-to-run spread"
    if c.test == "paired":
        return f"{p}, {c.n_baseline} pairs of interleaved trials"
    return f"{p}, {c.n_baseline} vs {c.n_candidate} trials"


def _fmt(v: float) -> str:
    if v == 0 or 0.01 <= abs(v) < 1e7:
        return f"{v:,.4g}" if abs(v) < 10 else f"{v:,.0f}"
    return f"{v:.3g}"


def _base_text(c: FigureCheck) -> str:
    if c.baseline_runs > 1 and c.baseline_range is not None:
        return f"{_fmt(c.baseline)} ({c.baseline_runs} runs: {_fmt(c.baseline_range[0])}-{_fmt(c.baseline_range[1])})"
    return _fmt(c.baseline)


PAIRED_TEXT = ("an interleaved A/B run: arm B (candidate) against arm A (baseline), their trials paired in time; a "
               "regression is a change for the worse beyond the tolerance that a trimmed paired t-test (Yuen's, "
               "20% of the pairs cut from each end) on the pairs' log ratios (recall: a Wilcoxon signed-rank test on the queries) also finds clear")
STORED_TEXT = ("a regression is a change for the worse beyond the tolerance that a two-sided test also finds clear: "
               "recall by a Wilcoxon signed-rank test on the queries paired across runs; the other figures against "
               "a one-run baseline by a z-test with the machine's run-to-run spread (`run_sd` in the config; else a "
               "Mann-Whitney U test on the trials), and against several baseline runs by the prediction interval "
               "of their medians (the change then counts from their mean)")


def render_markdown(r: RegressResult) -> str:
    regs = r.regressions
    head = (f"## bench regress: {len(regs)} regression(s)" if regs else "## bench regress: no regression")
    lines = [head, "", f"baseline `{r.baseline}`, candidate `{r.candidate}`; "
             f"{PAIRED_TEXT if r.paired else STORED_TEXT} (p < {r.alpha:g}). The p-values are Holm-Bonferroni "
             "adjusted over every check of the comparison, so the chance of any false alarm stays below alpha. A "
             "change the sentinel shows too, or one measured on a busier machine than its baseline, is unclear, "
             "never a regression.", ""]
    if any(c.test == "mann-whitney" and c.figure != "recall" for c in r.checks):
        lines += ["The baseline is one run: its test sees how the trials of one run spread, not how runs do. Keep "
                  "several baseline runs (`bench baseline save RUN --name NAME --append --keep 5`) for alarms that "
                  "hold across runs.", ""]
    lines += _verdict_lines(r)
    if lines[-1]:
        lines.append("")
    lines += _table(r.checks)
    if r.sentinel:
        lines += ["", "### sentinel: how far the machine moved (the fixed reference measurement; not verdicts)", ""]
        lines += _table(r.sentinel, verdicts=False)
    if r.only_baseline or r.only_candidate or r.notes:
        lines.append("")
    for k in r.only_baseline:
        lines.append(f"- only in the baseline (not compared): {_key_text(k)}")
    for k in r.only_candidate:
        lines.append(f"- only in the candidate (not compared): {_key_text(k)}")
    for n in r.notes:
        lines.append(f"- {n}")
    return "\n".join(lines) + "\n"


def _verdict_lines(r: RegressResult) -> list[str]:
    lines = []
    for c in r.regressions:
        lines.append(f"- **{c.figure} regressed** in {_key_text(c.key)}: {_base_text(c)} -> {_fmt(c.candidate)} "
                     f"({c.describe_change()}, tolerance {('%g%%' % (c.tolerance * 100)) if c.relative else c.tolerance}"
                     f", {_evidence(c)})" + (f"; {c.note}" if c.note else ""))
    for c in r.checks:
        if c.verdict == "unclear" and c.worse and c.reason:
            lines.append(f"- {c.figure} looks worse in {_key_text(c.key)} ({c.describe_change()}, {_evidence(c)}) "
                         f"but is not counted: {c.reason}")
        elif c.verdict == "unclear" and c.worse:
            lines.append(f"- {c.figure} looks worse in {_key_text(c.key)} ({c.describe_change()}) but not clearly "
                         f"beyond the noise ({_evidence(c)}): not counted")
        elif c.verdict == "too few trials" and c.worse:
            lines.append(f"- {c.figure} moved {c.describe_change()} in {_key_text(c.key)}, but {c.n_baseline} vs "
                         f"{c.n_candidate} trials can never reach p < {r.alpha:g}: run at least 4 trials a side")
    return lines


def _table(checks: list[FigureCheck], verdicts: bool = True) -> list[str]:
    head = "| configuration | figure | baseline | candidate | change | tolerance | p | p (Holm) |"
    lines = [head + (" verdict |" if verdicts else ""), "|---" * (9 if verdicts else 8) + "|"]
    for c in checks:
        tol = f"{c.tolerance:.0%}" if c.relative else f"{c.tolerance:g}"
        verdict = f"**{c.verdict}**" if c.verdict == "regression" else c.verdict
        if c.reason and c.verdict == "unclear":
            verdict += " (the machine)"
        lines.append(f"| {_key_text(c.key)} | {c.figure} | {_base_text(c)} | {_fmt(c.candidate)} | "
                     f"{c.describe_change()} | {tol} | {c.p:.3g} | {c.p_adjusted:.3g} |"
                     + (f" {verdict} |" if verdicts else ""))
    return lines


def as_json(r: RegressResult) -> str:
    return json.dumps({"baseline": r.baseline, "candidate": r.candidate, "alpha": r.alpha,
                       "regressions": len(r.regressions),
                       "checks": [c.__dict__ for c in r.checks], "only_baseline": r.only_baseline,
                       "only_candidate": r.only_candidate, "notes": r.notes, "paired": r.paired,
                       "sentinel": [c.__dict__ for c in r.sentinel]}, indent=2, default=str)
