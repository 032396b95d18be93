# SPDX-License-Identifier: Apache-2.0
# bgsync: the two commands of the README, and a few for developers.
#   make run    install what is needed, build, and start the agent
#   make check  install what is needed, build, and run the whole test suite
SWIFT ?= swift
PYTHON ?= /usr/bin/python3
BIN = $(shell $(SWIFT) build --show-bin-path)

.PHONY: all build run demo check unit integration lint format deps-run deps-check clean

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

# Everything CI runs: the unit tests, the integration suite (plain, then under AddressSanitizer
# and ThreadSanitizer), the Debian package test, and the system test on a booted Debian (which
# reuses the packages deb-check built).
check: deps-check
	$(MAKE) lint
	$(SWIFT) build --build-tests
	$(MAKE) unit integration deb-check
	BGSYNC_DEB_REUSE=1 $(MAKE) system-check
	$(MAKE) check-asan check-tsan

unit:
	$(SWIFT) test --skip-build

integration:
	BGSYNC_BIN="$(BIN)" $(PYTHON) -m pytest -q Tests/integration

# Swift style is .swift-format's (the toolchain's swift-format); lint fails on any finding, format fixes
# what it can in place.
SWIFT_SOURCES = Package.swift Sources Plugins Tests Benchmarks

lint:
	$(SWIFT) format lint --strict --recursive --parallel $(SWIFT_SOURCES)

format:
	$(SWIFT) format format --in-place --recursive --parallel $(SWIFT_SOURCES)

# Every build directory this Makefile or its scripts make: .build (swift build), .build-asan and
# .build-tsan (sanitizers), .build-sanitizer-logs, .build-deb (the packages) and any other .build-*.
clean:
	rm -rf .build .build-* .build_*
	rm -rf packaging/debian/.debhelper packaging/debian/bgsyncd packaging/debian/libbgsync-plugin-dev \
	    packaging/debian/files packaging/debian/*.substvars packaging/debian/*.debhelper.log \
	    packaging/debian/debhelper-build-stamp

# The Debian packages (slow: a release build; see packaging/README.md). deb builds them into
# .build-deb/; deb-check builds, lints, installs, exercises and purges them (as root).
.PHONY: deb deb-check system-check
deb:
	packaging/build-deb

deb-check: deps-check
	BGSYNC_BIN="$(BIN)" $(PYTHON) -m pytest -q Tests/packaging

# The packages on a Debian bookworm booted with systemd-nspawn (Tests/system; as root). Builds
# the packages first unless BGSYNC_DEB_REUSE=1; the debootstrapped tree is cached in .build-system/.
system-check: deps-check
	$(PYTHON) -m pytest -q -rs -s Tests/system

# make bench: a release build, then the benchmark harness, which prints the table kept in
# BENCHMARKS.md (about a minute after the build, and some 30 s for the 1 GiB transfers). A tool to look at: it fails only when it cannot measure.
.PHONY: bench deps-bench
deps-bench:
	@scripts/install-deps bench

bench: deps-bench
	$(SWIFT) build -c release
	bin="$$($(SWIFT) build -c release --show-bin-path)" && "$$bin/BGSyncBench" --bin "$$bin" --root "$(CURDIR)"

# Reliability (Tests/integration/test_reliability_*.py, test_isolation.py; see README):
#   make reliability   the reliability and isolation tests, printing their figures
#   make torture       the SIGKILL torture at length (TORTURE_CYCLES, 300 by default)
#   make check-asan    the whole integration suite against an AddressSanitizer build (PYTEST_ARGS: more pytest options)
#   make check-tsan    the same against a ThreadSanitizer build
# Sanitizer reports go to files under .build-sanitizer-logs/; any report fails the target.
TORTURE_CYCLES ?= 300
SANITIZER_LOGS = $(CURDIR)/.build-sanitizer-logs
RELIABILITY_TESTS = Tests/integration/test_reliability_*.py Tests/integration/test_isolation*.py

.PHONY: reliability torture check-asan check-tsan

reliability:
	$(SWIFT) build
	BGSYNC_BIN="$(BIN)" $(PYTHON) -m pytest -q -s $(RELIABILITY_TESTS)

torture:
	$(SWIFT) build
	BGSYNC_TORTURE_CYCLES=$(TORTURE_CYCLES) BGSYNC_BIN="$(BIN)" $(PYTHON) -m pytest -q -s Tests/integration/test_reliability_torture.py

# $(call sanitized-suite,address|thread,OPTIONS-VARIABLE,options,asan|tsan,build flags): runs the integration suite
# against that build, then fails on any report. The test plugin Tests/plugins/segfault.c crashes
# on purpose (to test worker crashes) and the sanitizer reports that SEGV too: those reports,
# and only those, are set aside as expected.
define sanitized-suite
	$(SWIFT) build --sanitize=$(1) --scratch-path .build-$(4) $(5)
	rm -rf $(SANITIZER_LOGS)/$(4) && mkdir -p $(SANITIZER_LOGS)/$(4)
	@status=0; \
	$(2)="$(3):log_path=$(SANITIZER_LOGS)/$(4)/report" \
	  LSAN_OPTIONS="suppressions=$(CURDIR)/Tests/sanitizers/lsan.supp:print_suppressions=0" \
	  BGSYNC_BIN="$$($(SWIFT) build --sanitize=$(1) --scratch-path .build-$(4) $(5) --show-bin-path)" \
	  $(PYTHON) -m pytest -q -s $(PYTEST_ARGS) Tests/integration || status=$$?; \
	cd $(SANITIZER_LOGS)/$(4); \
	for r in report.*; do [ -e "$$r" ] || continue; \
	  grep -q "SUMMARY: [A-Za-z]*Sanitizer: SEGV segfault.c in handle" "$$r" && mv "$$r" "expected-$$r"; done; \
	if ls report.* >/dev/null 2>&1; then cat report.*; echo "$(1) sanitizer: reports above"; exit 1; fi; \
	echo "$(1) sanitizer: no reports ($$(ls | wc -l) expected ones from the crashing test plugin)"; exit $$status
endef

# The TSan runtime lives in each executable; bgsync-worker must export it to the handler
# plugins it dlopens (built with TSan too), or they fail to load (__tsan_external_write).
TSAN_LINK = -Xlinker --export-dynamic

check-asan:
	$(call sanitized-suite,address,ASAN_OPTIONS,detect_leaks=1:halt_on_error=1,asan)

check-tsan:
	$(call sanitized-suite,thread,TSAN_OPTIONS,halt_on_error=0:second_deadlock_stack=1:suppressions=$(CURDIR)/Tests/sanitizers/tsan.supp,tsan,$(TSAN_LINK))
