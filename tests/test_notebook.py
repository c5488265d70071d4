"""notebooks/analysis.ipynb runs top to bottom (nbclient, ipykernel) on results made by a real small `bench run`,
merges the HDR histograms across trials without losing an operation, and draws its pictures."""

from __future__ import annotations

import nbformat
from analysis_helpers import shared_run
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
    assert "1 trials file(s): 6 trial rows, 2 summary rows" in text
    assert "faiss" in text and "mean_of_trial_p99_us" in text
    pictures = [o for o in outputs if "image/png" in o.get("data", {})]
    assert len(pictures) == 2
