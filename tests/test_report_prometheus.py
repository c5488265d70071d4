"""`bench run --prometheus-port`: live QPS and latency histograms are scraped on 127.0.0.1 while a real run
goes on, and the server is gone when the run ends."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import time
import urllib.error
import urllib.request

from analysis_helpers import BENCH, TINY

from bench.live import LiveExporter, buckets_from_hdr
from bench.metrics import hdr


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _scrape(port: int) -> str | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as r:
            return r.read().decode()
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return None


def _value(text: str, name: str, **labels: str) -> float | None:
    for line in text.splitlines():
        if line.startswith(name + "{") and all(f'{k}="{v}"' in line for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    return None


def test_metrics_are_scraped_during_a_run(tmp_path, cache_dir):
    port = _free_port()
    env = {**os.environ, "BENCH_CACHE_DIR": str(cache_dir)}
    # fake-slow at 1 ms per search, 12 trials of 150 searches: about 2 s of trials after the load
    cmd = [*BENCH, "run", "--backend", "fake-slow", "--workload", "ann-smoke", *TINY, "--set", "search.ef_search=[32]",
           "--set", "run.operations=150", "--set", "backend.latency_us=1000", "--trials", "12",
           "--prometheus-port", str(port)]
    proc = subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    text, running_when_scraped = None, False
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            got = _scrape(port)
            if got and _value(got, "bench_trial_qps", backend="fake-slow") is not None:
                trials_seen = _value(got, "bench_trials_total", backend="fake-slow", status="ok") or 0
                if trials_seen >= 2:
                    running_when_scraped = proc.poll() is None
                    text = got
                    break
            time.sleep(0.05)
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    assert text is not None and running_when_scraped, "no metrics were scraped while the run was going on"
    labels = {"backend": "fake-slow", "workload": "ann-smoke", "op": "search", "ef_search": "32"}
    qps = _value(text, "bench_trial_qps", **labels)
    assert qps is not None and 20 < qps < 1000  # 1 ms sleeps, one worker: never 1000/s
    p50 = _value(text, "bench_trial_latency_seconds", **labels, quantile="0.5")
    assert p50 is not None and 0.001 <= p50 < 0.05
    count = _value(text, "bench_latency_seconds_count", **labels)
    ok_ops = _value(text, "bench_operations_total", **labels, status="ok")
    trials = _value(text, "bench_trials_total", backend="fake-slow", status="ok")
    assert count == ok_ops == 150 * trials
    assert _value(text, "bench_latency_seconds_bucket", **labels, le="0.0005") == 0  # nothing under 0.5 ms
    assert _value(text, "bench_latency_seconds_bucket", **labels, le="+Inf") == count
    total_s = _value(text, "bench_latency_seconds_sum", **labels)
    assert 0.001 * count <= total_s < 0.05 * count
    assert re.search(r"# TYPE bench_latency_seconds histogram", text)
    assert _scrape(port) is None  # stopped with the run


def test_port_in_use_is_a_user_error(tmp_path, cache_dir):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        p = subprocess.run([*BENCH, "run", "--backend", "null", *TINY, "--prometheus-port", str(port)], cwd=tmp_path,
                           capture_output=True, text=True, timeout=60,
                           env={**os.environ, "BENCH_CACHE_DIR": str(cache_dir)})
    assert p.returncode == 2 and "Cannot listen on 127.0.0.1" in p.stderr and "Traceback" not in p.stderr


def test_buckets_from_hdr_are_cumulative_seconds():
    h = hdr.new_histogram()
    for v in [30] * 5 + [300] * 3 + [3000] * 2:  # microseconds
        h.record_value(v)
    b = dict(buckets_from_hdr(h, [50e-6, 500e-6, 5e-3]))
    assert b == {"5e-05": 5.0, "0.0005": 8.0, "0.005": 10.0, "+Inf": 10.0}


def test_exporter_serves_what_trials_report():
    port = _free_port()
    h = hdr.new_histogram()
    for v in (100, 200, 300):
        h.record_value(v)
    row = {"backend": "b", "workload": "w", "op": "search", "ef_search": 8, "qps": 1234.0, "recall": 0.9,
           "p50_us": 200.0, "p90_us": 300.0, "p99_us": 300.0, "p999_us": 300.0, "count": 3, "errors": 1,
           "status": "ok", "hdr": hdr.encode(h)}
    with LiveExporter(port) as live:
        live.trial_done([row])
        live.trial_done([row])
        text = _scrape(port)
    assert text is not None
    assert _value(text, "bench_trial_qps", backend="b", ef_search="8") == 1234.0
    assert _value(text, "bench_trial_recall", backend="b") == 0.9
    assert _value(text, "bench_operations_total", backend="b", status="error") == 2
    assert _value(text, "bench_latency_seconds_count", backend="b") == 6
    assert _value(text, "bench_trials_total", backend="b", status="ok") == 2
    assert _scrape(port) is None
