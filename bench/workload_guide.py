"""`bench workloads`: list the workloads that ship, and show one file with each key explained.

The explanations are the pydantic field descriptions of the spec (bench/spec.py) and of each scenario's option
model: the one place a key is documented, so what `show` says and what validation checks cannot drift apart.
"""

from __future__ import annotations

import json
import re
import textwrap
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import BaseModel

from bench.errors import UserError
from bench.spec import CORE_TABLES, WorkloadSpec, model_at, read_toml, resolve_workload_path, workload_files
from bench.terminal import Column, print_table, terminal_width


def _help_group():
    from bench.cli_help import HelpGroup

    return HelpGroup


app = typer.Typer(help="List the workloads that ship, or show one with each key explained.",
                  invoke_without_command=True, no_args_is_help=False, rich_markup_mode=None,
                  context_settings={"help_option_names": ["-h", "--help"]}, cls=_help_group())


# -- the list --------------------------------------------------------------------------------------------------

def catalog() -> list[dict[str, Any]]:
    """One entry per workload name: name, kind (with its feature tables), description, dataset size, file."""
    from bench import scenarios

    tables = scenarios.tables()
    out = []
    for name, path in workload_files().items():
        data = read_toml(path, "workload")
        ds = data.get("dataset", {}) if isinstance(data.get("dataset"), dict) else {}
        features = [t for t in data if t in tables]
        out.append({"name": name, "kind": "+".join([str(data.get("kind", "?")), *features]),
                    "description": str(data.get("description", "")), "source": ds.get("source", "synthetic"),
                    "n": ds.get("n"), "dim": ds.get("dim"), "queries": ds.get("queries"), "file": str(path)})
    return out


def _count(n: Any) -> str:
    """10k, 1M, 20,200: a count as short as it can be without rounding."""
    if not isinstance(n, int):
        return "?"
    for div, unit in ((1_000_000, "M"), (1000, "k")):
        if n >= div and n % div == 0:
            return f"{n // div}{unit}"
    return f"{n:,}"


def print_catalog(entries: list[dict[str, Any]], wide: bool) -> None:
    """One table per folder (the shipped workloads, then annb/, vdbb/): a row each, descriptions cut to fit."""
    cols = [Column("workload"), Column("kind", drop=2), Column("n x dim", True, drop=1), Column("queries", True, drop=3),
            Column("description", clip=True)]
    groups: dict[str, list[list[str]]] = {}
    for w in entries:
        folder = w["name"].rpartition("/")[0]
        groups.setdefault(folder, []).append([w["name"], w["kind"], f"{_count(w['n'])} x {_count(w['dim'])}",
                                              _count(w["queries"]), w["description"] or "-"])
    print(f"{len(entries)} workloads: `bench workloads show NAME` explains one; --json or --wide: whole descriptions")
    for folder, rows in groups.items():
        print()
        print_table(f"{folder}/ ({len(rows)})" if folder else f"workloads/ ({len(rows)})", cols, rows, wide=wide)


@app.callback()
def workloads(ctx: typer.Context,
              as_json: Annotated[bool, typer.Option("--json", help="print the list as JSON")] = False,
              wide: Annotated[bool, typer.Option("--wide", help="keep every column, whatever the terminal's "
                                                 "width")] = False) -> None:
    """List the workloads that ship (workloads/ and its subfolders): kind, size and description."""
    if ctx.invoked_subcommand is not None:
        return
    entries = catalog()
    if as_json:
        print(json.dumps(entries, indent=2))
    else:
        print_catalog(entries, wide)


# -- one file, explained ---------------------------------------------------------------------------------------

HEADER = re.compile(r"^\s*\[([A-Za-z0-9_.\-\s]+)\]\s*(#.*)?$")
KEY = re.compile(r"^\s*([A-Za-z0-9_-]+)\s*=")


def section_model(section: tuple[str, ...], kind: str | None) -> type[BaseModel] | None:
    """The model whose fields are the keys of `[a.b]` (() is the top level); None when there is none."""
    from bench import scenarios

    if not section:
        return WorkloadSpec
    head, rest = section[0], section[1:]
    if head in CORE_TABLES:
        return model_at(WorkloadSpec, section)
    owner = scenarios.tables().get(head) or (scenarios.kinds().get(head) if head == kind else None)
    options = getattr(owner, "Options", None)
    return model_at(options, rest) if options is not None else None


def describe(section: tuple[str, ...], key: str, kind: str | None) -> str | None:
    """A key's description and default, or None for a key no model knows."""
    model = section_model(section, kind)
    field = model.model_fields.get(key) if model is not None else None
    if field is None and len(section) > 1:  # a key of a dict field (`[multivector.vectors]`): that field's
        parent = section_model(section[:-1], kind)
        field = parent.model_fields.get(section[-1]) if parent is not None else None
    if field is None:
        return None
    text = field.description or ""
    if model is not None and key in model.model_fields and not field.is_required():
        default = field.get_default(call_default_factory=True)
        if not isinstance(default, BaseModel | dict):
            text += f" (default {'none' if default is None else json.dumps(default)})"
    return text or None


def explain(path: Path, width: int) -> list[str]:
    """The file's lines, each key followed by `#: its description`, each section closed by the keys it leaves
    at their defaults. The output is still a valid workload file."""
    data = read_toml(path, "workload")
    kind = data.get("kind") if isinstance(data.get("kind"), str) else None
    out: list[str] = []
    section: tuple[str, ...] = ()
    seen: list[str] = []
    for line in path.read_text(encoding="utf-8").removeprefix("\ufeff").splitlines():
        header, key = HEADER.match(line), KEY.match(line)
        if header:
            tail = len(out)
            while tail and (not out[tail - 1].strip() or (out[tail - 1].startswith("#") and not
                                                          out[tail - 1].startswith("#:"))):
                tail -= 1  # the blank lines and comments before the header belong to the next section
            out[tail:tail] = _unset(section, seen, kind, width)
            section, seen = tuple(p.strip() for p in header.group(1).split(".")), []
        out.append(line)
        if key and not header:
            seen.append(key.group(1))
            text = describe(section, key.group(1), kind)
            if text:
                out += textwrap.wrap(text, width=max(40, width), initial_indent="#: ", subsequent_indent="#:   ")
    return out + _unset(section, seen, kind, width)


def _unset(section: tuple[str, ...], seen: list[str], kind: str | None, width: int) -> list[str]:
    model = section_model(section, kind)
    if model is None or not seen:
        return []
    rest = [k for k in (("name", "kind", "description") if not section else model.model_fields) if k not in seen]
    if not rest:
        return []
    where = f"[{'.'.join(section)}]" if section else "the top level"
    return textwrap.wrap(f"also in {where}, at their defaults: {', '.join(rest)}", width=max(40, width),
                         initial_indent="#: ", subsequent_indent="#:   ")


@app.command("show")
def show(name: Annotated[str, typer.Argument(help="a workload name (`bench workloads` lists them) or file")]) -> None:
    """Print a workload file with each key explained (from the spec's field descriptions)."""
    path = resolve_workload_path(name)
    if not path.is_file():
        raise UserError(f"The workload file {path} does not exist", "check the path (`bench workloads` lists names)")
    print(f"# {path} (the '#:' lines explain each key, from the spec's field descriptions)")
    print("\n".join(explain(path, terminal_width() - 1)))


# -- every key -------------------------------------------------------------------------------------------------

def sections() -> dict[str, type[BaseModel]]:
    """Every table a workload file may hold, with its model: the core tables, then each scenario's."""
    from bench import scenarios

    out: dict[str, type[BaseModel]] = {"": WorkloadSpec}
    for name in ("dataset", "index", "search", "ycsb", "run"):
        model = model_at(WorkloadSpec, (name,))
        if model is not None:
            out[name] = model
    for name, cls in [*scenarios.tables().items(), *scenarios.kinds().items()]:
        if getattr(cls, "Options", None) is not None:
            out[name] = cls.Options
    return out


def key_reference() -> str:
    """Markdown: every key of every table, its description and default (docs/workload-keys.md is this text)."""
    lines = ["# Workload keys", "",
             "Every key a workload file (or `--set section.key=value`) may set, with its default. Generated from the",
             "spec's field descriptions by `bench workloads keys`; tests/test_find_your_way.py checks this page is",
             "current. `bench workloads show NAME` prints one workload file with these explanations beside its keys.",
             ""]
    for name, model in sections().items():
        lines += [f"## {f'[{name}]' if name else 'Top level'}", "", "| key | default | what it is |", "|---|---|---|"]
        for key, field in model.model_fields.items():
            if field.exclude or (not name and key in CORE_TABLES - {"name", "kind", "description"}):
                continue
            default = "required" if field.is_required() else field.get_default(call_default_factory=True)
            shown = default if default == "required" else "none" if default is None else json.dumps(
                default.model_dump(mode="json") if isinstance(default, BaseModel) else default)
            text = (field.description or "").replace("|", "\\|")
            lines.append(f"| `{key}` | `{shown}` | {text} |")
        lines.append("")
    return "\n".join(lines)


@app.command("keys")
def keys() -> None:
    """Print every key a workload may set, with its description and default (Markdown)."""
    print(key_reference(), end="")
