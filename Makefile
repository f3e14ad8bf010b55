# Two commands do all the set-up on a fresh machine with Python 3.11 and make:
#   make reproduce   # sample data -> every notebook through papermill -> results/sample/
#   make test        # pytest + nbval on the sample data
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   ?= .venv
BIN    := $(VENV)/bin
SAMPLE ?= data/sample
DATA_DIR ?= $(SAMPLE)
PROFILE ?= sample
OUT    ?= results/$(PROFILE)
export TF_CPP_MIN_LOG_LEVEL ?= 2
export PYTHONHASHSEED ?= 0

.PHONY: help install sample reproduce test test-fast lab clean results publish book

help:
	@echo "make reproduce  - generate the sample data and run every notebook on it (results/sample/)"
	@echo "make test       - run the unit tests and the notebooks (nbval) on the sample data"
	@echo "make lab        - open the notebooks in JupyterLab"
	@echo "make results    - the paper profile (CPU mode) on $(REAL_DATA), published into $(PUBLISHED)/"
	@echo "make book       - the book (static site) of the executed chapters -> $(BOOK_OUT)/_build/html/"

# JupyterLab (the lab extra) is installed by `make lab` alone: it brings 45 packages, among
# them jsonschema's format checkers, and then every process that imports nbformat
# (papermill, nbval) spends about 2.5 CPU-s building rfc3987-syntax's grammar.
$(BIN)/cxr: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[test,dask,book]"
	touch $@

$(BIN)/jupyter-lab: $(BIN)/cxr
	$(BIN)/python -m pip install --quiet -e ".[test,lab,dask]"
	touch $@

install: $(BIN)/cxr

sample: $(BIN)/cxr
	$(BIN)/cxr data sample --out $(SAMPLE)

reproduce: sample
	$(BIN)/cxr batch --profile $(PROFILE) --data-dir $(DATA_DIR) --out $(OUT)

# Tests run in TEST_WORKERS processes (pytest-xdist: tests spread one by one, those of a
# module with module-wide fixtures stay together (xdist_group), a notebook's cells stay
# in one kernel). The report chapters (04-06) only read runs: a quick grid of them is
# made while the unit tests run (no test reads it; the two share the cores' idle moments,
# so the pair takes about as long as the tests alone; one worker, one kernel: it still
# ends long before the tests, and a second kernel only added TensorFlow processes
# competing for the cores the tests use), its console output kept in
# QUICK_LOG and shown when the tests end. The grid is resumable, so a second `make test`
# reuses it; its feature cache is the notebooks' own default, .cache/features, so
# chapters 2 and 3 extract nothing again. Interrupting the tests stops the grid too (a
# background job ignores Ctrl-C). Then every notebook is checked; the report chapters
# read the quick grid through CXR_RESULTS (by default they read results/sample, what
# `make reproduce` writes, when it is there).
# TEST_WORKERS=0 runs the tests in one process.
# Only the notebooks need the nbval plugin, so the unit tests run without it (-p no:nbval):
# loading it imports nbformat and jsonschema, 0.4 CPU-s in every pytest process (4 with
# the lab extra installed, see above).
TEST_WORKERS ?= 2
QUICK_LOG := results/quick-batch.log
test: export CXR_HASH_CACHE = $(CURDIR)/.cache/image-hashes.json
test: sample
	@mkdir -p results
	$(BIN)/cxr batch --profile quick --data-dir $(SAMPLE) --out results/quick --no-reports --quiet --workers 1 --cache-dir .cache/features > $(QUICK_LOG) 2>&1 & quick=$$!; trap 'kill $$quick 2>/dev/null; exit 130' INT TERM; \
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadgroup --durations=20 -p no:nbval tests; tests=$$?; \
	wait $$quick; grid=$$?; echo "quick grid for the report chapters ($(QUICK_LOG)):"; cat $(QUICK_LOG); \
	test $$tests -eq 0 && test $$grid -eq 0
	CXR_RESULTS=$(CURDIR)/results/quick $(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadscope --nbval-lax --nbval-current-env -p no:cacheprovider notebooks

test-fast: $(BIN)/cxr
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadgroup -p no:nbval tests -m "not slow"

lab: $(BIN)/jupyter-lab
	$(BIN)/jupyter lab notebooks/

# The real-data results in the repository: the paper profile in its CPU mode (no ImageNet
# download: -p weights none) on REAL_DATA into REAL_OUT (resumable; not committed), then
# `make publish`: its tables, figures and executed chapters, with relative paths, into
# PUBLISHED (committed), and the README's verdict table and docs/results.md from them.
# RESULTS_CACHE names a feature cache to share (default: REAL_OUT/.cache/features).
REAL_DATA ?= ../shared/data
REAL_OUT  ?= results/paper-cpu
PUBLISHED ?= results/real
RESULTS_CACHE ?=
results: $(BIN)/cxr
	$(BIN)/cxr batch --profile paper -p weights none --data-dir $(REAL_DATA) --out $(REAL_OUT) $(if $(RESULTS_CACHE),--cache-dir $(RESULTS_CACHE))
	$(MAKE) publish

publish: $(BIN)/cxr
	$(BIN)/cxr publish --results $(REAL_OUT) --out $(PUBLISHED)
	$(BIN)/cxr readme --results "Real data=$(PUBLISHED)"

# The book: a static site of the executed chapters (PUBLISHED, else a sample batch from
# `make reproduce`), built offline without executing anything.
BOOK_OUT ?= build/book
book: $(BIN)/cxr
	$(BIN)/cxr book --out $(BOOK_OUT) --published $(PUBLISHED) --sample-results results/sample

clean:
	rm -rf $(VENV) data/sample results/sample results/quick .cache
