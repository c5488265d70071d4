"""What `qdrant` (the server, through qdrant-client) and `qdrant-edge` (the engine in-process, qdrant-edge-py)
share: the filter translator and the quantization builders.

The two Python APIs build the same engine objects under slightly different spellings (qdrant-client's
`Range(gt=...)` is qdrant-edge's `RangeFloat(gt=...)`; its `ScalarQuantization(scalar=ScalarQuantizationConfig(
type=INT8, ...))` is qdrant-edge's `ScalarQuantizationConfig(ScalarType.Int8, ...)`). `QdrantApi` names those
spellings once per API (`client_api()`, `edge_api()`); what is asked for (which condition, which quantizer with
which settings, when to rescore) is decided here, once.

Filters: `Eq` is a `FieldCondition` with `MatchValue`, `Range` a `FieldCondition` with a range of the bounds
given, `And` a `Filter(must=[...])`, `Or` a `Filter(should=[...])` (at least one should-condition holds when
there is no must); a leaf at the top is wrapped in `Filter(must=[condition])`. Nested filters are conditions in
both APIs.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Any

from bench.backends.query import ConditionParser, Filter
from bench.errors import UserError

QUANTIZATION = ("int8", "fp16", "pq", "binary")
QUANTIZED_COPY = ("int8", "pq", "binary")  # kept beside the vectors, so a query can rescore (fp16 is a datatype)
QUANT_KIND = {"scalar": "int8", "product": "pq", "binary": "binary"}  # engine's config key -> bench's name
RESCORE_OVERSAMPLING = 2.0  # rescore: 2k quantized candidates reranked on the original vectors (as faiss)
SCALAR_QUANTILE = 0.99


@dataclass(frozen=True)
class QdrantApi:
    """The constructors of one Qdrant Python API, spelled its way."""

    name: str
    Filter: Any
    FieldCondition: Any
    MatchValue: Any
    Range: Any
    QuantizationSearchParams: Any
    scalar_int8: Any  # () -> the collection's int8 quantization config (quantile 0.99, in RAM)
    product_x16: Any  # () -> pq, 16x compression, in RAM
    binary: Any  # () -> one bit per dimension, in RAM


@cache
def client_api() -> QdrantApi:
    """qdrant-client's `models`."""
    from qdrant_client import models as m

    return QdrantApi(
        "qdrant", m.Filter, m.FieldCondition, m.MatchValue, m.Range, m.QuantizationSearchParams,
        scalar_int8=lambda: m.ScalarQuantization(scalar=m.ScalarQuantizationConfig(
            type=m.ScalarType.INT8, quantile=SCALAR_QUANTILE, always_ram=True)),
        product_x16=lambda: m.ProductQuantization(product=m.ProductQuantizationConfig(
            compression=m.CompressionRatio.X16, always_ram=True)),
        binary=lambda: m.BinaryQuantization(binary=m.BinaryQuantizationConfig(always_ram=True)))


@cache
def edge_api() -> QdrantApi:
    """qdrant-edge-py's classes."""
    import qdrant_edge as q

    return QdrantApi(
        "qdrant-edge", q.Filter, q.FieldCondition, q.MatchValue, q.RangeFloat, q.QuantizationSearchParams,
        scalar_int8=lambda: q.ScalarQuantizationConfig(q.ScalarType.Int8, quantile=SCALAR_QUANTILE, always_ram=True),
        product_x16=lambda: q.ProductQuantizationConfig(q.CompressionRatio.X16, always_ram=True),
        binary=lambda: q.BinaryQuantizationConfig(always_ram=True))


# -- filters ---------------------------------------------------------------------------------------------------

class QdrantConditionParser(ConditionParser[Any]):
    """The filter tree as Qdrant conditions: leaves are `FieldCondition`s, And/Or nested `Filter`s."""

    def __init__(self, api: QdrantApi):
        self.api = api

    def build_eq(self, field: str, value: int | str) -> Any:
        return self.api.FieldCondition(key=field, match=self.api.MatchValue(value=value))

    def build_range(self, field: str, **bounds: float) -> Any:
        return self.api.FieldCondition(key=field, range=self.api.Range(**bounds))

    def build_and(self, items: list[Any]) -> Any:
        return self.api.Filter(must=items)

    def build_or(self, items: list[Any]) -> Any:
        return self.api.Filter(should=items)


def query_filter(node: Filter | None, api: QdrantApi) -> Any:
    """The `Filter` of one query (None for no filter): a leaf at the top is wrapped in `Filter(must=[...])`."""
    if node is None:
        return None
    out = QdrantConditionParser(api).parse(node)
    return out if isinstance(out, api.Filter) else api.Filter(must=[out])


# -- quantization ----------------------------------------------------------------------------------------------

def quantization_config(quant: str | None, api: QdrantApi) -> Any:
    """The collection's quantization config for an engine-neutral quantization: int8 scalar (quantile 0.99), pq
    with 16x compression, binary, all in RAM. None for none and for fp16 (the vectors' datatype instead)."""
    if quant in (None, "fp16"):
        return None
    builders = {"int8": api.scalar_int8, "pq": api.product_x16, "binary": api.binary}
    if quant not in builders:
        raise UserError(f"{api.name} has no quantization '{quant}'", f"use one of: {', '.join(QUANTIZATION)}")
    return builders[quant]()


def quantization_search_params(quant: str | None, rescore: bool, api: QdrantApi) -> Any:
    """The `QuantizationSearchParams` every query of a collection quantized with `quant` carries: rescore with
    oversampling 2 when rescoring. None when there is no quantized copy (none, fp16)."""
    if quant not in QUANTIZED_COPY:
        return None
    return api.QuantizationSearchParams(rescore=bool(rescore), oversampling=RESCORE_OVERSAMPLING if rescore else None)
