"""`bench datasets`: list, describe, generate and fetch datasets."""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from pydantic import ValidationError
from rich import box
from rich.console import Console
from rich.table import Table

from bench.cli_help import HelpGroup
from bench.datasets import default_cache_dir, load
from bench.datasets.fetch import (
    CATALOG,
    DEFAULT_DEADLINE_S,
    DEFAULT_STALL_S,
    datasets_dir,
    fetch,
    is_complete,
)
from bench.datasets.formats import open_path
from bench.datasets.spec import DatasetSpec
from bench.errors import UserError
from bench.units import format_bytes

app = typer.Typer(help="Generate, fetch, list and describe datasets.", no_args_is_help=False, rich_markup_mode=None,
                  context_settings={"help_option_names": ["-h", "--help"]}, cls=HelpGroup)
F = TypeVar("F", bound=Callable[..., Any])

CacheOpt = Annotated[Path | None, typer.Option("--cache-dir", help="cache folder (default: $BENCH_CACHE_DIR "
                                                                   "or ~/.cache/bench)")]


def _user_errors(fn: F) -> F:
    """Print a UserError as its sentence on stderr and exit 2.

    SystemExit rather than typer.Exit: under `standalone_mode=False` click returns typer.Exit's code instead of
    exiting with it, and SystemExit passes through click to the process either way.
    """
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except UserError as e:
            typer.echo(f"error: {e.sentence()}", err=True)
            raise SystemExit(e.exit_code) from None
    return wrapper  # type: ignore[return-value]


_size = format_bytes


def _count(n: int) -> str:
    for div, unit in ((1_000_000, "M"), (1_000, "K")):
        if n >= div:
            return f"{n / div:.3g}{unit}"
    return str(n)


def _folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) if folder.is_dir() else 0


def _cache_state(name: str, cache: Path) -> str:
    entry = CATALOG[name]
    folder = datasets_dir(cache) / name
    if is_complete(entry, folder):
        return f"yes, {_size(_folder_bytes(folder))}"
    parts = list(folder.glob("*.part")) if folder.is_dir() else []
    if parts:
        return f"partial, {_size(sum(p.stat().st_size for p in parts))}"
    return "-"


@app.callback(invoke_without_command=True)
def main(ctx: typer.Context) -> None:
    """With no command: list the datasets."""
    if ctx.invoked_subcommand is None:
        list_cmd(cache_dir=None)


@app.command("list")
@_user_errors
def list_cmd(cache_dir: CacheOpt = None) -> None:
    """The catalog of public sets, what is cached, and the local sets."""
    cache = cache_dir or default_cache_dir()
    console = Console()
    if not console.is_terminal:
        console = Console(width=160)  # piped: do not cut names to 80 columns
    table = Table(title=f"datasets (cache: {cache})", box=box.SIMPLE_HEAD, padding=(0, 1))
    for col in ("name", "dim", "metric", "base", "queries", "download", "cached"):
        table.add_column(col, justify="right" if col in ("dim", "base", "queries", "download") else "left",
                         no_wrap=True)
    from bench.datasets.wordnet import NAME as WORDNET
    from bench.datasets.wordnet import candidates

    wn = next((p for p in candidates() if (p / "vectors.f16.npy").is_file()), None)
    table.add_row("synthetic", "any", "any", "any", "any", "-", "on demand")
    table.add_row(WORDNET, "768", "cosine", "20K" if wn and "small" not in wn.name else "4K", "200", "-",
                  "found" if wn else "not found")
    for e in CATALOG.values():
        table.add_row(e.name, str(e.dim), e.metric, _count(e.base), _count(e.queries) if e.queries else "?",
                      f"~{_size(e.approx_bytes)}", _cache_state(e.name, cache))
    console.print(table)
    console.print(f"{WORDNET}: {wn or 'not found; set BENCH_WORDNET_DIR'}")
    synth = sorted((cache / "synthetic").glob("*/meta.json")) if (cache / "synthetic").is_dir() else []
    if synth:
        total = sum(_folder_bytes(p.parent) for p in synth)
        console.print(f"{len(synth)} generated synthetic set(s) in {cache / 'synthetic'}: {_size(total)}")
    for sub in ("groundtruth", "converted"):
        if (cache / sub).is_dir():
            console.print(f"{sub}: {_size(_folder_bytes(cache / sub))} in {cache / sub}")


def _describe(name_or_path: str, cache: Path) -> dict[str, Any]:
    if name_or_path in CATALOG:
        e = CATALOG[name_or_path]
        folder = datasets_dir(cache) / e.name
        out: dict[str, Any] = {"name": e.name, "origin": e.origin, "description": e.description, "dim": e.dim,
                               "metric": e.metric, "base": e.base, "queries": e.queries,
                               "download_bytes_approx": e.approx_bytes, "urls": [f.url for f in e.files],
                               "cached": is_complete(e, folder), "folder": str(folder)}
        if out["cached"]:
            out["file"] = _inspect(e.local_path(folder))
        return out
    if name_or_path == "synthetic":
        return {"name": "synthetic", "generator_defaults": DatasetSpec().generator_params(),
                "note": "deterministic from seed; see bench/datasets/synthetic.py for the model"}
    if name_or_path == "wordnet-mpnet-768":
        from bench.datasets.wordnet import QUERY_ROWS, read_folder, resolve_dir

        folder = resolve_dir()
        vectors, texts = read_folder(folder)
        return {"name": name_or_path, "folder": str(folder), "base": len(vectors) - QUERY_ROWS, "queries": QUERY_ROWS,
                "dim": vectors.shape[1], "dtype": str(vectors.dtype), "metric": "cosine", "texts": texts is not None}
    path = Path(name_or_path).expanduser()
    if path.is_dir() and (path / "meta.json").is_file() and (path / "base.npy").is_file():
        return _describe_generated(path)
    if not path.exists():
        raise UserError(f"'{name_or_path}' is neither a known dataset nor an existing file",
                        f"give a path or one of: synthetic, wordnet-mpnet-768, {', '.join(CATALOG)}")
    return _inspect(path)


def _describe_generated(folder: Path) -> dict[str, Any]:
    """A synthetic set's folder, as `bench datasets generate` printed it."""
    meta = json.loads((folder / "meta.json").read_text(encoding="utf-8"))
    spec = meta.get("spec", {})
    return {"name": "synthetic", "folder": str(folder), "hash": meta.get("content_hash"), "base": spec.get("n"),
            "queries": spec.get("queries"), "holdout": spec.get("holdout"), "dim": spec.get("dim"),
            "metric": spec.get("metric"), "seed": spec.get("seed"),
            "generator": {k: v for k, v in spec.items() if k not in ("n", "queries", "holdout", "dim", "metric",
                                                                    "seed", "source") and v is not None}}


def _print_info(info: dict[str, Any]) -> None:
    """key: value lines, numbers with thousands separators, lists one item a line, nested tables indented."""
    width = max(len(k) for k in info) if info else 0

    def text(v: Any) -> str:
        if isinstance(v, bool):
            return "yes" if v else "no"
        if isinstance(v, int):
            return f"{v:,}"
        return "-" if v is None else str(v)

    for k, v in info.items():
        if isinstance(v, dict):
            typer.echo(f"{k}:")
            inner = max((len(str(x)) for x in v), default=0)
            for ik, iv in v.items():
                typer.echo(f"  {ik:<{inner}}  {text(iv)}")
        elif isinstance(v, list | tuple):
            typer.echo(f"{k}:" + ("" if v else " -"))
            for item in v:
                typer.echo(f"  {text(item)}")
        else:
            typer.echo(f"{k:<{width}}  {text(v)}")


def _inspect(path: Path) -> dict[str, Any]:
    fs = open_path(path)
    return {"path": str(path), "format": fs.fmt, "rows": fs.train_n, "dim": fs.dim, "queries": fs.test_n,
            "metric": fs.metric, "published_neighbors": fs.neighbors is not None, "files": fs.paths}


@app.command("describe")
@_user_errors
def describe_cmd(name_or_path: Annotated[str, typer.Argument(help="a catalog name, synthetic, wordnet-mpnet-768 "
                                                                  "or a file path")],
                 cache_dir: CacheOpt = None,
                 as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False) -> None:
    """What a dataset or a vector file holds."""
    info = _describe(name_or_path, cache_dir or default_cache_dir())
    if as_json:
        typer.echo(json.dumps(info, indent=2, default=str))
        return
    _print_info(info)


@app.command("generate")
@_user_errors
def generate_cmd(n: Annotated[int, typer.Option(help="base vectors")] = 10_000,
                 queries: Annotated[int, typer.Option(help="query vectors")] = 1_000,
                 holdout: Annotated[int, typer.Option(help="extra vectors for updates")] = 0,
                 dim: Annotated[int, typer.Option(help="dimension")] = 768,
                 metric: Annotated[str, typer.Option(help="cosine, l2 or ip")] = "cosine",
                 seed: Annotated[int, typer.Option(help="random seed")] = 42,
                 clusters: Annotated[int, typer.Option(help="cluster centres")] = 100,
                 subclusters: Annotated[int, typer.Option(help="sub-topics per cluster")] = 20,
                 noise: Annotated[float, typer.Option(help="isotropic noise (harder when larger)")] = 2.4,
                 cache_dir: CacheOpt = None,
                 quiet: Annotated[bool, typer.Option("--quiet", "-q", help="no progress bar")] = False) -> None:
    """Generate a synthetic set into the cache (reused when the same options come again)."""
    try:
        spec = DatasetSpec(source="synthetic", n=n, queries=queries, holdout=holdout, dim=dim, metric=metric,  # type: ignore[arg-type]
                           seed=seed, clusters=clusters, subclusters=subclusters, noise=noise)
    except ValidationError as e:
        problems = "; ".join(f"--{'.'.join(str(x) for x in err['loc'])}: {err['msg'].removeprefix('Value error, ')}"
                             for err in e.errors())
        raise UserError(f"Bad option: {problems}", "see `bench datasets generate --help`") from None
    ds = load(spec, cache_dir or default_cache_dir(), progress=not quiet)
    typer.echo(f"path: {ds.paths['folder']}")
    typer.echo(f"hash: {ds.content_hash}")
    typer.echo(f"name: {ds.name} ({ds.n:,} base, {len(ds.queries):,} queries, {ds.describe()['holdout']:,} "
               f"holdout, dim {ds.dim}, {ds.metric})")


@app.command("fetch")
@_user_errors
def fetch_cmd(name: Annotated[str, typer.Argument(help="a catalog name (see `bench datasets list`)")],
              url: Annotated[str | None, typer.Option("--url", help="download from this address instead (a "
                                                                    "mirror)")] = None,
              dest: Annotated[Path | None, typer.Option("--dest", help="folder to put NAME/ in (default: "
                                                                       "<cache>/datasets)")] = None,
              sha256: Annotated[str | None, typer.Option("--sha256", help="expected sha256 of the file")] = None,
              size: Annotated[int | None, typer.Option("--size", help="expected size of the file in bytes")] = None,
              deadline: Annotated[float, typer.Option("--deadline", help="give up after this many seconds in all "
                                                      "(the part is kept: run again to continue)")
                                  ] = DEFAULT_DEADLINE_S,
              stall_timeout: Annotated[float, typer.Option("--stall-timeout", help="retry when less than 16 KiB "
                                                           "arrived in this many seconds")] = DEFAULT_STALL_S,
              quiet: Annotated[bool, typer.Option("--quiet", "-q", help="no progress bar")] = False) -> None:
    """Download a public dataset (resumable; run again to continue an interrupted download). A file is kept only
    once its size, checksum and format are verified; retries are shown as they happen."""
    folder = fetch(name, dest or datasets_dir(default_cache_dir()), progress=not quiet, url_override=url,
                   sha256=sha256, size=size, timeout=stall_timeout, deadline=deadline)
    typer.echo(f"fetched {name} into {folder}")
    if dest is not None and dest.resolve() != datasets_dir(default_cache_dir()).resolve():
        typer.echo(f"load it with source = 'file', path = '{CATALOG[name].local_path(folder)}'")
