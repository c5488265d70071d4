"""Baselines for `bench regress`: a copy of a run's results under `baselines/NAME/`, with a note of its origin.

`bench baseline save RUN --name NAME` copies the run folder's parquet and json files (not the interval logs);
saving again under the same name replaces the copy whole (a new folder is filled, then swapped in), so a reader
never sees half of one and half of another.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from bench.analysis.load import BASELINES_DIR, DEFAULT_RESULTS, find_files, read_table, resolve_results
from bench.errors import UserError
from bench.results.writer import write_json

NOTE = "baseline.json"


@dataclass
class Baseline:
    name: str
    path: Path
    note: dict


def _valid_name(name: str) -> str:
    if not name or name in (".", "..") or "/" in name or "\\" in name or name.startswith("."):
        raise UserError(f"'{name}' is not a usable baseline name", "use a plain name such as 'main' or 'nightly'")
    return name


def save(run: str | Path, name: str, results_dir: Path = DEFAULT_RESULTS,
         baselines_dir: Path = BASELINES_DIR) -> Baseline:
    """Copy the results of `run` (a run folder, a run id under results_dir) to baselines_dir/name."""
    _valid_name(name)
    src = resolve_results(run, results_dir, baselines_dir)
    if not src.is_dir():
        raise UserError(f"{src} is not a run folder", "give the run folder (or run id) that `bench run` wrote")
    trials = find_files([src], "trials")
    rows, backends, workloads, runs, commits = 0, set(), set(), set(), set()
    for f in trials:
        t = read_table(f)
        rows += t.num_rows
        backends |= set(t.column("backend").to_pylist())
        workloads |= set(t.column("workload").to_pylist())
        runs |= set(t.column("run_id").to_pylist())
        if "git_commit" in t.column_names:
            commits |= {c for c in t.column("git_commit").to_pylist() if c}
    baselines_dir.mkdir(parents=True, exist_ok=True)
    dest = baselines_dir / name
    tmp = Path(tempfile.mkdtemp(prefix=f".{name}.", dir=baselines_dir))
    try:
        copied = []
        for f in sorted(src.rglob("*")):
            if f.is_file() and f.suffix in (".parquet", ".json") and not f.name.startswith(".") \
                    and "intervals" not in f.relative_to(src).parts and f.name != NOTE:
                target = tmp / f.relative_to(src)
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(f, target)
                copied.append(str(f.relative_to(src)))
        previous = _read_note(dest) if dest.exists() else None
        note = {"name": name, "source": str(src.resolve()), "run_ids": sorted(runs), "backends": sorted(backends),
                "workloads": sorted(workloads), "trial_rows": rows, "git_commits": sorted(commits),
                "files": copied, "saved_utc": datetime.now(UTC).isoformat(),
                "replaced": previous.get("source") if previous else None}
        write_json(tmp / NOTE, note)
        old = None
        if dest.exists():
            old = baselines_dir / f".{name}.old-{datetime.now(UTC).strftime('%Y%m%dT%H%M%S%f')}"
            dest.rename(old)
        tmp.rename(dest)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return Baseline(name, dest, note)


def _read_note(folder: Path) -> dict:
    try:
        return json.loads((folder / NOTE).read_text())
    except (OSError, json.JSONDecodeError):
        return {}


def show(baselines_dir: Path = BASELINES_DIR, name: str | None = None) -> list[Baseline]:
    """The stored baselines (or the one named), with their notes."""
    if name is not None:
        _valid_name(name)
        folder = baselines_dir / name
        if not folder.is_dir():
            raise UserError(f"There is no baseline '{name}' under {baselines_dir}/",
                            "save one with `bench baseline save RUN --name NAME`")
        return [Baseline(name, folder, _read_note(folder))]
    if not baselines_dir.is_dir():
        return []
    return [Baseline(d.name, d, _read_note(d)) for d in sorted(baselines_dir.iterdir())
            if d.is_dir() and not d.name.startswith(".")]
