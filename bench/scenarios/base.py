"""What a scenario is: everything special about one kind of workload, in one place.

A workload file is a `kind` ("ann" or "ycsb", each a *kind scenario*: which operations run and how their quality
is scored) plus any number of feature tables (`[filter]`, `[multivector]`, `[hybrid]`, ...; each a *feature
scenario*). Features combine: each one folds over the variants the others made (a filtered search of each named
vector, a hybrid search under each filter), in the order of `Scenario.order`.

A scenario
- validates its table against the rest of the workload (`validate_spec`) and the engine (`check`, through the
  backend's one `supports(feature, options)` question), refusing with one sentence;
- prepares its extra data before anything is created (`prepare`: masks, texts, extra vector sets);
- adds to the collection it needs (`collection`: payload fields, named vectors, a BM25 side) and to each loaded
  record's payload (`payloads`), or replaces the loaded records altogether (`source`);
- turns each variant into its own (`expand`): axis values (result keys), the search parameters of every query,
  the queries themselves, and what the exact reference of that variant is.

The runner iterates ef_search x variants x offered rates and knows no feature by name.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
from pydantic import BaseModel

from bench.backends.base import BackendOptions, CollectionSpec
from bench.results.figures import Figure
from bench.results.keys import Key
from bench.scenarios.context import RunContext

if TYPE_CHECKING:
    from bench.backends.base import Backend
    from bench.datasets.dataset import Dataset
    from bench.spec import WorkloadSpec


class Reference:
    """The exact answer a variant's searches are scored against. `per_search` gives each kept search's quality
    (recall@k, or agreement with an exact fused ranking); `extra` adds figures of its own."""

    truth: np.ndarray  # (nq, k) ids, -1 padded

    def per_search(self, queries: np.ndarray, found: np.ndarray, k: int) -> np.ndarray:
        raise NotImplementedError  # pragma: no cover - an interface

    def extra(self, queries: np.ndarray, found: np.ndarray, k: int) -> dict[str, float]:
        return {}


@dataclass(frozen=True, eq=False)
class Variant:
    """One configuration of a workload: a point of its scenarios' axes."""

    axes: Mapping[str, Any] = field(default_factory=dict)  # result key -> value, e.g. {"filter": "sel_10=1"}
    params: Mapping[str, Any] = field(default_factory=dict)  # SearchParams keywords of every search
    per_query: tuple[Mapping[str, Any], ...] | None = None  # SearchParams keywords per query, row for row
    data: Dataset | None = None  # the vectors searched and scored against (None: the workload's dataset)
    queries: np.ndarray | None = None  # the query vectors (None: `data`'s queries)
    mask: np.ndarray | None = None  # rows of `data` a search may return (None: all)
    reference: Callable[[Variant, int], Reference] | None = None  # replaces the exact dense top-k
    ref_key: Mapping[str, Any] = field(default_factory=dict)  # what the reference depends on beyond the data
    row: Mapping[str, Any] = field(default_factory=dict)  # row columns describing the variant (a vector's dim)
    task: Mapping[str, Any] = field(default_factory=dict)  # extra PhaseTask fields (e.g. payload_cases)
    allowed_keys: Callable[[np.ndarray], np.ndarray] | None = None  # under writes: keys the filter keeps

    def derive(self, *, axes: Mapping[str, Any] | None = None, params: Mapping[str, Any] | None = None,
               ref_key: Mapping[str, Any] | None = None, row: Mapping[str, Any] | None = None,
               task: Mapping[str, Any] | None = None, **changes: Any) -> Variant:
        """A new variant: mappings are merged over this one's, other fields replaced."""
        merged = {name: {**getattr(self, name), **(value or {})}
                  for name, value in (("axes", axes), ("params", params), ("ref_key", ref_key), ("row", row),
                                      ("task", task))}
        return dataclasses.replace(self, **merged, **changes)

    def query_vectors(self) -> np.ndarray:
        assert self.data is not None
        return self.data.queries if self.queries is None else self.queries


@dataclass(frozen=True)
class Chart:
    """A picture of a scenario's rows in `bench report`, named by reference so a scenario never imports the
    analysis layer: `png` and `html` are "module:function" drawers (`png(summary, workload, title) -> Picture`,
    `html(summary, title) -> plotly Figure | reason`), resolved when the report draws."""

    slug: str  # file-name part and anchor: "streaming" -> streaming-<table>.png
    name: str  # what the picture shows, in a sentence's words
    caption: str  # printed under it: exactly what is drawn
    png: str | None = None
    html: str | None = None
    uses_trials: bool = False  # the drawers take the trial rows instead of the summary rows


# The report's own pictures (bench.analysis.report); a kind scenario names the ones that fit its rows.
CORE_CHARTS = ("recall-qps", "latency", "concurrency")


@dataclass
class RunFlags:
    """What the command line asks beyond the workload file, that a scenario may refuse."""

    rate_sweep: bool = False


@dataclass
class Prep:
    """What `prepare` gets: the loaded dataset, where to cache, whether to show progress."""

    spec: WorkloadSpec
    ds: Dataset
    cache_dir: Path
    progress: bool
    say: Callable[[str], None]
    backend: type[Backend]


class Scenario:
    """A feature scenario (a workload table). Subclasses set `table`, `Options`, and override what they need."""

    table: ClassVar[str] = ""  # the workload table that turns it on, e.g. "filter"
    kind: ClassVar[str] = ""  # kind scenarios: the workload `kind` they run ("ann", "ycsb")
    Options: ClassVar[type[BaseModel]]
    order: ClassVar[int] = 50  # fold order: a larger order expands the variants a smaller one made
    keys: ClassVar[tuple[Key, ...]] = ()  # result key axes it adds (registered with the scenario)
    figures: ClassVar[tuple[Figure, ...]] = ()  # figures its rows carry (schema, aggregation, compare columns)
    charts: ClassVar[tuple[Chart, ...]] = ()  # its own pictures in `bench report` (drawn where it `owns` rows)
    kinds: ClassVar[tuple[str, ...]] = ("ann",)  # workload kinds it works with

    def __init__(self, options: Any, spec: WorkloadSpec):
        self.options = options
        self.spec = spec

    # -- checks, before anything is written ---------------------------------------------------------------
    @classmethod
    def validate_spec(cls, options: Any, spec: WorkloadSpec) -> None:
        """Raise ValueError (one sentence) when the table does not fit the rest of the workload."""
        if spec.kind not in cls.kinds:
            raise ValueError(f"a [{cls.table}] table is only read when "
                             f"{' or '.join(f'kind = {k!r}' for k in cls.kinds)}; remove it or change kind")

    def check(self, backend: type[Backend], options: BackendOptions, flags: RunFlags) -> list[str]:
        """Raise UserError when this engine cannot run the scenario; return warnings (parts it skips)."""
        return []

    # -- data -----------------------------------------------------------------------------------------------
    def prepare(self, prep: Prep) -> None:
        """Build the extra data the scenario needs (before the collection is created)."""

    def collection(self, c: CollectionSpec) -> CollectionSpec:
        return c

    def payload_fields(self) -> dict[str, str]:
        return {}

    def payloads(self, ids: np.ndarray) -> Mapping[str, Sequence[Any]] | None:
        """Payload columns of the loaded records `ids` (field -> one value per id), or None."""
        return None

    def source(self) -> Any:
        """What is loaded instead of the dataset (an object with `batches(size)`, `n`, `name`), or None."""
        return None

    def run_row(self) -> dict[str, Any]:
        """Row columns for every row of the run (e.g. a multi-vector set's name and hash)."""
        return {}

    def describe(self) -> dict[str, Any]:
        """What run.json records about the scenario."""
        return self.options.model_dump(mode="json") if isinstance(self.options, BaseModel) else {}

    # -- variants -------------------------------------------------------------------------------------------
    def expand(self, v: Variant) -> Iterable[Variant]:
        yield v

    # -- what compare and the report say about its rows ---------------------------------------------------------
    @classmethod
    def owns(cls, rows: Any) -> bool:
        """Whether a report table's rows (a pandas frame) are this scenario's: its kind, or one of its keys set."""
        if cls.kind:
            return "workload_kind" in rows and bool((rows["workload_kind"] == cls.kind).any())
        return any(k.name in rows and bool(rows[k.name].notna().any()) for k in cls.keys)

    @classmethod
    def table_notes(cls, rows: Any) -> list[str]:
        """Sentences under a compare table holding this scenario's rows (`rows`: that table's figures frame),
        e.g. streaming's knee per run; [] when it has nothing to add."""
        return []


def merge_payloads(columns: Sequence[Mapping[str, Sequence[Any]]], n: int) -> list[dict[str, Any]] | None:
    """Per-record payloads from the scenarios' payload columns."""
    if not columns:
        return None
    merged: dict[str, Sequence[Any]] = {}
    for c in columns:
        merged.update(c)
    names = list(merged)
    return [{f: merged[f][j] for f in names} for j in range(n)]


class KindScenario(Scenario):
    """A workload kind: which operations a phase runs, which ef_search values it measures, how long a trial is
    by default, and how a trial's quality is scored. Exactly one per workload."""

    mode: ClassVar[str] = "search"  # the worker's operation source: "search", "ycsb" or "ingest"
    core_charts: ClassVar[tuple[str, ...]] = CORE_CHARTS  # which of the report's own pictures fit its rows
    Options: ClassVar[type[BaseModel] | None] = None  # the model of the kind's own table ([<kind>]), if it has one

    @classmethod
    def validate_spec(cls, options: Any, spec: WorkloadSpec) -> None:  # the kind is the spec's own
        return None

    def measure(self, ctx: RunContext) -> bool:
        """A kind whose measurement is not the runner's loop (ef_search x variants x rates, each a warm-up and
        timed trials) measures here, on the loaded run context (`bench.run_context.RunContext`: it adds its rows
        with `ctx.add_rows`), and returns True; the default returns False and leaves it to the runner."""
        return False

    def ef_values(self) -> list[int | None]:
        return list(self.spec.search.ef_search)

    def base_variant(self, ds: Dataset) -> Variant:
        return Variant(data=ds)

    def default_operations(self, v: Variant) -> int:
        """A trial's searches when the workload gives neither operations nor a duration: every query at least
        once, and at least run.min_operations."""
        return max(len(v.query_vectors()), self.spec.run.min_operations)

    def task_fields(self, warmup: bool) -> dict[str, Any]:
        """Extra PhaseTask fields of a phase (e.g. the YCSB mix, recall sampling under writes)."""
        return {}

    def op_groups(self, labels: Sequence[str]) -> list[tuple[str, list[str]]]:
        """(row op, the worker labels merged into it): one row per operation kind, plus any totals."""
        return [(lbl, [lbl]) for lbl in labels]

    def score(self, v: Variant, kept: Any, ref: Reference | None, state: Any) -> dict[str, dict[str, Any]]:
        """Quality figures per row op, from the ids the trial's sampled searches returned."""
        return {}

    def needs_reference(self) -> bool:
        return True

    def new_state(self) -> Any:
        """State that follows the run across phases (an object with `apply(results)`), or None."""
        return None
