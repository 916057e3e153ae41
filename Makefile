# facestream — the two commands that matter: `make run` and `make test`.
# Every target installs what is missing first (scripts/setup.sh, idempotent).

SHELL := /bin/bash
ROOT := $(abspath .)
SHARED ?= $(abspath $(ROOT)/../shared)

export FACESTREAM_MODELS ?= $(SHARED)/models
export FACESTREAM_TESTDATA ?= $(SHARED)/testdata
export FACESTREAM_ORT_LIB ?= $(ROOT)/.deps/onnxruntime/libonnxruntime.so
export FACESTREAM_TEST_DSN ?= postgres://facestream@127.0.0.1:5432/facestream?sslmode=disable
export FACESTREAM_DATABASE_URL ?= postgres://facestream@127.0.0.1:5432/facestream?sslmode=disable

GO ?= go
# matprofile: gocv counts live Mats, and the imaging and face TestMains fail on any leak.
GOTESTFLAGS ?= -count=1 -timeout 20m -tags matprofile
BIN := $(ROOT)/bin

.PHONY: all setup build run test bench lint fmt clean chaos fuzz overload

all: build

setup:
	@bash scripts/setup.sh

build: setup
	@$(GO) build -o $(BIN)/ ./cmd/...

## run: the all-in-one service (in-process NATS, every stage, the HTTP API) against local PostgreSQL.
run: build
	@$(BIN)/facestream run

## test: every test, unit and integration, against real PostgreSQL+pgvector, in-process JetStream and real models.
test: setup
	@$(GO) vet ./...
	@$(GO) test $(GOTESTFLAGS) ./...

## chaos: the full fault-injection run (500 images; kill -9 of every stage, a NATS restart, PostgreSQL
## down for 30 s) against the real stage binaries; writes reports/reliability.{md,json}.
CHAOS_IMAGES ?= 500
CHAOS_PG_STOP ?= 30s
chaos: setup
	@mkdir -p $(ROOT)/reports
	@FACESTREAM_CHAOS_IMAGES=$(CHAOS_IMAGES) FACESTREAM_CHAOS_PG_STOP=$(CHAOS_PG_STOP) FACESTREAM_CHAOS_KILLS=3 \
		FACESTREAM_CHAOS_REPORT=$(ROOT)/reports \
		$(GO) test $(GOTESTFLAGS) -timeout 60m -run '^TestChaos$$' -v ./test/chaos

## overload: the pipeline and the HTTP edge at twice their measured capacity for OVERLOAD_DURATION
## (2 min): bounded memory and backlog, 503 + Retry-After, nothing accepted lost; writes
## reports/overload.{md,json}. `make test` runs it for 20 s.
OVERLOAD_DURATION ?= 2m
overload: setup
	@mkdir -p $(ROOT)/reports
	@FACESTREAM_OVERLOAD_DURATION=$(OVERLOAD_DURATION) FACESTREAM_OVERLOAD_REPORT=$(ROOT)/reports \
		$(GO) test $(GOTESTFLAGS) -timeout 30m -run '^TestOverload$$' -v ./test/overload

## fuzz: every fuzz target for FUZZTIME each (image validation, OpenCV decoding, event decoding).
FUZZTIME ?= 2m
FUZZPARALLEL ?= 1
fuzz: setup
	@$(GO) test -tags matprofile -run '^$$' -fuzz '^FuzzValidate$$' -fuzztime $(FUZZTIME) -parallel $(FUZZPARALLEL) ./internal/stages/ingest
	@$(GO) test -tags matprofile -run '^$$' -fuzz '^FuzzDecode$$' -fuzztime $(FUZZTIME) -parallel $(FUZZPARALLEL) ./internal/imaging
	@$(GO) test -tags matprofile -run '^$$' -fuzz '^FuzzDecode$$' -fuzztime $(FUZZTIME) -parallel $(FUZZPARALLEL) ./pkg/events

## bench: the pipeline in one process and as the stage binaries against the raw model ceiling,
## single-image POST /v1/analyze latency at half the in-process capacity (30 s),
## and search over 20,000 stored embeddings; report in bench-out/ (docs/benchmarks.md). < 5 minutes.
## The testing.B benchmarks: go test -tags matprofile -run '^$$' -bench . ./internal/face/ ./pkg/onnx/
bench: setup
	@$(GO) build -o $(BIN)/ ./cmd/...
	@$(BIN)/facestream bench --mode both --sync-duration 30s --search-vectors 20000 --log-level warn --out bench-out

## bench-search: similarity search over 1,000,000 stored embeddings (COPY, HNSW build, p50/p95, recall@10). Many minutes.
## SEARCH_INDEX lists HNSW configurations built and measured one after the other over the same data
## (m:ef_construction[:halfvec], or production: what ensure_embedding_index builds); SEARCH_EF the ef_search values.
SEARCH_VECTORS ?= 1000000
SEARCH_INDEX ?= production
SEARCH_EF ?= 40,100,200,400
SEARCH_OUT ?= bench-out/search-1m
## SEARCH_SHARED_BUFFERS (e.g. 4GB) runs it on a throwaway cluster with that shared_buffers
## (scripts/pg-scratch.sh, in .pgscratch/) instead of FACESTREAM_DATABASE_URL's server.
SEARCH_SHARED_BUFFERS ?=
.PHONY: bench-search
bench-search: build
ifeq ($(SEARCH_SHARED_BUFFERS),)
	@$(BIN)/facestream bench --mode none --search-vectors $(SEARCH_VECTORS) --search-index $(SEARCH_INDEX) \
		--search-ef $(SEARCH_EF) --out $(SEARCH_OUT)
else
	@dsn=$$(bash scripts/pg-scratch.sh start $(ROOT)/.pgscratch 55432 $(SEARCH_SHARED_BUFFERS)) && \
		trap 'bash scripts/pg-scratch.sh stop $(ROOT)/.pgscratch' EXIT && \
		FACESTREAM_DATABASE_URL=$$dsn $(BIN)/facestream bench --mode none --search-vectors $(SEARCH_VECTORS) \
		--search-index $(SEARCH_INDEX) --search-ef $(SEARCH_EF) --out $(SEARCH_OUT)
endif

## lint: go vet plus staticcheck (installed through the Go module proxy).
lint: setup
	@$(GO) vet ./...
	@$(GO) run honnef.co/go/tools/cmd/staticcheck@v0.8.2 ./...

fmt:
	@gofmt -l -w $$(git ls-files '*.go')

clean:
	rm -rf $(BIN)
