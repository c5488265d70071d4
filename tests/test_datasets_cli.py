"""`bench datasets ...` through the real command line (subprocess), with the exit codes a user sees."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
from test_datasets_fetch import serve_files, tiny_hdf5

from bench.datasets import DatasetSpec, load


def bench(cache: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "BENCH_CACHE_DIR": str(cache)}
    return subprocess.run([sys.executable, "-m", "bench.cli", "datasets", *args], capture_output=True, text=True,
                          timeout=120, env=env)


def test_no_subcommand_lists_the_catalog(tmp_path: Path) -> None:
    out = bench(tmp_path, )
    assert out.returncode == 0, out.stderr
    for name in ("synthetic", "wordnet-mpnet-768", "sift-128-euclidean", "gist-960-euclidean", "cohere-768-1m",
                 "openai-1536-500k"):
        assert name in out.stdout
    assert out.stdout == bench(tmp_path, "list").stdout


def test_generate_prints_path_and_hash_and_reuses_the_cache(tmp_path: Path) -> None:
    out = bench(tmp_path, "generate", "--n", "1500", "--queries", "20", "--dim", "32", "--seed", "3", "--quiet")
    assert out.returncode == 0, out.stderr
    lines = dict(line.split(": ", 1) for line in out.stdout.splitlines() if ": " in line)
    assert Path(lines["path"]).is_dir() and Path(lines["path"]).parent == tmp_path / "synthetic"
    ds = load(DatasetSpec(n=1500, queries=20, dim=32, seed=3), tmp_path, progress=False)
    assert lines["hash"] == ds.content_hash
    listed = bench(tmp_path, "list")
    assert "1 generated synthetic set" in listed.stdout


def test_describe_a_file_and_a_catalog_name(tmp_path: Path) -> None:
    np.save(tmp_path / "v.npy", np.zeros((30, 5), dtype=np.float32))
    out = bench(tmp_path, "describe", str(tmp_path / "v.npy"), "--json")
    assert out.returncode == 0, out.stderr
    info = json.loads(out.stdout)
    assert info["format"] == "npy" and info["rows"] == 30 and info["dim"] == 5
    out = bench(tmp_path, "describe", "sift-128-euclidean")
    assert "http://ann-benchmarks.com/sift-128-euclidean.hdf5" in out.stdout
    assert re.search(r"^cached +no$", out.stdout, re.M), out.stdout


def test_user_errors_exit_2_with_one_sentence(tmp_path: Path) -> None:
    for args, words in ((["describe", str(tmp_path / "missing.npy")], "neither a known dataset nor"),
                        (["generate", "--n", "0"], "n must be a positive whole number"),
                        (["generate", "--metric", "hamming"], "--metric"),
                        (["fetch", "nope"], "Unknown dataset 'nope'")):
        out = bench(tmp_path, *args)
        assert out.returncode == 2, (args, out.stdout, out.stderr)
        assert words in out.stderr and "Traceback" not in out.stderr
        assert len(out.stderr.strip().splitlines()) == 1


def test_fetch_from_a_local_mirror_then_load_by_name(tmp_path: Path) -> None:
    body = tiny_hdf5(tmp_path / "src.hdf5")
    cache = tmp_path / "cache"
    with serve_files({"/m/sift.hdf5": body}) as (url, _):
        out = bench(cache, "fetch", "sift-128-euclidean", "--url", url + "/m/sift.hdf5", "--quiet")
    assert out.returncode == 0, out.stderr
    assert "fetched sift-128-euclidean" in out.stdout
    ds = load(DatasetSpec(source="sift-128-euclidean", n=600, queries=20), cache, progress=False)
    assert ds.dim == 128 and ds.n == 600
    assert "yes," in bench(cache, "list").stdout
