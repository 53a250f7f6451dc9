# Portcullis — build, run and test. `make help` lists the targets.
SHELL        := /bin/bash
GO           ?= go
BIN          ?= bin/portcullis
VERSION      ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS      := -s -w -X main.version=$(VERSION)
FUZZTIME     ?= 20s
CONFIG       ?= examples/portcullis.yaml

.PHONY: help build run dev test unit vet lint fuzz fuzz-long e2e bench bench-peers image k8s-test clean

help: ## list the targets
	@grep -E '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-10s %s\n", $$1, $$2}'

build: ## build the static binary into bin/ (the same one the Dockerfile builds)
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/portcullis

dev: ## run the local playground (embedded development issuer, example rules, printed tokens)
	$(GO) run ./cmd/portcullis dev

run: build ## run `portcullis serve` with CONFIG (default examples/portcullis.yaml)
	$(BIN) serve --config $(CONFIG)

test: vet unit fuzz e2e ## ALL tests: vet, unit tests with -race, short fuzzing, end-to-end (real Envoy + Keycloak)

unit: ## unit and in-process integration tests, with the race detector (the product, examples/policy_test.yaml included, then the k8s/ module); grpcurl (pinned, scripts/install-grpcurl.sh) for the test of `dev`'s printed commands
	PATH="$$(bash scripts/install-grpcurl.sh):$$PATH" $(GO) test -race -count=1 ./...
	$(GO) -C k8s test -race -count=1 ./...

vet: ## gofmt and go vet (the product and the k8s/ module)
	@unformatted=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$unformatted" ]; then echo "gofmt needed:"; echo "$$unformatted"; exit 1; fi
	$(GO) vet ./...
	$(GO) vet -tags e2e ./e2e/
	$(GO) -C k8s vet ./...

lint: vet ## alias of vet

fuzz: ## run every fuzz target for FUZZTIME (default 20s) each (scripts/fuzz.sh)
	GO=$(GO) FUZZTIME=$(FUZZTIME) bash scripts/fuzz.sh

fuzz-long: ## every fuzz target for 10 minutes each
	$(MAKE) fuzz FUZZTIME=10m

e2e: ## end-to-end suite: installs and starts a real Envoy and Keycloak on loopback
	bash scripts/e2e.sh

bench: ## hot-path Go benchmarks (-count 6, compare runs with benchstat) and the A/B gRPC load benchmarks
	$(GO) test -run '^$$' -bench . -benchmem -count 6 ./authz/ ./rules/ ./token/ ./jwks/ | tee bench.out
	$(GO) run ./bench/loadbench -rounds 10 -round 5s -cache 10000 | tee loadbench-cached.out
	$(GO) run ./bench/loadbench -rounds 6 -round 5s -cache 0 | tee loadbench-uncached.out
	$(GO) run ./bench/loadbench -rounds 6 -round 3s -when | tee loadbench-when.out

PEERS_FLAGS ?= -rounds 5 -slice 3s -variants
bench-peers: ## Portcullis against jwt_authn + RBAC, OPA-Envoy and a do-nothing server through a real Envoy, then CPU profiles of each server (bin/portcullis-bench: -tags benchprofile); rewrites its BENCHMARKS.md section (minutes; not part of test)
	CGO_ENABLED=0 $(GO) build -trimpath -tags benchprofile -ldflags '$(LDFLAGS)' -o bin/portcullis-bench ./cmd/portcullis
	envoy=$$(bash scripts/install-envoy.sh) && opa=$$(bash scripts/install-opa-envoy.sh) && \
	$(GO) run ./bench/peers -envoy "$$envoy" -opa "$$opa" -portcullis bin/portcullis-bench -profile-dir bin/bench-peers-profiles $(PEERS_FLAGS) -markdown BENCHMARKS.md | tee bench-peers.out

image: ## build the container image (needs a container engine)
	docker build --build-arg VERSION=$(VERSION) -t portcullis:$(VERSION) .

k8s-test: ## render and check the Kubernetes/Istio manifests, dashboard and alerts offline (no cluster; module k8s/)
	$(GO) -C k8s test -count=1 ./...

clean:
	rm -rf bin bench.out loadbench-*.out bench-peers.out
