"""Backend registry: adapters are found through the `bench.backends` entry-point group.

bench's own adapters are declared in its pyproject.toml like any third party's, so the mechanism that
finds them is the one a plug-in uses.
"""

from __future__ import annotations

from functools import cache
from importlib.metadata import entry_points

from bench.backends.base import Backend
from bench.errors import BackendUnavailable, UserError, did_you_mean

GROUP = "bench.backends"


@cache
def _entry_points() -> dict[str, object]:
    return {ep.name: ep for ep in entry_points(group=GROUP)}


def names() -> list[str]:
    return sorted(_entry_points())


def get(name: str) -> type[Backend]:
    eps = _entry_points()
    if name not in eps:
        hint = did_you_mean(name, eps) or f"choose one of: {', '.join(sorted(eps))}"
        raise UserError(f"Unknown backend '{name}'", hint + " (`bench backends` lists them)")
    try:
        cls = eps[name].load()  # type: ignore[attr-defined]
    except ModuleNotFoundError as e:
        if (e.name or "").split(".")[0] == "bench":
            raise  # a module of bench itself is missing: a bug, not the user's to fix
        raise BackendUnavailable(
            f"Backend '{name}' cannot be loaded because its client library is missing ({e})",
            "install it with `pip install -e '.[all]'`",
        ) from None
    return cls
