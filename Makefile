# One entry point for humans and CI. `make test` and `make demo` work on a fresh machine:
# they create .venv and install everything the project needs from PyPI.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install postgresql test check lint typecheck pytest soak demo bench crds wheel clean

# Bytecode for the venv's packages, compiled once here: uv writes no .pyc, and where
# PYTHONDONTWRITEBYTECODE is set, Python writes none either, so every process of the
# suite and the stack (each stack child, ansible-playbook and module run, `cloudkit` call)
# compiled kubernetes, kopf, fastapi and ansible from source again: ~5.3 CPU-s to import the
# Kubernetes clients, kopf and aiohttp instead of ~1.3 (measured). The Ansible collections are
# skipped (15,000 files) but for the two the playbooks and tests run; `src` is compiled as it
# stands at install (a module edited later is compiled in memory, as before).
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip uv
	$(BIN)/uv pip install --python $(BIN)/python --quiet -e '.[dev]'
	$(BIN)/python -m compileall -q -j 0 -x 'ansible_collections/(?!kubernetes/core/|awx/awx/)' \
	  $$($(BIN)/python -c 'import sysconfig; print(sysconfig.get_path("purelib"))') src >/dev/null
	touch $(STAMP)

install: $(STAMP) postgresql

# The fulfillment store's tests start a throwaway PostgreSQL server (tests/harness/postgresql.py)
# from the machine's server binaries. As root on Debian or Ubuntu (CI), the distribution's
# server package is installed when none is there; elsewhere this says how to get one.
postgresql:
	@if ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1 || [ -n "$$POSTGRESQL_BIN" ]; then \
	  :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  echo "installing PostgreSQL's server (apt-get install postgresql) for the store's tests"; \
	  export DEBIAN_FRONTEND=noninteractive; \
	  apt-get install -y -q postgresql >/dev/null || \
	    { apt-get update -q >/dev/null && apt-get install -y -q postgresql >/dev/null; }; \
	else \
	  echo "note: no PostgreSQL server binaries: the store's PostgreSQL tests will fail until"; \
	  echo "      'apt-get install postgresql' (as root) or POSTGRESQL_BIN=<its bin directory>"; \
	fi

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks
	$(BIN)/lint-imports

typecheck: $(STAMP)
	$(BIN)/mypy

# Parallel test processes (pytest-xdist), file by file (`--dist loadfile`: a module's shared
# stack starts once; measured: ~4x more tests per minute than test by test under a comparable
# load), the longest files handed out first (tests/conftest.py). The suite is CPU-bound on
# two cores, but its stack tests also wait on timers (VM boots, jobs, Leases): 4 workers kept
# only 1.64 cores busy; 5 keep them busier (a whole run: ~6 minutes of pytest on an idle
# 2-core machine; CONTRIBUTING gives the figures). `make test WORKERS=4`, or 0 for one process.
WORKERS ?= 5
PYTEST := PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/pytest -q -p no:cacheprovider -n $(WORKERS) --dist loadfile

# Ends with the 25 slowest tests (wall) and the 25 costliest tests and files (CPU: wall time
# lies on a loaded machine); CPU_JSON=path also writes every test's figures.
pytest: $(STAMP) postgresql
	$(PYTEST) --durations=25 --cpu-top 25 $(if $(CPU_JSON),--cpu-json $(CPU_JSON))

test: lint typecheck pytest

# The fast tiers before a commit: lint, import contracts, mypy, unit and contract tests.
check: lint typecheck postgresql
	$(PYTEST) --durations=10 --cpu-top 10 tests/unit tests/contract

# The long resilience and failover proofs (about 25 minutes on an idle 2-core machine, as
# README and CONTRIBUTING say); not part of `make test`.
soak: $(STAMP)
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/pytest -q -p no:cacheprovider -m soak tests/integration/resilience tests/integration/leadership

crds: $(STAMP)
	$(BIN)/cloudkit crds > deploy/crds/cloudkit.openshift.io_computeinstances.yaml
	cp deploy/crds/cloudkit.openshift.io_computeinstances.yaml charts/cloudkit-operator/crds/

demo: $(STAMP)
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/cloudkit demo

bench: $(STAMP)
	for b in benchmarks/*.py; do PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python $$b; done

# The wheel the operator image installs (Containerfile); the dev install stays editable.
wheel: $(STAMP)
	rm -f dist/cloudkit-*.whl
	$(BIN)/uv build --wheel --out-dir dist

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .hypothesis
