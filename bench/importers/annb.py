"""ann-benchmarks result HDF5 (one file per algorithm, build and query parameters) as one bench row.

The layout, as ann-benchmarks' `results.store_results` writes it (erikbern/ann-benchmarks, ann_benchmarks/
results.py; the attributes from runner.py's `run_individual_query` and `run`): attributes `algo`, `name`
(str(algo), the parameters in the algorithm's own words), `dataset`, `count` (k), `distance`, `batch_mode`,
`run_count`, `best_search_time` (mean seconds per query of the fastest of `run_count` passes), `candidates`,
`build_time`, `index_size` (kB of RSS growth while building), `expect_extra`, and whatever the algorithm adds;
datasets `times` (seconds per query, of the last pass), `neighbors` (the ids returned, -1 padded) and `distances`.

Figures: `source_qps` = `source_headline_qps` = 1 / best_search_time (the best of run_count passes, no warm-up
pass; ann-benchmarks' own QPS); `source_p50/p95/p99/mean_us` from `times` (the last pass). recall is computed by
bench from the stored ids against the dataset's published neighbours (`--dataset FILE`, or the set fetched into
bench's cache under the name the file records), id overlap@k as bench computes it (ann-benchmarks' own plots count
a result within 1e-3 of the k-th true distance as found, so ties can make theirs higher).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import numpy as np

from bench.errors import UserError
from bench.importers.imported import Imported, file_id, params_json

TOOL = "ann-benchmarks"
METRICS = {"euclidean": "l2", "angular": "cosine", "cosine": "cosine", "ip": "ip", "dot": "ip", "jaccard": None,
           "hamming": None}
_PARAM = {  # bench's index keys, as the algorithms' names spell them
    "index_m": re.compile(r"""(?:['"]?\bM['"]?\s*[:=]\s*|\bM)(\d+)"""),
    "index_ef_construction": re.compile(r"""['"]?(?:efConstruction|ef_construction|efc)['"]?\s*[:=]\s*(\d+)"""),
    "ef_search": re.compile(r"""['"]?(?:efQuery|efSearch|ef_search|ef)['"]?\s*[:=]\s*(\d+)"""),
}


def _attrs(path: Path) -> tuple[dict[str, Any], np.ndarray, np.ndarray]:
    import h5py

    try:
        with h5py.File(path, "r") as f:
            attrs = {k: _plain(v) for k, v in f.attrs.items()}
            missing = [n for n in ("times", "neighbors") if n not in f]
            if missing or "best_search_time" not in attrs:
                raise UserError(f"{path} is HDF5 but not an ann-benchmarks result (no "
                                f"{', '.join(missing) or 'best_search_time attribute'})",
                                "give a file from ann-benchmarks' results/ folder")
            return attrs, np.asarray(f["times"], dtype=np.float64), np.asarray(f["neighbors"], dtype=np.int64)
    except (OSError, KeyError, ValueError, RuntimeError) as e:
        raise UserError(f"{path} is not a readable HDF5 file ({str(e).splitlines()[0] if str(e) else e})",
                        "give a file from ann-benchmarks' results/ folder") from None


def _plain(v: Any) -> Any:
    if isinstance(v, bytes):
        return v.decode(errors="replace")
    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, np.ndarray):
        return v.tolist()
    return v


def read(path: Path, *, version: str | None = None, dataset: Path | None = None, cache_dir: Path | None = None,
         **_: Any) -> Imported:
    attrs, times, found = _attrs(path)
    k = int(attrs.get("count") or found.shape[1])
    name = str(attrs.get("dataset") or "")
    truth, data = _truth(name, dataset, cache_dir)
    recall, per_query, reason = _recall(found, truth, k)
    best = float(attrs["best_search_time"])
    qps = 1.0 / best if best > 0 else None
    batch = bool(attrs.get("batch_mode"))
    row = {
        "workload": f"annb-{name or 'unknown'}", "workload_kind": "ann", "phase": "search", "op": "search",
        "backend": str(attrs.get("algo") or attrs.get("name") or "unknown"), "source_tool": TOOL,
        "source_version": version, "source_file": file_id(path), "trial": 0, "status": "ok",
        "status_reason": reason, "k": k, "concurrency": None if batch else 1,
        "dataset_name": name or None, "dataset_metric": METRICS.get(str(attrs.get("distance", "")).lower()),
        "dataset_n": data.get("n"), "dataset_dim": data.get("dim"), "dataset_queries": len(times),
        "source_qps": qps, "source_headline_qps": qps, "recall": recall, "recall_per_query": per_query,
        "source_mean_us": float(times.mean() * 1e6) if len(times) else None,
        **{f"source_p{p}_us": float(np.percentile(times, p) * 1e6) if len(times) else None for p in (50, 95, 99)},
        "client_rss_growth_bytes": int(float(attrs["index_size"]) * 1024) if _is_num(attrs.get("index_size")) else None,
        "count": len(times), "index_kind": "hnsw" if _PARAM["index_m"].search(str(attrs.get("name", ""))) else None,
        **_params(str(attrs.get("name", ""))), "figure_definition": _definition(attrs, batch, data),
        "source_params": params_json({**attrs, "file": str(path)}),
    }
    return Imported(TOOL, version, f"{row['backend']}-{name}", [row], {"annb_attrs": json.loads(row["source_params"])})


def _is_num(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def _params(name: str) -> dict[str, int | None]:
    """M, efConstruction and ef from the algorithm's name, where it spells them (else null)."""
    out: dict[str, int | None] = {}
    for key, rx in _PARAM.items():
        m = rx.search(name)
        out[key] = int(m.group(1)) if m else None
    return out


def _definition(attrs: dict, batch: bool, data: dict) -> str:
    runs = attrs.get("run_count", "?")
    text = (f"ann-benchmarks: {runs} passes over the test queries, "
            + ("in batch mode (one call for all queries; per-query time = total / queries)" if batch
               else "single-threaded, one query at a time")
            + "; source_qps = source_headline_qps = 1 / the fastest pass's mean time per query (best of the "
            "passes, no warm-up excluded); source_p50/p95/p99_us and source_mean_us from the last pass's per-query "
            "times; build_time and index_size (kB of RSS growth, as client_rss_growth_bytes) as it recorded them")
    if data.get("from"):
        text += f"; recall computed by bench from the ids it stored against the neighbours published in {data['from']}"
    return text


def _truth(name: str, dataset: Path | None, cache_dir: Path | None) -> tuple[np.ndarray | None, dict]:
    """The published neighbours of the dataset (ann-benchmarks HDF5) and its size, from --dataset or the cache."""
    from bench.datasets.fetch import CATALOG, datasets_dir

    path = dataset
    if path is None and name in CATALOG and cache_dir is not None:
        cand = CATALOG[name].local_path(datasets_dir(cache_dir) / name)
        path = cand if cand.is_file() else None
    info: dict[str, Any] = {}
    if name in CATALOG:
        info = {"n": CATALOG[name].base, "dim": CATALOG[name].dim}
    if path is None:
        return None, info
    from bench.datasets.formats import open_hdf5

    fs = open_hdf5(Path(path))
    if fs.neighbors is None or fs.test_n is None:
        raise UserError(f"The dataset file {path} has no 'neighbors'", "give the ann-benchmarks HDF5 of the dataset")
    return fs.neighbors(fs.test_n), {"n": fs.train_n, "dim": fs.dim, "from": str(path)}


def _recall(found: np.ndarray, truth: np.ndarray | None, k: int) -> tuple[float | None, list | None, str | None]:
    if truth is None:
        return None, None, ("recall not computed: the dataset's neighbours were not found (give --dataset FILE, "
                            "or fetch the set with bench datasets fetch)")
    if len(truth) != len(found) or truth.shape[1] < k:
        raise UserError(f"The dataset has {len(truth)} queries with {truth.shape[1]} neighbours, but the result "
                        f"holds {len(found)} queries at k = {k}", "give the dataset the result was measured on")
    from bench.metrics.recall import per_search_recall

    per = np.asarray(per_search_recall(found[:, :k], truth[:, :k], k), dtype=np.float32)
    return float(per.mean()), per.tolist(), None
