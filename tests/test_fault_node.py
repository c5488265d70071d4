"""`bench fault --node SERVICE`: the docker compose commands it issues to stop one node of an engine cluster and
start it again, and how it reads compose's status, as unit tests (no Docker daemon here); then the whole fault
run through those commands against a real private pgvector server, with a stand-in `docker` executable on PATH
(FAKE: it records its arguments and does to the private server what compose would do to a container: kill it,
start it, report it running and healthy)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from backend_options import start_private_server

from bench.errors import UserError
from bench.faults.nodes import ComposeNode, compose_node, parse_ps

REPO = Path(__file__).resolve().parent.parent
COMPOSE = REPO / "docker-compose.yml"


class Recorder:
    """Stands in for subprocess.run: records each command, answers with the given exit code and output."""

    def __init__(self, rc: int = 0, stdout: str = "", stderr: str = ""):
        self.calls: list[list[str]] = []
        self.rc, self.stdout, self.stderr = rc, stdout, stderr

    def __call__(self, cmd, **kw):
        self.calls.append(list(cmd))
        return subprocess.CompletedProcess(cmd, self.rc, self.stdout, self.stderr)


@pytest.mark.parametrize("action", ["kill", "stop"])
def test_the_commands_it_issues(action):
    rec = Recorder()
    node = compose_node("qdrant-node2", COMPOSE, action, REPO, run=rec)
    assert node.stop() is None and node.start() is None
    base = ["docker", "compose", "-f", str(COMPOSE.resolve())]
    assert rec.calls == [[*base, action, "qdrant-node2"], [*base, "start", "qdrant-node2"]]
    assert node.status_command() == [*base, "ps", "--all", "--format", "json", "qdrant-node2"]


def test_a_failed_command_is_one_line_for_the_fault_notes():
    node = compose_node("milvus-querynode1", COMPOSE, "kill", REPO,
                        run=Recorder(rc=1, stderr="warning\nno such service: milvus-querynode1\n"))
    assert node.stop() == "`docker compose kill milvus-querynode1` exited 1: no such service: milvus-querynode1"


@pytest.mark.parametrize("out, healthy", [
    ('[{"Service":"qdrant-node2","State":"running","Health":"healthy"}]', True),  # compose < 2.21: one array
    ('{"Service":"qdrant-node2","State":"running","Health":"healthy"}\n', True),  # later: one object a line
    ('{"Service":"qdrant-node2","State":"running","Health":"starting"}\n', False),
    ('{"Service":"qdrant-node2","State":"exited","Health":""}\n', False),
    ('{"Service":"x","State":"running","Health":""}\n', True),  # no health check: running is enough
    ("", False),
])
def test_health_is_read_from_compose_ps(out, healthy):
    node = ComposeNode("qdrant-node2", COMPOSE, run=Recorder(stdout=out))
    assert node.healthy() is healthy
    assert len(parse_ps(out)) == (1 if out else 0)


def test_bad_node_arguments_are_one_sentence():
    with pytest.raises(UserError, match="is not a service of .*qdrant-node1"):
        compose_node("qdrant-node9", COMPOSE, "kill", REPO, run=Recorder())
    with pytest.raises(UserError, match="--node-action 'pause' is not one of kill, stop"):
        compose_node("qdrant-node2", COMPOSE, "pause", REPO, run=Recorder())
    with pytest.raises(UserError, match="Cannot read the compose file"):
        compose_node("qdrant-node2", REPO / "nothing.yml", "kill", REPO, run=Recorder())


FAKE_DOCKER = textwrap.dedent('''\
    #!{python}
    """FAKE docker CLI for tests: `compose -f FILE (kill|stop|start|ps ...) SERVICE` on the private server."""
    import json, os, socket, subprocess, sys
    from bench.processes import kill_tree, pid_on_port
    args = sys.argv[1:]
    with open(os.environ["FAKE_DOCKER_LOG"], "a") as f:
        f.write(json.dumps(args) + "\\n")
    action, port = args[3], int(os.environ["FAKE_DOCKER_PORT"])
    if action in ("kill", "stop"):
        pid = pid_on_port(port)
        if pid:
            kill_tree(pid)
    elif action == "start":
        subprocess.Popen(json.loads(os.environ["FAKE_DOCKER_START"]), cwd=os.environ["FAKE_DOCKER_CWD"],
                         stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                         start_new_session=True)
    elif action == "ps":
        with socket.socket() as s:
            up = s.connect_ex(("127.0.0.1", port)) == 0
        print(json.dumps({{"Service": args[-1], "State": "running" if up else "exited",
                          "Health": "healthy" if up else ""}}))
''')


@pytest.mark.server
@pytest.mark.slow
def test_a_fault_run_stops_and_starts_the_node_through_compose(tmp_path, cache_dir):
    srv = start_private_server("pgvector")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "docker").write_text(FAKE_DOCKER.format(python=sys.executable))
    (bin_dir / "docker").chmod(0o755)
    compose = tmp_path / "compose.yml"
    compose.write_text("services:\n  pg-node2:\n    image: pgvector/pgvector:0.8.5-pg16\n")
    log = tmp_path / "docker.log"
    env = {**os.environ, "BENCH_CACHE_DIR": str(cache_dir), "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
           "FAKE_DOCKER_LOG": str(log), "FAKE_DOCKER_PORT": str(srv.port), "FAKE_DOCKER_CWD": str(srv.folder),
           "FAKE_DOCKER_START": json.dumps(srv.restart_command), **srv.env}
    with srv:
        sets = [a for o in srv.overrides for a in ("--set", o)]
        p = subprocess.run([sys.executable, "-m", "bench.cli", "fault", "--backend", "pgvector", "--node", "pg-node2",
                            "--compose-file", str(compose), "--kill-at", "2", "--duration", "7", "--p99-factor", "3",
                            "--set", "dataset.n=1000", "--set", "dataset.holdout=2000", "--set", "dataset.dim=16",
                            "--set", "dataset.queries=20", "--set", "run.min_operations=1", *sets, "--json"],
                           cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, (p.stdout[-2000:], p.stderr[-3000:])
    out = json.loads(p.stdout)
    calls = [json.loads(line) for line in log.read_text().splitlines()]
    base = ["compose", "-f", str(compose.resolve())]
    assert calls[0] == [*base, "kill", "pg-node2"]
    assert calls[1] == [*base, "start", "pg-node2"]
    assert all(c[:4] == [*base, "ps"] for c in calls[2:]) and calls[2:], calls
    assert abs(out["kill_s"] - 2.0) < 0.5 and out["errors"] > 0 and 0 < out["first_ok_s"] < 5
    assert out["lost_acknowledged_writes"] == 0 and out["keys_checked"] > 0
    fault = json.loads((tmp_path / out["results"] / "fault.json").read_text())
    assert fault["node"] == "pg-node2" and fault["stop_command"].endswith("kill pg-node2")
