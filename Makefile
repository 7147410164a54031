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
# The real OPA, built from OPA's Go module (version pinned in deploy/opa/go.mod).
# Point OPA at a downloaded binary to skip the build: make test OPA=/usr/local/bin/opa
OPA ?= bin/opa
# A real Vault-compatible server for the tests (OpenBao, pinned in deploy/openbao/build.sh).
BAO ?= bin/bao
# kustomize, built from its Go module (the same engine as `kubectl kustomize`), for the manifest tests.
KUSTOMIZE_VERSION := v5.5.0
KUSTOMIZE ?= bin/kustomize
# The real kube-apiserver, built from Go modules (deploy/kube-apiserver/go.mod pins the release),
# run by the operator tests over Debian's etcd.
KUBE_APISERVER ?= bin/kube-apiserver
KUBE_VERSION := $(shell awk '$$1 == "k8s.io/kubernetes" {print $$2}' deploy/kube-apiserver/go.mod)

.PHONY: help venv ca run test lint sysdeps clean opa bao kustomize kube-apiserver policy-check fuzz soak bench benchdeps bench-fleet

help:
	@echo "make run    set everything up and start the proxy on $(LISTEN) (embedded policy engine)"
	@echo "make test   install what the tests need and run them"
	@echo "make opa    build the real OPA server from Go modules into bin/opa (cached)"
	@echo "make bench  side-by-side benchmark vs plain mitmdump, squid, goproxy and direct (nginx + hey)"
	@echo "make fuzz   deep hypothesis fuzzing of the live proxy"
	@echo "make soak   200+ concurrent tunnels, RSS/fd/latency at start and end"
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

# The embedded default: generated CA, in-process policy engine (the Rego compiled to Wasm by
# bin/opa, built from Go modules on first use), local identities file and local encrypted
# secret store under $(STATE)/.
run: ca opa
	@mkdir -p $(STATE)
	EGRESS_OPA_BIN=$(abspath $(OPA)) $(BIN)/egress serve --listen $(LISTEN) --ca-dir $(CERTS) --state-dir $(STATE) \
	  --policy-dir policies --data-file policies/data.json

bin/opa: deploy/opa/go.mod deploy/opa/go.sum deploy/opa/main.go
	@command -v go >/dev/null 2>&1 || { echo "error: Go is needed to build OPA (or pass OPA=/path/to/opa)"; exit 1; }
	@echo "==> building OPA $$(grep open-policy-agent/opa deploy/opa/go.mod | awk '{print $$2}') from Go modules into bin/opa"
	@mkdir -p bin
	cd deploy/opa && go build -trimpath -o ../../bin/opa .

# `make opa` builds only when deploy/opa changed; with OPA=/path it checks that binary instead.
opa: $(if $(filter bin/opa,$(OPA)),bin/opa,)
	@$(OPA) version | head -1

bin/bao: deploy/openbao/build.sh $(STAMP)
	@echo "==> fetching OpenBao (pinned version and sha256) into bin/bao"
	PYTHON=$(abspath $(BIN)/python) deploy/openbao/build.sh bin/bao

bao: $(if $(filter bin/bao,$(BAO)),bin/bao,)
	@$(BAO) version

bin/kustomize: Makefile
	@command -v go >/dev/null 2>&1 || { echo "error: Go is needed to build kustomize (or pass KUSTOMIZE=/path)"; exit 1; }
	@echo "==> building kustomize $(KUSTOMIZE_VERSION) from Go modules into bin/kustomize"
	@mkdir -p bin
	GOBIN=$(abspath bin) go install -trimpath sigs.k8s.io/kustomize/kustomize/v5@$(KUSTOMIZE_VERSION)
	@touch $@

kustomize: $(if $(filter bin/kustomize,$(KUSTOMIZE)),bin/kustomize,)

bin/kube-apiserver: deploy/kube-apiserver/go.mod deploy/kube-apiserver/go.sum deploy/kube-apiserver/main.go
	@command -v go >/dev/null 2>&1 || { echo "error: Go is needed to build kube-apiserver (or pass KUBE_APISERVER=/path)"; exit 1; }
	@echo "==> building kube-apiserver $(KUBE_VERSION) from Go modules into bin/kube-apiserver (~2 min cold)"
	@mkdir -p bin
	cd deploy/kube-apiserver && go build -trimpath -ldflags "\
	  -X k8s.io/component-base/version.gitVersion=$(KUBE_VERSION) \
	  -X k8s.io/component-base/version.gitMajor=$(subst v,,$(word 1,$(subst ., ,$(KUBE_VERSION)))) \
	  -X k8s.io/component-base/version.gitMinor=$(word 2,$(subst ., ,$(KUBE_VERSION)))" \
	  -o ../../bin/kube-apiserver .

kube-apiserver: $(if $(filter bin/kube-apiserver,$(KUBE_APISERVER)),bin/kube-apiserver,)

# What CI runs on the Rego: real `opa fmt`, `opa check --strict`, `opa test`.
policy-check: opa
	$(OPA) fmt --list --fail policies/
	$(OPA) check --strict policies/
	$(OPA) test policies/

sysdeps:
	@command -v curl >/dev/null 2>&1 && command -v etcd >/dev/null 2>&1 || \
	  { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q curl etcd-server; }

test: $(STAMP) sysdeps policy-check bao kustomize kube-apiserver
	$(BIN)/ruff check egress tests bench
	$(BIN)/mypy
	OPA=$(abspath $(OPA)) BAO=$(abspath $(BAO)) KUSTOMIZE=$(abspath $(KUSTOMIZE)) \
	  KUBE_APISERVER=$(abspath $(KUBE_APISERVER)) $(BIN)/python -m pytest -q

# Deep fuzzing of the live proxy (hypothesis, ~1500 examples per engine); not part of `make test`.
fuzz: $(STAMP) opa bao
	HYPOTHESIS_PROFILE=deep OPA=$(abspath $(OPA)) BAO=$(abspath $(BAO)) \
	  $(BIN)/python -m pytest -q tests/security/test_fuzz_http.py tests/security/test_scrub_property.py

# squid must be Debian's squid-openssl (plain `squid` has no ssl-bump).
benchdeps: $(STAMP)
	@command -v nginx >/dev/null 2>&1 && command -v hey >/dev/null 2>&1 && \
	  squid -v 2>/dev/null | grep -q -- --with-openssl || \
	  { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q nginx-light hey squid-openssl; }
	@$(BIN)/python -c 'import matplotlib' 2>/dev/null || $(BIN)/python -m pip install -q matplotlib
	@if command -v go >/dev/null 2>&1; then $(MAKE) --no-print-directory bin/goproxy-bench; \
	  else echo "Go missing: bench/perf.py will skip the goproxy column"; fi

# The Go MITM peer (elazarl/goproxy, version pinned in bench/peers/goproxy/go.mod); rebuilt
# only when its module or main changes.
bin/goproxy-bench: bench/peers/goproxy/go.mod bench/peers/goproxy/go.sum bench/peers/goproxy/main.go
	@echo "==> building goproxy $$(awk '/elazarl\/goproxy/ {print $$NF}' bench/peers/goproxy/go.mod) bench peer into bin/goproxy-bench"
	@mkdir -p bin
	cd bench/peers/goproxy && go build -trimpath -o ../../../bin/goproxy-bench .

# Side by side: direct, plain mitmdump, egress (embedded, OPA, 2 workers, passthrough), and the
# peers squid (ssl-bump) and goproxy (MITM); PNG plot.
bench: benchdeps opa
	$(BIN)/python bench/perf.py --rounds 3 --n 4000 --png bench/perf.png
	$(BIN)/python bench/rss.py
	$(BIN)/python bench/scrub.py

# Fleet scale (issue 15): decision cost, stalls, reload, RSS, OPA readiness at 1..50k agents.
FLEET_AGENTS ?= 1,100,1000,10000,50000
bench-fleet: benchdeps opa
	OPA=$(abspath $(OPA)) $(BIN)/python bench/fleet.py --agents $(FLEET_AGENTS) --png bench/fleet.png

# Hold >= 200 concurrent tunnels on loopback and record RSS, fds and latency (bench/RESULTS.md).
soak: $(STAMP)
	$(BIN)/python bench/soak.py
	EGRESS_TEST_WS_MEMORY=1 $(BIN)/python -m pytest -q tests/security/test_websocket_memory.py

lint: $(STAMP)
	$(BIN)/ruff check egress tests bench
	$(BIN)/ruff format --check egress tests bench
	$(BIN)/mypy

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
