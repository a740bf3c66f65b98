# Blindgate: `make demo` runs the gateway on sample data; `make test` runs every check.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
PYSYFT_VENV ?= .venv-pysyft
PYSYFT_STAMP := $(PYSYFT_VENV)/.installed-stamp

.PHONY: install system-packages demo serve test lint format typecheck imports pytest pysyft bench clean

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; assert (3, 11) <= sys.version_info[:2] < (3, 14), "Python 3.11-3.13 required"'
	@echo "install: [1/3] creating $(VENV) with $$($(PYTHON) --version)"
	$(PYTHON) -m venv $(VENV)
	@echo "install: [2/3] upgrading pip"
	$(BIN)/pip install --upgrade --progress-bar on pip
	@echo "install: [3/3] installing Blindgate and its dev tools into $(VENV) (about two minutes)"
	$(BIN)/pip install --progress-bar on -e '.[dev]'
	@touch $(STAMP)
	@echo "install: done"

install: $(STAMP) ## create .venv and install Blindgate with its dev tools

system-packages: ## install bubblewrap, libseccomp, PostgreSQL and util-linux if missing
	@bash scripts/system-packages

demo: install ## reset ./.blindgate-demo, seed sample data and serve on http://127.0.0.1:8080
	$(BIN)/blindgate demo --data-dir ./.blindgate-demo

serve: install ## serve the gateway from ./.blindgate
	$(BIN)/blindgate serve

test: system-packages install lint typecheck imports pytest pysyft ## every check CI runs

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: install
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

typecheck: install
	$(BIN)/mypy

imports: install
	$(BIN)/lint-imports

pytest: install
	$(BIN)/pytest -q -m "not pysyft"

$(PYSYFT_STAMP): pyproject.toml
	@echo "pysyft: [1/2] creating $(PYSYFT_VENV) for the PySyft bridge (blindgate[pysyft])"
	$(PYTHON) -m venv $(PYSYFT_VENV)
	$(PYSYFT_VENV)/bin/pip install --upgrade --progress-bar off pip
	@echo "pysyft: [2/2] installing Blindgate with syft==0.10.0 and syft-rds==0.6.1"
	$(PYSYFT_VENV)/bin/pip install --progress-bar off -e '.[dev,pysyft]'
	$(PYSYFT_VENV)/bin/pip check
	@touch $(PYSYFT_STAMP)

pysyft: $(PYSYFT_STAMP) ## the PySyft bridge, offline (syft-rds's mock drive), in .venv-pysyft
	BLINDGATE_REQUIRE_PYSYFT=1 $(PYSYFT_VENV)/bin/pytest -q -p no:cacheprovider \
	  tests/bridge tests/test_architecture.py::test_importing_blindgate_never_loads_syft

bench: install ## run the benchmarks (prints figures; not part of `make test`)
	@for b in benchmarks/*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

clean:
	rm -rf $(VENV) $(PYSYFT_VENV) .mypy_cache .ruff_cache .pytest_cache .hypothesis .blindgate-demo
