# The documentation's tests (internal/docstest): relative links and anchors
# of README.md and docs/*.md, tables, every message of the code quoted in
# docs/troubleshooting.md, every value of the chart named in docs/chart.md.
# They are part of test-go (go test ./...); this target runs them alone.

.PHONY: test-docs
test-docs: ## the documentation's tests alone: links, tables, every message in docs/troubleshooting.md, every value in docs/chart.md
	$(GO) test -count=1 ./internal/docstest
