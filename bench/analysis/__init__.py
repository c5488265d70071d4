"""Reading, aggregating, comparing and drawing results. The scenarios are registered on import, so their result
keys and figures are known to every reader (bench.scenarios declares them; bench.results holds the registries)."""

from bench import scenarios as _scenarios

_scenarios.load()
