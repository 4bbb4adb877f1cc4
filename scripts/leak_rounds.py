#!/usr/bin/env python3
"""A leak check of `connector-host serve`: TENANTS tenants of USERS users on one
simulator, every interval an hour, and ROUNDS rounds of syncs asked for
through the API (POST /v1/tenants/ID/syncs for each, then wait until every
tenant is idle with a new job). The allocator's live heap
(connector_heap_bytes{state="in_use"}) is printed after round 1 and every
EVERY rounds (default 5): a count that grows with the rounds is a leak.
With HT=PATH the process runs under heaptrack and is killed with SIGKILL at
the end, at a quiet moment, so what it still held is heaptrack's "leaked".
Not part of make test.

usage: leak_rounds.py HOST SIM TENANTS USERS ROUNDS
"""
import json, os, signal, subprocess, sys, tempfile, time, threading, urllib.request
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_serve import get, TOKEN, heap_mib
host, sim_bin = sys.argv[1], sys.argv[2]
tenants, users, rounds = int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
work = tempfile.mkdtemp(prefix="rd-")
ready = os.path.join(work, "ready")
sim = subprocess.Popen([sim_bin, "--users", str(users), "--groups", str(max(1, users//50)),
    "--memberships", str(users*2), "--ready-file", ready], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
while not (os.path.exists(ready) and os.path.getsize(ready) > 0): time.sleep(0.05)
base = open(ready).read().strip()
fields = dict(kv.split("=", 1) for kv in sim.stdout.readline().split() if "=" in kv)
sf = os.path.join(work, "s"); open(sf, "w").write("sim-secret-do-not-log-7f3a9c")
tf = os.path.join(work, "t"); open(tf, "w").write(TOKEN)
lines = []
for i in range(tenants):
    lines += ["[[tenant]]", f'id = "tenant-{i:04d}"', 'interval = "3600s"', "[tenant.settings]",
        f'ic-client-id = "{fields["client_id"]}"', f'as-user-email = "{fields["as_user_email"]}"',
        f'base-url = "{base}"', "[tenant.secrets]", f'ic-client-secret = {{ file = "{sf}" }}', ""]
open(os.path.join(work, "tenants.toml"), "w").write("\n".join(lines))
pre = ["heaptrack", "-o", os.environ["HT"]] if os.environ.get("HT") else []
serve = subprocess.Popen(pre + [host, "--cache-dir", os.path.join(work, "cache"), "serve", "--tenants", os.path.join(work, "tenants.toml"),
    "--data-dir", os.path.join(work, "data"), "--listen", "127.0.0.1:0", "--api-token-file", tf, "--log-level", "info"],
    stdout=subprocess.PIPE if pre else subprocess.DEVNULL, stderr=subprocess.STDOUT if pre else subprocess.PIPE, text=True)
stream = serve.stdout if pre else serve.stderr
addr = None
while addr is None:
    l = stream.readline()
    if "serving on http://" in l: addr = l.split("serving on http://", 1)[1].split()[0]
threading.Thread(target=lambda: [None for _ in stream], daemon=True).start()
def post(path):
    req = urllib.request.Request(f"http://{addr}{path}", method="POST", headers={"Authorization": f"Bearer {TOKEN}"})
    urllib.request.urlopen(req, timeout=30).read()
def quiet():
    while True:
        l = json.loads(get(addr, "/v1/tenants"))
        if len(l) == tenants and all(t["status"] == "idle" and t.get("last") for t in l):
            return {t["id"]: t["last"]["job"] for t in l}
        time.sleep(0.1)
last = quiet()
t0 = None
for r in range(1, rounds + 1):
    for tid in last: post(f"/v1/tenants/{tid}/syncs")
    while True:
        now = quiet()
        if all(now[t] != last[t] for t in now): break
    last = now
    if r % int(os.environ.get("EVERY", "5")) == 0 or r == 1:
        h = heap_mib(addr)
        print(f"round {r:3d} ({r*tenants} syncs): in_use {h['Heapin_use']*1024:.0f} KiB", flush=True)
seen_busy = set()
t1 = time.time()
while time.time() - t1 < 3:
    for t in json.loads(get(addr, "/v1/tenants")):
        if t["status"] != "idle": seen_busy.add((t["id"], t["status"], t["job"], t["last"]["job"]))
    time.sleep(0.05)
print("after quiet:", sorted(seen_busy)[:10], len(seen_busy), flush=True)
if pre:
    pid = subprocess.check_output(["pgrep", "-f", "connector-host --cache-dir " + os.path.join(work, "cache")]).split()[0]
    os.kill(int(pid), signal.SIGKILL)
else:
    serve.send_signal(signal.SIGTERM)
serve.wait(); sim.kill()
