# Thin on purpose: anything longer than two lines of recipe is a Go program
# (see deploy/cmd/devstack). `make` alone lists the targets.
.DEFAULT_GOAL := help
GO ?= go
FUZZTIME ?= 5s

# What `make build` puts in bin/ (make help lists them; so does the README).
BINARIES := proxy/cmd/loom bench/cmd/mockupstream otelcol/cmd/otelcol-loom deploy/cmd/devstack bench/cmd/loombench

.PHONY: help build run clean test fuzz test-faults soak bench bench-quick lint dashboards

help: ## List the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-z][a-z-]*:.*## / {printf "  make %-12s %s\n", $$1, $$2}' $(MAKEFILE_LIST)
	@echo "  bin/: $(notdir $(BINARIES)) (make build); bin/devstack -h lists make run's flags"

build: ## Build every binary into bin/ (listed below)
	$(GO) build -o bin/ $(addprefix ./,$(BINARIES))

run: build ## Start Loom and a demo key in front of the mock (or OpenAI if OPENAI_API_KEY is set); state in .loom/; installs PostgreSQL if missing (as root)
	./bin/devstack

clean: ## Remove everything make run made: .loom/ and its Postgres cluster, wherever it lives (stop make run first)
	$(GO) run ./deploy/cmd/devstack -clean

# The deployment checks render the Helm chart and parse compose and the
# Dockerfiles: no goroutines of Loom's run there, and building Helm's
# client-go, compose-go and BuildKit a second time with -race would add
# minutes of compiling on a 2-core machine for nothing. They run without it.
NORACE := /deploy/(helm|compose|docker)$$
NORACE_PKGS := ./deploy/helm ./deploy/compose ./deploy/docker

test: build ## Install what the tests use if missing (as root; else say what skips), go vet, every test (-race; budgets again without), every fuzz target briefly
	$(GO) run ./deploy/cmd/prereqs
	$(GO) vet ./...
	$(GO) test -race -count=1 -timeout 20m $$($(GO) list ./... | grep -v -E '$(NORACE)') && $(GO) test -count=1 $(NORACE_PKGS) && $(GO) test -count=1 -run 'WithinBudget$$' ./proxy/server && $(MAKE) --no-print-directory fuzz

fuzz: ## Every fuzz target in the module for FUZZTIME each (default 5s); prints execs/s, keeps crashers in testdata/fuzz
	$(GO) run ./deploy/cmd/fuzzall -fuzztime $(FUZZTIME)

# test-faults: full is the issue's 100,000 calls (~5 min, CI runs it); short is 10,000 (~3 min).
PROFILE ?= full
test-faults: ## The fault suite: kills and restarts under mixed load against the real stack (PROFILE=full|short)
	LOOM_FAULTS=$(PROFILE) $(GO) test -count=1 -v -timeout 45m -run '^TestFaults$$' ./otelcol/faults

SOAK_DURATION ?= 30m
SOAK_RPS ?= 1000
soak: ## SOAK_DURATION at SOAK_RPS mixed calls; asserts Loom's memory, goroutines, files and spool stay flat; report in bench/results/soak/
	LOOM_SOAK=$(SOAK_DURATION) LOOM_SOAK_RPS=$(SOAK_RPS) LOOM_SOAK_OUT=$(CURDIR)/bench/results/soak $(GO) test -count=1 -v -timeout 0 -run '^TestSoak$$' ./otelcol/faults

bench: build ## Hot-path Go benchmarks (benchstat format), then the full end-to-end overhead run with gates
	$(GO) test -run '^$$' -bench . -benchmem ./proxy/... ./otelcol/postgresexporter
	./bin/loombench -mode full

bench-quick: build ## The end-to-end overhead run in about a minute, with gates; report in bench/results/
	./bin/loombench -mode quick

lint: ## go.mod tidy, then golangci-lint (pinned; installed into bin/ on first use): gofmt, vet, errorlint, one JSON door
	GO=$(GO) ./deploy/lint.sh

dashboards: ## Regenerate the Grafana dashboards (dashboards/grafana/json) from dashboards/queries and dashboards/promql
	$(GO) run ./dashboards/cmd/gendashboards

.PHONY: bench-console
bench-console: ## Every console page over 1,000,000 spans seeded into a test Postgres, as the admin, a big and a small tenant: ms per page (mean, p50, max)
	$(GO) test -run '^$$' -v -bench 'BenchmarkConsolePages_1MSpans' -benchtime 10x -timeout 30m ./proxy/console
