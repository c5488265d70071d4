"""Workload, backend and run specs: pydantic models, TOML loading, `--set` overrides and clear errors.

A workload file is data (YCSB's model): what to load, which index to ask for, which operations to run and how
long. A backend config holds one engine's connection and engine settings. Neither knows about the other.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from bench.backends.base import BackendOptions, IndexSpec
from bench.datasets.spec import DatasetSpec
from bench.errors import UserError, by_closeness, did_you_mean
from bench.files import check_regular_file
from bench.ops.mix import YcsbSpec

REPO_ROOT = Path(__file__).resolve().parent.parent  # a source checkout's root (tests, scripts); not for lookups
# Shipped with the package (pyproject maps the repo's workloads/ and configs/ folders to these packages), so an
# installed `bench` finds them anywhere; a `workloads/` or `configs/` folder in the working directory wins.
WORKLOAD_DIR = Path(__file__).resolve().parent / "workloads"
CONFIG_DIR = Path(__file__).resolve().parent / "configs"
CORE_TABLES = {"dataset", "index", "search", "ycsb", "run", "name", "kind", "description"}


def _local_first(folder: str, name: str, packaged: Path) -> Path:
    """`./<folder>/<name>` when the user has it, else the packaged file."""
    own = Path(folder) / name
    return own if own.exists() else packaged / name


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class IndexModel(Strict):
    kind: Literal["hnsw", "flat"] = Field("hnsw", description="hnsw: a graph index; flat: exact search, no index")
    m: int = Field(16, ge=2, le=2048, description="HNSW graph degree (M)")
    ef_construction: int = Field(200, ge=1, le=100_000, description="HNSW build-time candidate list "
                                 "(efConstruction): larger builds a better graph, slower")
    quantization: Literal["int8", "fp16", "pq", "binary"] | None = Field(
        None, description="compress the stored vectors (int8, fp16, pq or binary); none: full float32")
    rescore: bool = Field(True, description="quantized indexes: rescore candidates with the original vectors")

    def to_spec(self) -> IndexSpec:
        return IndexSpec(kind=self.kind, m=self.m, ef_construction=self.ef_construction,
                         quantization=self.quantization, rescore=self.rescore)


MAX_K = 10_000  # results per search; docs/workload-files.md ([search] k)
MAX_EF_SEARCH = 100_000  # beyond any engine's useful range, and an engine allocates per query by it


class SearchModel(Strict):
    k: int = Field(10, ge=1, le=MAX_K, description="results per search; recall is recall@k")
    ef_search: list[int] = Field(default_factory=lambda: [64], min_length=1, description="HNSW search-time "
                                 "candidate lists (ef), a list: one configuration each, e.g. [32, 64, 128]")

    @model_validator(mode="after")
    def _positive_ef(self) -> SearchModel:
        bad = [e for e in self.ef_search if not 1 <= e <= MAX_EF_SEARCH]
        if bad:
            raise ValueError(f"ef_search values must be between 1 and {MAX_EF_SEARCH:,}, got {bad}")
        return self


class RunModel(Strict):
    trials: int = Field(5, ge=1, le=1000, description="timed trials per configuration (the aggregate drops the "
                        "lowest and highest and reports the median of the rest)")
    warmup_s: float = Field(1.0, ge=0, le=3600, description="untimed operations before each configuration's "
                            "trials, in seconds; excluded from every figure")
    duration_s: float | None = Field(None, gt=0, le=86_400, description="length of a timed trial")
    operations: int | None = Field(None, ge=1, description="operations per timed trial (all workers together)")
    min_operations: int = Field(2000, ge=1, le=100_000_000, description="ANN: a trial is at least this many "
                                "searches (cycling through the queries in each worker's seeded order), so a "
                                "trial supports a P99 and five merged trials a P99.9")
    concurrency: int = Field(1, ge=1, le=1024, description="workers: threads for an in-process engine, processes "
                             "for a server (each with its own client), Ray actors with --cluster")
    batch_size: int = Field(1000, ge=1, le=1_000_000, description="vectors per insert batch while loading")
    target_rate: float | None = Field(None, gt=0, description="open loop: operations per second offered")
    arrival: Literal["constant", "poisson"] = Field("constant", description="open loop: evenly spaced "
                                                    "arrivals, or a Poisson process at target_rate")
    index_timeout_s: float = Field(3600, gt=0, description="give up waiting for the engine to finish indexing "
                                   "after this many seconds")
    op_timeout_s: float = Field(30.0, gt=0, le=3600, description="every engine call of a timed phase gives up "
                                "after this long, as an error (through the engine client's own timeout where it "
                                "has one; else the phase watchdog below ends the phase)")
    phase_margin_s: float = Field(10.0, gt=0, le=3600, description="a timed trial that runs this long past its "
                                  "duration fails; a worker that finishes no operation for op_timeout_s + "
                                  "phase_margin_s ends the phase, failed")
    error_threshold: float = Field(0.01, ge=0, le=1, description="a trial whose error rate passes it fails")
    on_trial_failure: Literal["continue", "stop"] = Field("continue", description="after a failed trial: "
                                                          "continue with the next, or stop the run (status stopped)")
    recall_sample_every: int = Field(10, ge=0, description="search-under-writes: every Nth search is kept for "
                                     "recall (0 = none)")
    visibility_sample_every: int = Field(50, ge=0, description="search-under-writes: every Nth upsert is probed for "
                                         "its visibility lag (0 = none)")


WORKLOAD_NAME = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]{0,63}")


class WorkloadSpec(Strict):
    name: str = Field(description="the workload's name, in run ids, file names and every result row")
    kind: str = Field(description="what it measures: ann, ycsb, streaming, capacity, searchable (a registered "
                      "kind scenario)")
    description: str = Field("", description="one line for `bench workloads` and the report")
    dataset: DatasetSpec = Field(default_factory=DatasetSpec, description="the vectors: source, sizes, metric")
    index: IndexModel = Field(default_factory=IndexModel, description="the index asked of the engine")
    search: SearchModel = Field(default_factory=SearchModel, description="how each search asks: k and ef_search")
    ycsb: YcsbSpec | None = Field(None, description="kind = ycsb: the operation proportions and key choice")
    run: RunModel = Field(default_factory=RunModel, description="trials, warm-up, length, workers, timeouts")
    # the feature tables ([filter], [hybrid], ...), each validated by its scenario's own model, in fold order
    features: dict[str, Any] = Field(default_factory=dict, exclude=True)
    # the kind's own table ([streaming], [capacity], ...), validated by the kind scenario's model; None: it has none
    kind_options: Any = Field(None, exclude=True)

    def feature(self, table: str) -> Any:
        """The validated options of a feature table, or None when the workload has none."""
        return self.features.get(table)

    def dump(self) -> dict[str, Any]:
        """The workload as a TOML-shaped dict (run.json): the core tables and every feature table."""
        own = {self.kind: self.kind_options.model_dump(mode="json")} if self.kind_options is not None else {}
        return {**self.model_dump(mode="json"), **own,
                **{t: m.model_dump(mode="json") for t, m in self.features.items()}}

    @field_validator("name")
    @classmethod
    def _plain_name(cls, name: str) -> str:
        """The name becomes part of run ids, file names, collection names and every result row."""
        if not WORKLOAD_NAME.fullmatch(name):
            raise ValueError("a workload name is 1 to 64 letters, digits, '.', '_' or '-', not starting with '.' "
                             "(it names result files and collections)")
        return name

    @model_validator(mode="after")
    def _consistent(self) -> WorkloadSpec:
        if self.search.k > self.dataset.n:
            raise ValueError(f"search.k = {self.search.k} is larger than the dataset (dataset.n = {self.dataset.n})")
        if self.kind == "ycsb" and self.ycsb is None:
            raise ValueError("a ycsb workload needs a [ycsb] table with the operation proportions")
        if self.kind == "ann" and self.ycsb is not None:
            raise ValueError("a [ycsb] table is only read when kind = 'ycsb'; set kind = 'ycsb' or remove the table")
        return self


# -- loading -----------------------------------------------------------------------------------------------

def read_toml(path: Path, what: str) -> dict[str, Any]:
    """A TOML file as a dict. A UTF-8 byte order mark (some Windows editors write one) is skipped; a FIFO or a
    device is refused rather than read (it could block forever)."""
    try:
        check_regular_file(path, f"{what} file")
        with path.open("rb") as f:
            text = f.read().decode("utf-8")
        return tomllib.loads(text.removeprefix("\ufeff"))
    except FileNotFoundError:
        raise UserError(f"The {what} file {path} does not exist", "check the path") from None
    except tomllib.TOMLDecodeError as e:
        raise UserError(f"The {what} file {path} is not valid TOML ({e})", "fix the syntax at that line") from None
    except UnicodeDecodeError as e:
        raise UserError(f"The {what} file {path} is not UTF-8 text (byte {e.start} is 0x{e.object[e.start]:02x})",
                        "save it as UTF-8") from None
    except OSError as e:
        raise UserError(f"The {what} file {path} cannot be read ({e})", "check the file and its permissions") from None


def workload_files() -> dict[str, Path]:
    """Every workload a name can give, name -> file: the shipped ones and the subfolders (`vdbb/...`, `annb/...`),
    a `./workloads/` file of the same name winning."""
    found: dict[str, Path] = {}
    for d in (WORKLOAD_DIR, Path("workloads")):  # the local folder last, so its files win
        if d.is_dir():
            for x in (*d.glob("*.toml"), *d.glob("*/*.toml")):
                found[x.relative_to(d).with_suffix("").as_posix()] = x
    return dict(sorted(found.items()))


def resolve_workload_path(name_or_path: str) -> Path:
    p = Path(name_or_path)
    if p.suffix == ".toml" or p.exists():
        return p
    candidate = _local_first("workloads", f"{name_or_path}.toml", WORKLOAD_DIR)
    if candidate.exists():
        return candidate
    # a name may name a subfolder: `vdbb/performance-768d-1m` (VectorDBBench's cases), `annb/sift-128-euclidean`
    known = workload_files()
    close = did_you_mean(name_or_path, known)
    raise UserError(f"Unknown workload '{name_or_path}'", f"{close} (`bench workloads` lists all {len(known)})" if close
                    else f"give a file path or one of the {len(known)} names `bench workloads` lists")


def parse_value(text: str) -> Any:
    """A `--set` value as TOML would read it (numbers, booleans, lists, quoted strings), else the raw string."""
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def apply_overrides(data: dict[str, Any], overrides: list[str], allowed_roots: set[str],
                    origins: dict[str, str] | None = None) -> dict[str, Any]:
    """Apply `a.b.c=value` overrides in place; the first part must be one of allowed_roots. `origins`, when given,
    gets each key path and the `--set` that set it (so an error in its value names the flag, not the file)."""
    for item in overrides:
        if "=" not in item:
            raise UserError(f"--set '{item}' has no '='", "write it as --set section.key=value, e.g. --set dataset.n=20000")
        key, _, raw = item.partition("=")
        parts = [p for p in key.strip().split(".") if p]
        if not parts or parts[0] not in allowed_roots:
            bad = parts[0] if parts else key
            close = did_you_mean(bad, allowed_roots)
            raise UserError(f"--set '{item}' names an unknown section '{bad}'",
                            (f"{close} " if close else "") + f"use one of: {', '.join(by_closeness(bad, allowed_roots))}")
        if origins is not None:
            origins[".".join(parts)] = f"--set {item}"
        node = data
        for p in parts[:-1]:
            nxt = node.setdefault(p, {})
            if not isinstance(nxt, dict):
                raise UserError(f"--set '{item}': '{p}' is a value, not a section", "check the key path")
            node = nxt
        node[parts[-1]] = parse_value(raw.strip())
    return data


INT64_MAX = 2**63 - 1


def check_int_range(data: Any, where: str, path: str = "") -> None:
    """Reject whole numbers no result column can hold (beyond 64 bits), naming the key."""
    if isinstance(data, dict):
        for k, v in data.items():
            check_int_range(v, where, f"{path}.{k}" if path else str(k))
    elif isinstance(data, list):
        for i, v in enumerate(data):
            check_int_range(v, where, f"{path}.{i}")
    elif isinstance(data, int) and not isinstance(data, bool) and not -INT64_MAX - 1 <= data <= INT64_MAX:
        raise UserError(f"{where}: '{path}' = {data} is too large for a 64-bit whole number", "use a smaller value")


def format_validation_error(e: ValidationError, where: str, prefix: str = "", model: Any = None,
                            origins: dict[str, str] | None = None, top: str = "the top level") -> str:
    """One sentence naming every bad field, its value and what is expected. With the validated `model`, an
    unknown key gets "did you mean" and its section's keys, closest first. `origins` maps key paths to the
    command-line flag that set them: an error in such a key names the flag; when every error does, the flags
    replace `where` (the file is not at fault)."""
    parts: list[tuple[str | None, str]] = []
    for err in e.errors():
        path = tuple(str(x) for x in err["loc"])
        loc = ".".join(((prefix,) if prefix else ()) + path) or "(top level)"
        flag = _origin(loc, origins or {})
        parts.append((flag, _error_part(err, loc, path, model, flag, top)))
    if all(flag for flag, _ in parts):
        return "; ".join(dict.fromkeys(f"{flag}: {text}" for flag, text in parts))
    return f"{where}: " + "; ".join(text + (f" (from {flag})" if flag else "") for flag, text in parts)


def validation_error(e: ValidationError, where: str, hint: str, prefix: str = "", model: Any = None,
                     origins: dict[str, str] | None = None, top: str = "the top level") -> UserError:
    """The UserError of a failed validation (format_validation_error); when command-line flags alone are at
    fault, the hint says to fix them."""
    text = format_validation_error(e, where, prefix, model, origins, top)
    return UserError(text, hint if text.startswith(f"{where}:") else "fix the value on the command line")


def _error_part(err: Any, loc: str, path: tuple[str, ...], model: Any, flag: str | None, top: str) -> str:
    msg = err["msg"]
    if err["type"] == "extra_forbidden":
        keys = field_names(model, path[:-1]) if model is not None else []
        if not keys:
            return f"unknown key '{loc}'"
        section = loc.rsplit(".", 1)[0] if "." in loc else ""
        close = did_you_mean(path[-1], keys)
        if close and section:
            close = close.replace("'", f"'{section}.", 1)
        return (f"unknown key '{loc}' ({close + ' ' if close else ''}the keys of {f'[{section}]' if section else top}, "
                f"closest first: {', '.join(by_closeness(path[-1], keys))})")
    if err["type"] == "missing":
        return f"missing key '{loc}'"
    value = err.get("input")
    msg = msg.removeprefix("Value error, ")
    msg = msg[0].lower() + msg[1:] if msg else msg
    if isinstance(value, dict):  # a section's own check: its message names the keys
        return f"'{loc}': {msg}"
    shown = repr(value) if not isinstance(value, list) or len(repr(value)) < 60 else "..."
    text = f"'{loc}' = {shown}: {msg}"
    if err["type"] == "list_type" and isinstance(value, str | int | float) and not isinstance(value, bool):
        items = ",".join(x.strip() for x in value.split(",")) if isinstance(value, str) else repr(value)
        text += (f" (write a list: --set {loc}=[{items}])" if flag and flag.startswith("--set") else
                 f" (write a list: {loc.rsplit('.', 1)[-1]} = [{items}])")
    return text


def _origin(loc: str, origins: dict[str, str]) -> str | None:
    """The flag that set the key at `loc`, or the one flag that set a key inside it (a section's own check)."""
    if loc in origins:
        return origins[loc]
    above = [f for k, f in origins.items() if loc.startswith(k + ".")]
    inside = [f for k, f in origins.items() if k.startswith(loc + ".")]
    return (above or inside)[0] if len(above or inside) == 1 else None


def field_names(model: Any, path: tuple[str, ...] = ()) -> list[str]:
    """The keys of the (sub)model at `path` inside pydantic `model` ([] when that is not a model)."""
    sub = model_at(model, path)
    return list(sub.model_fields) if sub is not None else []


def model_at(model: Any, path: tuple[str, ...]) -> Any:
    """The pydantic model class at `path` inside `model`, through optional, list and dict fields; None if none."""
    import typing

    keyed = False  # the previous part was a dict field: this part is one of its keys
    for part in path:
        if keyed:
            keyed = False
            continue
        field = getattr(model, "model_fields", {}).get(part)
        if field is None:
            return None
        keyed = typing.get_origin(field.annotation) is dict
        model = _model_in(field.annotation, typing)
        if model is None:
            return None
    return model if isinstance(model, type) and issubclass(model, BaseModel) else None


def _model_in(annotation: Any, typing: Any) -> Any:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in typing.get_args(annotation):
        found = _model_in(arg, typing)
        if found is not None:
            return found
    return None


def load_backend_options(options_cls: type[BackendOptions], backend: str, config: str | None,
                         overrides: list[str] | None = None) -> tuple[BackendOptions, Path | None]:
    """Options for one backend: configs/<backend>.toml (or --config), then --set backend.KEY=VALUE."""
    path: Path | None = Path(config) if config else _local_first("configs", f"{backend}.toml", CONFIG_DIR)
    data: dict[str, Any] = {}
    if config or (path is not None and path.exists()):
        data = read_toml(path, "backend config")
    else:
        path = None
    origins: dict[str, str] = {}
    wrapped = apply_overrides({"backend": data}, [o for o in (overrides or []) if o.startswith("backend.")],
                              {"backend"}, origins)
    origins = {k.removeprefix("backend."): v for k, v in origins.items()}
    check_int_range(wrapped["backend"], f"Backend config {path}" if path else f"Backend '{backend}' options")
    try:
        return options_cls.model_validate(wrapped["backend"]), path
    except ValidationError as e:
        where = f"Backend config {path}" if path else f"Backend '{backend}' options"
        raise validation_error(e, where, "fix the value in the config or with --set backend.KEY=VALUE",
                               model=options_cls, origins=origins, top=f"backend '{backend}'") from None
