"""How often does `bench regress` cry wolf? Five repeated real runs of one configuration (qdrant-edge,
workloads/ann-smoke.toml as shipped: 10,000 x 768, HNSW M=16, ef_search 32/64/128; or --size tiny: 2,000 x 32)
are compared pairwise, all 20 ordered pairs, with configs/regress.toml. Nothing changed between the runs, so
every regression reported is a false alarm.

    .venv/bin/python benchmarks/regress_false_alarms.py [--runs 5] [--size small|tiny] [--backend qdrant-edge]
                                                        [--duration 1] [--keep DIR]

Prints each pair's verdict, then the false-alarm count; then each run against a baseline made of the other
four (what `bench baseline save --append` keeps, and the nightly job uses). Last, the power check: a run built
with M=4 instead of 16 (a worse graph, nothing else changed) must be found to regress in recall against each
single run. Exit code 0 when the pairs raised no alarm and the worse graph was caught, 1 otherwise.
Run it on a quiet machine: other load makes runs differ, which is what it measures.
"""

from __future__ import annotations

import argparse
import itertools
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import _smoke
import numpy as np
import pandas as pd

from bench.analysis.load import trials_frame
from bench.analysis.regress import compare_frames, load_config
from bench.results.aggregate import trimmed
from bench.spec import CONFIG_DIR

SIZES = {
    "tiny": ["dataset.n=2000", "dataset.queries=100", "dataset.dim=32", "search.ef_search=[16, 64]",
             "run.warmup_s=0.2"],
    "small": [],  # ann-smoke as shipped
}


def _us(v: float | None) -> str:
    return "-" if v is None else f"{v:,.0f}"  # a P99 under its sample floor is withheld: None


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--backend", default="qdrant-edge")
    ap.add_argument("--size", choices=sorted(SIZES), default="small")
    ap.add_argument("--trials", type=int, default=5)
    ap.add_argument("--config", default=str(CONFIG_DIR / "regress.toml"))
    ap.add_argument("--duration", type=float, default=1.0, help="seconds per timed trial (0: 400 operations)")
    ap.add_argument("--keep", type=Path, default=None, help="keep the runs in this folder")
    ap.add_argument("--reuse", action="store_true", help="with --keep: compare the runs already there, run nothing")
    _smoke.add(ap, runs=2, size="tiny", trials=2, duration=0.0)
    args = _smoke.parse(ap)

    root = args.keep or Path(tempfile.mkdtemp(prefix="bench-false-alarms-"))
    cache = root / "cache"
    cfg = load_config(args.config)
    runs = []

    def one_run(run_id: str, extra: list[str]) -> Path:
        length = [f"run.duration_s={args.duration}"] if args.duration > 0 else ["run.operations=400"]
        sets = [x for o in SIZES[args.size] + length + extra for x in ("--set", o)]
        # each repeat is its own process, as each nightly run is: nothing carries over from the last one
        p = subprocess.run([sys.executable, "-m", "bench.cli", "run", "--backend", args.backend, "--workload",
                            "ann-smoke", *sets, "--trials", str(args.trials), "--results-dir",
                            str(root / "results"), "--cache-dir", str(cache), "--run-id", run_id, "--json"],
                           capture_output=True, text=True)
        if p.returncode != 0:
            sys.exit(f"run {run_id} failed: {p.stderr[-2000:]}")
        out = json.loads(p.stdout)
        qps = ", ".join(f"ef={r['ef_search']}: {r['qps']:,.0f} qps p99 {_us(r['p99_us'])} us recall {r['recall']:.4f}"
                        for r in out["summary"])
        print(f"{run_id}: {qps}", flush=True)
        return Path(out["results"])

    try:
        for i in range(args.runs):
            done = root / "results" / f"repeat-{i}"
            runs.append(done if args.reuse and done.is_dir() else one_run(f"repeat-{i}", []))
        frames = [trials_frame([r]) for r in runs]
        alarms, checks = 0, 0
        pairs = list(itertools.permutations(range(len(runs)), 2))
        for a, b in pairs:
            res = compare_frames(frames[a], frames[b], cfg, f"repeat-{a}", f"repeat-{b}")
            checks += len(res.checks)
            regs = res.regressions
            alarms += bool(regs)
            unclear = sum(c.verdict == "unclear" for c in res.checks)
            what = "; ".join(f"{c.figure} ef={c.key['ef_search']} {c.describe_change()} p={c.p:.3f}" for c in regs)
            print(f"baseline {a} -> candidate {b}: {len(regs)} regression(s){': ' + what if what else ''}"
                  f"{f', {unclear} unclear' if unclear else ''}")
        # the tolerance each figure would have needed for no alarm: its worst run-to-run change (the statistical
        # unit of a regress is the run; the trials of one run share its process, index and neighbours)
        print("worst run-to-run change per figure (the tolerance needed for no alarm here):")
        for fig, rule in cfg.figures.items():
            worst = max((c.change if rule.better == "lower" else -c.change
                         for a, b in pairs for c in compare_frames(frames[a], frames[b], cfg).checks
                         if c.figure == fig), default=0.0)
            tol = rule.relative if rule.relative is not None else rule.absolute
            unit = "%" if rule.relative is not None else ""
            scale = 100 if rule.relative is not None else 1
            print(f"  {fig:>10}: {worst * scale:+.4g}{unit} (configured tolerance {tol * scale:g}{unit})")
        # the machine's run-to-run spread per figure: the standard deviation of the runs' trimmed medians of
        # each configuration (relative to their mean for relative tolerances), pooled over configurations (RMS)
        print("run-to-run standard deviation per figure (run_sd in configs/regress.toml):")
        allruns = pd.concat(frames, ignore_index=True)
        ok = allruns[allruns["status"] == "ok"]
        for fig, rule in cfg.figures.items():
            sds = []
            for _, g in ok.groupby(["op", "ef_search"], dropna=False):
                meds = [trimmed(list(r[fig].dropna())).median for _, r in g.groupby("run_id")]
                meds = [m for m in meds if m is not None]
                if len(meds) >= 2:
                    sd = float(np.std(meds, ddof=1))
                    mean = float(np.mean(meds))
                    sds.append(sd / abs(mean) if rule.relative is not None and mean else sd)
            if sds:
                rms = float(np.sqrt(np.mean(np.square(sds))))
                print(f"  {fig:>10}: run_sd = {rms:.4g} (configured {rule.run_sd})")
        print(f"false alarms: {alarms} of {len(pairs)} ordered pairs ({checks} figure checks, "
              f"alpha {cfg.alpha:g})")
        # a baseline of several runs (bench baseline save --append): each run against the other four
        multi = 0
        for i in range(len(runs)):
            base = pd.concat([f for j, f in enumerate(frames) if j != i], ignore_index=True)
            res = compare_frames(base, frames[i], cfg, "others", f"repeat-{i}")
            what = "; ".join(f"{c.figure} ef={c.key['ef_search']} {c.describe_change()} p={c.p:.3f}"
                             for c in res.regressions)
            multi += bool(res.regressions)
            print(f"baseline = the other {len(runs) - 1} runs -> candidate {i}: {len(res.regressions)} "
                  f"regression(s){': ' + what if what else ''}")
        print(f"false alarms with a {len(runs) - 1}-run baseline: {multi} of {len(runs)}")
        # power: the same configuration built with a worse graph (M=4) must be caught
        done = root / "results" / "worse-graph-m4"
        worse = trials_frame([done if args.reuse and done.is_dir() else one_run("worse-graph-m4", ["index.m=4"])])
        caught = 0
        for i, f in enumerate(frames):
            res = compare_frames(f, worse, cfg, f"repeat-{i}", "worse-graph-m4", across=["index"])  # M differs
            regs = [c for c in res.regressions if c.figure == "recall"]
            caught += bool(regs)
            what = "; ".join(f"ef={c.key['ef_search']} {c.describe_change()} p={c.p:.2g}" for c in regs)
            print(f"baseline {i} -> M=4 candidate: recall regressions: {what or 'none'}")
        print(f"worse graph caught against {caught} of {len(frames)} single-run baselines")
        ok = alarms == 0 and caught == len(frames)
        return 0 if ok or args.smoke else 1  # a smoke run's tallies are noise; only a failure counts
    finally:
        if args.keep is None:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
