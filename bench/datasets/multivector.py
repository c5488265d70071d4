"""Multi-vector records: several named vectors per record, and exact ground truth per named vector.

Record i has one vector of every name. The first name is the [dataset] itself (any source: synthetic, the
wordnet set's real 768-d vectors, a file); every other name is an independent synthetic set drawn by the seeded
generator with the dataset's knobs, its own dimension and metric, and seed `dataset.seed + SEED_STRIDE * position`,
with the same n, queries and holdout. Each name has its own queries (query j of name v is searched against
the v vectors) and its own exact ground truth, computed and cached by `Dataset.ground_truth` (bench.datasets.exact).
Loading streams all names batch by batch, so memory stays at one batch per name.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bench.datasets.dataset import Dataset
from bench.datasets.spec import DatasetSpec
from bench.errors import UserError

SEED_STRIDE = 1000  # named vector at position p (p >= 1) is generated with seed dataset.seed + 1000 * p


def vector_dataset_spec(dataset: DatasetSpec, dim: int, metric: str, position: int) -> DatasetSpec:
    """The synthetic DatasetSpec of the named vector at `position` (>= 1): the dataset's generator knobs, sizes
    and seed offset, its own dim and metric."""
    data = dataset.model_dump()
    data.update(source="synthetic", path=None, queries_path=None, neighbors_path=None, ground_truth="exact",
                dim=int(dim), metric=metric, seed=int(dataset.seed) + SEED_STRIDE * position)
    return DatasetSpec.model_validate(data)


@dataclass
class MultiVectorData:
    """One Dataset per named vector (same n, queries and holdout counts); the first is the [dataset]."""

    sets: dict[str, Dataset]

    @property
    def names(self) -> list[str]:
        return list(self.sets)

    @property
    def first(self) -> Dataset:
        return next(iter(self.sets.values()))

    @property
    def n(self) -> int:
        return self.first.n

    @property
    def dims(self) -> dict[str, int]:
        return {k: ds.dim for k, ds in self.sets.items()}

    @property
    def metrics(self) -> dict[str, str]:
        return {k: ds.metric for k, ds in self.sets.items()}

    @property
    def queries(self) -> dict[str, np.ndarray]:
        return {k: ds.queries for k, ds in self.sets.items()}

    @property
    def name(self) -> str:
        return "multi[" + ",".join(f"{k}={ds.name}" for k, ds in self.sets.items()) + "]"

    @property
    def content_hash(self) -> str:
        h = hashlib.sha256()
        for k, ds in self.sets.items():
            h.update(f"{k}:{ds.content_hash};".encode())
        return h.hexdigest()[:16]

    def batches(self, batch_size: int) -> Iterator[tuple[np.ndarray, dict[str, np.ndarray]]]:
        """(ids, {name: vectors}) of the base rows in order, one batch of every name in memory at a time."""
        its = {k: ds.batches(batch_size) for k, ds in self.sets.items()}
        for _ in range(0, self.n, batch_size):
            ids, out = None, {}
            for k, it in its.items():
                i, v = next(it)
                if ids is None:
                    ids = i
                out[k] = v
            assert ids is not None
            yield ids, out

    def ground_truths(self, k: int, progress: bool = True) -> dict[str, np.ndarray]:
        """Exact top-k per named vector: {name: int64 (nq, k)} (cached on disk per set)."""
        return {name: ds.ground_truth(k, progress=progress) for name, ds in self.sets.items()}

    def describe(self) -> dict[str, Any]:
        return {name: ds.describe() for name, ds in self.sets.items()}


def load(dataset: DatasetSpec, fields: list[tuple[str, int, str]], cache_dir: Path, progress: bool = True,
         first: Dataset | None = None) -> MultiVectorData:
    """The named vectors of a workload: `fields` is [(name, dim, metric), ...] (MultiVectorModel.fields); `first`
    is the already loaded [dataset] (loaded here when None)."""
    from bench import datasets

    if first is None:
        first = datasets.load(dataset, cache_dir, progress=progress)
    sets: dict[str, Dataset] = {}
    for pos, (name, dim, metric) in enumerate(fields):
        if pos == 0:
            if first.dim != dim:
                raise UserError(f"The dataset '{first.name}' has dimension {first.dim} but the first named vector "
                                f"'{name}' says {dim}", f"set multivector.vectors.{name} = {first.dim}")
            sets[name] = first
            continue
        ds = datasets.load(vector_dataset_spec(dataset, dim, metric, pos), cache_dir, progress=progress)
        if ds.n != first.n or len(ds.queries) != len(first.queries):
            raise UserError(f"Named vector '{name}' has {ds.n} records and {len(ds.queries)} queries but the dataset "
                            f"has {first.n} and {len(first.queries)}", "set dataset.n and dataset.queries the set holds")
        sets[name] = ds
    return MultiVectorData(sets)
