"""Baselines for `bench regress`: copies of runs' results under `baselines/NAME/<run-id>/`, with a note
(`baselines/NAME/baseline.json`) of where each came from.

`bench baseline save RUN --name NAME` copies the run folder's parquet and json files (not the interval logs);
saving again replaces the baseline whole, `--append` adds the run to the ones there (`--keep N`: the newest N).
A new folder is filled, then swapped in, so a reader never sees half of one and half of another. Writers take
turns under an exclusive lock on the baselines folder (fcntl.flock), so saves that run at once each see the runs
the others kept: with `--append`, every run is kept.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from bench.analysis.load import (
    BASELINES_DIR,
    DEFAULT_RESULTS,
    find_files,
    read_table,
    require_complete,
    resolve_results,
    trials_frame,
)
from bench.errors import UserError
from bench.results import integrity
from bench.results.writer import ENVIRONMENT_ERRNOS, default_mode, write_json

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


def _describe(folder: Path) -> dict:
    rows, backends, workloads, runs, commits = 0, set(), set(), set(), set()
    for f in find_files([folder], "trials"):
        t = read_table(f)
        rows += t.num_rows
        backends |= set(t.column("backend").to_pylist())
        workloads |= set(t.column("workload").to_pylist())
        runs |= set(t.column("run_id").to_pylist())
        if "git_commit" in t.column_names:
            commits |= {c for c in t.column("git_commit").to_pylist() if c}
    return {"run_ids": sorted(runs), "backends": sorted(backends), "workloads": sorted(workloads),
            "trial_rows": rows, "git_commits": sorted(commits)}


def _copy_run(src: Path, dest: Path) -> list[str]:
    copied = []
    for f in sorted(src.rglob("*")):
        rel = f.relative_to(src)
        if f.is_file() and Path(f.name.removesuffix(".sha256")).suffix in (".parquet", ".json") \
                and not f.name.startswith(".") \
                and "intervals" not in rel.parts and "report" not in rel.parts and f.name != NOTE:
            integrity.verify(f)  # a damaged file never enters a baseline
            target = dest / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(f, target)
            copied.append(str(rel))
    return copied


@contextmanager
def _locked(baselines_dir: Path) -> Iterator[None]:
    """Hold the writers' lock of the baselines folder (fcntl.flock on the folder itself, so no lock file is left
    behind): concurrent saves run one after another, never interleaved (a read of the note, then a swap, by two
    writers at once would lose the runs one of them added)."""
    try:
        fd = os.open(baselines_dir, os.O_RDONLY | os.O_DIRECTORY)
    except OSError as e:
        raise UserError(f"Cannot open the baselines folder {baselines_dir} ({e.strerror or e})",
                        "choose a readable --baselines-dir") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


def _run_folder(run: str | Path, results_dir: Path, baselines_dir: Path) -> Path:
    """The run folder `run` names (a folder, or a run id under results_dir), refused in one sentence if none."""
    src = resolve_results(run, results_dir, baselines_dir)
    if not src.is_dir():
        raise UserError(f"{src} is not a run folder", "give the run folder (or run id) that `bench run` wrote")
    return src


def busy_reason(run: str | Path, results_dir: Path = DEFAULT_RESULTS, baselines_dir: Path = BASELINES_DIR
                ) -> str | None:
    """Why `run` should not join a rolling baseline (the machine was busy during it), or None."""
    from bench.analysis.conditions import busy_run

    src = _run_folder(run, results_dir, baselines_dir)
    return busy_run(trials_frame([src]))


def save(run: str | Path, name: str, results_dir: Path = DEFAULT_RESULTS, baselines_dir: Path = BASELINES_DIR,
         append: bool = False, keep: int | None = None, allow_incomplete: bool = False) -> Baseline:
    """Copy the results of `run` (a run folder, or a run id under results_dir) to baselines_dir/name/<run-id>/.

    Without append the baseline is replaced whole; with append the run joins the runs already there (a run of
    the same folder name replaces its older copy) and, with keep, only the newest `keep` runs stay. Several runs
    make the baseline's run-to-run spread part of what `bench regress` compares with.
    """
    _valid_name(name)
    if keep is not None and keep < 1:
        raise UserError(f"--keep {keep} would keep no run", "give 1 or more")
    src = _run_folder(run, results_dir, baselines_dir)
    described = _describe(src)  # refuses folders without results before anything is written
    require_complete(trials_frame([src]), f"run {src.name}", allow_incomplete)
    try:
        baselines_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UserError(f"Cannot create the baselines folder {baselines_dir} ({e.strerror or e})",
                        "choose a writable --baselines-dir") from None
    with _locked(baselines_dir):
        try:
            return _save_locked(src, name, baselines_dir, described, append, keep)
        except (OSError, UserError) as e:  # a UserError here is a write that failed (bench.results.writer)
            if isinstance(e, integrity.DamagedFile) or (isinstance(e, OSError) and e.errno not in ENVIRONMENT_ERRNOS):
                raise
            why = e.strerror if isinstance(e, OSError) else e.message.rsplit("(", 1)[-1].rstrip(")")
            raise UserError(f"Cannot write the baseline '{name}' in {baselines_dir} ({why}); it is left "
                            "as it was", f"free some space in {baselines_dir} or choose another --baselines-dir") \
                from None


def _save_locked(src: Path, name: str, baselines_dir: Path, described: dict, append: bool,
                 keep: int | None) -> Baseline:
    dest = baselines_dir / name
    previous = _read_note(dest) if dest.exists() else {}
    tmp = Path(tempfile.mkdtemp(prefix=f".{name}.", dir=baselines_dir))
    tmp.chmod(default_mode(directory=True))  # mkdtemp makes 0700; a baseline is shared like the results it copies
    try:
        entries = []
        if append:
            for entry in previous.get("runs", []):
                if entry.get("folder") != src.name and (dest / entry.get("folder", "")).is_dir():
                    shutil.copytree(dest / entry["folder"], tmp / entry["folder"])
                    entries.append(entry)
        entry = {"folder": src.name, "source": str(src.resolve()), "saved_utc": datetime.now(UTC).isoformat(),
                 **described, "files": _copy_run(src, tmp / src.name)}
        entries.append(entry)
        if keep is not None:
            for old_entry in entries[:-keep]:
                shutil.rmtree(tmp / old_entry["folder"], ignore_errors=True)
            entries = entries[-keep:]
        note = {"name": name, "source": entry["source"], "saved_utc": entry["saved_utc"],
                "run_ids": sorted({r for e in entries for r in e["run_ids"]}),
                "backends": sorted({b for e in entries for b in e["backends"]}),
                "workloads": sorted({w for e in entries for w in e["workloads"]}),
                "trial_rows": sum(e["trial_rows"] for e in entries), "runs": entries,
                "replaced": None if append or not previous else [e.get("source") for e in previous.get("runs", [])]}
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
