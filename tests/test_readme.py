"""The README's commands work: every command in its ```sh blocks runs without an error in a fresh copy of the
repository (nothing beside it), in order, as a newcomer types them; only a short, justified list is skipped."""

from __future__ import annotations

import json

import pyarrow.parquet as pq
import pytest
from readme_commands import README, SKIP, commands, run_readme, skipped_by


@pytest.fixture(scope="module")
def clone(tmp_path_factory, cache_dir):
    return run_readme(tmp_path_factory, cache_dir)


def test_every_readme_command_runs_without_an_error(clone):
    failed = [f"{o.cmd}\n  exit {o.returncode}: {o.stderr.strip()[-800:]}" for o in clone.outcomes if o.returncode]
    assert not failed, "\n".join(failed)
    assert len(clone.outcomes) >= 15  # the quick start, the worked example and the reference examples ran
    timing = ", ".join(f"{o.cmd.split(' --')[0]}: {o.seconds:.1f}s" for o in clone.outcomes)
    print(f"README commands: {timing}")


def test_the_skip_list_is_small_and_every_entry_is_still_in_the_readme():
    cmds = commands()
    assert len(SKIP) <= 8
    stale = [k for k in SKIP if not any(skipped_by(c) == k for c in cmds)]
    assert not stale, f"skip-list entries no README command matches any more: {stale}"
    quick = README.read_text().split("## Quick start", 1)[1].split("\n## ", 1)[0]
    skipped_quick = [c for c in commands(quick) if skipped_by(c)]
    assert skipped_quick == [". .venv/bin/activate"], skipped_quick  # nothing else of the Quick start is skipped


def test_quick_start_reads_the_fixture_from_a_fresh_clone_and_writes_results(clone):
    describe = next(o for o in clone.outcomes if o.cmd == "bench datasets describe wordnet-mpnet-768")
    assert "wordnet-mpnet-768-small" in describe.stdout and "4,000" in describe.stdout  # nothing beside the repo
    version = next(o for o in clone.outcomes if o.cmd == "bench --version")
    assert version.stdout.startswith("bench ")
    runs = sorted(p.parent.name for p in (clone.root / "results").rglob("summary.parquet"))
    assert {"faiss-synthetic", "qdrant-edge-synthetic", "faiss-wordnet", "qdrant-edge-wordnet"} <= set(runs)
    assert len(runs) >= 6  # make run's qdrant-edge run and the quick start's faiss run too
    assert (clone.root / "report" / "index.html").is_file()
    assert (clone.root / "report" / "example" / "index.html").is_file()


def test_compare_json_and_export_hold_the_worked_example(clone):
    data = json.loads((clone.root / "compare.json").read_text())
    assert {r["backend"] for r in data["rows"]} == {"faiss", "qdrant-edge"}
    assert {r["dataset_name"] for r in data["rows"]} == {"synthetic-768d-cosine-4000-s42", "wordnet-mpnet-768"}
    assert all(isinstance(r["qps"], float) and isinstance(r["index_m"], int) for r in data["rows"])
    table = pq.read_table(clone.root / "example.parquet")
    assert set(table.column("run_id").to_pylist()) == {"faiss-synthetic", "qdrant-edge-synthetic", "faiss-wordnet",
                                                      "qdrant-edge-wordnet"}
    assert table.num_rows == 12  # 4 runs x 3 ef_search
    assert table.schema.field("qps").metadata[b"description"]
