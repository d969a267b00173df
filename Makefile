# Payment-batch gateway. `make help` lists the targets.
SHELL := /bin/bash
.DEFAULT_GOAL := help

GATEWAY_ADDR ?= 127.0.0.1:8080
SIM_ADDR     ?= 127.0.0.1:9090
VERSION      ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
SEED_BATCH   := 6f1c2a9e-3b7d-4e58-9a41-0c2d8e7f5b13
GO_TEST_FLAGS ?= -race -shuffle=on -count=1 -timeout=15m
FUZZ_TIME    ?= 10s

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
test: openapi-check ## Run every test with the race detector, and check the committed spec
	@$(MAKE) --no-print-directory postgres-check
	go test $(GO_TEST_FLAGS) ./...
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

.PHONY: lint
lint: ## gofmt, go vet and staticcheck
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	go vet ./...
	go tool staticcheck ./...

.PHONY: openapi
openapi: ## Regenerate the OpenAPI spec in openapi/ from the swag annotations
	go tool swag $(SWAG_FLAGS) --output openapi

.PHONY: openapi-check
openapi-check: ## Fail when the committed spec differs from the annotations
	@tmp=$$(mktemp -d); trap 'rm -rf $$tmp' EXIT; \
	go tool swag $(SWAG_FLAGS) --output $$tmp >/dev/null && \
	if ! diff -ru openapi $$tmp; then echo "openapi/ is stale: run 'make openapi' and commit the result"; exit 1; fi; \
	echo "openapi/ matches the annotations"

.PHONY: fuzz
fuzz: ## Run every fuzz target for FUZZ_TIME each
	@set -e; for pkg in $$(go list ./...); do \
	  for f in $$(go test -list '^Fuzz' $$pkg | grep '^Fuzz' || true); do \
	    echo "== $$pkg $$f"; go test -run='^$$' -fuzz="^$$f$$" -fuzztime=$(FUZZ_TIME) $$pkg; \
	  done; \
	done

.PHONY: bench
bench: ## Run the Go benchmarks
	go test -run='^$$' -bench=. -benchmem ./...

.PHONY: docker
docker: ## Build the container image
	docker build --build-arg VERSION=$(VERSION) -t payment-batch-gateway:$(VERSION) .

.PHONY: clean
clean: ## Remove build output
	rm -rf bin
