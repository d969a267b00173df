# Payment-batch gateway. `make help` lists the targets.
SHELL := /bin/bash
# Build, test and lint with the toolchain go.mod names (its security fixes, e.g. net/http
# and crypto/tls in go1.26.9/10), fetched through the module proxy when the installed Go is
# older. Set GOTOOLCHAIN yourself to override.
export GOTOOLCHAIN ?= auto
.DEFAULT_GOAL := help

GATEWAY_ADDR ?= 127.0.0.1:8080
SIM_ADDR     ?= 127.0.0.1:9090
VERSION      ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
SEED_BATCH   := 6f1c2a9e-3b7d-4e58-9a41-0c2d8e7f5b13
GO_TEST_FLAGS ?= -race -shuffle=on -count=1 -timeout=15m
# A count of executions, not a duration: with a duration, Go 1.26's fuzzing coordinator can end a
# run that found nothing with "context deadline exceeded" when a worker is slow to stop on a
# loaded machine (golang/go#75804, fixed in Go 1.27; CI hit it in FuzzCursor). A count has no
# deadline to race.
FUZZ_TIME    ?= 100000x

SWAG_FLAGS := init --quiet --dir ./internal/httpapi,./api --generalInfo routes.go \
	--outputTypes go,json,yaml --packageName openapi

.PHONY: help
help: ## List the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-z-]+:.*## / {printf "  %-14s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

.PHONY: build
build: ## Build bin/gateway and bin/concursim
	CGO_ENABLED=0 go build -trimpath -ldflags "-X main.version=$(VERSION)" -o bin/gateway ./cmd/gateway
	CGO_ENABLED=0 go build -trimpath -o bin/concursim ./cmd/concursim

.PHONY: run
run: build ## Start the bundled Concur simulator and the gateway wired to it, with a development key
	@set -euo pipefail; \
	rand() { od -An -tx1 -N16 /dev/urandom | tr -d ' \n'; }; \
	export CONCURSIM_CLIENT_ID=gateway-dev CONCURSIM_CLIENT_SECRET=$$(rand) CONCURSIM_REFRESH_TOKEN=$$(rand); \
	minted=$$(bin/gateway mint-key dev batches:read batches:close batches:regenerate); \
	key=$$(sed -n 1p <<<"$$minted"); export GATEWAY_API_KEYS=$$(sed -n 2p <<<"$$minted"); \
	CONCURSIM_ADDR=$(SIM_ADDR) bin/concursim > bin/concursim.log 2>&1 & sim=$$!; \
	trap 'kill $$sim 2>/dev/null || true' EXIT INT TERM; \
	rm -rf bin/run-data; \
	echo "Concur simulator on http://$(SIM_ADDR) (log: bin/concursim.log)"; \
	echo; \
	echo "  Swagger UI:            http://$(GATEWAY_ADDR)/swagger/index.html  (Authorize: Bearer $$key)"; \
	echo "  Development API key:   $$key  (caller \"dev\", all scopes; minted for this run only)"; \
	echo "  Close a seeded batch:  curl -s -X POST -H 'Authorization: Bearer $$key' http://$(GATEWAY_ADDR)/batches/$(SEED_BATCH)/close"; \
	echo "  Download its file:     curl -s -H 'Authorization: Bearer $$key' http://$(GATEWAY_ADDR)/batches/$(SEED_BATCH)/file"; \
	echo; \
	GATEWAY_ADDR=$(GATEWAY_ADDR) LOG_FORMAT=$${LOG_FORMAT:-console} \
	CONCUR_BASE_URL=http://$(SIM_ADDR) CONCUR_CLIENT_ID=$$CONCURSIM_CLIENT_ID \
	CONCUR_CLIENT_SECRET=$$CONCURSIM_CLIENT_SECRET CONCUR_REFRESH_TOKEN=$$CONCURSIM_REFRESH_TOKEN \
	GATEWAY_DATA_DIR=bin/run-data bin/gateway

.PHONY: test
test: openapi-check ## Run every test with the race detector, check the committed spec and the deploy files, smoke-run the benchmarks
	@$(MAKE) --no-print-directory postgres-check
	go test $(GO_TEST_FLAGS) ./...
	@$(MAKE) --no-print-directory deploy-check
	@$(MAKE) --no-print-directory bench-smoke
	@$(MAKE) --no-print-directory postgres-check

# postgres-check says loudly when the PostgreSQL half of the tests will be skipped
# (GATEWAY_TEST_DATABASE_URL, default the local server; .ci/run makes it a failure).
.PHONY: postgres-check
postgres-check:
	@url="$${GATEWAY_TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}"; \
	hostport=$$(echo "$$url" | sed -E 's|^[a-z]+://([^@/]*@)?([^/?]+).*|\2|'); \
	host=$${hostport%:*}; port=$${hostport##*:}; [ "$$port" != "$$hostport" ] || port=5432; \
	if ! (exec 3<>"/dev/tcp/$$host/$$port") 2>/dev/null; then \
	  echo "************************************************************************"; \
	  echo "* PostgreSQL is not reachable at $$host:$$port: the PostgreSQL tests"; \
	  echo "* (store conformance suite, two replicas on one database) are SKIPPED."; \
	  echo "* Start it, or set GATEWAY_TEST_DATABASE_URL. CI always runs them."; \
	  echo "************************************************************************"; \
	else echo "PostgreSQL reachable at $$host:$$port: the PostgreSQL tests run"; fi

# gosec and govulncheck are pinned in a module file of their own, .ci/tools/go.mod: as tool
# lines in go.mod, gosec would pull its AI and cloud SDKs into our go.mod and go.sum. They run
# from here, so the packages they load are this module's.
TOOLS_MODFILE := .ci/tools/go.mod
# Test files are not scanned (gosec's default): they never ship. Every rule is on; a finding
# is fixed or carries `// #nosec Gxxx -- why`, and a #nosec without both is ignored.
GOSEC_FLAGS := -quiet -fmt=golint -exclude-generated -nosec-require-rules -nosec-require-justification
# The Go vulnerability database, offline and pinned: the OSV files (data/osv) of the module
# golang.org/x/vulndb, fetched through the module proxy and checked against VULNDB_SUM.
# `make vulndb-update` moves both to the newest; `make vulncheck VULNDB=https://vuln.go.dev`
# uses the live database where it is reachable.
VULNDB_VERSION := v0.0.0-20261105234957-e22db6528018
VULNDB_SUM     := h1:mfngRv0Yoh0VApsXKEN82CjD99kl7mtparN3bs3JnqI=
VULNDB ?=

.PHONY: lint
lint: ## gofmt, go vet, staticcheck, gosec, govulncheck and Spectral (OpenAPI + OWASP) on the spec
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	go vet ./...
	cd deploy && go vet ./...
	cd bench && go vet ./... && go tool -modfile=../go.mod staticcheck ./...
	go tool staticcheck ./...
	@$(MAKE) --no-print-directory --keep-going gosec vulncheck spectral

# The deploy files' checks are a module of their own, deploy/go.mod: compose-go, kustomize,
# k8s.io/api and Prometheus's rule parser never reach the service's go.mod. They build and
# start the real gateway and simulator from this repository (see deploy/doc.go).
.PHONY: deploy-check
deploy-check: ## Check the compose files, Kubernetes manifests, alerts and dashboard (deploy/)
	cd deploy && go test -count=1 -shuffle=on -timeout=5m ./...

# Spectral and the OWASP API security ruleset, pinned in deploy/spectral/package-lock.json,
# installed with npm ci (once per lockfile change) and run on the spec the gateway serves;
# part of make lint. No errors are allowed: what swag cannot express is switched off in
# deploy/spectral/.spectral.yaml, each override with its reason.
SPECTRAL_DIR := deploy/spectral
.PHONY: spectral
spectral: $(SPECTRAL_DIR)/node_modules/.installed ## Lint the served spec with Spectral's OpenAPI and OWASP API security rulesets
	$(SPECTRAL_DIR)/node_modules/.bin/spectral lint --quiet --fail-severity=error --display-only-failures \
	  --ruleset $(SPECTRAL_DIR)/.spectral.yaml openapi/swagger.json
	@echo "spectral: openapi/swagger.json has no errors (warnings: make spectral-report)"

.PHONY: spectral-report
spectral-report: $(SPECTRAL_DIR)/node_modules/.installed ## Every Spectral finding on the spec, warnings included
	$(SPECTRAL_DIR)/node_modules/.bin/spectral lint --fail-severity=error \
	  --ruleset $(SPECTRAL_DIR)/.spectral.yaml openapi/swagger.json

$(SPECTRAL_DIR)/node_modules/.installed: $(SPECTRAL_DIR)/package.json $(SPECTRAL_DIR)/package-lock.json
	@command -v npm >/dev/null || { echo "spectral: needs Node.js and npm (.ci/run installs them)"; exit 1; }
	cd $(SPECTRAL_DIR) && npm ci --no-audit --no-fund --ignore-scripts
	@touch $@

.PHONY: gosec
gosec: ## Security lint with gosec (test files excluded)
	go tool -modfile=$(TOOLS_MODFILE) gosec $(GOSEC_FLAGS) ./...

.PHONY: vulncheck
vulncheck: ## govulncheck against the pinned Go vulnerability database (offline)
	@set -euo pipefail; db="$(VULNDB)"; \
	if [ -z "$$db" ]; then \
	  json=$$(go mod download -json golang.org/x/vulndb@$(VULNDB_VERSION)) || { echo "$$json"; exit 1; }; \
	  field() { sed -n -E "s/^[[:space:]]*\"$$1\": \"(.*)\",?$$/\1/p" <<<"$$json"; }; \
	  if [ "$$(field Sum)" != "$(VULNDB_SUM)" ]; then \
	    echo "vulncheck: golang.org/x/vulndb@$(VULNDB_VERSION) has sum $$(field Sum), want $(VULNDB_SUM)"; exit 1; fi; \
	  osv="$$(field Dir)/data/osv"; \
	  n=$$(find "$$osv" -maxdepth 1 -name 'GO-*.json' 2>/dev/null | wc -l); \
	  if [ "$$n" -lt 1000 ]; then echo "vulncheck: only $$n OSV entries in $$osv: not the database"; exit 1; fi; \
	  echo "govulncheck: $$n entries of golang.org/x/vulndb@$(VULNDB_VERSION)"; \
	  db="file://$$osv"; \
	fi; \
	set -x; go tool -modfile=$(TOOLS_MODFILE) govulncheck -db "$$db" ./...

.PHONY: vulndb-update
vulndb-update: ## Pin the newest Go vulnerability database (VULNDB_VERSION, VULNDB_SUM)
	@set -euo pipefail; \
	json=$$(go mod download -json golang.org/x/vulndb@latest) || { echo "$$json"; exit 1; }; \
	field() { sed -n -E "s/^[[:space:]]*\"$$1\": \"(.*)\",?$$/\1/p" <<<"$$json"; }; \
	v=$$(field Version); s=$$(field Sum); [ -n "$$v" ] && [ -n "$$s" ] || { echo "$$json"; exit 1; }; \
	sed -i -E "s|^(VULNDB_VERSION :=).*|\1 $$v|; s|^(VULNDB_SUM     :=).*|\1 $$s|" Makefile; \
	echo "golang.org/x/vulndb pinned at $$v ($$s)"

.PHONY: openapi
openapi: ## Regenerate the OpenAPI spec in openapi/ from the swag annotations
	go tool swag $(SWAG_FLAGS) --output openapi

.PHONY: openapi-check
openapi-check: ## Fail when the committed spec differs from the annotations
	@tmp=$$(mktemp -d); trap 'rm -rf $$tmp' EXIT; \
	go tool swag $(SWAG_FLAGS) --output $$tmp >/dev/null && \
	if ! diff -ru openapi $$tmp; then echo "openapi/ is stale: run 'make openapi' and commit the result"; exit 1; fi; \
	echo "openapi/ matches the annotations"

.PHONY: soak
soak: ## Run the fault-injected model test of the close for longer (MODEL_RUNS sequences per store, default 500)
	MODEL_RUNS=$${MODEL_RUNS:-500} go test -race -count=1 -timeout=0 -run 'TestModel' -v ./internal/batch | grep -v '^=== '

.PHONY: fuzz
fuzz: ## Run every fuzz target for FUZZ_TIME executions each
	@set -e; for pkg in $$(go list ./...); do \
	  for f in $$(go test -list '^Fuzz' $$pkg | grep '^Fuzz' || true); do \
	    echo "== $$pkg $$f"; go test -run='^$$' -fuzz="^$$f$$" -fuzztime=$(FUZZ_TIME) $$pkg; \
	  done; \
	done

# The benchmarks that need more than the service does are a module of their own, bench/go.mod
# (vegeta, gonum/plot, benchstat never reach the service's go.mod): the load suite
# (bench/cmd/loadbench, built into bin/loadbench and run from here) writes
# bench/results/latest.{md,json,png}; the micro-benchmarks of both modules (the peak-heap ones
# of the batch list and the refresh are bench's) go to bench/results/micro.txt, summed up by
# benchstat, the commits' tail with and without their fsyncs (BenchmarkCloseCommits, BENCH_TAIL_N
# closes a run) by benchstat -col /sync; `loadbench report` then adds the batch list's and the tail's
# figures to latest.md, the table of every target. Nothing else is edited: the README links to
# bench/results/. BENCH_POSTGRES is the local PostgreSQL server of the PostgreSQL mode ("" to
# leave it out; unreachable, the report says it was skipped). `make bench` takes about 12
# minutes on 2 cores.
BENCH_COUNT ?= 6
# Every package but the end-to-end tests, which have no benchmark and build binaries first.
BENCH_PKGS   = $$(go list ./... | grep -v /internal/e2e)
BENCH_TIME  ?= 300ms
BENCH_TAIL_N ?= 3000
BENCH_POSTGRES ?= $(or $(GATEWAY_TEST_DATABASE_URL),postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable)

.PHONY: bench
bench: build bin/loadbench ## Load suite (simulator, bare and durable floors, gateway; SQLite and PostgreSQL; reads) and micro-benchmarks, into bench/results/
	@set -euo pipefail; mkdir -p bench/results; \
	bin/loadbench -out bench/results -commit $(VERSION) -postgres '$(BENCH_POSTGRES)'; \
	{ go test -run='^$$' -bench=. -skip=CloseCommits -benchmem -count=$(BENCH_COUNT) -benchtime=$(BENCH_TIME) $(BENCH_PKGS); \
	  go test -run='^$$' -bench=CloseCommits -count=$(BENCH_COUNT) -benchtime=$(BENCH_TAIL_N)x ./internal/store; \
	  go -C bench test -run='^$$' -bench=. -benchmem -count=$(BENCH_COUNT) -benchtime=$(BENCH_TIME) ./...; \
	} | tee bench/results/micro.txt; \
	go -C bench tool benchstat -filter '-.name:/CloseCommits/' bench/results/micro.txt=results/micro.txt > bench/results/micro-benchstat.txt; \
	{ echo; echo "# A close's two commits fsynced (synchronous=FULL, the store's) and not (OFF): BenchmarkCloseCommits"; \
	  go -C bench tool benchstat -filter '.name:/CloseCommits/' -col /sync results/micro.txt; } >> bench/results/micro-benchstat.txt; \
	bin/loadbench report -results bench/results -micro bench/results/micro.txt >/dev/null; \
	cat bench/results/latest.md; \
	echo "written: bench/results/latest.{md,json,png}, micro.txt, micro-benchstat.txt"

.PHONY: bench-smoke
bench-smoke: build bin/loadbench ## The bench suite in a few seconds, to keep it working (judges no target)
	@set -euo pipefail; out=$$(mktemp -d); trap 'rm -rf "$$out"' EXIT; \
	bin/loadbench -smoke -out "$$out" -postgres '$(BENCH_POSTGRES)' >"$$out/log" || { cat "$$out/log"; exit 1; }; \
	grep -F '* PostgreSQL mode SKIPPED' "$$out/log" || true; \
	for f in latest.md latest.json latest.png; do [ -s "$$out/$$f" ] || { echo "bench-smoke: no $$f"; exit 1; }; done; \
	echo "bench-smoke: the load suite ran (simulator, floors, gateway, PostgreSQL mode unless skipped above, reads, file)"
	go -C bench test $(GO_TEST_FLAGS) -bench=. -benchtime=1x -short ./...
	go test -run='^$$' -bench=. -benchtime=1x -short $(BENCH_PKGS)

.PHONY: bin/loadbench
bin/loadbench:
	CGO_ENABLED=0 go -C bench build -trimpath -o ../bin/loadbench ./cmd/loadbench

.PHONY: docker
docker: ## Build the container image
	docker build --build-arg VERSION=$(VERSION) -t payment-batch-gateway:$(VERSION) .

.PHONY: clean
clean: ## Remove build output
	rm -rf bin
