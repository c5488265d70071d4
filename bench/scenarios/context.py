"""What a scenario sees of the run it measures in: the `RunContext` protocol. bench/run_context.py's RunContext
(above the scenarios in the layer order) is the one implementation; a scenario types its `ctx` with this protocol,
so it names what it uses without importing the layer above it."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from bench.backends.base import Backend, BackendOptions, CollectionSpec, EngineInfo
    from bench.datasets.dataset import Dataset
    from bench.reporter import Reporter
    from bench.spec import WorkloadSpec


class RequestView(Protocol):
    """The run's request, as far as a scenario reads it."""

    @property
    def backend(self) -> str: ...


class PlanView(Protocol):
    """The run's plan, as far as a scenario reads it."""

    @property
    def kind(self) -> Any: ...


class RunContext(Protocol):
    """The run a scenario measures in: its request, workload, dataset, the connected engine and its collection,
    the reporter, the rows written so far, and the calls that keep rows and register clean-up."""

    @property
    def req(self) -> RequestView: ...
    @property
    def spec(self) -> WorkloadSpec: ...
    @property
    def ds(self) -> Dataset: ...
    @property
    def cls(self) -> type[Backend]: ...
    @property
    def options(self) -> BackendOptions: ...
    @property
    def plan(self) -> PlanView: ...
    @property
    def rep(self) -> Reporter: ...
    @property
    def backend(self) -> Backend | None: ...
    @property
    def collection(self) -> CollectionSpec | None: ...
    @property
    def info(self) -> EngineInfo | None: ...
    @property
    def workdir(self) -> str: ...
    @property
    def cache_dir(self) -> Path: ...
    @property
    def warnings(self) -> list[str]: ...
    @property
    def summary_rows(self) -> list[dict]: ...
    @property
    def extra_json(self) -> dict[str, Any]: ...
    @property
    def base_row(self) -> dict[str, Any]: ...

    def add_rows(self, rows: list[dict]) -> None: ...
    def on_close(self, fn: Callable[[], None]) -> None: ...


def connected(ctx: RunContext) -> tuple[Backend, CollectionSpec]:
    """The run's connected engine and its collection. A scenario measures after the run context made both; being
    asked before is bench's own bug."""
    if ctx.backend is None or ctx.collection is None:
        raise RuntimeError("a scenario measured before the run context connected the engine and made the collection")
    return ctx.backend, ctx.collection
