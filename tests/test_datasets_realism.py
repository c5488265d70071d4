"""The synthetic generator is about as hard for HNSW as real embeddings, and uniform noise is not.

faiss IndexHNSWFlat (M=16, efConstruction=200, inner product on L2-normalised vectors), 4,000 base vectors and
200 queries, recall@10 at ef_search=16 (and 32) against exact inner product.

Measured while choosing the defaults: real (the wordnet-mpnet-768 fixture) 0.938 / 0.985; synthetic 0.95 / 0.98
for seeds 42 and 7; uniform random 0.25 / 0.39. Tolerance 0.05: 200 queries x 10 neighbours give a sampling
error near 0.005 at this recall and seeds move the synthetic figure by about 0.01, so 0.05 leaves room for those
while still telling apart data that is much easier (tight isotropic clusters, ~0.99+) or much harder (uniform
noise, low-rank Gaussians: 0.25-0.65).
"""

from __future__ import annotations

import numpy as np
import pytest

from bench.datasets import DatasetSpec, exact_topk
from bench.datasets.synthetic import generate
from bench.datasets.wordnet import FIXTURE, QUERY_ROWS

faiss = pytest.importorskip("faiss")

N, K, TOLERANCE = 4000, 10, 0.05


def hnsw_recall(base: np.ndarray, queries: np.ndarray, efs: tuple[int, ...]) -> list[float]:
    base = np.ascontiguousarray(base, dtype=np.float32)
    queries = np.ascontiguousarray(queries, dtype=np.float32)
    gt = exact_topk(base, queries, K, "ip")
    faiss.omp_set_num_threads(1)  # a deterministic build
    index = faiss.IndexHNSWFlat(base.shape[1], 16, faiss.METRIC_INNER_PRODUCT)
    index.hnsw.efConstruction = 200
    index.add(base)
    out = []
    for ef in efs:
        index.hnsw.efSearch = ef
        _, found = index.search(queries, K)
        out.append(float(np.mean([len(set(f) & set(g)) / K for f, g in zip(found, gt, strict=True)])))
    return out


@pytest.fixture(scope="module")
def real_recall() -> list[float]:
    vectors = np.load(FIXTURE / "vectors.f16.npy").astype(np.float32)
    assert len(vectors) == N + QUERY_ROWS
    return hnsw_recall(vectors[:N], vectors[N:], (16, 32))


@pytest.mark.parametrize("seed", [42, 7])
def test_synthetic_recall_sits_near_the_real_sets(real_recall: list[float], seed: int) -> None:
    base, queries, _ = generate(DatasetSpec(seed=seed), N, QUERY_ROWS)
    synthetic = hnsw_recall(base, queries, (16, 32))
    assert 0.85 < real_recall[0] < 0.99  # the reference itself is where the data README says
    for ef, s, r in zip((16, 32), synthetic, real_recall, strict=True):
        assert abs(s - r) <= TOLERANCE, f"ef={ef}: synthetic recall {s:.3f} vs real {r:.3f}"


def test_uniform_noise_would_not_pass(real_recall: list[float]) -> None:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((N + QUERY_ROWS, 768)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    uniform = hnsw_recall(x[:N], x[N:], (16,))[0]
    assert abs(uniform - real_recall[0]) > TOLERANCE
    assert uniform < 0.5
