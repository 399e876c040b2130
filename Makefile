# One entry point for people and CI. Every target installs what it needs first.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup demo test check lint typecheck lock clean-data browser

setup: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade "pip>=24"
	$(BIN)/python -m pip install --quiet -c constraints.txt -e ".[dev]"
	touch $(STAMP)

## The main job on the embedded default: generate sample extracts (if missing), run the nightly flow, publish the master.
## The master is encrypted at rest: unless MDM_MASTER_KEY / MDM_TOKEN_KEY are set, the demo makes throw-away
## local keys in data/state/demo-keys.env (git-ignored, mode 600). Production keys come from the environment
## or Prefect Secret blocks, never from a file in the repository.
DEMO_KEYS := data/state/demo-keys.env

$(DEMO_KEYS):
	@mkdir -p $(dir $(DEMO_KEYS))
	@umask 077; { \
	  echo "MDM_MASTER_KEY=$$($(BIN)/python -c 'import secrets; print(secrets.token_hex(32))')"; \
	  echo "MDM_TOKEN_KEY=$$($(BIN)/python -c 'import secrets; print(secrets.token_hex(32))')"; \
	} > $(DEMO_KEYS)
	@echo "made throw-away demo keys in $(DEMO_KEYS)"

demo: setup $(DEMO_KEYS)
	@if [ -z "$$MDM_MASTER_KEY" ]; then set -a; . ./$(DEMO_KEYS); set +a; fi; \
	$(BIN)/mdm run

## Debian's Chromium for the steward app's end-to-end test (a test tool's own browser download is not used).
browser:
	@if [ ! -x /usr/bin/chromium ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	  else \
	    echo "the browser test needs Debian's chromium: run 'sudo apt-get install chromium'"; exit 1; \
	  fi; \
	fi

## Install, then run the whole test suite.
test: setup browser
	@$(BIN)/python -m pytest; rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest collected no tests: a broken suite, not a pass (check testpaths)"; fi; \
	exit $$rc

lint: setup
	$(BIN)/ruff check .

typecheck: setup
	$(BIN)/mypy mdm pipelines matchers validators schemas steward

check: lint typecheck

## Refresh the lock after a deliberate dependency change.
lock: setup
	$(BIN)/python -m pip freeze --exclude-editable | sort > constraints.txt

clean-data:
	rm -rf data/sample data/runs data/master data/mart
