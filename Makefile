# careloop: `make run` to try it, `make test` to prove it.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run test lint typecheck check bench clean lock

$(STAMP): pyproject.toml requirements.lock
	@test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	@$(BIN)/python -m pip install --quiet --upgrade pip
	@$(BIN)/python -m pip install --quiet -r requirements.lock
	@$(BIN)/python -m pip install --quiet --no-deps -e .
	@touch $(STAMP)

run: $(STAMP)
	@$(BIN)/careloop run

test: $(STAMP)
	@$(BIN)/python scripts/run_tests.py $(ARGS)

lint: $(STAMP)
	@$(BIN)/ruff check src tests bench scripts
	@$(BIN)/ruff format --check src tests bench scripts

typecheck: $(STAMP)
	@$(BIN)/mypy --strict src

check: lint typecheck test

bench: $(STAMP)
	@$(BIN)/python bench/demo_generate.py

# Re-pin every dependency after editing pyproject.toml (needs `uv`).
lock:
	uv pip compile pyproject.toml --extra dev --universal --python-version 3.11 -q -o requirements.lock

clean:
	rm -rf $(VENV) build dist src/*.egg-info
