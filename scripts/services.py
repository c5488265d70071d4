#!/usr/bin/env python3
"""Start, stop and inspect the test servers on 127.0.0.1, by pid: a thin wrapper of `bench.services` (the logic
lives in the package, where `bench fault` uses it too). Run it with the project's venv:

    .venv/bin/python scripts/services.py up [pgvector] [chroma] [milvus] [pgvector-replicas]
    .venv/bin/python scripts/services.py down | status [NAME ...]
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # this checkout's bench, even without the venv

import bench.pgcluster  # noqa: F401  (registers the pgvector-replicas service)
from bench.services import main

if __name__ == "__main__":
    sys.exit(main())
