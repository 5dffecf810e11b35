# The wrapper fargate-otel-tee (tee/, logrotate/, cmd/fargate-otel-tee/) and
# the follower fargate-otel-follow (tee/follow/, cmd/fargate-otel-tee/follow/),
# which ships next to it in the tee image. Their tests run in the root
# module's `go test ./...` (make test-go): they build the binaries themselves
# and need root for tmpfs mounts, PID namespaces and another user's install,
# which CI has. util-linux gives them `unshare`.

BINARIES += fargate-otel-tee fargate-otel-follow
BENCH_TARGETS += bench-tee
TEST_GO_PREREQS += tee-test-deps

# The follower's main package lives under the wrapper's folder.
$(BIN)/fargate-otel-follow: FORCE
	@mkdir -p $(BIN)
	$(GO_BUILD) -o $@ ./cmd/fargate-otel-tee/follow

# The tee image holds both binaries.
images: $(BIN)/fargate-otel-follow

.PHONY: tee-test-deps
tee-test-deps:
	$(call apt-ensure,util-linux coreutils)

# BENCH_TEE_SIZE=64Mi for a quick run; the default is the issue's 1Gi.
.PHONY: bench-tee
bench-tee: ## benchmark fargate-otel-tee against tee, cat and the shell pipeline (ratios), its rate limit's cost, the binaries' sizes
	@mkdir -p $(ARTIFACTS)
	GO=$(GO) BENCH_TEE_OUT=$(ARTIFACTS)/bench-tee.txt bench/tee/run.sh
