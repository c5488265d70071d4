"""Scale: the ANN workload end to end at 1,000,000 x 768 through `bench run`'s own code path, per phase.

Each engine runs in a child process that calls `bench.runner.run(RunRequest(...))` on the ann-hnsw-768 workload
(synthetic 768-d cosine data) with `dataset.n`, `index.m`, `index.ef_construction`, ... overridden. The child
marks where each phase starts and ends by wrapping the functions the run calls (nothing in bench changes):

    generate       bench.datasets.load (generates the synthetic set to disk unless it is cached)
    ground truth   Dataset.ground_truth (exact top-k, cached under the cache folder)
    setup          from there to the first insert: references, run folder, engine created
    load           RunContext._load (every insert batch; faiss builds its graph while adding)
    build          the backend's wait_indexed (qdrant-edge: optimize(), the graph build)
    search trials  every ef_search's warm-up and timed trials
    finish         results written, collection dropped, work folder removed

This process samples the child's resident set (children included) every 0.2 s with psutil, split into anonymous
and file-backed pages (/proc/PID/status RssAnon, RssFile), and reports per phase the wall time and the peak.

Harness vs engine: the engine's part is the RSS growth bench records around create + load + build
(`client_rss_growth_bytes`; the load reads the base with pread, so none of its pages is mapped), cross-checked for faiss with the bytes its
index arrays hold (`index_size_bytes`: n x dim x 4 + graph links) and for qdrant-edge with its storage sizes.
The harness's part is the rest, compared with the aim: the interpreter and libraries (RSS before the dataset),
one insert batch, the base file's resident pages (n x dim x 4) and the ground-truth arrays.

    python benchmarks/ann_scale.py --n 1000000 --engines faiss,qdrant-edge --m 16 --ef-construction 64
    python benchmarks/ann_scale.py --n 100000 --engines faiss --keep --cache-dir /tmp/bench-scale
    python benchmarks/ann_scale.py --gt-scaling --gt-sizes 100000,300000,1000000 --cache-dir /tmp/bench-scale

--gt-scaling times the exact ground truth (bench.datasets.exact.exact_topk, the function `bench run` uses) at
each n over the first n rows of one generated set (the same queries and k), each n in a fresh child process, and
reports time, time per million rows and peak RSS.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import _smoke
import psutil

MiB = 1 << 20
ROOT = Path(__file__).resolve().parents[1]
PHASES = ("generate", "ground truth", "setup", "load", "build", "search trials", "finish")


# -- the child: one `bench run`, with phase marks -------------------------------------------------------------
def _status() -> dict[str, int]:
    out = {}
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(("RssAnon:", "RssFile:", "VmRSS:")):
                name, value = line.split(":")
                out[name] = int(value.split()[0]) * 1024
    return out


class Marks:
    def __init__(self, path: Path):
        self.f = open(path, "a", buffering=1)  # kept open for the child's life

    def mark(self, phase: str, edge: str, **extra: Any) -> None:
        self.f.write(json.dumps({"phase": phase, "edge": edge, "t": time.time(), **_status(), **extra}) + "\n")

    def wrap(self, owner: Any, attr: str, phase: str) -> None:
        fn = getattr(owner, attr)

        def wrapped(*a: Any, **kw: Any) -> Any:
            self.mark(phase, "start")
            try:
                return fn(*a, **kw)
            finally:
                self.mark(phase, "end")

        setattr(owner, attr, wrapped)


def child(args: argparse.Namespace) -> None:
    from bench import datasets, run_context, runner
    from bench.backends import registry
    from bench.datasets.dataset import Dataset

    marks = Marks(Path(args.marks))
    marks.mark("start", "start")
    marks.wrap(datasets, "load", "generate")
    marks.wrap(Dataset, "ground_truth", "ground truth")
    marks.wrap(run_context.RunContext, "_start_files", "setup")
    marks.wrap(run_context.RunContext, "_load", "load")
    marks.wrap(registry.get(args.engine), "wait_indexed", "build")
    marks.wrap(runner._Runner, "all", "search trials")
    marks.wrap(run_context.RunContext, "_finish", "finish")
    ef = "[" + ",".join(str(e) for e in args.ef_search) + "]"
    overrides = [f"dataset.n={args.n}", f"dataset.dim={args.dim}", f"dataset.queries={args.queries}", f"index.m={args.m}",
                 f"index.ef_construction={args.ef_construction}", f"search.ef_search={ef}",
                 f"run.trials={args.trials}", f"run.batch_size={args.batch}", "run.index_timeout_s=86400"]
    req = runner.RunRequest(backend=args.engine, workload=str(ROOT / "workloads" / "ann-hnsw-768.toml"),
                            overrides=overrides, results_dir=Path(args.results), cache_dir=Path(args.cache_dir),
                            quiet=True, command="benchmarks/ann_scale.py")
    out = runner.run(req)
    marks.mark("done", "end", run_dir=str(out.run_dir), status=out.status)


# -- the parent: sample the child's RSS, then cut the samples by phase ----------------------------------------
def _rss_of(proc: psutil.Process) -> tuple[int, int, int]:
    """(rss, anon, file) of the process and its children."""
    total = anon = file = 0
    for p in [proc, *proc.children(recursive=True)]:
        try:
            with open(f"/proc/{p.pid}/status") as f:
                fields = {a: int(b.split()[0]) * 1024 for a, b in (ln.split(":", 1) for ln in f if ":" in ln)
                          if a in ("VmRSS", "RssAnon", "RssFile")}
        except (OSError, ValueError):
            continue
        total, anon, file = total + fields.get("VmRSS", 0), anon + fields.get("RssAnon", 0), file + fields.get(
            "RssFile", 0)
    return total, anon, file


def sample_child(cmd: list[str], interval_s: float = 0.2) -> tuple[int, list[tuple[float, int, int, int]]]:
    p = subprocess.Popen(cmd, cwd=ROOT)
    proc = psutil.Process(p.pid)
    samples = []
    while p.poll() is None:
        try:
            samples.append((time.time(), *_rss_of(proc)))
        except psutil.Error:
            pass
        time.sleep(interval_s)
    return p.returncode, samples


def phases(marks: list[dict], samples: list[tuple[float, int, int, int]]) -> list[dict[str, Any]]:
    """Wall time and peak RSS (total, anon, file) of each phase; `setup` runs from the ground truth's end to the
    load's start, `search trials` from the build's end to the finish."""
    first: dict[tuple[str, str], float] = {}
    last: dict[tuple[str, str], float] = {}
    for m in marks:
        first.setdefault((m["phase"], m["edge"]), m["t"])
        last[(m["phase"], m["edge"])] = m["t"]
    bounds = {
        "generate": (first.get(("generate", "start")), last.get(("generate", "end"))),
        "ground truth": (first.get(("ground truth", "start")), last.get(("ground truth", "end"))),
        "setup": (last.get(("ground truth", "end")), first.get(("load", "start"))),
        "load": (first.get(("load", "start")), last.get(("load", "end"))),
        "build": (first.get(("build", "start")), last.get(("build", "end"))),
        "search trials": (last.get(("build", "end")), first.get(("finish", "start"))),
        "finish": (first.get(("finish", "start")), last.get(("finish", "end"))),
    }
    out = []
    for name in PHASES:
        a, b = bounds[name]
        if a is None or b is None:
            continue
        inside = [s for s in samples if a <= s[0] <= b] or [min(samples, key=lambda s: abs(s[0] - b))]
        out.append({"phase": name, "seconds": b - a, "rss": max(s[1] for s in inside),
                    "anon": max(s[2] for s in inside), "file": max(s[3] for s in inside),
                    "rss_end": inside[-1][1]})
    return out


def run_rows(run_dir: Path) -> dict[str, Any]:
    import pyarrow.parquet as pq

    rows = pq.read_table(run_dir / "summary.parquet").to_pylist()
    trials = pq.read_table(run_dir / "trials.parquet").to_pylist()
    t0 = trials[0]
    info = json.loads((run_dir / "run.json").read_text())
    return {"summary": rows, "load_s": t0["load_s"], "build_s": t0["build_s"],
            "index_size_bytes": t0.get("index_size_bytes"), "rss_growth": t0.get("client_rss_growth_bytes"),
            "index_built": info.get("index_built"), "dataset": info.get("dataset")}


def one_engine(args: argparse.Namespace, engine: str, work: Path) -> dict[str, Any]:
    marks_path = work / f"{engine}.marks.jsonl"
    marks_path.unlink(missing_ok=True)
    cmd = [sys.executable, __file__, "--child", "--engine", engine, "--marks", str(marks_path),
           "--results", str(work / "results"), "--cache-dir", str(args.cache_dir), "--n", str(args.n),
           "--m", str(args.m), "--ef-construction", str(args.ef_construction), "--queries", str(args.queries),
           "--trials", str(args.trials), "--batch", str(args.batch),
           "--ef-search", ",".join(map(str, args.ef_search))]
    t0 = time.time()
    rc, samples = sample_child(cmd)
    wall = time.time() - t0
    marks = [json.loads(ln) for ln in marks_path.read_text().splitlines()]
    done = next((m for m in marks if m["phase"] == "done"), None)
    if rc != 0 or done is None:
        raise SystemExit(f"{engine}: the bench run failed (exit {rc}); see its output above")
    out = {"engine": engine, "wall_s": wall, "phases": phases(marks, samples), "marks": marks,
           "peak_rss": max(s[1] for s in samples), "run": run_rows(Path(done["run_dir"])),
           "baseline": next(m for m in marks if m["phase"] == "generate")}
    out["aim"] = aim(args, engine, out["baseline"])
    return out


def aim(args: argparse.Namespace, engine: str, baseline: dict[str, int]) -> dict[str, int]:
    """What the harness may hold: the interpreter and libraries, one insert batch (as floats, and for qdrant-edge
    as the Python lists its Points take: 32 bytes a value), the base file's pages and the ground truth."""
    per_value = 4 + (32 if engine == "qdrant-edge" else 0)
    return {"interpreter": baseline["VmRSS"], "batch": args.batch * args.dim * per_value,
            "base file": args.n * args.dim * 4, "ground truth": args.queries * 10 * 8 + args.queries * args.dim * 4}


def _fmt(b: float | None) -> str:
    return "-" if b is None else f"{b / MiB:,.0f}"


def split(r: dict[str, Any]) -> dict[str, int | None]:
    """The engine's memory (anonymous growth over load + build; file-backed pages above the load's start) and the
    harness's peak in the phases without an engine and in the search trials (its anonymous peak less the engine's,
    plus the file-backed pages it had at the load's start: the interpreter's libraries)."""
    edge = {(m["phase"], m["edge"]): m for m in r["marks"]}
    first_load = next(m for m in r["marks"] if m["phase"] == "load" and m["edge"] == "start")
    built = edge.get(("build", "end"), edge.get(("load", "end")))
    ph = {p["phase"]: p for p in r["phases"]}
    eng_anon = built["RssAnon"] - first_load["RssAnon"]
    eng_file = max(ph[p]["file"] for p in ("load", "build", "search trials") if p in ph) - first_load["RssFile"]
    search = ph.get("search trials")
    return {"engine anon": eng_anon, "engine file": max(0, eng_file), "index arrays": r["run"]["index_size_bytes"],
            "generate": ph["generate"]["rss"] if "generate" in ph else None,
            "ground truth": ph["ground truth"]["rss"] if "ground truth" in ph else None,
            "search": search["anon"] - eng_anon + first_load["RssFile"] if search else None}


def report(args: argparse.Namespace, results: list[dict[str, Any]]) -> None:
    print(f"\nn = {args.n:,} x {args.dim} float32 cosine (synthetic), HNSW M={args.m}, ef_construction="
          f"{args.ef_construction}; {args.queries:,} queries, k=10, ef_search {args.ef_search}, {args.trials} "
          f"trial(s) each; insert batch {args.batch:,}; {psutil.cpu_count()} cores shared with other sessions")
    head = f"{'engine':<12}{'phase':<15}{'seconds':>9}{'peak RSS MiB':>14}{'anon':>8}{'file':>8}"
    print(head)
    print("-" * len(head))
    for r in results:
        for p in r["phases"]:
            print(f"{r['engine']:<12}{p['phase']:<15}{p['seconds']:>9.1f}{_fmt(p['rss']):>14}{_fmt(p['anon']):>8}"
                  f"{_fmt(p['file']):>8}")
        print(f"{r['engine']:<12}{'total':<15}{r['wall_s']:>9.1f}{_fmt(r['peak_rss']):>14}")
    print("\nharness vs engine (MiB): the engine's part is its anonymous growth from the load's start to the build's "
          "end plus the file-backed pages above the load's start (its memory-mapped storage); the harness's part is "
          "the rest (it maps no data file: the base is read with pread)")
    head = (f"{'engine':<12}{'engine anon':>12}{'engine file':>12}{'index arrays':>13}{'harness: generate':>18}"
            f"{'ground truth':>13}{'search':>8}{'aim':>7}  aim = interpreter + batch + base file + ground truth")
    print(head)
    for r in results:
        print(f"{r['engine']:<12}" + "".join(f"{_fmt(v):>{w}}" for v, w in zip(split(r).values(),
              (12, 12, 13, 18, 13, 8), strict=True))
              + f"{_fmt(sum(r['aim'].values())):>7}  = {' + '.join(_fmt(v) for v in r['aim'].values())}")
    print("\nsearch (trimmed medians of the run's summary); bench's own load_s and build_s")
    for r in results:
        print(f"{r['engine']:<12} load_s {r['run']['load_s']:,.1f}  build_s {r['run']['build_s']:,.1f}  built "
              f"{json.dumps(r['run']['index_built'])[:160]}")
        for s in r["run"]["summary"]:
            if s["op"] == "search":
                print(f"{r['engine']:<12} ef_search={s['ef_search']:<5} QPS {s['qps']:>8,.0f}  P50 "
                      f"{s['p50_us']:>7,.0f} us  recall@10 {s['recall']:.4f}  trials {s['n_ok']}")


# -- ground-truth scaling ---------------------------------------------------------------------------------------
def _dataset_spec(args: argparse.Namespace, n: int) -> Any:
    """The ann-hnsw-768 workload's dataset at n rows: the same file the ANN runs generate (one cache entry)."""
    from bench.workload_file import load_workload

    spec = load_workload(str(ROOT / "workloads" / "ann-hnsw-768.toml"),
                         [f"dataset.n={n}", f"dataset.queries={args.queries}", f"dataset.dim={args.dim}"])
    return spec.dataset


def gt_child(args: argparse.Namespace) -> None:
    """Exact top-k of the queries over the first n rows, timed; prints one JSON line."""
    import numpy as np

    from bench.datasets import load
    from bench.datasets.exact import exact_topk

    ds = load(_dataset_spec(args, args.gt_total), Path(args.cache_dir), progress=False)
    rows = ds.base_rows.slice(0, args.n)
    me = psutil.Process()
    rss0, cpu0 = me.memory_info().rss, me.cpu_times()
    t0 = time.perf_counter()
    gt = exact_topk(rows, ds.queries, 10, ds.metric)
    seconds = time.perf_counter() - t0
    cpu1 = me.cpu_times()
    cpu = (cpu1.user - cpu0.user) + (cpu1.system - cpu0.system)
    print(json.dumps({"n": args.n, "seconds": seconds, "cpu_s": cpu, "rss_before": rss0, "gt_bytes": int(gt.nbytes),
                      "checksum": int(np.asarray(gt[:, 0]).sum())}), flush=True)


def gt_scaling(args: argparse.Namespace) -> None:
    from bench.datasets import load

    sizes = sorted(args.gt_sizes)
    t0 = time.perf_counter()
    load(_dataset_spec(args, sizes[-1]), Path(args.cache_dir), progress=False)
    print(f"generated {sizes[-1]:,} x {args.dim} (or found it cached) in {time.perf_counter() - t0:.1f} s")
    rows = []
    for n in sizes:
        out = Path(tempfile.mkstemp(prefix="gt-", suffix=".json")[1])
        cmd = [sys.executable, __file__, "--gt-child", "--n", str(n), "--gt-total", str(sizes[-1]),
               "--queries", str(args.queries), "--dim", str(args.dim), "--cache-dir", str(args.cache_dir)]
        with out.open("w") as f:
            p = subprocess.Popen(cmd, cwd=ROOT, stdout=f)
            proc, peak = psutil.Process(p.pid), 0
            while p.poll() is None:
                try:
                    peak = max(peak, proc.memory_info().rss)
                except psutil.Error:
                    pass
                time.sleep(0.05)
        r = json.loads(out.read_text().splitlines()[-1])
        out.unlink()
        rows.append({**r, "peak": peak})
    print(f"\nexact ground truth, {args.queries:,} queries, k=10, {args.dim}-d cosine, float32 blocks of 64 MiB "
          f"(bench.datasets.exact); {psutil.cpu_count()} cores shared with other sessions")
    head = (f"{'n':>10}{'seconds':>9}{'s per 1M rows':>15}{'CPU s':>8}{'CPU s per 1M':>14}{'RSS before MiB':>16}"
            f"{'peak RSS MiB':>14}{'growth':>8}")
    print(head)
    print("-" * len(head))
    for r in rows:
        print(f"{r['n']:>10,}{r['seconds']:>9.1f}{r['seconds'] / r['n'] * 1e6:>15.1f}{r['cpu_s']:>8.1f}"
              f"{r['cpu_s'] / r['n'] * 1e6:>14.1f}{_fmt(r['rss_before']):>16}"
              f"{_fmt(r['peak']):>14}{_fmt(r['peak'] - r['rss_before']):>8}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--dim", type=int, default=768)
    ap.add_argument("--engines", default="faiss,qdrant-edge")
    ap.add_argument("--m", type=int, default=64, help="HNSW M (ann-hnsw-768: 64)")
    ap.add_argument("--ef-construction", type=int, default=200, help="(ann-hnsw-768: 200)")
    ap.add_argument("--ef-search", type=lambda s: [int(x) for x in s.split(",")], default=[128])
    ap.add_argument("--queries", type=int, default=1_000)
    ap.add_argument("--trials", type=int, default=3)
    ap.add_argument("--batch", type=int, default=1_000, help="run.batch_size (ann-hnsw-768: 1000)")
    ap.add_argument("--cache-dir", type=Path, default=None,
                    help="dataset cache, kept (default: a temporary folder, removed unless --keep)")
    ap.add_argument("--keep", action="store_true", help="keep the temporary folder of generated data")
    ap.add_argument("--json", type=Path, default=None, help="also write every figure here")
    ap.add_argument("--gt-scaling", action="store_true", help="time the exact ground truth at each --gt-sizes")
    ap.add_argument("--gt-sizes", type=lambda s: [int(x) for x in s.split(",")], default=[100_000, 300_000, 1_000_000])
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--gt-child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--gt-total", type=int, default=0, help=argparse.SUPPRESS)
    ap.add_argument("--engine", help=argparse.SUPPRESS)
    ap.add_argument("--marks", help=argparse.SUPPRESS)
    ap.add_argument("--results", help=argparse.SUPPRESS)
    ap.add_argument("--from-json", type=Path, default=None, help="print the report of a --json file again")
    _smoke.add(ap, n=2_000, dim=16, engines="faiss", m=8, ef_construction=32, ef_search=[16], queries=50, trials=1,
               batch=500)
    args = _smoke.parse(ap)
    if args.from_json:
        saved = json.loads(args.from_json.read_text())
        for name, value in saved["args"].items():
            if name in ("n", "dim", "m", "ef_construction", "queries", "trials", "batch"):
                setattr(args, name, int(value))
        args.ef_search = saved["args"]["ef_search"]
        return report(args, saved["results"])
    if args.child:
        return child(args)
    if args.gt_child:
        return gt_child(args)
    temp_cache = args.cache_dir is None
    args.cache_dir = args.cache_dir or Path(tempfile.mkdtemp(prefix="bench-ann-scale-"))
    work = Path(tempfile.mkdtemp(prefix="bench-ann-scale-runs-"))
    try:
        if args.gt_scaling:
            return gt_scaling(args)
        results = []
        for e in args.engines.split(","):  # each engine's figures are printed as soon as it finishes
            try:
                results.append(one_engine(args, e, work))
            except SystemExit as err:
                print(err)
                continue
            report(args, results[-1:])
        if args.json:
            args.json.write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()},
                                             "results": results}, indent=1, default=str))
    finally:
        shutil.rmtree(work, ignore_errors=True)
        if temp_cache and not args.keep:
            shutil.rmtree(args.cache_dir, ignore_errors=True)
        elif temp_cache:
            print(f"kept the generated data and ground truth in {args.cache_dir}")
    return None


if __name__ == "__main__":
    os.environ.setdefault("PYTHONPATH", str(ROOT))
    main()
