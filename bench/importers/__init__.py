"""`bench import FILE...`: other tools' results as bench run folders, so compare and report read them like any run.

One run folder per imported file (`<out>/<run-id>/trials.parquet`, `summary.parquet`, `run.json`), every row
marked with the tool that measured it (`source_tool`, a result key: rows of two tools never share a line), the
tool's version where known, the file it came from and every parameter the tool recorded (`source_params`, secrets
removed). Figures the tool measured differently from bench stay in their own columns (`source_qps`,
`source_headline_qps`, `source_p50_us`, ...), described row by row in `figure_definition`; bench's own `qps` and
latency columns stay null on imported rows. Recall is filled where it means what bench's recall means (recall@k of
the returned ids against exact neighbours), and `figure_definition` says where it came from.

- VectorDBBench result JSON (`result_<date>_<label>_<db>.json`, as its runner writes it and as its repository
  publishes it): `bench.importers.vdbb`.
- ann-benchmarks result HDF5 (`results/<dataset>/<count>/<algo>/<params>.hdf5`, as its `results.store_results`
  writes it): `bench.importers.annb`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path

from bench import scenarios as _scenarios
from bench.errors import UserError
from bench.importers.imported import Imported, ImportResult, file_id

_scenarios.load()  # imported rows carry the scenarios' keys and figures too


def detect(path: Path) -> Callable[..., Imported]:
    """The importer for a file, by its suffix and first bytes; a file of no known kind is a UserError."""
    if not path.is_file():
        raise UserError(f"The file {path} does not exist" if not path.exists() else f"{path} is a folder, not a file",
                        "give VectorDBBench result .json files or ann-benchmarks result .hdf5 files")
    head = path.read_bytes()[:8]
    if head.startswith(b"\x89HDF"):
        from bench.importers.annb import read

        return read
    if path.suffix.lower() == ".json" or head.lstrip()[:1] == b"{":
        from bench.importers.vdbb import read

        return read
    raise UserError(f"{path} is neither a VectorDBBench result (.json) nor an ann-benchmarks result (.hdf5)",
                    "bench import reads those two kinds of result file")


def import_files(paths: Sequence[Path], out_dir: Path, *, version: str | None = None,
                 dataset: Path | None = None, cache_dir: Path | None = None) -> list[ImportResult]:
    """Import each file into its own run folder under out_dir; every file is read before anything is written."""
    if not paths:
        raise UserError("bench import needs at least one result file", "e.g. bench import result_*.json")
    made = []
    for p in paths:
        reader = detect(Path(p))
        made.append((Path(p), reader(Path(p), version=version, dataset=dataset, cache_dir=cache_dir)))
    return [write_run(p, imp, out_dir) for p, imp in made]


def write_run(path: Path, imp: Imported, out_dir: Path) -> ImportResult:
    """trials.parquet, summary.parquet and run.json of one imported file, in a new run folder."""
    from bench.results import schema
    from bench.results.aggregate import summarize
    from bench.results.env import provenance
    from bench.results.writer import make_run_dir, write_json, write_parquet

    digest = hashlib.sha256(path.read_bytes()).hexdigest()[:8]
    run_id = _safe(f"import-{imp.tool}-{imp.run_label}-{digest}")
    if (out_dir / run_id).exists():
        raise UserError(f"{path} was imported already (into {out_dir / run_id})",
                        "remove that folder to import it again, or give another --out")
    run_dir = make_run_dir(out_dir, run_id)
    prov = provenance()
    rows = [{**r, "run_id": run_id, "harness_version": prov["harness_version"], "git_commit": prov["git_commit"],
             "command": f"bench import {path}", "run_status": "complete"} for r in imp.rows]
    summary = summarize(rows)
    for s in summary:
        s["n_kept"] = s["n_ok"]  # one measurement per configuration: the tool's, kept as it is
    write_parquet(schema.table(rows, schema.trials_schema()), run_dir / "trials.parquet", checked=True)
    write_parquet(schema.table(summary, schema.summary_schema()), run_dir / "summary.parquet", checked=True)
    write_json(run_dir / "run.json", {
        "run_id": run_id, "status": "complete", "imported": True, "source_tool": imp.tool,
        "source_version": imp.version, "source_file": file_id(path), "imported_utc": datetime.now(UTC).isoformat(),
        "skipped": imp.skipped, **imp.details}, checked=True)
    return ImportResult(path, run_dir, len(rows), imp.skipped)


def _safe(text: str) -> str:
    out = "".join(c if c.isalnum() or c in "._+-" else "-" for c in text)
    while "--" in out:
        out = out.replace("--", "-")
    return out.strip("-.")[:200]


__all__ = ["ImportResult", "Imported", "detect", "import_files", "params_json", "redact", "file_id"]
