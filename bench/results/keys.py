"""THE list of key axes of a result row: what a row measured.

Every other place that needs to know what tells two rows apart derives it from here: the parquet schema, the
runner's progress labels and interval-log file stems, the trimmed aggregation, compare, report, plots, regress,
the live exporter and the notebook. Two rows that differ in any key never share a line, a histogram or a frontier.

A key is one line in `KEYS`. A scenario that adds an axis of its own declares it (`Scenario.keys`), and it is
registered here when the scenario is, so a new kind of workload needs no edit in this file.

Groups:
- `identity`: which run, engine, workload and operation;
- `data`: the dataset as loaded (name, size, dimension, content hash);
- `index`: the index as built (read back from the engine where it reports it, else as asked);
- `engine`: the engine's server and client versions (regress pairs across them: that is what it compares);
- `load`: how the load was offered (k, concurrency, open-loop rate, client nodes of a Ray cluster);
- `variant`: the scenario axes of one configuration (ef_search, filter, named vector, fusion, ...).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

GROUPS = ("identity", "data", "index", "engine", "load", "variant")


def _plain(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:g}"
    return str(v)


@dataclass(frozen=True)
class Key:
    """One key axis of a result row."""

    name: str
    type: pa.DataType
    label: str  # short heading, and the name in a configuration label ("ef" in "ef=64")
    group: str
    description: str
    show: Callable[[Any], str] | None = field(default=None, compare=False)  # the value in a label; default label=v
    in_label: bool = True  # part of a configuration's label (identity keys are shown in their own columns)
    match: bool = True  # baseline and candidate rows must agree on it to be compared (`bench regress`)

    def text(self, value: Any) -> str:
        """`ef=64`, `filter sel_10=1`, ...: this key's part of a configuration label."""
        if self.show is not None:
            return self.show(value)
        return f"{self.label}={_plain(value)}"


def _rate(v: Any) -> str:
    return f"rate={float(v):,.0f}/s"


def _rescore(v: Any) -> str:
    return "rescore" if v else "no-rescore"


def _hash(v: Any) -> str:
    return f"data#{str(v)[:8]}"


_BUILTIN: list[Key] = [
    Key("run_id", pa.string(), "run", "identity", "the run's unique id (results/<run_id>/)", in_label=False,
        match=False),
    Key("workload", pa.string(), "workload", "identity", "the workload's name", in_label=False),
    Key("workload_kind", pa.string(), "kind", "identity", "ann | ycsb", in_label=False, match=False),
    Key("backend", pa.string(), "backend", "identity", "the adapter's registry name", in_label=False),
    Key("phase", pa.string(), "phase", "identity", "search | ycsb", in_label=False, match=False),
    Key("source_tool", pa.string(), "tool", "identity", "which tool measured the row: null = bench itself; "
        "vectordbbench or ann-benchmarks for results brought in by `bench import`", in_label=False),
    Key("role", pa.string(), "role", "identity", "null = a measurement of the engine; sentinel = the fixed reference "
        "measurement a suite records beside it (bench regress reads the machine's drift from it, never mixes it in)",
        in_label=False),
    Key("ab_arm", pa.string(), "arm", "variant", "`bench ab`: A (the baseline side) or B (the candidate side) of an "
        "interleaved A/B run; null = not an A/B run", show=lambda v: f"arm {v}", match=False),
    Key("op", pa.string(), "op", "identity", "search, filtered-search, read, update, insert, scan, "
        "read-modify-write, or total (a YCSB mix)", in_label=False),
    Key("dataset_name", pa.string(), "dataset", "data", "the dataset's name", show=lambda v: str(v)),
    Key("dataset_n", pa.int64(), "n", "data", "records loaded", show=lambda v: f"n={int(v):,}"),
    Key("dataset_dim", pa.int64(), "dim", "data", "dimension of the vectors searched"),
    Key("dataset_hash", pa.string(), "data", "data", "content hash of the vectors loaded", show=_hash),
    Key("index_kind", pa.string(), "index", "index", "index kind as built (hnsw, flat, ivf, ...)",
        show=lambda v: str(v)),
    Key("index_m", pa.int64(), "M", "index", "HNSW M as built (else as asked)"),
    Key("index_ef_construction", pa.int64(), "efc", "index", "HNSW ef_construction as built (else as asked)"),
    Key("backend_server_version", pa.string(), "server", "engine", "the engine server's version (client-server "
        "engines)", show=lambda v: f"server {v}", match=False),
    Key("backend_client_version", pa.string(), "client", "engine", "the engine's client library version",
        show=lambda v: f"client {v}", match=False),
    Key("quantization", pa.string(), "quant", "index", "index.quantization asked for: int8, fp16, pq, binary; "
        "null = none", show=lambda v: str(v)),
    Key("rescore", pa.bool_(), "rescore", "index", "quantized: candidates rescored with the original vectors; "
        "null = unquantized", show=_rescore),
    Key("ef_search", pa.int64(), "ef", "variant", "the search-time beam width (HNSW ef)"),
    Key("k", pa.int64(), "k", "load", "neighbours asked per search", in_label=False),
    Key("concurrency", pa.int64(), "c", "load", "workers issuing operations"),
    Key("target_rate", pa.float64(), "rate", "load", "open loop: offered ops/s (all workers); null = closed loop",
        show=_rate),
    Key("arrival", pa.string(), "arrival", "load", "open loop: constant | poisson", in_label=False),
    Key("read_nodes", pa.string(), "reads", "load", "the server nodes searches were spread over (read replicas), "
        "e.g. replica1+replica2 or primary+replica1; null = one endpoint", show=lambda v: f"reads={v}"),
    Key("client_nodes", pa.int64(), "nodes", "load", "--cluster: client machines (Ray nodes) the workers ran on; "
        "null = one machine (the local pool)", show=lambda v: f"nodes={int(v)}"),
    Key("workers_per_node", pa.int64(), "wpn", "load", "--cluster: workers on each node (null when uneven)",
        in_label=False),
]

_KEYS: dict[str, Key] = {k.name: k for k in _BUILTIN}


def register(key: Key) -> Key:
    """Add a key axis (a scenario's own). Registering the same key twice is harmless; a different one under an
    existing name is a bug."""
    if key.group not in GROUPS:
        raise ValueError(f"key {key.name!r}: group must be one of {GROUPS}, got {key.group!r}")
    old = _KEYS.get(key.name)
    if old is not None and old != key:
        raise ValueError(f"key {key.name!r} is already registered differently")
    if old is None:  # after the last key of its group, so labels and columns read group by group
        items = list(_KEYS.items())
        last = max((i for i, (_, k) in enumerate(items) if k.group == key.group), default=len(items) - 1)
        items.insert(last + 1, (key.name, key))
        _KEYS.clear()
        _KEYS.update(items)
    return key


def all_keys() -> list[Key]:
    return list(_KEYS.values())


def names(*groups: str) -> list[str]:
    """Key names in registry order, of the given groups (all when none)."""
    return [k.name for k in _KEYS.values() if not groups or k.group in groups]


def match_names() -> list[str]:
    """The keys on which a baseline and a candidate row must agree to be compared."""
    return [k.name for k in _KEYS.values() if k.match]


def get(name: str) -> Key:
    try:
        return _KEYS[name]
    except KeyError:
        raise KeyError(f"{name!r} is not a result key; known keys: {', '.join(_KEYS)}") from None


def fields() -> list[pa.Field]:
    return [pa.field(k.name, k.type) for k in _KEYS.values()]


def _present(v: Any) -> bool:
    if v is None:
        return False
    try:
        return not (isinstance(v, float) and math.isnan(v))
    except TypeError:
        return True


def label(row: Mapping[str, Any], names_: Iterable[str] | None = None,
          groups: Iterable[str] = ("load", "variant")) -> str:
    """A configuration's label from its key values: `ef=64 filter sel_10=1 rrf` (only keys that are set and
    shown in labels, of `groups`; `names_` instead names them, e.g. the keys that vary between a chart's rows)."""
    groups = tuple(groups)
    chosen = list(names_) if names_ is not None else [k.name for k in _KEYS.values()
                                                       if k.in_label and k.group in groups]
    parts = []
    for name in chosen:
        key = get(name)
        v = row.get(name)
        if _present(v):
            parts.append(key.text(v))
    return " ".join(parts)


def stem(row: Mapping[str, Any]) -> str:
    """A file-name-safe stem of a configuration (variant and load keys), e.g. `ef64.filter-sel_10-1.rate100`."""
    parts = []
    for k in _KEYS.values():
        if k.group not in ("variant", "load") or k.name in ("k", "concurrency", "arrival", "selectivity"):
            continue
        v = row.get(k.name)
        if _present(v):
            text = f"{v:g}" if isinstance(v, float) else str(v)
            parts.append(f"{k.label}{''.join(c if c.isalnum() or c in '_-' else '-' for c in text)}")
    return ".".join(parts) or "default"


def check(row: Mapping[str, Any], allowed: Iterable[str]) -> None:
    """A row may only carry known columns: a misspelled key is a bug, not a silent null."""
    unknown = set(row) - set(allowed)
    if unknown:
        raise KeyError(f"result row has unknown column(s) {sorted(unknown)}; add them to bench/results/keys.py "
                       "(a key) or bench/results/schema.py (a figure)")
