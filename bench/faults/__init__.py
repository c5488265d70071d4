"""`bench fault`: kill a local server during a YCSB run, restart it, and measure the recovery; built on the run
context (bench/run_context.py) and the one timed-loop driver (bench/load/driver.py).

- run.py: the fault run (its workers, the controller that kills and restarts, the analysis of the timeline);
- servers.py: finding, identifying and signalling server processes, and private servers for tests;
- cli.py: the `bench fault` command.
"""

from bench.faults.run import (
    FaultOutcome,
    FaultRequest,
    analyse,
    durability,
    format_summary,
    outcome_json,
    run_fault,
)

__all__ = ["FaultOutcome", "FaultRequest", "analyse", "durability", "format_summary", "outcome_json", "run_fault"]
