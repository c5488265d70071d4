"""VectorDBBench result JSON (`TestResult.model_dump_for_output()`: run_id, task_label, results[], each with
`metrics`, `task_config` {db, db_config, db_case_config, case_config} and `label`) as bench rows.

How VectorDBBench measures (its backend/runner/: serial_runner.py, mp_runner.py; checked against 2.0.0):
- the serial pass searches every query of test.parquet once, one process, no warm-up excluded: `recall` (mean
  recall@k against the ground truth it publishes, bench's definition), `serial_latency_p99/p95/p50` (seconds);
- the concurrent passes run `num_concurrency` levels, each c processes searching in a loop for
  `concurrency_duration` seconds (30 by default), no warm-up excluded: `conc_qps_list` (searches / duration) and
  the per-level latency lists (seconds);
- the headline `qps` is the maximum of `conc_qps_list` over the levels.

Rows made per case result: one `search` row per concurrency level (its QPS and latencies in `source_*` columns),
one `search-serial` row (the serial pass), and on every row `source_headline_qps` and the serial pass's recall
(a property of the built index, which every level searched). Files without the per-level lists (2023's) give the
serial row only. bench's own `qps` and latency columns stay null: VectorDBBench excludes no warm-up and times its
levels differently.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.datasets.filtered import ID_FIELD, LABEL_FIELD, id_threshold, label_value
from bench.errors import UserError
from bench.importers.imported import Imported, file_id, params_json

TOOL = "vectordbbench"
K_DEFAULT = 100  # VectorDBBench's config.K_DEFAULT: the k of every file that does not record one


@dataclass(frozen=True)
class Case:
    """A VectorDBBench standard case: bench's workload of it, the catalog set, and its int filter rate."""

    name: str  # VectorDBBench's CaseType name
    workload: str
    dataset: str | None  # bench's catalog name (None: a set bench does not fetch)
    n: int
    dim: int
    metric: str
    filter_rate: float | None = None


def _c(name: str, workload: str, dataset: str | None, n: int, dim: int, metric: str = "cosine",
       rate: float | None = None) -> Case:
    return Case(name, workload and f"vdbb-{workload}", dataset, n, dim, metric, rate)


# VectorDBBench's CaseType ids (backend/cases.py) -> the case; workloads/vdbb/<workload>.toml runs each in bench
CASES: dict[int, Case] = {
    3: _c("Performance768D100M", "", None, 100_000_000, 768, "l2"),
    4: _c("Performance768D10M", "performance-768d-10m", "cohere-768-10m", 10_000_000, 768),
    5: _c("Performance768D1M", "performance-768d-1m", "cohere-768-1m", 1_000_000, 768),
    6: _c("Performance768D10M1P", "performance-768d-10m-1p", "cohere-768-10m", 10_000_000, 768, rate=0.01),
    7: _c("Performance768D1M1P", "performance-768d-1m-1p", "cohere-768-1m", 1_000_000, 768, rate=0.01),
    8: _c("Performance768D10M99P", "performance-768d-10m-99p", "cohere-768-10m", 10_000_000, 768, rate=0.99),
    9: _c("Performance768D1M99P", "performance-768d-1m-99p", "cohere-768-1m", 1_000_000, 768, rate=0.99),
    10: _c("Performance1536D500K", "performance-1536d-500k", "openai-1536-500k", 500_000, 1536),
    11: _c("Performance1536D5M", "performance-1536d-5m", "openai-1536-5m", 5_000_000, 1536),
    12: _c("Performance1536D500K1P", "performance-1536d-500k-1p", "openai-1536-500k", 500_000, 1536, rate=0.01),
    13: _c("Performance1536D5M1P", "performance-1536d-5m-1p", "openai-1536-5m", 5_000_000, 1536, rate=0.01),
    14: _c("Performance1536D500K99P", "performance-1536d-500k-99p", "openai-1536-500k", 500_000, 1536, rate=0.99),
    15: _c("Performance1536D5M99P", "performance-1536d-5m-99p", "openai-1536-5m", 5_000_000, 1536, rate=0.99),
    17: _c("Performance1024D1M", "", None, 1_000_000, 1024),
    20: _c("Performance1024D10M", "", None, 10_000_000, 1024),
    50: _c("Performance1536D50K", "performance-1536d-50k", "openai-1536-50k", 50_000, 1536),
}
CUSTOM, LABEL_FILTER, INT_FILTER, PERFORMANCE = 101, 300, 400, 501
# DatasetWithSizeType values (and names) -> (catalog set, n, dim)
SIZED: dict[str, tuple[str | None, int, int]] = {
    "Small Cohere (768dim, 100K)": ("cohere-768-100k", 100_000, 768),
    "Medium Cohere (768dim, 1M)": ("cohere-768-1m", 1_000_000, 768),
    "Large Cohere (768dim, 10M)": ("cohere-768-10m", 10_000_000, 768),
    "Small OpenAI (1536dim, 50K)": ("openai-1536-50k", 50_000, 1536),
    "Medium OpenAI (1536dim, 500K)": ("openai-1536-500k", 500_000, 1536),
    "Large OpenAI (1536dim, 5M)": ("openai-1536-5m", 5_000_000, 1536),
    "Medium Bioasq (1024dim, 1M)": (None, 1_000_000, 1024),
    "Large Bioasq (1024dim, 10M)": (None, 10_000_000, 1024),
}
for _name, _key in (("CohereSmall", "Small Cohere (768dim, 100K)"), ("CohereMedium", "Medium Cohere (768dim, 1M)"),
                    ("CohereLarge", "Large Cohere (768dim, 10M)"), ("OpenAISmall", "Small OpenAI (1536dim, 50K)"),
                    ("OpenAIMedium", "Medium OpenAI (1536dim, 500K)"),
                    ("OpenAILarge", "Large OpenAI (1536dim, 5M)")):
    SIZED[_name] = SIZED[_key]
# VectorDBBench's DB names -> bench's backend names (others: lower case)
BACKENDS = {"PgVector": "pgvector", "Milvus": "milvus", "QdrantCloud": "qdrant", "QdrantLocal": "qdrant",
            "WeaviateCloud": "weaviate", "Chroma": "chroma-server", "ZillizCloud": "zilliz-cloud"}
LABELS = {":)": None, "x": "VectorDBBench marked the case failed (label x)",
          "?": "VectorDBBench did not finish the case (label ?: out of range)"}
METRICS = {"cosine": "cosine", "l2": "l2", "euclidean": "l2", "ip": "ip", "dp": "ip"}


def _load(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise UserError(f"{path} is not a readable JSON file ({e})",
                        "give a result file written by VectorDBBench (result_<date>_<label>_<db>.json)") from None
    if not isinstance(data, dict) or not isinstance(data.get("results"), list) or "run_id" not in data:
        raise UserError(f"{path} is JSON but not a VectorDBBench result (no 'run_id' and 'results' list)",
                        "give a result file written by VectorDBBench (result_<date>_<label>_<db>.json)")
    return data


def read(path: Path, *, version: str | None = None, **_: Any) -> Imported:
    """The rows of one VectorDBBench result file; cases bench does not model are listed in `skipped`."""
    data = _load(path)
    source = file_id(path)
    stamp = data.get("timestamp")
    started = datetime.fromtimestamp(stamp, UTC) if isinstance(stamp, int | float) and stamp > 0 else None
    rows, skipped = [], []
    for i, res in enumerate(data["results"]):
        try:
            rows += _case_rows(res, data, source, version, started)
        except _BadField as e:
            raise UserError(f"{path}: result {i} has {e.field} = {json.dumps(e.value)[:60]}, which is not a number",
                            "fix that value in the file (VectorDBBench writes numbers there) or give another file"
                            ) from None
        except (KeyError, TypeError, ValueError, AttributeError) as e:
            skipped.append(f"result {i}: not a performance case bench can read ({type(e).__name__}: {e})")
        except _Skip as e:
            skipped.append(f"result {i}: {e}")
    if not rows:
        raise UserError(f"{path} holds no VectorDBBench performance result bench can import "
                        f"({'; '.join(skipped[:3]) or 'no results'})",
                        "bench imports search performance cases (standard, filtered, custom dataset)")
    label = str(data.get("task_label") or data["run_id"])[:40]
    return Imported(TOOL, version, label, rows, {"vdbb_run_id": data["run_id"],
                                                 "vdbb_task_label": data.get("task_label")}, skipped)


class _Skip(Exception):
    """A case result bench does not model (capacity, streaming, full-text ...): named, not imported."""


def _case_rows(res: dict, data: dict, source: str, version: str | None, started: datetime | None) -> list[dict]:
    task = res["task_config"]
    case_cfg = task["case_config"]
    metrics = res.get("metrics") or {}
    where = case(case_cfg)
    k = int(case_cfg.get("k") or K_DEFAULT)
    index = _index(task.get("db_case_config") or {})
    db = str(task["db"])
    base = {
        "workload": where["workload"], "workload_kind": "ann", "backend": BACKENDS.get(db, db.lower()),
        "source_tool": TOOL, "source_version": version, "source_file": source, "k": k, "trial": 0,
        "dataset_name": where["dataset"], "dataset_n": where["n"], "dataset_dim": where["dim"],
        "dataset_metric": METRICS.get(str(index.pop("metric", where["metric"])).lower(), where["metric"]),
        "dataset_hash": where.get("hash"), "filter": where.get("filter"), "selectivity": where.get("selectivity"),
        "backend_server_version": (task.get("db_config") or {}).get("version") or None,
        "source_params": params_json({"run_id": data["run_id"], "task_label": data.get("task_label"),
                                      "task_config": task, "metrics": metrics, "label": res.get("label"),
                                      "dataset_metadata": res.get("dataset_metadata"), "k_recorded": "k" in case_cfg}),
        "source_headline_qps": _num(metrics.get("qps"), "metrics.qps"),
        "recall": _num(metrics.get("recall"), "metrics.recall"),
        "load_s": _num(metrics.get("insert_duration"), "metrics.insert_duration"),
        "build_s": _num(metrics.get("optimize_duration"), "metrics.optimize_duration"),
        "started_utc": started, "status": "failed" if LABELS.get(res.get("label")) else "ok",
        "status_reason": LABELS.get(res.get("label")), **index,
    }
    if base["status"] != "ok":  # a case it did not finish records zeros, not measurements
        base["recall"] = base["source_headline_qps"] = None
        return [{**_serial_row(base, {}, k, "k" in case_cfg)}]
    return [_serial_row(base, metrics, k, "k" in case_cfg), *_level_rows(base, metrics, case_cfg)]


def case(case_cfg: dict) -> dict[str, Any]:
    """Workload, dataset (catalog name, size, dimension, metric) and filter of a case_config."""
    cid = int(case_cfg["case_id"])
    custom = case_cfg.get("custom_case") or {}
    if cid in CASES:
        c = CASES[cid]
        out = {"workload": c.workload or f"vdbb-{c.name}", "dataset": c.dataset or c.name, "n": c.n, "dim": c.dim,
               "metric": c.metric}
        return {**out, **_int_filter(c.n, c.filter_rate)}
    if cid == CUSTOM:
        return _custom(custom)
    if cid in (INT_FILTER, LABEL_FILTER, PERFORMANCE):
        sized = custom.get("dataset_with_size_type") or custom.get("dataset_name")
        if sized not in SIZED:
            raise _Skip(f"case {cid} on dataset {sized!r}, which bench has no set for")
        name, n, dim = SIZED[sized]
        out = {"workload": f"vdbb-case{cid}", "dataset": name or str(sized), "n": n, "dim": dim, "metric": "cosine"}
        if cid == LABEL_FILTER:
            p = float(custom["label_percentage"])
            if name:
                out["workload"] = "vdbb-" + label_case_workload(p, _sized_value(sized))
            return {**out, "filter": f"{LABEL_FIELD}={label_value(p)}", "selectivity": p}
        rate = custom.get("filter_rate")
        return {**out, **_int_filter(n, float(rate) if rate is not None else None)}
    raise _Skip(f"case type {cid} is not a search performance case bench models")


def _sized_value(sized: str) -> str:
    """A DatasetWithSizeType's value ("Medium Cohere (768dim, 1M)") from its value or its name ("CohereMedium")."""
    return next(k for k, v in SIZED.items() if "(" in k and v == SIZED[sized])


def label_case_name(percentage: float, sized: str) -> str:
    """VectorDBBench's LabelFilterPerformanceCase name: "Label-Filter-1.0% - Medium Cohere (768dim, 1M)"."""
    return f"Label-Filter-{percentage * 100:.1f}% - {sized}"


def label_case_workload(percentage: float, sized: str) -> str:
    """The workloads/vdbb/ file of that case: its name in lower case, % as p, other signs as dashes
    ("label-filter-1.0p-medium-cohere-768dim-1m")."""
    return re.sub(r"[^a-z0-9.]+", "-", label_case_name(percentage, sized).lower().replace("%", "p")).strip("-")


def _int_filter(n: int, rate: float | None) -> dict[str, Any]:
    """VectorDBBench's `id >= int(n * rate)`, labelled as bench's filter kind id_ge labels it."""
    if rate is None:
        return {}
    kept = round(1.0 - rate, 12)
    return {"filter": f"{ID_FIELD}>={id_threshold(n, kept)}", "selectivity": kept}


def _custom(custom: dict) -> dict[str, Any]:
    ds = custom.get("dataset_config") or {}
    n, dim = int(ds["size"]), int(ds["dim"])
    metric = METRICS.get(str(ds.get("metric_type", "cosine")).lower(), "cosine")
    folder = Path(str(ds.get("dir", "")))
    out = {"workload": f"vdbb-{custom.get('name') or 'custom'}", "dataset": str(ds.get("name") or folder.name),
           "n": n, "dim": dim, "metric": metric, "hash": _content_hash(folder, n, metric)}
    if custom.get("use_filter") and custom.get("label_percentage") is not None:
        raise _Skip("a custom dataset case with a label filter, which bench does not run")
    return out


def _content_hash(folder: Path, n: int, metric: str) -> str | None:
    """bench's content hash of a custom dataset folder that is still here (the same bench run of that folder
    computes), so the two results are known to have measured the same vectors; None when it cannot be read."""
    from bench.datasets import DatasetSpec, load
    from bench.datasets.formats import open_path

    if not folder.is_dir():
        return None
    try:
        fs = open_path(folder)
        if fs.test_n is None:
            return None
        spec = DatasetSpec(source="file", path=str(folder), n=n, queries=fs.test_n, dim=fs.dim, metric=metric)
        import tempfile

        with tempfile.TemporaryDirectory() as tmp:
            return load(spec, Path(tmp), progress=False).content_hash
    except (UserError, ValueError):
        return None


def _index(cfg: dict) -> dict[str, Any]:
    """bench's index keys from db_case_config (the names differ per engine: m/M, ef_construction/efConstruction,
    ef_search/ef); the metric, taken out for the dataset."""
    out: dict[str, Any] = {"metric": cfg.get("metric_type", "cosine")}
    kind = cfg.get("index")
    out["index_kind"] = str(kind).lower() if kind else None
    for key, names in (("index_m", ("m", "M", "maxConnections", "hnsw_m")),
                       ("index_ef_construction", ("ef_construction", "efConstruction")),
                       ("ef_search", ("ef_search", "ef", "efSearch"))):
        value = next((cfg[n] for n in names if isinstance(cfg.get(n), int)), None)
        out[key] = value
    quant = {"halfvec": "fp16", "bit": "binary"}.get(str(cfg.get("quantization_type")))
    out["quantization"] = quant
    out["rescore"] = bool(cfg.get("reranking")) if quant else None
    return out


class _BadField(Exception):
    """A field of the source's schema holds a value of the wrong type (a string where a number belongs)."""

    def __init__(self, field: str, value: Any):
        super().__init__(field)
        self.field, self.value = field, value


def _num(v: Any, field: str) -> float | None:
    """A number of the file (null: absent); anything else where a number belongs is refused, never dropped."""
    if v is None:
        return None
    if isinstance(v, int | float) and not isinstance(v, bool):
        return float(v)
    raise _BadField(field, v)


def _us(v: Any, field: str) -> float | None:
    s = _num(v, field)
    return s * 1e6 if s is not None else None


def _serial_row(base: dict, m: dict, k: int, k_recorded: bool) -> dict:
    definition = ("VectorDBBench serial pass: every test query searched once by one process, no warm-up "
                  "excluded; source_p50/p95/p99_us are its serial_latency_p50/p95/p99; recall is its mean recall@k "
                  "against the ground truth it published (bench's definition); source_headline_qps is its "
                  "headline, the maximum QPS over its concurrency levels")
    if not k_recorded:
        definition += f"; the file records no k: VectorDBBench's default {K_DEFAULT} is assumed"
    return {**base, "phase": "serial", "op": "search-serial", "concurrency": 1, "figure_definition": definition,
            **{f"source_p{p}_us": _us(m.get(f"serial_latency_p{p}"), f"metrics.serial_latency_p{p}")
               for p in (50, 95, 99)}}


def _scaled(seconds: float | None) -> float | None:
    return seconds * 1e6 if seconds is not None else None


def _level_rows(base: dict, m: dict, case_cfg: dict) -> list[dict]:
    levels = m.get("conc_num_list") or []
    duration = (case_cfg.get("concurrency_search_config") or {}).get("concurrency_duration")
    out = []
    for i, c in enumerate(levels):
        def at(name: str, i: int = i) -> float | None:
            values = m.get(name) or []
            return _num(values[i] if i < len(values) else None, f"metrics.{name}[{i}]")

        out.append({**base, "phase": "search", "op": "search", "concurrency": int(c), "duration_s": _num(
                        duration, "task_config.case_config.concurrency_search_config.concurrency_duration"),
                    "figure_definition": (
                        "VectorDBBench concurrent search: conc processes each searching the test queries in a "
                        f"loop for {duration or 'its concurrency_duration'} s, no warm-up excluded; source_qps = "
                        "searches / duration at this level (its headline QPS, source_headline_qps, is the maximum "
                        "over the levels); source_p50/p95/p99_us and source_mean_us are its latencies at this "
                        "level; recall is from its serial pass over the same index"),
                    "source_qps": at("conc_qps_list"),
                    **{f"source_{p}_us": _scaled(at(f"conc_latency_{q}_list"))
                       for p, q in (("p99", "p99"), ("p95", "p95"), ("p50", "p50"), ("mean", "avg"))}})
    return out
