"""Every command in the ```sh blocks of the README and of the docs/ pages it links to (the README's first, then
each page in the order of its first link), run in order in a fresh copy of the repository (the files git tracks,
nothing beside them: no ../shared, so the wordnet set is the 4,000-row fixture), as a newcomer would type them.
Run once per test session and shared: tests/test_readme.py checks the outcomes and opens the report the worked
example made in a browser.

Documented sizes are kept; each `bench run` gets `run.min_operations=1` and `run.warmup_s=0` (a trial is one pass
over the queries), and a workload whose trials are timed (`run.duration_s`) gets 1-second trials, so CI stays
fast: every flag of the command is still parsed and acted on.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from bench.spec import REPO_ROOT

README = REPO_ROOT / "README.md"
FAST = ["--set", "run.min_operations=1", "--set", "run.warmup_s=0"]

# Commands not run, each with why. Keep it small: only engines absent here, the network, or what the test itself
# is (make test) or stands for (make run's installation; its bench command is run instead).
SKIP = {
    "make test": "is CI itself: the whole suite, of which this test is one",
    ". .venv/bin/activate": "the test already runs in the project's venv",
    "bench suite configs/suites/nightly.toml": "the nightly matrix: every server engine, minutes of runs",
    "bench datasets fetch cohere-768-1m": "downloads 3 GB from the internet",
    "bench run --backend pgvector --workload vdbb/performance-768d-1m": "needs the fetched 1M Cohere set (network)",
    "bench run --backend qdrant --workload vdbb/performance-768d-1m-99p": "needs a Qdrant server (absent here) and "
                                                                          "the fetched 1M Cohere set",
    "bench run --backend faiss --workload annb/glove-100-angular": "needs the fetched GloVe set (network)",
}


def covered_pages() -> list[Path]:
    """The docs/ pages the README links to, in the order of their first link."""
    pages: list[Path] = []
    for m in re.finditer(r"\]\((docs/[\w.-]+\.md)(?:#[^)]*)?\)", README.read_text(encoding="utf-8")):
        page = REPO_ROOT / m.group(1)
        if page not in pages:
            pages.append(page)
    return pages


def all_text() -> str:
    """The README, then each page it covers."""
    return "\n".join(p.read_text(encoding="utf-8") for p in [README, *covered_pages()])


def commands(text: str | None = None) -> list[str]:
    """The command lines of the ```sh blocks, comments removed, in order (default: the README's and its pages')."""
    text = all_text() if text is None else text
    out = []
    for block in re.findall(r"^```sh\n(.*?)^```", text, flags=re.S | re.M):
        for line in block.splitlines():
            line = re.sub(r"\s{2,}#.*$", "", line).strip()
            if line and not line.startswith("#"):
                out.append(line)
    return out


def skipped_by(cmd: str) -> str | None:
    return next((k for k in SKIP if cmd == k or cmd.startswith(k + " ")), None)


@dataclass
class Outcome:
    cmd: str
    returncode: int
    stdout: str
    stderr: str
    seconds: float


@dataclass
class Clone:
    root: Path
    outcomes: list[Outcome] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)


def _copy_tracked(dest: Path) -> None:
    """A fresh clone of the working tree as it is (tracked files only, with their uncommitted changes)."""
    files = subprocess.run(["git", "ls-files", "-z"], cwd=REPO_ROOT, capture_output=True, check=True).stdout
    for rel in files.decode().split("\0"):
        src = REPO_ROOT / rel
        if not rel or not src.exists():
            continue
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        if src.is_symlink():
            target.symlink_to(os.readlink(src))
        elif src.is_file():
            target.write_bytes(src.read_bytes())


def _make_run_args(root: Path) -> list[str]:
    """What `make run` runs after installing: the Makefile's `$(BENCH) ...` line of the run target."""
    text = (root / "Makefile").read_text()
    recipe = re.search(r"^run:.*\n\t\$\(BENCH\) (.+)$", text, flags=re.M)
    assert recipe, "the Makefile's run target no longer runs $(BENCH) ...: update tests/readme_commands.py"
    return shlex.split(recipe.group(1))


def argv(cmd: str, root: Path) -> list[str]:
    words = _make_run_args(root) if cmd == "make run" else shlex.split(cmd)[1:]
    if cmd != "make run" and not cmd.startswith("bench "):
        raise AssertionError(f"README command '{cmd}' is neither bench nor make run: teach "
                             "tests/readme_commands.py to run it, or put it on the skip-list with a reason")
    if words and words[0] == "run":
        words += FAST + (["--set", "run.duration_s=1"] if _timed(words, root) else [])
    return [sys.executable, "-m", "bench.cli", *words]


def _timed(words: list[str], root: Path) -> bool:
    """Whether the `bench run` workload's trials last `run.duration_s` (not one pass over the queries)."""
    import tomllib

    name = next((words[i + 1] for i, w in enumerate(words[:-1]) if w in ("--workload", "-w")), "ann-smoke")
    path = Path(name) if name.endswith(".toml") else root / "workloads" / f"{name}.toml"
    run = tomllib.loads(path.read_text()).get("run", {}) if path.is_file() else {}
    return "duration_s" in run


_DONE: dict[str, Clone] = {}


def run_readme(tmp_path_factory, cache_dir: Path) -> Clone:
    """Run every README command once per test session in a fresh copy of the repo; later callers get the outcomes.
    Once per session, not per process: the pytest-xdist workers of one session share the run (the first to come
    runs it under a file lock and writes the outcomes beside it; the others read them)."""
    if "clone" in _DONE:
        return _DONE["clone"]
    from filelock import FileLock

    base = tmp_path_factory.getbasetemp()
    shared = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base  # the session's folder, all workers
    with FileLock(str(shared / "readme-commands.lock")):
        saved = shared / "readme-commands.json"
        if saved.is_file():
            doc = json.loads(saved.read_text())
            clone = Clone(Path(doc["root"]), [Outcome(**o) for o in doc["outcomes"]], doc["skipped"])
        else:
            clone = _run_all(shared / "readme-clone" / "bench", cache_dir)
            saved.write_text(json.dumps({"root": str(clone.root), "skipped": clone.skipped,
                                         "outcomes": [asdict(o) for o in clone.outcomes]}))
    _DONE["clone"] = clone
    return clone


def _run_all(root: Path, cache_dir: Path) -> Clone:
    root.mkdir(parents=True)
    _copy_tracked(root)
    clone = Clone(root)
    env = {k: v for k, v in os.environ.items() if k not in ("BENCH_WORDNET_DIR", "BENCH_RESULTS")}
    env.update({"PYTHONPATH": str(root), "BENCH_CACHE_DIR": str(cache_dir), "COLUMNS": "100"})
    done: set[str] = set()
    for cmd in commands():
        if skipped_by(cmd):
            clone.skipped.append(cmd)
            continue
        if cmd in done:  # `make run` is both at the top and in the Quick start: once is what a reader does
            continue
        done.add(cmd)
        t = time.monotonic()
        p = subprocess.run(argv(cmd, root), cwd=root, env=env, capture_output=True, text=True, timeout=600)
        clone.outcomes.append(Outcome(cmd, p.returncode, p.stdout, p.stderr, time.monotonic() - t))
    return clone
