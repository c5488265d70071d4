"""`wordnet-mpnet-768`: real 768-d sentence embeddings (all-mpnet-base-v2 of WordNet glosses), with their texts.

The folder holds `vectors.f16.npy` (rows x 768 float16, L2-normalised) and `texts.txt` (one sentence a line,
row for row). The last 200 rows are the queries, the rows before them the base set: 20,000 + 200 in the full
set, 4,000 + 200 in the fixture shipped in tests/fixtures/wordnet-mpnet-768-small.

Where it is found: $BENCH_WORDNET_DIR, else <repo>/../shared/data/wordnet-mpnet-768, else the fixture.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from bench.datasets._io import content_hash
from bench.datasets.dataset import Dataset
from bench.datasets.rows import ArrayRows
from bench.datasets.spec import DatasetSpec
from bench.errors import UserError

NAME = "wordnet-mpnet-768"
QUERY_ROWS = 200
DIM = 768
REPO = Path(__file__).resolve().parents[2]
FIXTURE = REPO / "tests" / "fixtures" / "wordnet-mpnet-768-small"
VECTORS, TEXTS = "vectors.f16.npy", "texts.txt"


def candidates() -> list[Path]:
    out = []
    env = os.environ.get("BENCH_WORDNET_DIR")
    if env:
        out.append(Path(env))
    out.append(REPO.parent / "shared" / "data" / NAME)
    out.append(FIXTURE)
    return out


def resolve_dir() -> Path:
    env = os.environ.get("BENCH_WORDNET_DIR")
    if env:
        if not (Path(env) / VECTORS).is_file():
            raise UserError(f"BENCH_WORDNET_DIR = {env} has no {VECTORS}",
                            "point it at the wordnet-mpnet-768 folder or unset it")
        return Path(env)
    for p in candidates():
        if (p / VECTORS).is_file():
            return p
    raise UserError(f"The {NAME} data was not found (looked in {', '.join(str(p) for p in candidates())})",
                    "set BENCH_WORDNET_DIR to the folder holding vectors.f16.npy and texts.txt")


def read_folder(folder: Path) -> tuple[np.ndarray, list[str] | None]:
    path = folder / VECTORS
    try:
        vectors = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as e:
        raise UserError(f"The file {path} cannot be read ({e})", "copy the wordnet-mpnet-768 folder again") from None
    if vectors.ndim != 2 or vectors.shape[1] != DIM or vectors.shape[0] <= QUERY_ROWS:
        raise UserError(f"The file {path} has shape {vectors.shape}, expected (rows > {QUERY_ROWS}, {DIM})",
                        "copy the wordnet-mpnet-768 folder again")
    texts = None
    tpath = folder / TEXTS
    if tpath.is_file():
        texts = tpath.read_text(encoding="utf-8").split("\n")
        if texts and texts[-1] == "":
            texts.pop()
        if len(texts) != len(vectors):
            raise UserError(f"{tpath} has {len(texts)} lines but {path} has {len(vectors)} rows",
                            "copy the wordnet-mpnet-768 folder again")
    return vectors, texts


def load_wordnet(spec: DatasetSpec, cache_dir: Path) -> Dataset:
    folder = resolve_dir()
    vectors, texts = read_folder(folder)
    base_rows = len(vectors) - QUERY_ROWS
    if spec.explicitly_set("dim") and spec.dim != DIM:
        raise UserError(f"{NAME} has dimension {DIM} but dataset.dim = {spec.dim}", f"set dataset.dim = {DIM}")
    if spec.n + spec.holdout > base_rows:
        raise UserError(f"{NAME} in {folder} has {base_rows:,} base vectors but dataset.n + dataset.holdout = "
                        f"{spec.n + spec.holdout:,}", f"lower dataset.n to at most {base_rows - spec.holdout:,}")
    if spec.queries > QUERY_ROWS:
        raise UserError(f"{NAME} has {QUERY_ROWS} queries but dataset.queries = {spec.queries}",
                        f"lower dataset.queries to at most {QUERY_ROWS}")
    if spec.ground_truth == "file":
        raise UserError(f"{NAME} publishes no neighbours", "set dataset.ground_truth = 'exact'")
    metric = spec.metric if spec.explicitly_set("metric") else "cosine"
    data = vectors.astype(np.float32)
    base = ArrayRows(data[: spec.n])
    holdout = ArrayRows(data[spec.n: spec.n + spec.holdout])
    queries = data[base_rows: base_rows + spec.queries]
    return Dataset(
        name=NAME, source=NAME, metric=metric, base=base, queries=queries, holdout=holdout, cache_dir=cache_dir,
        content_hash=content_hash(base, queries, metric),
        texts=texts[: spec.n] if texts else None,
        query_texts=texts[base_rows: base_rows + spec.queries] if texts else None,
        paths={"folder": str(folder)}, details={"rows_available": base_rows},
    )
