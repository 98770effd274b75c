# One entry point for humans and CI. `make test` and `make demo` work on a fresh machine:
# they create .venv and install everything the project needs from PyPI.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install test lint typecheck pytest soak demo bench crds wheel clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip uv
	$(BIN)/uv pip install --python $(BIN)/python --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks
	$(BIN)/lint-imports

typecheck: $(STAMP)
	$(BIN)/mypy

pytest: $(STAMP)
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/pytest -q -p no:cacheprovider --durations=25

test: lint typecheck pytest

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
