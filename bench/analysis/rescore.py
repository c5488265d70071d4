"""`bench rescore RESULTS...`: recompute the quality figures of runs already made, from the ids each sampled
search returned (kept beside every trial) against exact references rebuilt from the run's own workload.

The run's dataset is loaded (regenerated from its seed, or read from its files) and must hash to what the run
measured; each trial row is matched to its variant by its key values; trials.parquet and summary.parquet are
rewritten atomically. Recall under writes (YCSB mixes) depends on the order of the writes, which is not kept, so
those rows are left as they are and said so.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from bench import datasets
from bench.analysis.load import find_files, read_table
from bench.backends import registry
from bench.errors import UserError
from bench.metrics.scoring import Kept
from bench.results import integrity
from bench.results.aggregate import summarize
from bench.results.schema import summary_schema, table, trials_schema
from bench.results.writer import write_parquet
from bench.scenarios import Prep, Variant
from bench.scenarios.plan import Plan
from bench.workload_file import parse_workload


def _run_json(trials_file: Path) -> dict[str, Any]:
    path = trials_file.with_name(trials_file.name[: -len("trials.parquet")] + "run.json")
    try:
        return json.loads(integrity.read_verified(path, "run file"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise UserError(f"{trials_file} has no readable run.json beside it ({e})",
                        "rescore needs the run folder that `bench run` wrote") from None


def _variant_of(row: dict[str, Any], variants: list[Variant]) -> Variant | None:
    for v in variants:
        if all(row.get(k) == value for k, value in v.axes.items()):
            return v
    return None


def rescore_file(trials_file: Path, cache_dir: Path, say: Callable[[str], None]) -> int:
    """Rescore one trials file in place; returns the number of rows rescored."""
    summary_file = trials_file.with_name(trials_file.name[: -len("trials.parquet")] + "summary.parquet")
    trials = read_table(trials_file)  # both read whole (checksums verified) before either is replaced
    if summary_file.exists():
        read_table(summary_file)
    if "ids_file" not in trials.schema.names:
        say(f"{trials_file}: written before bench kept each trial's result ids, so there is nothing to rescore; "
            "left as it is")
        return 0
    meta = _run_json(trials_file)
    spec = parse_workload(meta["workload"], f"the workload in {trials_file.parent}/run.json")
    plan = Plan.of(spec)
    if not plan.kind.needs_reference():
        say(f"{trials_file}: kind '{spec.kind}' scores searches against the collection under writes, whose order "
            "is not kept; left as it is")
        return 0
    ds = datasets.load(spec.dataset, cache_dir, progress=False)
    rows = trials.to_pylist()
    plan.prepare(Prep(spec, ds, cache_dir, False, say, registry.get(meta["backend"])))
    want = plan.run_row().get("dataset_hash", ds.content_hash)
    if rows and rows[0].get("dataset_hash") not in (None, want):
        raise UserError(f"The dataset of {trials_file} loads with another content hash now ({want} against "
                        f"{rows[0]['dataset_hash']})", "rescore with the same dataset files and cache")
    variants = plan.variants(ds)
    done = 0
    for row in rows:
        v = _variant_of(row, variants)
        if v is None or not row.get("ids_file") or row.get("op") != "search":
            continue
        kept = Kept.load(trials_file.parent / row["ids_file"])
        ref = plan.reference(v, spec.search.k, cache_dir)
        row.update(plan.kind.score(v, kept, ref, None).get("search", {}))
        done += 1
    write_parquet(table(rows, trials_schema()), trials_file, checked=True)
    write_parquet(table(summarize(rows), summary_schema()), summary_file, checked=True)
    return done


def rescore(paths: Sequence[str | Path], cache_dir: Path | None = None,
            say: Callable[[str], None] = print) -> int:
    cache = cache_dir or datasets.default_cache_dir()
    total = 0
    for f in find_files(paths, "trials"):
        n = rescore_file(f, cache, say)
        say(f"{f}: {n} trial rows rescored")
        total += n
    return total
