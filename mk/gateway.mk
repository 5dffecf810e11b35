# The gateway distribution (cmd/fargate-otel-gateway, its own go.mod), the
# collector the chart runs as a Deployment with gateway.enabled.
#
# The binary is cached under .cache/gateway/<hash>/ where the hash covers the
# ocb manifest, go.mod, go.sum, the Go sources, the local modules it builds
# with (fleetagent, the fleet's OpAMP agent, and sidecarconfig, which
# fleetagent imports) and the Go version, as the sidecar's distribution is
# (mk/collector.mk): an unchanged distribution is never rebuilt (a cold build
# takes several minutes on 2 cores), and an edit of a local module rebuilds it.

GATEWAY_DIR := $(ROOT)/cmd/fargate-otel-gateway
GATEWAY_HASH := $(shell cd $(GATEWAY_DIR) 2>/dev/null && { cat manifest.yaml go.mod go.sum $$(find . -name '*.go' ! -name '*_test.go' | LC_ALL=C sort) $(LOCAL_MODULES_FILES); $(GO) env GOVERSION; } 2>/dev/null | sha256sum | cut -c1-16)
GATEWAY_CACHED := $(CACHE)/gateway/$(GATEWAY_HASH)/fargate-otel-gateway

# The gateway's integration tests (gateway/gatewaytest, root module) and
# bench/gateway find the binary here; without it they run `make gateway`.
export FARGATE_OTEL_GATEWAY_BIN := $(GATEWAY_CACHED)

EXTRA_MODULES += cmd/fargate-otel-gateway
TEST_GO_PREREQS += gateway
TEST_TARGETS += test-gateway
BENCH_TARGETS += bench-gateway

.PHONY: gateway
gateway: $(GATEWAY_CACHED) ## build the gateway collector (cached by manifest+go.sum+sources) and link it into bin/
	@mkdir -p $(BIN)
	@ln -sfn $(GATEWAY_CACHED) $(BIN)/fargate-otel-gateway
	@echo "gateway: $(BIN)/fargate-otel-gateway -> $(GATEWAY_CACHED) ($$(du -m $(GATEWAY_CACHED) | cut -f1) MB)"

build: gateway

$(GATEWAY_CACHED):
	@mkdir -p $(dir $@)
	@echo "building the gateway (a cold build takes several minutes on 2 cores)"
	cd $(GATEWAY_DIR) && nice env $(GO_BUILD) -o $@.tmp . && mv $@.tmp $@
	@# keep only the current build
	@find $(CACHE)/gateway -mindepth 1 -maxdepth 1 -type d ! -name $(GATEWAY_HASH) -exec rm -rf {} +

# ocb's main_others.go is replaced by run.go (the collector, and the fleet's
# agent beside it when the fleet env is set: fleet.go), so it is removed
# after generation; components.go, main.go and go.mod are ocb's.
.PHONY: gateway-generate
gateway-generate: $(OCB) ## regenerate the gateway's sources from cmd/fargate-otel-gateway/manifest.yaml (ocb)
	cd $(GATEWAY_DIR) && $(OCB) --config manifest.yaml --skip-compilation
	rm -f $(GATEWAY_DIR)/main_others.go
	cd $(GATEWAY_DIR) && $(GO) mod tidy && gofmt -w *.go

.PHONY: test-gateway
test-gateway: gateway ## the gateway module's own tests (the integration tests are gateway/gatewaytest, in test-go)
	cd $(GATEWAY_DIR) && $(GO) test -count=1 ./...

.PHONY: bench-gateway
bench-gateway: gateway collector helm ## gateway per replica on one core (logs/s, spans/s) against the sidecar's otlp-to-otlp; binary size against otelcol-contrib
	@mkdir -p $(ARTIFACTS)
	$(GO) run ./bench/gateway | tee $(ARTIFACTS)/bench-gateway.txt
