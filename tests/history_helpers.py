"""Histories made from the recorded real nights (tests/fixtures/history/nights.parquet) for the history tests:
replayed a night apart, with a step made worse at a known night, written into a store."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from bench.history.store import ParquetStore

NIGHTS = Path(__file__).parent / "fixtures" / "history" / "nights.parquet"


def replay(order: list[str] | None = None, day0: str = "2026-11-01") -> pd.DataFrame:
    """The recorded nights dated a night apart (in the given order of run ids; default as recorded)."""
    nights = pd.read_parquet(NIGHTS)
    runs = order or list(dict.fromkeys(nights.sort_values("started_utc")["run_id"]))
    rank = {r: i for i, r in enumerate(runs)}
    df = nights[nights["run_id"].isin(rank)].copy()
    when = pd.Timestamp(day0, tz="UTC") + pd.to_timedelta(df["run_id"].map(rank), unit="D") + pd.Timedelta(hours=2)
    df["started_utc"] = when.map(lambda t: t.isoformat())
    df["night"] = when.dt.strftime("%Y-%m-%d")
    return df.sort_values(["started_utc", "series_id"]).reset_index(drop=True)


def runs_in_order(df: pd.DataFrame) -> list[str]:
    return list(dict.fromkeys(df.sort_values("started_utc")["run_id"]))


def worsen(df: pd.DataFrame, backend: str, figure: str, from_night: int, by: float, role: str | None = None
           ) -> pd.DataFrame:
    """Latency x (1 + by) (QPS / (1 + by)) of one configuration from the night at index from_night on."""
    df = df.copy()
    later = set(runs_in_order(df)[from_night:])
    who = (df["backend"] == backend) & (df["role"].isna() if role is None else df["role"] == role)
    rows = who & df["run_id"].isin(later)
    for col in (figure, f"{figure}_lo", f"{figure}_hi"):
        if col in df:
            v = df.loc[rows, col].astype(float)
            df.loc[rows, col] = v / (1 + by) if figure == "qps" else v * (1 + by)
    return df


def write_store(df: pd.DataFrame, folder: Path) -> Path:
    store = ParquetStore(folder)
    for run_id in runs_in_order(df):
        rows = df[df["run_id"] == run_id].astype(object).where(df[df["run_id"] == run_id].notna(), None)
        assert store.add(run_id, rows.to_dict("records"))
    return folder
