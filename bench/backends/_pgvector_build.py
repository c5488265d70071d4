"""How the `pgvector` adapter loads and builds, decided here (pure, unit-tested), following pgvector's own docs.

- Storage (pgvector issue #353, ankane: "you can prevent vectors from being toasted with ALTER TABLE items ALTER
  COLUMN embedding SET STORAGE PLAIN"; issues #186/#240, jkatz: the storage setting decides how PostgreSQL costs
  scans and plans parallel workers). A 768-d vector (3,080 bytes) passes the 2 kB TOAST threshold, so by default
  it is moved out of line: the table's main heap is then a few MB, PostgreSQL plans no parallel workers for the
  index build (it sizes them by the heap), and every graph insert detoasts. `vector_storage = "auto"` keeps the
  vectors inline: PLAIN when the row's vectors fit on an 8 kB page with room to spare, else MAIN (inline unless
  the row cannot fit any other way).
- Loading (pgvector README, "Bulk loading" / "Loading"): `COPY ... FROM STDIN WITH (FORMAT BINARY)` through
  psycopg's copy with pgvector-python's binary dumper; indexes are added after the initial data is loaded.
- Building (pgvector README, "Index Build Time"): "Indexes build significantly faster when the graph fits into
  maintenance_work_mem", "do not set maintenance_work_mem so high that it exhausts the memory of the server",
  and parallel workers: `SET max_parallel_maintenance_workers = 7 -- plus leader` on an 8-core example, i.e. the
  cores less one for the leader. maintenance_work_mem is sized from pgvector's own per-element accounting (the
  vector, the element, 2M neighbours on layer 0 and M on each of the 1/(M-1) expected upper layers), capped by
  `maintenance_work_mem_max` and, when the server is on this machine, by half its available memory and half of
  /dev/shm (a parallel build holds the whole maintenance_work_mem in one shared-memory segment, which in Docker
  must fit shm_size). Then ANALYZE ("update planner statistics for good measure", pgvector-python's loading
  example).
- Read-back: the build runs with `client_min_messages = debug1`, so pgvector's own "using N parallel workers" and
  each participant's "processed N tuples" come back as notices; `pg_attribute.attstorage` says the storage.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any

MB = 1024 * 1024
PAGE_ROOM = 7000  # bytes of inline vectors a heap row may hold and still fit an 8 kB page beside its other columns
MIN_MEM = 64 * MB  # PostgreSQL's default maintenance_work_mem
ELEMENT_BYTES = 128  # HnswElementData (heap tids, level, lock, pointers), per element
CANDIDATE_BYTES = 16  # HnswCandidate: element pointer, distance, flag
ARRAY_BYTES = 8  # HnswNeighborArray header, and the pointer to it
CHUNK_BYTES = 24  # allocator overhead per allocation
SAFETY = 1.15  # slack over the estimate; MemoryContextMemAllocated counts whole blocks
DOCS = ["pgvector README: Bulk loading (COPY ... FORMAT BINARY; add indexes after loading), Index Build Time "
        "(maintenance_work_mem, max_parallel_maintenance_workers)",
        "pgvector issue #353 (SET STORAGE PLAIN so vectors are not toasted); issues #186, #240 (storage decides "
        "parallel planning)",
        "PostgreSQL docs: CREATE INDEX, Building Indexes in Parallel"]


def mem_bytes(text: str) -> int:
    """Bytes of a PostgreSQL memory setting such as "512MB", "2GB", "65536kB"."""
    m = re.fullmatch(r"\s*(\d+)\s*(kB|MB|GB|TB)?\s*", text)
    if not m:
        raise ValueError(f"not a memory size: {text!r}")
    unit = {"kB": 1024, "MB": MB, "GB": 1024 * MB, "TB": 1024 * 1024 * MB, None: 1024}[m.group(2)]
    return int(m.group(1)) * unit


def mem_text(n: int) -> str:
    """A memory setting in whole MB, rounded up."""
    return f"{math.ceil(n / MB)}MB"


def value_bytes(dim: int, quantization: str | None) -> int:
    """Bytes of the value the HNSW graph keeps per element: vector, halfvec (fp16) or bit (binary)."""
    if quantization == "fp16":
        return 2 * dim + 8
    if quantization == "binary":
        return math.ceil(dim / 8) + 8
    return 4 * dim + 8


def hnsw_graph_bytes(n: int, dim: int, m: int, quantization: str | None = None) -> int:
    """pgvector's in-memory HNSW graph for `n` elements: per element the value, the element, its layer-0
    neighbour array (2M candidates) and on average 1/(M-1) upper layers of M candidates each."""
    upper = 1 / max(m - 1, 1)  # expected upper layers per element: P(level >= l) = M^-l with ml = 1/ln M
    per = (value_bytes(dim, quantization) + ELEMENT_BYTES + (1 + upper) * 2 * ARRAY_BYTES
           + CANDIDATE_BYTES * m * (2 + upper) + CHUNK_BYTES * (3 + upper))
    return int(n * per)


def vector_storage(dims: list[int], choice: str = "auto") -> str:
    """The column storage of the vectors: PLAIN when they fit inline on a page together, else MAIN (inline
    unless the row cannot fit any other way); an explicit choice stands."""
    if choice != "auto":
        return choice
    return "plain" if sum(4 * d + 8 for d in dims) <= PAGE_ROOM else "main"


@dataclass
class BuildPlan:
    """The session settings of one index build and where each came from."""

    maintenance_work_mem: str
    workers: int | None  # max_parallel_maintenance_workers; None = the server's setting
    recipe: dict[str, Any] = field(default_factory=dict)

    def settings(self) -> list[tuple[str, str]]:
        """(name, value) pairs to SET LOCAL in the build's transaction, in order."""
        out = [("maintenance_work_mem", self.maintenance_work_mem)]
        if self.workers is not None:
            out.append(("max_parallel_maintenance_workers", str(self.workers)))
        out.append(("client_min_messages", "debug1"))  # pgvector reports the workers it launched at DEBUG1
        return out


@dataclass
class Host:
    """What is known of the server's machine: its cores and free memory when it is this one (None: remote)."""

    cores: int | None = None
    available_bytes: int | None = None
    shm_free_bytes: int | None = None
    max_parallel_workers: int | None = None  # the server's max_parallel_workers, which caps any request


def plan_build(n: int, dim: int, m: int, quantization: str | None, host: Host, *, mem: str | None,
               mem_max: str, workers: int | None) -> BuildPlan:
    """maintenance_work_mem and max_parallel_maintenance_workers for building one HNSW index over `n` rows."""
    estimate = hnsw_graph_bytes(n, dim, m, quantization)
    recipe: dict[str, Any] = {"graph_estimate_mb": math.ceil(estimate / MB)}
    if mem is not None:
        chosen, recipe["maintenance_work_mem_from"] = mem, "backend.maintenance_work_mem"
    else:
        caps = {"backend.maintenance_work_mem_max": mem_bytes(mem_max)}
        if host.available_bytes is not None:
            caps["half the available memory of this machine"] = host.available_bytes // 2
        if host.shm_free_bytes is not None:
            caps["half of /dev/shm (a parallel build's shared graph)"] = host.shm_free_bytes // 2
        want = max(MIN_MEM, int(estimate * SAFETY) + 16 * MB)
        limit_by, limit = min(caps.items(), key=lambda kv: kv[1])
        chosen = mem_text(min(want, max(MIN_MEM, limit)))
        recipe["maintenance_work_mem_from"] = (f"auto: {SAFETY:g} x the graph estimate for n={n:,}, dim={dim}, m={m}"
                                               + (f", capped by {limit_by}" if limit < want else ""))
    recipe["maintenance_work_mem"] = chosen
    if mem_bytes(chosen) < estimate:
        recipe["graph_fits_maintenance_work_mem"] = False
    if workers is not None:
        recipe["max_parallel_maintenance_workers_from"] = "backend.max_parallel_maintenance_workers"
    elif host.cores is not None:
        workers = max(0, host.cores - 1)
        if host.max_parallel_workers is not None:
            workers = min(workers, host.max_parallel_workers)
        recipe["max_parallel_maintenance_workers_from"] = "auto: the cores of this machine less one for the leader"
    else:
        recipe["max_parallel_maintenance_workers_from"] = "the server's setting (its cores are not known here)"
    recipe["max_parallel_maintenance_workers"] = workers
    return BuildPlan(chosen, workers, recipe)


_LAUNCHED = re.compile(r"using (\d+) parallel workers")
_PROCESSED = re.compile(r"(leader|worker) processed (\d+) tuples")


def read_build_debug(messages: list[str]) -> dict[str, Any]:
    """What pgvector's DEBUG1 messages of one build say: parallel workers launched (0 = a serial build) and the
    tuples each participant inserted."""
    launched = 0
    per: list[int] = []
    for text in messages:
        if (hit := _LAUNCHED.search(text)) is not None:
            launched = int(hit.group(1))
        elif (hit := _PROCESSED.search(text)) is not None:
            per.append(int(hit.group(2)))
    return {"parallel_workers_launched": launched, "tuples_per_participant": sorted(per, reverse=True) or None}
