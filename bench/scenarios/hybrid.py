"""[hybrid]: every search sends the query vector and the query text; the engine fuses its dense and BM25 top
`candidates` natively. One configuration per (ef_search, fusion, alpha); agreement is against the exact fused
reference the harness computes (bench.datasets.hybrid), over the same records the variant may return."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from typing import Any, Literal

import numpy as np
import pyarrow as pa
from pydantic import Field, model_validator

from bench.backends.base import BackendOptions, CollectionSpec, HybridSpec
from bench.datasets import hybrid as hybrid_ref
from bench.datasets import texts as hybrid_texts
from bench.errors import UserError
from bench.metrics.recall import recall_at_k
from bench.results.figures import Figure
from bench.results.keys import Key
from bench.scenarios import register
from bench.scenarios.base import Prep, Reference, RunFlags, Scenario, Variant
from bench.scenarios.reference import digest
from bench.spec import Strict


class HybridModel(Strict):
    fusion: list[Literal["rrf", "weighted"]] = Field(default_factory=lambda: ["rrf", "weighted"], min_length=1,
                                                     description="how the engine fuses the dense and BM25 results: "
                                                     "rrf (reciprocal rank) and/or weighted (by alpha)")
    alpha: list[float] = Field(default_factory=lambda: [0.25, 0.5, 0.75], min_length=1,
                               description="weighted: the dense side's weight (Weaviate's alpha)")
    candidates: int = Field(100, ge=1, le=10_000, description="per-side prefetch limit fused by the engine")
    k1: float = Field(1.2, gt=0, le=10, description="BM25 term-frequency saturation, sent to the engine and "
                      "used by the reference")
    b: float = Field(0.75, ge=0, le=1, description="BM25 length normalisation, sent to the engine and used by the "
                     "reference")
    texts: Literal["auto", "synthetic", "dataset"] = Field(
        "auto", description="auto: the dataset's own texts when it has them (wordnet), else synthetic")
    vocab: int = Field(5000, ge=100, le=1_000_000, description="synthetic: vocabulary size")
    zipf: float = Field(1.0, gt=0, le=5, description="synthetic: Zipf exponent of word frequencies")
    topics: int = Field(50, ge=1, le=100_000, description="synthetic: topics tied to the vectors' neighbourhoods")
    topic_words: int = Field(20, ge=1, le=10_000, description="synthetic: words that belong to each topic")
    topic_share: float = Field(0.3, ge=0, le=1, description="synthetic: share of a document's words from its topic")
    words_min: int = Field(5, ge=1, le=10_000, description="synthetic: fewest words in a document")
    words_max: int = Field(30, ge=1, le=10_000, description="synthetic: most words in a document")
    query_words_min: int = Field(2, ge=1, le=100, description="synthetic: fewest words in a query")
    query_words_max: int = Field(5, ge=1, le=100, description="synthetic: most words in a query")
    query_topic_share: float = Field(0.6, ge=0, le=1, description="synthetic: share of a query's words from its "
                                     "topic")

    @model_validator(mode="after")
    def _consistent(self) -> HybridModel:
        for name in ("fusion", "alpha"):
            values = getattr(self, name)
            if len(set(values)) != len(values):
                raise ValueError(f"{name} values must be distinct, got {values}")
        bad = [a for a in self.alpha if not 0 <= a <= 1]
        if bad:
            raise ValueError(f"alpha is the dense side's weight in [0, 1], got {bad}")
        for lo, hi in (("words_min", "words_max"), ("query_words_min", "query_words_max")):
            if getattr(self, lo) > getattr(self, hi):
                raise ValueError(f"{lo} = {getattr(self, lo)} is above {hi} = {getattr(self, hi)}")
        if self.topics * self.topic_words > self.vocab * 0.9:
            raise ValueError(f"topics x topic_words = {self.topics * self.topic_words} needs more than 90% of "
                             f"vocab = {self.vocab}; raise vocab or lower topics/topic_words")
        if self.query_words_max > self.vocab // 2:
            raise ValueError(f"query_words_max = {self.query_words_max} is too large for vocab = {self.vocab}")
        return self

    def text_params(self):
        from bench.datasets.texts import TextParams

        return TextParams(**{f: getattr(self, f) for f in TextParams.__dataclass_fields__})

    def cases(self) -> list[tuple[str, float | None]]:
        """(fusion, alpha) configurations: rrf once (alpha None), weighted once per alpha."""
        out: list[tuple[str, float | None]] = []
        for f in self.fusion:
            out.extend([(f, None)] if f == "rrf" else [(f, float(a)) for a in self.alpha])
        return out


class FusedReference(Reference):
    """Agreement with the exact fused ranking, and overlap with each side's exact top-k."""

    def __init__(self, ref: hybrid_ref.HybridReference):
        self.ref = ref
        self.truth = ref.fused

    def per_search(self, queries: np.ndarray, found: np.ndarray, k: int) -> np.ndarray:
        return self.ref.per_search(queries, found, k)

    def extra(self, queries: np.ndarray, found: np.ndarray, k: int) -> dict[str, float]:
        return {"recall_dense": recall_at_k(found, self.ref.dense_topk[queries], k),
                "recall_bm25": recall_at_k(found, self.ref.bm25_topk[queries], k)}


@register
class HybridScenario(Scenario):
    keys = (
        Key("fusion", pa.string(), "fusion", "variant", "hybrid: rrf | weighted", show=lambda v: str(v)),
        Key("alpha", pa.float64(), "a", "variant", "hybrid weighted: the dense side's weight"),
    )
    figures = (
        Figure("recall_dense", "hybrid: mean recall@k of the sampled searches' fused results against the exact "
               "dense-only (vector) top-k; null for other workloads", "vs dense", ".4f",
               legend="hybrid: recall = agreement with the exact fused reference; vs dense / vs bm25 = overlap@k "
                      "with the exact dense-only / BM25-only top-k"),
        Figure("recall_bm25", "hybrid: mean recall@k of the sampled searches' fused results against the exact "
               "BM25-only (text) top-k; null for other workloads", "vs bm25", ".4f"),
    )
    table = "hybrid"
    Options = HybridModel
    order = 30

    @classmethod
    def validate_spec(cls, options: HybridModel, spec) -> None:
        super().validate_spec(options, spec)
        if options.candidates < spec.search.k:
            raise ValueError(f"hybrid.candidates = {options.candidates} is below search.k = {spec.search.k}; "
                             "each side must prefetch at least k records")

    def check(self, backend, options: BackendOptions, flags: RunFlags) -> list[str]:
        name = self.spec.name
        reason = backend.supports("hybrid", options)
        if reason:
            raise UserError(f"Backend '{backend.name}' cannot run hybrid (BM25 + dense) search, which workload "
                            f"'{name}' needs, so it is skipped: {reason.rstrip('.')}",
                            "choose a backend with hybrid (`bench backends`)")
        cases = self._cases(backend)
        skipped = [a for f, a in self.options.cases() if (f, a) not in cases]
        if not cases:
            raise UserError(f"Backend '{backend.name}' has no alpha-weighted fusion, the only fusion workload "
                            f"'{name}' asks for, so it is skipped", "add \"rrf\" to hybrid.fusion")
        if not skipped:
            return []
        return [f"{backend.name}: hybrid fusion 'weighted' (alpha {', '.join(f'{a:g}' for a in skipped)}) is "
                "skipped: the engine has no alpha-weighted score fusion"]

    def _cases(self, backend: Any) -> list[tuple[str, float | None]]:
        """The (fusion, alpha) configurations this engine can run: weighted needs its score normalisation."""
        return [c for c in self.options.cases() if c[0] != "weighted" or backend.hybrid_weighted_norm is not None]

    def prepare(self, prep: Prep) -> None:
        self.norm = prep.backend.hybrid_weighted_norm
        self.cases = self._cases(prep.backend)
        h = self.options
        self.docs, qtexts, self.source_name = hybrid_texts.for_dataset(prep.ds, h, self.spec.dataset.seed)
        self.query_texts = tuple(qtexts)
        self.bm25 = hybrid_ref.build_bm25(self.docs, h.k1, h.b)
        self.cache_dir = prep.cache_dir
        self.refs: dict[tuple[str, float | None], hybrid_ref.HybridReference] = {}
        prep.say(f"hybrid: {self.source_name} texts, {len(self.bm25.terms):,} terms, avgdl {self.bm25.avgdl:.1f}; "
                 f"exact fused reference for {len(self.cases)} configuration(s)")

    def collection(self, c: CollectionSpec) -> CollectionSpec:
        return replace(c, hybrid=HybridSpec(text_field="text", k1=self.options.k1, b=self.options.b,
                                            avgdl=self.bm25.avgdl))

    def payload_fields(self) -> dict[str, str]:
        return {"text": "text"}

    def payloads(self, ids: np.ndarray) -> Mapping[str, Sequence[Any]]:
        return {"text": [self.docs[i] for i in ids.tolist()]}

    def expand(self, v: Variant) -> Iterable[Variant]:
        per_query = tuple({"text": t} for t in self.query_texts)
        for fusion, alpha in self.cases:
            yield v.derive(axes={"fusion": fusion, "alpha": alpha},
                           params={"fusion": fusion, "alpha": alpha, "candidates": self.options.candidates},
                           per_query=per_query, reference=self._reference, ref_key={"fusion": fusion, "alpha": alpha})

    def _reference(self, v: Variant, k: int) -> Reference:
        ds, h = v.data, self.options
        assert ds is not None
        fusion, alpha = v.axes["fusion"], v.axes["alpha"]
        norm = self.norm if fusion == "weighted" else None
        key = {"data": ds.content_hash, "metric": ds.metric, "n": ds.n, "nq": len(v.query_vectors()), "k": k,
               "candidates": h.candidates, "fusion": fusion, "alpha": alpha, "norm": norm,
               "texts": {"source": self.source_name, "params": h.model_dump(mode="json"),
                         "seed": self.spec.dataset.seed}, "rrf_k": hybrid_ref.RRF_K,
               **({"mask": digest(v.mask)} if v.mask is not None else {})}
        ref = hybrid_ref.cached_reference(self.cache_dir, key, lambda: hybrid_ref.reference(
            ds.base_rows, v.query_vectors(), ds.metric, self.bm25, self.query_texts, k, h.candidates,
            fusion, alpha, norm, mask=v.mask))
        if v.mask is None:
            self.refs[(fusion, alpha)] = ref
        return FusedReference(ref)

    def describe(self) -> dict[str, Any]:
        """What the reference was, and how far it sits from each side alone (overlap@k of the exact fused top-k
        with the exact dense and the exact BM25 top-k): where an engine's disagreement can come from."""
        k = self.spec.search.k
        out: dict[str, Any] = {
            "texts": self.source_name, "rrf_k": hybrid_ref.RRF_K, "weighted_norm": self.norm,
            "bm25": {"k1": self.bm25.k1, "b": self.bm25.b, "idf": hybrid_ref.IDF_FORMULA, "avgdl": self.bm25.avgdl,
                     "terms": len(self.bm25.terms), "tokens": "lowercase [a-z0-9]+, no stemming, no stopwords"},
            "configurations": [{"fusion": f, "alpha": a} for f, a in self.cases]}
        for c in out["configurations"]:
            ref = self.refs.get((c["fusion"], c["alpha"]))
            if ref is not None:
                q = np.arange(len(ref.fused))
                c["reference_recall_dense"] = recall_at_k(ref.fused, ref.dense_topk, k)
                c["reference_recall_bm25"] = recall_at_k(ref.fused, ref.bm25_topk, k)
                c["reference_self_agreement"] = ref.agreement(q, ref.fused, k)
        return out
