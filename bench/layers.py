"""The layer order of bench's modules, written down once (DESIGN.md, "Layers"): a module imports only from its own
layer or the layers before it, never from a later one, and modules never import each other in a circle.
tests/test_layers.py holds every module to it (top-level and function-level imports alike).

One change from DESIGN.md's first list: faults sits above run_context, not below it. The fault command is an
orchestrator built on the run context (as DESIGN.md's layout says: "faults/ ... built on run_context"), and
nothing below run_context needs faults any more (the process helpers are in bench.processes).

Each layer lists module names; a name covers the module and everything under it, and the longest name that
matches a module decides its layer (`bench.datasets.cli` is a command-line module, `bench.datasets` a data one).
"""

from __future__ import annotations

LAYERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("base", ("bench", "bench.units", "bench.errors", "bench.terminal", "bench.files", "bench.reporter",
              "bench.layers", "bench.guard", "bench.results.integrity")),
    ("processes", ("bench.processes", "bench.services", "bench.pgcluster")),
    ("metrics, ops", ("bench.metrics", "bench.ops")),
    ("datasets, backends", ("bench.datasets", "bench.backends")),
    ("spec", ("bench.spec",)),
    ("results", ("bench.results",)),
    ("load", ("bench.load",)),
    ("scenarios", ("bench.scenarios", "bench.workload_file")),
    ("run_context", ("bench.run_context",)),
    ("faults", ("bench.faults",)),
    ("runner, suite, ab", ("bench.runner", "bench.suite", "bench.ab", "bench.ab_arm", "bench.live", "bench.cleanup")),
    ("analysis, importers, history", ("bench.analysis", "bench.importers", "bench.history")),
    ("cli", ("bench.cli", "bench.cli_help", "bench.datasets.cli", "bench.faults.cli", "bench.workload_guide")),
)


def layer_of(module: str) -> int:
    """The index in LAYERS of `module` ("bench.load.pool"); a ValueError for a module no layer names."""
    best, found = -1, None
    for i, (_, names) in enumerate(LAYERS):
        for name in names:
            covers = module == name or (name != "bench" and module.startswith(name + "."))  # bench: the package
            if covers and len(name) > best:
                best, found = len(name), i
    if found is None:
        raise ValueError(f"{module} is in no layer of bench.layers.LAYERS: add it to one")
    return found


def layer_name(module: str) -> str:
    return LAYERS[layer_of(module)][0]
