"""A user mistake ends in one clear sentence on stderr, exit code 2, no traceback, and no result files."""

import pytest


def _assert_user_error(p, *needles):
    assert p.returncode == 2, (p.returncode, p.stdout, p.stderr)
    err = p.stderr.strip()
    assert "Traceback" not in p.stderr and "Traceback" not in p.stdout
    assert len(err.splitlines()) == 1, err
    assert err.startswith("error: ") and err.endswith(".")
    for n in needles:
        assert n in err, err


def test_unknown_backend(bench_cli, tmp_path):
    p = bench_cli("run", "--backend", "qdrnt-edge", "--workload", "ann-smoke")
    _assert_user_error(p, "Unknown backend 'qdrnt-edge'", "did you mean 'qdrant-edge'")
    assert not (tmp_path / "results").exists()


def test_unknown_workload(bench_cli):
    _assert_user_error(bench_cli("run", "--backend", "null", "--workload", "no-such"), "Unknown workload 'no-such'")


@pytest.mark.parametrize("override,needle", [
    ("dataset.bogus=1", "unknown key 'dataset.bogus'"),
    ("dataset.n=abc", "'dataset.n' = 'abc'"),
    ("run.trials=-1", "'run.trials' = -1"),
    ("index.m=1", "'index.m' = 1"),
    ("dataset.n=5", "larger than the dataset"),
    ("nosuch.key=1", "unknown section 'nosuch'"),
    ("backend.bogus=1", "unknown key 'bogus'"),
])
def test_bad_override(bench_cli, tmp_path, override, needle):
    p = bench_cli("run", "--backend", "null", "--workload", "ann-smoke", "--set", override)
    _assert_user_error(p, needle)
    assert not (tmp_path / "results").exists()


def test_bad_workload_files(bench_cli, tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text('name = "x"\nkind = "ann"\n[dataset\nn = 5\n')
    _assert_user_error(bench_cli("run", "--backend", "null", "--workload", str(bad)), "not valid TOML")
    typo = tmp_path / "typo.toml"
    typo.write_text('name = "x"\nkind = "ann"\n[serch]\nk = 10\n')
    _assert_user_error(bench_cli("run", "--backend", "null", "--workload", str(typo)), "unknown key 'serch'")
    wrong = tmp_path / "wrong.toml"
    wrong.write_text('name = "x"\nkind = "ann"\n[search]\nk = "ten"\n')
    _assert_user_error(bench_cli("run", "--backend", "null", "--workload", str(wrong)), "'search.k'")
    _assert_user_error(bench_cli("run", "--backend", "null", "--workload", str(tmp_path / "missing.toml")),
                       "does not exist")


def test_missing_dataset_file(bench_cli, tmp_path):
    p = bench_cli("run", "--backend", "null", "--workload", "ann-smoke", "--set", "dataset.source=\"file\"",
                  "--set", f"dataset.path=\"{tmp_path / 'nope.npy'}\"")
    _assert_user_error(p, "nope.npy")
    assert not (tmp_path / "results").exists()


def test_bad_set_syntax(bench_cli):
    _assert_user_error(bench_cli("run", "--backend", "null", "--set", "dataset.n"), "has no '='")
