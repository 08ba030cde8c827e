# AIWS — two commands: `make serve` and `make test`. Everything else is set up on the way.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
SYSTEM_TOOLS := Orthanc storescu echoscu dsrdump dcmdump dciodvfy pdftoppm pdftotext chromium chromedriver
VENV_TRITON := .venv-triton
TRITON_STAMP := $(VENV_TRITON)/.installed
DEBIAN_PACKAGES := orthanc dcmtk dicom3tools poppler-utils chromium chromium-driver postgresql
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: setup system-deps serve demo lint test test-fast bench train-lung train-lung-families train-coronary train-cardiac train-mammography clean

setup: system-deps $(STAMP) $(TRITON_STAMP)

# Debian packages: Orthanc (the PACS in tests), dcmtk (independent DICOM peers), dicom3tools (dciodvfy),
# poppler-utils (pdftoppm, pdftotext: the PDF reports rendered and measured in tests), chromium and
# chromium-driver (the console's browser tests, Selenium), postgresql (the ledger on PostgreSQL, tests start their own).
system-deps:
	@missing=""; for t in $(SYSTEM_TOOLS); do command -v $$t >/dev/null || missing="$$missing $$t"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing $(DEBIAN_PACKAGES) (missing:$$missing)"; \
	  $(SUDO) apt-get install -y $(DEBIAN_PACKAGES) >/dev/null || \
	  { $(SUDO) apt-get update >/dev/null && $(SUDO) apt-get install -y $(DEBIAN_PACKAGES) >/dev/null; }; \
	fi

$(STAMP): pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "$(PYTHON) not found"; exit 1; }
	@[ -x $(BIN)/python ] || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip 2>&1 | grep -v -i warning || true
	$(BIN)/python -m pip install -q torch==2.13.0 2>&1 | grep -v -i warning || true
	$(BIN)/python -m pip install -q -e '.[test]' 2>&1 | grep -v -i warning || true
	$(BIN)/python -c "import aiws, pynetdicom, highdicom, torch, monai, onnxruntime" 
	@touch $@

serve: setup
	$(BIN)/aiws serve

# The whole loop on this machine, offline: a demo PACS (Orthanc) and AIWS on the defaults with their own ports, one
# phantom study per pipeline sent PACS -> AIWS -> PACS, one example per plugin; a table and the pages to open.
# Everything stays under var/demo. Ctrl-C stops it; `make demo DEMO_ARGS=--ci` exits after the table.
DEMO_ARGS ?=
demo: setup
	$(BIN)/python scripts/demo.py $(DEMO_ARGS)

# ruff on the whole tree and mypy on the packages, as configured in pyproject.toml ([tool.ruff], [tool.mypy]).
lint: setup
	$(BIN)/ruff check .
	$(BIN)/mypy

# ruff and mypy first (seconds; mypy about 40 s from a cold cache on 2 cores), then the whole suite in two pytest-xdist
# workers, a test file per worker at a time, the files with the longest tests first (tests/conftest.py LONG_FIRST):
# about 14 min on 2 cores (one process: about 25 min; TEST_WORKERS=1). Test peers take their ports from a slice of
# their own per worker, below the kernel's ephemeral range (scripts/orthanc_local.free_port).
TEST_WORKERS ?= 2
test: setup
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/python -m pytest -q $(if $(filter 1,$(TEST_WORKERS)),,-n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder)

bench: setup
	@for b in bench/[!_]*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

clean:
	rm -rf $(VENV) var .pytest_cache

# A real Triton server for tests and bench/infer.py: nvidia-pytriton bundles tritonserver 2.51 with the
# Python backend only, so scripts/triton_local.py serves triton_repo/ through Python-backend twins
# that run the ONNX files with onnxruntime. Separate venv: pytriton needs numpy<2.
$(TRITON_STAMP):
	@command -v $(PYTHON) >/dev/null || { echo "$(PYTHON) not found"; exit 1; }
	@[ -x $(VENV_TRITON)/bin/python ] || $(PYTHON) -m venv $(VENV_TRITON)
	$(VENV_TRITON)/bin/python -m pip install -q --upgrade pip 2>&1 | grep -v -i warning || true
	$(VENV_TRITON)/bin/python -m pip install -q "nvidia-pytriton==0.7.0" "numpy<2" onnxruntime 2>&1 | grep -v -i warning || true
	$(VENV_TRITON)/bin/python -c "import numpy, onnxruntime, pytriton; assert numpy.__version__ < '2'"
	@touch $@

# Reproduce the shipped lung-nodule network: phantoms -> train the network -> train the candidate classifier on the
# same phantoms with the network's candidates -> second stage on tuning phantoms -> evaluate on unseen seeds -> next
# versions in triton_repo/ (about 55 min on 2 CPU cores). See training/lung_nodules/configs/{shipped,classifier}.toml.
# Issue 28 (both phantom families): `make train-lung-families` trains on 64 phantoms, 32 of each family
# (training/lung_nodules/configs/families.toml), fits the classifier and second stage on both, compares the run with
# the shipped version on unseen phantoms of both families (python -m training.families) and exports it only when
# the shipping rule says so (about 90 min on 2 cores). Run on 2026-12-07 and refused: far fewer false positives on
# both families, but lower family-A sensitivity at its operating point (figures in families.toml).
# Where nodules are lost per kind and family: python -m training.lung_nodules.analysis --family both --seeds 4.
LUNG_DATA := runs/lung-data
train-lung: setup
	rm -rf $(LUNG_DATA)
	$(BIN)/python -m training.lung_nodules.dataset --out $(LUNG_DATA)/train --seeds 0:32 --nodules 6:12 --workers 2
	$(BIN)/python -m training.lung_nodules.dataset --out $(LUNG_DATA)/tune --seeds 20000:20024 --nodules 2:6 --workers 2
	$(BIN)/python -m training.lung_nodules.dataset --out $(LUNG_DATA)/eval --seeds 10000:10024 --nodules 2:6 --workers 2
	run=runs/lung-shipped-$$(date +%Y%m%d-%H%M%S); \
	$(BIN)/aiws train lung_nodules --data $(LUNG_DATA)/train --config training/lung_nodules/configs/shipped.toml \
	  --run $$(basename $$run) --runs-dir runs && \
	$(BIN)/aiws train lung_nodule_classifier --data $(LUNG_DATA)/train \
	  --config training/lung_nodules/configs/classifier.toml --candidates-from $$run \
	  --run $$(basename $$run)-classifier --runs-dir runs && \
	$(BIN)/aiws rescore $$run --data $(LUNG_DATA)/tune --blob-candidates 10 --grow-open-mm 2.5 \
	  --classifier $$run-classifier --max-fp-per-scan 0.25 && \
	$(BIN)/aiws evaluate $$run --data $(LUNG_DATA)/eval && \
	$(BIN)/aiws export $$run

LUNG_FAMILIES_DATA := runs/lung-data-families
train-lung-families: setup
	rm -rf $(LUNG_FAMILIES_DATA)
	$(BIN)/python -m training.lung_nodules.dataset --out $(LUNG_FAMILIES_DATA)/train --seeds 0:32 --nodules 6:12 --workers 2 --family b
	$(BIN)/python -m training.lung_nodules.dataset --out $(LUNG_FAMILIES_DATA)/train --seeds 0:32 --nodules 6:12 --workers 2 --append
	$(BIN)/python -m training.lung_nodules.dataset --out $(LUNG_FAMILIES_DATA)/tune --seeds 20000:20012 --nodules 2:6 --workers 2
	$(BIN)/python -m training.lung_nodules.dataset --out $(LUNG_FAMILIES_DATA)/tune --seeds 20000:20012 --nodules 2:6 --workers 2 \
	  --family b --append
	run=runs/lung-families-$$(date +%Y%m%d-%H%M%S); \
	$(BIN)/aiws train lung_nodules --data $(LUNG_FAMILIES_DATA)/train --config training/lung_nodules/configs/families.toml \
	  --run $$(basename $$run) --runs-dir runs && \
	$(BIN)/aiws train lung_nodule_classifier --data $(LUNG_FAMILIES_DATA)/train \
	  --config training/lung_nodules/configs/classifier.toml --candidates-from $$run \
	  --run $$(basename $$run)-classifier --runs-dir runs && \
	$(BIN)/aiws rescore $$run --data $(LUNG_FAMILIES_DATA)/tune --blob-candidates 10 --grow-open-mm 2.5 \
	  --classifier $$run-classifier --max-fp-per-scan 1.0 && \
	$(BIN)/python -m training.families $$run --task lung_nodules --baseline-version 0 --phantoms 8 --seed-start 10100 --require-better && \
	$(BIN)/aiws export $$run

# Retrain the coronary calcium labeller across phantom families (issue 28): both families (A: training/coronary_ct/
# phantom.py, B: phantom_b.py), seeds 0-99 of each, MONAI augmentation -> train -> evaluate on unseen seeds
# 10000-10029 of both families beside version 1 (the A -> B figures) -> the next version in triton_repo/, only if
# the cross-family bars are met or it is better than version 1 on a family and no worse on any (version 2 was made
# so: about 20 min on 2 shared CPU cores, training 15 with its phantoms, evaluation 3).
# See training/coronary_ct/configs/v2.json.
train-coronary: setup
	run=coronary-shipped-$$(date +%Y%m%d-%H%M%S); \
	$(BIN)/aiws train coronary_ct --config training/coronary_ct/configs/v2.json --run $$run --runs-dir runs && \
	$(BIN)/python -m training.coronary_ct.evaluate runs/$$run --seeds 10000:10030 --baseline triton_repo:1 && \
	$(BIN)/aiws export runs/$$run

# Retrain the cine segmenter across phantom families (issue 28; training/cardiac_mri/configs/v3.json): version 2
# fine-tuned on families A (training/cardiac_mri/phantom.py) and B (phantom_b.py) in equal shares with MONAI
# augmentation, half the family-B samples drawn at or above the LV base (atrial slices at end-systole, where version 2
# failed) -> evaluated beside version 2 on unseen seeds 10200-10231 of both families (issue-28 bars, Dice per label)
# -> the next version in triton_repo/, only if better on family B and not worse on A beyond noise (about 17 min on 2
# cores: training 12, evaluation 3, export). Made version 3 (version 2: configs/families.json from version 1).
train-cardiac: setup
	run=cardiac-shipped-$$(date +%Y%m%d-%H%M%S); \
	$(BIN)/aiws train cardiac_mri --config training/cardiac_mri/configs/v3.json --run $$run --runs-dir runs && \
	$(BIN)/python -m training.cardiac_mri.cross_family runs/$$run --seeds 10200:10232 --baseline triton_repo:2 \
	  --baseline-trained-on A+B --require-better && \
	$(BIN)/aiws export runs/$$run

# mammo_detector on both phantom families (issue 28; training/mammography/configs/v2.json): fine-tuned from version 1
# on families A and B (each half of every batch; half the exams with lesions on one side only; MONAI augmentation;
# version 1's window input) -> calibrated on both -> beside the latest version on 32 unseen exams of each family -> the
# next version in triton_repo/, only if better on family B and not worse on A beyond noise (about 23 min on 2 cores:
# phantom pools 2, fine-tuning 13, calibration and evaluation 3, comparison 5). Made version 2 (2026-12-08).
train-mammography: setup
	run=mammo-shipped-$$(date +%Y%m%d-%H%M%S); \
	$(BIN)/aiws train mammography --config training/mammography/configs/v2.json --run $$run --runs-dir runs && \
	$(BIN)/aiws evaluate runs/$$run && \
	$(BIN)/python -m training.mammography.compare runs/$$run --exams 32 --require-better && \
	$(BIN)/aiws export runs/$$run
