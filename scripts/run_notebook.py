"""Execute a notebook in place (nbclient, the python3 kernel of this venv) and save it with its outputs, so it
reads on GitHub: `make notebook RESULTS=results/example` (results from $BENCH_RESULTS, default results/).

A relative RESULTS is read from where make (or this script) was started, the repository's root, not from the
notebook's folder the kernel runs in: the path is made absolute before the kernel starts. Results that cannot be
read end in one sentence and exit 2, before the kernel starts; a cell that fails ends in one line naming the cell
(exit 3: the notebook's bug), with the notebook left as it was.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

from bench.analysis.load import find_files
from bench.errors import UserError


def results_path(given: str) -> Path:
    """The results the notebook is to read, absolute, checked: a UserError says what is wrong with them."""
    p = Path(given).expanduser()
    if not p.exists():
        raise UserError(f"The results path {given} does not exist (read from {Path.cwd()})",
                        "give RESULTS a run folder, a folder of runs or a parquet file, e.g. "
                        "make notebook RESULTS=results/example")
    find_files([p], "summary")  # raises a UserError naming what is missing
    return p.resolve()


def execute(nb_path: Path) -> None:
    nb = nbformat.read(nb_path, as_version=4)
    try:
        NotebookClient(nb, timeout=600, kernel_name="python3",
                       resources={"metadata": {"path": str(nb_path.parent)}}).execute()
    except CellExecutionError as e:
        cell = next((i for i, c in enumerate(nb.cells) if c.cell_type == "code" and any(
            o.get("output_type") == "error" for o in c.get("outputs", []))), None)
        last = (str(e).strip().splitlines() or ["(no message)"])[-1]
        print(f"error: the notebook {nb_path} failed in cell {cell}: {last}; it was not saved.", file=sys.stderr)
        raise SystemExit(3) from None
    nbformat.write(nb, nb_path)


def main(path: str) -> int:
    try:
        os.environ["BENCH_RESULTS"] = str(results_path(os.environ.get("BENCH_RESULTS") or "results"))
    except UserError as e:
        print(f"error: {e.sentence()}", file=sys.stderr)
        return 2
    execute(Path(path))
    print(f"executed {path} on {os.environ['BENCH_RESULTS']}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else "notebooks/analysis.ipynb"))
