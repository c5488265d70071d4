"""How well `bench history` finds change points in real night-to-night noise, and how often it finds one that is
not there.

The nights are real: tests/fixtures/history/nights.parquet holds the history rows (summary figures only) of 24
nights of a small nightly suite (benchmarks/history_nights.toml: ann-nightly on faiss, qdrant-edge and pgvector,
with the sentinel), recorded one after another on the shared 2-core development machine with `nice -n 10`
(`--record RUN_DIR...` makes the fixture from the run folders). A replayed history dates them a night apart.

- Flat histories: every series of every figure as recorded, and the same nights in shuffled orders (the noise
  as measured, without the drift of the machine's load over the recording); every change point found is false,
  except the ones the sentinel moved with (reported apart: the machine's, not the engine's).
- Steps: one engine series (P50, P99 or QPS of faiss, qdrant-edge or pgvector) made worse by 5, 10, 20 or 30%
  from a known night on (latency x (1 + s), QPS / (1 + s)), ten histories per size and figure (the recorded
  order and shuffles, the step at nights 8 to 16 of 24): found when a change point for the worse lies within
  one night of the true one; the distance is reported. "flagged after" is how many nights after the step the
  nightly's `bench history changes --last 2` (run on the history up to each night) first exits 1.
- Drifts: the same series made worse by 1% or 2% a night from night 8 on: found when a change for the worse
  is found at or after the drift's start.

    .venv/bin/python benchmarks/history_detection.py [--cases 10] [--smoke] [--json FILE]
    .venv/bin/python benchmarks/history_detection.py --record results/night-01 results/night-02 ...

Prints the tables; exit code 0 when the aims hold (no false change point in the flat histories, every +20% step
found within one night, +10% found in at least 8 of 10 for every figure), 1 otherwise.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from bench.history import changes, series
from bench.history.rows import frame, run_rows
from bench.history.series import Series

FIXTURE = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "history" / "nights.parquet"
ENGINES = ["faiss", "qdrant-edge", "pgvector"]
FIGS = ["p50_us", "p99_us", "qps"]
STEPS = [0.05, 0.10, 0.20, 0.30]
DRIFTS = [0.01, 0.02]
LAST = 2  # the nightly runs `bench history changes --last 2`


def record(folders: list[Path], out: Path = FIXTURE) -> None:
    rows = [r for f in folders for r in run_rows(f)]
    df = frame(rows).sort_values(["started_utc", "series_id"]).reset_index(drop=True)
    out.parent.mkdir(parents=True, exist_ok=True)
    df.to_parquet(out, index=False)
    print(f"{out}: {df['run_id'].nunique()} nights, {len(df)} rows, {out.stat().st_size:,} bytes")


def replay(nights: pd.DataFrame, order: list[str] | None = None, day0: str = "2026-11-01") -> pd.DataFrame:
    """The recorded nights dated a night apart, in the given order of run ids (default: as recorded)."""
    runs = order or list(dict.fromkeys(nights.sort_values("started_utc")["run_id"]))
    rank = {r: i for i, r in enumerate(runs)}
    df = nights[nights["run_id"].isin(rank)].copy()
    when = pd.Timestamp(day0, tz="UTC") + pd.to_timedelta(df["run_id"].map(rank), unit="D") + pd.Timedelta(hours=2)
    df["started_utc"] = when.map(lambda t: t.isoformat())
    df["night"] = when.dt.strftime("%Y-%m-%d")
    return df


def _orders(nights: pd.DataFrame, n: int, seed: int = 11) -> list[list[str]]:
    runs = list(dict.fromkeys(nights.sort_values("started_utc")["run_id"]))
    rng = np.random.default_rng(seed)
    return [runs] + [list(rng.permutation(runs)) for _ in range(n - 1)]


def _target(all_series: list[Series], engine: str, figure: str) -> Series:
    return next(s for s in all_series if s.config.get("backend") == engine and s.config.get("role") is None
                and s.figure == figure)


def worsen(s: Series, start: int, factor_at) -> Series:
    """A copy of s made worse from night `start` on by factor_at(i) (a latency multiplied, a QPS divided)."""
    n = s.nights.copy()
    f = np.array([factor_at(i) if i >= start else 1.0 for i in range(len(n))])
    op = np.divide if s.figure == "qps" else np.multiply
    for col in ("value", "lo", "hi"):
        n[col] = op(n[col].to_numpy(dtype=float), f)
    return Series(s.series_id, s.figure, s.config, n)


def _found(s: Series, others: list[Series]) -> list[changes.Change]:
    return [c for c in changes.find([s, *others]) if c.series is s]


def _flagged_after(s: Series, others: list[Series], start: int) -> int | None:
    """Nights after `start` until the nightly (--last LAST on the history so far) first flags a change for the
    worse that the sentinel did not make; None if never."""
    for end in range(start + 1, len(s.nights) + 1):
        cut = Series(s.series_id, s.figure, s.config, s.nights.iloc[:end].reset_index(drop=True))
        cut_others = [Series(o.series_id, o.figure, o.config, o.nights.iloc[:end].reset_index(drop=True))
                      for o in others]
        found = [c for c in changes.recent(_found(cut, cut_others), LAST) if changes.alarming(c)]
        if found:
            return end - 1 - start
    return None


def flat(nights: pd.DataFrame, orders: list[list[str]]) -> dict:
    false, machine, n_series = [], 0, 0
    for j, order in enumerate(orders):
        built = series.build(replay(nights, order))
        n_series += len(built)
        for c in changes.find(built):
            if c.sentinel_moved or c.series.sentinel:
                machine += 1
            else:
                false.append(f"order {j}: {c.line()}")
    return {"histories": len(orders), "series": n_series, "false": len(false), "machine": machine,
            "lines": false}


def _cases(nights: pd.DataFrame, orders: list[list[str]], figure: str, n: int):
    for j in range(n):
        order = orders[j % len(orders)]
        all_series = series.build(replay(nights, order))
        engine = ENGINES[j % len(ENGINES)]
        s = _target(all_series, engine, figure)
        others = [o for o in all_series if o.config.get("role") == "sentinel" and o.figure == figure]
        start = 8 + (j * 5) % 9
        yield s, others, start, engine


def steps_table(nights: pd.DataFrame, orders: list[list[str]], n: int, online: bool) -> list[dict]:
    out = []
    for figure in FIGS:
        for size in STEPS:
            found, dist, extra, after = 0, [], 0, []
            missed: list[str] = []
            for s, others, start, engine in _cases(nights, orders, figure, n):
                w = worsen(s, start, lambda i, size=size: 1 + size)
                cs = _found(w, others)
                near = [c for c in cs if c.worse and abs(c.step.index - start) <= 1]
                found += bool(near)
                if not near:
                    missed.append(engine)
                if near:
                    dist.append(min(abs(c.step.index - start) for c in near))
                extra += len([c for c in cs if c not in near])
                if online:
                    after.append(_flagged_after(w, others, start))
            out.append({"figure": figure, "size": size, "cases": n, "found": found, "distance": dist,
                        "other_changes": extra, "flagged_after": after, "missed": missed})
    return out


def drifts_table(nights: pd.DataFrame, orders: list[list[str]], n: int) -> list[dict]:
    out = []
    for figure in FIGS:
        for rate in DRIFTS:
            found, at = 0, []
            for s, others, _, _ in _cases(nights, orders, figure, n):
                start = 8
                w = worsen(s, start, lambda i, rate=rate, start=start: (1 + rate) ** (i - start + 1))
                cs = [c for c in _found(w, others) if c.worse and c.step.index >= start]
                found += bool(cs)
                if cs:
                    at.append(min(c.step.index for c in cs) - start)
            out.append({"figure": figure, "rate": rate, "cases": n, "found": found, "nights_after_start": at})
    return out


def _fmt(xs: list) -> str:
    xs = [x for x in xs if x is not None]
    return "-" if not xs else f"{np.mean(xs):.1f} (max {max(xs)})"


def report(res: dict) -> bool:
    f = res["flat"]
    print(f"\nflat histories: {f['histories']} orders x their series = {f['series']} series: "
          f"{f['false']} false change point(s); {f['machine']} found where the sentinel moved too (the machine's)")
    for line in f["lines"][:10]:
        print("   ", line)
    print("\nsteps (made worse at a known night; found = a change for the worse within one night of it)")
    print(f"{'figure':<8} {'step':>5} {'found':>7} {'distance (nights)':>18} {'other':>6} {'flagged after':>16}"
          "  missed (engine)")
    ok = f["false"] == 0
    for r in res["steps"]:
        never = sum(x is None for x in r["flagged_after"])
        print(f"{r['figure']:<8} {r['size']:>+5.0%} {r['found']:>3}/{r['cases']:<3} {_fmt(r['distance']):>18} "
              f"{r['other_changes']:>6} {_fmt(r['flagged_after']):>12}" + (f" ({never} never)" if never else "")
              + ("  " + ", ".join(f"{e} {r['missed'].count(e)}" for e in ENGINES if e in r["missed"])))
        if r["size"] == 0.20 and r["found"] < r["cases"] or r["size"] == 0.10 and r["found"] < 0.8 * r["cases"]:
            ok = False
    print("\ndrifts (worse by a share a night from night 8 on)")
    for r in res["drifts"]:
        print(f"{r['figure']:<8} {r['rate']:>4.0%}/night found {r['found']}/{r['cases']}, first change "
              f"{_fmt(r['nights_after_start'])} nights after the drift began")
    return ok


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--record", nargs="+", type=Path, help="make the fixture from these run folders")
    ap.add_argument("--cases", type=int, default=10)
    ap.add_argument("--smoke", action="store_true", help="a few cases, in seconds")
    ap.add_argument("--json", type=Path)
    a = ap.parse_args()
    if a.record:
        record(a.record)
        return 0
    nights = pd.read_parquet(FIXTURE)
    n = 1 if a.smoke else a.cases
    orders = _orders(nights, 1 if a.smoke else max(n, 10))
    print(f"{nights['run_id'].nunique()} real nights from {FIXTURE.name}; {n} case(s) per step size and figure")
    res = {"flat": flat(nights, orders), "steps": steps_table(nights, orders, n, online=not a.smoke),
           "drifts": drifts_table(nights, orders, n)}
    ok = report(res)
    if a.json:
        a.json.write_text(json.dumps(res, indent=2, default=str))
    return 0 if ok or a.smoke else 1


if __name__ == "__main__":
    sys.exit(main())
