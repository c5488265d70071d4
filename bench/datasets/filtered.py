"""Payload attributes with controlled selectivity, and exact filtered ground truth (cached).

For each selectivity s the harness adds one int payload field, e.g. `sel_10` for s = 0.1, equal to 1 on exactly
round(s * n) records chosen by a permutation seeded from the dataset seed and s, else 0. A filtered search asks
for `Eq("sel_10", 1)`; its ground truth is the exact top-k over the records where the field is 1.

Under writes (a YCSB mix) a key keeps its payload: an upsert of row id i carries the fields of row i, and a new
key k >= n (a YCSB insert) gets field = 1 when a seeded hash of (seed, s, k) falls below s, so about s of the
inserted keys qualify (`KeyPayloads`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from bench.backends.query import Eq
from bench.datasets._io import ensure_dir, save_npy_atomic
from bench.datasets.exact import exact_topk


@dataclass(frozen=True)
class FilterCase:
    """One filtered configuration: the payload field, the value searched for and the share of records kept."""

    field: str
    selectivity: float
    value: int = 1

    @property
    def label(self) -> str:
        """The `filter` result column, e.g. "sel_10=1"."""
        return f"{self.field}={self.value}"

    @property
    def query(self) -> Eq:
        """`SearchParams.filter` for this case."""
        return Eq(self.field, self.value)


def field_name(selectivity: float) -> str:
    """`sel_50` for 0.5, `sel_10` for 0.1, `sel_1` for 0.01, `sel_0_1` for 0.001."""
    pct = format(round(selectivity * 100, 6), "g")
    return "sel_" + pct.replace(".", "_").replace("-", "m")


def cases(selectivities: Iterable[float]) -> list[FilterCase]:
    return [FilterCase(field_name(s), float(s)) for s in selectivities]


def selected_count(n: int, selectivity: float) -> int:
    return int(round(selectivity * n))


def mask_for(n: int, selectivity: float, seed: int) -> np.ndarray:
    """Boolean (n,): True on exactly round(selectivity * n) rows, chosen by a permutation seeded from (seed, s)."""
    rng = np.random.default_rng([int(seed), 0x5E1, int(round(selectivity * 1_000_000))])
    mask = np.zeros(n, dtype=bool)
    mask[rng.permutation(n)[:selected_count(n, selectivity)]] = True
    return mask


def masks(n: int, fcases: Sequence[FilterCase], seed: int) -> dict[str, np.ndarray]:
    return {c.field: mask_for(n, c.selectivity, seed) for c in fcases}


def payload_fields(fcases: Sequence[FilterCase]) -> dict[str, str]:
    """`CollectionSpec.payload_fields` declaring every selectivity field as an int, so engines index it."""
    return {c.field: "int" for c in fcases}


def payloads(ids: np.ndarray, field_masks: dict[str, np.ndarray]) -> list[dict[str, int]]:
    """One payload per id (ids are row numbers): every selectivity field, 1 or 0."""
    cols = {f: m[ids].astype(np.int64).tolist() for f, m in field_masks.items()}
    return [{f: cols[f][j] for f in cols} for j in range(len(ids))]


_U64 = np.uint64


def _splitmix64(x: np.ndarray) -> np.ndarray:
    """SplitMix64's finaliser, element-wise on uint64 (wrapping arithmetic)."""
    with np.errstate(over="ignore"):
        z = x + _U64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> _U64(30))) * _U64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> _U64(27))) * _U64(0x94D049BB133111EB)
        return z ^ (z >> _U64(31))


def inserted_mask(keys: np.ndarray, selectivity: float, seed: int) -> np.ndarray:
    """Boolean mask of keys written after the load (ids >= n): True where a hash of (seed, s, key), uniform in
    [0, 1), is below s. Depends on nothing but its arguments, so every worker and the recall agree."""
    salt = _splitmix64(np.array([(int(seed) * 1_000_003 + int(round(selectivity * 1_000_000))) & (2**64 - 1)],
                                dtype=np.uint64))[0]
    h = _splitmix64(np.asarray(keys, dtype=np.int64).astype(np.uint64) ^ salt)
    return (h >> _U64(11)).astype(np.float64) * (1.0 / 2**53) < selectivity


class KeyPayloads:
    """The payload of every key a run may write: rows 0..n-1 from the seeded masks of the load, keys >= n
    (inserts under writes) from `inserted_mask`. A key's payload never changes."""

    def __init__(self, n: int, fcases: Sequence[FilterCase], seed: int):
        self.n, self.seed = int(n), int(seed)
        self.cases = tuple(fcases)
        self.masks = masks(self.n, self.cases, self.seed)

    def mask(self, field: str, keys: np.ndarray) -> np.ndarray:
        """Which of `keys` have `field` = 1."""
        keys = np.asarray(keys, dtype=np.int64)
        case = next(c for c in self.cases if c.field == field)
        out = np.zeros(keys.shape, dtype=bool)
        old = keys < self.n
        out[old] = self.masks[field][keys[old]]
        if not old.all():
            out[~old] = inserted_mask(keys[~old], case.selectivity, self.seed)
        return out

    def payload(self, key: int) -> dict[str, int]:
        """The payload an upsert or insert of `key` carries: every selectivity field, 1 or 0."""
        if key < self.n:
            return {c.field: int(self.masks[c.field][key]) for c in self.cases}
        k = np.array([key], dtype=np.int64)
        return {c.field: int(inserted_mask(k, c.selectivity, self.seed)[0]) for c in self.cases}


@lru_cache(maxsize=4)
def key_payloads(n: int, fcases: tuple[FilterCase, ...], seed: int) -> KeyPayloads:
    """`KeyPayloads`, built once per (n, cases, seed) in a process (workers reuse it across phases)."""
    return KeyPayloads(n, fcases, seed)


def _gt_path(cache_dir: Path, content_hash: str, metric: str, k: int, case: FilterCase, n: int, seed: int) -> Path:
    return (cache_dir / "groundtruth" /
            f"{content_hash}-{metric}-k{k}-{case.field}-n{n}-seed{seed}.npy")


def ground_truth(ds, k: int, case: FilterCase, mask: np.ndarray, seed: int) -> np.ndarray:
    """Exact top-k of each query among the rows where `mask` is True, -1 padded: int64 (nq, k). Cached beside
    the plain ground truth, keyed by the data hash, metric, k, field, n and seed."""
    path = _gt_path(ds.cache_dir, ds.content_hash, ds.metric, k, case, ds.n, seed)
    if path.exists():
        try:
            gt = np.load(path, allow_pickle=False)
            if gt.shape == (len(ds.queries), k):
                return gt
        except (OSError, ValueError):
            pass
    gt = exact_topk(ds.base_rows, ds.queries, k, ds.metric, mask=mask)
    ensure_dir(path.parent)
    save_npy_atomic(path, gt)
    return gt
