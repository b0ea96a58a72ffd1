# Two commands set everything up on a fresh machine:
#   make study   - create .venv, install, run the default CPU study end to end
#   make test    - create .venv, install, run the test suite
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: study test venv clean

venv: $(STAMP)

# Reinstall only when pyproject.toml (the only list of dependencies) changes (idempotent, quick
# otherwise). `.[all]` is the core plus every extra: the study's and the tests' (torch included).
$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[all]'
	touch $(STAMP)

test: $(STAMP)
	$(PY) -m pytest -n 2 --dist loadfile tests

study: $(STAMP)
	$(VENV)/bin/jaxseq study

clean:
	rm -rf $(VENV)
