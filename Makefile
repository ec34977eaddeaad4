# Developer entry points. Everything runs from .venv, created on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PYTEST_ARGS ?=

.PHONY: install demo test lint typecheck unit integration e2e bench clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e ".[dev]"
	touch $@

install: $(VENV)/.installed

demo: install
	$(BIN)/python -m airflow_sla_promotion.devtools.demo

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: install
	$(BIN)/mypy airflow_sla_promotion/policy airflow_sla_promotion/spec.py

unit: install
	$(BIN)/pytest tests/unit -q $(PYTEST_ARGS)

integration: install
	$(BIN)/pytest tests/integration -q $(PYTEST_ARGS)

e2e: install
	$(BIN)/pytest tests/e2e -q $(PYTEST_ARGS)

test: lint typecheck
	$(BIN)/pytest -q $(PYTEST_ARGS)

bench: install
	$(BIN)/python -m benchmarks.run

clean:
	rm -rf .demo .pytest_cache .mypy_cache .ruff_cache .hypothesis
