# The Helm chart (manifests/charts/fargate-otel) and the images it installs.
#
# One version for the chart's appVersion, the image tags and the injector's
# built-in image defaults: internal/version (a chart test keeps Chart.yaml
# equal to it).

CHART_DIR := $(ROOT)/manifests/charts/fargate-otel
VERSION := $(shell sed -n 's/^appVersion: *"\{0,1\}\([^"]*\)"\{0,1\}$$/\1/p' $(CHART_DIR)/Chart.yaml)
IMAGE_REGISTRY ?= ghcr.io/fargate-otel
IMAGES_DIR := $(CACHE)/images
IMAGE_BINARIES := fargate-otel-injector fargate-otel-nodeproxy fargate-otel-tee fargate-otel-collector fargate-otel-gateway fargate-otel-fleet

HELM_VERSION := v3.22.0
HELM := $(TOOLS_BIN)/helm

# The chart tests (manifests/charttest) run this helm.
export FARGATE_OTEL_HELM := $(HELM)
TEST_GO_PREREQS += helm

.PHONY: helm
helm: $(TOOLS_BIN)/helm-$(HELM_VERSION) ## the helm CLI (pinned) into .cache/tools/bin

$(TOOLS_BIN)/helm-$(HELM_VERSION):
	@mkdir -p $(TOOLS_BIN)
	@echo "installing helm $(HELM_VERSION) with go install (about a minute cold)"
	GOBIN=$(TOOLS_BIN) nice $(GO) install helm.sh/helm/v3/cmd/helm@$(HELM_VERSION)
	@rm -f $(TOOLS_BIN)/helm-v*
	@touch $@

# Images without Docker: the same content as the Dockerfiles (cmd/<binary>/
# Dockerfile), as docker-archive tarballs for `ctr -n k8s.io images import`
# or `docker load`, tagged as the chart's defaults.
.PHONY: images
images: $(addprefix $(BIN)/,$(filter-out fargate-otel-collector fargate-otel-gateway,$(IMAGE_BINARIES))) collector gateway ## images of the in-cluster binaries into .cache/images/<binary>.tar (no Docker), tagged ghcr.io/fargate-otel/<binary>:<version>
	$(call apt-ensure,ca-certificates)
	$(GO) run ./internal/tools/mkimages -bin $(BIN) -out $(IMAGES_DIR) -registry $(IMAGE_REGISTRY) -tag $(VERSION)

# Docker users build the same images with the Dockerfiles.
.PHONY: docker-images
docker-images: ## the same images with Docker (docker build -f cmd/<binary>/Dockerfile .)
	@for b in $(IMAGE_BINARIES); do \
		echo "docker build -t $(IMAGE_REGISTRY)/$$b:$(VERSION) -f cmd/$$b/Dockerfile ."; \
		docker build -t $(IMAGE_REGISTRY)/$$b:$(VERSION) -f cmd/$$b/Dockerfile . || exit 1; \
	done

# The chart as a package, for `helm install fargate-otel _artifacts/fargate-otel-<version>.tgz`.
.PHONY: chart
chart: helm ## lint the chart and package it into _artifacts/
	@mkdir -p $(ARTIFACTS)
	$(HELM) lint --strict $(CHART_DIR)
	$(HELM) package $(CHART_DIR) --destination $(ARTIFACTS)

.PHONY: test-chart
test-chart: helm ## helm lint, and the chart tests (templates for each value, RBAC equal to nodeproxy/rbac, a real API server accepts it)
	$(HELM) lint --strict $(CHART_DIR)
	$(GO) test -count=1 ./manifests/... ./injector/certs/...

TEST_TARGETS += test-chart-lint

.PHONY: test-chart-lint
test-chart-lint: helm
	$(HELM) lint --strict $(CHART_DIR)
	$(HELM) lint --strict $(CHART_DIR) --set certManager.enabled=true --set kubeletStats.mode=direct
