# Two entry points that work on a fresh machine (Python 3.11-3.12 with venv):
#   make demo   set up, then run the main job on a bundled example model
#   make test   set up, then run every test (fast, TensorFlow and corpus tests)
# Setup installs the tested set: constraints.txt pins every package the suite passed with.
VENV ?= .venv
PY := $(VENV)/bin/python
# pip prints errors only (-qq): a failed install still says why, the demo's output stays on screen.
PIP := $(PY) -m pip -qq --disable-pip-version-check
STAMP := $(VENV)/.installed

.PHONY: setup demo test test-fast bench fixtures rules

$(STAMP): pyproject.toml constraints.txt
	@echo "setup: installing qfix and its tested dependencies into $(VENV), TensorFlow and its family included (about 2.5 GB installed; a few minutes the first time)"
	@python3 -m venv $(VENV)
	@$(PIP) install --upgrade pip
	@$(PIP) install -c constraints.txt -e ".[all]"
	@touch $(STAMP)

setup: $(STAMP)

# The main job on a bundled model: a uint8 camera frame cast inside the graph and merged with
# float features. qfix rewrites it, converts it for the Edge TPU and shows before/after.
demo: $(STAMP)
	@mkdir -p build/demo
	$(VENV)/bin/qfix fixtures/two_input_k3.keras --target edgetpu --out-dir build/demo

# Everything CI runs, in two workers; the 25 slowest tests are listed at the end so a slowdown
# shows where it comes from. The source corpus test samples CORPUS files of its 1,602 (evenly,
# all three packages); `make test CORPUS=0` runs it over all of them.
CORPUS ?= 400
test: $(STAMP)
	QFIX_CORPUS_LIMIT=$(CORPUS) $(PY) -m pytest -m "" -n 2 -q -p no:cacheprovider --durations=25

test-fast: $(STAMP)
	$(PY) -m pytest -q -n 2

bench: $(STAMP)
	$(PY) bench/bench_static.py
	$(PY) bench/bench_check.py
	$(PY) bench/bench_convert.py
	$(PY) bench/bench_codemod.py
	$(PY) bench/bench_hostile.py

fixtures: $(STAMP)
	$(PY) fixtures/build.py

# The rule catalogue (rules/*.md) from the rule modules' docstrings.
rules: $(STAMP)
	$(PY) -m qfix.rules.docs rules
