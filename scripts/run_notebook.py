"""Execute a notebook in place (nbclient, the python3 kernel of this venv) and save it with its outputs, so it
reads on GitHub: `make notebook` (results from $BENCH_RESULTS, default results/)."""

from __future__ import annotations

import sys
from pathlib import Path

import nbformat
from nbclient import NotebookClient


def main(path: str) -> int:
    nb_path = Path(path)
    nb = nbformat.read(nb_path, as_version=4)
    NotebookClient(nb, timeout=600, kernel_name="python3",
                   resources={"metadata": {"path": str(nb_path.parent)}}).execute()
    nbformat.write(nb, nb_path)
    print(f"executed {nb_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else "notebooks/analysis.ipynb"))
