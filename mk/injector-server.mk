# The injector's server side: the webhook server binary (fargate-otel-injector),
# its in-cluster test (a real kube-apiserver calls it) and its benchmark.

BINARIES += fargate-otel-injector

# cmd/fargate-otel-injector's test runs the binary as a process (SIGTERM,
# flags, certificate files); without this variable it builds one itself.
export FARGATE_OTEL_INJECTOR_BIN := $(BIN)/fargate-otel-injector
TEST_GO_PREREQS += $(BIN)/fargate-otel-injector

BENCH_TARGETS += bench-injector

.PHONY: bench-injector
bench-injector: ## webhook round trip over HTTPS, 50 concurrent requests, vs a no-op handler on the same server
	@mkdir -p $(ARTIFACTS)
	$(GO) test -run '^$$' -bench 'BenchmarkWebhookRoundTrip' -benchtime 1x -count 1 -timeout 20m ./bench/injector/ | tee $(ARTIFACTS)/bench-injector.txt
