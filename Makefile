# Two commands do all the set-up on a fresh machine:
#   make run    venv, install, run the main job on an embedded engine with a small dataset
#   make test   venv, install, start the services the tests need, run the whole suite, stop the services
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
BENCH  := $(VENV)/bin/bench
STAMP  := $(VENV)/.installed

.PHONY: install run test lint notebook services-up services-down clean

# uv installs the same versions as pip in less than half the time (a fresh venv here: 51 s against 120 s); pip is
# the fallback when uv cannot. --compile-bytecode as pip does: with PYTHONDONTWRITEBYTECODE set (as on this
# machine), a venv without .pyc files would compile pandas, pyarrow and the rest again in every process.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet uv
	$(PY) -m uv pip install --quiet --compile-bytecode --python $(PY) -e '.[all]' || $(PY) -m pip install --quiet -e '.[all]'
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(BENCH) run --backend qdrant-edge --workload ann-smoke

test: $(STAMP)
	bash scripts/test.sh

# Execute notebooks/analysis.ipynb in place on the results under $(RESULTS) (default: results/).
RESULTS ?= results
notebook: $(STAMP)
	BENCH_RESULTS=$(RESULTS) MPLBACKEND=module://matplotlib_inline.backend_inline $(PY) scripts/run_notebook.py notebooks/analysis.ipynb

lint: $(STAMP)
	$(VENV)/bin/ruff check bench tests benchmarks scripts
	$(PY) -m mypy

services-up: $(STAMP)
	$(PY) scripts/services.py up

services-down:
	$(PY) scripts/services.py down

clean:
	rm -rf $(VENV) .services results
