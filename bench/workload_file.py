"""Reading a workload: the file (or run.json's `workload` dict) through bench.spec's core models, each feature
table through its scenario's model, then every scenario's cross-checks. Above the scenario registry in the layer
order (bench/layers.py), which bench.spec, below it, cannot ask."""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from bench import scenarios
from bench.errors import UserError
from bench.spec import (
    CORE_TABLES,
    WorkloadSpec,
    apply_overrides,
    check_int_range,
    read_toml,
    resolve_workload_path,
    validation_error,
)


def load_workload(name_or_path: str, overrides: list[str] | None = None,
                  flags: dict[str, str] | None = None) -> WorkloadSpec:
    """The workload file with `--set` overrides applied. `flags` maps a key path that a command-line flag set
    (`run.trials`) to the flag as given (`--trials -1`), so an error in its value names the flag."""
    path = resolve_workload_path(name_or_path)
    data = read_toml(path, "workload")
    feature_classes = scenarios.tables()
    own_tables = {k for k, c in scenarios.kinds().items() if c.Options is not None}
    origins: dict[str, str] = {}
    data = apply_overrides(data, [o for o in (overrides or []) if not o.startswith("backend.")],
                           CORE_TABLES | set(feature_classes) | own_tables, origins)
    origins.update(flags or {})
    check_int_range(data, f"Workload {path}")
    return parse_workload(data, f"Workload {path}", origins)


def parse_workload(data: dict[str, Any], where: str, origins: dict[str, str] | None = None) -> WorkloadSpec:
    """A workload from its TOML-shaped dict (a file's, or run.json's `workload`): the core tables by
    WorkloadSpec, each feature table by its scenario's model, then every scenario's cross-checks."""
    feature_classes = scenarios.tables()
    data = dict(data)
    raw = {t: data.pop(t) for t in list(data) if t in feature_classes}
    known = scenarios.kinds()
    if "kind" in data and data["kind"] not in known:
        raise UserError(f"{where}: 'kind' = {data['kind']!r}: kind must be one of {', '.join(sorted(known))}",
                        "fix the value in the file or with --set")
    kind_cls = known.get(str(data.get("kind")))
    own = data.pop(data["kind"], {}) if kind_cls is not None and kind_cls.Options is not None else None
    try:
        spec = WorkloadSpec.model_validate(data)
        if own is not None:
            spec.kind_options = _validate_table(kind_cls, spec.kind, own, where, origins)
        for table, value in raw.items():
            spec.features[table] = _validate_table(feature_classes[table], table, value, where, origins)
        spec.features = dict(sorted(spec.features.items(), key=lambda kv: feature_classes[kv[0]].order))
        for table, options in spec.features.items():
            feature_classes[table].validate_spec(options, spec)
        scenarios.kinds()[spec.kind].validate_spec(spec.kind_options, spec)
    except ValidationError as e:
        raise validation_error(e, where, "fix the value in the file or with --set", model=WorkloadSpec,
                               origins=origins) from None
    except ValueError as e:
        raise UserError(f"{where}: {e}", "fix the value in the file or with --set") from None
    return spec


def _validate_table(cls: Any, table: str, value: Any, where: str, origins: dict[str, str] | None = None) -> Any:
    if not isinstance(value, dict):
        raise UserError(f"{where}: '{table}' must be a table ([{table}]), got {value!r}", "fix the file")
    try:
        return cls.Options.model_validate(value)
    except ValidationError as e:
        raise validation_error(e, where, "fix the value in the file or with --set", prefix=table, model=cls.Options,
                               origins=origins) from None
