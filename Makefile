# Two commands: `make run` starts the bridge, `make test` runs the tests.
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin

.PHONY: run test lint bench install clean

$(BIN)/.installed: requirements.txt requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -r requirements-dev.txt
	touch $@

install: $(BIN)/.installed

run: install
	PATH="$(abspath $(BIN)):$$PATH" bin/run

test: install
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/python -m pytest -q $(PYTEST_ARGS)

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

bench: install
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/python -m bench.run_all

clean:
	rm -rf $(VENV) var .pytest_cache
