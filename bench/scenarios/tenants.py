"""[tenants]: multi-tenancy, each engine's native way, as the number of tenants grows (one run sweeps the counts).

The dataset is loaded once. Its rows are dealt (by a seeded permutation) into one equal part per tenant count
of `counts`, and each part's rows into N equal tenants: with counts [1, 10, 100, 1000] and n rows, each part holds
n / 4 rows, and a tenant of count N holds n / (4 N). Every record carries its tenant in the keyword payload field
`tenant` (`n<N>_t<t>`), which the collection names as its tenant field (`CollectionSpec.tenant_field`). The adapter
keeps tenants apart its engine's way (Milvus: a partition key; Qdrant: a keyword index with is_tenant; Weaviate:
native multi-tenancy; pgvector: a tenant column searched with a filtered HNSW scan; Chroma: one collection per
tenant). So every count is measured in the same collection, beside the other counts' tenants. (Parts rather than
one copy of the data per count: an HNSW graph holding several copies of each vector links the copies to one
another, which the tenant filter then cuts away, and recall collapses for a reason that is not multi-tenancy.)

Each count is one configuration: `searches` searches, each a query vector drawn uniformly and a tenant drawn
uniformly or by YCSB's zipfian (tenant 0 the most asked), confined to that tenant (`SearchParams.tenant`). Recall
is against the exact top-k of the searched tenant's records (cached on disk like every reference).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pyarrow as pa
from pydantic import Field, model_validator

from bench.backends.base import BackendOptions, CollectionSpec
from bench.datasets.exact import exact_topk
from bench.datasets.rows import ArrayRows
from bench.errors import UserError
from bench.ops.choosers import ZipfRanks
from bench.results.keys import Key
from bench.scenarios import register
from bench.scenarios.base import Chart, Prep, RunFlags, Scenario, Variant
from bench.scenarios.reference import ExactReference, cache_path, cached_topk
from bench.spec import Strict

TENANT_FIELD = "tenant"
TAKE_BYTES = 256 << 20  # a tenant's rows are copied out for its exact top-k while they fit in this


class TenantsModel(Strict):
    counts: list[int] = Field(default_factory=lambda: [1, 10, 100, 1000], min_length=1,
                              description="tenant counts swept in one run; each is loaded as its own copy of the data")
    choice: Literal["uniform", "zipfian"] = Field("uniform", description="how each search picks its tenant")
    zipf_theta: float = Field(0.99, gt=0, lt=1, description="zipfian: YCSB's skew constant (tenant 0 most asked)")
    searches: int = Field(1000, ge=1, le=1_000_000, description="(query, tenant) pairs searched per tenant count; "
                          "each query vector drawn uniformly from the dataset's queries")

    @model_validator(mode="after")
    def _counts(self) -> TenantsModel:
        if any(c < 1 for c in self.counts) or len(set(self.counts)) != len(self.counts):
            raise ValueError(f"tenants.counts must be distinct positive numbers, got {self.counts}")
        return self


@register
class TenantsScenario(Scenario):
    charts = (Chart(
        "tenants", "QPS, P99 and recall vs tenants",
        "Multi-tenancy: QPS, P99 and recall (against the exact top-k within the searched tenant) against the number "
        "of tenants the data was dealt to, each engine's native multi-tenancy; one line per run and configuration, "
        "gaps where too few samples support a P99.", png="bench.analysis.tenant_plot:against_tenants"),)
    keys = (
        Key("tenants", pa.int64(), "tenants", "variant", "multi-tenancy: tenants the searched copy of the data is dealt "
            "to (each holds n / tenants records); null = no tenants", show=lambda v: f"tenants={int(v):,}"),
        Key("tenant_choice", pa.string(), "choice", "variant", "multi-tenancy: how each search's tenant was drawn "
            "(uniform | zipfian)", show=lambda v: str(v)),
    )
    table = "tenants"
    Options = TenantsModel
    order = 10

    @classmethod
    def validate_spec(cls, options: TenantsModel, spec) -> None:
        super().validate_spec(options, spec)
        others = sorted(t for t in spec.features if t != cls.table)
        if others:
            raise ValueError(f"a [tenants] table is measured on its own, not with [{'], ['.join(others)}]; remove "
                             "one of them")
        part = spec.dataset.n // len(options.counts)
        big = [c for c in options.counts if c > part]
        if big:
            raise ValueError(f"tenants.counts {big} exceed the {part} records each count's part of dataset.n = "
                             f"{spec.dataset.n} holds, so some tenant would hold no record; lower the count or raise "
                             "dataset.n")

    def check(self, backend, options: BackendOptions, flags: RunFlags) -> list[str]:
        reason = backend.supports("tenants", options)
        if reason:
            raise UserError(f"Backend '{backend.name}' has no multi-tenancy, which workload '{self.spec.name}' "
                            f"needs, so it is skipped ({reason.rstrip('.')})",
                            "choose a backend with tenants (`bench backends`)")
        return []

    # -- data -----------------------------------------------------------------------------------------------
    def prepare(self, prep: Prep) -> None:
        ds, o = prep.ds, self.options
        self.ds, self.cache_dir = ds, Path(prep.cache_dir)
        rng = np.random.default_rng([self.spec.dataset.seed, 0x7E4A])
        self.part = np.empty(ds.n, dtype=np.int64)  # each row's count (index into counts)
        self.part[rng.permutation(ds.n)] = np.arange(ds.n) % len(o.counts)
        self.tenant = np.empty(ds.n, dtype=np.int64)  # each row's tenant within its count
        self.pairs: list[tuple[np.ndarray, np.ndarray]] = []  # per count: (query index, tenant) of each search
        nq = len(ds.queries)
        for c, count in enumerate(o.counts):
            rows = np.flatnonzero(self.part == c)
            self.tenant[rows[rng.permutation(len(rows))]] = np.arange(len(rows)) % count
            qidx = rng.integers(0, nq, o.searches)
            if o.choice == "uniform" or count == 1:
                chosen = rng.integers(0, count, o.searches)
            else:
                chosen = ZipfRanks(count, o.zipf_theta).draw(rng.random(o.searches))
            self.pairs.append((qidx, chosen.astype(np.int64)))

    @staticmethod
    def label(count: int, tenant: int) -> str:
        return f"n{count}_t{tenant}"

    def collection(self, c: CollectionSpec) -> CollectionSpec:
        return replace(c, tenant_field=TENANT_FIELD)

    def payload_fields(self) -> dict[str, str]:
        return {TENANT_FIELD: "keyword"}

    def payloads(self, ids: np.ndarray) -> dict[str, list[str]]:
        counts = self.options.counts
        return {TENANT_FIELD: [self.label(counts[c], t) for c, t in zip(self.part[ids].tolist(),
                                                                       self.tenant[ids].tolist(), strict=True)]}

    def describe(self) -> dict[str, Any]:
        return {**self.options.model_dump(mode="json"), "tenant_field": TENANT_FIELD}

    # -- variants -------------------------------------------------------------------------------------------
    def expand(self, v: Variant) -> Iterable[Variant]:
        for c, count in enumerate(self.options.counts):
            qidx, chosen = self.pairs[c]
            yield v.derive(axes={"tenants": count, "tenant_choice": self.options.choice},
                           queries=np.ascontiguousarray(self.ds.queries[qidx]),
                           per_query=tuple({"tenant": self.label(count, int(t))} for t in chosen.tolist()),
                           ref_key={"tenants": count}, reference=lambda _v, k, c=c: self.reference(c, k))

    def reference(self, c: int, k: int) -> ExactReference:
        ds, o = self.ds, self.options
        qidx, chosen = self.pairs[c]
        queries = np.ascontiguousarray(ds.queries[qidx])
        key = {"data": ds.content_hash, "metric": ds.metric, "n": ds.n, "k": k, "seed": self.spec.dataset.seed,
               "counts": o.counts, "part": c, "choice": o.choice, "theta": o.zipf_theta, "searches": o.searches}
        gt = cached_topk(cache_path(self.cache_dir, "tenants", key), (len(queries), k),
                         lambda: tenant_topk(ds, queries, chosen, np.where(self.part == c, self.tenant, -1), k))
        return ExactReference(gt, ds, queries)


def tenant_topk(ds: Any, queries: np.ndarray, chosen: np.ndarray, tenant_of_row: np.ndarray, k: int) -> np.ndarray:
    """Exact top-k of each query among the rows of its chosen tenant (`tenant_of_row`: -1 for rows of no tenant
    searched here), -1 padded."""
    out = np.full((len(queries), k), -1, dtype=np.int64)
    order = np.argsort(tenant_of_row, kind="stable")
    bounds = np.searchsorted(tenant_of_row[order], np.arange(int(tenant_of_row.max()) + 2))
    for t in np.unique(chosen).tolist():
        rows = np.sort(order[bounds[t]:bounds[t + 1]])
        sel = np.flatnonzero(chosen == t)
        if len(rows) * ds.dim * 4 <= TAKE_BYTES:
            local = exact_topk(ArrayRows(ds.base_rows.take(rows)), queries[sel], k, ds.metric)
            out[sel] = np.where(local >= 0, rows[np.maximum(local, 0)], -1)
        else:
            mask = np.zeros(ds.n, dtype=bool)
            mask[rows] = True
            got = exact_topk(ds.base_rows, queries[sel], k, ds.metric, mask=mask)
            out[sel] = got
    return out
