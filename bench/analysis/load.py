"""Reading result folders and parquet files into pyarrow tables and pandas frames.

A results argument is a run folder (`results/<run-id>/`, holding `trials.parquet` and `summary.parquet`, or a
suite's `<backend>.<workload>.trials.parquet` files), a folder of run folders (`results/`, a baseline), or one
parquet file. Every trials file has a summary file beside it; either may be named.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Literal

import pandas as pd
import pyarrow as pa
from hdrh.histogram import HdrHistogram

from bench.errors import UserError
from bench.metrics import hdr
from bench.results import integrity, keys

Kind = Literal["trials", "summary"]
DEFAULT_RESULTS = Path("results")
BASELINES_DIR = Path("baselines")


def _is_kind(p: Path, kind: Kind) -> bool:
    return p.name == f"{kind}.parquet" or p.name.endswith(f".{kind}.parquet")


def _sibling(p: Path, kind: Kind) -> Path:
    for other in ("trials", "summary"):
        if _is_kind(p, other):  # type: ignore[arg-type]
            return p.with_name(p.name[: -len(f"{other}.parquet")] + f"{kind}.parquet")
    return p


def find_files(paths: Sequence[str | Path] | None, kind: Kind) -> list[Path]:
    """The `kind` parquet files named by paths (folders are searched recursively); default: results/."""
    given = [Path(p) for p in paths] if paths else [DEFAULT_RESULTS]
    found: list[Path] = []
    for p in given:
        if p.is_dir():
            hits = sorted(x for x in p.rglob(f"*{kind}.parquet") if _is_kind(x, kind) and not x.name.startswith("."))
            _warn_unpaired(p)
            if not hits:
                raise UserError(f"No {kind}.parquet file was found under {p}",
                                "give a run folder made by `bench run` or `bench suite`, or a parquet file")
            found += hits
        elif p.is_file():
            if p.suffix != ".parquet":
                raise UserError(f"{p} is not a parquet file", "give a run folder or a trials/summary parquet file")
            target = _sibling(p, kind)
            if not target.is_file():
                raise UserError(f"{p} has no {target.name} beside it",
                                "give the run folder that `bench run` wrote, with both parquet files")
            found.append(target)
        else:
            hint = "run `bench run` first, or give a folder under results/" if not paths else "check the path"
            raise UserError(f"The results path {p} does not exist", hint)
    seen: set[Path] = set()
    return [f for f in found if not (f.resolve() in seen or seen.add(f.resolve()))]


def _warn_unpaired(folder: Path) -> None:
    """Say which runs or suite cells under `folder` lack one of their two parquet files (a damaged or interrupted
    write): they are left out of what reads the other kind, and a reader must know."""
    for kind, other in (("trials", "summary"), ("summary", "trials")):
        for x in folder.rglob(f"*{kind}.parquet"):
            if _is_kind(x, kind) and not x.name.startswith(".") and not _sibling(x, other).is_file():  # type: ignore[arg-type]
                print(f"warning: {x} has no {_sibling(x, other).name} beside it; that run is left out of what "  # type: ignore[arg-type]
                      f"reads {other} files", file=sys.stderr)


def read_table(path: Path) -> pa.Table:
    """One parquet file, read whole into memory first (a run that replaces it meanwhile, by rename, cannot hand
    the reader the footer of one version and the pages of the next), checked against its checksum file before
    pyarrow parses a byte of it, and its pages against their CRCs (bench.results.integrity)."""
    return integrity.read_parquet(path)


def verify_run(path: Path) -> None:
    """The files of the run `path` (a trials or summary file) belongs to, checked against their checksums: its
    other parquet file and its run.json (a damaged one is a DamagedFile, exit 2)."""
    prefix = path.name[: -len("trials.parquet")] if _is_kind(path, "trials") else path.name[: -len("summary.parquet")]
    for name in ("trials.parquet", "summary.parquet", "run.json"):
        other = path.with_name(prefix + name)
        if other != path:
            integrity.verify(other)


def read_tables(paths: Sequence[str | Path] | None, kind: Kind) -> pa.Table:
    """All `kind` rows under paths, as one table (files of older schema versions are promoted, not refused)."""
    files = find_files(paths, kind)
    tables = []
    for f in files:
        try:
            t = read_table(f)
            verify_run(f)
        except UserError as e:
            if len(files) == 1 or isinstance(e, integrity.DamagedFile):  # damage is never passed over
                raise
            print(f"warning: {e.sentence()}; left out of the figures", file=sys.stderr)  # the others still count
            continue
        missing = [k for k in ("run_id", "backend", "workload", "op") if k not in t.column_names]
        if missing:
            raise UserError(f"The file {f} is not a bench {kind} file (no column {missing[0]})",
                            "give a file written by `bench run`")
        tables.append(t.replace_schema_metadata(None))
    if not tables:
        raise UserError(f"No {kind}.parquet file under {', '.join(map(str, paths or [DEFAULT_RESULTS]))} can be read",
                        "rerun the runs, or give other results")
    return pa.concat_tables(tables, promote_options="permissive")


def trials_frame(paths: Sequence[str | Path] | None = None, ok_only: bool = False) -> pd.DataFrame:
    """Every trial row as a pandas frame (ok_only: only trials with status "ok")."""
    df = _withheld(_with_keys(read_tables(paths, "trials").to_pandas()))
    if ok_only:
        df = df[df["status"] == "ok"].reset_index(drop=True)
    return df


def summary_frame(paths: Sequence[str | Path] | None = None) -> pd.DataFrame:
    """Every summary row (trimmed medians with `_lo`/`_hi` spreads) as a pandas frame."""
    return _withheld(_with_keys(read_tables(paths, "summary").to_pandas()))


def _withheld(df: pd.DataFrame) -> pd.DataFrame:
    """Withhold the percentiles a row's merged histogram has too few samples for (bench.metrics.hdr.withhold),
    with their spreads, and name them in `percentiles_withheld`: rows written before bench withheld any (one
    pass of 100 queries once showed a P99.9) read as today's do; today's rows are unchanged."""
    if "hdr" not in df:
        return df
    if "percentiles_withheld" not in df:
        df["percentiles_withheld"] = None
    df["percentiles_withheld"] = df["percentiles_withheld"].astype(object)
    for i, enc in df["hdr"].items():
        if not isinstance(enc, str) or not enc:
            continue
        n = merge_hdr([enc]).get_total_count()
        named = [f for f in str(df.at[i, "percentiles_withheld"] or "").split(",") if f]
        for field, p in hdr.PERCENTILE_FIELDS.items():
            if n >= hdr.min_samples(p) or field not in df:
                continue
            for col in (field, f"{field}_lo", f"{field}_hi"):
                if col in df:
                    df[col] = df[col].astype(object)
                    df.at[i, col] = None
            if field not in named:
                named.append(field)
        df.at[i, "percentiles_withheld"] = ",".join(named) or None
    return df


def _with_keys(df: pd.DataFrame) -> pd.DataFrame:
    """Results written before a key column existed (filter, fusion, the index axes, ...) get every registered key,
    the index axes read from their `index_built`/`index_requested` JSON where it holds them, so groupings hold."""
    for name in keys.names():
        if name not in df:
            df[name] = None
    for col, param in (("index_m", "m"), ("index_ef_construction", "ef_construction"), ("index_kind", "kind")):
        missing = df[col].isna()
        if not missing.any():
            continue
        built = df["index_built"] if "index_built" in df else pd.Series([None] * len(df), index=df.index)
        asked = df["index_requested"] if "index_requested" in df else pd.Series([None] * len(df), index=df.index)
        found = [_index_param(b, r, param) for b, r in zip(built[missing], asked[missing], strict=True)]
        if any(v is not None for v in found):
            df[col] = df[col].astype(object)
            df.loc[missing, col] = found
    return df


def _index_param(built: object, requested: object, name: str) -> object:
    """An index parameter from older files' JSON columns: as built where the engine reported it, else as asked."""
    import json

    for text, path in ((built, ("params", name) if name != "kind" else ("kind",)), (requested, (name,))):
        try:
            v = json.loads(text) if isinstance(text, str) else None
        except ValueError:
            v = None
        for part in path:
            v = v.get(part) if isinstance(v, dict) else None
        if isinstance(v, int | str) and not isinstance(v, bool):
            return v
    return None


def incomplete_runs(df: pd.DataFrame) -> dict[str, str]:
    """run id -> its status, for every run in the frame that did not end `complete` (interrupted, failed,
    stopped, or still `running`: killed before it could say)."""
    if "run_status" not in df:
        return {}
    st = df.drop_duplicates("run_id").set_index("run_id")["run_status"]
    return {str(r): str(s) for r, s in st.items() if s != "complete"}


def require_complete(df: pd.DataFrame, what: str, allow: bool) -> list[str]:
    """Refuse (one sentence) results whose runs did not complete, unless `allow`; then say what was allowed."""
    bad = incomplete_runs(df)
    if not bad:
        return []
    listed = ", ".join(f"{r} ({s}{_failed_count(df, r)})" for r, s in sorted(bad.items()))
    if not allow:
        raise UserError(f"The {what} holds runs that did not complete: {listed}; their figures may cover only part "
                        "of the configurations", "rerun them, or give --allow-incomplete to use what they measured")
    return [f"the {what} holds runs that did not complete, used on request: {listed}"]


def _failed_count(df: pd.DataFrame, run_id: str) -> str:
    """`: N failed trial(s)` for a run whose trial rows hold failed ones, else ``."""
    if "status" not in df:
        return ""
    n = int(((df["run_id"].astype(str) == run_id) & (df["status"] == "failed")).sum())
    return f": {n} failed trial row(s)" if n else ""


def merge_hdr(encoded: Iterable[str | None]) -> HdrHistogram:
    """One histogram from encoded HDR histograms (e.g. the `hdr` column of several trials)."""
    return hdr.merge(e for e in encoded if isinstance(e, str) and e)


def merged_histograms(trials: pd.DataFrame, by: Sequence[str] = ("run_id", "backend", "workload", "op", "ef_search")
                      ) -> dict[tuple, HdrHistogram]:
    """Merged HDR histogram of the ok trials of each group (keys in the order of `by`)."""
    ok = trials[trials["status"] == "ok"] if "status" in trials else trials
    out: dict[tuple, HdrHistogram] = {}
    for key, g in ok.groupby(list(by), dropna=False, sort=True):
        h = merge_hdr(g["hdr"])
        if h.get_total_count():
            out[key if isinstance(key, tuple) else (key,)] = h
    return out


def resolve_results(arg: str | Path, results_dir: Path = DEFAULT_RESULTS,
                    baselines_dir: Path = BASELINES_DIR) -> Path:
    """A results argument as a path: an existing path, else a run id under results/, else a baseline name."""
    p = Path(arg)
    if p.exists():
        return p
    for base in (results_dir, baselines_dir):
        if (base / str(arg)).exists():
            return base / str(arg)
    raise UserError(f"No results at '{arg}' (not a path, nor a run id under {results_dir}/, nor a baseline "
                    f"under {baselines_dir}/)", "check the name; `bench baseline show` lists baselines")


__all__ = ["find_files", "read_tables", "trials_frame", "summary_frame", "merge_hdr", "merged_histograms",
           "resolve_results"]
