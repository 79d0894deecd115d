# Two commands matter (see README): `make lab` and `make test`. Both install what they need.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.hpcml-installed
LAB_PORT ?= 8888
# Jupyter refuses to run as root unless told; containers and CI machines often are root.
ROOT_FLAG := $(if $(filter 0,$(shell id -u)),--allow-root)

.PHONY: install lab test test-js test-python bench clean

$(STAMP): pyproject.toml package.json yarn.lock scripts/system-deps.sh
	bash scripts/system-deps.sh
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	# The editable install builds the labextension (jlpm + @jupyter/builder) via hatch-jupyter-builder.
	$(PY) -m pip install --quiet -e ".[test]"
	touch $@

install: $(STAMP)

## JupyterLab on the example project, local backend as the default.
lab: $(STAMP)
	$(VENV)/bin/jupyter lab $(ROOT_FLAG) --ServerApp.root_dir=examples --ServerApp.port=$(LAB_PORT) \
		--LabApp.default_url=/lab/tree/digits/README.md

## Every test: TypeScript unit tests, then pytest (its summary line closes the output).
test: $(STAMP)
	$(VENV)/bin/jlpm test
	$(VENV)/bin/pytest -q -p no:cacheprovider $(PYTEST_ARGS)

test-python: $(STAMP)
	$(VENV)/bin/pytest -q $(PYTEST_ARGS)

bench: $(STAMP)
	$(PY) bench/bench_engine.py

clean:
	rm -rf $(VENV) node_modules lib jupyterlab_hpcml/labextension tsconfig.tsbuildinfo
