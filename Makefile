# Each target creates .venv on first use and installs what it needs.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint typecheck unit bench clean

$(STAMP): pyproject.toml
	@echo "Installing agenthost and its dependencies into $(VENV) (once; about a minute)..."
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install --progress-bar on -e '.[dev]'
	touch $(STAMP)
	@echo "Installed: $(BIN)/agenthost"

run: $(STAMP)
	$(BIN)/agenthost serve

test: $(STAMP) lint typecheck unit

lint: $(STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench

typecheck: $(STAMP)
	$(BIN)/mypy

unit: $(STAMP)
	$(BIN)/pytest -q

# BENCH_ARGS="--out bench/results" refreshes the recorded report (default: outside the repo).
bench: $(STAMP)
	$(BIN)/agenthost bench $(if $(AGENTHOST_TEST_POSTGRES),--postgres "$(AGENTHOST_TEST_POSTGRES)") \
		$(if $(AGENTHOST_TEST_REDIS),--redis "$(AGENTHOST_TEST_REDIS)") $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
