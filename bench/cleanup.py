"""`bench cleanup RUN`: drop what a run left on a server, named in its run.json (a suite folder: every cell's).

A run names its collection in run.json before it creates it, so even a run that was killed, or whose drop did
not get an answer, can be cleaned up later. The backend options come from run.json (secrets there are
fingerprinted: give them again with --set backend.KEY=VALUE) and never name anything the run did not create.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from bench import guard
from bench.backends import registry
from bench.backends.base import CollectionSpec
from bench.errors import UserError
from bench.spec import apply_overrides

LIMIT_S = 30.0  # a server that does not answer within this long is reported, never waited for


@dataclass
class Dropped:
    run_json: Path
    backend: str
    collection: str


def run_files(run: str | Path, results_dir: Path) -> list[Path]:
    """The run.json files of a run folder (a suite's: one per cell), or of a run id under results_dir."""
    p = Path(run)
    if p.is_file() and p.name.endswith("run.json"):
        return [p]
    folder = p if p.is_dir() else results_dir / str(run)
    if not folder.is_dir():
        raise UserError(f"There is no run folder '{run}' (not a path, nor a run id under {results_dir}/)",
                        "give the run folder or run id that `bench run` printed")
    files = sorted(folder.glob("*run.json"))
    if not files:
        raise UserError(f"The folder {folder} holds no run.json", "give a run folder made by `bench run` or `bench suite`")
    return files


def _read(path: Path) -> dict:
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise UserError(f"Cannot read {path} ({e})", "give a run folder whose run.json is whole") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("backend"), str):
        raise UserError(f"{path} is not a bench run.json (no backend)", "give a run folder made by `bench run`")
    return doc


def drop_one(path: Path, overrides: list[str]) -> Dropped | None:
    """Drop the collection `path` names (None when it names none); a server that fails is one sentence."""
    doc = _read(path)
    name = doc.get("collection")
    if not isinstance(name, str) or not name:
        return None
    cls = registry.get(doc["backend"])
    data = apply_overrides({"backend": dict(doc.get("backend_options") or {})},
                           [o for o in overrides if o.startswith("backend.")], {"backend"})
    try:
        options = cls.Options.model_validate(data["backend"])
    except ValueError as e:
        raise UserError(f"The backend options in {path} are not valid ({' '.join(str(e).split())[:200]})",
                        "give the right ones with --set backend.KEY=VALUE") from None
    dataset = doc.get("dataset") or {}
    spec = CollectionSpec(name=name, dim=int(dataset.get("dim") or 1), metric=str(dataset.get("metric") or "l2"))
    backend = cls(options, "")
    hint = (f"{guard.HINT}; secrets in run.json are fingerprinted, so give a password or key again with --set "
            "backend.KEY=VALUE")
    try:
        guard.call(backend.connect, phase="connecting", engine=doc["backend"], limit_s=LIMIT_S)
        backend.collection = spec  # type: ignore[attr-defined] # the run's collection, as the run would drop it
        guard.call(backend.drop, phase=f"dropping '{name}'", engine=doc["backend"], limit_s=LIMIT_S)
    except guard.EngineFault as e:
        e.add_hint(hint.split("; ", 1)[1])
        raise
    finally:
        try:
            guard.bounded(backend.close, 5.0)
        except Exception:  # noqa: BLE001 - closing a client after its drop may fail on a dead server
            pass
    return Dropped(path, doc["backend"], name)


def cleanup(run: str | Path, results_dir: Path = Path("results"), overrides: list[str] | None = None) -> list[Dropped]:
    """Drop every collection the run (or suite) named; each drop is idempotent (IF EXISTS, or a check first)."""
    return [d for f in run_files(run, results_dir) if (d := drop_one(f, overrides or [])) is not None]
