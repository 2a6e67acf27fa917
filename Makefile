# kube-vpp: `make demo` runs the agent on the example cluster against the VPP
# simulator; `make test` runs every test with the race detector.

SHELL   := /bin/bash
GO      ?= go
BIN     := bin
BINARIES := kube-vpp-agent kube-vppctl vppsim kube-vpp-cni

.PHONY: all build test test-deps demo vet bench clean

all: build

build:
	@mkdir -p $(BIN)
	$(GO) build -o $(BIN)/ $(addprefix ./cmd/,$(BINARIES))

vet:
	$(GO) vet ./...

# test-deps installs what the tests need on a fresh Debian machine (as root).
test-deps:
	@./tests/install-deps.sh

test: test-deps vet
	$(GO) test -race -count=1 -timeout 15m ./...

# bench prints figures; it never fails on timing. The end-to-end ones
# (BGP, CNI, services: TestBenchServicesProxy and TestBenchServicesAgent)
# are gated by KUBE_VPP_BENCH; BGP and CNI need root, BGP also FRR (make test-deps).
bench: test-deps
	$(GO) test -run '^$$' -bench . -benchmem ./...
	set -o pipefail; KUBE_VPP_BENCH=1 $(GO) test -count=1 -v -timeout 20m -run '^TestBench' ./tests/ | grep -E 'BENCH|^(---|ok|FAIL)'


demo: build
	@./examples/demo.sh

clean:
	rm -rf $(BIN) .demo
