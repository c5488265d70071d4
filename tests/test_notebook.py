"""notebooks/analysis.ipynb runs top to bottom (nbclient, ipykernel) on results made by a real small `bench run`,
merges the HDR histograms across trials without losing an operation, and draws its pictures."""

from __future__ import annotations

import nbformat
from analysis_helpers import real_run, shared_run
from nbclient import NotebookClient

from bench.spec import REPO_ROOT

NOTEBOOK = REPO_ROOT / "notebooks" / "analysis.ipynb"


def test_notebook_executes_on_real_results(tmp_path_factory, cache_dir, monkeypatch, tmp_path):
    run = shared_run(tmp_path_factory, cache_dir, "faiss", "--set", "search.ef_search=[8, 64]", "--trials", "3")
    nb = nbformat.read(NOTEBOOK, as_version=4)
    params = [c for c in nb.cells if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(params) == 1 and "BENCH_RESULTS" in params[0].source
    monkeypatch.setenv("BENCH_RESULTS", str(run))
    monkeypatch.setenv("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    NotebookClient(nb, timeout=180, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    text = "\n".join(o.get("text", "") + o.get("data", {}).get("text/plain", "") for o in outputs)
    assert "6 trial rows, 2 summary rows" in text
    assert "faiss" in text and "mean_of_trial_p99_us" in text
    pictures = [o for o in outputs if "image/png" in o.get("data", {})]
    assert len(pictures) == 2


def _execute(results, monkeypatch, tmp_path) -> str:
    nb = nbformat.read(NOTEBOOK, as_version=4)
    monkeypatch.setenv("BENCH_RESULTS", str(results))
    monkeypatch.setenv("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    NotebookClient(nb, timeout=180, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"], [o for o in outputs if o.output_type == "error"]
    return "\n".join(o.get("text", "") + o.get("data", {}).get("text/plain", "") for o in outputs)


def test_notebook_never_merges_runs_of_different_indexes(tmp_path, cache_dir, monkeypatch):
    """Two faiss runs, M=8 and M=16, same workload and ef: the merged histograms stay two, one per run."""
    for m in (8, 16):
        real_run(tmp_path, cache_dir, "faiss", "--set", "search.ef_search=[32]", "--set", f"index.m={m}",
                 "--trials", "2", run_id=f"m{m}")
    text = _execute(tmp_path / "results", monkeypatch, tmp_path)
    merged = text[text.index("mean_of_trial_p99_us"):]
    assert "m8" in merged and "m16" in merged
    assert "M=8" in merged and "M=16" in merged
