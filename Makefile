# Cairn's build. `make help` lists the targets. Every target that needs Debian packages or Go
# modules installs them first (tools/deps/install.sh is idempotent).

GO        ?= go
BIN       := $(CURDIR)/bin
VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
# -w: no DWARF, as distributions ship their binaries (a fifth of each; stack traces, perf's
# symbols and `go version -m` do not need it, a source-level debugger does).
LDFLAGS   := -w -X github.com/cairn-os/cairn/runtime/cli.Version=$(VERSION)
CMDS      := $(sort $(dir $(wildcard */cmd/*/main.go)))
# Programs that run in the initramfs or alone in an example ACI, where there is no dynamic loader: always static.
STATIC_CMDS := image/cmd/cairn-init/ installer/cmd/cairn-firstboot/ image/cmd/cairn-hello/
# seccomp: libcontainer applies seccomp filters through libseccomp (cgo).
GOTAGS    ?= seccomp
GOFLAGS_TAGS := -tags '$(GOTAGS)'
# A hung test fails by this; the whole suite takes far less (README, Tests).
TEST_TIMEOUT ?= 40m
# Kubernetes' e2e node conformance run: its suite is bounded at 4 h (kube/conformance).
CONFORMANCE_TIMEOUT ?= 5h
# The Kubernetes nodes' e2e test bounds itself 5 minutes before this (e2e/README.md).
E2E_KUBE_TIMEOUT ?= 60m
# golangci-lint, pinned, built once with go install into a cache outside the tree.
GOLANGCI_LINT_VERSION := v2.15.0
TOOLS_CACHE ?= $(or $(XDG_CACHE_HOME),$(HOME)/.cache)/cairn-tools
GOLANGCI_LINT := $(TOOLS_CACHE)/golangci-lint-$(GOLANGCI_LINT_VERSION)/golangci-lint

.DEFAULT_GOAL := help
.PHONY: help deps build test unit conformance e2e-kube demo bench image lint clean

help: ## list the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-z0-9-]+:.*## / {printf "  %-12s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

deps: ## install Debian packages and Go modules the build and tests need (idempotent)
	@tools/deps/install.sh

build: deps ## build every binary into bin/
	@mkdir -p $(BIN)
	$(GO) build $(GOFLAGS_TAGS) -ldflags '$(LDFLAGS)' -o $(BIN)/ $(addprefix ./,$(filter-out $(STATIC_CMDS),$(CMDS)))
	CGO_ENABLED=0 $(GO) build -ldflags '$(LDFLAGS)' -o $(BIN)/ $(addprefix ./,$(STATIC_CMDS))

test: build lint ## run all tests: lint, unit, root tier (as root), VM tier (when qemu is there)
	CAIRN_BIN=$(BIN) $(GO) test $(GOFLAGS_TAGS) -count=1 -timeout $(TEST_TIMEOUT) ./...

unit: deps ## run only the unit tests (no root needed, no prerequisites; -short skips the other tiers even as root)
	$(GO) test $(GOFLAGS_TAGS) -count=1 -short ./...

conformance: build ## run Kubernetes' e2e node conformance specs against a two-node kubeadm cluster on rktlet (as root; reports in _output/conformance)
	CAIRN_CONFORMANCE=1 CAIRN_CONFORMANCE_DIR=$(CURDIR)/_output/conformance CAIRN_BIN=$(BIN) \
		$(GO) test $(GOFLAGS_TAGS) -count=1 -timeout $(CONFORMANCE_TIMEOUT) -run '^TestConformance$$' -v ./kube/conformance/

e2e-kube: build ## boot two Cairn VMs with the Kubernetes extension as nodes of a kubeadm cluster and roll an OS update through them with drains (as root, qemu; apart from make test)
	CAIRN_E2E_KUBE=1 CAIRN_BIN=$(BIN) $(GO) test $(GOFLAGS_TAGS) -count=1 -timeout $(E2E_KUBE_TIMEOUT) -run '^TestKubernetesNodes$$' -v ./e2e/

demo: build ## two Cairn releases (cached) booted in qemu as Kubernetes nodes: pods across hosts, a Service, an update rolled out from the console with drains (its URL and login printed)
	$(BIN)/cairn-demo -o _output/demo -bin $(BIN)

image: build ## build the OS: disk, qcow2, PXE pair, signed payload into _output/image
	rm -rf _output/image
	$(BIN)/cairn-image build -o _output/image

bench: build ## run the benchmarks against their peers and print the ratios
	@tools/bench.sh

lint: deps $(GOLANGCI_LINT) ## gofmt, go vet, golangci-lint (.golangci.yml: errcheck, staticcheck, layering...), no binary links testing
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); exit 1; }
	$(GO) vet $(GOFLAGS_TAGS) ./...
	$(GOLANGCI_LINT) run --allow-parallel-runners ./...
	@for d in $(CMDS); do \
		if $(GO) list $(GOFLAGS_TAGS) -deps ./$$d | grep -qx testing; then echo "lint: $$d links package testing (test helpers belong in test-only packages)"; exit 1; fi; \
	done

$(GOLANGCI_LINT):
	GOBIN=$(dir $@) $(GO) install github.com/golangci/golangci-lint/v2/cmd/golangci-lint@$(GOLANGCI_LINT_VERSION)

clean: ## remove build output
	rm -rf $(BIN) _output
