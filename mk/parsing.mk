# Log parsing (sidecarconfig's multiline presets and parsers, the
# injector's fargate-otel.io/multiline and fargate-otel.io/log-parser).
# The integration tests in injector/collectorconfig run real runtimes whose
# stack traces the presets must join: python3, a Java runtime (its source
# launcher runs App.java), Node.js and Ruby, from Debian (a JRE is the
# largest, ~200 MB; Go is the toolchain itself). .NET is not in Debian:
# its reports are replayed from a fixture.

PARSING_APT_PACKAGES := python3 default-jre-headless nodejs ruby
TEST_GO_PREREQS += parsing-test-deps

.PHONY: parsing-test-deps
parsing-test-deps: ## install the runtimes of the multiline tests (python3, Java, Node.js, Ruby), once
	$(call apt-ensure,$(PARSING_APT_PACKAGES))

# `make test-injector` runs the same tests.
test-injector: parsing-test-deps

.PHONY: test-parsing
test-parsing: collector parsing-test-deps ## the log parsing tests alone: presets, annotations, and the real runtimes through the wrapper and the collector
	cd $(SIDECARCONFIG_DIR) && $(GO) test -count=1 -run 'LogParsing|Multiline|Render' ./...
	$(GO) test -count=1 -run 'LogParsing|Parse' ./injector/annotations ./injector
	$(GO) test -count=1 -run 'Multiline|Parsers|LogParsing|CollectorValidatesEveryVariant|CollectorRunsTheSettings' ./injector/collectorconfig

BENCH_TARGETS += bench-parsing

.PHONY: bench-parsing
bench-parsing: collector ## what log parsing costs the collector: CPU and line rate with multiline, JSON and both, as ratios to no parsing
	@mkdir -p $(ARTIFACTS)
	$(GO) run ./bench/parsing $(PARSING_BENCH_FLAGS) | tee $(ARTIFACTS)/bench-parsing.txt

# The log parsing annotations' fuzz test, run for a while on top of its seed
# corpus (which `go test ./...` already runs): whatever a user writes, only
# entries the collector accepts are kept; and the log budget's, whose
# accepted limits are written back as the same limits.
PARSING_FUZZTIME ?= 20s
TEST_TARGETS += test-parsing-fuzz

.PHONY: test-parsing-fuzz
test-parsing-fuzz: ## fuzz the multiline, log-parser and log-rate-limit annotations for $(PARSING_FUZZTIME) each
	$(GO) test -run '^$$' -fuzz '^FuzzParseLogParsing$$' -fuzztime $(PARSING_FUZZTIME) ./injector/annotations
	$(GO) test -run '^$$' -fuzz '^FuzzParseRateLimit$$' -fuzztime $(PARSING_FUZZTIME) ./injector/annotations
