"""A private replicated PostgreSQL for tests (bench.pgcluster): own ports, own data folders under a temporary
folder; `remove` stops every node by its pid and deletes the folder. The shared 5432 server is never touched."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import pytest

from bench.faults.servers import free_port
from bench.pgcluster import PgCluster


def start_cluster(sync: bool = False, synchronous_commit: str = "on") -> tuple[PgCluster, Path]:
    folder = Path(tempfile.mkdtemp(prefix="bench-replicas-"))
    folder.chmod(0o755)
    try:
        cluster = PgCluster.create(folder / "cluster", [free_port(), free_port(), free_port()], sync=sync,
                                   synchronous_commit=synchronous_commit)
    except Exception as e:  # noqa: BLE001
        remove(None, folder)
        pytest.skip(f"no private replicated PostgreSQL here: {e}")
    return cluster, folder


def remove(cluster: PgCluster | None, folder: Path) -> None:
    if cluster is not None:
        cluster.down()
    shutil.rmtree(folder, ignore_errors=True)
