"""Bench's modules import only down the layer order of bench/layers.py (DESIGN.md, "Layers"), and never in a
circle. Every import counts: top-level, inside a function, `from bench import x`, relative ones. No exceptions
list: a violation is fixed in the code (move the helper down, pass the thing in, or split the module)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from bench.layers import layer_name, layer_of

BENCH = Path(__file__).resolve().parent.parent / "bench"


def _modules() -> dict[str, Path]:
    out = {}
    for p in BENCH.rglob("*.py"):
        parts = p.relative_to(BENCH.parent).with_suffix("").parts
        out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = p
    return out


MODULES = _modules()


def _imports(name: str, path: Path) -> set[str]:
    """The bench modules `name` imports anywhere in its file."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name.split(".")[0] == "bench"}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                mod = ".".join([*base, *([node.module] if node.module else [])])
            else:
                mod = node.module or ""
            if mod.split(".")[0] != "bench":
                continue
            for a in node.names:  # `from bench.x import y`: the module bench.x.y when there is one
                out.add(f"{mod}.{a.name}" if f"{mod}.{a.name}" in MODULES else mod)
    return {m for m in out if m != name}


GRAPH = {name: _imports(name, path) for name, path in MODULES.items()}


def upward_imports() -> list[str]:
    return sorted(f"{a} ({layer_name(a)}) imports {b} ({layer_name(b)})"
                  for a, deps in GRAPH.items() for b in deps if layer_of(b) > layer_of(a))


def cycles() -> list[list[str]]:
    """The import cycles: strongly connected groups of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in GRAPH.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                out.append(sorted(group))

    for v in sorted(GRAPH):
        if v not in index:
            visit(v)
    return out


def test_every_module_is_in_a_layer():
    for name in MODULES:
        layer_of(name)  # raises naming the module


def test_imports_point_down_the_layers():
    up = upward_imports()
    assert not up, f"{len(up)} upward import(s):\n" + "\n".join(up)


def test_no_import_cycles():
    found = cycles()
    assert not found, "import cycles:\n" + "\n".join(" <-> ".join(c) for c in found)


@pytest.mark.parametrize("source,expected", [
    ("from bench.faults.servers import pid_on_port", {"bench.faults.servers"}),
    ("from bench import spec", {"bench.spec"}),
    ("def f():\n    from ..spec import Spec", {"bench.spec"}),
])
def test_the_parser_sees_every_kind_of_import(tmp_path, source, expected, monkeypatch):
    f = tmp_path / "mod.py"
    f.write_text(source)
    assert _imports("bench.load.mod", f) == expected


def test_scenarios_type_their_run_context():
    """A scenario's `ctx` is the RunContext protocol (bench/scenarios/context.py), never Any."""
    untyped = []
    for name, path in MODULES.items():
        if not name.startswith("bench.scenarios"):
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                for a in [*node.args.args, *node.args.kwonlyargs]:
                    if a.arg == "ctx" and (a.annotation is None or ast.unparse(a.annotation) != "RunContext"):
                        untyped.append(f"{name}.{node.name}")
    assert not untyped, untyped
