# Two commands: `make run` starts the bridge, `make test` runs the tests.
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin

.PHONY: run test lint mutants bench install runtime clean clean-data image-check proxy-check

$(BIN)/.installed: requirements.txt requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -r requirements-dev.txt
	touch $@

install: $(BIN)/.installed

# What the container image runs: the runtime libraries only (no test tools).
runtime:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --no-cache-dir -r requirements.txt

run: install
	PATH="$(abspath $(BIN)):$$PATH" bin/run

# On pytest-xdist workers, a file's tests on one worker, the longest waits handed out first
# (tests/conftest.py, APART; docs/architecture.md, "Tests"). TEST_WORKERS=0 runs in one process.
TEST_WORKERS ?= 4
FAST_WORKERS ?= 2
test: install
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/python -m pytest -q -n $(TEST_WORKERS) --dist loadfile $(PYTEST_ARGS)

# Every test but the real-process ones (marked e2e), for the edit-test loop.
.PHONY: test-fast
test-fast: install
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/python -m pytest -q -n $(FAST_WORKERS) --dist loadfile -m "not e2e" $(PYTEST_ARGS)

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports --no-cache
	$(BIN)/mypy

# Mutation testing of the delivery engine and the drain's failure and lease rules against their fast
# tests (pyproject.toml [tool.mutmut]; docs/delivery.md, "Tests that catch what they claim"). A fresh
# run each time (about 15 minutes on 2 cores), niced and two mutants at a time; then the score per file
# and every surviving mutant. `MUTANTS_CHILDREN=1 make mutants` on a busier machine.
MUTANTS_CHILDREN ?= 2
mutants: install
	rm -rf mutants
	PATH="$(abspath $(BIN)):$$PATH" nice -n 10 $(BIN)/mutmut run --max-children $(MUTANTS_CHILDREN) >mutants.log 2>&1 \
		|| { tail -c 3000 mutants.log; exit 1; }
	$(BIN)/python bin/mutants-report --survivors

bench: install
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/python -m bench.run_all

# Production checks, as root on Debian (.ci/run): the container image built and smoke-tested
# (docker.io, debootstrap), and the proxy configs loaded and used (nginx, caddy). README, "Production".
image-check: install
	PYTHON=$(abspath $(BIN))/python bin/image-check

proxy-check: install
	PYTHON=$(abspath $(BIN))/python bin/proxy-check

# var/ holds the local Redis (token pair, user and conversation mappings) and the media store
# behind every FreshChat link: `clean` never touches it; `clean-data` asks first.
clean:
	rm -rf $(VENV) .pytest_cache test-artifacts mutants mutants.log

clean-data:
	@printf 'This deletes ./var: the local Redis (tokens, mappings, queued messages) and every stored media file.\nType "delete" to go on: '; \
	read answer; [ "$$answer" = delete ] && rm -rf var && echo "var/ deleted" || echo "nothing deleted"
