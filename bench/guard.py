"""Engine calls outside the timed phases (connect, create, load, wait until indexed, read-back, drop), guarded:
a call that raises an engine's or the environment's error, or does not return within its time limit (a frozen
server), becomes an `EngineFault`: one sentence naming the phase, the engine and what to do, exit 1. Its
traceback goes to the log (the run's log file), never to the terminal. A bench bug (TypeError, KeyError, ...)
still raises as it is: exit 3 is bench's own.

    guard.call(lambda: backend.create(spec), phase="creating the collection", engine="milvus", limit_s=40)
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any, TypeVar

from bench.errors import UserError

T = TypeVar("T")
log = logging.getLogger("bench.engine")

HINT = ("check that the server is running and answering (`python scripts/services.py status` for the local test "
        "servers), then run again")


class EngineFault(UserError):
    """The engine failed or stopped answering in a phase: the measurement failed (exit 1), not the user."""

    exit_code = 1

    def __init__(self, engine: str, phase: str, what: str, hint: str = HINT):
        self.engine, self.phase = engine, phase
        super().__init__(f"{engine} failed while {phase}: {what}", hint)

    def add_hint(self, text: str) -> None:
        """Append to the hint (e.g. what the run left on the server), keeping one sentence."""
        self.hint = f"{self.hint.rstrip('.')}; {text}" if self.hint else text
        self.args = (self.sentence(),)


class Overran(Exception):
    """A guarded call did not return within its limit."""


def is_engine_error(e: BaseException) -> bool:
    """An error from an engine's client or the environment (not a bench bug): OSError and its kin, or any
    exception whose class (or a cause's) is defined outside bench and the standard library's builtins."""
    seen: set[int] = set()
    cur: BaseException | None = e
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        if isinstance(cur, OSError | TimeoutError | ConnectionError):
            return True
        mod = type(cur).__module__ or ""
        if not (mod == "builtins" or mod == "bench" or mod.startswith("bench.")):
            return True
        cur = cur.__cause__ or cur.__context__
    return False


def bounded(fn: Callable[[], T], limit_s: float | None) -> T:
    """`fn()`; with a limit, in a daemon thread given that long (a frozen server must not hang bench), raising
    `Overran` when it does not return in time (the thread is left to the server)."""
    if limit_s is None:
        return fn()
    box: dict[str, Any] = {}

    def run() -> None:
        try:
            box["value"] = fn()
        except BaseException as e:  # noqa: BLE001 - handed to the caller's thread
            box["error"] = e

    t = threading.Thread(target=run, name="bench-engine-call", daemon=True)
    t.start()
    t.join(limit_s)
    if t.is_alive():
        raise Overran(f"no answer within {limit_s:g} s")
    if "error" in box:
        raise box["error"]
    return box["value"]


def call(fn: Callable[[], T], *, phase: str, engine: str, limit_s: float | None = None) -> T:
    """`fn()`, with engine errors and overruns turned into an EngineFault (their traceback logged)."""
    try:
        return bounded(fn, limit_s)
    except UserError:
        raise
    except Overran as e:
        log.error("%s: %s while %s", engine, e, phase)
        raise EngineFault(engine, phase, f"the server gave no answer within {limit_s:g} s (frozen or overloaded)") \
            from None
    except Exception as e:
        if not is_engine_error(e):
            raise
        log.error("%s failed while %s", engine, phase, exc_info=e)
        first = " ".join(str(e).split())[:200]
        raise EngineFault(engine, phase, f"{type(e).__name__}: {first}" if first else type(e).__name__) from None


class RunLog:
    """The run's log file: while a run lasts, log records (engine clients' warnings and errors, the tracebacks of
    EngineFaults) go to it instead of the terminal. Clients that install their own console handlers (pymilvus
    does, on import) are redirected too, each time `capture` is called (after a client is imported)."""

    def __init__(self, path: Any):
        self.path = path
        self.handler: logging.Handler | None = None
        self._swapped: list[tuple[logging.Logger, logging.Handler]] = []

    def start(self) -> RunLog:
        try:
            self.handler = logging.FileHandler(self.path, encoding="utf-8", delay=True)
        except OSError:
            return self
        self.handler.setLevel(logging.WARNING)
        self.handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        logging.getLogger().addHandler(self.handler)
        self.capture()
        return self

    def capture(self) -> None:
        """Move console handlers of loggers that do not propagate to the root over to the log file."""
        if self.handler is None:
            return
        for lg in [logging.getLogger(n) for n in list(logging.root.manager.loggerDict)]:
            if not isinstance(lg, logging.Logger) or lg.propagate:
                continue
            for h in list(lg.handlers):
                if type(h) is logging.StreamHandler:
                    lg.removeHandler(h)
                    self._swapped.append((lg, h))
            if self.handler not in lg.handlers and any(x[0] is lg for x in self._swapped):
                lg.addHandler(self.handler)

    def stop(self) -> None:
        if self.handler is None:
            return
        for lg, h in self._swapped:
            lg.removeHandler(self.handler)
            lg.addHandler(h)
        self._swapped.clear()
        logging.getLogger().removeHandler(self.handler)
        self.handler.close()
        self.handler = None
