# bgsync: the two commands of the README, and a few for developers.
#   make run    install what is needed, build, and start the agent
#   make check  install what is needed, build, and run the whole test suite
SWIFT ?= swift
PYTHON ?= /usr/bin/python3
BIN = $(shell $(SWIFT) build --show-bin-path)

.PHONY: all build run check unit integration deps-run deps-check clean

all: build

build:
	$(SWIFT) build

deps-run:
	@scripts/install-deps run

deps-check:
	@scripts/install-deps check

run: deps-run build
	@scripts/run-agent "$(BIN)"

check: deps-check
	$(SWIFT) build --build-tests
	$(MAKE) unit integration

unit:
	$(SWIFT) test --skip-build

integration:
	BGSYNC_BIN="$(BIN)" $(PYTHON) -m pytest -q Tests/integration

clean:
	rm -rf .build

# make bench: a release build, then the benchmark harness, which prints the table kept in
# BENCHMARKS.md (about a minute after the build). A tool to look at: it fails only when it cannot measure.
.PHONY: bench deps-bench
deps-bench:
	@scripts/install-deps bench

bench: deps-bench
	$(SWIFT) build -c release
	bin="$$($(SWIFT) build -c release --show-bin-path)" && "$$bin/BGSyncBench" --bin "$$bin" --root "$(CURDIR)"
