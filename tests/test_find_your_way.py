"""Finding one's way, through the real command line: `bench workloads` (list, show, keys), "did you mean" for a
workload and a `--set` key, the list hint, the flag named in its own error, the server hint that fits the
machine, and that every key a message names is documented."""

import ast
import json
import re
import socket
import tomllib

from bench.spec import REPO_ROOT, WORKLOAD_DIR
from bench.workload_guide import key_reference, sections

SHIPPED = sorted(p.relative_to(WORKLOAD_DIR).with_suffix("").as_posix()
                 for p in (*WORKLOAD_DIR.glob("*.toml"), *WORKLOAD_DIR.glob("*/*.toml")))


def _user_error(p, *needles: str) -> str:
    assert p.returncode == 2, (p.returncode, p.stdout, p.stderr)
    err = p.stderr.strip()
    assert "Traceback" not in p.stderr and len(err.splitlines()) == 1, err
    assert err.startswith("error: ") and err.endswith("."), err
    for n in needles:
        assert n in err, (n, err)
    return err


def test_workloads_lists_every_shipped_file_one_line_each(bench_cli):
    p = bench_cli("workloads", env={"COLUMNS": "100"})
    assert p.returncode == 0, p.stderr
    lines = p.stdout.splitlines()
    assert all(len(line.rstrip()) <= 100 for line in lines), max(lines, key=len)
    for name in SHIPPED:  # one row each, whose first cell is the name
        assert sum(1 for line in lines if line.split()[:1] == [name]) == 1, name
    smoke = next(line for line in lines if line.split()[:1] == ["ann-smoke"])
    assert re.search(r"ann-smoke\s+ann\s+10k x 768\s+200\s+small smoke test", smoke), smoke
    filtered = next(line for line in lines if line.split()[:1] == ["ann-filtered"])
    assert " ann+filter " in filtered


def test_workloads_json_has_kind_and_size(bench_cli):
    p = bench_cli("workloads", "--json")
    assert p.returncode == 0, p.stderr
    entries = {w["name"]: w for w in json.loads(p.stdout)}
    assert sorted(entries) == SHIPPED
    smoke = entries["ann-smoke"]
    assert (smoke["kind"], smoke["n"], smoke["dim"], smoke["queries"]) == ("ann", 10_000, 768, 200)
    assert smoke["description"].startswith("small smoke test")
    assert entries["ycsb-a"]["kind"] == "ycsb" and entries["vdbb/performance-768d-1m"]["n"] == 1_000_000


def test_workloads_show_explains_each_key_and_stays_a_workload_file(bench_cli, tmp_path):
    p = bench_cli("workloads", "show", "ycsb-a")
    assert p.returncode == 0, p.stderr
    out = p.stdout.splitlines()
    file = WORKLOAD_DIR / "ycsb-a.toml"
    assert tomllib.loads(p.stdout) == tomllib.loads(file.read_text())  # the '#:' lines are comments
    for i, line in enumerate(out):  # every key line is followed by its explanation
        if re.match(r"^[a-z_]+\s*=", line):
            assert out[i + 1].startswith("#: "), (line, out[i + 1])
    i = out.index(next(line for line in out if line.startswith("request_distribution")))
    assert "zipfian (a few hot keys)" in out[i + 1] and "(default \"zipfian\")" in " ".join(out[i + 1:i + 3])
    assert any("also in [run], at their defaults:" in line and "min_operations" in line for line in out)
    # a name that is not there gets the same "did you mean" as `bench run`
    _user_error(bench_cli("workloads", "show", "ycsb-aa"), "Unknown workload 'ycsb-aa'", "did you mean 'ycsb-a'")


def test_misspelt_workload_gets_did_you_mean(bench_cli, tmp_path):
    err = _user_error(bench_cli("run", "-b", "null", "-w", "ann-smok"), "Unknown workload 'ann-smok'",
                      "did you mean 'ann-smoke'?", "`bench workloads`")
    assert len(err) < 200  # not the list of every workload
    _user_error(bench_cli("run", "-b", "null", "-w", "vdbb/performance-768d-1n"),
                "did you mean 'vdbb/performance-768d-1m'?")
    assert not (tmp_path / "results").exists()


def test_unknown_set_key_lists_the_sections_keys_closest_first(bench_cli):
    err = _user_error(bench_cli("run", "-b", "null", "--set", "dataset.nn=4000"),
                      "unknown key 'dataset.nn'", "did you mean 'dataset.n'?")
    keys = err.split("closest first: ")[1].split(")")[0].split(", ")
    assert keys[0] == "n" and {"queries", "dim", "metric", "seed"} <= set(keys), keys
    assert err.startswith("error: --set dataset.nn=4000:") and "ann-smoke.toml" not in err
    err = _user_error(bench_cli("run", "-b", "null", "--set", "run.min_operation=10"),
                      "did you mean 'run.min_operations'?")
    _user_error(bench_cli("run", "-b", "null", "--set", "datset.n=10"), "unknown section 'datset'",
                "did you mean 'dataset'?")
    _user_error(bench_cli("run", "-b", "null", "--set", "backend.curency=\"EUR\""),
                "did you mean 'currency'?", "the keys of backend 'null', closest first: currency, price_per_hour")


def test_other_files_get_did_you_mean_too(bench_cli, tmp_path):
    suite = tmp_path / "suite.toml"
    suite.write_text('name = "s"\nbackends = ["null"]\nworkloads = ["ann-smoke"]\ntrails = 3\n')
    _user_error(bench_cli("suite", str(suite)), "unknown key 'trails'", "did you mean 'trials'?", "suite.toml")


def test_a_list_value_gets_the_list_hint(bench_cli):
    _user_error(bench_cli("run", "-b", "null", "--set", "search.ef_search=64,128"),
                "--set search.ef_search=[64,128]")
    _user_error(bench_cli("run", "-b", "null", "--set", "search.ef_search=64"), "--set search.ef_search=[64]")


def test_list_hint_in_a_file_is_in_file_syntax(bench_cli, tmp_path):
    f = tmp_path / "one-ef.toml"
    f.write_text((WORKLOAD_DIR / "ann-smoke.toml").read_text().replace("ef_search = [32, 64, 128]", "ef_search = 64"))
    err = _user_error(bench_cli("run", "-b", "null", "-w", str(f)), "(write a list: ef_search = [64])")
    assert "one-ef.toml" in err  # the file is at fault here, and named


def test_a_flag_error_names_the_flag_not_the_file(bench_cli, tmp_path):
    err = _user_error(bench_cli("run", "-b", "null", "--trials", "-1"), "--trials -1", "'run.trials' = -1",
                      "fix the value on the command line")
    assert "ann-smoke.toml" not in err and "Workload" not in err
    err = _user_error(bench_cli("run", "-b", "null", "--target-rate", "-5"), "--target-rate -5")
    assert "ann-smoke.toml" not in err
    err = _user_error(bench_cli("run", "-b", "null", "--price-per-hour", "-1"), "--price-per-hour -1 must be")
    assert "--set" not in err  # the flag becomes backend.price_per_hour, but the user typed the flag
    # a flag and the file both at fault: the file is named, and the flag beside its own error
    f = tmp_path / "typo.toml"
    f.write_text((WORKLOAD_DIR / "ann-smoke.toml").read_text().replace("[search]\n", "[search]\nkk = 1\n"))
    err = _user_error(bench_cli("run", "-b", "null", "-w", str(f), "--trials", "0"), "typo.toml",
                      "unknown key 'search.kk'", "(from --trials 0)")


def _docker_env(tmp_path, listening: bool):
    sock = tmp_path / ("docker.sock" if listening else "none.sock")
    server = None
    if listening:
        server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        server.bind(str(sock))
        server.listen(8)
    return server, {"DOCKER_HOST": f"unix://{sock}"}


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_server_hint_fits_the_machine(bench_cli, tmp_path):
    dsn = f'backend.dsn="postgresql://bench@127.0.0.1:{_closed_port()}/bench"'
    _, env = _docker_env(tmp_path, listening=False)
    err = _user_error(bench_cli("run", "-b", "pgvector", "--set", dsn, env=env),
                      "`python scripts/services.py up pgvector`", "no Docker daemon answers")
    assert "docker compose" not in err
    server, env = _docker_env(tmp_path, listening=True)  # something answers on the Docker socket
    try:
        err = _user_error(bench_cli("run", "-b", "pgvector", "--set", dsn, env=env), "`docker compose up -d pgvector`")
    finally:
        server.close()
    assert "services.py" not in err
    # an engine that scripts/services.py does not run keeps the compose hint, and says what it needs
    _, env = _docker_env(tmp_path, listening=False)
    _user_error(bench_cli("run", "-b", "qdrant", "--set", f'backend.url="http://127.0.0.1:{_closed_port()}"', env=env),
                "`docker compose up -d qdrant` (it needs a Docker daemon; none answers here)")


# -- every key is documented -----------------------------------------------------------------------------------

def test_every_workload_key_has_a_description():
    missing = [f"{name or 'top level'}.{key}" for name, model in sections().items()
               for key, field in model.model_fields.items() if not field.exclude and not field.description]
    assert not missing, missing


def test_workload_keys_page_is_current(bench_cli):
    page = (REPO_ROOT / "docs" / "workload-keys.md").read_text()
    assert page == key_reference(), "regenerate: bench workloads keys > docs/workload-keys.md"
    p = bench_cli("workloads", "keys")
    assert p.returncode == 0 and p.stdout == page


NOT_KEYS = {"json", "html", "py", "parquet", "toml", "md", "png", "csv", "txt", "log", "sha256"}  # file names, e.g. run.json


def _keys_named_in_messages() -> dict[tuple[str, str], str]:
    """Every `section.key` a string in bench's source names (hints, errors, help), with a file naming it."""
    secs = [s for s in sections() if s]
    pat = re.compile(r"(?<![\w./\-\[])(" + "|".join(secs) + r")\.([a-z][a-z0-9_]*)\b(?![.(/\-])")
    found: dict[tuple[str, str], str] = {}
    for f in (REPO_ROOT / "bench").rglob("*.py"):
        for node in ast.walk(ast.parse(f.read_text())):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                for m in pat.finditer(node.value):
                    if m.group(2) not in NOT_KEYS and not m.group(2).endswith("_"):
                        found.setdefault((m.group(1), m.group(2)), str(f.relative_to(REPO_ROOT)))
    return found


def test_every_key_a_message_names_is_documented():
    named = _keys_named_in_messages()
    assert ("run", "min_operations") in named and len(named) > 20, named  # the scan finds what it should
    models = sections()
    page = (REPO_ROOT / "docs" / "workload-keys.md").read_text().split("\n## ")
    for (section, key), where in sorted(named.items()):
        field = models[section].model_fields.get(key)
        assert field is not None, f"{where} names {section}.{key}, which is no key"
        assert field.description, f"{where} names {section}.{key}, which has no description"
        block = next(b for b in page if b.startswith(f"[{section}]"))
        assert f"| `{key}` |" in block, f"{section}.{key} is not in docs/workload-keys.md"
