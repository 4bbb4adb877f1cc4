#!/usr/bin/env bash
# make bench: a large generated tenant through the real host and component.
# Prints wall time, HTTP requests, host peak RSS and output size, as text
# and as one JSON line. Not part of make test.
set -euo pipefail
cd "$(dirname "$0")/.."
users=${1:-100000}
groups=${2:-5000}
memberships=${3:-500000}
latency_ms=${4:-0}
bin=target/release
work=$(mktemp -d)
trap 'kill "${sim_pid:-}" 2>/dev/null || true; rm -rf "$work"' EXIT

"$bin/ironclad-sim" --users "$users" --groups "$groups" --memberships "$memberships" \
  --latency-ms "$latency_ms" --ready-file "$work/ready" >"$work/sim.out" &
sim_pid=$!
for _ in $(seq 1 1200); do [ -s "$work/ready" ] && break; sleep 0.05; done
[ -s "$work/ready" ] || { echo "the simulator did not start" >&2; exit 1; }
line=$(head -n 1 "$work/sim.out")
field() { sed -n "s/.*$1=\([^ ]*\).*/\1/p" <<<"$line"; }

export BATON_BASE_URL=$(cat "$work/ready")
export BATON_IC_CLIENT_ID=$(field client_id)
export BATON_AS_USER_EMAIL=$(field as_user_email)
export BATON_IC_CLIENT_SECRET=${SIM_CLIENT_SECRET:-sim-secret-do-not-log-7f3a9c}
export CONNECTOR_LOG=warn

# Python (on every machine of this kind) measures the child's wall time and
# peak RSS without needing GNU time.
python3 - "$bin/connector-host" "$work/out.${BENCH_FORMAT:-c1z}" "$users" "$groups" "$memberships" "$latency_ms" <<'PY'
import json, os, resource, subprocess, sys, time
host, out, users, groups, memberships, latency = sys.argv[1:]
t0 = time.monotonic()
p = subprocess.run([host, "sync", "-f", out], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
wall = time.monotonic() - t0
if p.returncode != 0:
    sys.stderr.write(p.stderr)
    sys.exit(p.returncode)
rss_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
# The counts come back through the host's own reader, whatever the format.
st = json.loads(subprocess.run([host, "inspect", "-f", out, "stats", "-o", "json"],
                               check=True, stdout=subprocess.PIPE, text=True).stdout)
res = {
    "format": os.path.splitext(out)[1][1:],
    "users": int(users), "groups": int(groups), "memberships_asked": int(memberships),
    "latency_ms": int(latency),
    "resources": sum(st["resources"].values()), "entitlements": st["entitlements"], "grants": st["grants"],
    "wall_s": round(wall, 2), "http_requests": st["http_requests"], "retries": st["retries"],
    "host_peak_rss_mib": round(rss_kib / 1024, 1), "output_bytes": os.path.getsize(out),
}
print(f"tenant          {users} users, {groups} groups, {st['grants']} memberships (latency {latency} ms)")
print(f"wall time       {res['wall_s']} s")
print(f"http requests   {res['http_requests']} (retries {res['retries']})")
print(f"host peak RSS   {res['host_peak_rss_mib']} MiB")
print(f"output          {res['output_bytes'] / 1e6:.1f} MB {res['format']}")
print("BENCH " + json.dumps(res))
PY
