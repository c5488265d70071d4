"""Harness overhead of choosing operations: nanoseconds per drawn key and per streamed operation.

For each request distribution, times `KeyChooser.draw(batch)` (key choice alone) and `OpStream.next_batch(batch)`
(kind, key, scan length; with 5% inserts, so the growing-key-space path is included), and prints the best of
`--repeats` runs of `--batches` batches. Usage:

    python benchmarks/ops_overhead.py [--batch 1024] [--batches 2000] [--item-count 100000] [--json]
"""

from __future__ import annotations

import argparse
import json
import time

import _smoke
import numpy as np

from bench.ops import OpStream, YcsbSpec, make_chooser

DISTRIBUTIONS = ("uniform", "zipfian", "latest", "hotspot")


def best_ns_per_item(fn, batch: int, batches: int, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter_ns()
        for _ in range(batches):
            fn(batch)
        best = min(best, (time.perf_counter_ns() - start) / (batch * batches))
    return best


def measure(batch: int, batches: int, item_count: int, repeats: int) -> list[dict[str, object]]:
    rows: list[dict[str, object]] = []
    for dist in DISTRIBUTIONS:
        reads_only = YcsbSpec(read_proportion=1.0, request_distribution=dist)
        chooser = make_chooser(reads_only, item_count, np.random.default_rng(1))
        mix = YcsbSpec(read_proportion=0.5, update_proportion=0.25, scan_proportion=0.2, insert_proportion=0.05,
                       request_distribution=dist)
        stream = OpStream(mix, item_count, seed=1, worker=0, workers=2)
        rows.append({
            "distribution": dist,
            "draw_ns_per_key": round(best_ns_per_item(chooser.draw, batch, batches, repeats), 1),
            "stream_ns_per_op": round(best_ns_per_item(stream.next_batch, batch, batches, repeats), 1),
        })
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batch", type=int, default=1024)
    p.add_argument("--batches", type=int, default=2000)
    p.add_argument("--item-count", type=int, default=100_000)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--json", action="store_true", help="print the rows as JSON")
    _smoke.add(p, batch=64, batches=20, item_count=1_000, repeats=1)
    a = _smoke.parse(p)
    rows = measure(a.batch, a.batches, a.item_count, a.repeats)
    if a.json:
        print(json.dumps(rows))
        return
    print(f"batch {a.batch}, item_count {a.item_count}, best of {a.repeats} x {a.batches} batches")
    print(f"{'distribution':<12} {'draw ns/key':>12} {'stream ns/op':>13}")
    for r in rows:
        print(f"{r['distribution']:<12} {r['draw_ns_per_key']:>12} {r['stream_ns_per_op']:>13}")


if __name__ == "__main__":
    main()
