"""docker-compose.yml: valid against the compose-spec JSON schema (vendored in tests/schemas/), every engine
pinned, health-checked, under the same CPU and memory limits, and published on 127.0.0.1 at the ports the
backend configs (configs/*.toml, else the adapter's defaults) point at. No Docker daemon is needed."""

from __future__ import annotations

import copy
import json
import tomllib
from pathlib import Path
from urllib.parse import urlparse

import jsonschema
import pytest
import yaml

from bench.backends import registry

REPO = Path(__file__).resolve().parent.parent
SCHEMA = Path(__file__).parent / "schemas" / "compose-spec.json"
# compose service -> (backend whose config points at it, the host ports it must publish)
ENGINES: dict[str, tuple[str, set[int]]] = {
    "qdrant": ("qdrant", {6333, 6334}),
    "milvus": ("milvus", {19530, 9091}),
    "weaviate": ("weaviate", {8080, 50051}),
    "chroma": ("chroma-server", {8000}),
    "pgvector": ("pgvector", {5432}),
}


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((REPO / "docker-compose.yml").read_text())


@pytest.fixture(scope="module")
def validator() -> jsonschema.protocols.Validator:
    schema = json.loads(SCHEMA.read_text())
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    return cls(schema)


def _published(service: dict) -> list[tuple[str | None, int, int]]:
    """(host ip, host port, container port) of each published port, short or long syntax."""
    out = []
    for p in service.get("ports", []):
        if isinstance(p, dict):
            out.append((p.get("host_ip"), int(p["published"]), int(p["target"])))
            continue
        parts = str(p).split("/")[0].split(":")
        if len(parts) == 3:
            out.append((parts[0], int(parts[1]), int(parts[2])))
        elif len(parts) == 2:
            out.append((None, int(parts[0]), int(parts[1])))
        else:
            out.append((None, int(parts[0]), int(parts[0])))
    return out


def test_valid_against_the_compose_spec(compose: dict, validator: jsonschema.protocols.Validator) -> None:
    errors = [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(compose)]
    assert not errors, errors


def test_the_schema_check_can_fail(compose: dict, validator: jsonschema.protocols.Validator) -> None:
    broken = copy.deepcopy(compose)
    broken["services"]["pgvector"]["imag"] = broken["services"]["pgvector"].pop("image")
    assert list(validator.iter_errors(broken)), "a misspelt service key must not validate"
    broken = copy.deepcopy(compose)
    broken["services"]["qdrant"]["ports"] = {"6333": 6333}
    assert list(validator.iter_errors(broken)), "ports must be a list"


def test_every_engine_is_there(compose: dict) -> None:
    assert set(ENGINES) <= set(compose["services"])


@pytest.mark.parametrize("name", sorted(ENGINES))
def test_engine_image_is_pinned(compose: dict, name: str) -> None:
    image = compose["services"][name]["image"]
    repo, _, tag = image.rpartition(":")
    assert repo and "/" not in tag, f"{name}: image {image} has no tag"
    assert tag != "latest" and any(c.isdigit() for c in tag), f"{name}: image {image} is not pinned to a version"


def test_helpers_are_pinned_too(compose: dict) -> None:
    for name, svc in compose["services"].items():
        tag = svc["image"].rpartition(":")[2]
        assert tag and tag != "latest" and "/" not in tag, f"{name}: {svc['image']}"


@pytest.mark.parametrize("name", sorted(ENGINES))
def test_engine_has_a_healthcheck(compose: dict, name: str) -> None:
    hc = compose["services"][name].get("healthcheck")
    assert hc and not hc.get("disable"), f"{name} has no healthcheck"
    test = hc["test"]
    assert isinstance(test, list) and test[0] in ("CMD", "CMD-SHELL") and len(test) > 1


def test_engines_share_the_same_limits(compose: dict) -> None:
    limits = {name: (str(compose["services"][name].get("cpus")), str(compose["services"][name].get("mem_limit")))
              for name in ENGINES}
    assert len(set(limits.values())) == 1, f"engines have different limits: {limits}"
    cpus, mem = next(iter(limits.values()))
    assert cpus != "None" and mem != "None", "every engine needs cpus and mem_limit"


@pytest.mark.parametrize("name", sorted(ENGINES))
def test_engine_ports_are_loopback_and_as_documented(compose: dict, name: str) -> None:
    ports = _published(compose["services"][name])
    assert {hp for _, hp, _ in ports} == ENGINES[name][1]
    assert all(ip == "127.0.0.1" for ip, _, _ in ports), f"{name} publishes beyond loopback: {ports}"


def test_no_service_publishes_beyond_loopback(compose: dict) -> None:
    for name, svc in compose["services"].items():
        for ip, hp, _ in _published(svc):
            assert ip == "127.0.0.1", f"{name} publishes {hp} on {ip or 'every interface'}"


def _config_ports(backend: str, monkeypatch: pytest.MonkeyPatch) -> set[int]:
    """Ports the backend's effective options point at: configs/<backend>.toml over the adapter's defaults."""
    for var in ("BENCH_QDRANT_URL", "BENCH_WEAVIATE_URL", "BENCH_MILVUS_URI", "BENCH_CHROMA_URL", "BENCH_PGVECTOR_DSN"):
        monkeypatch.delenv(var, raising=False)
    try:
        cls = registry.get(backend)
    except Exception as e:  # noqa: BLE001 - an adapter not written yet, or its client missing
        pytest.skip(f"{backend}: {e}")
    path = REPO / "configs" / f"{backend}.toml"
    data = tomllib.loads(path.read_text()) if path.exists() else {}
    options = cls.Options.model_validate(data).model_dump()
    ports: set[int] = set()
    for key, value in options.items():
        if isinstance(value, str) and (key in ("url", "uri", "dsn") or key.endswith(("_url", "_uri"))) and value:
            port = urlparse(value).port
            if port:
                ports.add(port)
        elif key.endswith("port") and isinstance(value, int):
            ports.add(value)
    return ports


@pytest.mark.parametrize("name", sorted(ENGINES))
def test_config_ports_match_compose(compose: dict, name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    backend, _ = ENGINES[name]
    wanted = _config_ports(backend, monkeypatch)
    assert wanted, f"configs/{backend}.toml (or its adapter's defaults) names no port"
    published = {hp for _, hp, _ in _published(compose["services"][name])}
    assert wanted <= published, f"{backend} points at {sorted(wanted)}, compose publishes {sorted(published)}"


def test_local_services_use_the_compose_ports(compose: dict) -> None:
    from bench import (  # scripts/services.py is its wrapper (pgcluster adds pgvector-replicas)
        pgcluster,
        services,
    )

    for name, svc in services.SERVICES.items():
        if name == pgcluster.REPLICAS:  # three nodes: tested below
            continue
        published = {hp for _, hp, _ in _published(compose["services"][name])}
        assert svc.ports[0] in published, f"scripts/services.py starts {name} on {svc.ports[0]}, compose on {published}"


REPLICA_NODES = {"pgvector-primary": 5433, "pgvector-replica1": 5434, "pgvector-replica2": 5435}


def test_the_pgvector_replicas_profile_is_the_local_topology(compose: dict) -> None:
    """Primary and two hot standbys, on the ports scripts/services.py up pgvector-replicas uses (bench.pgcluster),
    in one profile, each standby cloned by pg_basebackup -R under its own application_name once the primary is
    healthy, the primary letting standbys connect for replication."""
    from bench import pgcluster, services

    nodes = {n: compose["services"][n] for n in REPLICA_NODES}
    assert services.SERVICES[pgcluster.REPLICAS].ports == pgcluster.SHARED_PORTS == tuple(REPLICA_NODES.values())
    for name, svc in nodes.items():
        assert svc["profiles"] == ["pgvector-replicas"], name
        assert svc["image"] == compose["services"]["pgvector"]["image"], "the same pgvector image as the single node"
        assert {hp for _, hp, _ in _published(svc)} == {REPLICA_NODES[name]}
        assert svc["healthcheck"]["test"][1] == "pg_isready"
    primary = nodes["pgvector-primary"]
    assert "wal_level=replica" in primary["command"] and "hot_standby_feedback=on" in primary["command"]
    (hba,) = primary["configs"]
    assert hba["target"].startswith("/docker-entrypoint-initdb.d/")
    assert "host replication all all trust" in compose["configs"][hba["source"]]["content"]
    for i in (1, 2):
        svc = nodes[f"pgvector-replica{i}"]
        assert svc["depends_on"]["pgvector-primary"]["condition"] == "service_healthy"
        assert svc["environment"]["REPLICA_NAME"] == f"replica{i}"
        script = svc["command"][0]
        assert "pg_basebackup" in script and " -R " in script and "application_name=$$REPLICA_NAME" in script
        assert "host=pgvector-primary" in script and "hot_standby=on" in script
        assert f"pgvector-replica{i}" in compose["volumes"]


def test_the_replicas_config_points_at_the_profile(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("BENCH_PGVECTOR_DSN", raising=False)
    from bench.backends.pgvector import PgvectorOptions

    o = PgvectorOptions.model_validate(tomllib.loads((REPO / "configs" / "pgvector-replicas.toml").read_text()))
    assert "target_session_attrs=read-write" in o.dsn
    hosts = o.dsn.split("@", 1)[1].split("/", 1)[0].split(",")
    assert [int(h.rsplit(":", 1)[1]) for h in hosts] == list(REPLICA_NODES.values())
    assert [urlparse(d).port for d in o.replica_dsns] == [5434, 5435]
    assert o.promote_cmd and "promote replica1" in o.promote_cmd
