# Quick start on a fresh Debian 12 machine:
#   make demo     set up, build the reference images, run the rollback scenarios on every
#                 QEMU target (TARGETS=all), ending with a scenarios x targets table
#   make test     set up, run the whole suite (lint, types, unit tests, QEMU scenarios,
#                 the quick crash-point sweep) on 2 pytest-xdist workers
#   make nightly  the same on every QEMU target, with the full crash-point sweep
#   make sweep    the crash-point sweep alone, as a table (MODE=quick|full)
#   make report   the HTML report of the latest run (ab-results/latest/report.html)
VENV    := .venv
PY      := $(VENV)/bin/python
TARGET  ?= qemu-arm64-uboot
TARGETS ?= all
IMAGE   ?= arm64-uboot
PYTEST_ARGS ?=
WORKERS ?= 2
MODE    ?= quick

.PHONY: setup images demo test nightly sweep report lint typecheck unit scenarios bench bench-matrix clean

setup:
	sh scripts/setup.sh

images: setup
	$(VENV)/bin/ab-harness images build $(IMAGE)

demo: images
	$(PY) -m pytest scenarios --ab-target $(TARGETS) -q -n $(WORKERS) -m "not nightly" \
		--alluredir=allure-results $(PYTEST_ARGS)

lint: setup
	$(VENV)/bin/ruff check harness tests scenarios bench qemu-images conftest.py
	$(VENV)/bin/ruff format --check harness tests scenarios bench qemu-images conftest.py

typecheck: setup
	$(VENV)/bin/mypy

unit: setup
	$(PY) -m pytest tests -q $(PYTEST_ARGS)

scenarios: images
	$(PY) -m pytest scenarios --ab-target $(TARGET) -q $(PYTEST_ARGS)

test: images lint typecheck
	$(PY) -m pytest tests scenarios --ab-target $(TARGET) -q -n $(WORKERS) --ab-sweep quick \
		-m "not nightly" --alluredir=allure-results $(PYTEST_ARGS)

nightly: images lint typecheck
	$(PY) -m pytest tests scenarios --ab-target $(TARGETS) -q -n $(WORKERS) --ab-sweep full \
		--alluredir=allure-results $(PYTEST_ARGS)

sweep: images
	$(VENV)/bin/ab-harness sweep --target $(TARGET) --mode $(MODE)

report: setup
	$(VENV)/bin/ab-harness report ab-results

bench: images
	$(PY) bench/cycle.py

bench-matrix: images
	$(PY) bench/matrix.py --targets $(TARGETS)

clean:
	rm -rf ab-results allure-results .mypy_cache .ruff_cache
