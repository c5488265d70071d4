"""Bad input, property-based: malformed TOML, wrong types, out-of-range values, datasets that do not fit the
workload, truncated or corrupt dataset files (npy, fvecs, HDF5, parquet). Every case ends with exit code 2 and one
sentence on stderr, never a traceback, and leaves no result folder behind (so nothing that looks whole but is not).

Most cases call `bench.cli.main` in this process (fast); a few run the real command in a subprocess. Every
hypothesis test has a fixed, derandomized example budget so CI time is bounded.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import sys
import tempfile
import tomllib
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from bench.cli import main
from bench.spec import WORKLOAD_DIR

# No shrinking phase: a failure prints its (derandomized, so reproducible) example, and CI time stays bounded.
PHASES = [Phase.explicit, Phase.generate]
CHECKS = [HealthCheck.too_slow, HealthCheck.function_scoped_fixture]
FAST = settings(max_examples=25, deadline=None, derandomize=True, database=None, phases=PHASES,
                suppress_health_check=CHECKS)
FILES = settings(FAST, max_examples=40)
SMALL = ["--set", "dataset.n=200", "--set", "dataset.queries=20", "--set", "dataset.dim=8", "--set", "run.trials=1",
         "--set", "run.warmup_s=0", "--set", "search.ef_search=[8]", "--quiet"]
ROWS, DIM = 60, 6  # dataset files: every row is needed (n + queries), so any lost row is an error


@dataclass
class Outcome:
    code: int
    stdout: str
    stderr: str


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("bad-input")


@pytest.fixture(scope="module", autouse=True)
def _mount_once():
    """`main()` mounts the datasets sub-app on every call (once per process in real use); hundreds of calls in
    one process would stack copies of it, so mount it once here."""
    import bench.cli

    bench.cli._mount_subapps()
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(bench.cli, "_mount_subapps", lambda: None)
        yield


def bench(work: Path, *args: str) -> Outcome:
    """`bench ARGS` in this process; results go to a fresh folder under `work`, its cache is shared."""
    results = Path(tempfile.mkdtemp(prefix="results-", dir=work))
    argv = ["bench", *args]
    if args and args[0] == "run":
        argv += ["--results-dir", str(results / "r"), "--cache-dir", str(work / "cache")]
    out, err = io.StringIO(), io.StringIO()
    old = sys.argv
    sys.argv = argv
    code: int | None = 0
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            main()
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    finally:
        sys.argv = old
    o = Outcome(int(code or 0), out.getvalue(), err.getvalue())
    if args and args[0] == "run" and o.code == 2:
        assert not (results / "r").exists() or not any((results / "r").iterdir()), \
            f"a failed run left results behind: {list((results / 'r').rglob('*'))}"
    return o


def assert_user_error(o: Outcome, *needles: str) -> None:
    assert o.code == 2, (o.code, o.stdout[-2000:], o.stderr[-2000:])
    assert "Traceback" not in o.stderr and "Traceback" not in o.stdout
    err = o.stderr.strip()
    assert len(err.splitlines()) == 1, err
    assert err.startswith("error: ") and err.endswith("."), err
    for n in needles:
        assert n in err, err


# -- malformed TOML ------------------------------------------------------------------------------------------

GOOD = (WORKLOAD_DIR / "ann-smoke.toml").read_text()
BREAKERS = ["[dataset", "n = ", "= 5", 'name = "unterminated', "k = [1, 2", "[[run]]\n[run]", "x = {a = 1,,}",
            "3 = = 3", "[search]\n[search]", "ef_search = [32 64]", "n = 1_", "key with spaces = 1", "\x00"]


@FAST
@given(line=st.integers(0, GOOD.count("\n")), breaker=st.sampled_from(BREAKERS), junk=st.text(max_size=8))
def test_malformed_toml_is_one_sentence(work, line, breaker, junk):
    lines = GOOD.splitlines()
    lines.insert(line, breaker + junk.replace("\n", " "))
    f = Path(tempfile.mkdtemp(dir=work)) / "bad.toml"
    f.write_text("\n".join(lines))
    assert_user_error(bench(work, "run", "--backend", "null", "--workload", str(f), *SMALL), str(f))


@FAST
@given(content=st.one_of(st.binary(max_size=200), st.text(max_size=200)))
def test_arbitrary_file_content_is_one_sentence(work, content):
    f = Path(tempfile.mkdtemp(dir=work)) / "any.toml"
    if isinstance(content, bytes):
        f.write_bytes(content)
    else:
        f.write_text(content)
    assert_user_error(bench(work, "run", "--backend", "null", "--workload", str(f), *SMALL), str(f))


def test_a_table_where_a_value_belongs(work):
    f = Path(tempfile.mkdtemp(dir=work)) / "t.toml"
    f.write_text('name = "x"\nkind = "ann"\ndataset = 5\n')
    assert_user_error(bench(work, "run", "--backend", "null", "--workload", str(f)), "'dataset' = 5")


# -- wrong types and out-of-range values ---------------------------------------------------------------------

INT_KEYS = ["dataset.n", "dataset.queries", "dataset.holdout", "dataset.dim", "dataset.seed", "search.k",
            "index.m", "index.ef_construction", "run.trials", "run.concurrency", "run.batch_size", "run.operations"]
FLOAT_KEYS = ["run.warmup_s", "run.duration_s", "run.target_rate", "run.error_threshold", "run.index_timeout_s",
              "dataset.noise", "dataset.local_spread"]
CHOICE_KEYS = ["dataset.metric", "index.kind", "run.arrival", "run.on_trial_failure", "kind", "index.quantization"]
# Values no lax conversion turns into a number or a choice: lists, inline tables, dates, words.
WRONG = st.one_of(st.just("[1, 2]"), st.just("{a = 1}"), st.just("1979-05-27"), st.just("true"),
                  st.from_regex(r"\A[a-z]{1,10}\Z").filter(lambda w: w not in ("true", "false", "inf", "nan")))


@FAST
@given(key=st.sampled_from(INT_KEYS + FLOAT_KEYS), value=WRONG)
def test_wrong_type_is_one_sentence(work, key, value):
    if value == "true" and key in FLOAT_KEYS + INT_KEYS:  # TOML true is a bool: pydantic refuses it for floats,
        value = '"true"'  # but takes it as 1 for ints; a quoted word is wrong for both
    o = bench(work, "run", "--backend", "null", "--workload", "ann-smoke", *SMALL, "--set", f"{key}={value}")
    assert_user_error(o, f"'{key}'")


@FAST
@given(key=st.sampled_from(CHOICE_KEYS), value=st.from_regex(r"\A[a-z]{1,10}\Z"))
def test_unknown_choice_is_one_sentence(work, key, value):
    allowed = {"dataset.metric": {"cosine", "l2", "ip"}, "index.kind": {"hnsw", "flat"},
               "run.arrival": {"constant", "poisson"}, "run.on_trial_failure": {"continue", "stop"},
               "kind": {"ann"}, "index.quantization": {"int8", "fp16", "pq", "binary"}}[key]
    if value in allowed:
        value += "x"
    o = bench(work, "run", "--backend", "null", "--workload", "ann-smoke", *SMALL, "--set", f'{key}="{value}"')
    assert_user_error(o)


POSITIVE = ["dataset.n", "dataset.queries", "dataset.dim", "search.k", "run.trials", "run.concurrency",
            "run.batch_size", "run.operations", "index.m"]


@FAST
@given(key=st.sampled_from(POSITIVE + ["dataset.holdout", "dataset.seed"]), value=st.integers(-10**6, 0))
def test_negative_or_zero_counts(work, key, value):
    if key in ("dataset.holdout", "dataset.seed") and value == 0:
        value = -1  # 0 is allowed there
    o = bench(work, "run", "--backend", "null", "--workload", "ann-smoke", *SMALL, "--set", f"{key}={value}")
    assert_user_error(o, f"'{key}'")


@FAST
@given(key=st.sampled_from(INT_KEYS), value=st.integers(2**63, 2**80))
def test_whole_numbers_beyond_64_bits(work, key, value):
    o = bench(work, "run", "--backend", "null", "--workload", "ann-smoke", *SMALL, "--set", f"{key}={value}")
    assert_user_error(o, f"'{key}'", "64-bit")


@FAST
@given(key=st.sampled_from(FLOAT_KEYS), value=st.sampled_from(["inf", "-inf", "nan"]))
def test_infinity_and_nan(work, key, value):
    o = bench(work, "run", "--backend", "null", "--workload", "ann-smoke", *SMALL, "--set", f"{key}={value}")
    assert_user_error(o, f"'{key}'")


@FAST
@given(n=st.integers(1, 500), extra=st.integers(1, 10_000))
def test_k_larger_than_the_dataset(work, n, extra):
    k = min(n + extra, 10_000)
    if k <= n:
        k = n + 1
    o = bench(work, "run", "--backend", "null", "--workload", "ann-smoke", *SMALL, "--set", f"dataset.n={n}",
              "--set", f"search.k={k}")
    assert_user_error(o)
    assert "larger than the dataset" in o.stderr or "'search.k'" in o.stderr


PROPORTIONS = ["read_proportion", "update_proportion", "insert_proportion", "scan_proportion",
               "read_modify_write_proportion", "search_proportion"]


@FAST
@given(props=st.lists(st.floats(0, 1, allow_nan=False), min_size=6, max_size=6))
def test_proportions_that_do_not_add_up(work, props):
    if abs(sum(props) - 1.0) < 1e-3:
        props[0] = props[0] + 0.5 if props[0] <= 0.5 else props[0] - 0.5
    sets = [a for p, v in zip(PROPORTIONS, props, strict=True) for a in ("--set", f"ycsb.{p}={v!r}")]
    o = bench(work, "run", "--backend", "chroma", "--workload", "ycsb-a", *SMALL, *sets)
    assert_user_error(o, "add up to")


@FAST
@given(key=st.sampled_from(PROPORTIONS), value=st.one_of(st.floats(-100, -1e-9), st.floats(1 + 1e-9, 100)))
def test_proportion_out_of_range(work, key, value):
    o = bench(work, "run", "--backend", "chroma", "--workload", "ycsb-a", *SMALL, "--set", f"ycsb.{key}={value!r}")
    assert_user_error(o, f"'ycsb.{key}'")


@pytest.mark.parametrize("args,needle", [
    (["--set", "dataset.dim=0"], "'dataset.dim'"),
    (["--set", "dataset.n=-1"], "'dataset.n'"),
    (["--set", "search.ef_search=[0]"], "ef_search"),
    (["--set", "search.ef_search=[]"], "'search.ef_search'"),
    (["--trials", "0"], "'run.trials'"),
    (["--concurrency", "-2"], "--concurrency '-2'"),
    (["--target-rate", "inf"], "'run.target_rate'"),
    (["--run-id", "../outside"], "not a plain folder name"),
    (["--run-id", "a/b"], "not a plain folder name"),
    (["--set", "dataset.n.x=1"], "is a value, not a section"),
    (["--set", "dataset.seed=99999999999999999999999"], "64-bit"),
    (["--set", "backend.bogus=1"], "unknown key 'bogus'"),
])
def test_bad_flags(work, args, needle):
    assert_user_error(bench(work, "run", "--backend", "null", "--workload", "ann-smoke", *SMALL, *args), needle)


def test_ycsb_table_in_an_ann_workload(work):
    o = bench(work, "run", "--backend", "null", "--workload", "ann-smoke", *SMALL, "--set", "ycsb.read_proportion=1")
    assert_user_error(o, "only read when kind = 'ycsb'")


def test_results_dir_that_is_a_file(work):
    f = work / "a-file"
    f.write_text("x")
    o = bench(work, "run", "--backend", "null", "--workload", "ann-smoke", *SMALL)  # sanity: runs
    assert o.code == 0, o.stderr
    sys_argv = ["run", "--backend", "null", "--workload", "ann-smoke", *SMALL]
    err = io.StringIO()
    old = sys.argv
    sys.argv = ["bench", *sys_argv, "--results-dir", str(f), "--cache-dir", str(work / "cache")]
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()), \
                pytest.raises(SystemExit) as e:
            main()
    finally:
        sys.argv = old
    assert_user_error(Outcome(e.value.code, "", err.getvalue()), "is a file, not a folder")


# -- dataset files: dimension mismatch, truncation, corruption -----------------------------------------------

def _write_npy(path: Path, a: np.ndarray) -> None:
    np.save(path, a)


def _write_fvecs(path: Path, a: np.ndarray) -> None:
    n, d = a.shape
    out = np.empty((n, d + 1), dtype=np.float32)
    out[:, 0] = np.array([d], dtype=np.int32).view(np.float32)[0]
    out[:, 1:] = a
    out.tofile(path)


def _write_hdf5(path: Path, a: np.ndarray) -> None:
    with h5py.File(path, "w") as f:
        f["train"] = a


def _write_parquet(path: Path, a: np.ndarray) -> None:
    pq.write_table(pa.table({"id": np.arange(len(a)), "emb": list(a)}), path, compression="none")


WRITERS = {".npy": _write_npy, ".fvecs": _write_fvecs, ".hdf5": _write_hdf5, ".parquet": _write_parquet}
FILE_ARGS = ["--set", 'dataset.source="file"', "--set", f"dataset.dim={DIM}", "--set", f"dataset.n={ROWS - 10}", "--set", "dataset.queries=10",
             "--set", "run.trials=1", "--set", "run.warmup_s=0", "--set", "search.ef_search=[8]", "--quiet"]


def _dataset(work: Path, suffix: str, seed: int) -> tuple[Path, np.ndarray]:
    a = np.random.default_rng(seed).standard_normal((ROWS, DIM)).astype(np.float32)
    path = Path(tempfile.mkdtemp(dir=work)) / f"data{suffix}"
    WRITERS[suffix](path, a)
    return path, a


def _run_file(work: Path, path: Path, *extra: str) -> Outcome:
    return bench(work, "run", "--backend", "null", "--workload", "ann-smoke", *FILE_ARGS,
                 "--set", f'dataset.path="{path}"', *extra)


@pytest.mark.parametrize("suffix", list(WRITERS))
def test_sound_files_run(work, suffix):
    """The control: the same files, unharmed, run to the end (so the failures below are the harm's doing)."""
    path, _ = _dataset(work, suffix, 0)
    o = _run_file(work, path)
    assert o.code == 0, o.stderr


@FAST
@given(suffix=st.sampled_from(list(WRITERS)), dim=st.integers(1, 4096).filter(lambda d: d != DIM))
def test_dataset_dimension_does_not_match_the_workload(work, suffix, dim):
    path, _ = _dataset(work, suffix, 1)
    assert_user_error(_run_file(work, path, "--set", f"dataset.dim={dim}"), f"dimension {DIM}",
                      f"dataset.dim = {dim}")


@FILES
@given(suffix=st.sampled_from(list(WRITERS)), cut=st.floats(0.0, 1.0, exclude_max=True))
def test_truncated_files(work, suffix, cut):
    path, _ = _dataset(work, suffix, 2)
    size = path.stat().st_size
    keep = min(int(size * cut), size - 1)
    with open(path, "r+b") as f:
        f.truncate(keep)
    assert_user_error(_run_file(work, path), str(path))


@FILES
@given(suffix=st.sampled_from(list(WRITERS)), row=st.integers(0, ROWS - 1), col=st.integers(0, DIM - 1),
       bad=st.sampled_from([math.nan, math.inf, -math.inf, 3e38, -1e30]))
def test_non_finite_vectors(work, suffix, row, col, bad):
    a = np.random.default_rng(3).standard_normal((ROWS, DIM)).astype(np.float32)
    a[row, col] = bad
    path = Path(tempfile.mkdtemp(dir=work)) / f"data{suffix}"
    WRITERS[suffix](path, a)
    assert_user_error(_run_file(work, path), str(path), "corrupt")


@settings(FAST, max_examples=60)
@given(suffix=st.sampled_from(list(WRITERS)), where=st.floats(0.0, 1.0, exclude_max=True),
       span=st.integers(1, 64), seed=st.integers(0, 2**16))
def test_damaged_bytes(work, suffix, where, span, seed):
    """Random bytes over part of a file. Damage the format can detect (headers, footers, NaN) must be one
    sentence and exit 2; damage that still reads as plausible numbers cannot be told from data, and then the run
    must finish whole. Never a traceback, never a half-written result."""
    path, _ = _dataset(work, suffix, 4)
    raw = bytearray(path.read_bytes())
    start = int(len(raw) * where)
    noise = np.random.default_rng(seed).integers(0, 256, span, dtype=np.uint8).tobytes()
    raw[start:start + span] = noise[: max(0, min(span, len(raw) - start))]
    path.write_bytes(bytes(raw))
    o = _run_file(work, path)
    if o.code == 2:
        assert_user_error(o)
        return
    assert o.code == 0, (o.code, o.stderr[-3000:])
    assert "Traceback" not in o.stderr
    (line,) = [x for x in o.stdout.splitlines() if x.startswith("results: ")]
    trials_path = Path(line[len("results: "):].split(" (")[0]) / "trials.parquet"
    trials = pq.read_table(trials_path).to_pylist()
    assert trials and all(r["run_status"] == "complete" and r["errors"] == 0 for r in trials)
    assert json.loads((trials_path.parent / "run.json").read_text())["status"] == "complete"


def test_magic_bytes_zeroed(work):
    for suffix in WRITERS:
        path, _ = _dataset(work, suffix, 5)
        raw = bytearray(path.read_bytes())
        raw[:8] = b"\0" * 8
        if suffix == ".parquet":
            raw[-4:] = b"\0" * 4
        path.write_bytes(bytes(raw))
        assert_user_error(_run_file(work, path), str(path))


def test_empty_files(work):
    for suffix in WRITERS:
        path = Path(tempfile.mkdtemp(dir=work)) / f"empty{suffix}"
        path.write_bytes(b"")
        assert_user_error(_run_file(work, path), str(path))


# -- real subprocesses ---------------------------------------------------------------------------------------

def _assert_cli_error(p, *needles):
    assert p.returncode == 2, (p.returncode, p.stdout, p.stderr)
    assert "Traceback" not in p.stderr and "Traceback" not in p.stdout
    err = p.stderr.strip()
    assert len(err.splitlines()) == 1 and err.startswith("error: ") and err.endswith("."), err
    for n in needles:
        assert n in err, err


def test_subprocess_malformed_toml(bench_cli, tmp_path):
    f = tmp_path / "w.toml"
    f.write_text(GOOD.replace("[dataset]", "[dataset"))
    with pytest.raises(tomllib.TOMLDecodeError):
        tomllib.loads(f.read_text())
    _assert_cli_error(bench_cli("run", "--backend", "null", "--workload", str(f)), "not valid TOML")
    assert not (tmp_path / "results").exists()


def test_subprocess_corrupt_npy_and_dimension(bench_cli, tmp_path):
    a = np.random.default_rng(0).standard_normal((ROWS, DIM)).astype(np.float32)
    a[7, 2] = np.nan
    f = tmp_path / "v.npy"
    np.save(f, a)
    _assert_cli_error(bench_cli("run", "--backend", "null", "--workload", "ann-smoke", *FILE_ARGS,
                                "--set", f'dataset.path="{f}"'), "corrupt", "row 7")
    np.save(f, np.nan_to_num(a))
    _assert_cli_error(bench_cli("run", "--backend", "null", "--workload", "ann-smoke", *FILE_ARGS,
                                "--set", f'dataset.path="{f}"', "--set", "dataset.dim=32"), "dimension 6")
    assert not (tmp_path / "results").exists()


def test_subprocess_truncated_hdf5(bench_cli, tmp_path):
    f = tmp_path / "v.hdf5"
    _write_hdf5(f, np.ones((ROWS, DIM), dtype=np.float32))
    f.write_bytes(f.read_bytes()[: f.stat().st_size // 2])
    _assert_cli_error(bench_cli("run", "--backend", "null", "--workload", "ann-smoke", *FILE_ARGS,
                                "--set", f'dataset.path="{f}"'), "HDF5")
    assert not (tmp_path / "results").exists()
