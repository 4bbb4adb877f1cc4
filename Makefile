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

.PHONY: all setup component fixtures build test lint demo bench clean

all: build

# A fresh machine has the Rust toolchain only: add the component target.
setup:
	@rustup target list --installed | grep -qx wasm32-wasip2 || rustup target add wasm32-wasip2

component: setup
	$(CARGO) build -p ironclad-connector --release --target wasm32-wasip2

# Misbehaving guest components the sandbox tests run, built from source.
fixtures: setup
	$(CARGO) build -p rogue-connector -p not-a-connector -p future-connector --release --target wasm32-wasip2

build: component
	$(CARGO) build --release -p connector-host -p ironclad-sim
	cp $(WASM_OUT) target/release/ironclad_connector.wasm

lint: setup
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	$(CARGO) clippy -p ironclad-connector --target wasm32-wasip2 -- -D warnings

# End-to-end tests run the debug host and simulator against the release
# component (the one that ships).
test: lint component fixtures
	$(CARGO) build -p connector-host -p ironclad-sim
	$(CARGO) test --workspace

demo: build
	bash scripts/demo.sh $(DEMO_USERS) $(DEMO_GROUPS)

bench: build
	bash scripts/bench.sh $(BENCH_USERS) $(BENCH_GROUPS) $(BENCH_MEMBERSHIPS) $(BENCH_LATENCY_MS)

clean:
	$(CARGO) clean
