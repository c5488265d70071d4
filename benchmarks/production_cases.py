#!/usr/bin/env python3
"""The production cases on the engines of this machine: streaming ingest, capacity, searchable-after with cold and
warm first queries. Runs each through `bench run` into results/production-cases/ and prints `bench compare
--format markdown` of each case (the tables of the issue note).

- streaming: qdrant-edge, pgvector, chroma-server, milvus; wordnet 768-d, 2,000 vectors (10% loaded first),
  ingest rates 100, 300 and 1,000 vectors/s, 3-s idle baseline;
- capacity: the same engines, 4,000 vectors loaded, then 20 s of inserts (batches of 500);
- searchable: qdrant-edge (reopen), milvus (searchable-after only: the shared server is not restarted), and a
  private pgvector and a private Chroma server (own port and data folder, started here and stopped by pid), each
  restarted by bench.

    python benchmarks/production_cases.py                 # everything (about 10 minutes on 2 idle cores)
    python benchmarks/production_cases.py --case capacity --backends qdrant-edge pgvector
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import _smoke

REPO = Path(__file__).resolve().parent.parent
SERVERS = ["qdrant-edge", "pgvector", "chroma-server", "milvus"]
CASES = {
    "streaming": ["dataset.n=2000", "streaming.rates=[100,300,1000]", "streaming.idle_s=3"],
    "capacity": ["capacity.time_limit_s=20"],
    "searchable": [],
}
SMOKE = {  # --smoke: seconds, not minutes
    "streaming": ["dataset.n=1000", "streaming.rates=[200]", "streaming.idle_s=0.5",
                  "run.trials=1"],
    "capacity": ["dataset.n=1000", "capacity.time_limit_s=1", "run.trials=1"],
}


def bench(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-m", "bench.cli", *args], cwd=REPO, env=env, text=True,
                          capture_output=True)


def run(backend: str, case: str, out: Path, extra: list[str]) -> Path | None:
    sets = [a for s in [*CASES[case], *extra] for a in ("--set", s)]
    p = bench("run", "--backend", backend, "--workload", case, *sets, "--results-dir", str(out), "--quiet", "--json")
    if p.returncode != 0:
        print(f"{backend} {case}: exit {p.returncode}: {p.stderr.strip()[-400:]}", file=sys.stderr)
        return None
    return out / json.loads(p.stdout)["results"]


def searchable_private(kind: str, out: Path) -> Path | None:
    from bench.faults.servers import PrivateServer

    with PrivateServer.start_new(kind) as srv:
        return run(srv.backend, "searchable", out, [*srv.overrides,
                                                   f"searchable.restart_cmd={json.dumps(srv.restart_shell)}"])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--case", choices=sorted(CASES), action="append")
    ap.add_argument("--backends", nargs="+", default=SERVERS)
    ap.add_argument("--out", type=Path, default=REPO / "results" / "production-cases")
    _smoke.add(ap, case=["streaming", "capacity"], backends=["qdrant-edge"], out=_smoke.temp_dir)
    a = _smoke.parse(ap)
    sys.path.insert(0, str(REPO))
    for case in a.case or sorted(CASES):
        dirs = []
        for b in a.backends:
            if case == "searchable" and b in ("pgvector", "chroma-server"):
                dirs.append(searchable_private("pgvector" if b == "pgvector" else "chroma", a.out))
            elif case == "searchable" and b == "milvus":  # the shared server: not restarted
                dirs.append(run(b, case, a.out, ["searchable.cold=false"]))
            else:
                dirs.append(run(b, case, a.out, SMOKE.get(case, []) if a.smoke else []))
        done = [str(d) for d in dirs if d is not None]
        if done:
            print(f"## {case}\n\n{bench('compare', *done, '--format', 'markdown').stdout}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
