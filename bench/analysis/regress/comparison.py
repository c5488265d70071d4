"""Comparing a candidate with a baseline: configurations grouped by the key columns they must share, each figure
checked (bench.analysis.regress.stats for the tests), the checks adjusted for their number (Holm) and for the
machine's conditions, and the reason when nothing pairs."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence

import numpy as np
import pandas as pd

from bench.analysis.regress.config import FigureRule, RegressConfig
from bench.analysis.regress.result import Configuration, FigureCheck, RegressResult, decide, key_text
from bench.analysis.regress.stats import (
    holm_adjust,
    mann_whitney_p,
    paired_queries_p,
    prediction_p,
    run_noise_p,
    smallest_p,
)
from bench.errors import UserError
from bench.results import keys
from bench.results.aggregate import HEADLINE_FIGURES, headline, trimmed


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
    one = trimmed(base).median
    b = float(np.mean(runs)) if len(runs) >= 2 else one
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
    verdict = decide(worse, better, p, alpha, floor)
    return FigureCheck(key, figure, b, c, change, tol, relative, p, n_base, n_cand, verdict, worse,
                       len(runs), (min(runs), max(runs)), test, p_adjusted=p, better=better, floor=floor,
                       figure_better=rule.better)


def apply_holm(checks: list[FigureCheck], alpha: float) -> None:
    """Decide every check of one comparison on its Holm-adjusted p: each configuration and figure is one more
    chance of a false alarm, and a nightly job compares dozens."""
    for c, adj in zip(checks, holm_adjust([c.p for c in checks]), strict=True):
        c.p_adjusted = adj
        c.verdict = decide(c.worse, c.better, adj, alpha, c.floor)


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
        why, hint = why_apart(base, cand, names, baseline, candidate)
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
        found = []
        for fig, rule in cfg.figures.items():
            by_run = [_values(g, fig) for _, g in b.groupby("run_id", sort=True)]
            pq = None
            if fig == "recall":
                qb, qc = _per_query(b), _per_query(c)
                if qb is not None and qc is not None and qb.shape == qc.shape:
                    pq = (qb, qc)
            chk = check_figure(kd, fig, rule, _values(b, fig), _values(c, fig), cfg.alpha, by_run, pq)
            if chk is not None:
                found.append(chk)
        out += with_headline(found, kd, b, c, res if list_apart else None)
    return out


def side_headline(g: pd.DataFrame) -> dict:
    """The headline figures of one side's ok trial rows of one configuration, as the summary has them."""
    rows = g.to_dict("records")
    for r in rows:
        if not isinstance(r.get("hdr"), str | bytes):
            r["hdr"] = None
    return headline(rows)


def with_headline(checks: list[FigureCheck], kd: dict, b: pd.DataFrame, c: pd.DataFrame,
                  res: RegressResult | None) -> list[FigureCheck]:
    """The checks with each side's headline figure set (and the configuration recorded in res)."""
    hb, hc = side_headline(b), side_headline(c)
    for chk in checks:
        chk.in_summary = chk.figure in hb
        chk.headline_baseline, chk.headline_candidate = ((_num(hb.get(chk.figure)), _num(hc.get(chk.figure)))
                                                         if chk.in_summary else (chk.baseline, chk.candidate))
    if res is not None and checks:
        res.configurations.append(Configuration(kd, _figures(hb), _figures(hc)))
    return checks


def _num(v: object) -> float | None:
    return None if v is None or (isinstance(v, float) and math.isnan(v)) else float(v)  # type: ignore[arg-type]


def _figures(s: dict) -> dict[str, float | None]:
    return {f: _num(s.get(f)) for f in HEADLINE_FIGURES}


def _apart_note(kd: dict, b: pd.DataFrame, c: pd.DataFrame, res: RegressResult) -> bool:
    """True when the two sides loaded different data (not compared); a note when the engine built another
    index."""
    hb, hc = set(b.get("dataset_hash", pd.Series(dtype=object)).dropna()), set(
        c.get("dataset_hash", pd.Series(dtype=object)).dropna())
    if hb and hc and hb != hc:
        res.notes.append(f"{key_text(kd)}: not compared, the datasets differ (hash {sorted(hb)[0][:12]} "
                         f"against {sorted(hc)[0][:12]})")
        return True
    ib = set(b.get("index_built", pd.Series(dtype=object)).dropna())
    ic = set(c.get("index_built", pd.Series(dtype=object)).dropna())
    if ib and ic and ib != ic:
        res.notes.append(f"{key_text(kd)}: the engine built another index in the candidate than in the "
                         f"baseline ({_built_diff(ib, ic)}); a change may come from that")
    return False


def why_apart(base: pd.DataFrame, cand: pd.DataFrame, names: list[str], baseline: str = "the baseline",
              candidate: str = "the candidate") -> tuple[str, str]:
    """The real reason no configuration pairs, and the fix that fits it: the keys whose values the two sides do
    not share, named in full; for two engines, `bench compare`."""
    apart = []
    for n in names:
        vb, vc = ({_norm(v) for v in df[n].tolist()} if n in df else {None} for df in (base, cand))
        if not vb & vc:
            apart.append((n, vb, vc))
    if not apart:
        return ("no configuration has ok trials on both sides with the same " + ", ".join(names),
                "compare runs of the same workload and backend")
    if len(apart) > 1:  # the content hash only says the data differ, which the other data keys say better
        apart = [a for a in apart if a[0] != "dataset_hash"] or apart

    def show(vals: set) -> str:
        return ", ".join(sorted(str(v) for v in vals))

    def name(n: str) -> str:
        label = keys.get(n).label
        return n if label == n else f"{label} ({n})"

    diff = "; ".join(f"{name(n)} is {show(b)} in the baseline but {show(c)} in the candidate" for n, b, c in apart)
    names_apart = {n for n, _, _ in apart}
    if "backend" in names_apart:
        engines = dict((n, (b, c)) for n, b, c in apart)["backend"]
        return (f"they measured two different engines ({show(engines[0])} against {show(engines[1])}): {diff}",
                f"regress tests one engine against an earlier measurement of itself; to put two engines side "
                f"by side, run `bench compare {' '.join(dict.fromkeys((baseline, candidate)))}`")
    groups = sorted({keys.get(n).group for n in names_apart})
    fix = {"data": "runs of the same dataset", "index": "runs of the same index settings",
           "load": "runs of the same load (k, concurrency, rate)", "variant": "runs of the same search settings",
           "identity": "runs of the same workload and operations", "engine": "runs of the same engine version"}
    return (f"they measured different things: {diff}",
            f"compare {' and '.join(fix[g] for g in groups)}; to pair them on purpose"
            f"{' (an A/B of index settings)' if groups == ['index'] else ''}, add --across "
            f"{' --across '.join(groups)}")
