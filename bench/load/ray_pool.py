"""Workers on a Ray cluster (`bench run --cluster ray://HOST:PORT` or `auto`): one Ray actor per worker, spread
over the cluster's nodes by a placement group (SPREAD), each with its own adapter and client, each running the
same phase code as the local pools (bench.load.worker.run_phase -> bench.load.driver.drive).

Only phases cross Ray, never single operations: the driver sends a phase task to every actor; each actor waits
at a barrier (an async actor), runs its timed loop on its own clock and returns its WorkerResult (encoded HDR
histograms, counts, errors, sampled ids) with the CPU its process used; the driver merges them as it merges a
process pool's. The data a worker needs (queries, base and held-out vectors) is put once into Ray's object store;
a phase's own queries travel in its task; key streams are drawn from the seed on the node.

A worker (or its node) lost in a phase does not hang the run: the driver sees the actor die, aborts the
barrier, gathers the survivors' results and raises `WorkerLost` with them, so the runner records that trial as
failed and goes on; the lost actor is started again, in the same bundle, before the next phase. A lost node's
bundle has no place until Ray declares the node dead (its health checks: about 15 s by default) and a node with
room is there (the node back, or a new one, as KubeRay starts a new pod): the driver waits for that up to
RESPAWN_TIMEOUT_S, and when the time is up the phase's trial fails instead (and any later one at once while the
worker still has no place), so the run goes on to its end. Closing the pool (the run's end, Ctrl-C, SIGTERM)
kills the actors and removes the placement group.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import time
from dataclasses import dataclass, field
from typing import Any

import psutil

from bench.errors import UserError
from bench.load.pool import NO_STALL, PhaseStalled, WorkerFailed, WorkerLost, stall_message
from bench.load.task import PhaseTask
from bench.load.worker import WorkerData, format_exception, run_phase, settled_heap
from bench.results.worker import WorkerResult

READY_TIMEOUT_S = 180.0  # an actor must have connected its client by then
BARRIER_TIMEOUT_S = 120.0  # a worker waits this long at a phase's barrier for the others
PHASE_GRACE_S = 120.0  # a timed phase that has not returned this long after its duration is lost
POLL_S = 1.0  # how often the driver asks the actors how long they have been silent, while a phase runs
RESPAWN_TIMEOUT_S = 120.0  # a lost worker must be running again by then (its bundle placed on a live node)
RESPAWN_TRY_S = 30.0  # one attempt to start it (an actor placed on a node not yet declared dead dies sooner)


def node_hash(address: str) -> str:
    """A node's address as it appears in results: the first 12 hex digits of its SHA-256."""
    return hashlib.sha256(address.encode()).hexdigest()[:12]


def _ray() -> Any:
    try:
        import ray
    except ImportError:
        raise UserError("--cluster needs Ray, which is not installed here",
                        "install the extra: pip install 'bench[cluster]' (or '.[all]')") from None
    return ray


def connect(address: str) -> Any:
    """Join the Ray cluster at `address` (`ray://HOST:PORT`, `HOST:PORT` or `auto`); returns the ray module."""
    ray = _ray()
    if ray.is_initialized():
        return ray
    try:
        ray.init(address=address, logging_level="WARNING", log_to_driver=False, configure_logging=False,
                 namespace="bench")
    except (ConnectionError, RuntimeError, ValueError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise UserError(f"Could not join the Ray cluster at --cluster {address}: {first}",
                        "start it (`ray start --head`) or give its address, e.g. ray://HEAD:10001") from None
    return ray


def cpu_nodes(ray: Any) -> list[dict[str, Any]]:
    """The cluster's live nodes that have a CPU for workers."""
    return [nd for nd in ray.nodes() if nd.get("Alive") and nd.get("Resources", {}).get("CPU", 0) > 0]


@dataclass(frozen=True)
class RaySetup:
    """What an actor needs to build its own adapter and open the loaded collection (the data goes apart,
    through the object store)."""

    backend_name: str
    options: dict[str, Any]
    collection: Any  # CollectionSpec
    bench_version: str
    op_timeout_s: float | None = None  # every engine call of a timed phase gives up after this


class RayWorker:
    """One worker: an actor body (wrapped by `ray.remote` when the pool starts)."""

    def __init__(self, setup: RaySetup, w: int, n: int, data: WorkerData):
        import ray

        from bench.backends import registry

        self.w, self.n, self.data = w, n, data
        cls = registry.get(setup.backend_name)
        # Only engines that keep no data in the harness run here (supports("remote_workers")), and they write
        # nothing to their workdir: no folder of its own, which a killed actor would leave behind.
        self.backend = cls(cls.Options.model_validate(setup.options), tempfile.gettempdir())
        self.backend.connect()
        self.backend.attach(setup.collection)
        if setup.op_timeout_s is not None:
            self.backend.set_op_timeout(setup.op_timeout_s)
        self.node_id = ray.get_runtime_context().get_node_id()
        self.last = time.monotonic()

    def beat(self, w: int) -> bool:
        """The driver loop's once-per-interval hook: the watchdog's sign of life."""
        self.last = time.monotonic()
        return False

    def silent(self) -> float:
        """Seconds since the running phase's last sign of life (answered while `run` runs: a threaded actor)."""
        return time.monotonic() - self.last

    def describe(self) -> dict[str, Any]:
        from bench import __version__

        cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
        return {"node_id": self.node_id, "pid": os.getpid(), "cpus": cpus, "bench_version": __version__}

    def run(self, task: PhaseTask, barrier: Any, gen: int) -> WorkerResult:
        import ray

        def wait() -> None:
            ray.get(barrier.wait.remote(gen), timeout=BARRIER_TIMEOUT_S)

        proc = psutil.Process()
        self.last = time.monotonic()
        with settled_heap():
            c0 = proc.cpu_times()
            r = run_phase(self.backend, self.data, task, self.w, self.n, wait, self.beat)
            c1 = proc.cpu_times()
        r.cpu_s = (c1.user - c0.user) + (c1.system - c0.system)
        return r

    def close(self) -> None:
        self.backend.close()


class Barrier:
    """An async actor: `wait(gen)` returns once all n workers have called it for phase `gen`; `abort(gen)`
    releases the waiters of that phase with an error (a worker was lost)."""

    def __init__(self, n: int):
        import asyncio

        self.n, self.asyncio = n, asyncio
        self.arrived: dict[int, int] = {}
        self.events: dict[int, Any] = {}
        self.aborted: set[int] = set()

    def _event(self, gen: int) -> Any:
        if gen not in self.events:
            self.events[gen] = self.asyncio.Event()
        return self.events[gen]

    async def wait(self, gen: int) -> None:
        ev = self._event(gen)
        self.arrived[gen] = self.arrived.get(gen, 0) + 1
        if self.arrived[gen] >= self.n:
            ev.set()
        await ev.wait()
        if gen in self.aborted:
            raise RuntimeError("the phase was aborted: another worker was lost")

    async def abort(self, gen: int) -> None:
        self.aborted.add(gen)
        self._event(gen).set()


@dataclass
class _Slot:
    w: int
    actor: Any = None
    node: str = ""  # hashed address of its node
    cpus: int = 1
    lost: str | None = None  # why it was lost in the last phase (it is started again before the next)
    homeless: bool = False  # it could not be started again within RESPAWN_TIMEOUT_S: later phases wait no more
    info: dict[str, Any] = field(default_factory=dict)


class RayPool:
    """n actors on the cluster, spread by a SPREAD placement group; persistent for the run (or one level of a
    concurrency sweep)."""

    kind = "ray"

    def __init__(self, address: str, setup: RaySetup, data: WorkerData, n: int, stall_s: float = NO_STALL):
        self.ray = ray = connect(address)
        self.setup, self.n, self.gen, self.stall_s = setup, n, 0, stall_s
        self.nodes = {nd["NodeID"]: nd for nd in ray.nodes() if nd.get("Alive")}
        self.data_ref = ray.put(WorkerData(*(_plain(a) for a in (data.queries, data.base, data.holdout))))
        self.pg = self._placement_group()
        # two threads: `silent` is answered while `run` runs (the watchdog); the driver never sends two phases
        self.actor_cls = ray.remote(num_cpus=0, max_restarts=0, max_concurrency=2)(RayWorker)
        self.barrier = self._barrier()
        self.slots = [_Slot(w) for w in range(n)]
        try:
            for s in self.slots:
                self._start(s)
        except BaseException:
            self.close()
            raise

    # -- set-up ---------------------------------------------------------------------------------------------
    def _barrier(self) -> Any:
        """The phase barrier, on the driver's node, so a lost worker node cannot take it along (Ray's soft
        affinity does not keep it there; a lost driver node ends the run anyway)."""
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        try:
            here = NodeAffinitySchedulingStrategy(self.ray.get_runtime_context().get_node_id(), soft=False)
        except Exception:  # noqa: BLE001 - a driver without a node of its own: Ray's choice
            here = "DEFAULT"
        return self.ray.remote(num_cpus=0)(Barrier).options(scheduling_strategy=here).remote(self.n)

    def _placement_group(self) -> Any:
        from ray.util.placement_group import placement_group

        nodes = cpu_nodes(self.ray)
        if not nodes:
            raise UserError("The Ray cluster has no node with a CPU to run workers on",
                            "start the nodes with --num-cpus 1 or more")
        per_node = -(-self.n // len(nodes))
        cpu = min(1.0, min(nd["Resources"]["CPU"] for nd in nodes) / per_node)
        self.bundle_cpu = cpu
        pg = placement_group([{"CPU": cpu}] * self.n, strategy="SPREAD", name=f"bench-{os.getpid()}-{self.n}")
        try:
            self.ray.get(pg.ready(), timeout=READY_TIMEOUT_S)
        except Exception as e:  # noqa: BLE001 - GetTimeoutError and friends: one sentence for the user
            self.ray.util.remove_placement_group(pg)
            raise UserError(f"The Ray cluster could not place {self.n} workers of {cpu:g} CPU each "
                            f"({type(e).__name__})", "lower --concurrency or add nodes") from None
        return pg

    def _start(self, s: _Slot, timeout_s: float = READY_TIMEOUT_S) -> None:
        from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

        if s.actor is not None:  # a worker whose phase failed on a lost barrier may still live: not left behind
            self.ray.kill(s.actor, no_restart=True)
        strategy = PlacementGroupSchedulingStrategy(self.pg, placement_group_bundle_index=s.w)
        s.actor = self.actor_cls.options(scheduling_strategy=strategy,
                                         name=f"bench-worker-{os.getpid()}-{self.n}-{s.w}-{self.gen}-{time.time_ns()}"
                                         ).remote(self.setup, s.w, self.n, self.data_ref)
        try:
            s.info = self.ray.get(s.actor.describe.remote(), timeout=timeout_s)
        except Exception as e:  # noqa: BLE001 - the actor's own error, as one line
            try:
                self.ray.kill(s.actor, no_restart=True)  # not left pending in its bundle
            except Exception:  # noqa: BLE001 - already dead
                pass
            raise WorkerFailed(f"worker {s.w} could not start on the Ray cluster: {_cause(e)}") from None
        if s.info["bench_version"] != self.setup.bench_version:
            raise UserError(f"Ray node runs bench {s.info['bench_version']}, the driver {self.setup.bench_version}",
                            "install the same bench on every node")
        if s.info["node_id"] not in self.nodes:  # a node that joined since (a lost worker's bundle moved there)
            self.nodes = {nd["NodeID"]: nd for nd in self.ray.nodes() if nd.get("Alive")}
        nd = self.nodes.get(s.info["node_id"]) or {}
        s.node = node_hash(f"{nd.get('NodeManagerAddress', '?')}:{nd.get('NodeManagerPort', s.info['node_id'])}")
        s.cpus, s.lost = int(s.info["cpus"]), None

    # -- what a row records ---------------------------------------------------------------------------------
    def row(self) -> dict[str, Any]:
        per: dict[str, int] = {}
        for s in self.slots:
            per[s.node] = per.get(s.node, 0) + 1
        counts = set(per.values())
        return {"client_nodes": len(per), "workers_per_node": counts.pop() if len(counts) == 1 else None,
                "cluster_nodes": json.dumps(sorted(per)), "ray_version": self.ray.__version__}

    def pids(self) -> list[int]:
        return [int(s.info["pid"]) for s in self.slots if s.info]

    # -- a phase --------------------------------------------------------------------------------------------
    def run(self, task: PhaseTask) -> tuple[list[WorkerResult], float | None]:
        self.busy = True  # until the phase's results are in (an interrupt leaves it set: close() kills at once)
        try:
            out = self._run(task)
        except WorkerFailed:
            self.busy = False
            raise
        self.busy = False
        return out

    def _respawn(self) -> None:
        """Start the workers lost in the last phase again, each in its bundle, and a new barrier (the old one may
        have been on a lost node); `WorkerLost` when one cannot be started within RESPAWN_TIMEOUT_S."""
        lost = [s for s in self.slots if s.lost is not None]
        if not lost:
            return
        self.ray.kill(self.barrier, no_restart=True)
        self.barrier = self._barrier()
        for s in lost:
            deadline = time.monotonic() + (0.0 if s.homeless else RESPAWN_TIMEOUT_S)
            while True:
                why = self._unplaced(s.w)
                if why is None:
                    try:
                        self._start(s, RESPAWN_TRY_S)
                        s.homeless = False
                        break
                    except WorkerFailed as e:
                        why = str(e)
                if time.monotonic() >= deadline:
                    waited = "" if s.homeless else f" within {RESPAWN_TIMEOUT_S:g} s"
                    s.homeless = True
                    raise WorkerLost(f"worker {s.w}, lost in an earlier phase, could not be started again{waited}: "
                                     f"{why}; this trial did not run (give the cluster a node with room, or lower "
                                     "--concurrency)", [], None)
                time.sleep(1.0)

    def _unplaced(self, w: int) -> str | None:
        """Why bundle `w` of the placement group has no live node yet, or None when it has one."""
        from ray.util.placement_group import placement_group_table

        table = placement_group_table(self.pg)
        placed = table.get("bundles_to_node_id") or {}
        node = placed.get(w, placed.get(str(w)))
        alive = {nd["NodeID"] for nd in self.ray.nodes() if nd.get("Alive")}
        if table.get("state") == "CREATED" and node in alive:
            return None
        return f"its placement group is {table.get('state', '?')}, bundle {w} waiting for a node with room"

    def _run(self, task: PhaseTask) -> tuple[list[WorkerResult], float | None]:
        self._respawn()
        self.gen += 1
        pending = {s.actor.run.remote(task, self.barrier, self.gen): s for s in self.slots}
        end = (time.monotonic() + task.duration_s + PHASE_GRACE_S) if task.duration_s is not None else None
        results, errors = [], []
        while pending:
            ready, _ = self.ray.wait(list(pending), num_returns=1, timeout=POLL_S)
            if not ready:
                self._watch(pending, end)
                continue
            for ref in ready:
                s = pending.pop(ref)
                try:
                    r = self.ray.get(ref)
                except self.ray.exceptions.RayActorError as e:
                    s.lost = _cause(e)
                    self.barrier.abort.remote(self.gen)
                except self.ray.exceptions.RayTaskError as e:
                    errors.append(f"worker {s.w}: {_cause(e)}")
                    self.barrier.abort.remote(self.gen)
                else:
                    r.extra.update(node=s.node, node_cpus=s.cpus)
                    results.append(r)
        cpu = sum(r.cpu_s or 0.0 for r in results)
        lost = [s for s in self.slots if s.lost is not None]
        if lost:
            what = "; ".join(f"worker {s.w} on node {s.node}: {s.lost}" for s in lost)
            raise WorkerLost(f"{len(lost)} of {self.n} Ray workers lost during the phase ({what})", results, cpu)
        if errors:
            raise WorkerFailed(errors[0])
        return results, cpu

    def _watch(self, pending: dict[Any, _Slot], end: float | None) -> None:
        """While a phase runs: a worker silent past the stall limit ends the run (PhaseStalled, as the local
        pools); a phase that overran its duration by the grace loses what is still out."""
        if self.stall_s != NO_STALL:
            try:
                silent = self.ray.get([s.actor.silent.remote() for s in pending.values()], timeout=30)
            except Exception:  # noqa: BLE001 - a dead actor: its phase result says so on the next wait
                silent = []
            worst = max(zip(silent, pending.values(), strict=False), key=lambda x: x[0], default=None)
            if worst is not None and worst[0] > self.stall_s:
                self.kill()
                raise PhaseStalled(stall_message(worst[1].w, worst[0], self.stall_s))
        if end is not None and time.monotonic() > end:
            for ref, s in list(pending.items()):
                s.lost = f"no answer {PHASE_GRACE_S:g} s after the phase's end"
                self.ray.cancel(ref, force=True)
                self.ray.kill(s.actor, no_restart=True)
                pending.pop(ref)

    def kill(self) -> None:
        """Kill every actor at once (a stalled phase: the run ends failed)."""
        self.busy = True
        for s in self.slots:
            if s.actor is not None:
                self.ray.kill(s.actor, no_restart=True)

    def close(self) -> None:
        ray = self.ray
        graceful = not getattr(self, "busy", False)  # mid-phase (Ctrl-C, SIGTERM): no waiting behind the phase
        for s in getattr(self, "slots", []):
            if s.actor is not None:
                if graceful:
                    try:
                        ray.get(s.actor.close.remote(), timeout=10)
                    except Exception:  # noqa: BLE001 - a dead or stuck actor is killed below anyway
                        pass
                ray.kill(s.actor, no_restart=True)
                s.actor = None
        if getattr(self, "barrier", None) is not None:
            ray.kill(self.barrier, no_restart=True)
            self.barrier = None
        if getattr(self, "pg", None) is not None:
            ray.util.remove_placement_group(self.pg)
            self.pg = None
        ray.shutdown()  # the driver leaves the cluster; a sweep's next level joins again


def _plain(a: Any) -> Any:
    """A memory-mapped array as an ordinary one (the object store copies it once)."""
    import numpy as np

    return np.ascontiguousarray(a)


def _cause(e: BaseException) -> str:
    """The worker's own error (a RayTaskError wraps it), or the actor's death, as one line."""
    cause = getattr(e, "cause", None)
    if isinstance(cause, BaseException):
        return format_exception(cause)
    return (str(e).strip().splitlines() or [type(e).__name__])[0][:300]
