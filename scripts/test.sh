#!/usr/bin/env bash
# Start the services the tests need, run the whole suite, always stop the services (by pid), and exit with
# pytest's code (5, "no tests ran", is a failure).
set -uo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
$PY scripts/services.py up || { echo "services failed to start" >&2; $PY scripts/services.py down; exit 1; }
trap '$PY scripts/services.py down' EXIT
# The servers started above must really run in the tests: a missing one fails instead of skipping.
export BENCH_REQUIRE_SERVERS="${BENCH_REQUIRE_SERVERS:-pgvector,chroma-server,milvus}"
$PY -m pytest -ra "$@"
rc=$?
if [ "$rc" -eq 5 ]; then echo "pytest ran no tests: failing" >&2; exit 1; fi
exit "$rc"
