# Samleng: `make run` serves the demo, `make test` runs every check.
VENV    ?= .venv
PYTHON  ?= python3
BIN     := $(VENV)/bin
PO      := $(wildcard service/translations/*/LC_MESSAGES/messages.po)
MO      := $(PO:.po=.mo)

.PHONY: run test lint typecheck pytest install translations extract clean

run: $(VENV)/.installed-run translations
	$(BIN)/samleng demo

test: $(VENV)/.installed-dev translations lint typecheck pytest

lint:
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck:
	$(BIN)/mypy

pytest:
	$(BIN)/pytest $(PYTEST_ARGS)

install: $(VENV)/.installed-run

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(VENV)/.installed-run: pyproject.toml | $(VENV)/bin/python
	$(BIN)/pip install -q -e .
	touch $@

$(VENV)/.installed-dev: pyproject.toml $(VENV)/.installed-run
	$(BIN)/pip install -q -e '.[dev]'
	touch $@

translations: $(MO)

%.mo: %.po | $(VENV)/.installed-run
	$(BIN)/pybabel compile -i $< -o $@

# Refresh the catalogues after changing visible strings.
extract: $(VENV)/.installed-dev
	$(BIN)/pybabel extract -F babel.cfg -k lazy_gettext --no-location --sort-output -o service/translations/messages.pot .
	$(BIN)/pybabel update -N --no-wrap -i service/translations/messages.pot -d service/translations

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache $(MO)
