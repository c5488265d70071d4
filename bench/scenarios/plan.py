"""The plan of one run: the workload's kind scenario and its feature scenarios, folded together."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from bench.backends.base import BackendOptions, CollectionSpec
from bench.scenarios import kinds, tables
from bench.scenarios.base import KindScenario, Prep, Reference, RunFlags, Scenario, Variant, merge_payloads
from bench.scenarios.reference import exact


@dataclass
class Plan:
    kind: KindScenario
    features: list[Scenario]
    _refs: dict[int, Reference] = field(default_factory=dict)

    @classmethod
    def of(cls, spec: Any) -> Plan:
        feats = [tables()[t](opts, spec) for t, opts in spec.features.items()]
        feats.sort(key=lambda s: s.order)
        kind = kinds()[spec.kind](spec.kind_options, spec)
        assert isinstance(kind, KindScenario)
        return cls(kind, feats)

    @property
    def scenarios(self) -> list[Scenario]:
        return [self.kind, *self.features]

    def check(self, backend: Any, options: BackendOptions, flags: RunFlags) -> list[str]:
        """Every scenario's refusal (raised) or warnings, before anything is written."""
        return [w for s in self.scenarios for w in s.check(backend, options, flags)]

    def prepare(self, prep: Prep) -> None:
        for s in self.scenarios:
            s.prepare(prep)

    def collection(self, c: CollectionSpec) -> CollectionSpec:
        fields: dict[str, str] = {}
        for s in self.scenarios:
            fields.update(s.payload_fields())
            c = s.collection(c)
        return replace(c, payload_fields={**c.payload_fields, **fields})

    def source(self, ds: Any) -> Any:
        """What is loaded: the dataset, or the one scenario's replacement (e.g. several named vectors)."""
        found = [src for s in self.scenarios if (src := s.source()) is not None]
        if len(found) > 1:
            raise ValueError("two scenarios replace the loaded records")
        return found[0] if found else ds

    def payloads(self, ids: np.ndarray) -> list[dict[str, Any]] | None:
        return merge_payloads([c for s in self.scenarios if (c := s.payloads(ids)) is not None], len(ids))

    def run_row(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for s in self.scenarios:
            out.update(s.run_row())
        return out

    def variants(self, ds: Any) -> list[Variant]:
        """The product of the feature scenarios' variants, each folding over the ones before it."""
        vs: list[Variant] = [self.kind.base_variant(ds)]
        for s in self.features:
            vs = [w for v in vs for w in s.expand(v)]
        return vs

    def reference(self, v: Variant, k: int, cache_dir: Path) -> Reference | None:
        """The variant's exact reference (computed once per run, cached on disk across runs)."""
        if not self.kind.needs_reference():
            return None
        if id(v) not in self._refs:
            self._refs[id(v)] = v.reference(v, k) if v.reference is not None else exact(v, k, cache_dir)
        return self._refs[id(v)]

    def describe(self) -> dict[str, Any]:
        return {s.table: s.describe() for s in self.features}

    def __iter__(self) -> Iterator[Scenario]:
        return iter(self.scenarios)
