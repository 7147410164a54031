# egress: every set-up step a fresh machine needs lives here.
SHELL := /bin/bash
.DEFAULT_GOAL := help

# mitmproxy 12 needs Python >= 3.12: take the newest interpreter that exists.
PYTHON ?= $(shell for p in python3.13 python3.12 \
	$$HOME/.pyenv/versions/3.13*/bin/python3.13 $$HOME/.pyenv/versions/3.12*/bin/python3.12 \
	/usr/local/bin/python3.13 /usr/bin/python3.13 /usr/local/bin/python3.12 /usr/bin/python3.12; do \
	  if command -v $$p >/dev/null 2>&1 && $$p -c 'import sys; sys.exit(sys.version_info < (3, 12))' 2>/dev/null; \
	  then command -v $$p; break; fi; done)
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
CERTS ?= certs
STATE ?= state
LISTEN ?= 127.0.0.1:8080

.PHONY: help venv ca run test lint sysdeps clean

help:
	@echo "make run    set everything up and start the proxy on $(LISTEN) (embedded policy engine)"
	@echo "make test   install what the tests need and run them"
	@echo "make lint   ruff"

$(STAMP): pyproject.toml
	@test -n "$(PYTHON)" || { echo "error: python >= 3.12 not found (mitmproxy 12 needs it)"; exit 1; }
	@echo "==> creating $(VENV) with $(PYTHON)"
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[test]'
	@touch $@

venv: $(STAMP)

ca: $(STAMP)
	@test -f $(CERTS)/mitmproxy-ca.pem || $(BIN)/egress ca init --dir $(CERTS)

# The embedded default: generated CA, in-process Rego engine, local identities file and
# local encrypted secret store under $(STATE)/.
run: ca
	@mkdir -p $(STATE)
	$(BIN)/egress serve --listen $(LISTEN) --ca-dir $(CERTS) --state-dir $(STATE) \
	  --policy-dir policies --data-file policies/data.json

sysdeps:
	@command -v curl >/dev/null 2>&1 || { apt-get update -q && apt-get install -y -q curl; }

test: $(STAMP) sysdeps
	$(BIN)/ruff check egress tests
	$(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check egress tests
	$(BIN)/ruff format --check egress tests

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
