"""Damage anywhere is detected and is one sentence.

Every result file bench writes has a checksum file beside it (bench.results.integrity) and parquet pages carry
CRCs: a damaged trials/summary parquet, run.json or kept-ids file read by compare, report, regress, export,
rescore or baseline save ends in one sentence naming it (exit 2), with no output written and nothing replaced;
files written before the checksums stay readable, with a note. A hypothesis test flips and truncates bytes at
random offsets in every result file kind of a fresh faiss run and runs every reading command on it (through
tests/cli_fork.py: real processes, one import)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from analysis_helpers import shared_run
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

FORK = Path(__file__).with_name("cli_fork.py")
KINDS = ["trials.parquet", "summary.parquet", "run.json", "ids", "hlog"]


@pytest.fixture(scope="module")
def fresh(tmp_path_factory, cache_dir) -> Path:
    return shared_run(tmp_path_factory, cache_dir, "faiss", "--trials", "3", "--set", "search.ef_search=[32]")


def _commands(run: Path, work: Path) -> list[list[str]]:
    return [["compare", str(run), "--format", "csv"], ["export", str(run), "--out", str(work / "all.parquet")],
            ["export", str(run), "--trials", "--out", str(work / "all.csv")],
            ["regress", "--baseline", str(run), "--candidate", str(run)],
            ["report", str(run), "--out", str(work / "rep")], ["rescore", str(run)],
            ["baseline", "save", str(run), "--name", "b", "--baselines-dir", str(work / "baselines")]]


def _run_all(commands: list[list[str]], work: Path, cache_dir: Path) -> list[dict]:
    env = {**os.environ, "BENCH_CACHE_DIR": str(cache_dir), "COLUMNS": "200"}
    p = subprocess.run([sys.executable, str(FORK), json.dumps(commands)], capture_output=True, text=True, cwd=work,
                       env=env, timeout=300)
    assert p.returncode == 0, p.stderr[-3000:]
    return json.loads(p.stdout)


def _target(run: Path, kind: str) -> Path:
    if kind in ("ids", "hlog"):
        folder, suffix = ("ids", ".npz") if kind == "ids" else ("intervals", ".hlog")
        return sorted((run / folder).glob(f"*{suffix}"))[0]
    return run / kind


def _outputs(work: Path) -> list[Path]:
    return [p for p in (work / "all.parquet", work / "all.csv", work / "rep", work / "baselines" / "b") if p.exists()]


def _copy(fresh: Path, work: Path) -> Path:
    run = work / "results" / fresh.name
    shutil.copytree(fresh, run)
    return run


def _check_one_sentence(r: dict) -> None:
    assert r["code"] in (0, 2), (r["argv"], r["code"], r["stderr"][-2000:])
    assert "Traceback" not in r["stderr"] and "internal error" not in r["stderr"], r["stderr"][-2000:]
    if r["code"] == 2:
        errors = [ln for ln in r["stderr"].splitlines() if ln.startswith("error: ")]
        assert len(errors) == 1, r["stderr"]


@pytest.mark.parametrize("kind", ["summary.parquet", "trials.parquet", "run.json"])
def test_100_bytes_flipped_at_10_percent_are_one_sentence_for_every_reader(fresh, tmp_path, cache_dir, kind):
    run = _copy(fresh, tmp_path)
    path = run / kind
    raw = bytearray(path.read_bytes())
    at = len(raw) // 10
    raw[at:at + 100] = bytes(b ^ 0xFF for b in raw[at:at + 100])
    path.write_bytes(bytes(raw))
    before = {p.name: p.read_bytes() for p in run.glob("*.parquet")}
    results = _run_all(_commands(run, tmp_path), tmp_path, cache_dir)
    for r in results:
        _check_one_sentence(r)
        assert r["code"] == 2 and f"{path} cannot be read: it is damaged" in r["stderr"], (r["argv"], r["stderr"])
    assert _outputs(tmp_path) == []  # no export, no report, no baseline
    assert {p.name: p.read_bytes() for p in run.glob("*.parquet")} == before  # rescore replaced nothing


def test_a_damaged_kept_ids_file_stops_rescore_before_it_replaces_anything(fresh, tmp_path, cache_dir):
    run = _copy(fresh, tmp_path)
    ids = _target(run, "ids")
    ids.write_bytes(ids.read_bytes()[:-7])
    before = (run / "trials.parquet").read_bytes()
    (r,) = _run_all([["rescore", str(run)]], tmp_path, cache_dir)
    _check_one_sentence(r)
    assert r["code"] == 2 and f"{ids} cannot be read: it is damaged" in r["stderr"]
    assert (run / "trials.parquet").read_bytes() == before


def test_files_written_before_the_checksums_stay_readable_with_a_note(fresh, tmp_path, cache_dir):
    run = _copy(fresh, tmp_path)
    for s in run.rglob("*.sha256"):
        s.unlink()
    results = _run_all(_commands(run, tmp_path)[:2], tmp_path, cache_dir)
    for r in results:
        assert r["code"] == 0, r["stderr"]
        assert "have no checksums (written before bench kept them), so damage to them cannot be detected" in \
            r["stderr"]


@settings(max_examples=6, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(kind=st.sampled_from(KINDS), where=st.floats(0.0, 1.0, exclude_max=True), span=st.integers(1, 200),
       truncate=st.booleans())
def test_fuzz_damage_in_every_result_file_kind(fresh, tmp_path_factory, cache_dir, kind, where, span, truncate):
    """Flip (or cut) bytes at a random offset of one file of a fresh run; every reading command exits 0 or 2, in
    one sentence, never 3 or a signal; one that refuses writes nothing."""
    work = tmp_path_factory.mktemp("fuzz")
    run = _copy(fresh, work)
    path = _target(run, kind)
    raw = bytearray(path.read_bytes())
    at = int(len(raw) * where)
    if truncate:
        raw = raw[:at]
    else:
        raw[at:at + span] = bytes(b ^ 0xA5 for b in raw[at:at + span])
    path.write_bytes(bytes(raw))
    results = _run_all([c for c in _commands(run, work) if "--trials" not in c], work, cache_dir)
    for r in results:
        _check_one_sentence(r)
        if r["code"] == 2:
            assert str(path) in r["stderr"], (r["argv"], r["stderr"])
            if r["argv"][0] == "export":
                assert not Path(r["argv"][-1]).exists()
    if kind != "hlog" and kind != "ids":  # read by every command: every one refuses, none writes
        assert all(r["code"] == 2 for r in results) and _outputs(work) == []
