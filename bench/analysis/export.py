"""`bench export`: one tidy table across runs (every summary or trial row of every run under the paths given),
written as parquet (with each column's description in the schema) or csv (without the histogram columns)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv

from bench.analysis.load import Kind, read_tables
from bench.errors import UserError
from bench.results.schema import _described
from bench.results.writer import _atomic, write_parquet

HISTOGRAMS = ("hdr", "hdr_failed", "hdr_service")  # base64 HDR encodings: in parquet only, they are not for a sheet


def _check_out(out: Path) -> str:
    kind = out.suffix.lower().lstrip(".")
    if kind not in ("parquet", "csv"):
        raise UserError(f"Cannot tell the format of {out} from its suffix", "name the file .parquet or .csv")
    if not out.parent.is_dir():
        raise UserError(f"The folder {out.parent} of --out does not exist", "create it, or choose another --out")
    return kind


def write_table(table: pa.Table | pd.DataFrame, out: Path) -> int:
    """Write a table (or frame) as parquet or csv, by the suffix of `out`; returns the number of rows."""
    kind = _check_out(out)
    if isinstance(table, pd.DataFrame):
        table = pa.Table.from_pandas(table, preserve_index=False)
    if kind == "parquet":
        table = pa.table(table.columns, schema=pa.schema(_described(list(table.schema))))
        write_parquet(table, out)
    else:
        keep = [c for c in table.column_names if c not in HISTOGRAMS]
        flat = table.select(keep)
        flat = pa.table([c if not pa.types.is_nested(c.type) else pa.array([str(v) if v is not None else None
                                                                              for v in c.to_pylist()])
                         for c in flat.columns], names=keep)
        _atomic(out, lambda f: pacsv.write_csv(flat, f))
    return table.num_rows


def export(paths: Sequence[str | Path] | None, out: Path, kind: Kind = "summary") -> tuple[int, int]:
    """Every `kind` row under paths (default: results/) into one file; returns (rows, runs)."""
    _check_out(out)
    table = read_tables(paths, kind)
    n = write_table(table, out)
    return n, len(set(table.column("run_id").to_pylist()))
