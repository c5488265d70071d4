"""The results schema: tidy rows, one per run, backend, workload, trial, phase, operation and parameters.

trials.parquet has every trial row (failed ones too, marked); summary.parquet has the trimmed aggregate of the
ok trials per configuration. Latencies are microseconds. `hdr` is the base64 HdrHistogram V2 encoding of the
successful operations' latencies, so distributions can be merged later.
"""

from __future__ import annotations

from collections.abc import Mapping

import pyarrow as pa

from bench.results import figures, keys

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
    *[pa.field(f, pa.float64()) for f in QUALITY_FIGURES],
    pa.field("service_p50_us", pa.float64()),
    pa.field("service_p99_us", pa.float64()),
    pa.field("service_p999_us", pa.float64()),
    pa.field("achieved_rate", pa.float64()),
    pa.field("late_share", pa.float64()),
    pa.field("generator_lag_share", pa.float64()),
    pa.field("visibility_p50_us", pa.float64()),
    pa.field("visibility_p99_us", pa.float64()),
    pa.field("visibility_probes", pa.int64()),
    pa.field("visibility_missed", pa.int64()),
    pa.field("visibility_stale", pa.int64()),
    pa.field("out_of_range", pa.int64()),
    pa.field("client_cpu_cores", pa.float64()),  # CPU cores the client used on average (processes: workers only)
    pa.field("client_limited", pa.bool_()),
    pa.field("client_cpu_per_node", pa.string()),  # --cluster: JSON {hashed node address: CPU cores used}
    pa.field("served_by", pa.string()),  # read replicas: JSON {server node: searches it served in the trial}
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
    pa.field("server_identity", pa.string()),  # the server process the trial measured (pid and start time)
    pa.field("server_changed", pa.bool_()),  # another server process than the trial before it measured
    pa.field("server_changed_from", pa.string()),  # ... and which one that was
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
    pa.field("run_status", pa.string()),  # "complete" | "partial" | "interrupted" | "failed" | "stopped"
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
CORE_SPREAD = FIGURES + QUALITY_FIGURES + ["service_p99_us", "client_cpu_cores", "server_rss_peak_bytes"]
for _f in CORE_SPREAD:
    SUMMARY_FIELDS += [pa.field(_f, pa.float64()), pa.field(f"{_f}_lo", pa.float64()), pa.field(f"{_f}_hi", pa.float64())]
SUMMARY_FIELDS += [pa.field("client_limited", pa.bool_()), pa.field("hdr", pa.string()),
                   pa.field("percentiles_withheld", pa.string()), pa.field("outliers", pa.string()),
                   pa.field("busy_trials", pa.int64()), pa.field("suspect_trials", pa.int64()),
                   pa.field("server_changes", pa.int64())]
SUMMARY_FIELDS += IMPORT_FIELDS



FIELD_DOCS: dict[str, str] = {
    "trial": "trial number within the configuration (0-based)",
    "status": "ok | failed (see status_reason); an ok trial whose load generator fell behind stays ok, its "
              "status_reason starting 'suspect:'",
    "status_reason": "why the trial failed (error rate above run.error_threshold, ran longer than duration_s + "
                     "run.phase_margin_s, workers lost), or 'suspect: ...' on an ok open-loop trial whose "
                     "generator fell behind (see generator_lag_share); imported rows: the tool's failure label or "
                     "why recall is missing; null otherwise",
    "count": "successful operations in the trial (summary: summed over every trial of the configuration, failed "
             "ones included)",
    "errors": "failed operations (summary: summed over every trial of the configuration, failed ones included)",
    "error_rate": "errors / (count + errors) of the trial, a fraction (0 when nothing ran); above "
                  "run.error_threshold the trial failed",
    "duration_s": "seconds of the trial's window, from the first worker's first timed operation to the last "
                  "worker's end (open loop: at least the scheduled window); qps divides by it; imported rows: "
                  "the tool's own duration, where it gives one",
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
    "service_p50_us": "open loop: median service time of the successful operations (from the actual send, not "
                      "the intended start), microseconds; null in closed loop (no service histogram) and below "
                      "20 samples",
    "service_p99_us": "open loop: 99th percentile service time (from the actual send), microseconds; null in "
                      "closed loop and below 1,000 samples",
    "service_p999_us": "open loop: 99.9th percentile service time (from the actual send), microseconds; null in "
                       "closed loop and below 10,000 samples",
    "achieved_rate": "open loop: operations sent per second of the trial's window (successful and failed), to "
                     "set against target_rate; null in closed loop and on streaming rows (see ingest_achieved)",
    "late_share": "open loop: share of the sends that left more than 1 ms after their intended start, whoever "
                  "was behind (engine or generator); null in closed loop",
    "generator_lag_share": "open loop: share of the sends more than 1 ms late although the worker was free before "
                           "their intended start (the load generator itself fell behind); above 1% the trial "
                           "is suspect unless its median service time is 10 ms or more; null in closed loop",
    "visibility_p50_us": "search under writes: median microseconds from an acknowledged upsert until a search "
                         "for its own vector returned its id (every visibility_sample_every-th upsert is "
                         "probed), over the probes that found it; null with fewer than 20 such probes",
    "visibility_p99_us": "search under writes: 99th percentile of the same visibility lag, microseconds; null with "
                         "fewer than 1,000 probes that found their id (the latency percentiles' sample floor)",
    "visibility_probes": "search under writes: visibility probes whose id a search returned (the sample count of "
                         "visibility_p50_us and visibility_p99_us); null when no probe ran",
    "visibility_stale": "search under writes: visibility probes whose first search after the acknowledged upsert "
                        "did not return its id (stale reads: a read replica behind the primary, or an index not yet "
                        "holding the write); out of visibility_probes + visibility_missed; null when no probe ran",
    "visibility_missed": "search under writes: visibility probes whose id no search returned within 5 s; null "
                         "when no probe ran",
    "out_of_range": "latencies (successful, failed or service time) the histograms could not hold (above 1 "
                    "hour), recorded clamped to the top value and counted here; 0 normally",
    "client_cpu_cores": "CPU cores the client used on average over the trial: worker processes (client-server "
                        "engines) or Ray workers summed; in-process engines: the whole harness process, the "
                        "engine's own threads included; null where not measured (the production cases)",
    "client_limited": "the client was the limit: a worker process used >= 90% of a core (--cluster: or a node's "
                      "workers together 90% of its cores); null for in-process engines (threads: not judged); "
                      "summary: true when any ok trial was",
    "server_rss_peak_bytes": "peak resident memory of the engine's server during the trial, bytes: its process "
                             "tree here, its read replicas' too (psutil, every 0.25 s), or its container (docker "
                             "stats) when Docker "
                             "publishes its port; null for in-process engines and servers not on this machine",
    "server_rss_mean_bytes": "mean of the same server RSS samples, bytes; null where server_rss_peak_bytes is",
    "server_cpu_mean_pct": "mean CPU of the engine's server during the trial, percent of one core summed over its "
                           "process tree (docker: the container's CPU %), every server of the engine on this "
                           "machine together (a primary and its read replicas); null where not sampled or the "
                           "trial was shorter than one sampling interval",
    "error_samples": "JSON list of the first (up to 5) failure messages of the trial, each 'op: ExceptionType: "
                     "message' cut to 500 characters; '[]' when none failed; null on the placeholder row of a "
                     "trial whose workers were lost and on imported rows",
    "hdr_failed": "base64 HdrHistogram (V2) of the failed operations' latencies (until the failure was raised) "
                  "in microseconds; null when none failed",
    "hdr_service": "open loop: base64 HdrHistogram (V2) of the successful operations' service times (from the "
                   "actual send) in microseconds; null in closed loop",
    "host_load1": "the host's 1-minute load average at the trial's end; null where not sampled (the production "
                  "cases)",
    "host_other_cores": "CPU cores (mean over the trial) that processes other than the harness's process tree "
                        "and the engine server's process tree (found by pid) used; a server in a container is "
                        "not subtracted; null where not sampled",
    "host_steal_pct": "CPU steal time during the trial (virtual machines), percent of the host's CPU time; null "
                      "where the kernel gives no steal figure or not sampled",
    "host_busy": "other processes used 0.5 cores or more on average (host_other_cores) or steal was 5% or more: "
                 "the figures may be the machine's, not the engine's; null where not sampled",
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
    "index_requested": "the index the workload asked for: its [index] table with defaults filled in (JSON)",
    "index_substitutions": "what the engine built other than asked, one sentence each (JSON list; '[]' when none)",
    "backend_options": "the adapter's options for the run (JSON; secrets fingerprinted, passwords redacted)",
    "capabilities": "what the adapter declares it supports (its capabilities, JSON)",
    "dataset_queries": "number of query vectors the dataset holds",
    "dataset_metric": "the dataset's distance metric: cosine | l2 | ip",
    "seed": "the workload's dataset.seed: the data, the queries' order and the open-loop schedules are drawn "
            "from it",
    "harness_version": "bench's version (bench.__version__)",
    "git_commit": "the harness checkout's git commit, with '-dirty' when tracked files were changed; null "
                  "outside a git checkout",
    "host_cpu": "the harness machine's CPU model (/proc/cpuinfo)",
    "host_cores": "the harness machine's logical CPU count",
    "host_mem_bytes": "the harness machine's total memory, bytes",
    "host_kernel": "the harness machine's kernel release",
    "host_os": "the harness machine's OS (os-release PRETTY_NAME)",
    "python_version": "the harness's Python version",
    "started_utc": "when the run started, UTC",
    "command": "the bench command line that made the run, secrets fingerprinted and passwords redacted",
    "n_trials": "trial rows of the configuration, failed ones included",
    "n_ok": "ok trials of the configuration (the ones the figures are aggregated from)",
    "n_kept": "ok trials whose qps entered the trimmed median (all of them below 3, else all but the lowest "
              "and the highest)",
    "suspect_trials": "ok trials whose load generator fell behind (status_reason starting 'suspect:')",
    "run_status": "running | complete | partial | interrupted | failed | stopped",
    "percentiles_withheld": "percentiles left out because too few samples support them (P99 needs 1,000, "
                            "P99.9 10,000; summary: of the merged histogram)",
    "outliers": "trials whose figure lies beyond the trials' own noise (3 robust sd and 10%): kept in sight",
    "server_identity": "the server the trial measured, where bench can see it: pid and start time of the local "
                       "process listening on the engine's port (null: a remote server, or an in-process engine)",
    "server_changed": "the trial measured another server process than the trial before it (it restarted between "
                      "them: cold caches); a restart during a trial fails that trial",
    "server_changed_from": "with server_changed: the server the trial before measured",
    "server_changes": "ok trials that measured another server process than the trial before them",
    "busy_trials": "ok trials during which other processes used enough CPU to disturb the measurement",
    "client_cpu_per_node": "--cluster: CPU cores the workers used on each node (JSON, keyed by the node's hashed "
                           "address); client_limited is judged per node",
    "served_by": "an engine with read replicas: the searches of the trial each server node served (JSON, e.g. "
                 "{\"replica1\": 5012, \"replica2\": 4990}); null = one endpoint (the read_nodes key names them)",
    "cluster_nodes": "--cluster: the Ray nodes' addresses (host:port), each as the first 12 hex digits of its "
                     "SHA-256 (JSON list)",
    "ray_version": "--cluster: the Ray version on the driver (every node runs the same)",
    "searchable_s": "seconds from the first insert until the index was searchable (load_s + build_s)",
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


SPREAD = {"_lo": ("lowest", "min"), "_hi": ("highest", "max")}


def _description(name: str) -> str | None:
    try:
        return keys.get(name).description
    except KeyError:
        pass
    if name in FIELD_DOCS:
        return FIELD_DOCS[name]
    fig = figures.get(name)
    if fig is not None:
        return fig.description
    end = name[-3:]
    base = _description(name[:-3]) if end in SPREAD else None
    if base is None:
        return None
    word, fn = SPREAD[end]
    # bench.results.aggregate: the headline is the trimmed median, the spread the min/max of every ok trial
    return (f"summary: the {word} trial value ({fn} over every ok trial with one, the extremes the trimmed "
            f"median dropped included) of: {base}")


def _described(fields: list[pa.Field]) -> list[pa.Field]:
    out = []
    for f in fields:
        desc = _description(f.name)
        out.append(f.with_metadata({"description": desc}) if desc else f)
    return out


def _scenario_fields(summary: bool) -> list[pa.Field]:
    out = []
    for f in figures.all_figures():
        out.append(pa.field(f.name, f.type))
        if summary and not f.text:
            out += [pa.field(f"{f.name}_lo", pa.float64()), pa.field(f"{f.name}_hi", pa.float64())]
    return out


def trials_schema() -> pa.Schema:
    """Every trial row: the registered keys and figures (scenarios add some), the trial's figures, its
    provenance."""
    return pa.schema(_described(keys.fields() + TRIAL_FIELDS + _scenario_fields(False) + PROVENANCE_FIELDS))


def summary_schema() -> pa.Schema:
    """The trimmed aggregate per configuration (the same keys), with `_lo`/`_hi` spreads."""
    return pa.schema(_described(keys.fields() + SUMMARY_FIELDS + _scenario_fields(True) + PROVENANCE_FIELDS))


def spread_figures() -> list[str]:
    """The figures aggregated as a trimmed median with the spread of the ok trials: the core ones and every
    numeric figure a registered scenario declares."""
    return CORE_SPREAD + figures.numeric()


def table(rows: list[Mapping], schema: pa.Schema) -> pa.Table:
    """Rows as an arrow table; a row column the schema does not know is an error (a typo is not a null)."""
    allowed = set(schema.names)
    for r in rows:
        keys.check(r, allowed)
    cols = {f.name: [r.get(f.name) for r in rows] for f in schema}
    return pa.Table.from_pydict(cols, schema=schema)


# The words every output uses for the headline figures (run table, compare, report, regress): one definition each.
DEFINITIONS: dict[str, str] = {
    "qps": "QPS = trimmed median of the ok trials (the lowest and the highest dropped)",
    "recall": "recall = recall@k against exact ground truth, trimmed median of the ok trials",
    "latency": "P50/P99/P99.9 = percentiles of the ok trials' merged latency histogram in microseconds, '-' where "
               "too few samples support one (P50 needs 20, P99 1,000, P99.9 10,000)",
    "spread": "[lo-hi] = the lowest and the highest ok trial, the trimmed ones included",
}
