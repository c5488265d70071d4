"""[multivector]: several named vectors per record, each with its own index. The first named vector is the
[dataset] itself; every other one comes from the synthetic generator with its own dim, metric and seed. Each
(ef_search, vector name) is one configuration, scored against the exact ground truth of that vector."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import replace
from typing import Any, Literal

import pyarrow as pa
from pydantic import Field, model_validator

from bench.backends.base import BackendOptions, CollectionSpec
from bench.datasets import multivector
from bench.datasets.spec import DatasetSpec
from bench.errors import UserError
from bench.results.keys import Key
from bench.scenarios import register
from bench.scenarios.base import Prep, RunFlags, Scenario, Variant
from bench.spec import Strict

VECTOR_NAME = re.compile(r"^[a-z][a-z0-9_]{0,31}$")
RESERVED_VECTOR_NAMES = {"id", "payload", "embedding", "bench_id", "vector"}


class NamedVectorModel(Strict):
    dim: int = Field(ge=1, le=65_536, description="dimension of this named vector")
    metric: Literal["cosine", "l2", "ip"] | None = Field(None, description="its own metric; default dataset.metric")


class MultiVectorModel(Strict):
    vectors: dict[str, int | NamedVectorModel] = Field(
        min_length=1, description="name -> dimension, or name -> { dim = ..., metric = ... }")

    @model_validator(mode="after")
    def _names(self) -> MultiVectorModel:
        for name, v in self.vectors.items():
            if not VECTOR_NAME.match(name) or name in RESERVED_VECTOR_NAMES:
                raise ValueError(f"vector name '{name}' must be lower-case letters, digits and underscores, start "
                                 f"with a letter, at most 32 characters, and not one of "
                                 f"{', '.join(sorted(RESERVED_VECTOR_NAMES))}")
            if isinstance(v, int) and not 1 <= v <= 65_536:
                raise ValueError(f"the dimension of vector '{name}' must be between 1 and 65,536, got {v}")
        return self

    def fields(self, dataset: DatasetSpec) -> list[tuple[str, int, str]]:
        """(name, dim, metric) of every named vector, in the order written."""
        return [(name, v, dataset.metric) if isinstance(v, int) else (name, v.dim, v.metric or dataset.metric)
                for name, v in self.vectors.items()]


@register
class MultiVectorScenario(Scenario):
    keys = (
        Key("vector_name", pa.string(), "vector", "variant", "multi-vector records: the named vector searched"),
    )
    table = "multivector"
    Options = MultiVectorModel
    order = 10

    @classmethod
    def validate_spec(cls, options: MultiVectorModel, spec) -> None:
        super().validate_spec(options, spec)
        first, dim, metric = options.fields(spec.dataset)[0]
        if dim != spec.dataset.dim:
            raise ValueError(f"the first named vector '{first}' is the [dataset] vectors, so its dimension "
                             f"{dim} must equal dataset.dim = {spec.dataset.dim}")
        if metric != spec.dataset.metric:
            raise ValueError(f"the first named vector '{first}' is the [dataset] vectors, so its metric "
                             f"'{metric}' must equal dataset.metric = '{spec.dataset.metric}'")

    def check(self, backend, options: BackendOptions, flags: RunFlags) -> list[str]:
        reason = backend.supports("multi_vector", options)
        if reason:
            raise UserError(f"Backend '{backend.name}' cannot store several named vectors per record, which "
                            f"workload '{self.spec.name}' needs, so it is skipped: {reason.rstrip('.')}",
                            "choose a backend with multi_vector (`bench backends` lists capabilities)")
        return []

    def prepare(self, prep: Prep) -> None:
        self.data = multivector.load(self.spec.dataset, self.options.fields(self.spec.dataset), prep.cache_dir,
                                     prep.progress, first=prep.ds)

    def collection(self, c: CollectionSpec) -> CollectionSpec:
        return replace(c, vectors=self.data.dims, vector_metrics=self.data.metrics)

    def source(self) -> Any:
        return self.data

    def run_row(self) -> dict[str, Any]:
        return {"dataset_name": self.data.name, "dataset_hash": self.data.content_hash}

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "vectors": self.data.describe()}

    def expand(self, v: Variant) -> Iterable[Variant]:
        for name, ds in self.data.sets.items():
            yield v.derive(axes={"vector_name": name}, params={"vector_name": name}, data=ds,
                           row={"dataset_dim": ds.dim, "dataset_metric": ds.metric})
