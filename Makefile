# Two commands matter (see README): `make lab` and `make test`. Both install what they need.
# `make lint` is the gate CI runs first (ruff, mypy, eslint, prettier; offline, well under a minute).
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.hpcml-installed
LAB_PORT ?= 8888
# Jupyter refuses to run as root unless told; containers and CI machines often are root.
ROOT_FLAG := $(if $(filter 0,$(shell id -u)),--allow-root)

.PHONY: install lab test test-cluster test-ui test-python bench clean lint lint-ruff lint-mypy lint-ts format

$(STAMP): pyproject.toml package.json yarn.lock scripts/system-deps.sh
	bash scripts/system-deps.sh
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	# The editable install builds the labextension (jlpm + @jupyter/builder) via hatch-jupyter-builder.
	$(PY) -m pip install --quiet -e ".[test]"
	# Link (not copy) the built labextension, so `jlpm build` is picked up by the lab.
	PATH=$(abspath $(VENV))/bin:$$PATH jupyter-builder develop --overwrite .
	touch $@

install: $(STAMP)

## JupyterLab on the example project, local backend as the default.
lab: $(STAMP)
	$(VENV)/bin/jupyter lab $(ROOT_FLAG) --ServerApp.root_dir=examples --ServerApp.port=$(LAB_PORT) \
		--LabApp.default_url=/lab/tree/digits/README.md

## Every test: TypeScript unit tests, then pytest (its summary line closes the output).
# Every suite runs even when one before it failed (the exit status says so); pytest runs last,
# so that its summary is the last line.
test: $(STAMP) test-cluster
	@status=0; \
	$(VENV)/bin/jlpm test || status=1; \
	$(MAKE) --no-print-directory test-ui || status=1; \
	$(VENV)/bin/pytest -q -p no:cacheprovider --durations=15 $(PYTEST_ARGS) || status=1; \
	exit $$status

## Galata tests: the real lab + server extension in Debian's headless Chromium.
test-ui: $(STAMP)
	cd ui-tests && PATH=$(abspath $(VENV))/bin:$$PATH jlpm install --immutable
	cd ui-tests && PATH=$(abspath $(VENV))/bin:$$PATH CI=1 jlpm playwright test

## A real one-node Slurm + sshd on loopback for the Slurm tests (needs root; else they skip).
test-cluster:
	@if [ "$$(id -u)" = 0 ]; then bash scripts/test-cluster-start.sh; \
	else echo "not root: no test cluster, the Slurm-over-SSH tests will skip"; fi

## The lint gate: the checkers run side by side (each one's output kept together), all report.
lint: $(STAMP)
	@$(MAKE) --no-print-directory -j3 -k --output-sync=target lint-ruff lint-mypy lint-ts
	@echo "lint: clean"

lint-ruff:
	$(VENV)/bin/ruff check --quiet .

# Files and strictness come from [tool.mypy] in pyproject.toml.
lint-mypy:
	$(VENV)/bin/mypy --no-error-summary

lint-ts:
	node_modules/.bin/eslint --cache --cache-location node_modules/.cache/eslint/ src
	node_modules/.bin/prettier --check --log-level warn --cache 'src/**/*.{ts,tsx}'

## Apply the auto-fixes: prettier on src/, ruff's safe fixes (imports, upgrades) on Python.
format:
	node_modules/.bin/prettier --write --log-level warn 'src/**/*.{ts,tsx}'
	node_modules/.bin/eslint --fix src
	$(VENV)/bin/ruff check --fix --quiet .

test-python: $(STAMP)
	$(VENV)/bin/pytest -q $(PYTEST_ARGS)

bench: $(STAMP)
	$(PY) bench/bench_engine.py
	$(PY) bench/bench_sweep.py
	$(PY) bench/bench_schedules.py
	$(PY) bench/bench_data.py
	$(PY) bench/bench_deploy.py
	$(PY) bench/bench_cli.py

clean:
	rm -rf $(VENV) node_modules lib jupyterlab_hpcml/labextension tsconfig.tsbuildinfo
