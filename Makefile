# bgsync: the two commands of the README, and a few for developers.
#   make run    install what is needed, build, and start the agent
#   make check  install what is needed, build, and run the whole test suite
SWIFT ?= swift
PYTHON ?= /usr/bin/python3
BIN = $(shell $(SWIFT) build --show-bin-path)

.PHONY: all build run demo check unit integration deps-run deps-check clean

all: build

build:
	$(SWIFT) build

deps-run:
	@scripts/install-deps run

deps-check:
	@scripts/install-deps check

run: deps-run build
	@scripts/run-agent "$(BIN)"

# The web article's story on this machine: offline, a message in the outbox, the app gone,
# online, and the message arriving (a private bus, a mocked NetworkManager, a local server).
demo: deps-check build
	$(PYTHON) scripts/demo.py "$(BIN)"

check: deps-check
	$(SWIFT) build --build-tests
	$(MAKE) unit integration deb-check

unit:
	$(SWIFT) test --skip-build

integration:
	BGSYNC_BIN="$(BIN)" $(PYTHON) -m pytest -q Tests/integration

clean:
	rm -rf .build

# The Debian packages (slow: a release build; see packaging/README.md). deb builds them into
# .build-deb/; deb-check builds, lints, installs, exercises and purges them (as root).
.PHONY: deb deb-check
deb:
	packaging/build-deb

deb-check: deps-check
	BGSYNC_BIN="$(BIN)" $(PYTHON) -m pytest -q Tests/packaging

# make bench: a release build, then the benchmark harness, which prints the table kept in
# BENCHMARKS.md (about a minute after the build). A tool to look at: it fails only when it cannot measure.
.PHONY: bench deps-bench
deps-bench:
	@scripts/install-deps bench

bench: deps-bench
	$(SWIFT) build -c release
	bin="$$($(SWIFT) build -c release --show-bin-path)" && "$$bin/BGSyncBench" --bin "$$bin" --root "$(CURDIR)"
