"""A private Ray cluster for tests and benchmarks on one machine: N Ray nodes (`ray start --head` plus
`ray start --address ...`), and any server they need, inside a network namespace of their own with only a
loopback interface, so every address Ray uses or advertises is 127.0.0.1 and nothing leaves the machine.

    with NetnsRayCluster(nodes=2, cpus=1) as c:       # needs root (unshare -n, nsenter) and Ray
        c.run(["python", "-m", "bench.cli", ...])     # any command inside the namespace (nsenter -n)
        srv = c.private_server("pgvector")            # bench.faults.servers.PrivateServer, inside it
        c.pids("ray::RayWorker")                      # processes of the namespace, by command line

Everything started in the namespace is stopped by pid (the processes whose network namespace is this one:
SIGTERM, then SIGKILL), never by `ray stop`, which would find other users' Ray processes by name.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
HEAD_PORT = 6379
CLIENT_PORT = 10001
OBJECT_STORE_BYTES = 120 * 1024 * 1024
# `ip link set lo up` for a machine without iproute2: the same SIOCSIFFLAGS ioctl
LO_UP = ("import fcntl, socket, struct; s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); "
         "f = struct.unpack('16sH', fcntl.ioctl(s, 0x8913, struct.pack('16sH', b'lo', 0)))[1]; "
         "fcntl.ioctl(s, 0x8914, struct.pack('16sH', b'lo', f | 1))")


def usable() -> str | None:
    """None when a namespaced Ray cluster can run here, else why not."""
    if os.geteuid() != 0:
        return "creating a network namespace needs root"
    for tool in ("unshare", "nsenter"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed"
    try:
        import ray  # noqa: F401
    except ImportError:
        return "Ray is not installed (pip install '.[cluster]')"
    probe = subprocess.run(["unshare", "-n", "--", "true"], capture_output=True, text=True)
    if probe.returncode != 0:  # a container without CAP_SYS_ADMIN
        return f"unshare -n is not permitted here: {probe.stderr.strip()[:200]}"
    return None


def _netns(pid: int) -> str:
    return os.readlink(f"/proc/{pid}/ns/net")


class NetnsRayCluster:
    def __init__(self, nodes: int = 2, cpus: int = 1, env: dict[str, str] | None = None,
                 servers: tuple[str, ...] = ()):
        """`servers`: private engine servers (PrivateServer kinds) started beside the Ray nodes, in `self.servers`."""
        self.nodes, self.cpus, self.server_kinds = nodes, cpus, servers
        self.servers: dict[str, dict[str, Any]] = {}
        self.tmp = Path(tempfile.mkdtemp(prefix="bench-ray-"))
        pp = os.environ.get("PYTHONPATH", "")
        self.env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "PYTHONPATH": f"{REPO}{os.pathsep}{pp}".rstrip(
            os.pathsep), **(env or {})}
        self.holder: subprocess.Popen | None = None
        self._folders: list[str] = []
        self.ray = str(Path(sys.executable).parent / "ray")
        self.address = f"127.0.0.1:{HEAD_PORT}"
        self.client_address = f"ray://127.0.0.1:{CLIENT_PORT}"

    # -- the namespace --------------------------------------------------------------------------------------
    def cmd(self, argv: list[str]) -> list[str]:
        assert self.holder is not None
        return ["nsenter", "-t", str(self.holder.pid), "-n", *argv]

    def run(self, argv: list[str], timeout: float = 300, **kw: Any) -> subprocess.CompletedProcess[str]:
        return subprocess.run(self.cmd(argv), text=True, capture_output=True, timeout=timeout,
                              env=kw.pop("env", self.env), **kw)

    def popen(self, argv: list[str], **kw: Any) -> subprocess.Popen:
        return subprocess.Popen(self.cmd(argv), text=True, env=kw.pop("env", self.env), **kw)

    def pids(self, prefix: str = "") -> list[int]:
        """Processes in this namespace (its holder left out) whose command line starts with `prefix`."""
        if self.holder is None:
            return []
        ns, out = _netns(self.holder.pid), []
        for p in Path("/proc").iterdir():
            if not p.name.isdigit() or int(p.name) == self.holder.pid:
                continue
            try:
                if os.readlink(p / "ns/net") != ns:
                    continue
                cmdline = (p / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if cmdline.startswith(prefix):
                out.append(int(p.name))
        return out

    # -- lifecycle ------------------------------------------------------------------------------------------
    def start(self) -> NetnsRayCluster:
        mine = _netns(os.getpid())
        self.holder = subprocess.Popen(["unshare", "-n", "--", "sleep", "infinity"], stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while _netns(self.holder.pid) == mine:
            if time.monotonic() > deadline or self.holder.poll() is not None:
                raise RuntimeError("unshare -n did not create a network namespace")
            time.sleep(0.01)
        up = ["ip", "link", "set", "lo", "up"] if shutil.which("ip") else [sys.executable, "-c", LO_UP]
        self._check(self.run(up, timeout=30), "bringing up the namespace's loopback")
        common = ["--node-ip-address", "127.0.0.1", "--num-cpus", str(self.cpus), "--disable-usage-stats",
                  "--object-store-memory", str(OBJECT_STORE_BYTES)]
        self._common = common
        head = [self.ray, "start", "--head", "--port", str(HEAD_PORT), "--include-dashboard", "false",
                "--ray-client-server-port", str(CLIENT_PORT), "--temp-dir", str(self.tmp / "ray"), *common]
        # the other nodes start at the same time: `ray start --address` waits for the head's GCS to answer
        starts = [head] + [self._node_command()] * (self.nodes - 1)
        procs = [self.popen(cmd, cwd=str(self.tmp), stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
                 for cmd in starts]
        failed: list[BaseException] = []

        def server(kind: str) -> None:
            try:
                self.servers[kind] = self.private_server(kind)
            except BaseException as e:  # noqa: BLE001 - raised below, in the caller's thread
                failed.append(e)

        threads = [threading.Thread(target=server, args=(k,)) for k in self.server_kinds]
        for t in threads:
            t.start()
        for cmd, proc in zip(starts, procs, strict=True):
            out, _ = proc.communicate(timeout=300)
            self._check(subprocess.CompletedProcess(cmd, proc.returncode, out, ""), " ".join(cmd[1:3]))
        for t in threads:
            t.join()
        if failed:
            raise failed[0]
        return self

    def _node_command(self) -> list[str]:
        return [self.ray, "start", "--address", self.address, *self._common]

    def add_node(self) -> None:
        """One more Ray node (`ray start --address HEAD`) in the namespace."""
        self._check(self.run(self._node_command(), cwd=str(self.tmp)), "ray start --address")

    def node_raylets(self) -> list[int]:
        """The raylet pids of the nodes other than the head (a raylet started without --head)."""
        out = []
        for pid in self.pids():
            try:
                argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            except OSError:  # gone since
                continue
            if argv[0].endswith(b"/raylet") and b"--head" not in argv:
                out.append(pid)
        return out

    def kill_node(self, raylet: int) -> int:
        """A machine lost: SIGKILL a node's raylet and every process under it (its agents and workers) at once;
        returns how many processes were killed."""
        from bench.processes import kill_tree

        return kill_tree(raylet, signal.SIGKILL, wait_s=10)

    @staticmethod
    def _check(r: subprocess.CompletedProcess[str], what: str) -> None:
        if r.returncode != 0:
            raise RuntimeError(f"{what} failed ({r.returncode}): {(r.stderr or r.stdout).strip()[-800:]}")

    def private_server(self, kind: str) -> dict[str, Any]:
        """Start a private engine server (bench.faults.servers.PrivateServer) inside the namespace; returns its
        port, folder and the `--set` overrides that point a backend at it. It is stopped with the namespace."""
        from bench.services import install_server

        install_server(kind)  # installed out here: the namespace has no network to fetch it
        code = ("import json; from bench.faults.servers import PrivateServer as P; "
                f"s = P.start_new({kind!r}); "
                "print(json.dumps({'port': s.port, 'folder': str(s.folder), 'overrides': s.overrides, "
                "'backend': s.backend}))")
        r = self.run([sys.executable, "-c", code], timeout=180)
        self._check(r, f"starting a private {kind} server")
        info = json.loads(r.stdout.strip().splitlines()[-1])
        self._folders.append(info["folder"])
        return info

    def stop(self) -> None:
        """SIGTERM every process of the namespace, then SIGKILL what is left; remove the files."""
        for sig, wait_s in ((signal.SIGTERM, 3.0), (signal.SIGKILL, 5.0)):
            for pid in self.pids():
                try:
                    os.kill(pid, sig)
                except ProcessLookupError:
                    pass
            deadline = time.monotonic() + wait_s
            while self.pids() and time.monotonic() < deadline:
                time.sleep(0.1)
        if self.holder is not None:
            self.holder.kill()
            self.holder.wait(timeout=10)
            self.holder = None
        for folder in [*self._folders, str(self.tmp)]:
            shutil.rmtree(folder, ignore_errors=True)

    def __enter__(self) -> NetnsRayCluster:
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc: object) -> None:
        self.stop()
