"""A dataset in VectorDBBench's custom-dataset layout, so VectorDBBench and bench measure the same files.

VectorDBBench's custom dataset (its `CustomDataset`, `--case-type PerformanceCustomDataset`) is a folder with
train.parquet (id int64, emb list<float32>), test.parquet (id, emb) and neighbors.parquet (id, neighbors_id: the
exact top-k of each query, by train id). bench reads the same folder with `source = "file"`, and `bench import`
finds it through the `dir` VectorDBBench records, so both rows carry the same data hash.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from bench.datasets.exact import exact_topk


def _emb(a: np.ndarray) -> pa.Array:
    a = np.ascontiguousarray(a, dtype=np.float32)
    return pa.FixedSizeListArray.from_arrays(pa.array(a.reshape(-1)), a.shape[1]).cast(pa.list_(pa.float32()))


def write_custom_dataset(folder: Path, base: np.ndarray, queries: np.ndarray, metric: str, k: int = 100) -> Path:
    """Write train/test/neighbors.parquet (ids 0..n-1 and 0..nq-1; the exact top-k by bench's exact search)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    ids = pa.array(np.arange(len(base), dtype=np.int64))
    qids = pa.array(np.arange(len(queries), dtype=np.int64))
    pq.write_table(pa.table({"id": ids, "emb": _emb(base)}), folder / "train.parquet")
    pq.write_table(pa.table({"id": qids, "emb": _emb(queries)}), folder / "test.parquet")
    gt = exact_topk(np.ascontiguousarray(base, dtype=np.float32), np.asarray(queries, dtype=np.float32),
                    min(k, len(base)), metric)
    pq.write_table(pa.table({"id": qids, "neighbors_id": pa.array(list(gt), type=pa.list_(pa.int64()))}),
                   folder / "neighbors.parquet")
    return folder
