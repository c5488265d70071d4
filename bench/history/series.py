"""Series: one configuration's values of one figure, night by night (ordered by the run's start), busy nights
kept and marked."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from bench.history.rows import FIGURES, SPREAD, series_keys
from bench.results import keys


@dataclass
class Series:
    series_id: str
    figure: str
    config: dict  # the series key values
    nights: pd.DataFrame  # one row per night: run_id, night, started_utc, git_commit, versions, host, busy, value

    @property
    def values(self) -> np.ndarray:
        return self.nights["value"].to_numpy(dtype=float)

    @property
    def sentinel(self) -> bool:
        return self.config.get("role") == "sentinel"

    def label(self) -> str:
        c = self.config
        who = " ".join(str(v) for v in (c.get("backend"), c.get("workload"), c.get("op")) if v)
        extra = [c.get("dataset_name"), c.get("source_tool") and f"from {c['source_tool']}",
                 c.get("role") == "sentinel" and "sentinel", keys.label(c) or None]
        return " ".join([who] + [str(x) for x in extra if x])


NIGHT_COLUMNS = ["run_id", "night", "started_utc", "git_commit", "harness_version", "backend_server_version",
                 "backend_client_version", "host_other_cores", "host_load1", "busy"]


def _config(first: pd.Series) -> dict:
    out = {}
    for k in series_keys():
        v = first.get(k)
        out[k] = None if v is None or (not isinstance(v, str) and pd.isna(v)) else v
    return out


def build(history: pd.DataFrame, figures: list[str] | None = None) -> list[Series]:
    """Every series of the history with at least one value, per configuration and figure."""
    chosen = figures or [f.name for f in FIGURES]
    out: list[Series] = []
    if history.empty:
        return out
    history = history.sort_values(["started_utc", "run_id"], na_position="first")
    for sid, g in history.groupby("series_id", sort=False):
        g = g.drop_duplicates("run_id", keep="first")
        config = _config(g.iloc[0])
        for fig in chosen:
            v = pd.to_numeric(g[fig], errors="coerce")
            if v.notna().sum() == 0:
                continue
            nights = g[NIGHT_COLUMNS].astype(object).where(g[NIGHT_COLUMNS].notna(), None)
            nights["value"] = v
            for side in ("lo", "hi"):
                col = f"{fig}_{side}"
                nights[side] = pd.to_numeric(g[col], errors="coerce") if fig in SPREAD and col in g else np.nan
            nights = nights[nights["value"].notna()].reset_index(drop=True)
            out.append(Series(str(sid), fig, config, nights))
    return out
