"""Payload attributes with controlled selectivity, and exact filtered ground truth (cached).

Two kinds of filtered case, each searched with a typed filter (`bench.backends.query`):

- `eq` (equality): for each selectivity s one int payload field, e.g. `sel_10` for s = 0.1, equal to 1 on exactly
  round(s * n) records chosen by a permutation seeded from the dataset seed and s, else 0. A search asks for
  `Eq("sel_10", 1)`, labelled `sel_10=1`.
- `range`: one int payload field `rank` holding a seeded permutation of 0..n-1 over the records, shared by every
  selectivity. A search asks for `Range("rank", lt=round(s * n))`, labelled e.g. `rank<300`, which keeps exactly
  round(s * n) records.
- `id_ge` (VectorDBBench's int filter): one int payload field `file_id` holding each record's id in the dataset
  file (VectorDBBench's parquet `id` column; the row number where the file has none). A search asks for
  `Range("file_id", gte=int(n * (1 - s)))`, labelled e.g. `file_id>=10000`: VectorDBBench's `id >= int(size *
  filter_rate)` with filter_rate = 1 - s, so its "Filter 1%" case (rate 0.01) is s = 0.99 and "Filter 99%" is
  s = 0.01. It keeps exactly n - int(n * (1 - s)) records when the ids are 0..n-1 (a whole VectorDBBench set).
- `label` (VectorDBBench's label filter, its `LabelFilter` in backend/filter.py): one string payload field
  `labels` from the set's `scalar_labels.parquet` (columns id, labels), joined on the file's ids. A search asks for
  `Eq("labels", label_value(s))`, labelled e.g. `labels=label_1p`, with s VectorDBBench's `label_percentage`
  (0.01 -> "label_1p", 0.001 -> "label_0.1p"); the records kept are those the file gives that label (about s of
  them), and its ground truth is VectorDBBench's `neighbors_labels_label_1p.parquet`.

The records a case keeps are `query.evaluate(case.query, columns)` over the payload columns; its ground truth is
the exact top-k among them.

Under writes (a YCSB mix) a key keeps its payload: an upsert of row id i carries the fields of row i, and a new
key k >= n (a YCSB insert) gets, from a seeded hash of k, `sel_<pct>` = 1 when a hash of (seed, s, k) falls below
s, and a `rank` uniform in [0, n) from a hash of (seed, k); so about s of the inserted keys qualify either way
(`KeyPayloads`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from bench.backends import query
from bench.backends.query import Eq, Filter, Range
from bench.datasets._io import ensure_dir, save_npy_atomic
from bench.datasets.exact import exact_topk

KINDS = ("eq", "range", "id_ge", "label")
RANK_FIELD = "rank"
ID_FIELD = "file_id"  # not `id`: engines keep the record key under that name
LABEL_FIELD = "labels"  # VectorDBBench's LabelFilter.label_field, the column of scalar_labels.parquet
LABELS_FILE = "scalar_labels.parquet"  # VectorDBBench's BaseDataset.scalar_labels_file
# VectorDBBench's Cohere and OpenAI scalar_label_percentages (backend/dataset.py): the labels its files carry
LABEL_PERCENTAGES = (0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5)


def label_value(percentage: float) -> str:
    """VectorDBBench's `LabelFilter.label_value`: 0.01 -> "label_1p", 0.2 -> "label_20p", 0.005 -> "label_0.5p"."""
    p = percentage * 100
    return f"label_{int(p)}p" if p >= 1 else f"label_{p:.1f}p"


def label_ground_truth_file(percentage: float) -> str:
    """VectorDBBench's `LabelFilter.groundtruth_file`: neighbors_labels_label_1p.parquet for 0.01."""
    return f"neighbors_{LABEL_FIELD}_{label_value(percentage)}.parquet"


@dataclass(frozen=True)
class FilterCase:
    """One filtered configuration: the payload field, the share of records kept, and `value`: for `eq` the value
    searched for, for `range` the exclusive upper bound on the rank (= the number of records kept)."""

    field: str
    selectivity: float
    value: int | str = 1
    kind: str = "eq"

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown filter kind {self.kind!r}; use one of {KINDS}")

    @property
    def query(self) -> Filter:
        """`SearchParams.filter` for this case: `Eq(field, value)` (eq, label) or `Range(field, lt=value)`."""
        if self.kind == "range":
            return Range(self.field, lt=self.value)
        if self.kind == "id_ge":
            return Range(self.field, gte=self.value)
        return Eq(self.field, self.value)

    @property
    def label(self) -> str:
        """The `filter` result column, e.g. "sel_10=1" or "rank<300"."""
        return query.label(self.query)

    @property
    def key(self) -> str:
        """Unique among a run's cases and safe in a file name: the field for `eq` (`sel_10`), else e.g.
        `rank_lt300` (every range case filters the same field)."""
        if self.kind == "eq":
            return self.field
        if self.kind == "label":
            return f"{self.field}_{self.value}"
        return f"{self.field}_{'ge' if self.kind == 'id_ge' else 'lt'}{self.value}"


def field_name(selectivity: float) -> str:
    """`sel_50` for 0.5, `sel_10` for 0.1, `sel_1` for 0.01, `sel_0_1` for 0.001."""
    pct = format(round(selectivity * 100, 6), "g")
    return "sel_" + pct.replace(".", "_").replace("-", "m")


def cases(selectivities: Iterable[float], kind: str = "eq", n: int | None = None) -> list[FilterCase]:
    """One case per selectivity. `range` cases need the record count `n` (their bound is round(s * n))."""
    if kind in ("range", "id_ge") and n is None:
        raise ValueError(f"{kind} filter cases need the record count n (their bound depends on it)")
    if kind == "range":
        return [FilterCase(RANK_FIELD, float(s), selected_count(n, s), "range") for s in selectivities]
    if kind == "id_ge":
        return [FilterCase(ID_FIELD, float(s), id_threshold(n, s), "id_ge") for s in selectivities]
    if kind == "label":
        return [FilterCase(LABEL_FIELD, float(s), label_value(s), "label") for s in selectivities]
    return [FilterCase(field_name(s), float(s), kind=kind) for s in selectivities]


def selected_count(n: int, selectivity: float) -> int:
    return int(round(selectivity * n))


def id_threshold(n: int, selectivity: float) -> int:
    """VectorDBBench's int-filter bound `int(size * filter_rate)`, filter_rate = 1 - s (the share filtered out),
    rounded to 12 places first so s = 0.99 gives VectorDBBench's 0.01 exactly."""
    return int(n * round(1.0 - selectivity, 12))


def mask_for(n: int, selectivity: float, seed: int) -> np.ndarray:
    """Boolean (n,): True on exactly round(selectivity * n) rows, chosen by a permutation seeded from (seed, s)."""
    rng = np.random.default_rng([int(seed), 0x5E1, int(round(selectivity * 1_000_000))])
    mask = np.zeros(n, dtype=bool)
    mask[rng.permutation(n)[:selected_count(n, selectivity)]] = True
    return mask


def rank_column(n: int, seed: int) -> np.ndarray:
    """int64 (n,): the `rank` of each row, a permutation of 0..n-1 seeded from the dataset seed alone."""
    rng = np.random.default_rng([int(seed), 0x4A4E])  # a stream apart from every sel_ field's
    return rng.permutation(n).astype(np.int64)


def columns(n: int, fcases: Sequence[FilterCase], seed: int, ids: np.ndarray | None = None,
            labels: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """The payload columns the cases need, field -> (n,): each `sel_<pct>` as 0/1, `rank` once, `file_id`
    from `ids` (the file's id of each row; row numbers when None), all int64; `labels` (strings) as given."""
    out: dict[str, np.ndarray] = {}
    for c in fcases:
        if c.field in out:
            continue
        if c.kind == "label":
            if labels is None:
                raise ValueError("label filter cases need the set's labels column (read_labels)")
            out[c.field] = np.asarray(labels[:n])
        elif c.kind == "range":
            out[c.field] = rank_column(n, seed)
        elif c.kind == "id_ge":
            out[c.field] = np.arange(n, dtype=np.int64) if ids is None else np.asarray(ids[:n], dtype=np.int64)
        else:
            out[c.field] = mask_for(n, c.selectivity, seed).astype(np.int64)
    return out


def masks(n: int, fcases: Sequence[FilterCase], seed: int, ids: np.ndarray | None = None,
          labels: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Boolean (n,) per case, keyed by `FilterCase.key` (the field, for `eq`): the rows its filter keeps."""
    cols = columns(n, fcases, seed, ids, labels)
    return {c.key: query.evaluate(c.query, cols) for c in fcases}


def payload_fields(fcases: Sequence[FilterCase]) -> dict[str, str]:
    """`CollectionSpec.payload_fields` declaring every field the cases filter on (an int; `labels` a keyword), so
    engines index it."""
    return {c.field: "keyword" if c.kind == "label" else "int" for c in fcases}


def read_labels(ds) -> np.ndarray:
    """The `labels` of each base row of a VectorDBBench set (str array (n,)): its `scalar_labels.parquet` (id,
    labels) joined on the file's id of each row (`ds.row_ids`; row numbers when the file has none)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from bench.errors import UserError

    where = ds.paths.get("scalar_labels")
    if not where:
        raise UserError(f"Dataset '{ds.name}' has no {LABELS_FILE} beside its vectors, which a label filter reads",
                        "fetch a VectorDBBench set that has label files again (`bench datasets fetch NAME`), or "
                        "remove [filter] kind = 'label'")
    try:
        table = pq.read_table(where, columns=["id", LABEL_FIELD])
    except (pa.ArrowException, OSError, KeyError, ValueError) as e:
        raise UserError(f"The labels file {where} cannot be read as VectorDBBench's (id, {LABEL_FIELD}) "
                        f"({str(e).splitlines()[0]})", "fetch the set again") from None
    file_ids = table.column("id").to_numpy().astype(np.int64)
    values = np.asarray(table.column(LABEL_FIELD).to_pylist(), dtype=object)
    want = np.asarray(ds.row_ids if ds.row_ids is not None else np.arange(ds.n), dtype=np.int64)[:ds.n]
    order = np.argsort(file_ids, kind="stable")
    pos = np.searchsorted(file_ids[order], want)
    found = (pos < len(order)) & (file_ids[order][np.minimum(pos, len(order) - 1)] == want)
    if not found.all():
        raise UserError(f"The labels file {where} has no row for id {int(want[~found][0])} of the vectors",
                        "fetch the set again (its files are from different versions)")
    return values[order[pos]]


def payloads(ids: np.ndarray, cols: Mapping[str, np.ndarray]) -> list[dict[str, int]]:
    """One payload per id (ids are row numbers): every payload column's value, from `columns` (the boolean
    `masks` of `eq` cases, keyed by their fields, give the same payloads)."""
    vals = {f: np.asarray(m)[ids].astype(np.int64).tolist() for f, m in cols.items()}
    return [{f: vals[f][j] for f in vals} for j in range(len(ids))]


_U64 = np.uint64


def _splitmix64(x: np.ndarray) -> np.ndarray:
    """SplitMix64's finaliser, element-wise on uint64 (wrapping arithmetic)."""
    with np.errstate(over="ignore"):
        z = x + _U64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> _U64(30))) * _U64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> _U64(27))) * _U64(0x94D049BB133111EB)
        return z ^ (z >> _U64(31))


def _uniform(keys: np.ndarray, salt_of: int) -> np.ndarray:
    """A hash of each key, uniform in [0, 1), salted by `salt_of`."""
    salt = _splitmix64(np.array([salt_of & (2**64 - 1)], dtype=np.uint64))[0]
    h = _splitmix64(np.asarray(keys, dtype=np.int64).astype(np.uint64) ^ salt)
    return (h >> _U64(11)).astype(np.float64) * (1.0 / 2**53)


def inserted_mask(keys: np.ndarray, selectivity: float, seed: int) -> np.ndarray:
    """Boolean mask of keys written after the load (ids >= n): True where a hash of (seed, s, key), uniform in
    [0, 1), is below s. Depends on nothing but its arguments, so every worker and the recall agree."""
    return _uniform(keys, int(seed) * 1_000_003 + int(round(selectivity * 1_000_000))) < selectivity


def inserted_rank(keys: np.ndarray, n: int, seed: int) -> np.ndarray:
    """int64 `rank` of keys written after the load (ids >= n): a hash of (seed, key), uniform in [0, n), so
    `rank < round(s * n)` keeps about s of them. Depends on nothing but its arguments."""
    u = _uniform(keys, int(seed) * 1_000_003 + 0x4A4E_0000_0000)
    return np.minimum((u * n).astype(np.int64), n - 1)


class KeyPayloads:
    """The payload of every key a run may write: rows 0..n-1 from the seeded columns of the load, keys >= n
    (inserts under writes) from `inserted_mask` / `inserted_rank`. A key's payload never changes."""

    def __init__(self, n: int, fcases: Sequence[FilterCase], seed: int):
        self.n, self.seed = int(n), int(seed)
        self.cases = tuple(fcases)
        self.columns = columns(self.n, self.cases, self.seed)
        self.masks = {c.key: query.evaluate(c.query, self.columns) for c in self.cases}  # rows 0..n-1, as `masks`
        self._by_field = {c.field: c for c in reversed(self.cases)}  # the first case of each field

    def _case(self, which: FilterCase | str) -> FilterCase:
        if isinstance(which, FilterCase):
            return which
        found = [c for c in self.cases if which in (c.key, c.field)]
        if len(found) != 1:
            raise KeyError(f"{which!r} names {len(found)} of the cases {[c.key for c in self.cases]}; pass the case")
        return found[0]

    def _column(self, field: str, keys: np.ndarray) -> np.ndarray:
        """The int64 value of payload field `field` for each key."""
        out = np.empty(keys.shape, dtype=np.int64)
        old = keys < self.n
        out[old] = self.columns[field][keys[old]]
        if not old.all():
            case = self._by_field[field]
            new = keys[~old]
            out[~old] = (inserted_rank(new, self.n, self.seed) if case.kind == "range"
                         else inserted_mask(new, case.selectivity, self.seed))
        return out

    def mask(self, case: FilterCase | str, keys: np.ndarray) -> np.ndarray:
        """Which of `keys` the case's filter keeps (a case, or its key / field when that names one case)."""
        c = self._case(case)
        keys = np.asarray(keys, dtype=np.int64)
        return query.evaluate(c.query, {f: self._column(f, keys) for f in query.payload_fields_of(c.query)})

    def payload(self, key: int) -> dict[str, int]:
        """The payload an upsert or insert of `key` carries: every payload field of the cases."""
        k = np.array([key], dtype=np.int64)
        return {f: int(self._column(f, k)[0]) for f in self.columns}


@lru_cache(maxsize=4)
def key_payloads(n: int, fcases: tuple[FilterCase, ...], seed: int) -> KeyPayloads:
    """`KeyPayloads`, built once per (n, cases, seed) in a process (workers reuse it across phases)."""
    return KeyPayloads(n, fcases, seed)


def _gt_path(cache_dir: Path, content_hash: str, metric: str, k: int, case: FilterCase, n: int, seed: int) -> Path:
    """Equality cases keep the path they always had; range cases name their kind, so the two never share a file."""
    what = case.field if case.kind == "eq" else f"{case.kind}-{case.key}"
    return cache_dir / "groundtruth" / f"{content_hash}-{metric}-k{k}-{what}-n{n}-seed{seed}.npy"


def ground_truth(ds, k: int, case: FilterCase, mask: np.ndarray | None, seed: int) -> np.ndarray:
    """Exact top-k of each query among the rows the case keeps (`mask`, or computed from the case when None),
    -1 padded: int64 (nq, k). Cached beside the plain ground truth, keyed by the data hash, metric, k, kind,
    case, n and seed."""
    path = _gt_path(ds.cache_dir, ds.content_hash, ds.metric, k, case, ds.n, seed)
    if path.exists():
        try:
            gt = np.load(path, allow_pickle=False)
            if gt.shape == (len(ds.queries), k):
                return gt
        except (OSError, ValueError):
            pass
    if mask is None:
        mask = masks(ds.n, [case], seed)[case.key]
    gt = exact_topk(ds.base_rows, ds.queries, k, ds.metric, mask=mask)
    ensure_dir(path.parent)
    save_npy_atomic(path, gt)
    return gt
