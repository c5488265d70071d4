"""What the machine did, for `bench regress`: the sentinel and the host load, so that a change the machine made
is not reported as the engine's.

- The sentinel: a fixed reference measurement a suite records in every run (`sentinel = true` in the suite file:
  the null backend and faiss on a small fixed index, rows with `role = "sentinel"`, a key of
  bench/results/keys.py, so they pair only with each other). Between baseline and candidate it moves only when
  the machine (or the harness) did. Its drift per figure is the mean of its configurations' relative changes. An
  engine's regression that is within tolerance once the sentinel's drift is divided out, (1 + change) /
  (1 + drift) - 1, is "unclear": the machine, not the engine.
- The host load: each trial records the cores that processes other than bench and the engine used
  (`host_other_cores`) and whether that disturbed it (`host_busy`, bench.metrics.host). A regression measured
  on a busier machine than its baseline (other processes used BUSIER_CORES more on average, or a larger share
  of the trials was busy) is "unclear", with the figures that show it, never "regression".
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

SENTINEL = "sentinel"
BUSIER_CORES = 0.25  # other processes' mean cores more in the candidate than in the baseline
BUSIER_SHARE = 0.4  # or this much larger a share of busy trials (2 of 5 more)


def split_sentinel(df: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The engine's rows and the sentinel's rows (role = "sentinel")."""
    if "role" not in df:
        return df, df.iloc[0:0]
    is_s = df["role"] == SENTINEL
    return df[~is_s], df[is_s]


@dataclass(frozen=True)
class Host:
    other_cores: float | None  # mean over the ok trials
    busy: int
    trials: int

    def text(self) -> str:
        cores = "?" if self.other_cores is None else f"{self.other_cores:.2f}"
        return f"{cores} cores, {self.busy}/{self.trials} trials busy"


def host_of(g: pd.DataFrame) -> Host:
    ok = g[g["status"] == "ok"] if "status" in g else g
    cores = [float(v) for v in ok.get("host_other_cores", pd.Series(dtype=float)) if v is not None
             and not pd.isna(v)]
    busy = int(sum(bool(v) for v in ok.get("host_busy", pd.Series(dtype=object)) if v is not None
                   and not pd.isna(v)))
    return Host(float(np.mean(cores)) if cores else None, busy, len(ok))


def busier(base: Host, cand: Host, cores: float = BUSIER_CORES) -> str | None:
    """Why the candidate ran on a busier machine than the baseline, or None."""
    more_cores = (base.other_cores is not None and cand.other_cores is not None
                  and cand.other_cores - base.other_cores >= cores)
    share = lambda h: h.busy / h.trials if h.trials else 0.0  # noqa: E731
    more_busy = share(cand) - share(base) >= BUSIER_SHARE
    if not (more_cores or more_busy):
        return None
    return (f"the candidate ran on a busier machine than the baseline (other processes: {cand.text()}, against "
            f"{base.text()})")


def drift(sentinel_checks: Sequence) -> dict[str, float]:
    """The sentinel's drift per relative figure: the geometric mean of its configurations' ratios, minus 1."""
    by: dict[str, list[float]] = {}
    for c in sentinel_checks:
        if c.relative and math.isfinite(c.change) and c.change > -1:
            by.setdefault(c.figure, []).append(math.log1p(c.change))
    return {f: math.expm1(float(np.mean(v))) for f, v in by.items()}


def machine_reason(check, moved: dict[str, float]) -> str | None:
    """Why a regression is the machine's by the sentinel, or None (the note on the check is set either way)."""
    d = moved.get(check.figure)
    if d is None or not check.relative or d <= -1:
        return None
    adjusted = (1 + check.change) / (1 + d) - 1
    worse = adjusted < -check.tolerance if check.figure_better == "higher" else adjusted > check.tolerance
    if worse:
        check.note = f"the sentinel moved {d:+.1%}; beyond it the change is {adjusted:+.1%}"
        return None
    return (f"the sentinel moved {d:+.1%} too (the change beyond it is {adjusted:+.1%}, within tolerance): the "
            "machine, not the engine")


BUSY_RUN_SHARE = 0.2  # a run with more than this share of busy trials does not join a rolling baseline


def busy_run(df: pd.DataFrame) -> str | None:
    """Why a run should not join a rolling baseline because the machine was busy during it (more than
    BUSY_RUN_SHARE of the engines' trials disturbed by other processes), or None. A baseline night measured in a
    burst of load widens the baseline's spread for as long as it is kept, and hides the regressions of the nights
    compared with it."""
    engines, _ = split_sentinel(df)
    h = host_of(engines)
    if not h.trials or h.busy / h.trials <= BUSY_RUN_SHARE:
        return None
    return f"the machine was busy during it ({h.text()})"
