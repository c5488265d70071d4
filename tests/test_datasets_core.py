"""Dataset spec, synthetic generator, exact ground truth and its cache, batches, the wordnet set."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from pydantic import ValidationError

from bench import datasets
from bench.datasets import DatasetSpec, exact_topk, load
from bench.datasets import exact as exact_mod
from bench.datasets.synthetic import generate
from bench.datasets.wordnet import FIXTURE
from bench.errors import UserError


def brute(base: np.ndarray, queries: np.ndarray, k: int, metric: str, mask: np.ndarray | None = None) -> np.ndarray:
    """Reference: float64, full sort, ties to the lower id."""
    b, q = base.astype(np.float64), queries.astype(np.float64)
    if metric == "cosine":
        b = b / np.linalg.norm(b, axis=1, keepdims=True)
        q = q / np.linalg.norm(q, axis=1, keepdims=True)
    if metric == "l2":
        s = -((q[:, None, :] - b[None, :, :]) ** 2).sum(-1)
    else:
        s = q @ b.T
    if mask is not None:
        s[:, ~mask] = -np.inf
    return np.argsort(-s, axis=1, kind="stable")[:, :k]


# -- spec ----------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("field,value,words", [
    ("n", 0, "n must be a positive"), ("queries", -1, "queries must be a positive"),
    ("dim", 0, "dim must be a positive"), ("holdout", -5, "holdout must be 0 or more"),
    ("noise", -0.1, "noise must be 0 or more"), ("dim", 100_000, "larger than any engine"),
])
def test_spec_rejects_bad_counts_with_plain_words(field: str, value: object, words: str) -> None:
    with pytest.raises(ValidationError) as e:
        DatasetSpec(**{field: value})
    assert words in str(e.value)


def test_spec_path_rules() -> None:
    with pytest.raises(ValidationError, match="needs a path"):
        DatasetSpec(source="file")
    with pytest.raises(ValidationError, match="only read when source = 'file'"):
        DatasetSpec(source="synthetic", path="x.npy")
    with pytest.raises(ValidationError, match="Extra inputs"):
        DatasetSpec(sources="synthetic")
    assert DatasetSpec(source="file", path="x.npy").path == "x.npy"


def test_unknown_source_is_a_user_error(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="Unknown dataset source 'nope'.*synthetic"):
        load(DatasetSpec(source="nope"), tmp_path)


def test_catalog_source_not_fetched_says_how(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="bench datasets fetch sift-128-euclidean"):
        load(DatasetSpec(source="sift-128-euclidean"), tmp_path)


def test_default_cache_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("BENCH_CACHE_DIR", str(tmp_path / "c"))
    assert datasets.default_cache_dir() == tmp_path / "c"
    monkeypatch.delenv("BENCH_CACHE_DIR")
    assert datasets.default_cache_dir() == Path.home() / ".cache" / "bench"


# -- synthetic -----------------------------------------------------------------------------------------------

def test_synthetic_is_deterministic_normalised_and_queries_are_not_base_rows() -> None:
    spec = DatasetSpec(dim=64, seed=7)
    b1, q1, h1 = generate(spec, 3000, 100, 50)
    b2, q2, h2 = generate(spec, 3000, 100, 50)
    assert np.array_equal(b1, b2) and np.array_equal(q1, q2) and np.array_equal(h1, h2)
    assert b1.dtype == np.float32 and b1.shape == (3000, 64)
    np.testing.assert_allclose(np.linalg.norm(b1, axis=1), 1.0, atol=1e-5)
    # No query and no holdout row is a copy of a base row (nor close to one).
    nearest = (q1 @ b1.T).max(axis=1)
    assert nearest.max() < 0.999
    assert (h1 @ b1.T).max() < 0.999
    other, _, _ = generate(DatasetSpec(dim=64, seed=8), 3000, 100)
    assert not np.array_equal(other, b1)


def test_synthetic_prefix_property_and_l2_not_normalised() -> None:
    small, _, _ = generate(DatasetSpec(dim=32, metric="l2"), 1000, 10)
    big, _, _ = generate(DatasetSpec(dim=32, metric="l2"), 20_000, 10)
    assert np.array_equal(big[:1000], small)
    assert np.linalg.norm(small, axis=1).std() > 0.01


def test_synthetic_is_clustered_not_uniform() -> None:
    """Nearest neighbours are much closer than typical pairs (uniform noise in 768-d would show no such gap)."""
    b, q, _ = generate(DatasetSpec(), 4000, 100)
    s = q @ b.T
    assert np.median(s.max(axis=1)) > 0.2
    assert abs(np.median(s)) < 0.1


def test_synthetic_load_is_cached_on_disk_and_reused(tmp_path: Path) -> None:
    spec = DatasetSpec(n=3000, queries=50, holdout=20, dim=48)
    ds = load(spec, tmp_path, progress=False)
    assert isinstance(ds.base, np.memmap)
    assert ds.base.shape == (3000, 48) and ds.queries.shape == (50, 48) and ds.holdout.shape == (20, 48)
    folder = Path(ds.paths["folder"])
    mtime = (folder / "base.npy").stat().st_mtime_ns
    again = load(spec, tmp_path, progress=False)
    assert again.content_hash == ds.content_hash
    assert (folder / "base.npy").stat().st_mtime_ns == mtime
    b, q, h = generate(spec, 3000, 50, 20)
    assert np.array_equal(np.asarray(ds.base), b) and np.array_equal(ds.queries, q)
    assert np.array_equal(ds.holdout, h)
    other = load(spec.model_copy(update={"seed": 1}), tmp_path, progress=False)
    assert other.content_hash != ds.content_hash


def test_synthetic_regenerates_a_damaged_cache(tmp_path: Path) -> None:
    spec = DatasetSpec(n=1000, queries=10, dim=16)
    ds = load(spec, tmp_path, progress=False)
    base = Path(ds.paths["folder"]) / "base.npy"
    with open(base, "r+b") as f:
        f.truncate(base.stat().st_size - 100)
    again = load(spec, tmp_path, progress=False)
    assert again.content_hash == ds.content_hash
    assert np.array_equal(again.batches(1000).__next__()[1], generate(spec, 1000, 10)[0])


def test_content_hash_depends_on_metric_and_n(tmp_path: Path) -> None:
    a = load(DatasetSpec(n=500, queries=10, dim=8), tmp_path, progress=False)
    b = load(DatasetSpec(n=501, queries=10, dim=8), tmp_path, progress=False)
    c = load(DatasetSpec(n=500, queries=10, dim=8, metric="ip"), tmp_path, progress=False)
    assert len({a.content_hash, b.content_hash, c.content_hash}) == 3
    assert all(len(x.content_hash) == 16 for x in (a, b, c))


# -- batches -------------------------------------------------------------------------------------------------

def test_batches_stream_all_rows_in_order(tmp_path: Path) -> None:
    ds = load(DatasetSpec(n=2500, queries=5, dim=24), tmp_path, progress=False)
    seen = []
    for ids, vecs in ds.batches(1000):
        assert ids.dtype == np.int64 and vecs.dtype == np.float32 and vecs.flags.c_contiguous
        assert not isinstance(vecs, np.memmap)
        assert len(ids) == len(vecs) <= 1000
        seen.append((ids, vecs))
    assert [len(i) for i, _ in seen] == [1000, 1000, 500]
    assert np.array_equal(np.concatenate([i for i, _ in seen]), np.arange(2500))
    assert np.array_equal(np.concatenate([v for _, v in seen]), np.asarray(ds.base))


# -- exact ground truth --------------------------------------------------------------------------------------

@pytest.mark.parametrize("metric", ["cosine", "l2", "ip"])
def test_exact_topk_matches_float64_brute_force(metric: str, monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(3)
    base = (rng.standard_normal((3000, 40)) * rng.uniform(0.5, 3, (3000, 1))).astype(np.float32)
    queries = rng.standard_normal((37, 40)).astype(np.float32)
    monkeypatch.setattr(exact_mod, "_SCORE_BUDGET", 4 * 37 * 250)  # force many small blocks
    got = exact_topk(base, queries, 15, metric)
    assert got.shape == (37, 15) and got.dtype == np.int64
    assert np.array_equal(got, brute(base, queries, 15, metric))


def test_exact_topk_orders_ties_by_id_and_uses_the_mask() -> None:
    rng = np.random.default_rng(4)
    base = rng.standard_normal((500, 16)).astype(np.float32)
    base[100] = base[7]
    base[300] = base[7]  # three identical rows
    queries = np.stack([base[7], rng.standard_normal(16).astype(np.float32)])
    got = exact_topk(base, queries, 5, "l2")
    assert list(got[0, :3]) == [7, 100, 300]
    mask = np.zeros(500, dtype=bool)
    mask[::3] = True
    got = exact_topk(base, queries, 5, "ip", mask=mask)
    assert np.all(got % 3 == 0)
    assert np.array_equal(got, brute(base, queries, 5, "ip", mask))


def test_exact_topk_pads_when_fewer_rows_are_allowed() -> None:
    base = np.eye(6, dtype=np.float32)
    mask = np.array([False, True, False, True, False, False])
    got = exact_topk(base, base[:2], 4, "cosine", mask=mask)
    assert np.array_equal(got[:, 2:], -np.ones((2, 2)))
    assert set(got[0, :2]) == {1, 3}
    with pytest.raises(ValueError, match="mask"):
        exact_topk(base, base[:2], 2, "ip", mask=np.ones(5, dtype=bool))
    with pytest.raises(ValueError, match="metric"):
        exact_topk(base, base[:2], 2, "hamming")


def test_ground_truth_is_cached_and_a_larger_k_serves_a_smaller(tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    ds = load(DatasetSpec(n=2000, queries=30, dim=32, metric="l2"), tmp_path, progress=False)
    gt20 = ds.ground_truth(20, progress=False)
    assert np.array_equal(gt20, brute(np.asarray(ds.base), ds.queries, 20, "l2"))
    files = list((tmp_path / "groundtruth").glob(f"{ds.content_hash}-l2-k20.npy"))
    assert len(files) == 1

    def boom(*a: object, **k: object) -> None:
        raise AssertionError("ground truth recomputed although cached")

    monkeypatch.setattr("bench.datasets.dataset.exact_topk", boom)
    assert np.array_equal(ds.ground_truth(10, progress=False), gt20[:, :10])
    again = load(DatasetSpec(n=2000, queries=30, dim=32, metric="l2"), tmp_path, progress=False)
    assert np.array_equal(again.ground_truth(20, progress=False), gt20)
    with pytest.raises(AssertionError, match="recomputed"):
        ds.ground_truth(25, progress=False)


def test_ground_truth_rejects_k_larger_than_n(tmp_path: Path) -> None:
    ds = load(DatasetSpec(n=50, queries=5, dim=8), tmp_path, progress=False)
    with pytest.raises(UserError, match="larger than the dataset"):
        ds.ground_truth(51, progress=False)
    with pytest.raises(UserError, match="publishes no neighbours"):
        load(DatasetSpec(n=50, queries=5, dim=8, ground_truth="file"), tmp_path, progress=False)


# -- wordnet -------------------------------------------------------------------------------------------------

def test_wordnet_fixture_loads_with_aligned_texts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BENCH_WORDNET_DIR", str(FIXTURE))
    ds = load(DatasetSpec(source="wordnet-mpnet-768", n=4000, queries=200, holdout=0), tmp_path, progress=False)
    assert ds.base.shape == (4000, 768) and ds.base.dtype == np.float32
    assert ds.queries.shape == (200, 768) and ds.metric == "cosine"
    assert len(ds.texts) == 4000 and len(ds.query_texts) == 200
    raw = np.load(FIXTURE / "vectors.f16.npy")
    lines = (FIXTURE / "texts.txt").read_text(encoding="utf-8").splitlines()
    assert np.array_equal(ds.queries, raw[4000:].astype(np.float32))
    assert ds.texts[123] == lines[123] and ds.query_texts[0] == lines[4000]
    np.testing.assert_allclose(np.linalg.norm(ds.base, axis=1), 1.0, atol=2e-3)
    assert (FIXTURE / "vectors.f16.npy").stat().st_size + (FIXTURE / "texts.txt").stat().st_size < 8 << 20


def test_wordnet_too_many_rows_is_a_user_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BENCH_WORDNET_DIR", str(FIXTURE))
    with pytest.raises(UserError, match="4,000 base vectors but dataset.n"):
        load(DatasetSpec(source="wordnet-mpnet-768", n=4001, queries=10), tmp_path)
    with pytest.raises(UserError, match="200 queries"):
        load(DatasetSpec(source="wordnet-mpnet-768", n=100, queries=201), tmp_path)
    with pytest.raises(UserError, match="dimension 768 but dataset.dim = 512"):
        load(DatasetSpec(source="wordnet-mpnet-768", n=100, queries=10, dim=512), tmp_path)
    monkeypatch.setenv("BENCH_WORDNET_DIR", str(tmp_path))
    with pytest.raises(UserError, match="BENCH_WORDNET_DIR"):
        load(DatasetSpec(source="wordnet-mpnet-768", n=100, queries=10), tmp_path)
