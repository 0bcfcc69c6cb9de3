# offerfeed — make help lists the targets.

ENVTEST_K8S_VERSION ?= 1.37.2
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
generate: ## Generate deepcopy code, the gateway config JSON Schema and the PrometheusRule.
	$(GO) tool controller-gen object:headerFile="hack/boilerplate.go.txt" paths="./api/..."
	$(GO) run ./hack/jsonschema > config/gateway/config.schema.json.tmp
	mv config/gateway/config.schema.json.tmp config/gateway/config.schema.json
	$(GO) run ./hack/prometheusrule > config/prometheus/prometheusrule.yaml.tmp
	mv config/prometheus/prometheusrule.yaml.tmp config/prometheus/prometheusrule.yaml

.PHONY: verify-gen
verify-gen: manifests generate ## Fail when generated files differ from what is committed.
	@if [ -n "$$(git status --porcelain -- config api)" ]; then \
		echo "generated files differ from the commit; run 'make manifests generate' and commit:"; \
		git status --porcelain -- config api; git diff -- config api | head -40; exit 1; fi
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

# promtool comes from the Prometheus module, pinned in the tools module hack/tools so that
# offerfeed's go.mod does not take in the Prometheus server's dependencies.
PROMTOOL ?= $(GO) tool -modfile=$(CURDIR)/hack/tools/go.mod promtool

.PHONY: test-rules
test-rules: ## Check the alerting rules and run their unit tests with promtool.
	$(PROMTOOL) check rules config/prometheus/offerfeed.rules.yaml
	cd config/prometheus && $(PROMTOOL) test rules offerfeed.rules.test.yaml

.PHONY: test
test: lint verify-gen test-rules ## Build the control plane if needed, check generated files, run every test.
	KUBEBUILDER_ASSETS="$$(ENVTEST_K8S_VERSION=$(ENVTEST_K8S_VERSION) hack/controlplane/build.sh)" \
		$(GO) test -race -count=1 $(TESTFLAGS) ./...

.PHONY: bench
bench: ## Run the benchmarks (see BENCHMARKS.md for the figures).
	$(GO) test -run '^$$' -bench . -benchmem ./...

##@ Build and run

.PHONY: build
build: ## Build bin/offerfeed.
	CGO_ENABLED=0 $(GO) build -trimpath -o bin/offerfeed .

.PHONY: run
run: manifests generate ## Run the manager against the cluster of the current kubeconfig.
	$(GO) run . manager --leader-elect=false

.PHONY: demo
demo: controlplane build ## Run the demo market on an embedded control plane.
	bin/offerfeed demo $(DEMOFLAGS)

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
