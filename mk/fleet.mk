# fleet: the fleet server (fargate-otel-fleet, fleet/), the CLI's `fleet`,
# doctor's stale-sidecar check, the fleet page and its benchmark.

BINARIES += fargate-otel-fleet

# The page's test drives Debian's chromium headless (fleet/clustertest).
TEST_GO_PREREQS += chromium

.PHONY: chromium
chromium: ## Debian's chromium (headless, for the fleet page's test)
	$(call apt-ensure,chromium)

.PHONY: test-fleet
test-fleet: chromium k8s-bins ## the fleet's tests: unit, a real API server with real opamp-go agents, the page in headless Chromium
	$(GO) test -count=1 ./fleet/... ./nodeproxy/doctor
	$(GO) test -count=1 -run 'Fleet' ./cmd/fargate-otel ./injector ./injector/certs/clustertest ./manifests/charttest

BENCH_TARGETS += bench-fleet

# Agents per run; the first run is the reference of the ratios.
FLEET_BENCH_AGENTS ?= 1000,5000

.PHONY: bench-fleet
bench-fleet: ## fleet server: RSS and CPU per agent, live settings reaching 50/99/100% of the agents, reconnect after a restart (1,000 and 5,000 agents)
	$(GO) run ./bench/fleet -agents $(FLEET_BENCH_AGENTS) $(FLEET_BENCH_FLAGS)
