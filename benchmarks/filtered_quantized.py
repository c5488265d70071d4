"""Sweep filtered and quantized ANN over engines: recall and QPS per (engine, selectivity) and per
(engine, quantization), by running the real `bench run` on `ann-filtered` and `ann-quantized`.

An engine that cannot run a cell (no filters, or not that quantization) exits 2 with a reason: the cell shows
"skipped" and the reason is printed under the table.

    .venv/bin/python benchmarks/filtered_quantized.py --n 5000 --dim 128 --trials 3
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import _smoke
import pyarrow.parquet as pq

ENGINES = ["qdrant-edge", "faiss", "pgvector", "chroma"]
QUANTS = ["none", "int8", "fp16", "pq", "binary"]


def bench_run(backend: str, workload: str, sets: list[str], results: Path) -> tuple[list[dict], str | None]:
    """Summary rows of one `bench run`, or ([], reason) when it was skipped or failed."""
    args = [sys.executable, "-m", "bench.cli", "run", "--backend", backend, "--workload", workload,
            "--results-dir", str(results), "--json", "--quiet"]
    for s in sets:
        args += ["--set", s]
    p = subprocess.run(args, capture_output=True, text=True)
    if p.returncode != 0:
        lines = [ln for ln in p.stderr.strip().splitlines() if ln.strip()]
        return [], f"exit {p.returncode}: " + (lines[-1] if lines else "no message")
    out = json.loads(p.stdout)
    return pq.read_table(Path(out["results"]) / "summary.parquet").to_pylist(), None


def cell(r: dict) -> str:
    return f"{r['recall']:.3f} / {r['qps']:,.0f}"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=5000)
    ap.add_argument("--dim", type=int, default=128)
    ap.add_argument("--queries", type=int, default=100)
    ap.add_argument("--ef", type=int, default=64)
    ap.add_argument("--trials", type=int, default=3)
    ap.add_argument("--engines", default=",".join(ENGINES))
    _smoke.add(ap, n=2_000, dim=16, queries=20, trials=1, engines="faiss")
    a = _smoke.parse(ap)
    engines = a.engines.split(",")
    quants = QUANTS[:2] if a.smoke else QUANTS  # --smoke: none and int8
    common = [f"dataset.n={a.n}", f"dataset.dim={a.dim}", f"dataset.queries={a.queries}",
              f"search.ef_search=[{a.ef}]", f"run.trials={a.trials}", "run.warmup_s=0.2"]
    reasons: list[str] = []
    with tempfile.TemporaryDirectory() as d:
        results = Path(d)
        filt: dict[str, dict[float, str]] = {}
        sels: list[float] = []
        for e in engines:
            rows, why = bench_run(e, "ann-filtered", common, results)
            if why:
                reasons.append(f"{e} ann-filtered: {why}")
            filt[e] = {r["selectivity"]: cell(r) for r in rows if r["op"] == "search"}
            sels = sorted({*sels, *filt[e]}, reverse=True)
        quant: dict[str, dict[str, str]] = {}
        for e in engines:
            quant[e] = {}
            for qz in quants:
                if qz == "none":
                    rows, why = _plain(e, common, results)
                else:
                    rows, why = bench_run(e, "ann-quantized", [*common, f"index.quantization='{qz}'"], results)
                if why:
                    reasons.append(f"{e} {qz}: {why}")
                quant[e][qz] = next((cell(r) for r in rows if r["op"] == "search"), "skipped")
    print(f"\nrecall@10 / QPS at ef_search={a.ef}, n={a.n}, dim={a.dim}, {a.queries} queries, "
          f"median of {a.trials} trials (concurrency 1)\n")
    _table("engine", [f"{s:.1%}" for s in sels], {e: [filt[e].get(s, "skipped") for s in sels] for e in engines},
           "filtered: selectivity")
    _table("engine", quants, {e: [quant[e][q] for q in quants] for e in engines}, "quantized (rescore on)")
    for r in reasons:
        print(f"- {r}")
    return 0


def _plain(engine: str, common: list[str], results: Path) -> tuple[list[dict], str | None]:
    """The unquantized baseline: ann-quantized with the quantization removed (same data and index otherwise)."""
    src = Path(__file__).resolve().parent.parent / "workloads" / "ann-quantized.toml"
    text = "\n".join(ln for ln in src.read_text().splitlines()
                     if not ln.startswith(("quantization", "rescore"))).replace('"ann-quantized"', '"ann-plain"')
    with tempfile.NamedTemporaryFile("w", suffix=".toml", delete=False) as f:
        f.write(text)
    try:
        return bench_run(engine, f.name, common, results)
    finally:
        Path(f.name).unlink(missing_ok=True)


def _table(first: str, cols: list[str], rows: dict[str, list[str]], title: str) -> None:
    print(f"{title}")
    widths = [max(len(first), *(len(k) for k in rows))] + [max(len(c), *(len(v[i]) for v in rows.values()))
                                                            for i, c in enumerate(cols)]
    print("| " + " | ".join(x.ljust(w) for x, w in zip([first, *cols], widths, strict=True)) + " |")
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for k, v in rows.items():
        print("| " + " | ".join(x.ljust(w) for x, w in zip([k, *v], widths, strict=True)) + " |")
    print()


if __name__ == "__main__":
    raise SystemExit(main())
