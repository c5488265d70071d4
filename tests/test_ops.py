"""Operation streams (mix, determinism, per-worker key spaces) and the [ycsb] spec's validation."""

from __future__ import annotations

import numpy as np
import pytest
from pydantic import ValidationError

from bench.ops import OpBatch, OpKind, OpStream, YcsbSpec
from bench.ops.choosers import zeta

A = YcsbSpec(read_proportion=0.5, update_proportion=0.5)
D = YcsbSpec(read_proportion=0.95, insert_proportion=0.05, request_distribution="latest")
E = YcsbSpec(scan_proportion=0.95, insert_proportion=0.05, max_scan_length=100)
MIXED = YcsbSpec(read_proportion=0.3, update_proportion=0.2, insert_proportion=0.1, scan_proportion=0.15,
                 read_modify_write_proportion=0.15, search_proportion=0.1, request_distribution="hotspot")
KEYED = [OpKind.READ, OpKind.UPDATE, OpKind.SCAN, OpKind.RMW]


def read_all(stream: OpStream, sizes: list[int]) -> OpBatch:
    batches = [stream.next_batch(s) for s in sizes]
    return OpBatch(*(np.concatenate([getattr(b, f) for b in batches]) for f in ("kinds", "keys", "scan_lengths")))


def assert_same(a: OpBatch, b: OpBatch) -> None:
    assert np.array_equal(a.kinds, b.kinds)
    assert np.array_equal(a.keys, b.keys)
    assert np.array_equal(a.scan_lengths, b.scan_lengths)


def test_labels_and_dtypes() -> None:
    assert [k.label for k in OpKind] == ["read", "update", "insert", "scan", "read-modify-write", "search",
                                        "filtered-search"]
    b = OpStream(MIXED, 1000, seed=1).next_batch(500)
    assert (b.kinds.dtype, b.keys.dtype, b.scan_lengths.dtype) == (np.uint8, np.int64, np.int32)
    assert len(b) == 500 and sum(b.counts().values()) == 500
    assert len(OpStream(A, 10, seed=1).next_batch(0)) == 0


@pytest.mark.parametrize("spec", [A, D, E, MIXED, YcsbSpec(read_proportion=1.0),
                                  YcsbSpec(search_proportion=0.5, update_proportion=0.5,
                                           request_distribution="uniform")])
def test_op_mix_matches_proportions(spec: YcsbSpec) -> None:
    n = 100_000
    b = read_all(OpStream(spec, 5000, seed=3), [1024] * 97 + [n - 1024 * 97])
    share = np.bincount(b.kinds, minlength=len(OpKind)) / n
    expected = np.array(spec.proportions())
    assert np.all(np.abs(share - expected) < 0.01), (share, expected)
    assert np.all(share[expected == 0] == 0)  # a kind with proportion 0 never appears


def test_mix_check_can_fail() -> None:
    b = OpStream(A, 5000, seed=3).next_batch(100_000)
    share = np.bincount(b.kinds, minlength=len(OpKind)) / 100_000
    other = np.array(YcsbSpec(read_proportion=0.52, update_proportion=0.48).proportions())
    assert not np.all(np.abs(share - other) < 0.01)


@pytest.mark.parametrize("spec", [A, D, E, MIXED])
def test_same_seed_same_stream_whatever_the_batches(spec: YcsbSpec) -> None:
    whole = OpStream(spec, 2000, seed=42, worker=1, workers=3, query_count=50).next_batch(20_000)
    again = OpStream(spec, 2000, seed=42, worker=1, workers=3, query_count=50).next_batch(20_000)
    assert_same(whole, again)
    pieces = read_all(OpStream(spec, 2000, seed=42, worker=1, workers=3, query_count=50),
                      [1, 7, 1024, 3, 500, 0, 18_465])
    assert_same(whole, pieces)


def test_workers_and_seeds_give_different_streams() -> None:
    s0 = OpStream(MIXED, 2000, seed=42, worker=0, workers=2).next_batch(5000)
    s1 = OpStream(MIXED, 2000, seed=42, worker=1, workers=2).next_batch(5000)
    other_seed = OpStream(MIXED, 2000, seed=43, worker=0, workers=2).next_batch(5000)
    for other in (s1, other_seed):
        assert np.mean(s0.kinds == other.kinds) < 0.5
        assert np.mean(s0.keys == other.keys) < 0.1
    # A worker's operations and keys do not depend on the number of workers; only its insert ids do.
    alone = OpStream(A, 2000, seed=42, worker=0, workers=1).next_batch(5000)
    assert_same(alone, OpStream(A, 2000, seed=42, worker=0, workers=4).next_batch(5000))


def check_worker_keys(b: OpBatch, record_count: int, worker: int, workers: int) -> None:
    """Inserts take this worker's ids in order; keyed ops target initial records or this worker's earlier inserts."""
    is_insert = b.kinds == OpKind.INSERT
    n_ins = int(is_insert.sum())
    assert np.array_equal(b.keys[is_insert], record_count + worker + np.arange(n_ins) * workers)
    inserts_before = np.cumsum(is_insert) - is_insert
    keyed = np.isin(b.kinds, KEYED)
    keys, before = b.keys[keyed], inserts_before[keyed]
    assert keys.min() >= 0
    new = keys >= record_count
    offset = keys[new] - record_count - worker
    assert np.all(offset % workers == 0), "a key inserted by another worker was targeted"
    assert np.all(offset // workers < before[new]), "a key was targeted before its insert"


def test_insert_keys_unique_across_workers() -> None:
    record_count, workers = 1000, 4
    inserted = []
    for w in range(workers):
        stream = OpStream(D, record_count, seed=5, worker=w, workers=workers)
        b = read_all(stream, [1000] * 20)
        check_worker_keys(b, record_count, w, workers)
        ins = b.keys[b.kinds == OpKind.INSERT]
        assert len(ins) == stream.inserted > 800 and stream.item_count == record_count + len(ins)
        inserted.append(ins)
    everything = np.concatenate(inserted)
    assert len(np.unique(everything)) == len(everything)
    assert everything.min() >= record_count


def test_reads_reach_own_inserts_in_the_same_batch() -> None:
    b = OpStream(D, 100, seed=6, worker=2, workers=3).next_batch(5000)
    check_worker_keys(b, 100, 2, 3)
    is_insert = b.kinds == OpKind.INSERT
    reads = (b.kinds == OpKind.READ) & (np.arange(5000) > np.argmax(is_insert))
    # After its first insert, a worker's latest reads go mostly to its own inserts, within the same batch.
    assert np.isin(b.keys[reads], b.keys[is_insert]).mean() > 0.8


def test_latest_stream_favours_recent_inserts() -> None:
    record_count, worker, workers = 1000, 1, 2
    stream = OpStream(D, record_count, seed=7, worker=worker, workers=workers)
    read_all(stream, [1000] * 20)  # about 1000 inserts so far
    inserted_before = stream.inserted
    b = stream.next_batch(5000)
    is_insert = b.kinds == OpKind.INSERT
    reads = b.kinds == OpKind.READ
    keys = b.keys[reads]
    own = keys >= record_count
    assert own.mean() > 0.8
    # Age of each read's record: 0 for this worker's newest insert at the time of the read.
    known = inserted_before + (np.cumsum(is_insert) - is_insert)[reads]
    age = (known - 1 - (keys - record_count - worker) // workers)[own]
    assert age.min() == 0 and np.bincount(age).argmax() == 0
    count = record_count + inserted_before + 1
    assert (age == 0).sum() / reads.sum() == pytest.approx(1 / zeta(count, 0.99), abs=0.02)
    assert (age < 50).mean() > 0.45


def test_read_only_latest_reads_newest_initial_record() -> None:
    spec = YcsbSpec(read_proportion=1.0, request_distribution="latest")
    b = OpStream(spec, 500, seed=8).next_batch(50_000)
    counts = np.bincount(b.keys, minlength=500)
    assert counts.argmax() == 499
    assert counts[499] / 50_000 == pytest.approx(1 / zeta(500, 0.99), abs=0.01)


def test_scan_lengths() -> None:
    b = OpStream(E, 1000, seed=9).next_batch(100_000)
    scans = b.kinds == OpKind.SCAN
    lengths = b.scan_lengths[scans]
    assert np.all(b.scan_lengths[~scans] == 0)
    assert lengths.min() == 1 and lengths.max() == 100
    assert lengths.mean() == pytest.approx(50.5, abs=0.5)
    counts = np.bincount(lengths, minlength=101)[1:]
    assert counts.min() > 0.7 * counts.mean()  # uniform over 1..100

    zipf_spec = YcsbSpec(scan_proportion=1.0, max_scan_length=20, scan_length_distribution="zipfian")
    zl = OpStream(zipf_spec, 1000, seed=9).next_batch(100_000).scan_lengths
    zc = np.bincount(zl, minlength=21)[1:]
    assert zl.min() >= 1 and zl.max() <= 20 and zc.argmax() == 0
    assert zc[0] / 100_000 == pytest.approx(1 / zeta(20, 0.99), abs=0.01)


def test_search_query_indexes() -> None:
    spec = YcsbSpec(search_proportion=0.5, update_proportion=0.5, request_distribution="uniform")
    with_queries = OpStream(spec, 1000, seed=10, query_count=200).next_batch(20_000)
    q = with_queries.keys[with_queries.kinds == OpKind.SEARCH]
    assert q.min() == 0 and q.max() == 199
    assert np.bincount(q, minlength=200).min() > 0
    without = OpStream(spec, 1000, seed=10).next_batch(1000)
    assert np.all(without.keys[without.kinds == OpKind.SEARCH] == -1)
    assert np.all(without.keys[without.kinds == OpKind.UPDATE] >= 0)


def test_stream_arguments_checked() -> None:
    with pytest.raises(ValueError):
        OpStream(A, 0, seed=1)
    with pytest.raises(ValueError):
        OpStream(A, 10, seed=1, worker=2, workers=2)
    with pytest.raises(ValueError):
        OpStream(A, 10, seed=1, query_count=0)


# -- spec validation -----------------------------------------------------------------------------------------

def test_proportions_must_add_up() -> None:
    with pytest.raises(ValidationError) as e:
        YcsbSpec(read_proportion=0.5, update_proportion=0.4)
    msg = str(e.value)
    assert "add up to 0.9" in msg and "read_proportion = 0.5" in msg and "update_proportion = 0.4" in msg
    with pytest.raises(ValidationError, match="every proportion is 0"):
        YcsbSpec()
    with pytest.raises(ValidationError, match="add up to 1.1"):
        YcsbSpec(read_proportion=0.6, insert_proportion=0.5)
    assert YcsbSpec(read_proportion=0.1, update_proportion=0.2, scan_proportion=0.7).scan_proportion == 0.7


@pytest.mark.parametrize("bad", [
    {"read_proportion": 1.2, "update_proportion": -0.2},
    {"read_proportion": 1.0, "colour": "blue"},
    {"read_proportion": 1.0, "request_distribution": "gaussian"},
    {"read_proportion": 1.0, "hotspot_data_fraction": 0.0},
    {"read_proportion": 1.0, "hotspot_opn_fraction": 1.0},
    {"read_proportion": 1.0, "max_scan_length": 0},
    {"read_proportion": 1.0, "zipfian_constant": 1.0},
    {"read_proportion": 1.0, "scan_length_distribution": "latest"},
])
def test_spec_rejects(bad: dict) -> None:
    with pytest.raises(ValidationError) as e:
        YcsbSpec(**bad)
    if "colour" in bad:
        assert e.value.errors()[0]["type"] == "extra_forbidden"
