"""Where the history is kept.

- Local (the default): a parquet dataset partitioned by date, `DIR/date=YYYY-MM-DD/<run-id>.parquet`, one file per
  run, read with DuckDB. Nothing to install or start; a CI job keeps the folder in its cache.
- PostgreSQL (`--store postgresql://user@host:port/db?schema=NAME`): one table `bench_history` (in schema NAME,
  default public), a row per run and series with the history row as JSONB, for a team that shares one.

A run is added once: a run id already in the store is skipped (adding it again is a no-op).
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Protocol
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from bench.errors import UserError
from bench.history.rows import frame, schema

DEFAULT_DIR = Path("history")
TABLE = "bench_history"


class Store(Protocol):
    where: str

    def run_ids(self) -> set[str]: ...

    def add(self, run_id: str, rows: list[dict]) -> bool: ...

    def read(self) -> pd.DataFrame: ...


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", name)


class ParquetStore:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.where = str(root)

    def _files(self) -> list[Path]:
        return sorted(self.root.glob("date=*/*.parquet")) if self.root.is_dir() else []

    def _query(self, sql: str) -> pd.DataFrame:
        import duckdb

        pattern = str(self.root / "date=*" / "*.parquet").replace("'", "''")
        with duckdb.connect() as con:
            return con.execute(sql.format(src=f"read_parquet('{pattern}', hive_partitioning=false, "
                                               "union_by_name=true)")).df()

    def run_ids(self) -> set[str]:
        if not self._files():
            return set()
        return set(self._query("SELECT DISTINCT run_id FROM {src}")["run_id"])

    @contextmanager
    def _locked(self) -> Iterator[None]:
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.root, os.O_RDONLY | os.O_DIRECTORY)
        except OSError as e:
            raise UserError(f"Cannot create the history folder {self.root} ({e.strerror or e})",
                            "give a writable --store folder") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def add(self, run_id: str, rows: list[dict]) -> bool:
        with self._locked():
            if run_id in self.run_ids():
                return False
            night = rows[0]["night"] if rows else "unknown"
            folder = self.root / f"date={night}"
            folder.mkdir(exist_ok=True)
            table = pa.Table.from_pandas(frame(rows), schema=schema(), preserve_index=False)
            fd, tmp = tempfile.mkstemp(prefix=".", suffix=".parquet", dir=folder)
            os.close(fd)
            try:
                pq.write_table(table, tmp)
                os.chmod(tmp, 0o644)
                os.replace(tmp, folder / f"{_safe(run_id)}.parquet")
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
            return True

    def read(self) -> pd.DataFrame:
        if not self._files():
            return frame([])
        df = self._query("SELECT * FROM {src}")
        return df.reindex(columns=list(dict.fromkeys(schema().names + list(df.columns))))


class PostgresStore:
    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        query = dict(parse_qsl(parts.query))
        self.schema = query.pop("schema", "public")
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", self.schema):
            raise UserError(f"'{self.schema}' in --store is not a plain schema name", "use letters, digits and _")
        self.dsn = urlunsplit(parts._replace(query=urlencode(query)))
        host = (parts.hostname or "") + (f":{parts.port}" if parts.port else "")
        self.where = urlunsplit(parts._replace(netloc=host, query=f"schema={self.schema}"))  # no user or password
        self.table = f'"{self.schema}".{TABLE}'

    def _connect(self):
        try:
            import psycopg
        except ImportError:
            raise UserError("A PostgreSQL history store needs psycopg", "pip install 'psycopg[binary]'") from None
        try:
            con = psycopg.connect(self.dsn, connect_timeout=10, autocommit=True)
        except psycopg.OperationalError as e:
            raise UserError(f"Cannot connect to the history store {self.where} ({str(e).strip().splitlines()[0]})",
                            "check the --store URL and that the server is up") from None
        con.execute(f'CREATE SCHEMA IF NOT EXISTS "{self.schema}"')
        con.execute(f"CREATE TABLE IF NOT EXISTS {self.table} (run_id text NOT NULL, series_id text NOT NULL, "
                    "night date, row jsonb NOT NULL, PRIMARY KEY (run_id, series_id))")
        return con

    def run_ids(self) -> set[str]:
        with self._connect() as con:
            return {r[0] for r in con.execute(f"SELECT DISTINCT run_id FROM {self.table}")}

    def add(self, run_id: str, rows: list[dict]) -> bool:
        with self._connect() as con, con.transaction():
            con.execute(f"LOCK TABLE {self.table} IN SHARE ROW EXCLUSIVE MODE")
            if con.execute(f"SELECT 1 FROM {self.table} WHERE run_id = %s LIMIT 1", (run_id,)).fetchone():
                return False
            with con.cursor() as cur:
                cur.executemany(f"INSERT INTO {self.table} (run_id, series_id, night, row) VALUES (%s, %s, %s, %s) "
                                "ON CONFLICT DO NOTHING",
                                [(run_id, r["series_id"], None if r["night"] == "unknown" else r["night"],
                                  json.dumps(r, default=str)) for r in rows])
            return True

    def read(self) -> pd.DataFrame:
        with self._connect() as con:
            docs = [r[0] for r in con.execute(f"SELECT row FROM {self.table} ORDER BY run_id, series_id")]
        return frame(docs)


def open_store(spec: str | Path | None) -> Store:
    """The store a --store value names: a postgresql:// URL, else a folder (default history/)."""
    text = str(spec) if spec is not None else str(DEFAULT_DIR)
    if text.startswith(("postgresql://", "postgres://")):
        return PostgresStore(text)
    return ParquetStore(Path(text))
