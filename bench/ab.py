"""`bench ab`: two configurations measured alternately, trial by trial, in one time window.

Arm A (the baseline side) and arm B (the candidate side) run the same workload: two engine builds at two URLs or
images, two backend configs, two index settings. Both are loaded and indexed first; then their timed trials
alternate in the order A B, B A, A B, ... (each pair's order swapped, so neither side always runs first after
the other's warm-up), so whatever the machine's neighbours do in that window hits both arms alike. Every row
carries its arm (`ab_arm`, a key of bench/results/keys.py); both arms write into one run folder, as
`A.<backend>.<workload>.*` and `B.<backend>.<workload>.*`, beside `ab.json`.

`bench regress --candidate RUN` with no --baseline then tests the paired differences (bench.analysis.regress,
`compare_paired`). This follows Chromium's Pinpoint, which runs the two builds it compares as alternating
attempts on one bot and decides different / same / unknown, and pyperf's `compare_to`, which calls a change
significant only past both a t-test and a minimum size; here the trials are paired in time, so the test is on
the pair differences.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from bench.backends.secrets import redact_command
from bench.errors import UserError
from bench.results.writer import make_run_dir, new_run_id, write_json

ARMS = ("A", "B")


@dataclass
class Arm:
    name: str  # "A" or "B"
    backend: str
    config: str | None = None
    overrides: list[str] = field(default_factory=list)
    status: str = "pending"
    prefix: str = ""
    trials: int = 0


@dataclass
class AbOutcome:
    run_id: str
    run_dir: Path
    status: str
    arms: list[Arm]


def order(pair: int) -> tuple[int, int]:
    """The arms' order in pair `pair`: A B, then B A, then A B, ..."""
    return (0, 1) if pair % 2 == 0 else (1, 0)


def _request(arm: Arm, workload: str, rid: str, results_dir: Path, cache_dir: Path | None, trials: int | None,
             command: str):
    from bench.runner import RunRequest
    from bench.spec import load_workload

    name = load_workload(workload, [o for o in arm.overrides if not o.startswith("backend.")]).name
    arm.prefix = f"{arm.name}.{arm.backend}.{name}."
    return RunRequest(backend=arm.backend, workload=workload, overrides=arm.overrides, config=arm.config,
                      results_dir=results_dir, cache_dir=cache_dir, trials=trials, quiet=True, command=command,
                      suite_run_id=rid, suite_prefix=arm.prefix, row_extra={"ab_arm": arm.name})


def _check(arms: list[Arm], workload: str, trials: int | None) -> None:
    from bench.runner import RunRequest, check

    for arm in arms:
        checked = check(RunRequest(backend=arm.backend, workload=workload, overrides=arm.overrides,
                                   config=arm.config, trials=trials))
        if checked.spec.run.target_rate is None and checked.spec.run.trials < 2:
            raise UserError(f"Arm {arm.name} would measure {checked.spec.run.trials} trial, and an A/B run pairs "
                            "trials", "give --trials 2 or more (5 or more for a verdict)")


def run_ab(workload: str, arms: list[Arm], trials: int | None = None, results_dir: Path = Path("results"),
           cache_dir: Path | None = None, run_id: str | None = None, command: str = "",
           say: Callable[[str], None] = print) -> AbOutcome:
    """Load and index both arms, then alternate their timed trials; see the module docstring."""
    _check(arms, workload, trials)  # both arms' specs and engines, before anything is written
    rid = run_id or new_run_id("ab")
    run_dir = make_run_dir(results_dir, rid)
    doc: dict = {"kind": "ab", "run_id": rid, "workload": workload, "started_utc": datetime.now(UTC).isoformat(),
                 "command": redact_command(command), "order": "A B, then B A, alternating pair by pair"}

    def save(status: str) -> None:
        doc.update(status=status, updated_utc=datetime.now(UTC).isoformat(), arms=[asdict(a) for a in arms])
        write_json(run_dir / "ab.json", doc)

    save("running")
    status = "failed"
    try:
        with contextlib.ExitStack() as stack:
            steps = []
            for arm in arms:
                say(f"arm {arm.name}: {arm.backend}: loading and indexing")
                _, it = stack.enter_context(_opened(arm, workload, rid, results_dir, cache_dir, trials, command))
                steps.append(it)
            _alternate(arms, steps, say, doc.setdefault("sequence", []))
        status = "complete" if all(a.status == "complete" for a in arms) else "failed"
    except KeyboardInterrupt:
        status = "interrupted"
        raise
    finally:
        save(status)
    return AbOutcome(rid, run_dir, status, arms)


@contextlib.contextmanager
def _opened(arm: Arm, workload: str, rid: str, results_dir: Path, cache_dir: Path | None, trials: int | None,
            command: str) -> Iterator[tuple[object, Iterator[str]]]:
    from bench.runner import stepwise

    arm.status = "running"
    try:
        with stepwise(_request(arm, workload, rid, results_dir, cache_dir, trials, command)) as (ctx, it):
            yield ctx, it
        arm.status = ctx.status
    except BaseException:
        arm.status = "failed"
        raise


def _alternate(arms: list[Arm], steps: list[Iterator[str]], say: Callable[[str], None], sequence: list[str]) -> None:
    """Pair after pair, one timed trial of each arm, in the order `order(pair)`; an arm with trials left after
    the other ran out goes on alone (the arms then measured different configurations, which regress reports).
    `sequence` gets "<arm> <label>" per trial, in the order they ran (ab.json keeps it)."""
    live = [True, True]
    pair = 0
    t0 = time.perf_counter()
    while any(live):
        for i in order(pair):
            if not live[i]:
                continue
            label = next(steps[i], None)
            if label is None:
                live[i] = False
                continue
            arms[i].trials += 1
            sequence.append(f"{arms[i].name} {label}")
            say(f"pair {pair} arm {arms[i].name}: {label} ({time.perf_counter() - t0:.0f} s)")
        pair += 1
