"""`bench suite FILE`: a matrix of backends x workloads measured into one run id.

Each cell is one `bench.runner.run` with `RunRequest(suite_run_id=...)`, writing
`<backend>.<workload>.{trials,summary}.parquet` and `<backend>.<workload>.run.json` into the run folder. A cell
that fails (a user error such as an unreachable server, an exception, a run that did not complete) is recorded
as failed in `suite.json` and the suite goes on. `--resume RUN_ID` skips the cells already done (their trials
file exists and their run.json says complete). suite.json is rewritten atomically after every cell.

A suite file:

    name = "nightly"
    backends = ["qdrant-edge", "faiss"]
    workloads = ["ann-smoke", "ycsb-b"]
    trials = 5                                  # optional, for every cell
    set = ["dataset.n=5000"]                    # optional --set for every cell
    sentinel = true                             # optional: first, the fixed reference measurement (null and faiss
                                                # on workloads/sentinel.toml, rows with role = "sentinel")
    [backend.qdrant]                            # optional, per backend: config file and more --set
    config = "configs/qdrant.toml"
    [workload.ycsb-b]                           # optional, per workload: more --set
    set = ["run.duration_s=2"]
    [[exclude]]                                 # cells that make no sense (recorded as excluded, not failed)
    backend = "faiss"
    workload = "ycsb-b"
    reason = "faiss cannot update records"

The sentinel's cells come first, with the file prefix `sentinel.<backend>.sentinel.`; they take none of the suite's
overrides. `bench regress` reads the machine's drift between two runs from them (bench.analysis.conditions) and
never compares them with an engine.
"""

from __future__ import annotations

import json
import time
import traceback
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from bench.backends.secrets import redact_command, redact_settings
from bench.errors import UserError
from bench.results.lock import folder_lock
from bench.results.writer import check_run_id, make_run_dir, new_run_id, write_json

SENTINEL_BACKENDS = ("null", "faiss")  # the harness alone, and a small in-process index: a second or two
SENTINEL_WORKLOAD = "sentinel"  # workloads/sentinel.toml

CellStatus = Literal["pending", "complete", "partial", "failed", "excluded", "already done"]


class CellOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    config: str | None = None
    set: list[str] = Field(default_factory=list)


class Exclude(BaseModel):
    model_config = ConfigDict(extra="forbid")
    backend: str = "*"
    workload: str = "*"
    reason: str = "excluded by the suite file"

    def matches(self, backend: str, workload: str) -> bool:
        return self.backend in ("*", backend) and self.workload in ("*", workload)


class SuiteSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str
    description: str = ""
    backends: list[str] = Field(min_length=1)
    workloads: list[str] = Field(min_length=1)
    trials: int | None = Field(None, ge=1, le=1000)
    concurrency: int | None = Field(None, ge=1, le=1024)
    set: list[str] = Field(default_factory=list)
    backend: dict[str, CellOptions] = Field(default_factory=dict)
    workload: dict[str, CellOptions] = Field(default_factory=dict)
    exclude: list[Exclude] = Field(default_factory=list)
    sentinel: bool = False


@dataclass
class Cell:
    backend: str
    workload: str
    status: CellStatus = "pending"
    reason: str | None = None
    workload_name: str | None = None  # the workload's `name`
    prefix: str | None = None  # the prefix of its files: `<backend>.<name>.`, numbered when two cells share it
    started_utc: str | None = None
    duration_s: float | None = None
    files: list[str] = field(default_factory=list)
    detail: str | None = None  # traceback tail of an unexpected exception
    role: str | None = None  # "sentinel": the fixed reference measurement, not an engine's


@dataclass
class SuiteOutcome:
    run_id: str
    run_dir: Path
    status: str
    cells: list[Cell]

    @property
    def failed(self) -> list[Cell]:
        return [c for c in self.cells if c.status == "failed"]


def load_suite(path: str | Path) -> SuiteSpec:
    from bench.spec import format_validation_error, read_toml

    data = read_toml(Path(path), "suite")
    try:
        spec = SuiteSpec.model_validate(data)
    except ValidationError as e:
        raise UserError(format_validation_error(e, f"Suite {path}", model=SuiteSpec), "fix the value in the file") from None
    unknown = [b for b in spec.backend if b not in spec.backends]
    if unknown:
        raise UserError(f"Suite {path}: [backend.{unknown[0]}] names a backend that is not in `backends`",
                        "add it to backends or remove the table")
    unknown = [w for w in spec.workload if w not in spec.workloads]
    if unknown:
        raise UserError(f"Suite {path}: [workload.{unknown[0]}] names a workload that is not in `workloads`",
                        "add it to workloads or remove the table")
    return spec


def _overrides(spec: SuiteSpec, backend: str, workload: str) -> list[str]:
    b, w = spec.backend.get(backend, CellOptions()), spec.workload.get(workload, CellOptions())
    return [*spec.set, *w.set, *b.set]


def cell_done(run_dir: Path, prefix: str) -> bool:
    """A cell is done when its run.json says complete AND both parquet files read back whole with the row counts
    run.json recorded; a truncated, missing or foreign file makes the cell run again."""
    from bench.results import integrity

    try:
        run = json.loads(integrity.read_verified(run_dir / f"{prefix}run.json"))
        rows = run.get("rows") or {}
        if run.get("status") != "complete" or not rows:
            return False
        return all(integrity.read_parquet(run_dir / f"{prefix}{kind}.parquet").num_rows == rows.get(kind)
                   for kind in ("trials", "summary"))
    except (OSError, ValueError, UserError):  # damaged (checksum), truncated, missing or foreign: run it again
        return False


def _resume_dir(results_dir: Path, resume: str) -> Path:
    """The folder of the suite run `resume`: a run id (a plain folder name) under results_dir holding suite.json,
    never a path, so a resumed suite writes nowhere but there."""
    try:
        check_run_id(resume)
    except UserError:
        raise UserError(f"--resume '{resume}' is not a run id", f"give the run id a suite printed (a folder name "
                        f"under {results_dir}/, without '/' or '..'); use --results-dir for another results folder") from None
    run_dir = results_dir / resume
    if not run_dir.is_dir():
        raise UserError(f"There is no run folder {run_dir} to resume", "give the run id a suite printed")
    if not (run_dir / "suite.json").is_file():
        raise UserError(f"The run folder {run_dir} holds no suite.json, so it is not a suite run",
                        "give the run id a suite printed")
    return run_dir


def _suite_dir(spec: SuiteSpec, resume: str | None, run_id: str | None, results_dir: Path) -> tuple[str, Path]:
    if resume:
        return resume, _resume_dir(results_dir, resume)
    rid = run_id or new_run_id(f"suite-{spec.name}")
    return rid, make_run_dir(results_dir, rid)


@dataclass
class _Suite:
    spec: SuiteSpec
    rid: str
    run_dir: Path
    resume: bool
    results_dir: Path
    cache_dir: Path | None
    quiet: bool
    command: str
    say: Callable[[str], None]
    prefixes: set[str]

    def cell(self, cell: Cell) -> None:
        """Run one cell (or find it done); every failure is the cell's, never the suite's."""
        from bench.runner import RunRequest
        from bench.runner import run as run_cell
        from bench.workload_file import load_workload

        spec = self.spec
        fixed = cell.role is not None  # the sentinel takes none of the suite's settings
        overrides = [] if fixed else _overrides(spec, cell.backend, cell.workload)
        wl = load_workload(cell.workload, [o for o in overrides if not o.startswith("backend.")])
        cell.workload_name = wl.name
        prefix = _unique(f"{cell.role + '.' if fixed else ''}{cell.backend}.{wl.name}", self.prefixes)
        cell.prefix = prefix
        if self.resume and cell_done(self.run_dir, prefix):
            cell.status, cell.reason = "already done", f"done before in {self.rid}"
            return
        self.say(f"{cell.backend} x {cell.workload}: running")
        opts = CellOptions() if fixed else spec.backend.get(cell.backend, CellOptions())
        out = run_cell(RunRequest(backend=cell.backend, workload=cell.workload, overrides=overrides,
                                  config=opts.config, results_dir=self.results_dir, cache_dir=self.cache_dir,
                                  trials=None if fixed else spec.trials,
                                  concurrency=None if fixed else spec.concurrency, quiet=self.quiet,
                                  command=self.command, suite_run_id=self.rid, suite_prefix=prefix,
                                  row_extra={"role": cell.role} if fixed else {}))
        cell.status = out.status if out.status in ("complete", "partial") else "failed"
        if out.status != "complete":
            cell.reason = f"the run ended {out.status}" + (f": {out.warnings[-1]}" if out.warnings else "")


def _unique(stem: str, used: set[str]) -> str:
    """A cell's file prefix: `<backend>.<workload name>.`, numbered when two cells would share it."""
    prefix, i = f"{stem}.", 1
    while prefix in used:
        i += 1
        prefix = f"{stem}-{i}."
    used.add(prefix)
    return prefix


def _run_cell(suite: _Suite, cell: Cell) -> None:
    cell.started_utc = datetime.now(UTC).isoformat()
    t0 = time.perf_counter()
    try:
        suite.cell(cell)
    except UserError as e:
        cell.status, cell.reason = "failed", e.sentence()
    except Exception as e:  # noqa: BLE001 - one broken backend must not stop the suite
        cell.status, cell.reason = "failed", f"{type(e).__name__}: {e}"
        cell.detail = "".join(traceback.format_exc().splitlines(keepends=True)[-12:])
    cell.duration_s = round(time.perf_counter() - t0, 3)
    if cell.prefix:
        cell.files = sorted(p.name for p in suite.run_dir.glob(f"{cell.prefix}*"))
    suite.say(f"{cell.backend} x {cell.workload}: {cell.status}" + (f" ({cell.reason})" if cell.reason else ""))


def run_suite(path: str | Path, resume: str | None = None, run_id: str | None = None,
              results_dir: Path = Path("results"), cache_dir: Path | None = None, quiet: bool = False,
              command: str = "", say: Callable[[str], None] = print) -> SuiteOutcome:
    """Run every cell of the suite (or the ones not yet done, with resume); never stops at a failed cell."""
    spec = load_suite(path)
    rid, run_dir = _suite_dir(spec, resume, run_id, results_dir)
    suite = _Suite(spec, rid, run_dir, bool(resume), results_dir, cache_dir, quiet, command, say, set())
    cells = [Cell(b, w) for w in spec.workloads for b in spec.backends]
    if spec.sentinel:
        cells = [Cell(b, SENTINEL_WORKLOAD, role="sentinel") for b in SENTINEL_BACKENDS] + cells
    doc: dict = {"suite": spec.name, "file": str(path), "run_id": rid, "started_utc": datetime.now(UTC).isoformat(),
                 "command": redact_command(command), "status": "running",
                 "spec": redact_settings(spec.model_dump(mode="json"))}

    def save(status: str) -> None:
        doc.update(status=status, updated_utc=datetime.now(UTC).isoformat(), cells=[asdict(c) for c in cells])
        write_json(run_dir / "suite.json", doc, checked=True)

    with folder_lock(run_dir, "suite folder", "wait until it ends (or stop it), then resume"):
        return _run_cells(suite, spec, cells, save, rid, run_dir)


def _run_cells(suite: _Suite, spec: SuiteSpec, cells: list[Cell], save: Callable[[str], None], rid: str,
               run_dir: Path) -> SuiteOutcome:
    save("running")
    try:
        for cell in cells:
            ex = None if cell.role else next((e for e in spec.exclude if e.matches(cell.backend, cell.workload)),
                                             None)
            if ex is not None:
                cell.status, cell.reason = "excluded", ex.reason
                continue
            _run_cell(suite, cell)
            save("running")
    except KeyboardInterrupt:
        save("interrupted")
        raise
    status = ("failed" if any(c.status == "failed" for c in cells)
              else "partial" if any(c.status == "partial" for c in cells) else "complete")
    save(status)
    return SuiteOutcome(rid, run_dir, status, cells)
