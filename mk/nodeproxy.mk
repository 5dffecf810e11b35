# nodeproxy: the restricted kubelet stats proxy (fargate-otel-nodeproxy), its
# controllers, `fargate-otel doctor`'s checks, and their tests and benchmark.

BINARIES += fargate-otel-nodeproxy

# The integration test against the real API server runs the real proxy
# binary; it builds it itself when this is unset.
export FARGATE_OTEL_NODEPROXY_BIN := $(BIN)/fargate-otel-nodeproxy
TEST_GO_PREREQS += $(BIN)/fargate-otel-nodeproxy

# The path filter's fuzz test, run for a while on top of its seed corpus
# (which `go test ./...` already runs): nothing outside the allowed set may
# ever be forwarded. And the token shape check's: whatever it lets through
# to a TokenReview has the audience, a future expiry and a pod.
NODEPROXY_FUZZTIME ?= 30s
NODEPROXY_SHAPE_FUZZTIME ?= 15s
TEST_TARGETS += test-nodeproxy-fuzz

.PHONY: test-nodeproxy-fuzz
test-nodeproxy-fuzz: ## fuzz the nodeproxy path filter for $(NODEPROXY_FUZZTIME) and the token shape check for $(NODEPROXY_SHAPE_FUZZTIME)
	$(GO) test -run '^$$' -fuzz '^FuzzAllow$$' -fuzztime $(NODEPROXY_FUZZTIME) ./nodeproxy/pathfilter
	$(GO) test -run '^$$' -fuzz '^FuzzCheckShape$$' -fuzztime $(NODEPROXY_SHAPE_FUZZTIME) ./nodeproxy/callerauth

BENCH_TARGETS += bench-nodeproxy

.PHONY: bench-nodeproxy
# The last run puts a real kube-apiserver (e2e/cluster, in a private network
# namespace: root, as the cluster tests) between the log followers and a
# kubelet, and reads the API server's CPU too.
bench-nodeproxy: k8s-bins $(BIN)/fargate-otel-nodeproxy ## nodeproxy: scrapes/s through the proxy vs direct, upstream calls per scrape, memory with 10k callers, CPU per followed container (modelled and real API server)
	$(GO) run ./bench/nodeproxy $(NODEPROXY_BENCH_FLAGS)
	$(GO) run ./bench/nodeproxy -upstream static -callers 0 -follow-duration 0 $(NODEPROXY_BENCH_FLAGS)
	$(GO) run ./bench/nodeproxy -follow-upstream real $(NODEPROXY_BENCH_FLAGS)
