PYTHON ?= python3
export PATH := $(HOME)/.cache/zksync/bin:$(PATH)

.PHONY: setup demo demo-recipes demo-fortune test lint typecheck unit nemesis

setup:
	bash .ci/setup

demo: setup
	$(PYTHON) -m zksync run examples/leader_follower.py --instances 10 --outputs zksync-outputs

demo-recipes: setup
	$(PYTHON) -m zksync.demo

demo-fortune: setup
	$(PYTHON) -m zksync run examples/fortune.py --instances 5 --outputs zksync-outputs

test: setup lint typecheck
	$(PYTHON) -m pytest -q

lint:
	$(PYTHON) -m ruff check .
	$(PYTHON) -m ruff format --check .

typecheck:
	$(PYTHON) -m mypy zksync tests benchmarks

unit:
	$(PYTHON) -m pytest -q tests/test_rules.py tests/test_validation.py

nemesis: setup
	$(PYTHON) -m zksync.testing.nemesis --duration 120 --impl zksync
