"""The scenario registry and the plan of one run.

Built-in scenarios are the modules of this package (a new file here is found without any other edit); a third
party adds one through the `bench.scenarios` entry-point group, or `register(cls)` in-process. Each declares the
workload table that turns it on (`[filter]`, `[hybrid]`, ...) or the workload kind it runs (`ann`, `ycsb`).
"""

from __future__ import annotations

import importlib
import pkgutil
from importlib.metadata import entry_points

from bench.results import figures, keys
from bench.scenarios.base import Chart, Prep, Reference, RunFlags, Scenario, Variant

_TABLES: dict[str, type[Scenario]] = {}
_KINDS: dict[str, type[Scenario]] = {}
_LOADED = False


def register(cls: type[Scenario]) -> type[Scenario]:
    """Register a scenario class (usable as a decorator); its result keys are registered with it."""
    if not (cls.table or cls.kind) or (cls.table and cls.kind):
        raise ValueError(f"scenario {cls.__name__} must set exactly one of `table` and `kind`")
    for k in cls.keys:
        keys.register(k)
    for f in cls.figures:
        figures.register(f)
    if cls.kind:
        _KINDS[cls.kind] = cls
    else:
        _TABLES[cls.table] = cls
    return cls


def _load() -> None:
    global _LOADED
    if _LOADED:
        return
    _LOADED = True
    for m in pkgutil.iter_modules(__path__):
        if m.name not in ("base", "context", "plan", "reference"):
            importlib.import_module(f"{__name__}.{m.name}")
    for ep in entry_points(group="bench.scenarios"):
        register(ep.load())


def load() -> None:
    """Register every scenario (and so its keys and figures): what reads or writes result rows calls this first."""
    _load()


def every() -> list[type[Scenario]]:
    """Every registered scenario class, kinds first."""
    _load()
    return [*_KINDS.values(), *_TABLES.values()]


def tables() -> dict[str, type[Scenario]]:
    """Workload table name -> feature scenario class."""
    _load()
    return dict(_TABLES)


def kinds() -> dict[str, type[Scenario]]:
    """Workload kind -> kind scenario class."""
    _load()
    return dict(_KINDS)


__all__ = ["Chart", "Prep", "Reference", "RunFlags", "Scenario", "Variant", "every", "kinds", "load", "register", "tables"]
