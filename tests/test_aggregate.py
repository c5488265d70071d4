
import pytest

from bench.metrics import hdr
from bench.results.aggregate import summarize, trimmed
from bench.results.schema import summary_schema, trials_schema


def test_trimmed_drops_one_lowest_and_one_highest():
    t = trimmed([10, 1, 5, 7, 100])
    assert (t.median, t.lo, t.hi, t.kept) == (7.0, 5.0, 10.0, 3)


def test_trimmed_ties_drop_only_one_copy_of_each_extreme():
    t = trimmed([3, 3, 3, 9, 9])
    # kept: 3, 3, 9 -> median 3
    assert (t.median, t.lo, t.hi, t.kept) == (3.0, 3.0, 9.0, 3)
    t = trimmed([4, 4, 4, 4, 4])
    assert (t.median, t.lo, t.hi, t.kept) == (4.0, 4.0, 4.0, 3)


@pytest.mark.parametrize("values,expected", [([], (None, None, None, 0)), ([2.0], (2.0, 2.0, 2.0, 1)),
                                              ([1.0, 3.0], (2.0, 1.0, 3.0, 2))])
def test_trimmed_fewer_than_three_trials_keeps_all(values, expected):
    t = trimmed(values)
    assert (t.median, t.lo, t.hi, t.kept) == expected


def test_trimmed_ignores_missing_and_nan():
    t = trimmed([None, float("nan"), 1, 2, 3])
    assert (t.median, t.kept) == (2.0, 1)


def _row(trial, qps, status="ok", lat=100):
    h = hdr.new_histogram()
    for _ in range(10):
        h.record_value(lat)
    return {"run_id": "r", "workload": "w", "workload_kind": "ann", "backend": "b", "phase": "search", "op": "search",
            "ef_search": 64, "k": 10, "concurrency": 1, "target_rate": None, "arrival": None, "trial": trial,
            "status": status, "qps": qps, "p99_us": float(lat), "count": 10, "errors": 0, "hdr": hdr.encode(h)}


def test_summarize_excludes_failed_trials_and_merges_histograms():
    rows = [_row(0, 100), _row(1, 200), _row(2, 300), _row(3, 400), _row(4, 5000, status="failed", lat=9000)]
    (s,) = summarize(rows)
    assert s["n_trials"] == 5 and s["n_ok"] == 4 and s["n_kept"] == 2
    # the headline is the trimmed median; the spread is of every ok trial, the dropped extremes included
    assert s["qps"] == 250.0 and (s["qps_lo"], s["qps_hi"]) == (100.0, 400.0)
    merged = hdr.decode(s["hdr"])
    assert merged.get_total_count() == 40  # only the four ok trials
    assert merged.get_max_value() < 200
    assert s["count"] == 50


def test_summarize_groups_by_configuration():
    a = [_row(t, 100 + t) for t in range(3)]
    b = [dict(_row(t, 10 + t), ef_search=128) for t in range(3)]
    out = {s["ef_search"]: s for s in summarize(a + b)}
    assert out[64]["qps"] == 101.0 and out[128]["qps"] == 11.0
    # latency comes from the merged histogram: 30 samples support a P50, not a P90 or P99 (withheld and named)
    assert out[64]["p50_us"] == 100.0 and out[64]["p99_us"] is None
    assert out[64]["percentiles_withheld"] == "p90_us,p99_us,p999_us"


def test_every_trials_and_summary_column_carries_a_description():
    """Each parquet field says in the schema metadata what it holds (docs/results.md: 'Each parquet field carries its
    description'); a column added without one fails here, naming it."""
    for schema in (trials_schema(), summary_schema()):
        bare = [f.name for f in schema if not (f.metadata or {}).get(b"description", b"").strip()]
        assert not bare, f"columns without a description: {bare}"
