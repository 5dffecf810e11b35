# What a pod's logs cost in CPU (the Fargate bill): CPU-seconds per million
# lines through the wrapper and the sidecar collector, beside coreutils tee.

BENCH_TARGETS += bench-bill

.PHONY: bench-bill
bench-bill: collector ## CPU-seconds per million log lines (wrapper + collector) vs coreutils tee, 100- and 1,000-byte lines
	@mkdir -p $(ARTIFACTS)
	$(GO) build -o $(CACHE)/tools/fargate-otel-tee ./cmd/fargate-otel-tee
	FARGATE_OTEL_TEE_BIN=$(CACHE)/tools/fargate-otel-tee $(GO) run ./bench/bill $(BILL_FLAGS) | tee $(ARTIFACTS)/bench-bill.txt
