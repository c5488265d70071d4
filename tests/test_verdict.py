"""The verdict (bench.analysis.verdict) on constructed results whose frontiers are known."""

from __future__ import annotations

import pandas as pd
import pytest

from bench.analysis import verdict
from bench.errors import UserError


def row(backend: str, ef: int, qps: float, recall: float, spread: float = 0.02, p99: float = 500.0,
        op: str = "search", rate: float | None = None, table: str = "t", run: str | None = None) -> dict:
    return dict(table=table, workload="w", backend=backend, run_id=run or f"run-{backend}", op=op, ef_search=ef,
                concurrency=1, target_rate=rate, k=10, qps=qps, qps_lo=qps * (1 - spread), qps_hi=qps * (1 + spread),
                p99_us=p99, p99_us_lo=p99 * (1 - spread), p99_us_hi=p99 * (1 + spread), recall=recall,
                index_kind="hnsw", index_m=16, index_ef_construction=100, source_tool=None)


def lines(rows: list[dict], levels=verdict.LEVELS) -> list[str]:
    return verdict.lines(verdict.verdicts(pd.DataFrame(rows), {"t": "w on data"}, levels))


def test_ten_percent_faster_at_equal_recall_reads_plus_ten_percent_beyond_noise():
    rows = [row("a", 32, 1100, 0.93), row("a", 64, 800, 0.97), row("b", 32, 1000, 0.93), row("b", 64, 727.3, 0.97)]
    out = lines(rows, [0.9])
    assert out[0] == "w on data, c=1"
    assert out[1] == ("  recall >= 0.90: a leads with 1,100 QPS, P99 500 us; +10% over b (1,000 QPS, P99 500 us), "
                      "beyond noise")


def test_overlapping_spreads_read_within_noise():
    rows = [row("a", 32, 1030, 0.93, spread=0.05), row("b", 32, 1000, 0.93, spread=0.05)]
    (v,) = verdict.verdicts(pd.DataFrame(rows), {}, [0.9])
    assert v.leader == "a" and v.entries[1].noise == "within noise" and "+3% over b" in v.text()


def test_an_engine_that_never_reaches_the_level_says_so():
    rows = [row("a", 32, 1100, 0.95), row("a", 64, 800, 0.985), row("b", 32, 900, 0.96), row("b", 64, 500, 0.995)]
    out = lines(rows, [0.99])
    assert "b leads with ~" in out[1] and "a does not reach 0.99 (best recall 0.9850)" in out[1]
    out = lines([row("a", 32, 1100, 0.95)], [0.99])
    assert "no engine reaches it (a best recall 0.9500)" in out[1]


def test_the_best_qps_is_interpolated_between_the_frontier_points_that_straddle_the_level():
    rows = [row("a", 32, 1000, 0.90), row("a", 64, 600, 0.98), row("a", 128, 300, 0.99)]
    (v,) = verdict.verdicts(pd.DataFrame(rows), {}, [0.95])
    p = v.entries[0].point
    assert p.interpolated and p.qps == pytest.approx(1000 + (600 - 1000) * (0.05 / 0.08))
    assert p.at == "between ef=32 and ef=64"


def test_a_dominated_point_is_not_on_the_frontier():
    rows = [row("a", 32, 500, 0.95), row("a", 64, 900, 0.96), row("a", 128, 300, 0.99)]
    front = verdict.frontier(rows)
    assert [r["ef_search"] for r in front] == [64, 128]
    (v,) = verdict.verdicts(pd.DataFrame(rows), {}, [0.90])
    assert v.entries[0].point.qps == 900 and not v.entries[0].point.interpolated


def test_levels_with_the_same_answer_share_a_line():
    rows = [row("a", 32, 1100, 0.995), row("b", 32, 1000, 0.995)]
    out = lines(rows)
    assert len(out) == 2 and out[1].startswith("  recall >= 0.90, 0.95, 0.99: a leads")


def test_without_recall_throughput_and_p99_per_operation_side_by_side():
    rows = [row("a", 0, 2000, None, op="read"), row("b", 0, 1000, None, op="read"),
            row("a", 0, 500, None, op="update"), row("b", 0, 600, None, op="update")]
    out = lines(rows)
    assert "  read: a leads with 2,000 QPS, P99 500 us; 2.0x the QPS of b (1,000 QPS, P99 500 us), beyond noise" in out
    assert any(t.startswith("  update: b leads") for t in out)


def test_open_loop_the_lower_p99_leads():
    rows = [row("a", 32, 100, 0.95, p99=800, rate=100.0), row("b", 32, 100, 0.95, p99=400, rate=100.0)]
    (v,) = verdict.verdicts(pd.DataFrame(rows), {}, [0.9])
    assert v.leader == "b" and "50% lower P99 than a" in v.text().replace("+50%", "50%")


def test_two_runs_of_one_engine_are_told_apart():
    rows = [row("a", 32, 1100, 0.95, run="20260101-aaaaaa"), row("a", 32, 1000, 0.95, run="20260102-bbbbbb")]
    (v,) = verdict.verdicts(pd.DataFrame(rows), {}, [0.9])
    assert {e.series for e in v.entries} == {"a (run aaaaaa)", "a (run bbbbbb)"}


def test_recall_levels_are_checked():
    assert verdict.parse_levels("0.9, 0.99") == [0.9, 0.99]
    for bad in ("x", "0", "1.5", ","):
        with pytest.raises(UserError):
            verdict.parse_levels(bad)
