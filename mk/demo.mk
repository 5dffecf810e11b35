# make demo / make demo-down, and what the end-to-end test of the product
# (e2e/product) needs besides the cluster.
#
# make demo: on the local cluster (make local-cluster-up) unless KUBECONFIG
# names another cluster, in which case every image is pushed to
# DEMO_REGISTRY (HOST[:PORT][/PREFIX]; DEMO_REGISTRY_INSECURE=true for plain
# HTTP) with the credentials of ~/.docker/config.json. The steps are in
# e2e/cmd/demo; the long first builds print a progress line every 20 s.

DEMO_TOOL := $(CACHE)/tools/demo
DEMO_PROGRESS := $(ROOT)/e2e/cmd/demo/progress.sh
export DEMO_REGISTRY ?=
export DEMO_REGISTRY_INSECURE ?=

# Local unless KUBECONFIG is set to something other than the local cluster's.
DEMO_ON_LOCAL := $(if $(KUBECONFIG),$(if $(filter $(abspath $(KUBECONFIG)),$(LOCAL_KUBECONFIG)),yes,),yes)

.PHONY: demo demo-down demo-tool

demo: ## a local Kubernetes, the chart installed, a demo app, its telemetry arriving (KUBECONFIG set: that cluster)
	@echo "make demo: $(if $(DEMO_ON_LOCAL),a local single-node Kubernetes (network namespace fargate-otel-local),the cluster of KUBECONFIG=$(KUBECONFIG)), the fargate-otel chart, a demo app and its telemetry."
	@echo "The first run builds Kubernetes, the collector and the images (about 15-20 min on 2 cores); later runs take a minute or two."
ifeq ($(DEMO_ON_LOCAL),yes)
	@echo "==> [1/4] Debian packages, Kubernetes $(K8S_VERSION), CoreDNS and helm (cached under .cache/)"
	@$(DEMO_PROGRESS) "Kubernetes, CoreDNS, helm" $(MAKE) -s --no-print-directory k8s-bins coredns-bin helm
else
	@echo "==> [1/4] helm"
	@$(MAKE) -s --no-print-directory helm
endif
	@echo "==> [2/4] the project's images (make images; the collector is the long part)"
	@$(DEMO_PROGRESS) "images" $(MAKE) -s --no-print-directory images
ifeq ($(DEMO_ON_LOCAL),yes)
	@echo "==> [3/4] the local cluster (make local-cluster-up)"
	@$(DEMO_PROGRESS) "local cluster" $(MAKE) -s --no-print-directory local-cluster-up
else
	@echo "==> [3/4] the cluster of $(KUBECONFIG)"
endif
	@echo "==> [4/4] the chart, a sink, the demo app, and the telemetry"
	@$(DEMO_PROGRESS) "the demo tool" $(GO) build -o $(DEMO_TOOL) ./e2e/cmd/demo
	@$(DEMO_TOOL) up -kubeconfig $(if $(DEMO_ON_LOCAL),$(LOCAL_KUBECONFIG),$(abspath $(KUBECONFIG)))

demo-down: ## remove what make demo installed (and the local cluster)
ifeq ($(DEMO_ON_LOCAL),yes)
	@$(MAKE) -s --no-print-directory local-cluster-down
else
	@$(GO) build -o $(DEMO_TOOL) ./e2e/cmd/demo
	$(DEMO_TOOL) down -kubeconfig $(abspath $(KUBECONFIG))
endif

# The end-to-end test of the product installs the chart with helm, imports
# the images of `make images` and runs `fargate-otel doctor`.
export FARGATE_OTEL_IMAGES_DIR := $(IMAGES_DIR)
e2e: images helm $(BIN)/fargate-otel
