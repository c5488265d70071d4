"""`bench regress`: is the candidate worse than the baseline?

For every configuration present in both (backend, workload, op, ef_search, k, concurrency, target_rate) and every
figure named in the config, the trimmed medians of the ok trials are compared. A figure regressed when it moved
the wrong way by more than its tolerance AND the per-trial values differ clearly: a two-sided Mann-Whitney U test
(exact, by enumerating every split, when that is small; scipy's normal approximation otherwise) gives p < alpha.
With 5 against 5 trials the smallest possible p is 2/252 = 0.0079; with 3 against 3 it is 0.1, so fewer than
4 trials a side can never show a regression, and the summary says so.

The trials of one run share its process, its built index and its neighbours on the machine, so they show less
spread than two runs do. A baseline may therefore hold several runs (`bench baseline save --append`): their
trials are pooled for the test, and the change is measured from the nearest edge of the range of the runs'
medians, so a candidate that falls among the baseline runs has not changed.
"""

from __future__ import annotations

import itertools
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from bench.analysis.aggregate import trimmed
from bench.analysis.load import trials_frame
from bench.errors import UserError

MATCH_KEYS = ["backend", "workload", "op", "filter", "fusion", "alpha", "ef_search", "k", "concurrency", "target_rate"]
EXACT_LIMIT = 50_000  # enumerate splits exactly up to this many


class FigureRule(BaseModel):
    model_config = ConfigDict(extra="forbid")
    better: Literal["higher", "lower"]
    relative: float | None = Field(None, ge=0, description="tolerated change as a fraction of the baseline")
    absolute: float | None = Field(None, ge=0, description="tolerated change in the figure's own unit")

    @model_validator(mode="after")
    def _one_tolerance(self) -> FigureRule:
        if (self.relative is None) == (self.absolute is None):
            raise ValueError("give exactly one of 'relative' or 'absolute'")
        return self


class RegressConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    alpha: float = Field(0.05, gt=0, lt=1, description="significance level of the Mann-Whitney U test")
    figures: dict[str, FigureRule] = Field(default_factory=lambda: dict(DEFAULT_FIGURES))


DEFAULT_FIGURES = {
    "qps": FigureRule(better="higher", relative=0.05),
    "p50_us": FigureRule(better="lower", relative=0.10),
    "p99_us": FigureRule(better="lower", relative=0.10),
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
        raise UserError(format_validation_error(e, f"Regress config {path}"), "fix the value in the file") from None


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


def _groups(df: pd.DataFrame) -> dict[tuple, pd.DataFrame]:
    ok = df[df["status"] == "ok"]
    out: dict[tuple, pd.DataFrame] = {}
    for key, g in ok.groupby(MATCH_KEYS, dropna=False, sort=True):
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


def check_figure(key: dict, figure: str, rule: FigureRule, base: list[float], cand: list[float],
                 alpha: float, base_runs: list[list[float]] | None = None) -> FigureCheck | None:
    """Compare one figure of one configuration; None when either side has no value.

    base holds every baseline trial; base_runs the same trials split by baseline run. With several baseline runs
    the change is measured from the nearest edge of the range of their medians (a candidate inside the range
    has changed by 0): run-to-run noise, which the trials of one run cannot show, is then part of the baseline.
    """
    b, c = trimmed(base).median, trimmed(cand).median
    if b is None or c is None:
        return None
    runs = [m for m in (trimmed(r).median for r in (base_runs or [base])) if m is not None] or [b]
    lo, hi = min(runs), max(runs)
    relative = rule.relative is not None
    tol = rule.relative if relative else rule.absolute
    assert tol is not None
    change = _change(c, hi, relative) if c > hi else _change(c, lo, relative) if c < lo else 0.0
    worse = change < -tol if rule.better == "higher" else change > tol
    better = change > tol if rule.better == "higher" else change < -tol
    p = mann_whitney_p(base, cand)
    verdict: Verdict = "within tolerance"
    if worse or better:
        if p < alpha:
            verdict = "regression" if worse else "improvement"
        elif smallest_p(len(base), len(cand)) >= alpha:
            verdict = "too few trials"
        else:
            verdict = "unclear"
    return FigureCheck(key, figure, b, c, change, tol, relative, p, len(base), len(cand), verdict, worse,
                       len(runs), (lo, hi))


def compare_frames(base: pd.DataFrame, cand: pd.DataFrame, cfg: RegressConfig, baseline: str = "baseline",
                   candidate: str = "candidate") -> RegressResult:
    res = RegressResult(baseline, candidate, cfg.alpha)
    for fig in cfg.figures:
        if fig not in base.columns or fig not in cand.columns:
            raise UserError(f"The regress config names the figure '{fig}', which the results do not have",
                            "use columns of trials.parquet such as qps, p50_us, p99_us, p999_us, recall")
    gb, gc = _groups(base), _groups(cand)
    for key in sorted(set(gb) - set(gc), key=str):
        res.only_baseline.append(dict(zip(MATCH_KEYS, key, strict=True)))
    for key in sorted(set(gc) - set(gb), key=str):
        res.only_candidate.append(dict(zip(MATCH_KEYS, key, strict=True)))
    for key in sorted(set(gb) & set(gc), key=str):
        kd = dict(zip(MATCH_KEYS, key, strict=True))
        b, c = gb[key], gc[key]
        hb, hc = set(b.get("dataset_hash", pd.Series(dtype=object)).dropna()), set(
            c.get("dataset_hash", pd.Series(dtype=object)).dropna())
        if hb and hc and hb != hc:
            res.notes.append(f"{_key_text(kd)}: not compared, the datasets differ (hash {sorted(hb)[0][:12]} "
                             f"against {sorted(hc)[0][:12]})")
            continue
        ib = set(b.get("index_built", pd.Series(dtype=object)).dropna())
        ic = set(c.get("index_built", pd.Series(dtype=object)).dropna())
        if ib and ic and ib != ic:
            res.notes.append(f"{_key_text(kd)}: the engine built another index in the candidate than in the "
                             f"baseline ({_built_diff(ib, ic)}); a change may come from that")
        for fig, rule in cfg.figures.items():
            by_run = [_values(g, fig) for _, g in b.groupby("run_id", sort=True)]
            chk = check_figure(kd, fig, rule, _values(b, fig), _values(c, fig), cfg.alpha, by_run)
            if chk is not None:
                res.checks.append(chk)
    if not res.checks:
        raise UserError(f"Nothing in {candidate} is comparable with {baseline} (no configuration with the same "
                        "backend, workload, op, ef_search, k, concurrency and target rate has figures in both)",
                        "compare runs of the same workload and backend")
    return res


def regress(baseline: str | Path, candidate: str | Path, config: str | Path | None = None) -> RegressResult:
    cfg = load_config(config)
    base = trials_frame([baseline])
    cand = trials_frame([candidate])
    return compare_frames(base, cand, cfg, str(baseline), str(candidate))


# -- the summary ------------------------------------------------------------------------------------------

def _key_text(k: dict) -> str:
    parts = [f"{k['backend']} {k['workload']} {k['op']}"]
    for name, label in (("ef_search", "ef"), ("k", "k"), ("concurrency", "conc"), ("target_rate", "rate")):
        if k.get(name) is not None:
            parts.append(f"{label}={k[name]}")
    return " ".join(parts)


def _fmt(v: float) -> str:
    if v == 0 or 0.01 <= abs(v) < 1e7:
        return f"{v:,.4g}" if abs(v) < 10 else f"{v:,.0f}"
    return f"{v:.3g}"


def _base_text(c: FigureCheck) -> str:
    if c.baseline_runs > 1 and c.baseline_range is not None:
        return f"{_fmt(c.baseline)} ({c.baseline_runs} runs: {_fmt(c.baseline_range[0])}-{_fmt(c.baseline_range[1])})"
    return _fmt(c.baseline)


def render_markdown(r: RegressResult) -> str:
    regs = r.regressions
    head = (f"## bench regress: {len(regs)} regression(s)" if regs else "## bench regress: no regression")
    lines = [head, "", f"baseline `{r.baseline}`, candidate `{r.candidate}`; a regression is a change for the "
             f"worse beyond the tolerance that a two-sided Mann-Whitney U test on the trials also finds clear "
             f"(p < {r.alpha:g}); with several baseline runs, the change counts from the edge of their range.", ""]
    for c in regs:
        lines.append(f"- **{c.figure} regressed** in {_key_text(c.key)}: {_base_text(c)} -> {_fmt(c.candidate)} "
                     f"({c.describe_change()}, tolerance {('%g%%' % (c.tolerance * 100)) if c.relative else c.tolerance}"
                     f", p = {c.p:.3g}, {c.n_baseline} vs {c.n_candidate} trials)")
    for c in r.checks:
        if c.verdict == "unclear" and c.worse:
            lines.append(f"- {c.figure} looks worse in {_key_text(c.key)} ({c.describe_change()}) but the trials "
                         f"overlap too much to say (p = {c.p:.3g}): not counted")
        elif c.verdict == "too few trials" and c.worse:
            lines.append(f"- {c.figure} moved {c.describe_change()} in {_key_text(c.key)}, but {c.n_baseline} vs "
                         f"{c.n_candidate} trials can never reach p < {r.alpha:g}: run at least 4 trials a side")
    if len(lines) > 4:
        lines.append("")
    lines += ["| configuration | figure | baseline | candidate | change | tolerance | p | verdict |",
              "|---|---|---|---|---|---|---|---|"]
    for c in r.checks:
        tol = f"{c.tolerance:.0%}" if c.relative else f"{c.tolerance:g}"
        verdict = f"**{c.verdict}**" if c.verdict == "regression" else c.verdict
        lines.append(f"| {_key_text(c.key)} | {c.figure} | {_base_text(c)} | {_fmt(c.candidate)} | "
                     f"{c.describe_change()} | {tol} | {c.p:.3g} | {verdict} |")
    if r.only_baseline or r.only_candidate or r.notes:
        lines.append("")
    for k in r.only_baseline:
        lines.append(f"- only in the baseline (not compared): {_key_text(k)}")
    for k in r.only_candidate:
        lines.append(f"- only in the candidate (not compared): {_key_text(k)}")
    for n in r.notes:
        lines.append(f"- {n}")
    return "\n".join(lines) + "\n"


def as_json(r: RegressResult) -> str:
    return json.dumps({"baseline": r.baseline, "candidate": r.candidate, "alpha": r.alpha,
                       "regressions": len(r.regressions),
                       "checks": [c.__dict__ for c in r.checks], "only_baseline": r.only_baseline,
                       "only_candidate": r.only_candidate, "notes": r.notes}, indent=2, default=str)
