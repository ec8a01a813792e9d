# Samleng: `make run` serves the demo, `make test` runs every check. Both start from nothing:
# deploy/bootstrap installs the Debian packages they need, the venv holds the rest.
VENV    ?= .venv
PYTHON  ?= python3
BIN     := $(VENV)/bin
PO      := $(wildcard service/translations/*/LC_MESSAGES/messages.po)
MO      := $(PO:.po=.mo)
# mypy sees crypto/ and service/ under the names they are installed as (pyproject.toml).
TYPECHECK := build/typecheck/samleng

.PHONY: run test lint typecheck pytest install translations extract wheelhouse clean \
	bootstrap-run bootstrap-test

run: bootstrap-run $(VENV)/.installed-run translations
	$(BIN)/samleng demo

test: bootstrap-test $(VENV)/.installed-dev translations lint typecheck pytest

bootstrap-run:
	deploy/bootstrap run

bootstrap-test:
	deploy/bootstrap test

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(VENV)/.installed-dev
	mkdir -p $(TYPECHECK)
	ln -sfn ../../../crypto $(TYPECHECK)/crypto
	ln -sfn ../../../service $(TYPECHECK)/service
	$(BIN)/mypy

pytest: $(VENV)/.installed-dev translations
	$(BIN)/pytest $(PYTEST_ARGS)

install: $(VENV)/.installed-run

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(VENV)/.installed-run: pyproject.toml crypto/pyproject.toml | $(VENV)/bin/python
	$(BIN)/pip install -q -e ./crypto -e .
	touch $@

$(VENV)/.installed-dev: pyproject.toml crypto/pyproject.toml $(VENV)/.installed-run
	$(BIN)/pip install -q -e './crypto[banner]' -e '.[dev]'
	touch $@

translations: $(MO)

%.mo: %.po | $(VENV)/.installed-run
	$(BIN)/pybabel compile -i $< -o $@

# Refresh the catalogues after changing visible strings.
extract: $(VENV)/.installed-dev
	$(BIN)/pybabel extract -F babel.cfg -k lazy_gettext -k N_ --no-location --sort-output -o service/translations/messages.pot .
	$(BIN)/pybabel update -N --no-wrap -i service/translations/messages.pot -d service/translations

# samleng-audit and everything it depends on, as wheels, for an air-gapped machine:
#   pip install --no-index --find-links dist/wheelhouse samleng-audit
WHEELHOUSE ?= dist/wheelhouse
wheelhouse: | $(VENV)/bin/python
	rm -rf $(WHEELHOUSE)
	$(BIN)/pip wheel -q --wheel-dir $(WHEELHOUSE) ./crypto
	rm -rf crypto/build
	@echo "wrote $(WHEELHOUSE): pip install --no-index --find-links $(WHEELHOUSE) samleng-audit"

clean:
	rm -rf $(VENV) build dist .pytest_cache .mypy_cache .ruff_cache $(MO)
