# Two commands do all the set-up on a fresh machine:
#   make demo   creates .venv, installs jaxconv, runs the main job on its built-in default
#   make test   creates .venv, installs the test extras, runs the whole suite
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)

.PHONY: demo test venv bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install --quiet -e '.[test]'
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

venv: $(STAMP)

# The main job: Kim's CNN on the built-in synthetic corpus (re-running resumes from runs/demo's checkpoints),
# then the seed question answered in code.
demo: venv
	$(BIN)/python experiments/text_cnn.py --config configs/text_cnn.py:synthetic --workdir runs/demo
	$(BIN)/python experiments/seed_example.py

# pytest's exit code 5 ("no tests ran") is a failure here like any other non-zero code.
test: venv
	$(BIN)/python -m pytest

bench: venv
	$(BIN)/python benchmarks/conv_layer.py

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis
