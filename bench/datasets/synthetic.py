"""The synthetic generator: clustered vectors with the difficulty of real embeddings, written to disk in blocks.

Uniform noise is far harder for graph indexes than real data (HNSW recall@10 at ef=16 of 0.06 where real
768-d sentence embeddings give 0.94), and plain Gaussian clusters are far easier when each cluster holds few
vectors. This model is a two-level mixture, so that its difficulty changes little with n:

    x = mean + subcentre[cluster, sub] + B_cluster @ (local_spread * s * z) + noise * e / sqrt(dim)

- `clusters` cluster centres lie in a random `center_rank`-dim subspace (so clusters neighbour each other,
  as topics do), with norm about `center_spread`; `mean` is a shared direction of norm `mean_offset`
  (real embeddings are not centred);
- each cluster has its own random `cluster_rank`-dim orthonormal basis B, with a decaying spectrum
  s_j ~ j^-1/2 (normalised); its `subclusters` sub-topic centres are spread by `subcluster_spread` in it;
- each vector is a sub-topic centre, plus a `local_spread` Gaussian in the same subspace, plus isotropic noise;
- for cosine the rows are L2-normalised.

With the defaults, measured with faiss HNSW (M=16, efConstruction=200, inner product), recall@10 at
ef_search 16 / 32 / 64 is about 0.95 / 0.98 / 0.99 at 4,000 vectors and 0.96 / 0.99 / 0.99 at 20,000, where
the wordnet-mpnet-768 set gives 0.94 / 0.985 / 0.998 at both sizes (tests/test_datasets_realism.py checks it).

Every row depends only on (seed, stream, block): base rows, queries and holdout rows come from separate
streams, so queries are never copies of base rows and the first n rows of a larger set equal a smaller set.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bench.datasets import _progress
from bench.datasets._io import ensure_dir, key_of, new_hasher, npy_rows, write_npy_blocks
from bench.datasets.rows import FileRows
from bench.datasets.spec import DatasetSpec
from bench.errors import UserError
from bench.units import format_bytes

GENERATOR_VERSION = 1
BLOCK = 8192  # rows per generated block; part of the definition of the data (do not change lightly)
STREAM_MODEL, STREAM_BASE, STREAM_QUERIES, STREAM_HOLDOUT = 0, 1, 2, 3
_MODEL_BYTES_LIMIT = 2 << 30


@dataclass
class Model:
    mean: np.ndarray  # (dim,)
    bases: np.ndarray  # (clusters, rank, dim), orthonormal rows
    subs: np.ndarray  # (clusters, subclusters, dim): mean + sub-topic centres
    sigma: np.ndarray  # (rank,) local spread per basis direction
    noise_scale: float
    normalise: bool


def _orthonormal_rows(rng: np.random.Generator, rank: int, dim: int) -> np.ndarray:
    q, _ = np.linalg.qr(rng.standard_normal((dim, rank)))
    return q.T


def build_model(spec: DatasetSpec) -> Model:
    dim = spec.dim
    rank, crank = min(spec.cluster_rank, dim), min(spec.center_rank, dim)
    C, S = spec.clusters, spec.subclusters
    size = 4 * C * (rank + S) * dim
    if size > _MODEL_BYTES_LIMIT:
        raise UserError(f"The synthetic generator would need {format_bytes(size)} for {C} clusters x "
                        f"({rank} basis + {S} sub-topic) vectors of dimension {dim}",
                        "lower dataset.clusters, dataset.subclusters or dataset.cluster_rank")
    rng = np.random.default_rng([spec.seed, STREAM_MODEL])
    mean = rng.standard_normal(dim)
    mean *= spec.mean_offset / max(np.linalg.norm(mean), 1e-12)
    centres = rng.standard_normal((C, crank)) @ _orthonormal_rows(rng, crank, dim)
    centres *= spec.center_spread / math.sqrt(crank)
    bases = np.stack([_orthonormal_rows(rng, rank, dim) for _ in range(C)]).astype(np.float32)
    s = np.arange(1, rank + 1, dtype=np.float64) ** -0.5
    s /= np.linalg.norm(s)
    offsets = (rng.standard_normal((C, S, rank)) * (s * spec.subcluster_spread)).astype(np.float32)
    subs = np.einsum("csr,crd->csd", offsets, bases) + (centres + mean)[:, None, :].astype(np.float32)
    return Model(mean=mean.astype(np.float32), bases=bases, subs=subs.astype(np.float32),
                 sigma=(s * spec.local_spread).astype(np.float32), noise_scale=spec.noise / math.sqrt(dim),
                 normalise=spec.metric == "cosine")


def generate_block(model: Model, seed: int, stream: int, block: int) -> np.ndarray:
    """The `block`-th block of BLOCK rows of one stream, float32 (BLOCK, dim)."""
    rng = np.random.default_rng([seed, stream, block])
    C, S, dim = model.subs.shape
    rank = model.bases.shape[1]
    lab = rng.integers(0, C, size=BLOCK)
    sub = rng.integers(0, S, size=BLOCK)
    z = rng.standard_normal((BLOCK, rank), dtype=np.float32) * model.sigma
    x = model.subs[lab, sub]
    order = np.argsort(lab, kind="stable")
    bounds = np.searchsorted(lab[order], np.arange(C + 1))
    for c in range(C):
        a, b = bounds[c], bounds[c + 1]
        if a < b:
            rows = order[a:b]
            x[rows] += z[rows] @ model.bases[c]
    noise = rng.standard_normal((BLOCK, dim), dtype=np.float32)
    noise *= np.float32(model.noise_scale)
    x += noise
    if model.normalise:
        norms = np.linalg.norm(x, axis=1, keepdims=True)
        norms[norms == 0] = 1
        x /= norms
    return x


def stream_rows(model: Model, seed: int, stream: int, count: int) -> Iterator[np.ndarray]:
    """`count` rows of a stream, in blocks of at most BLOCK rows."""
    for block in range(math.ceil(count / BLOCK)):
        x = generate_block(model, seed, stream, block)
        yield x[: min(BLOCK, count - block * BLOCK)]


def generate(spec: DatasetSpec, n: int, queries: int, holdout: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The whole set in memory (for small sets and tests): base, queries, holdout."""
    model = build_model(spec)

    def take(stream: int, count: int) -> np.ndarray:
        parts = list(stream_rows(model, spec.seed, stream, count))
        return np.concatenate(parts) if parts else np.empty((0, spec.dim), dtype=np.float32)

    return take(STREAM_BASE, n), take(STREAM_QUERIES, queries), take(STREAM_HOLDOUT, holdout)


@dataclass
class SyntheticFiles:
    folder: Path
    base: FileRows
    queries: np.ndarray
    holdout: FileRows | None
    content_hash: str
    meta: dict[str, object]


def cache_key(spec: DatasetSpec) -> str:
    return key_of({"generator": GENERATOR_VERSION, "block": BLOCK, **spec.generator_params(),
                   "n": spec.n, "queries": spec.queries, "holdout": spec.holdout})


def _load_existing(folder: Path, spec: DatasetSpec) -> SyntheticFiles | None:
    try:
        meta = json.loads((folder / "meta.json").read_text())
        base = npy_rows(folder / "base.npy")
        queries = np.load(folder / "queries.npy")
        holdout = npy_rows(folder / "holdout.npy") if spec.holdout else None
        for rows, count in ((base, spec.n), (holdout, spec.holdout)):
            if rows is not None and (rows.n != count or rows.path.stat().st_size < rows.offset + count * rows.stride):
                return None
        if queries.shape != (spec.queries, spec.dim):
            return None
        return SyntheticFiles(folder, base, queries, holdout, str(meta["content_hash"]), meta)
    except (OSError, ValueError, KeyError, json.JSONDecodeError):
        return None


def ensure_generated(spec: DatasetSpec, cache_dir: Path, progress: bool = True) -> SyntheticFiles:
    """Generate the set to `cache_dir/synthetic/<key>/` unless the same spec was generated before."""
    root = ensure_dir(cache_dir / "synthetic")
    folder = root / cache_key(spec)
    found = _load_existing(folder, spec)
    if found is not None:
        return found
    if folder.exists():
        shutil.rmtree(folder, ignore_errors=True)  # an incomplete or stale folder
    need = 4 * spec.dim * (spec.n + spec.holdout + spec.queries)
    free = shutil.disk_usage(root).free
    if need > free:
        raise UserError(f"Generating {spec.n + spec.holdout + spec.queries:,} x {spec.dim} vectors (dataset.n + "
                        f"dataset.queries + dataset.holdout) needs {format_bytes(need)} but {root} has "
                        f"{format_bytes(free)} free", "free some space or set BENCH_CACHE_DIR to a larger disk")
    model = build_model(spec)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=root))
    try:
        hasher = new_hasher(spec.metric, spec.n, spec.queries, spec.dim)
        with _progress.bar(f"generating {spec.n:,} x {spec.dim} vectors", spec.n, progress) as advance:
            def on_block(block: np.ndarray) -> None:
                hasher.update(memoryview(block).cast("B"))
                advance(len(block))

            write_npy_blocks(tmp / "base.npy", spec.n, spec.dim, stream_rows(model, spec.seed, STREAM_BASE, spec.n),
                             on_block)
        q = np.concatenate(list(stream_rows(model, spec.seed, STREAM_QUERIES, spec.queries)))
        hasher.update(memoryview(np.ascontiguousarray(q)).cast("B"))
        np.save(tmp / "queries.npy", q)
        if spec.holdout:
            write_npy_blocks(tmp / "holdout.npy", spec.holdout, spec.dim,
                             stream_rows(model, spec.seed, STREAM_HOLDOUT, spec.holdout))
        meta = {"generator": GENERATOR_VERSION, "spec": spec.model_dump(), "content_hash": hasher.hexdigest()[:16]}
        (tmp / "meta.json").write_text(json.dumps(meta, indent=2, sort_keys=True))
        try:
            os.rename(tmp, folder)
        except OSError:  # another process finished the same set first
            shutil.rmtree(tmp, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    found = _load_existing(folder, spec)
    if found is None:
        raise RuntimeError(f"generated synthetic set in {folder} cannot be read back")
    return found
