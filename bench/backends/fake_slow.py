"""`fake-slow`: a FAKE backend for testing the harness itself, never an engine.

Every call sleeps a fixed service time; optionally the backend stalls once, for `stall_s` seconds, on the
operation that comes `stall_after_s` seconds after its first operation (warm-up included), once per instance. The open-loop tests use
it to show coordinated omission: a stall delays every operation scheduled behind it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from pydantic import Field

from bench import __version__
from bench.backends.base import (
    Backend,
    BackendOptions,
    BuiltIndex,
    Capabilities,
    CollectionSpec,
    EngineInfo,
    Record,
    SearchParams,
)


class FakeSlowOptions(BackendOptions):
    latency_us: float = Field(100.0, ge=0, description="service time of every operation")
    stall_after_s: float | None = Field(None, ge=0, description="stall once, this long after the first operation")
    stall_s: float = Field(1.0, ge=0)
    fail_every: int | None = Field(None, ge=1, description="every Nth operation raises (to test error counting)")


class FakeSlowBackend(Backend):
    name = "fake-slow"
    capabilities = Capabilities(in_process=True, get=True, upsert=True, delete=True)
    Options = FakeSlowOptions

    def __init__(self, options: FakeSlowOptions, workdir: str):
        super().__init__(options, workdir)
        self._lock = threading.Lock()
        self._first: float | None = None
        self._stalled = False
        self._ops = 0
        self._store: dict[int, np.ndarray] = {}

    def create(self, collection: CollectionSpec) -> None:
        self._store.clear()

    def attach(self, collection: CollectionSpec) -> None:
        pass

    def insert(self, ids: np.ndarray, vectors: np.ndarray, payloads: Sequence[Mapping[str, Any]] | None = None) -> None:
        pass

    def wait_indexed(self, timeout_s: float) -> BuiltIndex:
        return BuiltIndex(kind="none", substitutions=["fake-slow is a fake backend for testing the harness"])

    def _op(self) -> None:
        o = self.options
        with self._lock:
            now = time.perf_counter()
            self._ops += 1
            n = self._ops
            if self._first is None:
                self._first = now
            stall = (o.stall_after_s is not None and not self._stalled and now - self._first >= o.stall_after_s)
            if stall:
                self._stalled = True
        if stall:
            time.sleep(o.stall_s)
        if o.latency_us:
            time.sleep(o.latency_us / 1e6)
        if o.fail_every and n % o.fail_every == 0:
            raise RuntimeError("fake-slow: injected failure")

    def search(self, vector: np.ndarray, k: int, params: SearchParams) -> Sequence[int]:
        self._op()
        return ()

    def get(self, id: int) -> Record | None:
        self._op()
        return None

    def upsert(self, id: int, vector: np.ndarray, payload: Mapping[str, Any] | None = None) -> None:
        self._op()

    def delete(self, id: int) -> None:
        self._op()

    def info(self) -> EngineInfo:
        return EngineInfo(engine="fake-slow", client_version=__version__)

    def drop(self) -> None:
        self._store.clear()
