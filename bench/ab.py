"""`bench ab`: two configurations measured alternately, trial by trial, in one time window.

Arm A (the baseline side) and arm B (the candidate side) run the same workload: two engine builds at two URLs or
images, two backend configs, two index settings. Both are loaded and indexed first; then their timed trials
alternate in the order A B, B A, A B, ... (each pair's order swapped, so neither side always runs first after
the other's warm-up), so whatever the machine's neighbours do in that window hits both arms alike. Every row
carries its arm (`ab_arm`, a key of bench/results/keys.py); both arms write into one run folder, as
`A.<backend>.<workload>.*` and `B.<backend>.<workload>.*`, beside `ab.json`.

Two harness commits: an arm given `harness` (a git revision of this repository, or a folder holding a bench
checkout) runs in a process of its own whose `bench` is that checkout's code (bench/ab_arm.py drives it, trial by
trial, over a pipe), in this venv; its rows carry that checkout's `git_commit`. The other arm then runs in a
process of its own too, from the checkout running `bench ab`, so that neither shares the orchestrator's process.
A revision is checked out once into the cache folder (`<cache>/harness/<commit>`, a `git clone --shared` of this
repository; the repository itself is not touched).

`bench regress --candidate RUN` with no --baseline then tests the paired differences (bench.analysis.regress,
`compare_paired`). This follows Chromium's Pinpoint, which runs the two builds it compares as alternating
attempts on one bot and decides different / same / unknown, and pyperf's `compare_to`, which calls a change
significant only past both a t-test and a minimum size; here the trials are paired in time, so the test is on
the pair differences.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
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
    harness: str | None = None  # a git revision of bench, or a bench checkout's folder: this arm runs its code
    status: str = "pending"
    prefix: str = ""
    trials: int = 0
    harness_path: str | None = None  # where that checkout is
    harness_commit: str | None = None  # its commit (every row of the arm carries it as git_commit)


@dataclass
class AbOutcome:
    run_id: str
    run_dir: Path
    status: str
    arms: list[Arm]


def order(pair: int) -> tuple[int, int]:
    """The arms' order in pair `pair`: A B, then B A, then A B, ..."""
    return (0, 1) if pair % 2 == 0 else (1, 0)


def _set_prefix(arm: Arm, workload: str) -> None:
    """The arm's file prefix in the run folder: `<arm>.<backend>.<workload name>.`."""
    from bench.workload_file import load_workload

    name = load_workload(workload, [o for o in arm.overrides if not o.startswith("backend.")]).name
    arm.prefix = f"{arm.name}.{arm.backend}.{name}."


def _request(arm: Arm, workload: str, rid: str, results_dir: Path, cache_dir: Path | None, trials: int | None,
             command: str):
    from bench.runner import RunRequest

    _set_prefix(arm, workload)
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
    if any(a.harness is not None for a in arms):  # both arms in processes of their own, so neither is favoured
        from bench.spec import REPO_ROOT

        for arm in arms:
            arm.harness = arm.harness if arm.harness is not None else str(REPO_ROOT)
            flag = f"--{arm.name.lower()}-harness"
            path, arm.harness_commit = checkout_harness(arm.harness, cache_dir, flag)
            arm.harness_path = str(path)
            _probe(arm, flag)
    rid = run_id or new_run_id("ab")
    run_dir = make_run_dir(results_dir, rid)
    doc: dict = {"kind": "ab", "run_id": rid, "workload": workload, "started_utc": datetime.now(UTC).isoformat(),
                 "command": redact_command(command), "order": "A B, then B A, alternating pair by pair"}

    def save(status: str) -> None:
        doc.update(status=status, updated_utc=datetime.now(UTC).isoformat(), arms=[asdict(a) for a in arms])
        write_json(run_dir / "ab.json", doc, checked=True)

    save("running")
    status = "failed"
    try:
        with contextlib.ExitStack() as stack:
            steps = []
            for arm in arms:
                say(f"arm {arm.name}: {arm.backend}: loading and indexing")
                if arm.harness is None:
                    _, it = stack.enter_context(_opened(arm, workload, rid, results_dir, cache_dir, trials,
                                                        command))
                else:
                    it = stack.enter_context(_remote(arm, workload, rid, run_dir, cache_dir, trials, command))
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


def checkout_harness(rev: str, cache_dir: Path | None, flag: str) -> tuple[Path, str | None]:
    """The folder and commit of the harness `rev` names: a folder holding a bench checkout as it is, or a git
    revision of this repository, checked out once into `<cache>/harness/<commit>`."""
    from bench.spec import REPO_ROOT

    folder = Path(rev).expanduser()
    if folder.is_dir():
        if not (folder / "bench" / "runner.py").is_file():
            raise UserError(f"{flag} {rev}: the folder holds no bench checkout (no bench/runner.py)",
                            "give a git revision of bench, or the folder of a bench checkout")
        return folder.resolve(), _git(folder, "rev-parse", "HEAD")
    if not (REPO_ROOT / ".git").exists():
        raise UserError(f"{flag} {rev} is not a folder, and this bench ({REPO_ROOT}) is not a git checkout to "
                        "find the revision in", "give the folder of a bench checkout, or run bench from a clone")
    commit = _git(REPO_ROOT, "rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}")
    if commit is None:
        raise UserError(f"{flag} {rev} is neither a folder nor a revision of the git repository {REPO_ROOT}",
                        "give a commit, tag or branch (git log --oneline shows them), or a checkout's folder")
    from bench.datasets import default_cache_dir

    dest = (cache_dir or default_cache_dir()) / "harness" / commit
    if not (dest / "bench" / "runner.py").is_file():
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(f".{commit}.{os.getpid()}")
        shutil.rmtree(tmp, ignore_errors=True)
        try:
            for cmd in (["git", "clone", "--quiet", "--shared", "--no-checkout", str(REPO_ROOT), str(tmp)],
                        ["git", "-C", str(tmp), "checkout", "--quiet", "--detach", commit]):
                subprocess.run(cmd, check=True, capture_output=True, text=True, timeout=300)
            shutil.rmtree(dest, ignore_errors=True)
            tmp.rename(dest)
        except (OSError, subprocess.SubprocessError) as e:
            shutil.rmtree(tmp, ignore_errors=True)
            why = (getattr(e, "stderr", None) or str(e)).strip().splitlines()[-1:] or [type(e).__name__]
            raise UserError(f"{flag} {rev}: could not check out {commit[:12]} into {dest} ({why[0]})",
                            "check that the cache folder is writable (--cache-dir or BENCH_CACHE_DIR)") from None
    return dest, commit


_PROBE = """
import dataclasses, sys
try:
    from bench.runner import RunRequest, stepwise
    assert "row_extra" in {f.name for f in dataclasses.fields(RunRequest)}, "RunRequest has no row_extra"
except (ImportError, AssertionError) as e:
    sys.exit(str(e) or type(e).__name__)
import bench
print(bench.__file__)
"""


def _harness_env(arm: Arm) -> dict[str, str]:
    """The environment of a process that runs the arm's harness: its checkout first on PYTHONPATH."""
    assert arm.harness_path is not None
    return {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (arm.harness_path,
                                                                    os.environ.get("PYTHONPATH")) if p)}


def _probe(arm: Arm, flag: str) -> None:
    """Refuse, before anything is written, a harness that cannot be driven trial by trial."""
    assert arm.harness_path is not None
    p = subprocess.run([sys.executable, "-P", "-c", _PROBE], env=_harness_env(arm), capture_output=True, text=True,
                       timeout=120)
    if p.returncode != 0:
        why = (p.stderr.strip().splitlines() or [f"exit code {p.returncode}"])[-1]
        raise UserError(f"{flag} {arm.harness}: this harness cannot be driven trial by trial ({why}): it predates "
                        "`bench ab`", "give a commit that has bench.runner.stepwise (the commit that added bench ab, "
                        "or later)")
    found = Path(p.stdout.strip().splitlines()[-1]).resolve()
    if not found.is_relative_to(Path(arm.harness_path).resolve()):
        raise UserError(f"{flag} {arm.harness}: Python imports bench from {found.parent}, not from that checkout",
                        "a bench earlier on PYTHONPATH shadows it; unset PYTHONPATH")


def _git(where: Path, *args: str) -> str | None:
    try:
        p = subprocess.run(["git", "-C", str(where), *args], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return None
    return p.stdout.strip() or None if p.returncode == 0 else None


class _Child:
    """An arm whose harness is another checkout: a child process (bench/ab_arm.py under that checkout's `bench`)
    that loads and indexes, then measures one timed trial per `next`. What it prints goes to `<arm>.harness.log`
    in the run folder."""

    def __init__(self, arm: Arm, args: dict, log_path: Path):
        self.arm, self.log_path = arm, log_path
        self.where = f"arm {arm.name} (harness {arm.harness}, {(arm.harness_commit or '?')[:12]})"
        r, w = os.pipe()
        source = Path(__file__).with_name("ab_arm.py").read_text(encoding="utf-8")
        with open(log_path, "w", encoding="utf-8") as log:
            # -P: the current folder is not put first on sys.path, where a bench checkout in it would win
            self.proc = subprocess.Popen([sys.executable, "-P", "-c", source, json.dumps({**args, "fd": w})],
                                         stdin=subprocess.PIPE, stdout=log, stderr=log, pass_fds=(w,),
                                         env=_harness_env(arm), text=True)
        os.close(w)
        self.replies = os.fdopen(r, encoding="utf-8")

    def reply(self) -> dict:
        line = self.replies.readline()
        if line:
            return json.loads(line)
        self.proc.wait()
        tail = self.log_path.read_text(encoding="utf-8", errors="replace").strip().splitlines()[-1:]
        return {"kind": "died", "message": f"{self.where} ended with exit code {self.proc.returncode}"
                + (f": {tail[0]}" if tail else "") + f" (its output: {self.log_path})"}

    def ready(self) -> None:
        first = self.reply()
        if first["kind"] == "error":
            raise UserError(f"{self.where}: {first['message']}", first.get("hint"))
        if first["kind"] != "ready":
            raise UserError(first.get("message", f"{self.where} did not start"), f"see {self.log_path}")

    def steps(self) -> Iterator[str]:
        assert self.proc.stdin is not None
        while True:
            with contextlib.suppress(BrokenPipeError, OSError):
                self.proc.stdin.write("next\n")
                self.proc.stdin.flush()
            msg = self.reply()
            if msg["kind"] != "trial":
                self.arm.status = msg.get("status", "failed")
                if msg["kind"] == "died":
                    sys.stderr.write(msg["message"] + "\n")
                return
            yield msg["label"]

    def stop(self, interrupted: bool) -> None:
        if interrupted and self.proc.poll() is None:  # the child ends its run as interrupted
            self.proc.send_signal(signal.SIGINT)
        with contextlib.suppress(BrokenPipeError, OSError):
            assert self.proc.stdin is not None
            self.proc.stdin.close()
        try:
            self.proc.wait(timeout=120)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        if self.arm.status == "running":  # stopped before its last trial (the other arm failed, an interrupt)
            msg = self.reply()
            self.arm.status = msg.get("status", "failed") if msg["kind"] == "end" else "failed"
        self.replies.close()


@contextlib.contextmanager
def _remote(arm: Arm, workload: str, rid: str, run_dir: Path, cache_dir: Path | None, trials: int | None,
            command: str) -> Iterator[Iterator[str]]:
    _set_prefix(arm, workload)
    args = {"backend": arm.backend, "workload": workload, "overrides": arm.overrides, "config": arm.config,
            "results_dir": str(run_dir.parent.resolve()), "cache_dir": str(cache_dir.resolve()) if cache_dir else None,
            "trials": trials, "quiet": True, "command": command, "suite_run_id": rid, "suite_prefix": arm.prefix,
            "row_extra": {"ab_arm": arm.name}}
    arm.status = "running"
    child = _Child(arm, args, run_dir / f"{arm.name}.harness.log")
    interrupted = True
    try:
        child.ready()
        yield child.steps()
        interrupted = False
    finally:
        child.stop(interrupted)


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
