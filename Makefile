# Two commands do everything on a fresh clone:
#   make demo   — set up .venv, generate the sample, run the daily pipeline over every day
#   make test   — set up .venv, run the whole test suite
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: setup demo test lint format bench lock clean

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e ".[dev,spark]"
	touch $(STAMP)

setup: $(STAMP)

demo: $(STAMP)
	$(BIN)/puffy demo

test: lint
	$(BIN)/python -m pytest -q -n auto

# The formatter and linter (settings in pyproject.toml); `make format` applies what they ask for.
lint: $(STAMP)
	$(BIN)/ruff check lib tests
	$(BIN)/ruff format --check lib tests

format: $(STAMP)
	$(BIN)/ruff check --fix lib tests
	$(BIN)/ruff format lib tests

bench: $(STAMP)
	$(BIN)/puffy bench --scale 100 --json-out outputs/bench/bench.json

# Refresh the lock after changing dependencies in pyproject.toml (and environment.yml).
lock: $(STAMP)
	$(BIN)/python -m pip freeze --exclude-editable | grep -v '^-e' > constraints.txt

clean:
	rm -rf outputs/* $(VENV)
	touch outputs/.gitkeep
