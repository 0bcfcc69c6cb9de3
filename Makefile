# offerfeed — make help lists the targets.

# The Kubernetes version of the envtest control plane: written once, in hack/controlplane/kube/go.mod.
ENVTEST_K8S_VERSION := $(shell hack/controlplane/k8s-version.sh)
IMG ?= offerfeed:latest
GO ?= go
# Test flags; `make test TESTFLAGS=-short` skips the slow cases.
TESTFLAGS ?=

.DEFAULT_GOAL := help

##@ General

.PHONY: help
help: ## Show the targets.
	@awk 'BEGIN {FS = ":.*##"; printf "Usage: make <target>\n"} /^[a-zA-Z_0-9-]+:.*?##/ { printf "  %-16s %s\n", $$1, $$2 } /^##@/ { printf "\n%s\n", substr($$0, 5) }' $(MAKEFILE_LIST)

##@ Development

.PHONY: manifests
manifests: ## Generate the CRD, RBAC and webhook manifests from the markers.
	$(GO) tool controller-gen rbac:roleName=manager-role crd webhook paths="./..." \
		output:crd:artifacts:config=config/crd/bases \
		output:rbac:artifacts:config=config/rbac \
		output:webhook:artifacts:config=config/webhook

.PHONY: generate
generate: ## Generate deepcopy code, the gateway config rules (from the CRD), JSON Schema and K8s version.
	$(GO) tool controller-gen object:headerFile="hack/boilerplate.go.txt" paths="./api/..."
	$(GO) run ./hack/gatewayrules > pkg/gatewayconfig/zz_generated.rules.go.tmp
	mv pkg/gatewayconfig/zz_generated.rules.go.tmp pkg/gatewayconfig/zz_generated.rules.go
	$(GO) run ./hack/k8sversion > internal/testenv/zz_generated.version.go.tmp
	mv internal/testenv/zz_generated.version.go.tmp internal/testenv/zz_generated.version.go
	$(GO) run ./hack/jsonschema > config/gateway/config.schema.json.tmp
	mv config/gateway/config.schema.json.tmp config/gateway/config.schema.json

# What manifests and generate write.
GENERATED := config api pkg/gatewayconfig/zz_generated.rules.go internal/testenv/zz_generated.version.go

.PHONY: verify-gen
verify-gen: manifests generate ## Fail when generated files differ from what is committed.
	@if [ -n "$$(git status --porcelain -- $(GENERATED))" ]; then \
		echo "generated files differ from the commit; run 'make manifests generate' and commit:"; \
		git status --porcelain -- $(GENERATED); git diff -- $(GENERATED) | head -40; exit 1; fi
	@echo "generated files are up to date"

.PHONY: fmt
fmt: ## Format the Go code.
	gofmt -l -w $$(git ls-files '*.go')

.PHONY: vet
vet: ## Run go vet.
	$(GO) vet ./...

.PHONY: lint
lint: vet ## Check formatting and vet.
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "not gofmt-formatted:"; echo "$$out"; exit 1; fi

.PHONY: controlplane
controlplane: ## Build kube-apiserver, etcd and kubectl from Go modules for envtest (skips what exists).
	ENVTEST_K8S_VERSION=$(ENVTEST_K8S_VERSION) hack/controlplane/build.sh

.PHONY: mutation
mutation: ## Check that the gateway tests catch deliberate bugs in its decision code (hack/mutation).
	$(GO) run ./hack/mutation

.PHONY: test
test: lint verify-gen mutation ## Build the control plane if needed, check generated files, run every test and the mutation check.
	KUBEBUILDER_ASSETS="$$(ENVTEST_K8S_VERSION=$(ENVTEST_K8S_VERSION) hack/controlplane/build.sh)" \
		$(GO) test -race -count=1 $(TESTFLAGS) ./...

.PHONY: bench
bench: ## Run the benchmarks (see BENCHMARKS.md for the figures).
	$(GO) test -run '^$$' -bench . -benchmem ./...

##@ Build and run

.PHONY: build
build: ## Build bin/offerfeed (manager, gateway, render, validate, version).
	CGO_ENABLED=0 $(GO) build -trimpath -o bin/offerfeed .

.PHONY: build-demo
build-demo: ## Build bin/offerfeed-demo, the demo (a binary of its own: it links envtest and the market).
	CGO_ENABLED=0 $(GO) build -trimpath -o bin/offerfeed-demo ./cmd/offerfeed-demo

.PHONY: run
run: manifests generate ## Run the manager against the cluster of the current kubeconfig.
	$(GO) run . manager --leader-elect=false

.PHONY: demo
demo: controlplane build-demo ## Run the demo market on an embedded control plane (DEMOFLAGS: its flags).
	bin/offerfeed-demo $(DEMOFLAGS)

.PHONY: docker-build
docker-build: ## Build the image (needs a Docker engine).
	docker build -t $(IMG) .

PLATFORMS ?= linux/amd64,linux/arm64
.PHONY: docker-buildx
docker-buildx: ## Build and push the image for PLATFORMS (needs docker buildx).
	docker buildx build --platform $(PLATFORMS) -t $(IMG) --push .

.PHONY: build-installer
build-installer: ## Write dist/install.yaml: the whole install (config/default) with image IMG.
	mkdir -p dist
	cd config/manager && $(GO) tool kustomize edit set image offerfeed=$(IMG)
	$(GO) tool kustomize build config/default > dist/install.yaml

##@ Deployment

.PHONY: install
install: ## Install the CRDs into the cluster of the current kubeconfig.
	$(GO) tool kustomize build config/crd | kubectl apply --server-side -f -

.PHONY: uninstall
uninstall: ## Remove the CRDs (and every policy) from the cluster.
	$(GO) tool kustomize build config/crd | kubectl delete --ignore-not-found -f -

.PHONY: deploy
deploy: ## Deploy offerfeed (config/default, needs cert-manager) with image IMG.
	cd config/manager && $(GO) tool kustomize edit set image offerfeed=$(IMG)
	$(GO) tool kustomize build config/default | kubectl apply --server-side -f -

.PHONY: undeploy
undeploy: ## Remove offerfeed from the cluster.
	$(GO) tool kustomize build config/default | kubectl delete --ignore-not-found -f -

.PHONY: deploy-no-certmanager
deploy-no-certmanager: ## Deploy without cert-manager (create the webhook Secret first: docs/install.md).
	cd config/manager && $(GO) tool kustomize edit set image offerfeed=$(IMG)
	$(GO) tool kustomize build config/default-no-certmanager | kubectl apply --server-side -f -

.PHONY: undeploy-no-certmanager
undeploy-no-certmanager: ## Remove an install made with deploy-no-certmanager.
	$(GO) tool kustomize build config/default-no-certmanager | kubectl delete --ignore-not-found -f -
