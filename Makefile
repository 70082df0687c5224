# Two commands matter: `make book` (the offline demo study, ending in a built book) and
# `make test` (the lint checks, then the tests; what CI runs). Each creates .venv with the
# project's install when missing.
VENV ?= .venv
PYTHON ?= python3
PY := $(VENV)/bin/python
STAMP := $(VENV)/.alvit-installed

.PHONY: install lint test mutation book demo clean

$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c constraints.txt -e '.[test,lint]'
	touch $(STAMP)

install: $(STAMP)

# Style, import layers, the GitHub workflows and CITATION.cff; offline, seconds.
lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports
	$(VENV)/bin/check-jsonschema --builtin-schema vendor.github-workflows .github/workflows/*.yml
	$(VENV)/bin/check-jsonschema --builtin-schema vendor.citation-file-format CITATION.cff
	$(VENV)/bin/zizmor --offline --min-severity medium .github/workflows

# Two test processes, a test file to each (--dist loadfile keeps a file's module fixtures and the
# SLURM tests together): about 5 minutes instead of 8 on 2 cores, much of it waiting on imports.
test: lint
	$(PY) -m pytest -n 2 --dist loadfile

# mutmut over the science modules, each against the tests that reach it, one process: about
# 93 minutes on 2 cores (the modules' times summed in benchmarks/results/mutation.json, which it
# writes, with the book's page). Not part of make test.
# One module or a few: make mutation MODULES=noise (or MODULES="noise metrics").
MODULES ?=
MUTMUT := $(VENV)/bin/mutmut
$(MUTMUT): $(STAMP)
	$(PY) -m pip install --quiet -c constraints.txt -e '.[mutation]'

mutation: $(MUTMUT)
	$(PY) benchmarks/mutation.py $(addprefix --module ,$(MODULES))

demo: $(STAMP)
	$(VENV)/bin/alvit run configs/demo.yaml

book: $(STAMP)
	$(VENV)/bin/alvit sweep configs/profiles/demo.yaml --jobs 2
	$(VENV)/bin/alvit book configs/profiles/demo.yaml

clean:
	rm -rf results _build book/runs
