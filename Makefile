# Two commands do all the set-up on a fresh machine:
#   make demo   creates .venv, installs jaxconv, runs the main job on its built-in default
#   make test   creates .venv, installs the test extras, lints, runs the whole suite
#   (make test-fast: the same without the tests marked slow)
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
HASH   := $(shell cat pyproject.toml | cksum | cut -d' ' -f1)
STAMP_RUN  := $(VENV)/.installed-run-$(HASH)
STAMP_TEST := $(VENV)/.installed-test-$(HASH)

.PHONY: demo test test-fast venv venv-test lint bench install-check clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# The package alone (what a user's `pip install jaxconv` gives), editable.
$(STAMP_RUN): $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install --quiet -e .
	rm -f $(VENV)/.installed-run-*
	touch $(STAMP_RUN)

# The package with the test extras.
$(STAMP_TEST): $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install --quiet -e '.[test]'
	rm -f $(VENV)/.installed-*
	touch $(STAMP_TEST) $(STAMP_RUN)

venv: $(STAMP_RUN)
venv-test: $(STAMP_TEST)

# The main job: Kim's CNN on the built-in synthetic corpus (re-running resumes from runs/demo's checkpoints), its
# per-filter activations dumped and reported (runs/demo/report/test/index.html), the planted motifs the filters found,
# then the seed question answered in code.
demo: venv
	$(BIN)/python experiments/text_cnn.py --config configs/text_cnn.py:synthetic --workdir runs/demo
	$(BIN)/jaxconv dump --workdir runs/demo --overwrite
	$(BIN)/jaxconv ablate --workdir runs/demo
	$(BIN)/jaxconv report --workdir runs/demo
	$(BIN)/python experiments/planted_motifs.py --workdir runs/demo
	$(BIN)/python experiments/seed_example.py

lint: venv-test
	$(BIN)/ruff check .

# The suite on up to 4 cores (pytest-xdist, one test file per worker so a file's fixtures are built once);
# WORKERS=1 runs it in one process. pytest's exit code 5 ("no tests ran") is a failure here like any other.
WORKERS ?= $(shell $(PYTHON) -c "import os; print(min(4, len(os.sched_getaffinity(0))))" 2>/dev/null || echo 2)
test: lint
	$(BIN)/python -m pytest -n $(WORKERS) --dist loadfile

# The suite without the tests marked slow (end-to-end training, dumps, reports, notebooks): for iteration.
test-fast: lint
	$(BIN)/python -m pytest -n $(WORKERS) --dist loadfile -m "not slow"

bench: venv
	$(BIN)/python benchmarks/conv_layer.py

# Install the package without extras into a fresh virtualenv outside the checkout and use it (CI runs this).
install-check:
	bash .ci/install_check.sh

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis
