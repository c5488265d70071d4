"""Interleaved A/B (`bench ab`): arm B of one run against its arm A, the trials paired by their number (trial i of
each arm ran next to each other), each figure by Yuen's trimmed paired t-test (recall: per query)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd

from bench.analysis.regress.comparison import (
    _apart_note,
    _groups,
    _key_tuple,
    _per_query,
    _require_figures,
    _values,
    apply_conditions,
    apply_holm,
    check_figure,
    match_keys,
    why_apart,
    with_headline,
)
from bench.analysis.regress.config import FigureRule, RegressConfig
from bench.analysis.regress.result import FigureCheck, RegressResult, decide
from bench.analysis.regress.stats import paired_p, trimmed_pairs
from bench.errors import UserError
from bench.results.aggregate import trimmed


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
                       decide(worse, better, p, alpha, floor), worse, 1, None, "paired", p_adjusted=p,
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
        found = []
        for fig, rule in cfg.figures.items():
            qa, qb = (_per_query(a), _per_query(b)) if fig == "recall" else (None, None)
            if qa is not None and qb is not None and qa.shape == qb.shape:
                chk = check_figure(kd, fig, rule, _values(a, fig), _values(b, fig), cfg.alpha, None, (qa, qb))
            else:
                chk = paired_check(kd, fig, rule, _by_trial(a, fig), _by_trial(b, fig), cfg.alpha)
            if chk is not None:
                found.append(chk)
        res.checks += with_headline(found, kd, a, b, res)
    apply_holm(res.checks, cfg.alpha)
    if not res.checks:
        why, hint = why_apart(df[df["ab_arm"] == "A"], df[df["ab_arm"] == "B"], names, name, name)
        raise UserError(f"Nothing in arm B of {name} is comparable with its arm A: {why}", hint)
    apply_conditions(res, cfg, hosts)
    return res
