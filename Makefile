# Quick start on a fresh Debian 12 machine:
#   make demo     set up, build the reference images, show the rollback story on every
#                 QEMU target (TARGETS=all): a commit, a failed health check rolled back,
#                 a power cut in the trial boot survived; ends with a scenarios x targets table
#   make test     set up, run the suite (lint, types, docs, unit tests, QEMU scenarios, the
#                 quick crash-point sweep) on 2 pytest-xdist workers, then a rollback on each
#                 other QEMU target (SMOKE_TARGETS), a commit and a rollback on each other
#                 updater's device (UPDATER_TARGETS: SWUpdate, RAUC), a commit, a rollback and
#                 the quick sweep on the stock Mender device (STOCK_TARGET), a commit and a
#                 rollback with the real Mender client; tests marked nightly (slow,
#                 exhaustive) wait for make nightly
#   make nightly  the same on every QEMU target, with the full crash-point sweep, and
#                 every scenario with the real Mender client (nightly-mender)
#   make sweep    the crash-point sweep alone, as a table (MODE=quick|full)
#   make report   the HTML report of the latest run (ab-results/latest/report.html)
#   make docs     the documentation site (docs/_build/html/index.html): user guide, findings,
#                 benchmarks, key and API reference; Sphinx, warnings as errors
#   make doctor   can this machine run the targets (QEMU, KVM, firmware, image, lab)
#   make lab-demo a shared remote lab on the loopback (labgrid coordinator + exporter of the
#                 virtual board rig) and the rollback scenarios run against its place
VENV    := .venv
PY      := $(VENV)/bin/python
TARGET  ?= qemu-arm64-uboot
TARGETS ?= all
# make test: the reference target runs everything; these run a rollback (the commit on
# each runs in make nightly; virtual-board-uboot: the reference image as a board, harness.lab.rig).
SMOKE_TARGETS ?= qemu-x86_64-grub,qemu-arm-uboot,virtual-board-uboot,qemu-arm64-uboot-ssh
ROLLBACK ?= failed_health_check_rolls_back_to_a
# make test: a commit and a rollback on each other updater's device (qemu-arm64-uboot-swupdate:
# Debian's SWUpdate on its own U-Boot contract; qemu-x86_64-grub-rauc: Debian's RAUC on its GRUB one).
UPDATER_TARGETS ?= qemu-arm64-uboot-swupdate,qemu-x86_64-grub-rauc
comma := ,
# Boards the harness can start itself (a virtual board rig): every scenario in make nightly.
BOARD_TARGETS ?= virtual-board-uboot
SMOKE   ?= good_update_commits or failed_health_check_rolls_back_to_a
# make demo: the rollback story, three scenarios on each target (the power cut in slot A's
# trial; the same cut from slot B runs in make test and nightly).
DEMO    ?= $(SMOKE) or (power_cut_before_the_first_health_check and 1-A)
# The real Mender client (--ab-client mender, the images' Mender flavour): make test
# runs a commit and a rollback on the reference target, nightly-mender everything
# on MENDER_TARGETS.
MENDER_TARGETS ?= qemu-arm64-uboot,qemu-x86_64-grub
IMAGE   ?= arm64-uboot
# The stock Mender device (U-Boot's own bootcount, Mender 3.4 as shipped): make test runs
# a commit, a rollback and the quick sweep on it; make nightly everything on both stock targets.
STOCK_TARGET ?= qemu-arm64-uboot-stock
PYTEST_ARGS ?=
WORKERS ?= 2
MODE    ?= quick
JUNIT   ?= junit.xml
DOCS_OUT ?= docs/_build/html

.PHONY: lab-demo setup images demo test nightly sweep report lint typecheck unit scenarios bench bench-matrix \
	clean docs doctor nightly-tests nightly-scenarios nightly-sweep nightly-mender

setup:
	sh scripts/setup.sh

images: setup
	$(VENV)/bin/ab-harness images build $(IMAGE)

demo: images
	$(PY) -m pytest scenarios --ab-target $(TARGETS) -q -n $(WORKERS) -m "not nightly" \
		-k "$(DEMO)" --alluredir=allure-results $(PYTEST_ARGS)

lint: setup
	$(VENV)/bin/ruff check harness tests scenarios bench qemu-images docs conftest.py
	$(VENV)/bin/ruff format --check harness tests scenarios bench qemu-images docs conftest.py

typecheck: setup
	$(VENV)/bin/mypy

unit: setup
	$(PY) -m pytest tests -q $(PYTEST_ARGS)

scenarios: images
	$(PY) -m pytest scenarios --ab-target $(TARGET) -q $(PYTEST_ARGS)

# Sphinx + myst-parser (Markdown pages; docs/conf.py): the guide, findings and benchmarks,
# the key reference written from harness.targets.targetschema, the API reference by autodoc from
# the modules docs/reference/api.md lists. -W: any warning (a broken link, a docstring
# that does not parse) fails the build.
docs: setup
	$(VENV)/bin/sphinx-build -W --keep-going -q -b html docs $(DOCS_OUT)

doctor: setup
	$(VENV)/bin/ab-harness doctor --target $(TARGET)

test: images lint typecheck docs
	$(PY) -m pytest tests scenarios --ab-target $(TARGET) -q -n $(WORKERS) --ab-sweep quick \
		-m "not nightly" --alluredir=allure-results $(PYTEST_ARGS)
	$(PY) -m pytest scenarios --ab-target $(SMOKE_TARGETS),$(UPDATER_TARGETS),$(STOCK_TARGET) \
		-q -n $(WORKERS) --ab-sweep quick -m "not nightly" --alluredir=allure-results \
		$(PYTEST_ARGS) -k "$(ROLLBACK) or (crash_point_sweep and $(STOCK_TARGET)) or \
		(good_update_commits and ($(subst $(comma), or ,$(STOCK_TARGET),$(UPDATER_TARGETS))))"
	$(PY) -m pytest scenarios --ab-target $(TARGET) --ab-client mender -q -n $(WORKERS) \
		-m "not nightly" -k "$(SMOKE)" --alluredir=allure-results $(PYTEST_ARGS)

# The harness's own tests on the reference target; every scenario, the full sweep
# included, on every QEMU target.
nightly: images lint typecheck
	$(PY) -m pytest tests --ab-target $(TARGET) -q -n $(WORKERS) \
		--alluredir=allure-results $(PYTEST_ARGS)
	$(PY) -m pytest scenarios --ab-target $(TARGETS) -q -n $(WORKERS) --ab-sweep full \
		--alluredir=allure-results $(PYTEST_ARGS)
	$(PY) -m pytest scenarios --ab-target $(BOARD_TARGETS) -q -n $(WORKERS) \
		--alluredir=allure-results $(PYTEST_ARGS)
	$(MAKE) nightly-mender

# A shared remote lab on the loopback: the virtual board rig, labgrid-coordinator and
# labgrid-exporter; the rollback scenarios run against the place; all three stopped after.
lab-demo: images
	$(PY) scripts/lab_demo.py $(PYTEST_ARGS)

# make nightly, split so CI can run the parts as parallel jobs (each writes $(JUNIT)).
nightly-tests: images
	$(PY) -m pytest tests -q -n $(WORKERS) --junitxml=$(JUNIT) $(PYTEST_ARGS)

nightly-scenarios: images
	$(PY) -m pytest scenarios --ab-target $(TARGET) -q -n $(WORKERS) -k "not crash_point_sweep" \
		--junitxml=$(JUNIT) --alluredir=allure-results $(PYTEST_ARGS)

# Every scenario (the quick sweep included) with the real Mender client on MENDER_TARGETS.
nightly-mender: images
	$(PY) -m pytest scenarios --ab-target $(MENDER_TARGETS) --ab-client mender -q -n $(WORKERS) \
		--ab-sweep quick --junitxml=$(JUNIT) --alluredir=allure-results $(PYTEST_ARGS)

nightly-sweep: images
	$(PY) -m pytest scenarios --ab-target $(TARGET) -q -k crash_point_sweep --ab-sweep full \
		--junitxml=$(JUNIT) $(PYTEST_ARGS)

sweep: images
	$(VENV)/bin/ab-harness sweep --target $(TARGET) --mode $(MODE)

report: setup
	$(VENV)/bin/ab-harness report ab-results

bench: images
	$(PY) bench/cycle.py

bench-matrix: images
	$(PY) bench/matrix.py --targets $(TARGETS)

clean:
	rm -rf ab-results allure-results .mypy_cache .ruff_cache docs/_build docs/reference/api \
		docs/reference/keys.md
