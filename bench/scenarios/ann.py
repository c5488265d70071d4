"""kind = "ann": every operation is a search; each (ef_search, variant) is one configuration; quality is recall@k
of the sampled searches against the variant's exact reference."""

from __future__ import annotations

from typing import Any

from bench.metrics import scoring
from bench.scenarios import register
from bench.scenarios.base import KindScenario, Reference, Variant


@register
class AnnScenario(KindScenario):
    kind = "ann"
    mode = "search"

    def score(self, v: Variant, kept: Any, ref: Reference | None, state: Any) -> dict[str, dict[str, Any]]:
        if ref is None:
            return {}
        return {"search": scoring.score_static(ref, kept, self.spec.search.k, len(v.query_vectors()))}
