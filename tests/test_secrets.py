"""Secrets in backend options never reach results: run.json, every parquet row and the stored command hold a
fingerprint (`***sha256:` + 8 hex digits) or `***`, while the adapter still connects with the real value. A secret
can be read from an environment variable (`env:NAME`) or a file (`file:PATH`)."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys

import pytest
from backend_options import no_server

from bench.backends.base import public_options, redact_command
from bench.backends.milvus import MilvusBackend, MilvusOptions
from bench.backends.pgvector import PgvectorOptions, _auth
from bench.backends.qdrant import QdrantOptions
from bench.backends.secrets import redact_settings, redact_text
from bench.backends.weaviate import WeaviateOptions
from bench.errors import UserError
from bench.spec import load_backend_options


def fp(secret: str) -> str:
    return "***sha256:" + hashlib.sha256(secret.encode()).hexdigest()[:8]


def test_public_options_fingerprint_secrets_and_redact_dsn_passwords() -> None:
    q = QdrantOptions(url="https://admin:url-pass@cloud.example:6333", api_key="qk-123")
    pub = public_options(q)
    assert pub["api_key"] == fp("qk-123") and pub["url"] == "https://admin:***@cloud.example:6333"
    assert pub["timeout_s"] == 30 and json.dumps(pub)  # JSON-able, the rest as it was
    assert public_options(QdrantOptions())["api_key"] == ""  # no key: nothing to hide, nothing shown
    assert public_options(MilvusOptions(token="root:Milvus"))["token"] == fp("root:Milvus")
    assert public_options(WeaviateOptions(api_key="wk"))["api_key"] == fp("wk")
    pg = PgvectorOptions(dsn="host=db user=bench password='p w' dbname=bench", password="pg-pass")
    pub = public_options(pg)
    assert pub["dsn"] == "host=db user=bench password='***' dbname=bench" and pub["password"] == fp("pg-pass")
    assert redact_text("postgresql://bench:hunter2@127.0.0.1:5432/bench") == "postgresql://bench:***@127.0.0.1:5432/bench"
    assert "secret" not in repr(QdrantOptions(api_key="secret"))  # not even in a traceback's locals


def test_secrets_come_from_the_environment_or_a_file(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("BENCH_TEST_QDRANT_KEY", "from-env")
    key_file = tmp_path / "key"
    key_file.write_text("from-file\n")
    o, _ = load_backend_options(QdrantOptions, "qdrant", None, ['backend.api_key="env:BENCH_TEST_QDRANT_KEY"'])
    assert o.api_key.get_secret_value() == "from-env"
    o, _ = load_backend_options(MilvusOptions, "milvus", None, [f'backend.token="file:{key_file}"'])
    assert o.token.get_secret_value() == "from-file"
    cfg = tmp_path / "pg.toml"
    cfg.write_text('dsn = "postgresql://bench@127.0.0.1:5432/bench"\npassword = "env:BENCH_TEST_QDRANT_KEY"\n')
    o, _ = load_backend_options(PgvectorOptions, "pgvector", str(cfg))
    assert _auth(o) == {"password": "from-env"}  # what psycopg.connect gets
    monkeypatch.delenv("BENCH_TEST_QDRANT_KEY")
    with pytest.raises(UserError, match="refers to the environment variable BENCH_TEST_QDRANT_KEY, which is not set"):
        load_backend_options(QdrantOptions, "qdrant", None, ['backend.api_key="env:BENCH_TEST_QDRANT_KEY"'])
    with pytest.raises(UserError, match=f"refers to the file {tmp_path / 'missing'}, which cannot be read"):
        load_backend_options(QdrantOptions, "qdrant", None, [f'backend.api_key="file:{tmp_path / "missing"}"'])


def test_adapters_connect_with_the_real_secret(monkeypatch) -> None:
    import qdrant_client

    from bench.backends.qdrant import QdrantBackend

    seen = {}
    monkeypatch.setattr(qdrant_client, "QdrantClient", lambda **kw: seen.update(kw))
    QdrantBackend(QdrantOptions(api_key="qk-real"), "/tmp")._make_client()
    assert seen["api_key"] == "qk-real"
    milvus = MilvusBackend(MilvusOptions(token="user:pw"), "/tmp")
    assert milvus._client_kwargs()["token"] == "user:pw"


def test_the_stored_command_is_redacted() -> None:
    cmd = ("bench run --backend qdrant --set 'backend.api_key=\"qk-123\"' --set=backend.token=tok-9 "
           "--set 'backend.dsn=\"postgresql://bench:hunter2@db/bench\"' --set 'backend.api_key=\"env:QDRANT_API_KEY\"' "
           "--restart-cmd 'PGPASSWORD=pw9 pg_ctl start' --set dataset.n=1000")
    out = redact_command(cmd)
    for secret in ("qk-123", "tok-9", "hunter2", "pw9"):
        assert secret not in out
    assert f"backend.api_key={fp('qk-123')}" in out and f"--set=backend.token={fp('tok-9')}" in out
    assert "postgresql://bench:***@db/bench" in out and "PGPASSWORD=*** pg_ctl start" in out
    assert 'backend.api_key="env:QDRANT_API_KEY"' in out and "dataset.n=1000" in out  # references are not secrets
    assert redact_command(out) == out
    spec = {"set": ['backend.api_key="qk-123"', "dataset.n=5"], "backend": {"pgvector": {"set": [
        'backend.dsn="postgresql://u:pw@h/db"']}}}
    assert "qk-123" not in json.dumps(redact_settings(spec)) and "pw@" not in json.dumps(redact_settings(spec))


# -- a real run leaves no trace of a secret -------------------------------------------------------------------------

@pytest.mark.server
def test_a_run_with_secrets_leaves_no_trace_of_them(tmp_path, cache_dir) -> None:
    pytest.importorskip("psycopg")
    from bench.backends.pgvector import PgvectorBackend

    base = PgvectorOptions()
    reason = PgvectorBackend.check_available(base)
    if reason:
        no_server("pgvector", reason)
    # The test server trusts loopback connections, so the passwords are sent and not needed: the run works, and
    # must still write none of them.
    dsn = base.dsn.replace("postgresql://bench@", "postgresql://bench:dsn-SECRET-1@", 1)
    assert "dsn-SECRET-1" in dsn, base.dsn
    (tmp_path / "pw").write_text("file-SECRET-3\n")
    env = {**os.environ, "BENCH_CACHE_DIR": str(cache_dir), "PG_TEST_PASSWORD": "env-SECRET-2"}
    args = [sys.executable, "-m", "bench.cli", "run", "--backend", "pgvector", "--workload", "ann-smoke",
            "--set", "dataset.n=500", "--set", "dataset.queries=20", "--set", "run.min_operations=1", "--set", "dataset.dim=8", "--set",
            "run.warmup_s=0", "--trials", "1", "--concurrency", "2", "--quiet", "--run-id", "secret-run",
            "--set", f'backend.dsn="{dsn}"', "--set", 'backend.password="set-SECRET-4"']
    p = subprocess.run(args, capture_output=True, text=True, cwd=tmp_path, env=env, timeout=600)
    assert p.returncode == 0, p.stderr[-3000:]
    cfg = tmp_path / "pg.toml"
    cfg.write_text(f'dsn = "{dsn}"\npassword = "env:PG_TEST_PASSWORD"\n')
    args2 = [*args[:-6], "--run-id", "secret-run-2", "--config", str(cfg), "--set", 'backend.password="file:pw"']
    p = subprocess.run(args2, capture_output=True, text=True, cwd=tmp_path, env=env, timeout=600)
    assert p.returncode == 0, p.stderr[-3000:]
    files = [f for f in (tmp_path / "results").rglob("*") if f.is_file()]
    assert {f.name for f in files} >= {"run.json", "trials.parquet", "summary.parquet"}
    for f in files:
        data = f.read_bytes()
        for secret in (b"SECRET", b"dsn-SECRET-1", b"set-SECRET-4", b"file-SECRET-3", b"env-SECRET-2"):
            assert secret not in data, (f, secret)
    run = json.loads((tmp_path / "results" / "secret-run" / "run.json").read_text())
    assert run["backend_options"]["password"] == fp("set-SECRET-4")
    assert run["backend_options"]["dsn"].startswith("postgresql://bench:***@")
    assert f"backend.password={fp('set-SECRET-4')}" in run["command"]
    run2 = json.loads((tmp_path / "results" / "secret-run-2" / "run.json").read_text())
    assert run2["backend_options"]["password"] == fp("file-SECRET-3")
    assert 'backend.password="file:pw"' in run2["command"]


def test_fingerprints_keep_runs_comparable() -> None:
    """The same key gives the same fingerprint, another key another one."""
    a, b = public_options(QdrantOptions(api_key="k1")), public_options(QdrantOptions(api_key="k1"))
    assert a == b and a != public_options(QdrantOptions(api_key="k2"))
