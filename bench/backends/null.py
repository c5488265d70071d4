"""`null`: a backend that does nothing. It measures the harness itself (its ceiling), never an engine."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from bench import __version__
from bench.backends.base import (
    Backend,
    BuiltIndex,
    Capabilities,
    CollectionSpec,
    EngineInfo,
    Record,
    SearchParams,
)

_EMPTY: tuple[int, ...] = ()


class NullBackend(Backend):
    name = "null"
    capabilities = Capabilities(in_process=True, get=True, upsert=True, delete=True, filters=True)

    @classmethod
    def supports(cls, feature: str, options: Any, **details: Any) -> str | None:
        if feature == "remote_workers":
            return None  # it holds no data, so any process on any machine can drive it (the harness' ceiling)
        return super().supports(feature, options, **details)

    def create(self, collection: CollectionSpec) -> None:
        self.count = 0

    def attach(self, collection: CollectionSpec) -> None:
        self.count = 0

    def insert(self, ids: np.ndarray, vectors: np.ndarray, payloads: Sequence[Mapping[str, Any]] | None = None) -> None:
        self.count = getattr(self, "count", 0) + len(ids)

    def wait_indexed(self, timeout_s: float) -> BuiltIndex:
        return BuiltIndex(kind="none", indexed_count=0, total_count=getattr(self, "count", 0),
                          substitutions=["the null backend stores and indexes nothing; it measures the harness"])

    def search(self, vector: np.ndarray, k: int, params: SearchParams) -> Sequence[int]:
        return _EMPTY

    def get(self, id: int) -> Record | None:
        return None

    def upsert(self, id: int, vector: np.ndarray, payload: Mapping[str, Any] | None = None) -> None:
        return None

    def delete(self, id: int) -> None:
        return None

    def info(self) -> EngineInfo:
        return EngineInfo(engine="null", client_version=__version__, server_version=None)

    def drop(self) -> None:
        self.count = 0
