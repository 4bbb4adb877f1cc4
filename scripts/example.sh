#!/usr/bin/env bash
# make test: runs the embedding example (crates/connector-runtime/examples/embed.rs)
# against the Ironclad simulator on loopback, the way another Rust program would
# use the runtime: load, configure, sync into a c1z, grant and revoke.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${BIN_DIR:-target/debug}
work=$(mktemp -d)
trap 'kill "${sim_pid:-}" 2>/dev/null || true; rm -rf "$work"' EXIT

"$bin/ironclad-sim" --users 300 --groups 12 --memberships 600 \
  --ready-file "$work/ready" >"$work/sim.out" &
sim_pid=$!
for _ in $(seq 1 200); do [ -s "$work/ready" ] && break; sleep 0.05; done
[ -s "$work/ready" ] || { echo "example: the simulator did not start" >&2; exit 1; }
line=$(head -n 1 "$work/sim.out")
field() { sed -n "s/.*$1=\([^ ]*\).*/\1/p" <<<"$line"; }

export BATON_BASE_URL=$(cat "$work/ready")
export BATON_IC_CLIENT_ID=$(field client_id)
export BATON_AS_USER_EMAIL=$(field as_user_email)
export BATON_IC_CLIENT_SECRET=${SIM_CLIENT_SECRET:-sim-secret-do-not-log-7f3a9c}
export CONNECTOR_CACHE_DIR="$work/cache"

out=$("$bin/examples/embed" target/wasm32-wasip2/release/ironclad_connector.wasm "$work/out.c1z")
echo "$out"
# The example's promises, checked: it synced every row, then granted and revoked.
grep -q "^synced 312 resources, 12 entitlements, [0-9]* grants" <<<"$out"
grep -q "^granted group:" <<<"$out"
grep -q "^revoked group:" <<<"$out"
echo "example: 1 passed, 0 failed"
