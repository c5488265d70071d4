#!/usr/bin/env bash
# Start the services the tests need, run the whole suite, always stop the services (by pid), and exit with
# pytest's code (5, "no tests ran", is a failure).
set -uo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
# The report is tested in a real headless browser (tests/test_readme.py): Debian's chromium.
if ! command -v chromium >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
      || { echo "could not install chromium (apt-get install -y chromium)" >&2; exit 1; }
  else
    echo "chromium is missing: install it (Debian: apt-get install -y chromium) to test the report" >&2; exit 1
  fi
fi
# Python may write its bytecode caches (PYTHONDONTWRITEBYTECODE is set on this machine): without them, each of the
# suite's hundreds of bench processes compiled every bench module again (0.15-0.2 s of CPU each).
unset PYTHONDONTWRITEBYTECODE
# Static checks first, each failing the run: every file compiles, ruff's rules hold, mypy's check holds (its
# strictness and the modules not yet clean are in pyproject.toml's [tool.mypy]).
out=$($PY -m compileall -q bench tests benchmarks scripts 2>&1) || { echo "$out" >&2; echo "compileall failed" >&2; exit 1; }
$PY -m ruff check bench tests benchmarks scripts || { echo "ruff check failed" >&2; exit 1; }
$PY -m mypy || { echo "mypy failed (pyproject.toml [tool.mypy])" >&2; exit 1; }
$PY scripts/services.py up || { echo "services failed to start" >&2; $PY scripts/services.py down; exit 1; }
trap '$PY scripts/services.py down' EXIT
# The one switch of every server test (tests/backend_options.py): a server that cannot start or answer fails its
# test instead of skipping (Qdrant and Weaviate servers, which cannot run here, still skip while no URL names one).
export BENCH_REQUIRE_SERVERS="${BENCH_REQUIRE_SERVERS:-1}"
# Two parts: the tests that do not depend on the machine's timing on three workers (pytest-xdist; most of them wait
# on subprocesses and servers: with two, the whole suite used 1.1 of the 2 cores on average), then the timing- and
# load-sensitive ones (marked `serial` in tests/conftest.py) alone.
$PY -m pytest -ra -n 3 --dist loadfile -m "not serial" "$@"
rc1=$?
$PY -m pytest -ra -p no:xdist -m serial "$@"
rc2=$?
if [ "$rc1" -eq 5 ] && [ "$rc2" -eq 5 ]; then echo "pytest ran no tests: failing" >&2; exit 1; fi
for rc in "$rc1" "$rc2"; do
  if [ "$rc" -ne 0 ] && [ "$rc" -ne 5 ]; then exit "$rc"; fi
done
# A part that ran nothing is a failure on the whole suite (the markers broke); with a selection ("$@") one part
# may rightly be empty.
if [ "$#" -eq 0 ] && { [ "$rc1" -eq 5 ] || [ "$rc2" -eq 5 ]; }; then echo "a part of the suite ran no tests: failing" >&2; exit 1; fi
exit 0
