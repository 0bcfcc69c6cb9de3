# offerfeed — make help lists the targets.

# The Kubernetes version of the envtest control plane: written once, in hack/controlplane/kube/go.mod.
ENVTEST_K8S_VERSION := $(shell hack/controlplane/k8s-version.sh)
# The release version: the chart's version, and with a "v" the image tag and the chart's
# appVersion (test/helm checks Chart.yaml against it).
VERSION ?= $(shell cat VERSION)
IMG ?= offerfeed:latest
GO ?= go
# Tools live in modules of their own, so that their dependencies stay out of go.mod (and out of the
# module graph of whoever imports api/, offerfeedtest or pkg/gatewayconfig): hack/gen for the
# generators, hack/lint for the linters. `go tool -modfile` builds them on first use (then cached).
CONTROLLER_GEN ?= $(GO) tool -modfile=$(CURDIR)/hack/gen/go.mod controller-gen
KUSTOMIZE ?= $(GO) tool -modfile=$(CURDIR)/hack/gen/go.mod kustomize
GOLANGCI_LINT ?= $(GO) tool -modfile=$(CURDIR)/hack/lint/go.mod golangci-lint
# golangci-lint built with the kube-api-linter (KAL) module plugin, for api/ (.golangci-kal.yml).
GOLANGCI_KAL ?= $(GO) tool -modfile=$(CURDIR)/hack/lint/go.mod golangci-lint-kube-api-linter
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
	$(CONTROLLER_GEN) rbac:roleName=manager-role crd webhook paths="./..." \
		output:crd:artifacts:config=config/crd/bases \
		output:rbac:artifacts:config=config/rbac \
		output:webhook:artifacts:config=config/webhook
	@# The Helm chart reads copies of the generated CRD, ClusterRole and webhook, and of the gateways' access (charts/offerfeed/files/README.md).
	cp config/crd/bases/offerfeed.dev_offerfeedpolicies.yaml charts/offerfeed/files/crd/
	cp config/rbac/role.yaml charts/offerfeed/files/rbac/
	cp config/webhook/manifests.yaml charts/offerfeed/files/webhook/
	cp config/gatewayaccess/role.yaml config/gatewayaccess/admission_policy.yaml config/gatewayaccess/admission_policy_binding.yaml charts/offerfeed/files/gatewayaccess/

.PHONY: generate
generate: ## Generate deepcopy code, the gateway config rules (from the CRD), JSON Schema, K8s version and the PrometheusRule.
	$(CONTROLLER_GEN) object:headerFile="hack/boilerplate.go.txt" paths="./api/..."
	$(GO) run ./hack/gatewayrules > pkg/gatewayconfig/zz_generated.rules.go.tmp
	mv pkg/gatewayconfig/zz_generated.rules.go.tmp pkg/gatewayconfig/zz_generated.rules.go
	$(GO) run ./hack/k8sversion > internal/testenv/zz_generated.version.go.tmp
	mv internal/testenv/zz_generated.version.go.tmp internal/testenv/zz_generated.version.go
	$(GO) run ./hack/jsonschema > config/gateway/config.schema.json.tmp
	mv config/gateway/config.schema.json.tmp config/gateway/config.schema.json
	$(GO) run ./hack/prometheusrule > config/prometheus/prometheusrule.yaml.tmp
	mv config/prometheus/prometheusrule.yaml.tmp config/prometheus/prometheusrule.yaml

# What manifests and generate write.
GENERATED := config api charts pkg/gatewayconfig/zz_generated.rules.go internal/testenv/zz_generated.version.go

.PHONY: verify-gen
verify-gen: manifests generate ## Fail when generated files differ from what is committed.
	@if [ -n "$$(git status --porcelain -- $(GENERATED))" ]; then \
		echo "generated files differ from the commit; run 'make manifests generate' and commit:"; \
		git status --porcelain -- $(GENERATED); git diff -- $(GENERATED) | head -40; exit 1; fi
	@echo "generated files are up to date"

.PHONY: fmt
fmt: ## Format the Go code.
	gofmt -l -w $$(git ls-files '*.go')

# Modules of their own, outside ./... (their dependencies stay out of go.mod): the Helm chart's
# tests (Helm's SDK) and the image builder (go-containerregistry).
SUBMODULES ?= test/helm hack/image

.PHONY: vet
vet: ## Run go vet.
	$(GO) vet ./...
	for m in $(SUBMODULES); do $(GO) -C $$m vet ./... || exit 1; done

.PHONY: lint
lint: vet lint-go lint-api ## Check formatting, vet, golangci-lint (.golangci.yml) and kube-api-linter on api/ (.golangci-kal.yml).
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "not gofmt-formatted:"; echo "$$out"; exit 1; fi

.PHONY: lint-go
lint-go: ## Run golangci-lint (.golangci.yml) over the main module and SUBMODULES.
	$(GOLANGCI_LINT) run ./...
	for m in $(SUBMODULES); do (cd $$m && $(GOLANGCI_LINT) run --config $(CURDIR)/.golangci.yml ./...) || exit 1; done

.PHONY: lint-api
lint-api: ## Run kube-api-linter (KAL) on the API types (.golangci-kal.yml).
	$(GOLANGCI_KAL) run --config .golangci-kal.yml ./api/...

.PHONY: controlplane
controlplane: ## Build kube-apiserver, etcd and kubectl from Go modules for envtest (skips what exists).
	ENVTEST_K8S_VERSION=$(ENVTEST_K8S_VERSION) hack/controlplane/build.sh

.PHONY: mutation
mutation: ## Check that the gateway and render tests catch deliberate bugs in their decision code (hack/mutation).
	OFFERFEED_REDIS_SERVER="$$(hack/redis/find.sh)" && export OFFERFEED_REDIS_SERVER && $(GO) run ./hack/mutation

# promtool comes from the Prometheus module, pinned in the tools module hack/tools so that
# offerfeed's go.mod does not take in the Prometheus server's dependencies.
PROMTOOL ?= $(GO) tool -modfile=$(CURDIR)/hack/tools/go.mod promtool

.PHONY: test-rules
test-rules: ## Check the alerting rules and run their unit tests with promtool.
	$(PROMTOOL) check rules config/prometheus/offerfeed.rules.yaml
	cd config/prometheus && $(PROMTOOL) test rules offerfeed.rules.test.yaml

.PHONY: test
test: lint verify-gen test-rules mutation ## Build the control plane and find a Redis server if needed, check generated files, run every test (and those of SUBMODULES) and the mutation check.
	KUBEBUILDER_ASSETS="$$(ENVTEST_K8S_VERSION=$(ENVTEST_K8S_VERSION) hack/controlplane/build.sh)" && export KUBEBUILDER_ASSETS && \
		OFFERFEED_REDIS_SERVER="$$(hack/redis/find.sh)" && export OFFERFEED_REDIS_SERVER && \
		$(GO) test -race -count=1 $(TESTFLAGS) ./... && \
		for m in $(SUBMODULES); do $(GO) -C $$m test -count=1 $(TESTFLAGS) ./... || exit 1; done

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
demo: controlplane build-demo ## Run the demo market on an embedded control plane (DEMOFLAGS: its flags; --replicas finds or installs a Redis server).
	@if printf ' %s ' '$(DEMOFLAGS)' | grep -Eq -- ' --?replicas[ =]'; then \
		r="$$(hack/redis/find.sh)" || exit 1; export OFFERFEED_REDIS_SERVER="$$r"; \
	fi; \
	echo bin/offerfeed-demo $(DEMOFLAGS); bin/offerfeed-demo $(DEMOFLAGS)

##@ Release

IMAGE_REPO ?= offerfeed
IMAGE_PLATFORMS ?= linux/amd64,linux/arm64
# IMAGE_PUSH=registry.example.com/offerfeed:v0.1.0 pushes the image (credentials of ~/.docker/config.json).
IMAGE_PUSH ?=
# Reproducible images: the files' and the image's time is the last commit's.
SOURCE_DATE_EPOCH ?= $(shell git log -1 --format=%ct 2>/dev/null || echo 0)
CA_CERTS ?= $(wildcard /etc/ssl/certs/ca-certificates.crt)

.PHONY: image
image: ## Build the OCI image without Docker: dist/oci (OCI layout, IMAGE_PLATFORMS) and dist/offerfeed-vVERSION.tar.
	rm -rf dist/bin dist/oci
	bins=; for p in $$(echo $(IMAGE_PLATFORMS) | tr , ' '); do \
		os=$${p%/*}; arch=$${p#*/}; \
		CGO_ENABLED=0 GOOS=$$os GOARCH=$$arch $(GO) build -trimpath -ldflags='-s -w' -o dist/bin/$${os}_$$arch/offerfeed . || exit 1; \
		bins="$$bins -binary $$p=$(CURDIR)/dist/bin/$${os}_$$arch/offerfeed"; \
	done; \
	$(GO) -C hack/image run . $$bins -repository $(IMAGE_REPO) -version v$(VERSION) \
		-revision "$$(git rev-parse HEAD 2>/dev/null)" -created $(SOURCE_DATE_EPOCH) \
		$(if $(CA_CERTS),-ca-certs $(CA_CERTS)) -layout $(CURDIR)/dist/oci \
		-tarball $(CURDIR)/dist/offerfeed-v$(VERSION).tar $(if $(IMAGE_PUSH),-push $(IMAGE_PUSH))

.PHONY: helm-lint
helm-lint: ## Lint the Helm chart (helm lint --strict, with Helm's Go SDK).
	$(GO) -C test/helm run ./cmd/chart lint $(CURDIR)/charts/offerfeed

.PHONY: helm-package
helm-package: ## Package the Helm chart as dist/offerfeed-VERSION.tgz (helm package, with Helm's Go SDK).
	$(GO) -C test/helm run ./cmd/chart package $(CURDIR)/charts/offerfeed $(CURDIR)/dist

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
	cd config/manager && $(KUSTOMIZE) edit set image offerfeed=$(IMG)
	$(KUSTOMIZE) build config/default > dist/install.yaml

##@ Deployment

.PHONY: install
install: ## Install the CRDs into the cluster of the current kubeconfig.
	$(KUSTOMIZE) build config/crd | kubectl apply --server-side -f -

.PHONY: uninstall
uninstall: ## Remove the CRDs (and every policy) from the cluster.
	$(KUSTOMIZE) build config/crd | kubectl delete --ignore-not-found -f -

.PHONY: deploy
deploy: ## Deploy offerfeed (config/default, needs cert-manager) with image IMG.
	cd config/manager && $(KUSTOMIZE) edit set image offerfeed=$(IMG)
	$(KUSTOMIZE) build config/default | kubectl apply --server-side -f -

.PHONY: undeploy
undeploy: ## Remove offerfeed from the cluster.
	$(KUSTOMIZE) build config/default | kubectl delete --ignore-not-found -f -

.PHONY: deploy-no-certmanager
deploy-no-certmanager: ## Deploy without cert-manager (create the webhook Secret first: docs/install.md).
	cd config/manager && $(KUSTOMIZE) edit set image offerfeed=$(IMG)
	$(KUSTOMIZE) build config/default-no-certmanager | kubectl apply --server-side -f -

.PHONY: undeploy-no-certmanager
undeploy-no-certmanager: ## Remove an install made with deploy-no-certmanager.
	$(KUSTOMIZE) build config/default-no-certmanager | kubectl delete --ignore-not-found -f -
