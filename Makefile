# Two entry points that work on a fresh machine (Python 3.10-3.12 with venv):
#   make demo   set up, then run the main job on a bundled example model
#   make test   set up, then run every test (fast, TensorFlow and corpus tests)
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: setup demo test test-fast bench fixtures

$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e ".[all]"
	touch $(STAMP)

setup: $(STAMP)

# The main job on a bundled model: a uint8 camera frame cast inside the graph and merged with
# float features. qfix rewrites it, converts it for the Edge TPU and shows before/after.
demo: $(STAMP)
	mkdir -p build/demo
	$(VENV)/bin/qfix fixtures/two_input_k3.keras --target edgetpu --out-dir build/demo

test: $(STAMP)
	$(PY) -m pytest -m "" -n 2 -q -p no:cacheprovider

test-fast: $(STAMP)
	$(PY) -m pytest -q

bench: $(STAMP)
	$(PY) bench/bench_static.py
	$(PY) bench/bench_check.py
	$(PY) bench/bench_convert.py
	$(PY) bench/bench_codemod.py

fixtures: $(STAMP)
	$(PY) fixtures/build.py
