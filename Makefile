# warren's Makefile. `make help` lists the targets.
SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
.DELETE_ON_ERROR:
MAKEFLAGS += --warn-undefined-variables --no-builtin-rules
.DEFAULT_GOAL := help

# Pinned tools, built from the Go module proxy into .tmp/bin.
BIN := $(CURDIR)/.tmp/bin
export PATH := $(BIN):$(PATH)
export GOBIN := $(BIN)
BUF_VERSION := v1.75.0
PROTOC_GEN_GO_VERSION := v1.36.12
PROTOC_GEN_GO_GRPC_VERSION := v1.6.2
GRPCURL_VERSION := v1.9.4
STATICCHECK_VERSION := v0.8.2

# make run passes ARGS to warren dev, and LISTEN as its --listen:
# make run ARGS='--listen 127.0.0.1:6000 --log-level debug'. Unset, warren
# dev's defaults (and WARREN_<FLAG> variables) apply.
LISTEN ?=
ARGS ?=

.PHONY: help
help: ## Describe the targets
	@grep -hE '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "  %-14s %s\n", $$1, $$2}'

.PHONY: run
run: ## Run the gateway and its workers in one process against the local broker; ARGS='--listen HOST:PORT ...' are warren dev's flags
	scripts/ensure-broker.sh
	go build -o bin/warren ./cmd/warren
	exec bin/warren dev $(if $(LISTEN),--listen $(LISTEN)) $(ARGS)

.PHONY: test
test: ## Set up a broker if needed, check generated code and lint, run every test with -race
	scripts/ensure-broker.sh
	scripts/ensure-pika.sh
	scripts/ensure-amqplib.sh
	$(MAKE) --no-print-directory checkgenerate lint
	CI=$${CI:-1} go test -race -count=1 -timeout 20m ./...

# What make generate writes, and checkgenerate checks.
GENERATED := gen examples/inventory/gen cmd/warrenbench/bench/gen

.PHONY: generate
generate: $(BIN)/buf $(BIN)/protoc-gen-go $(BIN)/protoc-gen-go-grpc ## Regenerate gen/ from proto/, and the example's and the bench's
	rm -rf $(GENERATED)
	buf generate
	buf generate --template examples/inventory/buf.gen.yaml
	buf generate --template cmd/warrenbench/bench/buf.gen.yaml

.PHONY: checkgenerate
checkgenerate: generate ## Fail if gen/ differs from what proto/ generates
	@if [ -n "$$(git status --porcelain -- $(GENERATED))" ]; then \
		echo "generated code is out of date: run make generate and commit"; git status --porcelain -- $(GENERATED); exit 1; fi

.PHONY: lint
lint: $(BIN)/buf $(BIN)/staticcheck ## buf lint and breaking (against main), gofmt, go vet, staticcheck, no binary or >1 MiB file tracked
	scripts/check-tree.sh
	buf lint
	scripts/buf-breaking.sh
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	go vet ./...
	staticcheck ./...

.PHONY: bench
bench: ## Benchmarks against raw amqp091-go baselines measured in the same run
	scripts/ensure-broker.sh
	mkdir -p .tmp
	go run ./cmd/warrenbench -procs 1,0 -compare-coalescing -compare-stream-workers -cpuprofile .tmp/gateway.cpu.prof -taskprofile .tmp/task.cpu.prof
	@echo; echo "Where the bench process's CPU goes, gateway answering Fibonacci at c=64:"
	@scripts/profile-summary.sh .tmp/gateway.cpu.prof
	@echo; echo "... and answering SubmitTask at c=64:"
	@scripts/profile-summary.sh .tmp/task.cpu.prof
	@echo; echo "LogService: deliveries to N streams (next to one raw queue per subscriber), emits next to raw amqp091-go,"
	@echo "EmitLog p99 under 1,000 subscriptions/s of churn, and a warren gateway process's RSS per idle stream, same run:"
	go test -run '^$$' -bench . -benchtime 1x ./logsvc/ | grep -E 'bench_test|^Benchmark|^ok'
	@echo; echo "A subscribe route's idle streams (the inventory example's WatchLevels): goroutine stack per stream, both ends:"
	go test -run '^$$' -bench IdleSubscribeStreams -benchtime 1x ./route/ | grep -E 'bench_test|^Benchmark|^ok'

.PHONY: tools
tools: $(BIN)/buf $(BIN)/protoc-gen-go $(BIN)/protoc-gen-go-grpc $(BIN)/grpcurl ## Install the pinned tools into .tmp/bin

$(BIN)/buf:
	go install github.com/bufbuild/buf/cmd/buf@$(BUF_VERSION)
$(BIN)/protoc-gen-go:
	go install google.golang.org/protobuf/cmd/protoc-gen-go@$(PROTOC_GEN_GO_VERSION)
$(BIN)/protoc-gen-go-grpc:
	go install google.golang.org/grpc/cmd/protoc-gen-go-grpc@$(PROTOC_GEN_GO_GRPC_VERSION)
$(BIN)/grpcurl:
	go install github.com/fullstorydev/grpcurl/cmd/grpcurl@$(GRPCURL_VERSION)
$(BIN)/staticcheck:
	go install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION)

.PHONY: build
build: ## Build bin/warren
	go build -o bin/warren ./cmd/warren
