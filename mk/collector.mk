# The collector distribution (cmd/fargate-otel-collector, its own go.mod).
#
# The binary is cached under .cache/collector/<hash>/ where the hash covers
# the ocb manifest, go.mod, go.sum, the Go sources (internal/ included), the
# local modules it builds with (sidecarconfig, which renders the pod's
# settings, and fleetagent, the fleet's OpAMP agent it shares with the
# gateway) and the Go version: an unchanged distribution is never rebuilt (a
# cold build takes minutes), and an edit of a local module rebuilds it.

COLLECTOR_DIR := $(ROOT)/cmd/fargate-otel-collector
OCB_VERSION := v0.159.0
OCB := $(TOOLS_BIN)/builder-$(OCB_VERSION)
SIDECARCONFIG_DIR := $(ROOT)/sidecarconfig
FLEETAGENT_DIR := $(ROOT)/fleetagent
# The local modules' sources and go.mod files, as one list for the hashes of
# both distributions (find prints paths below $(ROOT) whatever the folder).
LOCAL_MODULES_FILES = $$(find $(SIDECARCONFIG_DIR) $(FLEETAGENT_DIR) -name '*.go' ! -name '*_test.go' | LC_ALL=C sort) $(SIDECARCONFIG_DIR)/go.mod $(FLEETAGENT_DIR)/go.mod
COLLECTOR_HASH := $(shell cd $(COLLECTOR_DIR) 2>/dev/null && { cat manifest.yaml go.mod go.sum $$(find . -name '*.go' ! -name '*_test.go' | LC_ALL=C sort) $(LOCAL_MODULES_FILES); $(GO) env GOVERSION; } 2>/dev/null | sha256sum | cut -c1-16)
COLLECTOR_CACHED := $(CACHE)/collector/$(COLLECTOR_HASH)/fargate-otel-collector
# The same distribution without the fleet agent (-tags noagent): the
# reference make bench-collector measures the agent's cost against.
COLLECTOR_NOAGENT := $(CACHE)/collector/$(COLLECTOR_HASH)/fargate-otel-collector-noagent

# Tests (root module and the collector's own) find the binary here; a test
# run without it builds it with `make collector`.
export FARGATE_OTEL_COLLECTOR_BIN := $(COLLECTOR_CACHED)

EXTRA_MODULES += cmd/fargate-otel-collector sidecarconfig fleetagent
TEST_GO_PREREQS += collector
TEST_TARGETS += test-collector
BENCH_TARGETS += bench-collector

.PHONY: collector
collector: $(COLLECTOR_CACHED) ## build the collector (cached by manifest+go.sum+sources) and link it into bin/
	@mkdir -p $(BIN)
	@ln -sfn $(COLLECTOR_CACHED) $(BIN)/fargate-otel-collector
	@echo "collector: $(BIN)/fargate-otel-collector -> $(COLLECTOR_CACHED) ($$(du -m $(COLLECTOR_CACHED) | cut -f1) MB)"

build: collector

$(COLLECTOR_CACHED):
	@mkdir -p $(dir $@)
	@echo "building the collector (a cold build takes several minutes on 2 cores)"
	cd $(COLLECTOR_DIR) && nice env $(GO_BUILD) -o $@.tmp . && mv $@.tmp $@
	@# keep only the current build
	@find $(CACHE)/collector -mindepth 1 -maxdepth 1 -type d ! -name $(COLLECTOR_HASH) -exec rm -rf {} +

$(COLLECTOR_NOAGENT): $(COLLECTOR_CACHED)
	cd $(COLLECTOR_DIR) && nice env $(GO_BUILD) -tags noagent -o $@.tmp . && mv $@.tmp $@

$(OCB):
	@mkdir -p $(TOOLS_BIN)
	GOBIN=$(TOOLS_BIN) $(GO) install go.opentelemetry.io/collector/cmd/builder@$(OCB_VERSION)
	mv $(TOOLS_BIN)/builder $@

# ocb's main_others.go is replaced by run.go (the sidecar's supervisor and
# the distribution's own components), so it is removed after generation.
.PHONY: collector-generate
collector-generate: $(OCB) ## regenerate the collector's sources from cmd/fargate-otel-collector/manifest.yaml (ocb)
	cd $(COLLECTOR_DIR) && $(OCB) --config manifest.yaml --skip-compilation
	rm -f $(COLLECTOR_DIR)/main_others.go
	cd $(COLLECTOR_DIR) && $(GO) mod tidy && gofmt -w *.go

.PHONY: test-collector
test-collector: collector ## the collector module's own tests, sidecarconfig's (the settings it renders) and fleetagent's (the fleet agent)
	cd $(COLLECTOR_DIR) && $(GO) test -count=1 ./...
	cd $(SIDECARCONFIG_DIR) && $(GO) test -count=1 ./...
	cd $(FLEETAGENT_DIR) && $(GO) test -count=1 ./...

.PHONY: bench-collector
bench-collector: collector $(COLLECTOR_NOAGENT) ## collector budgets: size, idle RSS, what the fleet agent adds, exactly-once line rate, latency
	@mkdir -p $(ARTIFACTS)
	$(GO) build -o $(CACHE)/tools/fargate-otel-tee ./cmd/fargate-otel-tee
	FARGATE_OTEL_TEE_BIN=$(CACHE)/tools/fargate-otel-tee FARGATE_OTEL_COLLECTOR_NOAGENT_BIN=$(COLLECTOR_NOAGENT) \
		$(GO) run ./bench/collector $(BENCH_COLLECTOR_FLAGS) | tee $(ARTIFACTS)/bench-collector.txt
