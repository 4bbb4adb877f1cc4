#!/usr/bin/env bash
# The main job on an embedded default: a generated Ironclad tenant served by
# the simulator on loopback, synced through the real host and component.
set -euo pipefail
cd "$(dirname "$0")/.."
users=${1:-2500}
groups=${2:-100}
bin=target/release
work=$(mktemp -d)
trap 'kill "${sim_pid:-}" 2>/dev/null || true; rm -rf "$work"' EXIT

"$bin/ironclad-sim" --users "$users" --groups "$groups" --memberships $((users * 2)) \
  --ready-file "$work/ready" >"$work/sim.out" &
sim_pid=$!
for _ in $(seq 1 200); do [ -s "$work/ready" ] && break; sleep 0.05; done
[ -s "$work/ready" ] || { echo "the simulator did not start" >&2; exit 1; }

line=$(head -n 1 "$work/sim.out")
echo "$line"
field() { sed -n "s/.*$1=\([^ ]*\).*/\1/p" <<<"$line"; }

export BATON_BASE_URL=$(cat "$work/ready")
export BATON_IC_CLIENT_ID=$(field client_id)
export BATON_AS_USER_EMAIL=$(field as_user_email)
# The simulator's built-in demo secret; a real tenant's comes from its OAuth app.
export BATON_IC_CLIENT_SECRET=${SIM_CLIENT_SECRET:-sim-secret-do-not-log-7f3a9c}

"$bin/connector-host" validate
rm -f demo-sync.c1z
"$bin/connector-host" sync -f demo-sync.c1z
echo "output: demo-sync.c1z ($(du -h demo-sync.c1z | cut -f1)); look inside with:"
echo "  target/release/connector-host inspect -f demo-sync.c1z {stats, resources -t group, grants, syncs, diff}"
"$bin/connector-host" inspect -f demo-sync.c1z stats
