"""The `[ycsb]` table of a workload file: YCSB's core-workload model of an operation mix.

A workload is data: the share of each operation kind, how keys are chosen and how long scans are. The model
knows nothing of engines; `bench.ops.stream.OpStream` turns it into a seeded stream of operations.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

PROPORTION_FIELDS: tuple[str, ...] = (
    "read_proportion",
    "update_proportion",
    "insert_proportion",
    "scan_proportion",
    "read_modify_write_proportion",
    "search_proportion",
    "filtered_search_proportion",
)
SUM_TOLERANCE = 1e-6


class YcsbSpec(BaseModel):
    """Operation proportions and key choice of a YCSB-style workload (YCSB's CoreWorkload properties)."""

    model_config = ConfigDict(extra="forbid")

    read_proportion: float = Field(0.0, ge=0.0, le=1.0, description="fetch a record by id")
    update_proportion: float = Field(0.0, ge=0.0, le=1.0, description="upsert a new vector for an existing id")
    insert_proportion: float = Field(0.0, ge=0.0, le=1.0, description="insert a record with a new id")
    scan_proportion: float = Field(
        0.0, ge=0.0, le=1.0, description="ANN search of scan_length results near a stored vector (YCSB E)")
    read_modify_write_proportion: float = Field(
        0.0, ge=0.0, le=1.0, description="read a record, then upsert it (YCSB F)")
    search_proportion: float = Field(
        0.0, ge=0.0, le=1.0, description="ANN search with a query vector (search under writes)")
    filtered_search_proportion: float = Field(
        0.0, ge=0.0, le=1.0, description="ANN search with a query vector and the workload's [filter] (op "
        "'filtered-search')")
    request_distribution: Literal["uniform", "zipfian", "latest", "hotspot"] = Field(
        "zipfian", description="how keys are chosen: uniform, zipfian (a few hot keys), latest (the newest "
        "inserted), hotspot (a hot share of the keys)")
    zipfian_constant: float = Field(
        0.99, gt=0.0, lt=1.0, description="theta of the zipfian and latest distributions (Gray et al.: 0 < theta < 1)")
    scrambled: bool = Field(True, description="zipfian only: spread hot keys over the key range (YCSB ScrambledZipfian)")
    max_scan_length: int = Field(100, ge=1, description="longest scan, in results")
    scan_length_distribution: Literal["uniform", "zipfian"] = Field(
        "uniform", description="scan lengths: uniform over 1..max_scan_length, or zipfian")
    hotspot_data_fraction: float = Field(0.2, gt=0.0, lt=1.0, description="hotspot: share of keys that are hot")
    hotspot_opn_fraction: float = Field(0.8, gt=0.0, lt=1.0, description="hotspot: share of operations on hot keys")

    @model_validator(mode="after")
    def _proportions_sum_to_one(self) -> YcsbSpec:
        total = sum(getattr(self, f) for f in PROPORTION_FIELDS)
        if abs(total - 1.0) > SUM_TOLERANCE:
            used = [f"{f} = {getattr(self, f):g}" for f in PROPORTION_FIELDS if getattr(self, f) > 0]
            terms = " + ".join(used) if used else "every proportion is 0"
            raise ValueError(
                f"the operation proportions must add up to 1, but they add up to {total:g} ({terms}); "
                f"adjust {', '.join(PROPORTION_FIELDS)}"
            )
        return self

    def proportions(self) -> tuple[float, ...]:
        """The proportions in `OpKind` order: read, update, insert, scan, read-modify-write, search,
        filtered search."""
        return tuple(float(getattr(self, f)) for f in PROPORTION_FIELDS)
