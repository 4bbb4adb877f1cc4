# The two commands that matter: `make demo` and `make test`.
CARGO    ?= cargo
WASM_OUT := target/wasm32-wasip2/release/ironclad_connector.wasm

# Demo tenant and bench tenant sizes (override on the command line).
DEMO_USERS  ?= 2500
DEMO_GROUPS ?= 100
BENCH_USERS       ?= 100000
BENCH_GROUPS      ?= 5000
BENCH_MEMBERSHIPS ?= 500000
BENCH_LATENCY_MS  ?= 0

.PHONY: bench-serve bench-resume all setup component fixtures build test lint demo bench fuzz clean example wasmtime-cli wasmtime-smoke

all: build

# A fresh machine has the Rust toolchain only: add the component target.
setup:
	@rustup target list --installed | grep -qx wasm32-wasip2 || rustup target add wasm32-wasip2

# Guest components are built small: one codegen unit with full LTO, and the
# name section stripped (166 KB of the component; a trap still names the
# export it happened in). Given here, not in the workspace profile, so the
# host's release build keeps its faster thin LTO.
WASM_FLAGS := --config profile.release.lto=true --config profile.release.codegen-units=1 \
	--config 'target.wasm32-wasip2.rustflags=["-C","link-arg=--strip-all"]'

component: setup
	$(CARGO) build -p ironclad-connector --release --target wasm32-wasip2 $(WASM_FLAGS)

# Misbehaving guest components the sandbox tests run, built from source.
fixtures: setup
	$(CARGO) build -p rogue-connector -p not-a-connector -p future-connector --release --target wasm32-wasip2 $(WASM_FLAGS)

build: component
	$(CARGO) build --release -p connector-host -p ironclad-sim
	cp $(WASM_OUT) target/release/ironclad_connector.wasm

lint: setup
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	$(CARGO) clippy -p ironclad-connector --target wasm32-wasip2 -- -D warnings

# End-to-end tests run the debug host and simulator against the release
# component (the one that ships). `cargo test` builds both binaries itself,
# with the test build's features: a separate `cargo build` would compile
# wasmtime a second time for a different feature set.
test: lint component fixtures
	$(CARGO) test --workspace
	bash scripts/example.sh
	bash scripts/validate_manifests.sh

# The embedding example against the simulator (make test runs it after the
# tests, whose build leaves both binaries in target/debug).
example: component
	$(CARGO) build -p connector-runtime --example embed -p ironclad-sim
	bash scripts/example.sh

demo: build
	bash scripts/demo.sh $(DEMO_USERS) $(DEMO_GROUPS)

bench: build
	$(CARGO) build --release -p sync-store --example write_bench
	$(CARGO) build --release -p connector-runtime --example scrub_bench
	bash scripts/bench.sh $(BENCH_USERS) $(BENCH_GROUPS) $(BENCH_MEMBERSHIPS) $(BENCH_LATENCY_MS)
	target/release/examples/scrub_bench

# A soak of `serve`: SERVE_TENANTS tenants of SERVE_USERS users each, on one
# simulator, syncing every SERVE_INTERVAL seconds for SERVE_SECONDS.
SERVE_TENANTS  ?= 200
SERVE_USERS    ?= 2500
SERVE_INTERVAL ?= 30
SERVE_SECONDS  ?= 180
bench-serve: build
	python3 scripts/bench_serve.py target/release/connector-host target/release/ironclad-sim \
		$(SERVE_TENANTS) $(SERVE_USERS) $(SERVE_INTERVAL) $(SERVE_SECONDS) $(SERVE_MAX_CONCURRENT)

# Only the resume measurement of `bench`: the first tenant synced once, and
# once killed with SIGKILL at half that time and resumed.
bench-resume: build
	BENCH_ONLY=resume bash scripts/bench.sh $(BENCH_USERS) $(BENCH_GROUPS) $(BENCH_MEMBERSHIPS) $(BENCH_LATENCY_MS)

# Fuzzes the connector's response parsing (connector/fuzz, target parse_responses) for
# FUZZ_SECONDS; not part of `test`. Runs on stable Rust: with no sanitizer cargo-fuzz needs no
# nightly flag, and FUZZ_SANITIZER=address works too through RUSTC_BOOTSTRAP=1 (slower; the
# connector has no unsafe code). New inputs go to a scratch corpus under connector/fuzz/target;
# the committed seeds are only read. A crash is saved in connector/fuzz/artifacts/.
FUZZ_SECONDS   ?= 60
FUZZ_SANITIZER ?= none
FUZZ_TARGET    := parse_responses
FUZZ_LOG       := $(CURDIR)/target/fuzz-$(FUZZ_TARGET).log
FUZZ_ENV       := $(if $(filter none,$(FUZZ_SANITIZER)),,RUSTC_BOOTSTRAP=1)

fuzz:
	@command -v cargo-fuzz >/dev/null || $(CARGO) install cargo-fuzz --locked
	@mkdir -p target connector/fuzz/target/corpus/$(FUZZ_TARGET)
	cd connector && $(FUZZ_ENV) $(CARGO) fuzz build --sanitizer $(FUZZ_SANITIZER) $(FUZZ_TARGET)
	@echo "fuzzing $(FUZZ_TARGET) for $(FUZZ_SECONDS) s (log: $(FUZZ_LOG))"
	@cd connector && $(FUZZ_ENV) $(CARGO) fuzz run --sanitizer $(FUZZ_SANITIZER) $(FUZZ_TARGET) \
		fuzz/target/corpus/$(FUZZ_TARGET) fuzz/corpus/$(FUZZ_TARGET) \
		-- -max_total_time=$(FUZZ_SECONDS) -timeout=10 -print_final_stats=1 >$(FUZZ_LOG) 2>&1 \
		|| { tail -n 40 $(FUZZ_LOG); echo "fuzz: $(FUZZ_TARGET) FAILED (input saved under connector/fuzz/artifacts/$(FUZZ_TARGET))"; exit 1; }
	@sed -n 's/^Done \([0-9]*\) runs in \([0-9]*\) second.*/fuzz: $(FUZZ_TARGET) ran clean: \1 executions in \2 s/p' $(FUZZ_LOG)

clean:
	$(CARGO) clean

# The stock wasmtime CLI, the version the host links, installed once into
# target/tools (it compiles for many minutes: not part of `make test`).
WASMTIME_VERSION := 48.0.8
WASMTIME := target/tools/bin/wasmtime

wasmtime-cli:
	@$(WASMTIME) --version 2>/dev/null | grep -qw '$(WASMTIME_VERSION)' || \
		$(CARGO) install --locked wasmtime-cli --version $(WASMTIME_VERSION) --root target/tools

# The component's metadata, validate, listings and a grant through that CLI,
# against the simulator; the README quotes its output.
wasmtime-smoke: build wasmtime-cli
	WASMTIME=$(WASMTIME) bash scripts/wasmtime_smoke.sh

# The Kubernetes manifests in deploy/kubernetes, checked offline against the
# Kubernetes 1.30 schemas (installs kubernetes-validate into target/k8s-venv once).
.PHONY: validate-manifests image
validate-manifests:
	bash scripts/validate_manifests.sh

# The container image connector-host:latest (Containerfile): a static release
# host and the component, FROM scratch, built with podman (or docker).
image:
	bash scripts/image.sh
