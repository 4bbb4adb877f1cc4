#!/usr/bin/env bash
# make bench: large generated tenants through the real host and component, on
# one simulator each, measured against the floor: the same pages fetched with
# a plain HTTP client (curl, one keep-alive connection, no processing).
# Prints, per tenant: the sync's wall time, the floor, their ratio, the host's
# peak RSS, the output size; then the warm-start time of `metadata`. Each
# tenant also ends as one JSON line prefixed BENCH. Not part of make test.
set -euo pipefail
cd "$(dirname "$0")/.."
users=${1:-100000}
groups=${2:-5000}
memberships=${3:-500000}
latency_ms=${4:-0}
scale=${BENCH_SCALE:-4}     # the second tenant: users, groups and memberships times this
bin=target/release
command -v curl >/dev/null || { apt-get install -y curl >/dev/null 2>&1 || { echo "bench: needs curl" >&2; exit 1; }; }
work=$(mktemp -d)
trap 'kill "${sim_pid:-}" 2>/dev/null || true; rm -rf "$work"' EXIT
export CONNECTOR_CACHE_DIR="$work/cache"

start_sim() {
  local u=$1 g=$2 m=$3
  "$bin/ironclad-sim" --users "$u" --groups "$g" --memberships "$m" \
    --latency-ms "$latency_ms" --ready-file "$work/ready" >"$work/sim.out" 2>"$work/sim.err" &
  sim_pid=$!
  for _ in $(seq 1 2400); do [ -s "$work/ready" ] && break; sleep 0.05; done
  [ -s "$work/ready" ] || { echo "the simulator did not start" >&2; exit 1; }
  local line; line=$(head -n 1 "$work/sim.out")
  field() { sed -n "s/.*$1=\([^ ]*\).*/\1/p" <<<"$line"; }
  export BATON_BASE_URL=$(cat "$work/ready")
  export BATON_IC_CLIENT_ID=$(field client_id)
  export BATON_AS_USER_EMAIL=$(field as_user_email)
  export BATON_IC_CLIENT_SECRET=${SIM_CLIENT_SECRET:-sim-secret-do-not-log-7f3a9c}
  export BATON_LOG_LEVEL=warn
  # Ironclad's budgets (600 user and 600 group requests a minute) are
  # enforced by the host as sliding windows: a burst up to the budget goes at
  # once, so the 100 (or 400) user pages of one sync never wait for them.
}

# Stops the simulator; prints how many requests it answered.
stop_sim() {
  kill -TERM "$sim_pid" 2>/dev/null || true
  wait "$sim_pid" 2>/dev/null || true
  rm -f "$work/ready"
  sed -n 's/^ironclad-sim: \([0-9]*\) requests$/\1/p' "$work/sim.err"
}

bench_tenant() {
  start_sim "$1" "$2" "$3"
  rm -f "$work/out.c1z"
  python3 scripts/bench_run.py "$bin/connector-host" "$work/out.${BENCH_FORMAT:-c1z}" "$1" "$2" "$3" "$latency_ms"
  stop_sim >/dev/null
}

# An interrupted sync resumed: on one fresh simulator an uninterrupted sync; on
# another (the same tenant) the sync killed with SIGKILL at half that wall time,
# then run again. Each simulator counts the requests it answered.
bench_resume() {
  start_sim "$1" "$2" "$3"
  rm -rf "$work/ref.c1z" "$work/.ref.c1z.partial"
  local ref; ref=$(python3 scripts/bench_run.py --resume "$bin/connector-host" "$work/ref.c1z" ref)
  local ref_requests; ref_requests=$(stop_sim)
  local ref_wall; ref_wall=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["wall_s"])' "$ref")
  start_sim "$1" "$2" "$3"
  local res; res=$(python3 scripts/bench_run.py --resume "$bin/connector-host" "$work/res.c1z" kill "$ref_wall")
  local res_requests; res_requests=$(stop_sim)
  python3 - "$ref" "$ref_requests" "$res" "$res_requests" "$1" <<'PY'
import json, sys
ref, ref_n, res, res_n, users = json.loads(sys.argv[1]), int(sys.argv[2]), json.loads(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
print(f"resume          {users} users: uninterrupted {ref['wall_s']} s and {ref_n} requests")
print(f"                killed at {res['killed_at_s']} s ({res['kept_at_kill']}, {res['rows_kept']} rows kept)")
print(f"                resumed part {res['resumed_wall_s']} s = {100 * res['resumed_wall_s'] / ref['wall_s']:.0f} % of uninterrupted;"
      f" {res_n} requests in all = uninterrupted + {res_n - ref_n}")
print(f"                {res['resume_line']}")
print("BENCH " + json.dumps({"resume": {**res, "uninterrupted_wall_s": ref["wall_s"], "uninterrupted_requests": ref_n,
                                        "requests_in_all": res_n}}), flush=True)
PY
}

if [ "${BENCH_ONLY:-}" = resume ]; then   # make bench-resume
  bench_resume "$users" "$groups" "$memberships"
  exit 0
fi
bench_tenant "$users" "$groups" "$memberships"
bench_resume "$users" "$groups" "$memberships"
bench_tenant $((users * scale)) $((groups * scale)) $((memberships * scale))
python3 scripts/bench_run.py --compare
