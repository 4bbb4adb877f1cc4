#!/usr/bin/env bash
# make wasmtime-smoke: the Ironclad component under the stock wasmtime CLI
# (the version the host links), against the simulator on loopback. None of
# the host's sandbox applies there: no allow-list, no provisioning switch, no
# caps, no scrubbing. The commands below are the README's.
set -euo pipefail
cd "$(dirname "$0")/.."
wasmtime=${WASMTIME:-target/tools/bin/wasmtime}
comp=target/wasm32-wasip2/release/ironclad_connector.wasm
work=$(mktemp -d)
trap 'kill "${sim_pid:-}" 2>/dev/null || true; rm -rf "$work"' EXIT

target/release/ironclad-sim --users 30 --groups 3 --memberships 40 \
  --ready-file "$work/ready" >"$work/sim.out" &
sim_pid=$!
for _ in $(seq 1 200); do [ -s "$work/ready" ] && break; sleep 0.05; done
[ -s "$work/ready" ] || { echo "the simulator did not start" >&2; exit 1; }
line=$(head -n 1 "$work/sim.out")
field() { sed -n "s/.*$1=\([^ ]*\).*/\1/p" <<<"$line"; }

"$wasmtime" --version
run() {
  "$wasmtime" run -S http -S config \
    -S "config-var=ic-client-id=$(field client_id)" \
    -S "config-var=ic-client-secret=${SIM_CLIENT_SECRET:-sim-secret-do-not-log-7f3a9c}" \
    -S "config-var=as-user-email=$(field as_user_email)" \
    -S "config-var=base-url=$(cat "$work/ready")" \
    --invoke "$1" "$comp"
}
failed=0
check() { # WHAT EXPECTED-TEXT
  local out
  out=$(run "$1" 2>&1) || true
  printf '$ --invoke %q\n  %s\n' "$1" "$(cut -c1-160 <<<"$out" | head -n 1)"
  grep -qF -- "$2" <<<"$out" || { echo "  FAILED: expected $2" >&2; failed=1; }
  last=$out
}

check 'metadata()' 'display-name: "Ironclad"'
check 'validate()' 'ok("'
check 'resource-types()' 'id: "user"'
check 'list-resources("user", none, none)' 'total-hint: some(30)'
user=$(grep -o 'resource: "[^"]*"' <<<"$last" | head -n 1 | cut -d'"' -f2)
check 'list-resources("group", none, none)' 'id: {resource-type: "group"'
group=$(grep -o 'resource-type: "group", resource: "[^"]*"' <<<"$last" | head -n 1 | sed 's/.*resource: "\([^"]*\)"/\1/')
check "list-entitlements({resource-type: \"group\", resource: \"$group\"}, none)" 'slug: "member"'
check "list-grants({resource-type: \"group\", resource: \"$group\"}, none)" 'ok({'
check "grant({resource-type: \"user\", resource: \"$user\"}, {id: \"group:$group:member\", resource: {resource-type: \"group\", resource: \"$group\"}, slug: \"member\"})" 'ok('
exit $failed
