#!/usr/bin/env python3
"""How precisely does the open-loop pacer start operations on time, on this machine?

Drives the null backend (an operation that costs nothing) open loop through the real worker loop and pool at
each rate, so each recorded latency (counted from the intended start, coordinated omission corrected) is the
pacer's wake-up error plus the loop's own cost. Reports P50/P99/P99.9/max of that error, idle and with two
CPU-bound processes beside it (--busy).

    python benchmarks/pacer.py                  # 50, 500 and 5,000 ops/s, idle then busy, 10 s each
    python benchmarks/pacer.py --seconds 30 --rates 50 500 5000 50000
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile

import _smoke

from bench.backends.base import BackendOptions
from bench.backends.null import NullBackend
from bench.load.calibrate import _data
from bench.load.pool import ThreadPool
from bench.load.task import PhaseTask
from bench.metrics import hdr


def measure(rate: float, seconds: float) -> dict:
    pool = ThreadPool(NullBackend(BackendOptions(), tempfile.gettempdir()), _data(dim=16), 1)
    task = PhaseTask(mode="search", trial=0, seed=1, k=10, ef_search=None, duration_s=seconds, operations=None,
                     target_rate=rate)
    results, _ = pool.run(task)
    h = hdr.merge(e for r in results for e in r.hist.values())
    st = hdr.stats(h)
    hdr.withhold(st)  # a percentile from too few samples is left out ("-"), as everywhere in bench
    late = sum(r.late for r in results) / max(1, sum(r.scheduled for r in results))
    return {"rate": rate, "n": st["count"], "p50": st["p50_us"], "p99": st["p99_us"], "p999": st["p999_us"],
            "max": st["max_us"], "late_share": late}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rates", type=float, nargs="+", default=[50, 500, 5000])
    ap.add_argument("--seconds", type=float, default=10.0)
    _smoke.add(ap, rates=[50.0, 500.0], seconds=0.5)
    args = _smoke.parse(ap)
    print("| machine | offered ops/s | operations | P50 us | P99 us | P99.9 us | max us | late > 1 ms |")
    print("|---|---|---|---|---|---|---|---|")
    for busy in (False, True):
        burners = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(2 if busy else 0)]
        try:
            for rate in args.rates:
                m = measure(rate, args.seconds)
                def us(v):
                    return "-" if v is None else f"{v:,.0f}"

                print(f"| {'busy (2 burners)' if busy else 'idle'} | {rate:,.0f} | {m['n']:,} | {us(m['p50'])} | "
                      f"{us(m['p99'])} | {us(m['p999'])} | {us(m['max'])} | {m['late_share']:.2%} |", flush=True)
        finally:
            for b in burners:
                b.kill()


if __name__ == "__main__":
    main()
