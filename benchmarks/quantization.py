"""Quantization across the engines, with memory: recall / QPS / P99 / memory per engine x quantization
{none, int8, fp16, pq, binary} x rescore {true, false} x ef_search, by running the real `bench run` on
`ann-quantized` (and on the same workload with the quantization removed, for the unquantized baseline).

An engine that cannot build a cell (no such quantization, or not with / without rescore) exits 2 with one sentence:
the cell is listed under the table as skipped with that sentence. What an engine built other than asked (Milvus's
IVF indexes for int8/pq, milvus-lite's pure-Python engine) is printed beside the row and under the table.

Memory columns, each the engine's own figure where it has one (see docs/engines.md, "Memory"):
- index MiB: `index_size_bytes` (faiss: serialized index; qdrant-edge: segment vectors + quantized copy + graph files;
  pgvector: the HNSW index relation; Milvus: none reported).
- RSS growth MiB: in-process engines, growth of the harness's RSS from create() to the read-back index.
- server peak RSS MiB: client-server engines, the server's process tree sampled during the trials.

    .venv/bin/python benchmarks/quantization.py --out results/quantization.md
    .venv/bin/python benchmarks/quantization.py --n 2000 --dim 64 --trials 1 --engines faiss,pgvector   # quick
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import _smoke
import pyarrow.parquet as pq

ENGINES = ["faiss", "qdrant-edge", "pgvector", "milvus", "milvus-lite"]
QUANTS = ["none", "int8", "fp16", "pq", "binary"]
# fp16 in qdrant-edge is the storage datatype itself (nothing kept to rescore with): one cell, not two.
NO_RESCORE_AXIS = {("qdrant-edge", "fp16")}
MIB = 1024 * 1024
REPO = Path(__file__).resolve().parent.parent


def bench_run(backend: str, workload: str, sets: list[str], results: Path) -> tuple[list[dict], str | None, float]:
    """(search summary rows, None) of one `bench run`, or ([], reason) when it was skipped or failed; seconds."""
    args = [sys.executable, "-m", "bench.cli", "run", "--backend", backend, "--workload", workload,
            "--results-dir", str(results), "--json", "--quiet"]
    for s in sets:
        args += ["--set", s]
    t0 = time.perf_counter()
    p = subprocess.run(args, capture_output=True, text=True)
    took = time.perf_counter() - t0
    if p.returncode != 0:
        lines = [ln for ln in p.stderr.strip().splitlines() if ln.strip()]
        return [], f"exit {p.returncode}: " + (lines[-1] if lines else "no message"), took
    out = json.loads(p.stdout)
    rows = pq.read_table(Path(out["results"]) / "summary.parquet").to_pylist()
    return [r for r in rows if r["op"] == "search"], None, took


def plain_workload() -> Path:
    """ann-quantized with the quantization removed: the same data and HNSW settings, unquantized. It keeps the
    workload name, so `bench compare` and `bench report` show the baseline beside the quantized rows (quant
    column "none")."""
    src = REPO / "workloads" / "ann-quantized.toml"
    text = "\n".join(ln if not ln.startswith("description") else
                     'description = "HNSW M=16 unquantized (the baseline of the quantized runs), cosine"'
                     for ln in src.read_text().splitlines() if not ln.startswith(("quantization", "rescore")))
    f = tempfile.NamedTemporaryFile("w", suffix=".toml", prefix="ann-plain-", delete=False)
    f.write(text)
    f.close()
    return Path(f.name)


def mib(v: object) -> str:
    return "-" if v is None or (isinstance(v, float) and v != v) else f"{float(v) / MIB:,.1f}"


def built_as(row: dict) -> str:
    b = json.loads(row["index_built"])
    p = b.get("params", {})
    kind = p.get("index_type") or p.get("index_class") or p.get("opclass") or b.get("kind")
    q = p.get("quantization")
    return f"{kind}" + (f" ({q})" if q and str(q) not in str(kind) else "")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=10_000)
    ap.add_argument("--dim", type=int, default=768)
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--ef", default="64,128", help="ef_search values, comma-separated")
    ap.add_argument("--trials", type=int, default=5)
    ap.add_argument("--engines", default=",".join(ENGINES))
    ap.add_argument("--quants", default=",".join(QUANTS))
    ap.add_argument("--results-dir", default="", help="keep the runs here (default: a temporary folder)")
    ap.add_argument("--out", default="", help="write the markdown here too")
    _smoke.add(ap, n=500, dim=16, queries=20, ef="16", trials=1, engines="faiss", quants="none,int8")
    a = _smoke.parse(ap)
    engines, quants = a.engines.split(","), a.quants.split(",")
    efs = [int(e) for e in a.ef.split(",")]
    common = [f"dataset.n={a.n}", f"dataset.dim={a.dim}", f"dataset.queries={a.queries}",
              f"search.ef_search={efs}", f"run.trials={a.trials}", "run.warmup_s=0.5"]
    server = {"milvus": ["backend.consistency_level='Bounded'"]}
    results = Path(a.results_dir) if a.results_dir else Path(tempfile.mkdtemp(prefix="bench-quant-"))
    results.mkdir(parents=True, exist_ok=True)
    plain = plain_workload()
    load_before = os.getloadavg()
    started = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())
    rows: list[dict] = []
    skipped: list[tuple[str, str]] = []
    notes: dict[str, int] = {}
    loads: list[float] = []
    try:
        for e in engines:
            for qz in quants:
                rescores = [None] if qz == "none" or (e, qz) in NO_RESCORE_AXIS else [True, False]
                for rs in rescores:
                    sets = [*common, *server.get(e, [])]
                    if qz == "none":
                        workload = str(plain)
                    else:
                        workload = "ann-quantized"
                        sets += [f"index.quantization='{qz}'", f"index.rescore={str(bool(rs)).lower()}"]
                    label = f"{e} {qz}" + ("" if rs is None else f" rescore={str(rs).lower()}")
                    loads.append(os.getloadavg()[0])
                    got, why, took = bench_run(e, workload, sets, results)
                    print(f"{label}: {'skipped: ' + why if why else f'{len(got)} rows'} ({took:.0f} s)", flush=True)
                    if why:
                        skipped.append((label, why))
                        continue
                    for r in got:
                        r["_rescore_cell"] = "n/a" if rs is None else ("yes" if rs else "no")
                        for s in json.loads(r["index_substitutions"] or "[]"):
                            notes.setdefault(s, len(notes) + 1)
                    rows.extend(got)
    finally:
        plain.unlink(missing_ok=True)
    load_after = os.getloadavg()

    heads = ["engine", "quant", "rescore", "ef", "recall@10", "QPS", "P99 ms", "index MiB", "RSS growth MiB",
             "server peak RSS MiB", "built", "notes"]
    lines = ["| " + " | ".join(heads) + " |", "|" + "|".join("---" for _ in heads) + "|"]
    order = {e: i for i, e in enumerate(engines)}
    qorder = {q: i for i, q in enumerate(QUANTS)}
    rows.sort(key=lambda r: (order.get(r["backend"], 99), qorder.get(r["quantization"] or "none", 99),
                             r["_rescore_cell"], r["ef_search"]))
    for r in rows:
        subs = [str(notes[s]) for s in json.loads(r["index_substitutions"] or "[]")]
        lines.append("| " + " | ".join([
            r["backend"], r["quantization"] or "none", r["_rescore_cell"], str(r["ef_search"]),
            f"{r['recall']:.4f}" if r["recall"] is not None else "-", f"{r['qps']:,.0f}",
            f"{r['p99_us'] / 1000:,.2f}" if r["p99_us"] is not None else "-",
            mib(r.get("index_size_bytes")), mib(r.get("client_rss_growth_bytes")), mib(r.get("server_rss_peak_bytes")),
            built_as(r), ", ".join(subs) or "-"]) + " |")
    ncpu = os.cpu_count()
    md = [f"## Quantization: recall@10 / QPS / P99 / memory (n={a.n:,}, dim={a.dim}, {a.queries} queries, "
          f"ef_search {', '.join(map(str, efs))}, concurrency 1, trimmed median of {a.trials} trials)", "",
          f"Started {started}; {ncpu} cores; load average (1/5/15 min) {load_before[0]:.2f}/{load_before[1]:.2f}/"
          f"{load_before[2]:.2f} before, {load_after[0]:.2f}/{load_after[1]:.2f}/{load_after[2]:.2f} after, "
          f"1-min load at the start of each run {min(loads, default=0):.2f}-{max(loads, default=0):.2f} "
          f"(the machine is shared).", "", *lines, ""]
    if notes:
        md += ["Built other than asked (numbered in the notes column):", ""]
        md += [f"{i}. {s}" for s, i in sorted(notes.items(), key=lambda t: t[1])] + [""]
    if skipped:
        # one line per engine and quantization when both rescore settings were refused with the same sentence
        merged: dict[str, list[str]] = {}
        for label, why in skipped:
            merged.setdefault(why, []).append(label)
        md += ["Skipped (the engine refused the cell with exit 2 and this sentence):", ""]
        for why, labels in merged.items():
            cells = sorted({lb.split(" rescore=")[0] for lb in labels}) if len(labels) > 1 else labels
            md.append(f"- {', '.join(cells)}: {why.removeprefix('exit 2: error: ')}")
        md.append("")
    md += [f"Runs kept in {results} (`bench compare {results}` shows them with the capability matrix)."]
    text = "\n".join(md) + "\n"
    print("\n" + text)
    if a.out:
        Path(a.out).parent.mkdir(parents=True, exist_ok=True)
        Path(a.out).write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
