"""The results schema: tidy rows, one per run, backend, workload, trial, phase, operation and parameters.

trials.parquet has every trial row (failed ones too, marked); summary.parquet has the trimmed aggregate of the
ok trials per configuration. Latencies are microseconds. `hdr` is the base64 HdrHistogram V2 encoding of the
successful operations' latencies, so distributions can be merged later.
"""

from __future__ import annotations

from collections.abc import Mapping

import pyarrow as pa

from bench.results import keys

# hybrid: overlap@k of the engine's fused results with the exact dense-only and the exact BM25-only top-k
HYBRID_FIGURES = ["recall_dense", "recall_bm25"]

# the production cases (bench/scenarios/streaming.py, capacity.py, searchable.py): numeric figures of their rows
CASE_FIGURES = ["ingest_achieved", "idle_p99_us", "p99_factor",
                "vectors_held", "rss_bytes", "disk_bytes", "rss_per_million_bytes", "disk_per_million_bytes",
                "searchable_after_s", "searchable_found", "first_query_us", "restart_s"]
CASE_TEXT = ["ended_by", "memory_from", "disk_from"]
# quality beyond recall@k (bench.metrics.quality), from the kept ids; null where it does not apply
QUALITY_FIGURES = ["recall_at_1", "recall_at_10", "recall_at_100", "ndcg", "distance_ratio"]

FIGURES = ["qps", "mean_us", "p50_us", "p90_us", "p99_us", "p999_us", "max_us", "recall"]

TRIAL_FIELDS = [
    pa.field("trial", pa.int64()),
    pa.field("status", pa.string()),  # "ok" | "failed"; an ok trial may be "suspect: ..." in status_reason
    pa.field("status_reason", pa.string()),
    pa.field("count", pa.int64()),
    pa.field("errors", pa.int64()),
    pa.field("error_rate", pa.float64()),
    pa.field("duration_s", pa.float64()),
    *[pa.field(f, pa.float64()) for f in FIGURES],
    # recall@k of each query index (NaN: not searched in the trial); `bench regress` pairs it across runs
    pa.field("recall_per_query", pa.list_(pa.float32())),
    *[pa.field(f, pa.float64()) for f in HYBRID_FIGURES],
    *[pa.field(f, pa.float64()) for f in CASE_FIGURES],
    *[pa.field(f, pa.string()) for f in CASE_TEXT],
    *[pa.field(f, pa.float64()) for f in QUALITY_FIGURES],
    pa.field("service_p50_us", pa.float64()),
    pa.field("service_p99_us", pa.float64()),
    pa.field("service_p999_us", pa.float64()),
    pa.field("achieved_rate", pa.float64()),
    pa.field("late_share", pa.float64()),
    pa.field("generator_lag_share", pa.float64()),
    pa.field("visibility_p50_us", pa.float64()),
    pa.field("visibility_p99_us", pa.float64()),
    pa.field("visibility_missed", pa.int64()),
    pa.field("out_of_range", pa.int64()),
    pa.field("client_cpu_cores", pa.float64()),  # CPU cores the client used on average (processes: workers only)
    pa.field("client_limited", pa.bool_()),
    pa.field("client_cpu_per_node", pa.string()),  # --cluster: JSON {hashed node address: CPU cores used}
    pa.field("server_rss_peak_bytes", pa.int64()),
    pa.field("server_rss_mean_bytes", pa.float64()),
    pa.field("server_cpu_mean_pct", pa.float64()),
    pa.field("error_samples", pa.string()),
    pa.field("hdr", pa.string()),
    pa.field("hdr_failed", pa.string()),
    pa.field("hdr_service", pa.string()),
    pa.field("percentiles_withheld", pa.string()),  # comma-separated: percentiles too few samples support
    pa.field("host_load1", pa.float64()),  # the host's 1-minute load average at the trial's end
    pa.field("host_other_cores", pa.float64()),  # cores used by processes other than bench and the engine
    pa.field("host_steal_pct", pa.float64()),  # CPU steal time during the trial (virtual machines), percent
    pa.field("host_busy", pa.bool_()),  # other processes took enough CPU to disturb the measurement
    # the ids each sampled search returned, kept beside the trial (`bench rescore` recomputes quality from them)
    pa.field("ids_file", pa.string()),
]

PROVENANCE_FIELDS = [
    pa.field("load_s", pa.float64()),
    pa.field("build_s", pa.float64()),
    pa.field("searchable_s", pa.float64()),  # load_s + build_s: from the first insert until searchable
    pa.field("index_requested", pa.string()),  # JSON
    pa.field("index_built", pa.string()),  # JSON, as read back from the engine
    pa.field("index_substitutions", pa.string()),  # JSON list of sentences; "[]" when none
    pa.field("index_size_bytes", pa.int64()),  # the engine's own figure for its index (adapter's info(); README)
    # in-process engines: RSS growth of the harness process from create() to the index read back (the engine's
    # memory for the loaded, indexed collection, plus allocator slack); null for client-server engines
    pa.field("client_rss_growth_bytes", pa.int64()),
    pa.field("backend_options", pa.string()),  # JSON
    pa.field("price_per_hour", pa.float64()),  # backend.price_per_hour / --price-per-hour; null = no price
    pa.field("currency", pa.string()),  # its ISO 4217 code; null without a price
    pa.field("capabilities", pa.string()),  # JSON
    pa.field("dataset_queries", pa.int64()),
    pa.field("dataset_metric", pa.string()),
    pa.field("seed", pa.int64()),
    pa.field("harness_version", pa.string()),
    pa.field("git_commit", pa.string()),
    pa.field("host_cpu", pa.string()),
    pa.field("host_cores", pa.int64()),
    pa.field("host_mem_bytes", pa.int64()),
    pa.field("host_kernel", pa.string()),
    pa.field("host_os", pa.string()),
    pa.field("python_version", pa.string()),
    pa.field("started_utc", pa.timestamp("us", tz="UTC")),
    pa.field("command", pa.string()),
    pa.field("cluster_nodes", pa.string()),  # --cluster: JSON list of the nodes' addresses, hashed
    pa.field("ray_version", pa.string()),  # --cluster: the Ray version of the driver and the nodes
    pa.field("run_status", pa.string()),  # "complete" | "interrupted" | "failed"
]

# `bench import`: rows another tool measured. Its figures stay in these columns, named for what they are; bench's
# own figure columns (qps, latencies) stay null where the other tool measured them differently.
IMPORT_FIELDS = [
    pa.field("source_version", pa.string()),
    pa.field("source_file", pa.string()),
    pa.field("source_params", pa.string()),  # JSON: every parameter the tool recorded (secrets removed)
    pa.field("figure_definition", pa.string()),
    pa.field("source_qps", pa.float64()),
    pa.field("source_headline_qps", pa.float64()),
    pa.field("source_mean_us", pa.float64()),
    pa.field("source_p50_us", pa.float64()),
    pa.field("source_p95_us", pa.float64()),
    pa.field("source_p99_us", pa.float64()),
]
TRIAL_FIELDS += IMPORT_FIELDS

SUMMARY_FIELDS = [
    pa.field("n_trials", pa.int64()),
    pa.field("n_ok", pa.int64()),
    pa.field("n_kept", pa.int64()),
    pa.field("count", pa.int64()),
    pa.field("errors", pa.int64()),
]
for _f in FIGURES + HYBRID_FIGURES + CASE_FIGURES + QUALITY_FIGURES + ["service_p99_us", "client_cpu_cores", "server_rss_peak_bytes"]:
    SUMMARY_FIELDS += [pa.field(_f, pa.float64()), pa.field(f"{_f}_lo", pa.float64()), pa.field(f"{_f}_hi", pa.float64())]
SUMMARY_FIELDS += [pa.field("client_limited", pa.bool_()), pa.field("hdr", pa.string()),
                   pa.field("percentiles_withheld", pa.string()), pa.field("outliers", pa.string()),
                   pa.field("busy_trials", pa.int64()), pa.field("suspect_trials", pa.int64())]
SUMMARY_FIELDS += [pa.field(f, pa.string()) for f in CASE_TEXT]  # the distinct values of the ok trials
SUMMARY_FIELDS += IMPORT_FIELDS



FIELD_DOCS: dict[str, str] = {
    "trial": "trial number within the configuration (0-based)",
    "status": "ok | failed | invalid (see status_reason)",
    "count": "successful operations in the trial (summary: summed over the kept trials)",
    "errors": "failed operations",
    "qps": "successful operations per second of the trial's window",
    "mean_us": "mean latency, microseconds", "p50_us": "median latency, microseconds",
    "p90_us": "90th percentile latency, microseconds", "p99_us": "99th percentile latency, microseconds",
    "p999_us": "99.9th percentile latency, microseconds", "max_us": "maximum latency, microseconds",
    "recall": "recall@k against the harness's exact reference (hybrid: agreement with the exact fused ranking)",
    "recall_at_1": "recall@1 of the sampled searches (the first returned id is the exact nearest), read from "
                   "the same k-neighbour searches as recall; null when k < 1",
    "recall_at_10": "recall@10: |first 10 returned & exact top-10| / 10, from the same searches; null when k < 10",
    "recall_at_100": "recall@100, from the same searches; null when k < 100 (the searches asked for fewer "
                     "neighbours: run with search.k >= 100 for it)",
    "ndcg": "NDCG@k, binary relevance (a returned id in the exact top-k counts 1/log2(position + 2)), over the "
            "ideal ranking",
    "distance_ratio": "ann-benchmarks' rel: summed distances of the returned ids / summed distances of the exact "
                      "top-k (1 = exact); l2 and cosine only, null for inner product and where unknown",
    "recall_per_query": "recall@k of each query index (NaN: not searched in the trial)",
    "hdr": "base64 HdrHistogram (V2) of the successful operations' latencies in microseconds; mergeable",
    "ids_file": "file (relative to the run folder) holding the ids each sampled search returned",
    "price_per_hour": "what an hour of the engine's machine costs (backend.price_per_hour or --price-per-hour); "
                      "compare and report derive queries per currency unit and the cost of a million queries",
    "currency": "ISO 4217 code of price_per_hour (null without a price)",
    "load_s": "seconds inserting the data", "build_s": "seconds from the last insert until searchable",
    "index_size_bytes": "the engine's own figure for its index, where it gives one (see each adapter's info())",
    "client_rss_growth_bytes": "in-process engines: the harness process's RSS growth from before the collection is "
                               "created until its index is built (the engine's memory, and what the load left)",
    "index_built": "the index as the engine reports it built (JSON)",
    "run_status": "running | complete | interrupted | failed | stopped",
    "percentiles_withheld": "percentiles left out because too few samples support them (P99 needs 1,000, "
                            "P99.9 10,000; summary: of the merged histogram)",
    "outliers": "trials whose figure lies beyond the trials' own noise (3 robust sd and 10%): kept in sight",
    "busy_trials": "ok trials during which other processes used enough CPU to disturb the measurement",
    "client_cpu_per_node": "--cluster: CPU cores the workers used on each node (JSON, keyed by the node's hashed "
                           "address); client_limited is judged per node",
    "cluster_nodes": "--cluster: the Ray nodes' addresses (host:port), each as the first 12 hex digits of its "
                     "SHA-256 (JSON list)",
    "ray_version": "--cluster: the Ray version on the driver (every node runs the same)",
    "searchable_s": "seconds from the first insert until the index was searchable (load_s + build_s)",
    "ingest_achieved": "streaming: vectors per second acknowledged (the offered rate, if the engine kept up)",
    "idle_p99_us": "streaming: the search P99 with no ingest (the knee's baseline), microseconds",
    "p99_factor": "streaming: the knee is the highest sustained ingest rate with search P99 within this x idle",
    "vectors_held": "capacity: vectors acknowledged in the collection when the insert loop ended",
    "rss_bytes": "capacity: the engine's resident memory at the end (see memory_from)",
    "disk_bytes": "capacity: the engine's data on disk at the end (see disk_from)",
    "rss_per_million_bytes": "capacity: RSS growth per million vectors inserted by the capacity loop",
    "disk_per_million_bytes": "capacity: disk growth per million vectors inserted by the capacity loop",
    "ended_by": "capacity: what ended the insert loop (refused, memory cap, disk cap, time limit, vector limit)",
    "memory_from": "capacity: which process(es) the RSS is of", "disk_from": "capacity: where the disk size is read",
    "searchable_after_s": "searchable: seconds from the last acknowledged insert until every inserted id was found "
                          "by its own vector (null: not all within the timeout)",
    "searchable_found": "searchable: share of the inserted ids found by their own vector by the end",
    "first_query_us": "searchable: latency of the first search after the restart or reopen, microseconds",
    "restart_s": "searchable: seconds from the restart's start until the engine answered again",
    "source_version": "imported rows: the version of the tool that measured them, where known",
    "source_file": "imported rows: the file they came from, with its sha256",
    "source_params": "imported rows: every parameter the tool recorded (JSON; secrets removed)",
    "figure_definition": "imported rows: how the tool measured the figures of the row (its source_* columns)",
    "source_qps": "imported rows: the tool's own throughput figure at this configuration (see figure_definition)",
    "source_headline_qps": "imported rows: the tool's headline throughput of the case (VectorDBBench: the maximum "
                           "over its concurrency levels; ann-benchmarks: 1 / the best pass's mean query time)",
    "source_mean_us": "imported rows: the tool's mean latency, microseconds",
    "source_p50_us": "imported rows: the tool's median latency, microseconds",
    "source_p95_us": "imported rows: the tool's 95th percentile latency, microseconds",
    "source_p99_us": "imported rows: the tool's 99th percentile latency, microseconds",
}


def _described(fields: list[pa.Field]) -> list[pa.Field]:
    out = []
    for f in fields:
        try:
            desc = keys.get(f.name).description
        except KeyError:
            desc = FIELD_DOCS.get(f.name)
        out.append(f.with_metadata({"description": desc}) if desc else f)
    return out


def trials_schema() -> pa.Schema:
    """Every trial row: the registered keys (scenarios may add some), the trial's figures, its provenance."""
    return pa.schema(_described(keys.fields() + TRIAL_FIELDS + PROVENANCE_FIELDS))


def summary_schema() -> pa.Schema:
    """The trimmed aggregate per configuration (the same keys), with `_lo`/`_hi` spreads."""
    return pa.schema(_described(keys.fields() + SUMMARY_FIELDS + PROVENANCE_FIELDS))


def table(rows: list[Mapping], schema: pa.Schema) -> pa.Table:
    """Rows as an arrow table; a row column the schema does not know is an error (a typo is not a null)."""
    allowed = set(schema.names)
    for r in rows:
        keys.check(r, allowed)
    cols = {f.name: [r.get(f.name) for r in rows] for f in schema}
    return pa.Table.from_pydict(cols, schema=schema)
