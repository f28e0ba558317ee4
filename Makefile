# raibid-ci — run `make help` for the targets.
export GOTOOLCHAIN := local
GO ?= go
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -s -w -X github.com/raibid-labs/raibid-ci/internal/cli.Version=$(VERSION)

.PHONY: help deps build cross run test test-cluster test-node test-forge cluster-bins node-bins forge-bins bench bench-cache bench-scale soak fuzz lint

help: ## list the targets
	@grep -E '^[a-z-]+:.*##' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-8s %s\n", $$1, $$2}'

build: ## build bin/raibid (stripped)
	@[ -x bin/raibid ] || echo "building bin/raibid: the first build downloads and compiles raibid's dependencies (about 8 minutes on 2 cores; later builds take seconds)"
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/raibid ./cmd/raibid

cross: ## check the release build for the DGX Spark (linux/arm64)
	GOOS=linux GOARCH=arm64 CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o /dev/null ./cmd/raibid

run: build ## build and run `raibid up` (server + Redis + agents on this machine)
	./bin/raibid up

deps: ## install what the tests need when missing (redis-server, git, tmux, sccache, chromium, bubblewrap, python3-pytest, node)
	scripts/deps

test: deps ## the whole test suite with the race detector, against real redis-server and git
	$(GO) test -race -count=1 ./...

cluster-bins: ## build etcd, kube-apiserver, kube-controller-manager and the KEDA operator from their Go modules into .cluster/
	test/cluster/build

test-cluster: deps cluster-bins ## the deploy tree, the Kubernetes executor and KEDA against a real control plane (test/cluster)
	$(GO) test -tags cluster -count=1 -v -timeout 30m ./test/cluster/

node-bins: ## build kubelet, kube-scheduler and containerd from their Go modules into ~/.cache/raibid/node (once per version)
	test/cluster/build node

test-node: deps cluster-bins node-bins ## the tree's agent ScaledJob on a real node: KEDA, kube-scheduler, kubelet, containerd, runc, CNI (test/cluster, as root)
	$(GO) test -tags 'cluster node' -count=1 -v -timeout 20m -run 'OnARealNode' ./test/cluster/

forge-bins: ## build Gitea 1.27.3 from its Go module into ~/.cache/raibid/forge (once per version)
	test/forge/build

test-forge: deps forge-bins ## raibid against a real Gitea: webhooks, private clones, matrix statuses, statuses across an outage and a restart (test/forge)
	$(GO) test -tags forge -count=1 -v -timeout 20m ./test/forge/

bench: ## benchmarks that print figures
	scripts/bench

bench-scale: ## reads and ingest at 10k, 100k and 1M jobs (RAIBID_SCALE=10000,100000 for less)
	$(GO) test -run '^$$' -bench BenchmarkScale -benchtime 1x -timeout 60m ./internal/server/

soak: ## raibid up under a steady trickle of jobs, RSS sampled (RAIBID_SOAK=30m by default)
	$(GO) test -run '^$$' -bench BenchmarkSoak -benchtime 1x -timeout 90m ./e2e/

bench-cache: ## build-cache benchmark: a 32-crate offline workspace, cold then warm
	scripts/bench-cache

fuzz: ## run each fuzz target for 30 s
	$(GO) test -run '^$$' -fuzz FuzzParsePush -fuzztime 30s ./internal/forge/gitea
	$(GO) test -run '^$$' -fuzz FuzzSignature -fuzztime 30s ./internal/forge/gitea
	$(GO) test -run '^$$' -fuzz FuzzParsePush -fuzztime 30s ./internal/forge/github
	$(GO) test -run '^$$' -fuzz FuzzParse -fuzztime 30s ./internal/mirror
	$(GO) test -run '^$$' -fuzz FuzzANSIToHTML -fuzztime 30s ./internal/web

# staticcheck, pinned: go run builds it once per version into Go's cache.
STATICCHECK = honnef.co/go/tools/cmd/staticcheck@v0.8.2

lint: ## gofmt, go vet, staticcheck and the package boundaries, third-party imports included (internal/archtest)
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || (gofmt -l $$(git ls-files '*.go'); exit 1)
	$(GO) vet ./...
	$(GO) vet -tags cluster ./test/cluster/
	$(GO) vet -tags 'cluster node' ./test/cluster/
	$(GO) vet -tags forge ./test/forge/
	$(GO) run $(STATICCHECK) ./...
	$(GO) run $(STATICCHECK) -tags cluster,node ./test/cluster/
	$(GO) run $(STATICCHECK) -tags forge ./test/forge/
	$(GO) test -count=1 ./internal/archtest/
