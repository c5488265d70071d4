"""`DatasetSpec`: which vectors a run uses, validated with messages a user understands.

Sources:
- ``"synthetic"`` (default): the clustered generator in `bench.datasets.synthetic`, deterministic from `seed`.
- ``"wordnet-mpnet-768"``: 20,200 real sentence embeddings (see `bench.datasets.wordnet`).
- ``"file"``: `path` to a .npy, .fvecs/.bvecs, .hdf5 (ann-benchmarks layout) or .parquet file, or a folder in the
  VectorDBBench layout (train.parquet / test.parquet / neighbors.parquet).
- a catalog name (``"sift-128-euclidean"``, ``"cohere-768-1m"``, ...) fetched with ``bench datasets fetch NAME``.

For file and catalog sources `dim` and `metric` default to what the file says: when they are left out of the spec
the file's values are taken, and when they are given they must agree with the file (dim) or override it (metric).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

Metric = Literal["cosine", "l2", "ip"]

BUILTIN_SOURCES = ("synthetic", "wordnet-mpnet-768", "file")


class DatasetSpec(BaseModel):
    """What to load: source, sizes, metric, and the synthetic generator's knobs."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    source: str = Field("synthetic", description="synthetic | wordnet-mpnet-768 | file | a fetched catalog name")
    path: str | None = Field(None, description="for source = 'file': .npy, .fvecs, .bvecs, .hdf5, .parquet or a folder")
    queries_path: str | None = Field(None, description="optional separate query file (npy, fvecs, parquet)")
    neighbors_path: str | None = Field(None, description="optional published neighbours (.ivecs, .npy) of the queries")
    n: int = Field(10_000, description="base vectors; file sources take the first n rows")
    queries: int = Field(1_000, description="query vectors, distinct from the base vectors")
    holdout: int = Field(0, description="extra vectors, distinct from base and queries, for updates")
    dim: int = Field(768, description="vector dimension; must match the file for file sources")
    metric: Metric = Field("cosine", description="distance: cosine, l2 (Euclidean) or ip (inner product)")
    seed: int = Field(42, description="every random choice of the generator flows from it")
    ground_truth: Literal["exact", "file"] = Field(
        "exact", description="exact: computed by the harness and cached; file: the neighbours published in the file")

    # -- synthetic generator (see bench.datasets.synthetic for the model) ----------------------------------------
    clusters: int = Field(100, description="topics: cluster centres")
    subclusters: int = Field(20, description="sub-topics per cluster, spread inside the cluster's subspace")
    cluster_rank: int = Field(32, description="dimension of each cluster's own subspace")
    center_rank: int = Field(32, description="dimension of the subspace the cluster centres lie in")
    center_spread: float = Field(1.0, description="spread of the cluster centres")
    subcluster_spread: float = Field(1.0, description="spread of the sub-topic centres around their cluster centre")
    local_spread: float = Field(0.3, description="spread of the vectors around their sub-topic centre")
    noise: float = Field(2.4, description="isotropic noise over all dimensions (norm of the noise vector)")
    mean_offset: float = Field(0.3, description="a direction shared by all vectors, as real embeddings have")

    @field_validator("n", "queries", "dim", "clusters", "subclusters", "cluster_rank", "center_rank")
    @classmethod
    def _positive(cls, v: int, info) -> int:
        if v <= 0:
            raise ValueError(f"{info.field_name} must be a positive whole number, got {v}")
        return v

    @field_validator("holdout", "seed")
    @classmethod
    def _not_negative(cls, v: int, info) -> int:
        if v < 0:
            raise ValueError(f"{info.field_name} must be 0 or more, got {v}")
        return v

    @field_validator("center_spread", "subcluster_spread", "local_spread", "noise", "mean_offset")
    @classmethod
    def _not_negative_float(cls, v: float, info) -> float:
        if not v >= 0:  # also rejects NaN
            raise ValueError(f"{info.field_name} must be 0 or more, got {v}")
        return v

    @field_validator("dim")
    @classmethod
    def _dim_bound(cls, v: int) -> int:
        if v > 65_536:
            raise ValueError(f"dim = {v} is larger than any engine accepts (65,536 at most)")
        return v

    @field_validator("source")
    @classmethod
    def _source_name(cls, v: str) -> str:
        v = v.strip()
        if not v:
            raise ValueError("source must name a dataset: synthetic, wordnet-mpnet-768, file or a catalog name")
        return v

    @model_validator(mode="after")
    def _paths_fit_source(self) -> DatasetSpec:
        if self.source == "file" and not self.path:
            raise ValueError("source = 'file' needs a path (a .npy, .fvecs, .hdf5 or .parquet file)")
        if self.source != "file" and self.path:
            raise ValueError(f"path is only read when source = 'file' (source is '{self.source}'); "
                             "set source = 'file' or remove path")
        for name in ("queries_path", "neighbors_path"):
            if getattr(self, name) and self.source != "file":
                raise ValueError(f"{name} is only read when source = 'file'")
        return self

    def explicitly_set(self, field: str) -> bool:
        """True when the user wrote this field (so a file's own value does not replace it)."""
        return field in self.model_fields_set

    def generator_params(self) -> dict[str, object]:
        """The fields that shape synthetic vectors (not their counts)."""
        return {k: getattr(self, k) for k in ("dim", "metric", "seed", "clusters", "subclusters", "cluster_rank",
                                              "center_rank", "center_spread", "subcluster_spread", "local_spread",
                                              "noise", "mean_offset")}
