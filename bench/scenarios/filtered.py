"""[filter]: searches carry a payload filter pushed into the engine; recall is against the exact top-k of the
records the filter keeps. One configuration per selectivity (a YCSB mix: one run of the mix per selectivity, its
filtered searches on that field, its writes keeping every record's payload)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Literal

import numpy as np
import pyarrow as pa
from pydantic import Field, model_validator

from bench.backends.base import BackendOptions
from bench.datasets import filtered
from bench.errors import UserError
from bench.results.keys import Key
from bench.scenarios import register
from bench.scenarios.base import Prep, RunFlags, Scenario, Variant
from bench.spec import Strict


class FilterModel(Strict):
    """One payload field per selectivity (1 on exactly round(s*n) records), searched with an equality filter."""

    selectivities: list[float] = Field(default_factory=lambda: [0.5, 0.1, 0.01, 0.001], min_length=1,
                                       description="shares of the records each filter lets through, one "
                                       "configuration each")
    kind: Literal["eq", "range", "id_ge", "label"] = Field(
        "eq", description="eq: one 0/1 field per selectivity searched with field = 1; range: one int field `rank` "
        "(a seeded permutation of the rows) searched with rank < round(s * n); id_ge: VectorDBBench's int filter, "
        "one int field `file_id` (the dataset file's id of each row) searched with file_id >= int(n * (1 - s)); "
        "label: VectorDBBench's label filter, the string field `labels` of the set's scalar_labels.parquet "
        "searched with labels == \"label_1p\" for s = 0.01 (s is its label_percentage)")
    mode: Literal["sweep"] = Field("sweep", description="sweep: one configuration per selectivity at each ef_search "
                                   "(YCSB: one run of the mix per selectivity, its filtered searches on that field)")

    @model_validator(mode="after")
    def _fractions(self) -> FilterModel:
        bad = [s for s in self.selectivities if not 0 < s <= 1]
        if bad:
            raise ValueError(f"selectivities are fractions of the records in (0, 1], got {bad}")
        if len(set(self.selectivities)) != len(self.selectivities):
            raise ValueError(f"selectivities must be distinct, got {self.selectivities}")
        if self.kind == "label":
            other = [s for s in self.selectivities if not any(abs(s - p) < 1e-12 for p in filtered.LABEL_PERCENTAGES)]
            if other:
                raise ValueError(f"filter.kind = 'label' takes VectorDBBench's label percentages "
                                 f"{list(filtered.LABEL_PERCENTAGES)} as selectivities (its files carry no other "
                                 f"labels), got {other}")
        return self


@register
class FilterScenario(Scenario):
    keys = (
        Key("filter", pa.string(), "filter", "variant", "the filter every (filtered) search carries, e.g. sel_10=1; "
            "null = unfiltered", show=lambda v: f"filter {v}"),
        Key("selectivity", pa.float64(), "sel", "variant", "share of the records the filter keeps", in_label=False),
    )
    table = "filter"
    Options = FilterModel
    order = 20
    kinds = ("ann", "ycsb")

    @classmethod
    def validate_spec(cls, options: FilterModel, spec) -> None:
        fsearch = spec.ycsb.filtered_search_proportion if spec.kind == "ycsb" and spec.ycsb is not None else 0.0
        if spec.kind != "ann" and not fsearch:
            raise ValueError("a [filter] table is only read when kind = 'ann', or with "
                             "ycsb.filtered_search_proportion > 0; remove it, or give filtered searches a share of "
                             "the mix")
        if options.kind in ("id_ge", "label") and spec.kind != "ann":
            raise ValueError(f"filter.kind = '{options.kind}' (VectorDBBench's filter on the file's ids or labels) "
                             "is for ann workloads; a YCSB mix writes keys the file has no id or label for")
        empty = [s for s in options.selectivities if round(s * spec.dataset.n) == 0]
        if empty:
            raise ValueError(f"filter.selectivities {empty} select no record of dataset.n = {spec.dataset.n}; "
                             "raise dataset.n or the selectivity")

    def check(self, backend, options: BackendOptions, flags: RunFlags) -> list[str]:
        reason = backend.supports("filters" if self.options.kind in ("eq", "label") else "range_filters", options)
        if reason:
            raise UserError(f"Backend '{backend.name}' cannot push payload filters into its search, which workload "
                            f"'{self.spec.name}' needs, so it is skipped ({reason.rstrip('.')})",
                            "choose a backend with filters (`bench backends`)")
        return []

    def prepare(self, prep: Prep) -> None:
        n, seed = prep.ds.n, self.spec.dataset.seed
        self.cases = filtered.cases(self.options.selectivities, kind=self.options.kind, n=n)
        ids = prep.ds.row_ids if self.options.kind == "id_ge" else None  # the file's ids (VectorDBBench's filter)
        labels = filtered.read_labels(prep.ds) if self.options.kind == "label" else None  # scalar_labels.parquet
        self.masks = filtered.masks(n, self.cases, seed, ids, labels)  # by case key
        self.columns = filtered.columns(n, self.cases, seed, ids, labels)  # the payload fields' values, by field
        none = [c.label for c in self.cases if not self.masks[c.key].any()]
        if none:
            raise UserError(f"No record of dataset '{prep.ds.name}' (n = {n:,}) matches the filter {none[0]} of "
                            f"workload '{self.spec.name}'", "raise dataset.n or choose another selectivity")
        # under writes (a YCSB mix) a key keeps its payload; ann-only kinds (id_ge, label) have no writes
        self.key_payloads = None if labels is not None else filtered.key_payloads(n, tuple(self.cases), seed)

    def payload_fields(self) -> dict[str, str]:
        return filtered.payload_fields(self.cases)

    def payloads(self, ids: np.ndarray) -> Mapping[str, Sequence[Any]]:
        return {f: (col[ids] if col.dtype == object else col[ids].astype(np.int64)).tolist()
                for f, col in self.columns.items()}

    def expand(self, v: Variant) -> Iterable[Variant]:
        kp = self.key_payloads
        for case in self.cases:
            mask = self.masks[case.key]
            yield v.derive(axes={"filter": case.label, "selectivity": case.selectivity},
                           params={"filter": case.query}, mask=mask if v.mask is None else (v.mask & mask),
                           ref_key={"filter": case.label}, task={"payload_cases": tuple(self.cases) if kp else ()},
                           allowed_keys=None if kp is None else (lambda keys, c=case: kp.mask(c, keys)))
