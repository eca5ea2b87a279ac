# tlcourse — every target creates .venv if it is missing (see README.md).
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.tlcourse-installed
# nbgrader spawns `alembic` by name: the venv's bin/ must be on PATH
export PATH := $(CURDIR)/$(BIN):$(PATH)
export HF_HUB_OFFLINE ?= 1
ROOT_FLAG := $(if $(filter 0,$(shell id -u)),--allow-root,)

.PHONY: setup lab test release grade bench lint doctor clean

setup: $(STAMP)

$(STAMP): requirements.txt pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet -r requirements.txt
	$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e .
	$(BIN)/jupyter labextension enable --level=sys_prefix nbgrader 2>/dev/null || true
	@touch $(STAMP)

lab: setup
	$(BIN)/jupyter lab --notebook-dir=lessons $(ROOT_FLAG)

test: setup
	$(BIN)/ruff check .
	$(BIN)/python -m pytest $(PYTEST_ARGS)

release: setup
	$(BIN)/tlcourse release

grade: setup
	@test -n "$(SUBMISSIONS)" -a -n "$(ASSIGNMENT)" || { echo "usage: make grade SUBMISSIONS=dir ASSIGNMENT=NN_name [JOBS=2]"; exit 2; }
	$(BIN)/tlcourse grade $(SUBMISSIONS) --assignment $(ASSIGNMENT) --out grades-$(ASSIGNMENT).csv --jobs $(or $(JOBS),2)

bench: setup
	$(BIN)/python benchmarks/run.py --profile $(or $(PROFILE),cpu)

lint: setup
	$(BIN)/ruff check .

doctor: setup
	$(BIN)/tlcourse doctor

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache course test-artifacts
