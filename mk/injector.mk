# The injector: the pure mutation and its packages (injector/,
# injector/annotations, injector/fargatesize, injector/manifest), the
# webhook (injector/webhook, injector/entrypoint, cmd/fargate-otel-injector)
# and the CLI (cmd/fargate-otel).

BINARIES += fargate-otel

# The CLI tests run the real binary; without this variable they build it.
export FARGATE_OTEL_CLI := $(BIN)/fargate-otel
TEST_GO_PREREQS += $(BIN)/fargate-otel

FUZZTIME ?= 60s

.PHONY: test-injector
test-injector: $(BIN)/fargate-otel ## the injector's and the CLI's tests (golden pods and manifests, random pods, the real CLI)
	$(GO) test -count=1 ./injector/... ./cmd/fargate-otel/...

.PHONY: fuzz-injector
fuzz-injector: ## fuzz the mutation and the manifest injection, FUZZTIME each (default 60s)
	cd injector && nice $(GO) test -run '^$$' -fuzz '^FuzzMutate$$' -fuzztime $(FUZZTIME) .
	cd injector/manifest && nice $(GO) test -run '^$$' -fuzz '^FuzzInject$$' -fuzztime $(FUZZTIME) .
