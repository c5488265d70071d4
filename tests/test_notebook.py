"""notebooks/analysis.ipynb runs top to bottom (nbclient, ipykernel) on results made by a real small `bench run`,
merges the HDR histograms across trials without losing an operation, and draws its pictures."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

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


def _axes_cells(nb) -> None:
    """After each picture cell, a cell printing its panels' titles and legend entries (AXES json)."""
    out = []
    for c in nb.cells:
        out.append(c)
        if c.cell_type == "code" and "plt.show()" in c.source:
            out.append(nbformat.v4.new_code_cell(
                "import json\nprint('AXES ' + json.dumps([[a.get_title(), [t.get_text() for t in a.get_legend()"
                ".get_texts()]] for a in fig.axes if a.get_visible()]))"))
    nb.cells = out


def test_notebook_draws_one_panel_per_dataset_with_legends_naming_the_run(tmp_path, cache_dir, monkeypatch):
    """Two datasets, two backends, a generated run id: a panel per dataset, each legend entry names backend,
    dataset and a short run label (the run's start and the last characters of its id), and no warning."""
    import json

    runs = [real_run(tmp_path, cache_dir, b, "--set", f"dataset.n={n}", "--set", "search.ef_search=[16, 64]",
                     "--trials", "1", run_id=None if b == "faiss" else f"{b}-{n}")
            for b in ("faiss", "qdrant-edge") for n in (1000, 1500)]
    nb = nbformat.read(NOTEBOOK, as_version=4)
    _axes_cells(nb)
    monkeypatch.setenv("BENCH_RESULTS", str(tmp_path / "results"))
    monkeypatch.setenv("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    NotebookClient(nb, timeout=180, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error" or o.get("name") == "stderr"], outputs
    figures = [json.loads(o.text.split("AXES ", 1)[1]) for o in outputs if o.get("text", "").startswith("AXES ")]
    assert len(figures) == 2  # recall vs QPS, latency by percentile
    generated = runs[0].name  # e.g. 20261208T014259Z-faiss-ann-smoke-1a2b3c
    short = f"{generated[4:6]}-{generated[6:8]} {generated[9:11]}:{generated[11:13]} {generated[-6:]}"
    for panels in figures:
        assert [t for t, _ in panels] == ["ann-smoke on synthetic-16d-cosine-1000-s42 n=1,000",
                                          "ann-smoke on synthetic-16d-cosine-1500-s42 n=1,500"]
        for title, legend in panels:
            dataset = title.split(" on ")[1].split(" ")[0]
            assert legend and all(e.split(", ")[1] == dataset for e in legend), (title, legend)  # never mixed
            assert any(e.startswith(f"faiss, {dataset}, run ") for e in legend), legend
            assert any(e.startswith(f"qdrant-edge, {dataset}, run qdrant-edge-{dataset.split('-')[3]}")
                       for e in legend), legend
    assert any(short in e for _, legend in figures[0] for e in legend), (short, figures[0])


def _make_notebook(root, results: str) -> subprocess.CompletedProcess:
    """`make notebook RESULTS=...` in `root`, with this test's venv (its install stamp taken as up to date, so make
    does not install anything)."""
    venv = Path(sys.executable).parent.parent
    env = {**os.environ, "PYTHONPATH": str(root)}
    env.pop("BENCH_RESULTS", None)
    return subprocess.run(["make", "-s", "-o", f"{venv}/.installed", "notebook", f"VENV={venv}",
                           f"RESULTS={results}"], cwd=root, env=env, capture_output=True, text=True, timeout=600)


def test_make_notebook_with_the_readme_relative_path(tmp_path_factory, cache_dir):
    """`make notebook RESULTS=results/example`, as the README gives it, from the root of a fresh clone on which
    the README's worked example ran: the relative path is read from there, not from notebooks/."""
    from readme_commands import run_readme

    clone = run_readme(tmp_path_factory, cache_dir)
    assert (clone.root / "results" / "example").is_dir(), "the README's worked example made no results/example"
    p = _make_notebook(clone.root, "results/example")
    assert p.returncode == 0, p.stderr[-3000:]
    nb = nbformat.read(clone.root / "notebooks" / "analysis.ipynb", as_version=4)
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error" or o.get("name") == "stderr"]
    text = "\n".join(o.get("text", "") + o.get("data", {}).get("text/plain", "") for o in outputs)
    assert "runs: faiss-synthetic, faiss-wordnet, qdrant-edge-synthetic, qdrant-edge-wordnet" in text
    assert len([o for o in outputs if "image/png" in o.get("data", {})]) == 2


def test_make_notebook_with_a_bad_path_says_one_sentence():
    """Checked before the kernel starts (so the committed notebook is not touched): one sentence, exit 2."""
    p = _make_notebook(REPO_ROOT, "results/nope")
    assert p.returncode == 2
    errors = [line for line in p.stderr.splitlines() if not line.startswith("make")]
    assert errors == [f"error: The results path results/nope does not exist (read from {REPO_ROOT}); give RESULTS a "
                      "run folder, a folder of runs or a parquet file, e.g. make notebook RESULTS=results/example."], \
        p.stderr
