"""The answer first: who is ahead, by how much, at which recall, and whether it is beyond the trials' spread.

Computed from the headline figures of the summary rows (`bench.results.aggregate.summarize`: QPS and recall are
trimmed medians of the ok trials, latency percentiles from their merged histogram) and nothing else, so a verdict
never shows a number that the tables under it do not.

- ANN (rows with recall): each engine's rows over ef_search form a recall/QPS frontier (the Pareto-optimal points,
  as ann-benchmarks draws them). At each recall level (0.90, 0.95, 0.99 unless told) an engine's best QPS is read
  off its frontier: the fastest point at or above the level, or, between two frontier points that straddle it,
  linearly interpolated (in recall) between them and marked `~`; P99 and the spread are read the same way. An
  engine whose frontier stays below the level "does not reach" it.
- Everything else (YCSB, streaming, filtered rows without recall): QPS and P99 per operation side by side.
- Open loop (an offered rate): throughput is the offered rate, so the lower P99 leads.
- The leader's lead over each other engine is `leader / other - 1` ("+10%"); it is "beyond noise" when the two
  engines' spreads (lowest to highest ok trial, `_lo`/`_hi`) do not overlap, else "within noise".
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

import pandas as pd

from bench.results import keys

LEVELS = (0.90, 0.95, 0.99)


@dataclass(frozen=True)
class Point:
    """One engine's figures at one verdict level."""

    qps: float | None
    qps_lo: float | None
    qps_hi: float | None
    p99_us: float | None
    p99_lo: float | None
    p99_hi: float | None
    recall: float | None = None
    interpolated: bool = False
    at: str = ""  # the configuration it comes from ("ef=64", or "between ef=32 and ef=64")


@dataclass
class Entry:
    series: str
    point: Point | None  # None: does not reach the level
    best_recall: float | None = None  # its highest recall, said when it does not reach the level
    lead: float | None = None  # the leader's lead over this engine (leader / this - 1, or for P99 1 - leader/this)
    noise: str | None = None  # "beyond noise" | "within noise" (None for the leader)


@dataclass
class Verdict:
    table: str  # the table's title: workload on dataset
    context: str  # what is held equal: "search, c=1"
    level: str  # "recall >= 0.95", or the operation
    entries: list[Entry] = field(default_factory=list)  # leader first
    by: str = "qps"  # "qps" (higher leads) or "p99" (open loop: lower leads)

    @property
    def leader(self) -> str | None:
        first = self.entries[0] if self.entries else None
        return first.series if first is not None and first.point is not None else None

    def text(self) -> str:
        """One line: the level, the leader with its figures, its lead over each other engine."""
        reached = [e for e in self.entries if e.point is not None]
        missing = [e for e in self.entries if e.point is None]
        if not reached and "recall >=" not in self.level:
            parts = ["no figure"]
        elif not reached:
            parts = [f"no engine reaches it ({_best(missing)})"]
        elif len(reached) == 1:
            lead = reached[0]
            parts = [f"{lead.series} {_figures(lead.point)}" if not missing
                     else f"{lead.series} leads with {_figures(lead.point)}"]
        else:
            lead = reached[0]
            parts = [f"{lead.series} leads with {_figures(lead.point)}"]
            for e in reached[1:]:
                word = "lower P99 than" if self.by == "p99" else "over" if (e.lead or 0) < 1 else "the QPS of"
                parts.append(f"{_pct(e.lead)} {word} {e.series} ({_figures(e.point)}), {e.noise}")
        if "recall >=" in self.level:
            parts += [f"{e.series} does not reach {self.level.split()[-1]} (best recall {_f4(e.best_recall)})"
                      for e in missing if reached]
        else:
            parts += [f"{e.series} has no figure here" for e in missing if reached]
        return f"{self.level}: " + "; ".join(parts)

    def as_dict(self) -> dict:
        d = asdict(self)
        d["leader"] = self.leader
        d["text"] = self.text()
        return d


def _f4(v: float | None) -> str:
    return "-" if v is None else f"{v:.4f}"


def _best(entries: Sequence[Entry]) -> str:
    return ", ".join(f"{e.series} best recall {_f4(e.best_recall)}" for e in entries)


def _pct(v: float | None) -> str:
    """A lead as a percentage ("+10%"), or as a factor past +100% ("12.5x")."""
    if v is None:
        return "?"
    if v >= 1:
        return f"{1 + v:,.1f}x"
    return f"{v:+.0%}" if abs(v) >= 0.01 else f"{v:+.1%}"


def _figures(p: Point | None) -> str:
    if p is None:
        return "-"
    mark = "~" if p.interpolated else ""
    qps = "-" if p.qps is None else f"{mark}{p.qps:,.0f} QPS"
    p99 = "P99 - (too few samples)" if p.p99_us is None else f"P99 {mark}{p.p99_us:,.0f} us"
    return f"{qps}, {p99}"


def _num(v: object) -> float | None:
    if v is None or v is pd.NA:
        return None
    try:
        f = float(v)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return None if math.isnan(f) else f


def _point(r: dict, at: str = "") -> Point:
    return Point(_num(r.get("qps")), _num(r.get("qps_lo")), _num(r.get("qps_hi")), _num(r.get("p99_us")),
                 _num(r.get("p99_us_lo")), _num(r.get("p99_us_hi")), _num(r.get("recall")), False, at)


def frontier(rows: Sequence[dict]) -> list[dict]:
    """The Pareto-optimal rows (no other row has both more recall and more QPS), by recall rising."""
    pts = sorted((r for r in rows if _num(r.get("recall")) is not None and _num(r.get("qps")) is not None),
                 key=lambda r: (-_num(r["recall"]), -_num(r["qps"])))  # type: ignore[operator]
    out, best = [], -math.inf
    for r in pts:  # from the highest recall down: keep a row only when it is faster than every row above it
        if _num(r["qps"]) > best:  # type: ignore[operator]
            out.append(r)
            best = _num(r["qps"])  # type: ignore[assignment]
    return out[::-1]


def _lerp(a: float | None, b: float | None, t: float) -> float | None:
    return None if a is None or b is None else a + (b - a) * t


def at_recall(rows: Sequence[dict], level: float) -> Point | None:
    """The best QPS at recall >= level on the rows' frontier (interpolated between the two frontier points that
    straddle the level), or None when no row reaches it."""
    front = frontier(rows)
    above = [r for r in front if _num(r["recall"]) >= level - 1e-12]  # type: ignore[operator]
    if not above:
        return None
    hi = above[0]  # the fastest point at or above the level (the frontier's QPS falls as recall rises)
    below = [r for r in front if _num(r["recall"]) < level - 1e-12]  # type: ignore[operator]
    if not below:
        return _point(hi, _label(hi))
    lo = below[-1]  # the frontier point just under the level, faster than `hi`
    r0, r1 = _num(lo["recall"]), _num(hi["recall"])
    t = (level - r0) / (r1 - r0) if r1 != r0 else 1.0  # type: ignore[operator]
    a, b = _point(lo), _point(hi)
    return Point(_lerp(a.qps, b.qps, t), _lerp(a.qps_lo, b.qps_lo, t), _lerp(a.qps_hi, b.qps_hi, t),
                 _lerp(a.p99_us, b.p99_us, t), _lerp(a.p99_lo, b.p99_lo, t), _lerp(a.p99_hi, b.p99_hi, t), level,
                 True, f"between {_label(lo)} and {_label(hi)}")


def _label(r: dict) -> str:
    return keys.label(r, ["ef_search"]) or "default"


def _overlap(a_lo: float | None, a_hi: float | None, b_lo: float | None, b_hi: float | None) -> bool | None:
    if None in (a_lo, a_hi, b_lo, b_hi):
        return None
    return not (a_lo > b_hi or b_lo > a_hi)  # type: ignore[operator]


def _rank(level: str, context: str, table: str, pts: dict[str, Point | None], best: dict[str, float | None],
          by: str) -> Verdict:
    reached = [(s, p) for s, p in pts.items() if p is not None and (p.qps if by == "qps" else p.p99_us) is not None]
    if by == "qps":
        reached.sort(key=lambda sp: -sp[1].qps)  # type: ignore[operator]
    else:
        reached.sort(key=lambda sp: sp[1].p99_us)  # type: ignore[arg-type, return-value]
    entries = []
    for i, (s, p) in enumerate(reached):
        e = Entry(s, p)
        if i:
            lead = reached[0][1]
            if by == "qps":
                e.lead = (lead.qps / p.qps - 1) if p.qps else None  # type: ignore[operator]
                ov = _overlap(lead.qps_lo, lead.qps_hi, p.qps_lo, p.qps_hi)
            else:
                e.lead = (1 - lead.p99_us / p.p99_us) if p.p99_us else None  # type: ignore[operator]
                ov = _overlap(lead.p99_lo, lead.p99_hi, p.p99_lo, p.p99_hi)
            e.noise = "spread unknown" if ov is None else "within noise" if ov else "beyond noise"
        entries.append(e)
    entries += [Entry(s, None, best.get(s)) for s, p in pts.items() if s not in dict(reached)]
    return Verdict(table, context, level, entries, by)


def _series_names(g: pd.DataFrame) -> pd.Series:
    """A short name per row's series (engine): the backend, with its index, run or tool only where they tell two
    of its series apart."""
    idx_keys = [k for k in keys.names("index") if k in g]
    index_text = g.apply(lambda r: keys.label(r.to_dict(), idx_keys), axis=1) if len(g) else pd.Series(dtype=str)
    out = pd.Series("", index=g.index, dtype=object)
    for backend, b in g.groupby("backend", dropna=False, sort=False):
        several_index = index_text[b.index].nunique() > 1
        tools = b["source_tool"] if "source_tool" in b else pd.Series(None, index=b.index)
        arms = b["ab_arm"] if "ab_arm" in b else pd.Series(None, index=b.index)
        per_config = pd.DataFrame({"i": index_text[b.index], "t": tools.astype(str), "a": arms.astype(str)})
        several_runs = any(b.loc[grp.index, "run_id"].nunique() > 1
                           for _, grp in per_config.groupby(["i", "t", "a"], dropna=False))
        for i, r in b.iterrows():
            name = str(backend)
            if several_index:
                name += f" ({index_text[i]})"
            if isinstance(r.get("ab_arm"), str) and r["ab_arm"]:
                name += f" arm {r['ab_arm']}"
            if several_runs:
                name += f" (run {str(r['run_id'])[-6:]})"
            if isinstance(r.get("source_tool"), str) and r["source_tool"]:
                name += f" ({r['source_tool']})"
            out[i] = name
    return out


CONTEXT_KEYS = ["concurrency", "target_rate", "k"]


def _context(r: dict, config: list[str]) -> str:
    return keys.label(r, ["concurrency", "target_rate", *config]) or "default load"


def verdicts(figures: pd.DataFrame, title_of: dict, levels: Sequence[float] = LEVELS) -> list[Verdict]:
    """The verdict lines of every table: `figures` is compare's figures frame, `title_of` maps its `table`
    column to the table's title."""
    out: list[Verdict] = []
    own = figures[figures["qps"].notna()] if "qps" in figures else figures.iloc[0:0]
    config = [k for k in keys.names("variant") if k != "ef_search" and k in own]
    for table, g in own.groupby("table", sort=True, dropna=False):
        g = g.assign(_series=_series_names(g))
        ctx_cols = [c for c in CONTEXT_KEYS + config if c in g]
        for _, cg in g.groupby(ctx_cols, dropna=False, sort=False) if ctx_cols else [(None, g)]:
            context = _context(cg.iloc[0].to_dict(), config)
            for op, og in sorted(cg.groupby("op", dropna=False, sort=True), key=lambda t: t[0] != "total"):
                out += _op_verdicts(og, title_of.get(table, str(table)), context, str(op), levels)
    return out


def _op_verdicts(og: pd.DataFrame, title: str, context: str, op: str, levels: Sequence[float]) -> list[Verdict]:
    series = {str(k): s.to_dict("records") for k, s in og.groupby("_series", sort=True)}
    open_loop = _num(og.iloc[0].get("target_rate")) is not None
    by = "p99" if open_loop else "qps"
    with_recall = all(any(_num(r.get("recall")) is not None for r in rows) for rows in series.values())
    if with_recall and not open_loop:
        best: dict[str, float | None] = {s: max((_num(r.get("recall")) or 0.0) for r in rows)
                                         for s, rows in series.items()}
        head = "" if op == "search" else f"{op} "
        return [_rank(f"{head}recall >= {lv:.2f}", context, title,
                      {s: at_recall(rows, lv) for s, rows in series.items()}, best, by) for lv in levels]
    efs = sorted({_num(r.get("ef_search")) for rows in series.values() for r in rows}, key=lambda v: v or 0)
    out = []
    for ef in efs:
        pts = {s: next((_point(r, _label(r)) for r in rows if _num(r.get("ef_search")) == ef), None)
               for s, rows in series.items()}
        level = op + (f" ef={ef:g}" if len(efs) > 1 and ef is not None else "")
        out.append(_rank(level, context, title, pts, {}, by))
    return out


def lines(vs: Sequence[Verdict]) -> list[str]:
    """The verdicts as text: a heading per table and context, one line per level (levels whose answer is the same
    point share a line: "recall >= 0.90, 0.95: ...")."""
    out: list[str] = []
    last_head, last_body, levels = None, None, []  # type: ignore[var-annotated]
    for v in vs:
        head = f"{v.table}, {v.context}"
        body = v.text().split(": ", 1)[1]
        if head == last_head and body == last_body and "recall >=" in v.level and levels:
            levels.append(v.level.split()[-1])
            out[-1] = f"  {levels[0]}, {', '.join(levels[1:])}: {body}"
            continue
        if head != last_head:
            out.append(head)
        levels = [v.level] if "recall >=" in v.level else []
        out.append(f"  {v.text()}")
        last_head, last_body = head, body
    return out


def parse_levels(text: str | None) -> list[float]:
    """`--at-recall 0.9,0.95`: the recall levels, each in (0, 1]."""
    if not text:
        return list(LEVELS)
    from bench.errors import UserError

    try:
        levels = [float(t) for t in text.split(",") if t.strip()]
    except ValueError:
        raise UserError(f"--at-recall {text!r} is not a list of numbers", "write e.g. --at-recall 0.9,0.95,0.99") from None
    if not levels or any(not 0 < lv <= 1 for lv in levels):
        raise UserError(f"--at-recall {text!r}: each level must be above 0 and at most 1",
                        "write e.g. --at-recall 0.9,0.95,0.99")
    return levels
