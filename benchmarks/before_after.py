#!/usr/bin/env python3
"""Same workloads, two harness commits, interleaved: does a change of the harness move any figure?

Checks out `--base` (default: the commit before the scenario/run-context rewrite) into a temporary git worktree,
then runs each (backend, workload) alternately with the base code and with this checkout, `--rounds` times each,
into results/before-after/{base,head}/ (interleaving puts machine drift on both sides alike). Then
`bench regress` compares each pair: the base runs are the baseline (several runs: the prediction-interval test),
this checkout's runs the candidate. Exit code 1 when any regression is found.

    python benchmarks/before_after.py                       # qdrant-edge and faiss, ann-smoke and ycsb-a
    python benchmarks/before_after.py --rounds 4 --base 17f06e4
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import _smoke

REPO = Path(__file__).resolve().parent.parent
CASES = [  # (backend, workload, extra --set overrides): small enough for a few minutes a side
    ("qdrant-edge", "ann-smoke", ["dataset.n=5000", "search.ef_search=[32, 128]"]),
    ("faiss", "ann-smoke", ["dataset.n=5000", "search.ef_search=[32, 128]"]),
    ("qdrant-edge", "ycsb-a", ["dataset.n=5000", "run.duration_s=2"]),
    ("qdrant-edge", "ann-filtered", ["dataset.n=5000", "filter.selectivities=[0.1]", "search.ef_search=[64]"]),
]


def _run(code_dir: Path, out: Path, backend: str, workload: str, sets: list[str], trials: int, cache: Path) -> str:
    env = {**os.environ, "PYTHONPATH": str(code_dir), "BENCH_CACHE_DIR": str(cache)}
    args = [sys.executable, "-m", "bench.cli", "run", "--backend", backend, "--workload", workload,
            "--trials", str(trials), "--results-dir", str(out), "--quiet", "--json"]
    for s in sets:
        args += ["--set", s]
    p = subprocess.run(args, capture_output=True, text=True, cwd=code_dir, env=env)
    if p.returncode not in (0, 1):
        raise SystemExit(f"{backend} {workload} failed with {code_dir}:\n{p.stderr[-2000:]}")
    return json.loads(p.stdout)["run_id"]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--base", default="17f06e4", help="the harness commit to compare against")
    ap.add_argument("--head", default="HEAD", help="the harness commit measured as the candidate")
    ap.add_argument("--rounds", type=int, default=3, help="runs per side and case, interleaved")
    ap.add_argument("--trials", type=int, default=5)
    ap.add_argument("--out", type=Path, default=REPO / "results" / "before-after")
    ap.set_defaults(cases=CASES)
    _smoke.add(ap, base="HEAD", rounds=1, trials=2, out=_smoke.temp_dir,
               cases=[("faiss", "ann-smoke", ["dataset.n=1000", "dataset.dim=16", "search.ef_search=[32]"])])
    args = _smoke.parse(ap)
    cache = Path(os.environ.get("BENCH_CACHE_DIR", Path.home() / ".cache" / "bench"))
    with tempfile.TemporaryDirectory(prefix="bench-base-") as tmp:
        trees = {side: Path(tmp) / side for side in ("base", "head")}
        for side, rev in (("base", args.base), ("head", args.head)):  # both frozen: edits here do not leak in
            subprocess.run(["git", "-C", str(REPO), "worktree", "add", "--detach", str(trees[side]), rev],
                           check=True, capture_output=True)
        try:
            runs = _interleave(args, trees["base"], trees["head"], cache)
        finally:
            for tree in trees.values():
                subprocess.run(["git", "-C", str(REPO), "worktree", "remove", "--force", str(tree)],
                               capture_output=True)
    worst = _verdicts(args, runs)
    return 0 if args.smoke and worst == 1 else worst  # a smoke run's verdict is noise; only a failure counts


def _interleave(args: argparse.Namespace, base: Path, head: Path, cache: Path) -> dict:
    runs: dict[tuple[str, str], dict[str, list[str]]] = {}
    for r in range(args.rounds):
        for backend, workload, sets in args.cases:
            sides = [("base", base), ("head", head)] if r % 2 == 0 else [("head", head), ("base", base)]
            for side, code in sides:
                out = args.out / side / f"{backend}.{workload}"
                rid = _run(code, out, backend, workload, sets, args.trials, cache)
                runs.setdefault((backend, workload), {}).setdefault(side, []).append(rid)
                print(f"round {r + 1}: {side:4} {backend} {workload}: {rid}", flush=True)
    return runs


def _verdicts(args: argparse.Namespace, runs: dict) -> int:
    worst = 0
    for (backend, workload) in runs:
        case = f"{backend}.{workload}"
        p = subprocess.run([sys.executable, "-m", "bench.cli", "regress", "--baseline", str(args.out / "base" / case),
                            "--candidate", str(args.out / "head" / case)], capture_output=True, text=True, cwd=REPO)
        print(f"\n### {backend} {workload}: exit {p.returncode}\n{p.stdout}{p.stderr}")
        worst = max(worst, p.returncode)
    return worst


if __name__ == "__main__":
    sys.exit(main())
