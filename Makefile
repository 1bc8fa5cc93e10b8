# `make demo` and `make test` each set up .venv on first use (or when setup.cfg changes).
PYTHON ?= python3
VENV ?= .venv
BACKEND ?= tensorflow-cpu

.PHONY: demo test test-fast lint clean

$(VENV)/.installed: setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet --upgrade pip
	$(VENV)/bin/python -m pip install --quiet -e ".[$(BACKEND),test]"
	touch $@

demo: $(VENV)/.installed
	$(VENV)/bin/skimgclf demo

test: $(VENV)/.installed
	$(VENV)/bin/python -m pytest

test-fast: $(VENV)/.installed
	$(VENV)/bin/python -m pytest -m "not slow"

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check .

clean:
	rm -rf $(VENV) build *.egg-info
