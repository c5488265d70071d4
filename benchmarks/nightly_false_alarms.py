"""False alarms and power of the nightly regression procedure, replayed night by night on this machine.

The suite is the shipped configs/suites/nightly.toml restricted to the engines that run here (default:
qdrant-edge, faiss, pgvector), with its sentinel, plus one `fake-slow` cell (a FAKE backend whose every operation
sleeps `backend.latency_us`: 1,000 us on a normal night) that carries the injected slowdown. Nothing else changes
between nights, so every regression on a normal night is a false alarm.

Two procedures, as .github/workflows/nightly.yml runs them:

- stored: each night is one `bench suite` process; `bench regress` against the rolling baseline of the last five
  clean nights (`bench baseline save --append --keep 5`, a night joins when its verdict had no regression).
  `--prefill` nights fill the baseline first and are not counted. Each counted night is followed by a slow night
  (fake-slow at 1,300 us, +30%; the engines unchanged) compared with the same baseline and never added to it.
  Verdicts are computed four ways from the same runs: with or without the sentinel rule and the host-load rule.
- ab-real (on request): the power on a real engine, `bench ab` of --real-backend (faiss) with arm B at a slower
  setting (--real-b-set, default ef_search 96 instead of 64), regressed across the key it changes.
- ab: each night, one `bench ab` process per engine (arm A and arm B the same configuration: an identical
  candidate build) and `bench regress --candidate AB_RUN`; a slow night is `bench ab` of fake-slow with arm B at
  1,300 us. Verdicts with and without the host-load rule (the sentinel has no part in an interleaved run).

- ab-harness (on request): two harness commits, as the workflow's nightly harness A/B runs them: `bench ab` of
  faiss with `--a-harness HEAD --b-harness HEAD` on an identical night, and with arm B a commit that makes the
  harness's faiss search busy-wait 30% of its own time on top (a CPU-bound slowdown of the harness, made in a
  `git clone --shared` of HEAD under the work folder) on a slow night. Needs a committed HEAD.

A false alarm is a night whose verdict holds any regression outside the slowed cell; a catch is a slow night
whose verdict holds a regression of the fake-slow configuration.

    .venv/bin/python benchmarks/nightly_false_alarms.py [--nights 10] [--prefill 5] [--procedures stored,ab,ab-real,ab-harness]
        [--backends qdrant-edge,faiss,pgvector] [--slowdown 0.3] [--keep DIR] [--reuse]

Prints one line per night and the table of false alarms and catches; writes DIR/summary.json with --keep.
Exit code 0 when every procedure variant the workflow ships (stored with sentinel and host, ab with host) had no
false alarm and caught at least 9 of 10 slow nights, 1 otherwise. A shared machine is the point: run it as is.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
import tomllib
from pathlib import Path

import _smoke

from bench.analysis.baseline import busy_reason
from bench.analysis.baseline import save as save_baseline
from bench.analysis.load import trials_frame
from bench.analysis.regress import RegressConfig, RegressResult, compare_frames, compare_paired, load_config
from bench.spec import CONFIG_DIR

FAKE = "fake-slow"
BASE_US = 1000.0
STORED_VARIANTS = {"stored": (False, False), "stored + host": (False, True), "stored + sentinel": (True, False),
                   "stored + sentinel + host (shipped)": (True, True)}
AB_VARIANTS = {"ab": (False, False), "ab + host (shipped)": (False, True)}
SHIPPED = ("stored + sentinel + host (shipped)", "ab + host (shipped)", "ab harness commits + host (shipped)")
AB_HARNESS_VARIANTS = {"ab harness commits + host (shipped)": (False, True)}
AB_TRIALS = 10  # pairs per A/B run, as AB_TRIALS in .github/workflows/nightly.yml


def toml_value(v: object) -> str:
    return json.dumps(v)  # strings, numbers, booleans and lists of them are the same in TOML


def suite_text(shipped: dict, backends: list[str], latency_us: float) -> str:
    """The shipped suite restricted to `backends`, plus the fake-slow cell at `latency_us`."""
    lines = [f"name = {toml_value(shipped['name'] + '-here')}", f"backends = {toml_value([*backends, FAKE])}",
             f"workloads = {toml_value(shipped['workloads'])}"]
    for k in ("trials", "concurrency", "set", "sentinel"):
        if k in shipped:
            lines.append(f"{k} = {toml_value(shipped[k])}")
    for w, opts in shipped.get("workload", {}).items():
        lines += [f"[workload.{toml_value(w)}]", *(f"{k} = {toml_value(v)}" for k, v in opts.items())]
    for b, opts in shipped.get("backend", {}).items():
        if b in backends:
            lines += [f"[backend.{toml_value(b)}]", *(f"{k} = {toml_value(v)}" for k, v in opts.items())]
    lines += [f"[backend.{toml_value(FAKE)}]", f"set = {toml_value([f'backend.latency_us={latency_us:g}'])}"]
    for ex in shipped.get("exclude", []):
        if ex.get("backend", "*") in (*backends, "*"):
            lines += ["[[exclude]]", *(f"{k} = {toml_value(v)}" for k, v in ex.items())]
    return "\n".join(lines) + "\n"


class Bench:
    def __init__(self, args: argparse.Namespace, root: Path):
        self.args, self.root = args, root
        self.results, self.cache = root / "results", root / "cache"
        self.shipped = tomllib.loads((CONFIG_DIR / "suites" / "nightly.toml").read_text())
        self.cfg = load_config(args.config)
        self.workload = self.shipped["workloads"][0]
        self.record: dict = {"nights": []}

    def bench(self, *argv: str) -> None:
        p = subprocess.run([sys.executable, "-m", "bench.cli", *argv, "--results-dir", str(self.results),
                            "--cache-dir", str(self.cache)], capture_output=True, text=True)
        if p.returncode != 0:
            sys.exit(f"`bench {' '.join(argv)}` failed (exit {p.returncode}): {p.stderr[-2000:]}")

    def suite(self, run_id: str, latency_us: float) -> Path:
        out = self.results / run_id
        if self.args.reuse and (out / "suite.json").is_file():
            return out
        f = self.root / f"suite-{latency_us:g}.toml"
        f.write_text(suite_text(self.shipped, self.args.backends, latency_us))
        self.bench("suite", str(f), "--run-id", run_id, "--quiet")
        return out

    def ab(self, run_id: str, backend: str, b_sets: list[str], a_sets: list[str]) -> Path:
        out = self.results / run_id
        if self.args.reuse and (out / "ab.json").is_file():
            return out
        sets = [x for s in a_sets for x in ("--a-set", s)] + [x for s in b_sets for x in ("--b-set", s)]
        self.bench("ab", "--backend", backend, "--workload", self.workload, *sets, "--trials", str(self.args.ab_trials),
                   "--run-id", run_id, "--quiet")
        return out

    def variant(self, sentinel: bool, host: bool) -> RegressConfig:
        return self.cfg.model_copy(update={"sentinel": sentinel, "host": host})


def alarms(res: RegressResult, slowed: bool) -> tuple[list[str], bool]:
    """The regressions outside the slowed cell (false alarms), and whether the slowed cell was caught."""
    false = [f"{c.key['backend']} {c.figure} {c.describe_change()}" for c in res.regressions
             if not (slowed and c.key["backend"] == FAKE)]
    caught = any(c.key["backend"] == FAKE for c in res.regressions)
    return false, caught


def fake_change(res: RegressResult) -> float | None:
    return next((c.change for c in res.checks if c.key["backend"] == FAKE and c.figure == "p50_us"), None)


def stored(b: Bench) -> dict[str, dict]:
    """The rolling-baseline procedure; see the module docstring."""
    a = b.args
    bdir = b.root / "baselines"
    tally = {v: {"false": 0, "caught": 0, "slow_false": 0, "moved": []} for v in STORED_VARIANTS}
    joined = 0
    for i in range(2 * a.prefill):  # a busy prefill night stays out, as in the workflow; try again, up to twice
        if joined == a.prefill:
            break
        run = b.suite(f"prefill-{i}", BASE_US)
        said = join_baseline(b, run, bdir)
        joined += said.startswith("joined")
        print(f"prefill night {i}: {run.name} {said}", flush=True)
    if not joined:
        raise SystemExit("every prefill night was busy: no baseline to compare with")
    for night in range(a.nights):
        base = trials_frame([bdir / "rolling"])
        for slowed in (False, True):
            run = b.suite(f"{'slow' if slowed else 'night'}-{night}", BASE_US * (1 + a.slowdown) if slowed
                          else BASE_US)
            cand = trials_frame([run])
            verdicts = {}
            for v, (sentinel, host) in STORED_VARIANTS.items():
                res = compare_frames(base, cand, b.variant(sentinel, host), "rolling", run.name)
                false, caught = alarms(res, slowed)
                t = tally[v]
                if slowed:
                    t["caught"] += caught
                    t["slow_false"] += bool(false)
                    t["moved"].append(fake_change(res))
                else:
                    t["false"] += bool(false)
                verdicts[v] = {"false_alarms": false, "caught": caught, "unclear_machine":
                               [f"{c.key['backend']} {c.figure}: {c.reason}" for c in res.checks if c.reason]}
            b.record["nights"].append({"procedure": "stored", "night": night, "slowed": slowed, "run": run.name,
                                       "verdicts": verdicts})
            shipped = verdicts[SHIPPED[0]]
            print(f"stored {'slow ' if slowed else ''}night {night}: " + "; ".join(
                f"{v}: {len(d['false_alarms'])} false{', caught' if d['caught'] else ''}"
                for v, d in verdicts.items()) + (f" [{'; '.join(shipped['false_alarms'])}]"
                                                if shipped["false_alarms"] else ""), flush=True)
            if not slowed and not shipped["false_alarms"]:  # the workflow keeps clean nights only
                print(f"  {run.name} " + join_baseline(b, run, bdir), flush=True)
    return tally


def join_baseline(b: Bench, run: Path, bdir: Path) -> str:
    """`bench baseline save RUN --name rolling --append --keep 5 --skip-busy`, as the workflow runs it."""
    why = busy_reason(run, b.results, bdir)
    if why:
        return f"stayed out of the baseline: {why}"
    save_baseline(run, "rolling", b.results, bdir, append=True, keep=5)
    return "joined the baseline"


def ab(b: Bench) -> dict[str, dict]:
    """The interleaved A/B procedure; see the module docstring."""
    a = b.args
    tally = {v: {"false": 0, "caught": 0, "slow_false": 0, "moved": []} for v in AB_VARIANTS}
    base_set = [f"backend.latency_us={BASE_US:g}"]
    for night in range(a.nights):
        for slowed in (False, True):
            runs = []
            if slowed:
                runs.append(b.ab(f"ab-slow-{night}-{FAKE}", FAKE, [f"backend.latency_us={BASE_US * (1 + a.slowdown):g}"],
                                 base_set))
            else:
                for backend in [*a.backends, FAKE]:
                    sets = base_set if backend == FAKE else []
                    runs.append(b.ab(f"ab-night-{night}-{backend}", backend, sets, sets))
            verdicts = {}
            for v, (sentinel, host) in AB_VARIANTS.items():
                false, caught, moved = [], False, None
                for run in runs:
                    res = compare_paired(trials_frame([run]), b.variant(sentinel, host), run.name)
                    f, c = alarms(res, slowed)
                    false += f
                    caught = caught or c
                    moved = fake_change(res) if moved is None else moved
                t = tally[v]
                if slowed:
                    t["caught"] += caught
                    t["moved"].append(moved)
                else:
                    t["false"] += bool(false)
                verdicts[v] = {"false_alarms": false, "caught": caught}
            b.record["nights"].append({"procedure": "ab", "night": night, "slowed": slowed,
                                       "runs": [r.name for r in runs], "verdicts": verdicts})
            print(f"ab {'slow ' if slowed else ''}night {night}: " + "; ".join(
                f"{v}: {len(d['false_alarms'])} false{', caught' if d['caught'] else ''}"
                for v, d in verdicts.items()), flush=True)
    return tally


def ab_real(b: Bench) -> dict[str, dict]:
    """Power on a real engine: `bench ab` of --real-backend with arm B given --real-b-set (a slower setting, e.g.
    a wider ef_search), regressed across --real-across; a catch is a regression of that backend's latency or
    throughput (a better recall does not count). No identical nights: those are the ab procedure's."""
    a = b.args
    name = f"ab real {a.real_backend} ({a.real_b_set})"
    t = {"false": 0, "caught": 0, "slow_false": 0, "moved": [], "identical_nights": 0}
    for night in range(a.nights):
        run = b.ab(f"ab-real-{night}-{a.real_backend}", a.real_backend, [a.real_b_set], [])
        res = compare_paired(trials_frame([run]), b.variant(False, True), run.name, [a.real_across])
        caught = any(c.figure != "recall" for c in res.regressions)
        t["caught"] += caught
        t["moved"].append(next((c.change for c in res.checks if c.figure == "p50_us"), None))
        b.record["nights"].append({"procedure": "ab-real", "night": night, "run": run.name, "caught": caught,
                                   "regressions": [f"{c.figure} {c.describe_change()}" for c in res.regressions]})
        print(f"{name} slow night {night}: {'caught' if caught else 'missed'} (P50 {t['moved'][-1]:+.1%})",
              flush=True)
    return {name: t}


SLOWER_PATCH = (
    "    def search(self, vector: np.ndarray, k: int, params: SearchParams) -> Sequence[int]:\n",
    "    def search(self, vector: np.ndarray, k: int, params: SearchParams) -> Sequence[int]:\n"
    "        import time as _time\n"
    "        _t0 = _time.perf_counter()\n"
    "        out = self._search_unslowed(vector, k, params)\n"
    "        _spent = _time.perf_counter() - _t0\n"
    "        while _time.perf_counter() - _t0 < {factor} * _spent:  # the injected slowdown: a busy wait\n"
    "            pass\n"
    "        return out\n\n"
    "    def _search_unslowed(self, vector: np.ndarray, k: int, params: SearchParams) -> Sequence[int]:\n")


def slower_harness(root: Path, slowdown: float) -> Path:
    """A `git clone --shared` of HEAD plus one commit whose faiss search busy-waits `slowdown` of its own time
    (the whole adapter call: query preparation, the index's search, the ids' conversion)."""
    from bench.spec import REPO_ROOT

    where = root / "slower-harness"
    if (where / ".git").is_dir():
        return where

    def git(*argv: str, cwd: Path = where) -> None:
        subprocess.run(["git", "-c", "user.name=bench", "-c", "user.email=bench@example.com", *argv], cwd=cwd,
                       check=True, capture_output=True, text=True)

    git("clone", "--quiet", "--shared", str(REPO_ROOT), str(where), cwd=REPO_ROOT)
    f = where / "bench" / "backends" / "faiss_hnsw.py"
    text = f.read_text()
    old, new = SLOWER_PATCH
    if text.count(old) != 1:
        sys.exit(f"ab-harness: {f} no longer has the search line to slow down; update SLOWER_PATCH")
    f.write_text(text.replace(old, new.format(factor=1 + slowdown)))
    git("commit", "--quiet", "-am", f"faiss: search busy-waits {slowdown:.0%} of its time (injected slowdown)")
    return where


def ab_harness(b: Bench) -> dict[str, dict]:
    """Two harness commits, identical and slowed; see the module docstring."""
    a = b.args
    slower = slower_harness(b.root, a.slowdown)
    tally = {v: {"false": 0, "caught": 0, "slow_false": 0, "moved": []} for v in AB_HARNESS_VARIANTS}
    for night in range(a.nights):
        for slowed in (False, True):
            run_id = f"ab-harness-{'slow' if slowed else 'night'}-{night}"
            out = b.results / run_id
            if not (a.reuse and (out / "ab.json").is_file()):
                b.bench("ab", "--backend", "faiss", "--workload", b.workload, "--a-harness", "HEAD", "--b-harness",
                        str(slower) if slowed else "HEAD", "--trials", str(b.args.ab_trials), "--run-id", run_id,
                        "--quiet")
            verdicts = {}
            for v, (sentinel, host) in AB_HARNESS_VARIANTS.items():
                res = compare_paired(trials_frame([out]), b.variant(sentinel, host), out.name)
                regressions = [f"{c.figure} {c.describe_change()}" for c in res.regressions]
                t = tally[v]
                if slowed:
                    t["caught"] += bool(regressions)
                    t["moved"].append(next((c.change for c in res.checks if c.figure == "p50_us"), None))
                else:
                    t["false"] += bool(regressions)
                verdicts[v] = regressions
            b.record["nights"].append({"procedure": "ab-harness", "night": night, "slowed": slowed, "run": run_id,
                                       "verdicts": verdicts})
            print(f"ab-harness {'slow ' if slowed else ''}night {night}: " + "; ".join(
                f"{v}: {', '.join(r) or 'no regression'}" for v, r in verdicts.items()), flush=True)
    return tally


def table(tallies: dict[str, dict], nights: int, slowdown: float) -> str:
    lines = [f"| procedure | false alarms in {nights} identical nights | catches of +{slowdown:.0%} in {nights} "
             "slow nights | P50 change of the slowed cell measured (mean) |", "|---|---|---|---|"]
    for v, t in tallies.items():
        moved = [m for m in t["moved"] if m is not None]
        mean = f"{sum(moved) / len(moved):+.1%}" if moved else "-"
        false = "-" if t.get("identical_nights") == 0 else f"{t['false']} of {nights}"
        lines.append(f"| {v} | {false} | {t['caught']} of {nights} | {mean} |")
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--nights", type=int, default=10)
    ap.add_argument("--ab-trials", type=int, default=AB_TRIALS, help="pairs per A/B run")
    ap.add_argument("--prefill", type=int, default=5, help="nights that fill the rolling baseline first")
    ap.add_argument("--procedures", default="stored,ab", help="stored, ab, ab-real (a real engine's slower "
                    "setting, --real-*), ab-harness (two harness commits)")
    ap.add_argument("--backends", default="qdrant-edge,faiss,pgvector")
    ap.add_argument("--slowdown", type=float, default=0.3, help="fake-slow's injected slowdown (0.3: +30%%)")
    ap.add_argument("--config", default=str(CONFIG_DIR / "regress.toml"))
    ap.add_argument("--real-backend", default="faiss", help="ab-real: the engine slowed by a real setting")
    ap.add_argument("--real-b-set", default="search.ef_search=[96]", help="ab-real: arm B's slower setting")
    ap.add_argument("--real-across", default="ef_search", help="ab-real: the key arm B changes")
    ap.add_argument("--keep", type=Path, default=None, help="keep the runs (and summary.json) in this folder")
    ap.add_argument("--reuse", action="store_true", help="with --keep: reuse the runs already there")
    _smoke.add(ap, nights=1, procedures="ab", backends="", ab_trials=2)
    args = _smoke.parse(ap)
    args.backends = [x for x in args.backends.split(",") if x]
    root = args.keep or Path(tempfile.mkdtemp(prefix="bench-nightly-"))
    root.mkdir(parents=True, exist_ok=True)
    b = Bench(args, root)
    t0 = time.perf_counter()
    tallies: dict[str, dict] = {}
    try:
        procs = args.procedures.split(",")
        if "stored" in procs:
            tallies.update(stored(b))
        if "ab" in procs:
            tallies.update(ab(b))
        if "ab-real" in procs:
            tallies.update(ab_real(b))
        if "ab-harness" in procs:
            tallies.update(ab_harness(b))
        elapsed = time.perf_counter() - t0
        print(f"\n{table(tallies, args.nights, args.slowdown)}\n\n{elapsed / 60:.1f} min; engines "
              f"{', '.join(args.backends)} + {FAKE} (the injected slowdown), workload {b.workload}")
        b.record.update(tallies=tallies, minutes=elapsed / 60, args={k: str(v) for k, v in vars(args).items()})
        (root / "summary.json").write_text(json.dumps(b.record, indent=2, default=str))
        ok = all(tallies[v]["false"] == 0 and tallies[v]["caught"] >= 0.9 * args.nights
                 for v in SHIPPED if v in tallies)
        return 0 if ok or args.smoke else 1  # a smoke run's tallies are noise; only a failure counts
    finally:
        if args.keep is None:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
