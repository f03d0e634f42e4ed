# beanfleet — the two commands are `make up` (bring up the local fleet and run demo jobs)
# and `make test` (everything CI runs).  See README.md.

SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
EXAMPLE_FLEET := ansible/inventories/example/group_vars/all.yml

# `make test` expects the packages of scripts/host-packages.sh (.ci/run installs them).
.PHONY: up down test lint test-unit test-fleet test-vm bench drills render venv clean

$(STAMP): worker/pyproject.toml requirements-dev.txt $(wildcard examples/*/pyproject.toml)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -r requirements-dev.txt -e worker $(addprefix -e ,$(wildcard examples/*/))
	touch $@

venv: $(STAMP)

# On a fresh machine: apt packages first (python3-venv is one), then the venv, the fleet.
up:
	scripts/host-packages.sh
	$(MAKE) venv
	scripts/fleet.sh up
	scripts/demo.sh

down:
	scripts/fleet.sh down

test: lint test-unit test-fleet test-vm

lint: $(STAMP)
	$(BIN)/ruff check worker tests bench drills examples
	$(BIN)/ruff format --check worker tests bench drills examples
	$(BIN)/mypy --strict worker/src
	$(BIN)/lint-imports
	$(BIN)/yamllint -s .
	shellcheck -x scripts/*.sh .ci/run
	PATH=$(CURDIR)/$(BIN):$$PATH ANSIBLE_COLLECTIONS_PATH=$(CURDIR)/ansible/collections $(BIN)/ansible-lint

test-unit: $(STAMP)
	$(BIN)/pytest tests --ignore=tests/fleet

test-fleet: $(STAMP)
	$(BIN)/pytest tests/fleet

# The fleet in real VMs (vagrant-libvirt, qemu/TCG where KVM does not work): box build,
# queue + worker1 up and provisioned with the same Vagrantfile and playbook, the fleet
# tests marked `vm`, destroy. See docs/vm.md.
test-vm: $(STAMP)
	BEANFLEET_PROVIDER=libvirt $(BIN)/pytest tests/fleet -m vm

# BENCH_OLD_REV: the worker figures 1, 9 and 10 also run at this git revision (installed in
# .venv-old) for old-vs-new rows in the same run; `auto` = the commit before issue 19's
# move into subpackages, `none` = skip.
BENCH_OLD_REV ?= auto

bench: $(STAMP)
	$(BIN)/python bench/run.py --size full --old-rev $(BENCH_OLD_REV)

drills: $(STAMP)
	$(BIN)/python drills/run.py

# The roles' defaults/main.yml and meta/argument_specs.yml (from beanfleet.fleet.table), then
# the example fleet's files.
render: $(STAMP)
	$(BIN)/python -m beanfleet.fleet.roles ansible/roles
	$(BIN)/beanfleet render --config $(EXAMPLE_FLEET) --manager systemd --out systemd
	$(BIN)/beanfleet render --config $(EXAMPLE_FLEET) --manager supervisor --out supervisor
	$(BIN)/beanfleet render --config $(EXAMPLE_FLEET) --prometheus --out prometheus

clean:
	rm -rf $(VENV) build
