"""The seeded operation stream of one worker: which operation comes next, on which key, how long a scan is.

Determinism: everything flows from (spec, record_count, seed, worker, workers). Each worker seeds its own
generators from `np.random.SeedSequence(seed, spawn_key=(worker,))` (the same as
`SeedSequence(seed).spawn(workers)[worker]`), so workers never replay one another's sequence, and a worker's
stream does not depend on how many workers there are, except for the ids of its inserts. Operation kinds, keys,
scan lengths and query indexes come from four independent child generators, each consuming one draw per
operation that needs it, so the stream is the same whatever the batch sizes it is read in.

Key space of a worker (no coordination between workers):
- The initial records are ids 0 .. record_count - 1, known to every worker.
- Worker w of W inserts ids record_count + w, record_count + w + W, record_count + w + 2W, ...: unique across
  workers by construction.
- Reads, updates, scans and read-modify-writes target the initial records and the records this worker has
  inserted so far, including inserts earlier in the same batch (an operation never targets an insert that comes
  after it). Another worker's inserts are never targeted, since this worker cannot know they have happened.
- `latest` favours this worker's most recent inserts; before the first insert, the newest initial records
  (the highest ids). `zipfian` keeps its hot set on the initial records; records inserted later take the coldest
  ranks (see `bench.ops.choosers`).

The caller executes every operation of a batch, in order, before asking for the next batch. An insert that
failed leaves a hole: later reads of that id find nothing, which the caller counts as it counts any miss.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

import numpy as np

from bench.ops.choosers import KeyChooser, ZipfRanks, make_chooser
from bench.ops.mix import YcsbSpec


class OpKind(IntEnum):
    READ = 0
    UPDATE = 1
    INSERT = 2
    SCAN = 3
    RMW = 4
    SEARCH = 5
    FILTERED_SEARCH = 6

    @property
    def label(self) -> str:
        return _LABELS[self]


_LABELS = {
    OpKind.READ: "read",
    OpKind.UPDATE: "update",
    OpKind.INSERT: "insert",
    OpKind.SCAN: "scan",
    OpKind.RMW: "read-modify-write",
    OpKind.SEARCH: "search",
    OpKind.FILTERED_SEARCH: "filtered-search",
}
_KEYED = np.array([k in (OpKind.READ, OpKind.UPDATE, OpKind.SCAN, OpKind.RMW) for k in OpKind])


@dataclass(frozen=True)
class OpBatch:
    """n operations in the order to run them.

    kinds: uint8 (n,), OpKind values.
    keys: int64 (n,): the record id for read, update, read-modify-write and scan (the stored record whose vector
        is the scan's query), the new id for insert; for search and filtered search, the index of the query vector to use when the
        stream was given `query_count`, else -1 (the caller picks the query).
    scan_lengths: int32 (n,): results wanted by a scan, in [1, max_scan_length]; 0 for other kinds.
    """

    kinds: np.ndarray
    keys: np.ndarray
    scan_lengths: np.ndarray

    def __len__(self) -> int:
        return int(self.kinds.size)

    def counts(self) -> dict[OpKind, int]:
        """Operations of each kind in this batch."""
        c = np.bincount(self.kinds, minlength=len(OpKind))
        return {k: int(c[k]) for k in OpKind}


class OpStream:
    """The seeded operation stream of ONE worker. Same (spec, record_count, seed, worker, workers) -> same stream."""

    def __init__(self, spec: YcsbSpec, record_count: int, seed: int, worker: int = 0, workers: int = 1,
                 *, query_count: int | None = None):
        if record_count < 1:
            raise ValueError(f"record_count must be at least 1, got {record_count}")
        if workers < 1 or not 0 <= worker < workers:
            raise ValueError(f"worker must be in [0, workers), got worker={worker}, workers={workers}")
        if query_count is not None and query_count < 1:
            raise ValueError(f"query_count must be at least 1, got {query_count}")
        self.spec = spec
        self.record_count = int(record_count)
        self.worker = int(worker)
        self.workers = int(workers)
        self.query_count = query_count
        kinds_ss, keys_ss, scan_ss, query_ss = np.random.SeedSequence(seed, spawn_key=(worker,)).spawn(4)
        self._kinds_rng = np.random.default_rng(kinds_ss)
        self._scan_rng = np.random.default_rng(scan_ss)
        self._query_rng = np.random.default_rng(query_ss)
        cum = np.cumsum(np.asarray(spec.proportions(), dtype=np.float64))
        self._cum = cum / cum[-1]
        self.chooser: KeyChooser = make_chooser(spec, self.record_count, np.random.default_rng(keys_ss))
        self._scan_zipf = (ZipfRanks(spec.max_scan_length, spec.zipfian_constant)
                           if spec.scan_length_distribution == "zipfian" else None)
        self.inserted = 0  # inserts handed out by this stream so far

    @property
    def item_count(self) -> int:
        """Records this worker may target: the initial ones plus its own inserts so far."""
        return self.record_count + self.inserted

    def insert_key(self, i: int | np.ndarray) -> np.ndarray:
        """The id of this worker's i-th insert (0-based)."""
        return self.record_count + self.worker + np.asarray(i, dtype=np.int64) * self.workers

    def _index_to_key(self, idx: np.ndarray) -> np.ndarray:
        if self.workers == 1 or self.inserted == 0:  # identity: ids are dense
            return idx
        return np.where(idx < self.record_count, idx, self.insert_key(idx - self.record_count))

    def next_batch(self, n: int) -> OpBatch:
        if n < 0:
            raise ValueError(f"batch size must be non-negative, got {n}")
        kinds = np.searchsorted(self._cum, self._kinds_rng.random(n), side="right").astype(np.uint8)
        keys = np.full(n, -1, dtype=np.int64)

        is_insert = kinds == OpKind.INSERT
        ins_before = np.cumsum(is_insert) - is_insert  # inserts earlier in this batch
        n_ins = int(is_insert.sum())
        if n_ins:
            keys[is_insert] = self.insert_key(self.inserted + ins_before[is_insert])

        keyed = _KEYED[kinds]
        if keyed.any():
            if n_ins and ins_before[keyed][-1] > 0:
                idx = self.chooser.draw_for(self.item_count + ins_before[keyed])
            else:
                idx = self.chooser.draw(int(keyed.sum()))
            self.inserted += n_ins
            keys[keyed] = self._index_to_key(idx)
        else:
            self.inserted += n_ins
        if n_ins:
            self.chooser.grow(self.item_count)

        scan_lengths = np.zeros(n, dtype=np.int32)
        is_scan = kinds == OpKind.SCAN
        n_scan = int(is_scan.sum())
        if n_scan:
            u = self._scan_rng.random(n_scan)
            if self._scan_zipf is None:
                lengths = 1 + (u * self.spec.max_scan_length).astype(np.int64)
            else:
                lengths = 1 + self._scan_zipf.draw(u)
            scan_lengths[is_scan] = np.minimum(lengths, self.spec.max_scan_length)

        is_search = (kinds == OpKind.SEARCH) | (kinds == OpKind.FILTERED_SEARCH)
        if self.query_count is not None and is_search.any():
            u = self._query_rng.random(int(is_search.sum()))
            keys[is_search] = np.minimum((u * self.query_count).astype(np.int64), self.query_count - 1)
        return OpBatch(kinds=kinds, keys=keys, scan_lengths=scan_lengths)
