# fargate-otel: every entry point. `make help` lists them.
#
# Expensive things (Kubernetes binaries, the collector, Go tools) are cached
# under .cache/ (git-ignored) and rebuilt only when their pinned version or
# manifest changes. Each area of the project adds its own targets in mk/*.mk
# and appends to TEST_TARGETS / BENCH_TARGETS, so `make test` and
# `make bench` run everything.

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help
MAKEFLAGS += --no-builtin-rules

export GOTOOLCHAIN := local
ROOT := $(CURDIR)
CACHE := $(ROOT)/.cache
BIN := $(ROOT)/bin
ARTIFACTS := $(ROOT)/_artifacts
TOOLS_BIN := $(CACHE)/tools/bin
export PATH := $(TOOLS_BIN):$(PATH)

GO ?= go
# Static, reproducible, small binaries for images and for the tests that run them.
GO_BUILD := CGO_ENABLED=0 $(GO) build -trimpath -ldflags "-s -w"
# Go test timeout per package; the e2e and integration packages set their own deadlines inside.
GO_TEST_TIMEOUT ?= 20m

GOLANGCI_LINT_VERSION := v2.15.0

# The areas append to these.
TEST_TARGETS :=
BENCH_TARGETS :=
BINARIES :=

include $(sort $(wildcard mk/*.mk))

.PHONY: help
help: ## list the targets
	@grep -hE '^[a-zA-Z0-9_-]+:.*## ' $(MAKEFILE_LIST) | sort | awk -F':.*## ' '{printf "  %-18s %s\n", $$1, $$2}'

.PHONY: build
build: $(addprefix $(BIN)/,$(BINARIES)) ## build the project binaries into bin/

$(BIN)/%: FORCE
	@mkdir -p $(BIN)
	$(GO_BUILD) -o $@ ./cmd/$*

.PHONY: FORCE
FORCE:

.PHONY: test
test: lint test-go $(TEST_TARGETS) ## everything CI runs: lint, unit and integration tests, chart tests, e2e
	@echo "make test: all passed"

# go test of the root module; the summary tool prints failures and "N passed, N failed".
.PHONY: test-go
test-go: $(TEST_GO_PREREQS) ## unit and integration tests of the root module
	@mkdir -p $(ARTIFACTS)
	$(GO) build -o $(CACHE)/tools/testsummary ./internal/tools/testsummary
	$(GO) test -json -timeout $(GO_TEST_TIMEOUT) $(TEST_GO_FLAGS) ./... 2>&1 | tee $(ARTIFACTS)/test-go.json | $(CACHE)/tools/testsummary

.PHONY: bench
bench: $(BENCH_TARGETS) ## all benchmarks, each printed as ratios against a reference run

.PHONY: lint
lint: tools-lint ## gofmt, go vet and golangci-lint on every module
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	golangci-lint run ./...
	@for m in $(EXTRA_MODULES); do (cd $$m && $(GO) vet ./... && golangci-lint run ./...); done

.PHONY: tools-lint
tools-lint: $(TOOLS_BIN)/golangci-lint-$(GOLANGCI_LINT_VERSION)

# Go tools are installed with `go install` at a pinned version; the version is
# part of the file name so that a bump reinstalls and an unchanged pin does not.
$(TOOLS_BIN)/golangci-lint-$(GOLANGCI_LINT_VERSION):
	@mkdir -p $(TOOLS_BIN)
	GOBIN=$(TOOLS_BIN) $(GO) install github.com/golangci/golangci-lint/v2/cmd/golangci-lint@$(GOLANGCI_LINT_VERSION)
	@touch $@

# apt packages, installed once and only when missing (CI runs as root).
APT_GET := $(if $(filter 0,$(shell id -u)),,sudo) env DEBIAN_FRONTEND=noninteractive apt-get
define apt-ensure
	@missing=""; for p in $(1); do dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then echo "installing apt packages:$$missing"; $(APT_GET) update -qq && $(APT_GET) install -y -qq $$missing >/dev/null; fi
endef

.PHONY: clean
clean: ## remove bin/ and _artifacts/ (keeps the .cache/ of expensive builds)
	rm -rf $(BIN) $(ARTIFACTS)
