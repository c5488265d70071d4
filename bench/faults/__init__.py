"""`bench fault`: kill a local server during a YCSB run, restart it, and measure the recovery; built on the run
context (bench/run_context.py) and the one timed-loop driver (bench/load/driver.py).

- run.py: the fault run (its workers, the controller that kills and restarts, the analysis of the timeline);
- servers.py: finding, identifying and signalling server processes, and private servers for tests;
- cli.py: the `bench fault` command.
"""

from typing import Any

__all__ = ["FaultOutcome", "FaultRequest", "analyse", "durability", "format_summary", "outcome_json", "run_fault"]


def __getattr__(name: str) -> Any:
    """The fault run's names, imported on first use: `bench --help` and every other command mount `bench fault`
    through bench.faults.cli and must not pay for the run context's imports."""
    if name in __all__:
        from bench.faults import run

        return getattr(run, name)
    raise AttributeError(f"module 'bench.faults' has no attribute {name!r}")
