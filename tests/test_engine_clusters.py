"""Engine clusters: the docker-compose cluster profiles (3 Qdrant peers, Milvus in cluster mode with separate query
nodes, 3 Weaviate nodes) checked against the compose-spec schema and for what makes them clusters, and the
adapters' shard / replica settings and their read-back of what a cluster built.

No Docker daemon runs here, so the profiles are validated, not started (docs/clusters.md says so). The Milvus read-back is
checked live against the standalone server the suite runs (tests/test_milvus.py); Qdrant's and Weaviate's read-back
functions are fed the clients' own response types (no cluster of either runs here)."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from types import SimpleNamespace

import jsonschema
import pytest
import yaml

REPO = Path(__file__).resolve().parent.parent
SCHEMA = Path(__file__).parent / "schemas" / "compose-spec.json"
PROFILES = {
    "qdrant-cluster": {"qdrant-node1", "qdrant-node2", "qdrant-node3"},
    "milvus-cluster": {"milvus-mixcoord", "milvus-streamingnode", "milvus-querynode1", "milvus-querynode2",
                       "milvus-datanode", "milvus-proxy"},
    "weaviate-cluster": {"weaviate-node1", "weaviate-node2", "weaviate-node3"},
}
# profile -> (entry service, backend, cluster config)
ENTRY = {"qdrant-cluster": ("qdrant-node1", "qdrant", "qdrant-cluster.toml"),
         "milvus-cluster": ("milvus-proxy", "milvus", "milvus-cluster.toml"),
         "weaviate-cluster": ("weaviate-node1", "weaviate", "weaviate-cluster.toml")}


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((REPO / "docker-compose.yml").read_text())


def test_the_file_with_its_cluster_profiles_is_valid_compose(compose):
    schema = json.loads(SCHEMA.read_text())
    validator = jsonschema.validators.validator_for(schema)(schema)
    errors = [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(compose)]
    assert not errors, errors
    broken = {**compose, "services": {**compose["services"], "qdrant-node2": {
        **compose["services"]["qdrant-node2"], "profiles": "qdrant-cluster"}}}
    assert list(validator.iter_errors(broken)), "profiles must be a list: the check can fail"


@pytest.mark.parametrize("profile", sorted(PROFILES))
def test_each_profile_holds_its_nodes_pinned_limited_and_health_checked(compose, profile):
    services = compose["services"]
    members = {n for n, s in services.items() if profile in s.get("profiles", [])}
    assert members == PROFILES[profile]
    engine_limits = (services["qdrant"]["cpus"], services["qdrant"]["mem_limit"])
    for name in members:
        s = services[name]
        tag = s["image"].rpartition(":")[2]
        assert tag and tag != "latest" and any(c.isdigit() for c in tag), f"{name}: {s['image']}"
        single = {"qdrant-cluster": "qdrant", "milvus-cluster": "milvus", "weaviate-cluster": "weaviate"}[profile]
        assert s["image"] == services[single]["image"], f"{name} runs another version than the single node"
        assert (s["cpus"], s["mem_limit"]) == engine_limits, f"{name}: not the engines' limits"
        hc = s["healthcheck"]
        assert hc["test"][0] in ("CMD", "CMD-SHELL") and not hc.get("disable"), name
        for p in s.get("ports", []):
            assert str(p).startswith("127.0.0.1:"), f"{name} publishes {p} beyond loopback"


def test_qdrant_peers_form_one_raft_cluster(compose):
    s = compose["services"]
    for n in ("qdrant-node1", "qdrant-node2", "qdrant-node3"):
        assert s[n]["environment"]["QDRANT__CLUSTER__ENABLED"] == "true"
        assert s[n]["volumes"][0].split(":")[0] == n  # own storage per peer
    assert "--bootstrap" not in s["qdrant-node1"]["command"]
    for n in ("qdrant-node2", "qdrant-node3"):
        cmd = s[n]["command"]
        assert cmd[cmd.index("--bootstrap") + 1] == "http://qdrant-node1:6335"
        assert cmd[cmd.index("--uri") + 1] == f"http://{n}:6335"


def test_milvus_runs_each_role_apart_with_two_query_nodes(compose):
    s = compose["services"]
    roles = [s[n]["command"][-1] for n in PROFILES["milvus-cluster"]]
    assert sorted(roles) == ["datanode", "mixcoord", "proxy", "querynode", "querynode", "streamingnode"]
    assert all(s[n]["command"][:2] == ["milvus", "run"] for n in PROFILES["milvus-cluster"])
    for n in PROFILES["milvus-cluster"]:
        env = s[n]["environment"]
        assert env["ETCD_ENDPOINTS"] == "milvus-etcd:2379" and env["MINIO_ADDRESS"] == "milvus-minio:9000"
        assert env["ETCD_ROOTPATH"] != "by-dev", "the cluster must not share the standalone service's metadata"


def test_weaviate_nodes_join_one_raft_of_three(compose):
    s = compose["services"]
    envs = [s[n]["environment"] for n in sorted(PROFILES["weaviate-cluster"])]
    hostnames = [e["CLUSTER_HOSTNAME"] for e in envs]
    assert len(set(hostnames)) == 3
    for e in envs:
        assert sorted(e["RAFT_JOIN"].split(",")) == sorted(hostnames) and e["RAFT_BOOTSTRAP_EXPECT"] == "3"
    assert [e.get("CLUSTER_JOIN") for e in envs] == [None, "weaviate-node1:7100", "weaviate-node1:7100"]


@pytest.mark.parametrize("profile", sorted(ENTRY))
def test_the_cluster_config_points_at_the_entry_service(compose, profile):
    from bench.backends import registry

    entry, backend, config = ENTRY[profile]
    data = tomllib.loads((REPO / "configs" / config).read_text())
    options = registry.get(backend).Options.model_validate(data)  # every key is one the adapter knows
    url = getattr(options, "url", None) or options.uri
    port = int(url.rsplit(":", 1)[1].split("/")[0])
    published = {int(str(p).split(":")[1]) for p in compose["services"][entry]["ports"]}
    assert port in published, f"{config} points at {port}; {entry} publishes {sorted(published)}"
    asked = [v for k, v in data.items() if k in ("shard_number", "shards_num", "shards", "replication_factor",
                                                  "replicas")]
    assert asked and all(v >= 2 for v in asked), f"{config} asks for no sharding or replication: {data}"


# -- adapters: shards and replicas asked, and read back ------------------------------------------------------

def test_qdrant_reads_back_shards_replicas_and_peers():
    from qdrant_client import models

    from bench.backends.qdrant import cluster_readback

    info = SimpleNamespace(config=SimpleNamespace(params=models.CollectionParams(shard_number=3, replication_factor=2)))
    placed = models.CollectionClusterInfo(
        peer_id=1, shard_count=3, shard_transfers=[],
        local_shards=[models.LocalShardInfo(shard_id=0, points_count=5, state="Active"),
                      models.LocalShardInfo(shard_id=2, points_count=5, state="Active")],
        remote_shards=[models.RemoteShardInfo(shard_id=s, peer_id=p, state="Active")
                       for s, p in ((0, 2), (1, 2), (1, 3), (2, 3))])
    out = cluster_readback(info, placed, asked_shards=3, asked_replicas=2)
    assert out["placement"] == {"1": [0, 2], "2": [0, 1], "3": [1, 2]} and out["peers"] == 3
    assert out["substitutions"] == []
    short = placed.model_copy(update={"remote_shards": placed.remote_shards[:1]})
    out = cluster_readback(info, short, asked_shards=4, asked_replicas=2)
    assert any("4 were asked" in s for s in out["substitutions"])
    assert any("3 shard replicas placed" in s for s in out["substitutions"])


def test_weaviate_asks_for_shards_and_replicas_and_reads_them_back():
    from weaviate.collections.classes.cluster import Node, Shard
    from weaviate.collections.classes.config import (
        ReplicationDeletionStrategy,
        _ReplicationConfig,
        _ShardingConfig,
    )

    from bench.backends.weaviate import cluster_config, cluster_readback

    assert cluster_config(1, 1) == {}
    req = cluster_config(3, 2)
    assert req["sharding_config"].desiredCount == 3 and req["replication_config"].factor == 2
    config = SimpleNamespace(
        sharding_config=_ShardingConfig(virtual_per_physical=128, desired_count=3, actual_count=3,
                                        desired_virtual_count=384, actual_virtual_count=384, key="_id",
                                        strategy="hash", function="murmur3"),
        replication_config=_ReplicationConfig(factor=2, async_enabled=False,
                                              deletion_strategy=ReplicationDeletionStrategy.NO_AUTOMATED_RESOLUTION))

    def node(name: str, shards: list[str]) -> Node:
        return Node(git_hash="x", name=name, stats=None, status="HEALTHY", version="1.37.4",
                    shards=[Shard(collection="C", name=s, node=name, object_count=1, vector_indexing_status="READY",
                                  vector_queue_length=0, compressed=False, loaded=True) for s in shards])

    nodes = [node("node1", ["a", "b"]), node("node2", ["b", "c"]), node("node3", ["a", "c"])]
    out = cluster_readback(config, nodes, "C", asked_shards=3, asked_replicas=2)
    assert out["placement"] == {"node1": ["a", "b"], "node2": ["b", "c"], "node3": ["a", "c"]}
    assert out["shards"] == 3 and out["replication_factor"] == 2 and out["substitutions"] == []
    assert cluster_readback(config, nodes, "C", asked_shards=3, asked_replicas=3)["substitutions"]
