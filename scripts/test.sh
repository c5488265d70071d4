#!/usr/bin/env bash
# Start the services the tests need, run the whole suite, always stop the services (by pid), and exit with
# pytest's code (5, "no tests ran", is a failure).
set -uo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
# The report is tested in a real headless browser (tests/test_report_browser.py): Debian's chromium.
if ! command -v chromium >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
      || { echo "could not install chromium (apt-get install -y chromium)" >&2; exit 1; }
  else
    echo "chromium is missing: install it (Debian: apt-get install -y chromium) to test the report" >&2; exit 1
  fi
fi
$PY scripts/services.py up || { echo "services failed to start" >&2; $PY scripts/services.py down; exit 1; }
trap '$PY scripts/services.py down' EXIT
# The servers started above must really run in the tests: a missing one fails instead of skipping.
export BENCH_REQUIRE_SERVERS="${BENCH_REQUIRE_SERVERS:-pgvector,chroma-server,milvus}"
$PY -m pytest -ra "$@"
rc=$?
if [ "$rc" -eq 5 ]; then echo "pytest ran no tests: failing" >&2; exit 1; fi
exit "$rc"
