# DiNNO for ROS 2: build and test from a fresh clone.
#
#   make test      create .venv, build the messages, install the packages, run pytest
#   make demo      same set-up, then run the demo (DEMO_ARGS="..." passes arguments)
#   make colcon-check   build the three ROS packages with colcon in a temporary workspace
#   make bench     run the benchmarks in bench/
#   make clean     remove build artefacts (the .venv's installed packages are kept)
#   make distclean clean + remove .venv
#
# Every set-up step leaves a stamp in $(VENV)/.stamps, so a second run does nothing but the
# tests/demo, and deleting .venv resets everything. Requirements: python3 3.10-3.13 with venv,
# cmake >= 3.16, a C and C++ compiler, make; network access to PyPI.

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := all
MAKEFLAGS += --no-print-directory

PYTHON      ?= python3
VENV        ?= .venv
PIP_VERSION ?= 26.3
VENV_ABS    := $(abspath $(VENV))
PY          := $(VENV_ABS)/bin/python
PIP         := $(PY) -m pip
STAMPS      := $(VENV)/.stamps

PYTEST_ARGS ?= -q -ra --timeout=600
DEMO_ARGS   ?=
BENCH_ARGS  ?=

# ROS writes its logs here instead of ~/.ros/log (tests use their own temporary directory).
export ROS_LOG_DIR ?= $(CURDIR)/log/ros
# Never wait for a keyboard (CI has no stdin).
export PIP_NO_INPUT := 1

MSGS_SRC := $(wildcard src/dinno_msgs/msg/*.msg) src/dinno_msgs/CMakeLists.txt \
            src/dinno_msgs/package.xml src/dinno_msgs/pyproject.toml
CORE_SRC := src/dinno_core/pyproject.toml src/dinno_core/setup.py src/dinno_core/package.xml \
            src/dinno_ros/pyproject.toml src/dinno_ros/setup.py src/dinno_ros/setup.cfg \
            src/dinno_ros/package.xml

.PHONY: all venv msgs core layout test demo colcon-check bench clean distclean

all: layout

venv: $(STAMPS)/venv
msgs: $(STAMPS)/msgs
core: $(STAMPS)/core
layout: $(STAMPS)/layout

# --- 1. virtual environment with every pinned third-party package ---------------------------
$(STAMPS)/venv: requirements.txt constraints.txt
	@$(PYTHON) -c 'import sys; v = sys.version_info[:2]; \
	  sys.exit(0 if (3, 10) <= v <= (3, 13) else "ROS 2 wheels need Python 3.10-3.13, $(PYTHON) is %d.%d" % v)'
	@if [ ! -x "$(PY)" ]; then echo ">> creating $(VENV)"; $(PYTHON) -m venv "$(VENV)"; fi
	@echo ">> installing requirements into $(VENV)"
	$(PIP) install -q --upgrade "pip==$(PIP_VERSION)"
	$(PIP) install -q -r requirements.txt
	@mkdir -p $(STAMPS) && touch $@

# --- 2. ROS 2 interfaces, pip route (rosidl through scikit-build-core) ----------------------
# AMENT_PREFIX_PATH must name the venv (else "No 'rosidl_typesupport_c' found"); the venv's
# bin/ goes first on PATH so CMake finds the venv's python3.
$(STAMPS)/msgs: $(STAMPS)/venv $(MSGS_SRC)
	@command -v cmake >/dev/null || { echo "error: cmake >= 3.16 is needed to build src/dinno_msgs" >&2; exit 1; }
	@command -v c++ >/dev/null || command -v g++ >/dev/null || { echo "error: a C++ compiler is needed to build src/dinno_msgs" >&2; exit 1; }
	@echo ">> building src/dinno_msgs (rosidl, ~30 s)"
	AMENT_PREFIX_PATH="$(VENV_ABS)" PATH="$(VENV_ABS)/bin:$$PATH" \
	  $(PIP) install -q --no-build-isolation --no-deps --force-reinstall ./src/dinno_msgs
	$(PY) -c 'from dinno_msgs.msg import WeightUpdate, RobotStatus'
	@touch $@

# --- 3. dinno_core + dinno_ros, editable -----------------------------------------------------
# Editable installs put no data_files into the prefix and their console scripts in bin/, so
# tools/venv_ament_layout.py lays the prefix out as `colcon build --symlink-install` does: the
# ament index markers and package.xml files, share/dinno_ros/{launch,config}/ as real folders
# of per-file links (`ros2 launch` walks share/ with os.walk, which skips linked folders) and
# lib/dinno_ros/<executable> (launch_ros' Node and `ros2 pkg executables`). With
# AMENT_PREFIX_PATH=$(VENV), `ros2 launch dinno_ros <file>` works as in a colcon workspace.
LAYOUT_SRC := tools/venv_ament_layout.py $(wildcard launch/*.launch.py config/*.yaml)

$(STAMPS)/core: $(STAMPS)/msgs $(CORE_SRC)
	@echo ">> installing src/dinno_core and src/dinno_ros (editable)"
	$(PIP) install -q --no-build-isolation --no-deps -e ./src/dinno_core -e ./src/dinno_ros
	$(PY) -c 'import dinno_core, dinno_ros'
	@touch $@

$(STAMPS)/layout: $(STAMPS)/core $(LAYOUT_SRC)
	$(PY) tools/venv_ament_layout.py "$(VENV_ABS)" "$(CURDIR)"
	@touch $@

# --- use -------------------------------------------------------------------------------------
# pytest exit status 5 means "no tests collected" (e.g. a -k that matches nothing): reported,
# not treated as a failure.
test: all
	@rc=0; $(PY) -m pytest test $(PYTEST_ARGS) || rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "warning: pytest collected no tests" >&2; rc=0; fi; \
	exit $$rc

demo: all
	$(PY) -m dinno_ros.demo $(DEMO_ARGS)

# Runs bench/*.py one after the other (files starting with _ are helpers).
bench: all
	@shopt -s nullglob; files=(bench/[!_]*.py); \
	if [ $${#files[@]} -eq 0 ]; then echo "error: no benchmarks in bench/" >&2; exit 1; fi; \
	for f in "$${files[@]}"; do echo ">> $$f"; $(PY) "$$f" $(BENCH_ARGS); done

# The colcon route, as on a robot: test/test_workspace_build.py copies src/ (+ launch/, config/,
# colcon.meta) to a temporary workspace, runs `colcon build` there against the venv's ROS
# (AMENT_PREFIX_PATH=$(VENV)), sources install/setup.bash and imports the packages.
colcon-check: all
	$(PY) -m pytest test/test_workspace_build.py -k colcon -v -ra --timeout=600

clean:
	rm -rf build install log results .pytest_cache
	rm -rf src/*/build src/*/*.egg-info
	find src test bench -name __pycache__ -prune -exec rm -rf {} + 2>/dev/null || true
	rm -f $(STAMPS)/msgs $(STAMPS)/core $(STAMPS)/layout

distclean: clean
	rm -rf $(VENV)
