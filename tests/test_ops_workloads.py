"""The YCSB workload files: they parse, match YCSB's core workloads, and keep small defaults."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from bench.ops import YcsbSpec

WORKLOADS = Path(__file__).resolve().parent.parent / "workloads"
RUN_KEYS = {"trials", "warmup_s", "duration_s", "operations", "concurrency", "batch_size"}

# name -> (non-zero proportions, request distribution), from YCSB's workloads/workload[a-f]
EXPECTED = {
    "ycsb-a": ({"read_proportion": 0.5, "update_proportion": 0.5}, "zipfian"),
    "ycsb-b": ({"read_proportion": 0.95, "update_proportion": 0.05}, "zipfian"),
    "ycsb-c": ({"read_proportion": 1.0}, "zipfian"),
    "ycsb-d": ({"read_proportion": 0.95, "insert_proportion": 0.05}, "latest"),
    "ycsb-e": ({"scan_proportion": 0.95, "insert_proportion": 0.05}, "zipfian"),
    "ycsb-f": ({"read_proportion": 0.5, "read_modify_write_proportion": 0.5}, "zipfian"),
    "ycsb-search-under-writes": ({"search_proportion": 0.5, "update_proportion": 0.5}, "uniform"),
    "ycsb-filtered-mixed": ({"search_proportion": 0.4, "filtered_search_proportion": 0.4, "update_proportion": 0.2},
                            "uniform"),
}


def load(name: str) -> dict:
    with (WORKLOADS / f"{name}.toml").open("rb") as f:
        return tomllib.load(f)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_workload_file(name: str) -> None:
    text = (WORKLOADS / f"{name}.toml").read_text()
    assert text.startswith("# "), "each workload file opens with a comment explaining it"
    data = load(name)
    assert data["name"] == name and data["kind"] == "ycsb" and data["description"]
    spec = YcsbSpec.model_validate(data["ycsb"])
    proportions, distribution = EXPECTED[name]
    nonzero = {f: v for f, v in spec.model_dump().items() if f.endswith("_proportion") and v > 0}
    assert nonzero == proportions
    assert spec.request_distribution == distribution
    assert set(data["run"]) <= RUN_KEYS
    assert data["dataset"]["n"] <= 20_000 and data["run"]["duration_s"] <= 10  # small defaults


def test_workload_e_scans() -> None:
    spec = YcsbSpec.model_validate(load("ycsb-e")["ycsb"])
    assert spec.max_scan_length == 100 and spec.scan_length_distribution == "uniform"


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_workload_file_loads_through_the_spec(name: str) -> None:
    pytest.importorskip("bench.datasets.spec", reason="the dataset spec is not written yet")
    from bench.workload_file import load_workload

    w = load_workload(name)
    assert w.ycsb is not None and w.ycsb.proportions() == YcsbSpec.model_validate(load(name)["ycsb"]).proportions()
