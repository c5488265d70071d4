import numpy as np

from bench.metrics import hdr


def _hist(values):
    h = hdr.new_histogram()
    for v in values:
        h.record_value(int(v))
    return h


def test_merging_encoded_histograms_equals_one_histogram_of_all_values():
    rng = np.random.default_rng(3)
    a = rng.lognormal(5, 1, 20_000).astype(int) + 1
    b = rng.lognormal(7, 0.5, 5_000).astype(int) + 1
    merged = hdr.merge([hdr.encode(_hist(a)), hdr.encode(_hist(b))])
    whole = _hist(np.concatenate([a, b]))
    assert merged.get_total_count() == 25_000
    for p in (50, 90, 99, 99.9):
        assert merged.get_value_at_percentile(p) == whole.get_value_at_percentile(p)
    # and 3 significant digits against the exact percentile of the raw values
    exact = np.percentile(np.concatenate([a, b]), 99)
    assert abs(merged.get_value_at_percentile(99) - exact) / exact < 0.01


def test_stats_of_empty_histogram_are_none_and_of_known_values_exact():
    assert hdr.stats(hdr.new_histogram())["p50_us"] is None
    st = hdr.stats(_hist(range(1, 1001)))
    assert st["count"] == 1000 and st["p50_us"] == 500 and st["max_us"] == 1000 and st["p999_us"] == 999


def test_out_of_range_values_are_counted_not_dropped():
    r = hdr.Recorder()
    h = r.histogram("read")
    r.record(h, 0)
    r.record(h, hdr.HIGHEST_US * 10)
    assert h.get_total_count() == 2
    assert r.out_of_range == 1


def test_clear_empties_a_histogram_like_a_new_one():
    h = hdr.new_histogram()
    for v in (1, 5, 900, 12_345, 3_000_000):
        h.record_value(v)
    hdr.clear(h)
    fresh = hdr.new_histogram()
    assert hdr.encode(h) == hdr.encode(fresh) and h.get_total_count() == 0
    assert (h.get_min_value(), h.get_max_value()) == (fresh.get_min_value(), fresh.get_max_value())
    h.record_value(700)
    h.record_value(40)
    st = hdr.stats(h)
    assert st["count"] == 2 and st["min_us"] == 40 and st["max_us"] == 700
