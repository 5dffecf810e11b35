# e2e: a real Kubernetes (etcd, kube-apiserver, and for the single node also
# containerd, kubelet, kube-controller-manager, kube-scheduler, kube-proxy)
# for the tests, built from the Go module proxy and cached under .cache/k8s.
#
# The Kubernetes version is pinned once, in e2e/k8sbin/go.mod. The binaries are
# rebuilt only when that module (go.mod or go.sum) changes: the stamp's name
# carries a hash of both files.

K8S_MODULE_DIR := $(ROOT)/e2e/k8sbin
K8S_VERSION := $(shell sed -n 's/^require k8s.io\/kubernetes \(v[0-9.]*\)$$/\1/p' $(K8S_MODULE_DIR)/go.mod)
K8S_MINOR := $(word 2,$(subst ., ,$(K8S_VERSION)))
K8S_BIN := $(CACHE)/k8s/$(K8S_VERSION)/bin
K8S_MODULE_HASH := $(shell cat $(K8S_MODULE_DIR)/go.mod $(K8S_MODULE_DIR)/go.sum | sha256sum | cut -c1-16)
K8S_STAMP := $(K8S_BIN)/.built-$(K8S_MODULE_HASH)
K8S_COMMANDS := kube-apiserver kube-controller-manager kube-scheduler kubelet kubectl kube-proxy
# Without these the binaries report v0.0.0-master, and the kubelet and kubectl
# version-skew checks get confused.
K8S_LDFLAGS := -s -w \
	-X k8s.io/component-base/version.gitVersion=$(K8S_VERSION) \
	-X k8s.io/component-base/version.gitMajor=1 \
	-X k8s.io/component-base/version.gitMinor=$(K8S_MINOR) \
	-X k8s.io/component-base/version.gitTreeState=clean \
	-X k8s.io/client-go/pkg/version.gitVersion=$(K8S_VERSION) \
	-X k8s.io/client-go/pkg/version.gitMajor=1 \
	-X k8s.io/client-go/pkg/version.gitMinor=$(K8S_MINOR)

# Debian packages the local cluster runs on (see ../shared/notes/local-kubernetes.md):
# etcd for the API server; containerd, runc and the CNI plugins for the kubelet;
# iptables for kube-proxy; iproute2 (ip) for the netns plumbing.
E2E_APT_PACKAGES := etcd-server containerd runc containernetworking-plugins iptables iproute2

# The harness (e2e/cluster) finds everything through these; a test run outside
# make falls back to `make -C <root> k8s-bins` and `make k8s-bin-dir`.
export E2E_K8S_BIN_DIR := $(K8S_BIN)
export E2E_ETCD := /usr/bin/etcd
# Component logs of failed runs.
export E2E_ARTIFACTS := $(ARTIFACTS)/e2e

TEST_GO_PREREQS += k8s-bins

.PHONY: k8s-bins
k8s-bins: e2e-apt $(K8S_STAMP) ## Kubernetes binaries (pinned in e2e/k8sbin/go.mod) into .cache/k8s/<version>/bin

.PHONY: e2e-apt
e2e-apt:
	$(call apt-ensure,$(E2E_APT_PACKAGES))

# Under a lock, and the stamp checked again once it is held: two makes at
# once (two terminals, targets that each need the binaries) build them once,
# not twice into the same folder.
$(K8S_STAMP):
	@test -n "$(K8S_VERSION)" || { echo "cannot read the k8s.io/kubernetes version from $(K8S_MODULE_DIR)/go.mod"; exit 1; }
	@mkdir -p $(K8S_BIN)
	@exec 9>$(K8S_BIN)/.build.lock; flock 9; \
	if [ -e $@ ]; then echo "Kubernetes $(K8S_VERSION): built meanwhile by another make"; exit 0; fi; \
	echo "building Kubernetes $(K8S_VERSION) ($(K8S_COMMANDS)) into $(K8S_BIN): ~6-9 min cold on 2 cores, seconds when cached"; \
	start=$$(date +%s); \
	(cd $(K8S_MODULE_DIR) && CGO_ENABLED=0 nice -n 10 $(GO) build -trimpath -ldflags "$(K8S_LDFLAGS)" \
		-o $(K8S_BIN)/ $(addprefix k8s.io/kubernetes/cmd/,$(K8S_COMMANDS))); \
	echo "built Kubernetes $(K8S_VERSION) in $$(( $$(date +%s) - start ))s"; \
	rm -f $(K8S_BIN)/.built-*; \
	touch $@

# The harness asks this where the binaries are when it runs outside make.
.PHONY: k8s-bin-dir
k8s-bin-dir:
	@echo '$(K8S_BIN)'

# CoreDNS for the cluster DNS, with only the plugins the e2e cluster uses
# (e2e/corednsbin), rebuilt when that module changes.
COREDNS_MODULE_DIR := $(ROOT)/e2e/corednsbin
COREDNS_VERSION := $(shell sed -n 's/^require github.com\/coredns\/coredns \(v[0-9.]*\)$$/\1/p' $(COREDNS_MODULE_DIR)/go.mod)
COREDNS_HASH := $(shell cat $(COREDNS_MODULE_DIR)/go.mod $(COREDNS_MODULE_DIR)/go.sum $(COREDNS_MODULE_DIR)/main.go | sha256sum | cut -c1-16)
COREDNS_BIN := $(CACHE)/coredns/$(COREDNS_VERSION)-$(COREDNS_HASH)/coredns
export E2E_COREDNS := $(COREDNS_BIN)

.PHONY: coredns-bin coredns-bin-path
coredns-bin: $(COREDNS_BIN) ## CoreDNS (pinned in e2e/corednsbin/go.mod) for the e2e cluster's DNS

$(COREDNS_BIN):
	@mkdir -p $(@D)
	@echo "building CoreDNS $(COREDNS_VERSION) into $@"
	@start=$$(date +%s); \
	cd $(COREDNS_MODULE_DIR) && CGO_ENABLED=0 nice -n 10 $(GO) build -trimpath -ldflags "-s -w" -o $@.tmp . && mv $@.tmp $@; \
	echo "built CoreDNS $(COREDNS_VERSION) in $$(( $$(date +%s) - start ))s"

coredns-bin-path:
	@echo '$(COREDNS_BIN)'

# The end-to-end tests: every package under e2e/ with files tagged e2e, one
# package at a time (each brings up its own cluster; the machine has 2 cores).
E2E_PACKAGES ?= $(sort $(patsubst %/,./%,$(dir $(shell grep -rl --include='*_test.go' '^//go:build e2e' e2e 2>/dev/null))))
E2E_TIMEOUT ?= 30m

.PHONY: e2e
e2e: k8s-bins coredns-bin ## the end-to-end tests on a local single-node Kubernetes; prints "N passed, N failed"
	@mkdir -p $(ARTIFACTS)
	@test -n "$(E2E_PACKAGES)" || { echo "no e2e tests found (files tagged //go:build e2e under e2e/)"; exit 1; }
	$(GO) build -o $(CACHE)/tools/testsummary ./internal/tools/testsummary
	$(GO) test -tags e2e -p 1 -count=1 -json -timeout $(E2E_TIMEOUT) $(E2E_FLAGS) $(E2E_PACKAGES) 2>&1 | tee $(ARTIFACTS)/e2e.json | $(CACHE)/tools/testsummary

TEST_TARGETS += e2e

# A local cluster that stays up (for `make demo` and for people): the same
# single node, in the network namespace fargate-otel-local, its API server
# forwarded to the host's loopback. KUBECONFIG=$(LOCAL_KUBECONFIG).
LOCALCLUSTER := $(CACHE)/tools/localcluster
LOCAL_KUBECONFIG := $(CACHE)/localcluster/kubeconfig

.PHONY: local-cluster-up local-cluster-down
local-cluster-up: k8s-bins coredns-bin ## start the local cluster (kubeconfig: .cache/localcluster/kubeconfig)
	@$(GO) build -o $(LOCALCLUSTER) ./e2e/cmd/localcluster
	$(LOCALCLUSTER) up

local-cluster-down: ## stop the local cluster and remove its state
	@$(GO) build -o $(LOCALCLUSTER) ./e2e/cmd/localcluster
	$(LOCALCLUSTER) down
