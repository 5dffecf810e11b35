# The wrapper fargate-otel-tee (tee/, logrotate/, cmd/fargate-otel-tee/).
# Its tests run in the root module's `go test ./...` (make test-go): they
# build the binary themselves and need root for tmpfs mounts, PID namespaces
# and another user's install, which CI has. util-linux gives them `unshare`.

BINARIES += fargate-otel-tee
BENCH_TARGETS += bench-tee
TEST_GO_PREREQS += tee-test-deps

.PHONY: tee-test-deps
tee-test-deps:
	$(call apt-ensure,util-linux coreutils)

# BENCH_TEE_SIZE=64Mi for a quick run; the default is the issue's 1Gi.
.PHONY: bench-tee
bench-tee: ## benchmark fargate-otel-tee against tee, cat and the shell pipeline (ratios)
	@mkdir -p $(ARTIFACTS)
	GO=$(GO) BENCH_TEE_OUT=$(ARTIFACTS)/bench-tee.txt bench/tee/run.sh
