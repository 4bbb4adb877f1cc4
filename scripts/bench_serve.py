#!/usr/bin/env python3
"""make bench-serve: a soak of `connector-host serve`.

TENANTS tenants of USERS users each (one simulator serving the same generated
tenant to all of them, as many customers of one application would be) in one
serve process, over a data directory that already holds every tenant's file
(a first serve process syncs each twice and stops; BENCH_EMPTY_DATA=1
starts empty). Every tenant syncs once at start (its interval an hour); then
a pair of SIGHUPs changes every tenant's interval and back, and the process's
resident size is read when nothing runs any more: the first round. A SIGHUP
then shortens every interval to INTERVAL_S, which applies to the waits in
progress, and the tenants sync on that schedule for DURATION_S. A last SIGHUP
lengthens the intervals again, and the resident size is read once more when
nothing runs: like is compared with like (both readings after the same
reloads, with nothing running), so a difference is memory the syncs left, not
a sync that happened to be running. Then 40 and 160 SIGHUPs more, with no
sync, each followed by a reading: what reloads keep. Prints syncs per minute,
p50/p99 sync time, peak RSS, the quiet RSS readings, and ends with one JSON
line prefixed BENCH; exits 1 if the second reading is higher than the first.
Not part of make test.

usage: bench_serve.py HOST SIM TENANTS USERS INTERVAL_S DURATION_S [MAX_CONCURRENT]
"""

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request

TOKEN = "bench-serve-token-0123456789abcdef"


def rss_mib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    return 0.0


def rss_parts(pid):
    """RssAnon and RssFile, MiB: what the heap holds against mapped files."""
    parts = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key = line.split(":", 1)[0]
            if key in ("RssAnon", "RssFile"):
                parts[key] = int(line.split()[1]) / 1024.0
    return parts


def anon_regions(pid):
    """Anonymous RSS, MiB, by where it lives (/proc/PID/smaps): wasmtime's
    pooling reservation (one mapping of gigabytes), the brk heap, thread
    stacks and glibc's other arenas, so a growth can be placed."""
    out = {"pool": 0.0, "heap": 0.0, "other": 0.0}
    size = 0
    name = ""
    with open(f"/proc/{pid}/smaps") as f:
        for line in f:
            head = line.split()
            if head and "-" in head[0] and not head[0].endswith(":"):
                lo, hi = (int(x, 16) for x in head[0].split("-"))
                size = hi - lo
                name = head[5] if len(head) > 5 else ""
            elif head and head[0] == "Anonymous:":
                mib = int(head[1]) / 1024.0
                if size >= 1 << 30:
                    out["pool"] += mib
                elif name == "[heap]":
                    out["heap"] += mib
                else:
                    out["other"] += mib
    return out


def heap_mib(addr):
    """The allocator's own count (connector_heap_bytes), MiB: live
    allocations against freed memory it keeps. Live memory growing over
    the soak is a leak; resident memory growing while it does not is
    memory the allocator keeps."""
    out = {}
    for line in get(addr, "/metrics").decode().splitlines():
        if line.startswith("connector_heap_bytes{"):
            state = line.split('state="', 1)[1].split('"', 1)[0]
            out[f"Heap{state}"] = int(line.rsplit(" ", 1)[1]) / (1 << 20)
    return out


def get(addr, path):
    req = urllib.request.Request(
        f"http://{addr}{path}", headers={"Authorization": f"Bearer {TOKEN}"}
    )
    with urllib.request.urlopen(req, timeout=30) as r:
        return r.read()


def post(addr, path):
    req = urllib.request.Request(
        f"http://{addr}{path}", method="POST",
        headers={"Authorization": f"Bearer {TOKEN}"}
    )
    with urllib.request.urlopen(req, timeout=30) as r:
        return r.read()


def percentile(values, p):
    if not values:
        return 0.0
    s = sorted(values)
    k = min(len(s) - 1, max(0, int(round(p / 100.0 * (len(s) - 1)))))
    return s[k]


def main():
    host, sim_bin = sys.argv[1], sys.argv[2]
    tenants, users = int(sys.argv[3]), int(sys.argv[4])
    interval, duration = int(sys.argv[5]), int(sys.argv[6])
    max_concurrent = sys.argv[7] if len(sys.argv) > 7 and sys.argv[7] else None
    work = tempfile.mkdtemp(prefix="bench-serve-")
    ready = os.path.join(work, "ready")
    groups = max(1, users // 50)
    sim = subprocess.Popen(
        [sim_bin, "--users", str(users), "--groups", str(groups),
         "--memberships", str(users * 2), "--ready-file", ready],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )
    serve = None
    try:
        for _ in range(2400):
            if os.path.exists(ready) and os.path.getsize(ready) > 0:
                break
            time.sleep(0.05)
        base = open(ready).read().strip()
        first = sim.stdout.readline()
        fields = dict(kv.split("=", 1) for kv in first.split() if "=" in kv)
        secret_file = os.path.join(work, "client-secret")
        with open(secret_file, "w") as f:
            f.write(os.environ.get("SIM_CLIENT_SECRET", "sim-secret-do-not-log-7f3a9c"))
        token_file = os.path.join(work, "token")
        with open(token_file, "w") as f:
            f.write(TOKEN)
        lines = []
        for i in range(tenants):
            lines += [
                "[[tenant]]",
                f'id = "tenant-{i:04d}"',
                'interval = "3600s"',
                "[tenant.settings]",
                f'ic-client-id = "{fields["client_id"]}"',
                f'as-user-email = "{fields["as_user_email"]}"',
                f'base-url = "{base}"',
                # Each tenant has its own budgets (the host's, per tenant):
                # a few requests a sync never wait for them.
                "[tenant.secrets]",
                f'ic-client-secret = {{ file = "{secret_file}" }}',
                "",
            ]
        tenants_file = os.path.join(work, "tenants.toml")
        with open(tenants_file, "w") as f:
            f.write("\n".join(lines))
        args = [host, "--cache-dir", os.path.join(work, "cache"),
                "serve", "--tenants", tenants_file, "--data-dir", os.path.join(work, "data"),
                "--listen", "127.0.0.1:0", "--api-token-file", token_file,
                "--log-level", "info"]
        if max_concurrent:
            args += ["--max-concurrent-syncs", max_concurrent]
        import threading

        def start_serve():
            proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                    text=True)
            at = None
            while at is None:
                line = proc.stderr.readline()
                if not line:
                    sys.exit("bench-serve: serve exited before listening")
                if "serving on http://" in line:
                    at = line.split("serving on http://", 1)[1].split()[0]
            # Drain the log so the pipe never fills.
            threading.Thread(target=lambda: [None for _ in proc.stderr], daemon=True).start()
            return proc, at

        # The data directory first gets every tenant's file, as a pod
        # restarted over its volume finds them: the measured process's
        # first round then does what every later sync does (read the
        # previous file and keep its syncs), rather than a first sync ever.
        # Two syncs each, so the file holds the two previous syncs a
        # long-running tenant's does.
        if not os.environ.get("BENCH_EMPTY_DATA"):
            serve, addr = start_serve()

            def synced():
                while True:
                    listing = json.loads(get(addr, "/v1/tenants"))
                    if len(listing) == tenants and all(
                            t["status"] == "idle" and t.get("last") for t in listing):
                        return {t["id"]: t["last"]["job"] for t in listing}
                    time.sleep(0.2)

            first = synced()
            for tid in first:
                post(addr, f"/v1/tenants/{tid}/syncs")
            while any(j == first[t] for t, j in synced().items()):
                time.sleep(0.2)
            serve.send_signal(signal.SIGTERM)
            serve.wait(timeout=120)
        serve, addr = start_serve()

        seen = {}
        peak = 0.0
        failures = 0

        def sample():
            """Reads the tenants and the RSS; whether nothing is running."""
            nonlocal peak, failures
            listing = json.loads(get(addr, "/v1/tenants"))
            # Read after the listing: a quiet listing then means the jobs
            # it reports have ended, and each job's thread gives its memory
            # back before its report is written.
            rss = rss_mib(serve.pid)
            peak = max(peak, rss)
            for t in listing:
                last = t.get("last")
                if last and (t["id"], last["job"]) not in seen:
                    seen[(t["id"], last["job"])] = last
                    if last["outcome"] != "success":
                        failures += 1
            quiet = all(t["status"] == "idle" for t in listing)
            done = {tid for (tid, _) in seen}
            return quiet and len(done) == tenants, rss

        def retime(seconds):
            with open(tenants_file, "w") as f:
                f.write("\n".join(lines).replace('interval = "3600s"', f'interval = "{seconds}s"'))
            serve.send_signal(signal.SIGHUP)

        def until_quiet(limit_s):
            deadline = time.time() + limit_s
            while time.time() < deadline:
                quiet, rss = sample()
                if quiet:
                    dump = os.environ.get("BENCH_SMAPS_DIR")
                    if dump:
                        # The whole map, for placing a growth mapping by mapping.
                        with open(f"/proc/{serve.pid}/smaps") as src, \
                                open(os.path.join(dump, f"smaps-{time.time():.0f}"), "w") as dst:
                            dst.write(src.read())
                    parts = rss_parts(serve.pid)
                    parts.update({f"Rss{k}": v for k, v in anon_regions(serve.pid).items()})
                    parts.update(heap_mib(addr))
                    return rss, parts
                time.sleep(0.2)
            return None, {}

        def reloads(pairs):
            """SIGHUP pairs that change every tenant (an interval halved,
            then back), with nothing made due: the reload path alone."""
            for _ in range(pairs):
                retime(1800)
                time.sleep(0.2)
                retime(3600)
                time.sleep(0.2)

        t0 = time.time()
        until_quiet(600)
        first_round_at = time.time() - t0
        first_round_syncs = len(seen)
        # The end is read after the soak's two SIGHUPs: the first reading
        # comes after a pair too, so both have been through the reload
        # path (its first use grows buffers once; the reloads after the end
        # show that more keep nothing) and the difference is the syncs'.
        reloads(1)
        first_round_rss, first_parts = until_quiet(600)

        retime(interval)
        started = time.time()
        while time.time() - started < duration:
            sample()
            time.sleep(0.5)
        elapsed = time.time() - started
        in_run = list(seen.values())[first_round_syncs:]
        retime(3600)
        end_rss, end_parts = until_quiet(interval * 2 + 60)
        # Many reloads more, nothing synced: what they keep, if anything,
        # read twice to tell a level from a growth.
        after_reloads = []
        for pairs in (20, 80):
            reloads(pairs)
            after_reloads.append(until_quiet(60))
        secs = [r["seconds"] for r in in_run if r["outcome"] == "success"]
        per_min = len(secs) / (elapsed / 60.0)
        serve.send_signal(signal.SIGTERM)
        code = serve.wait(timeout=120)
        print(f"serve soak: {tenants} tenants x {users} users, interval {interval} s, "
              f"{elapsed:.0f} s, max concurrent {max_concurrent or os.cpu_count()}")
        print(f"  syncs              {len(secs)} ok, {failures} failed ({per_min:.1f} per minute)")
        print(f"  sync time          p50 {percentile(secs, 50):.2f} s, p99 {percentile(secs, 99):.2f} s")
        def parts(p):
            def name(k):
                return k[3:].lower() if k.startswith("Rss") else "heap " + k[4:]
            return ", ".join(f"{name(k)} {v:.1f}" for k, v in sorted(p.items()))
        if first_round_rss is not None:
            print(f"  first round        {first_round_syncs} syncs, quiet at {first_round_at:.0f} s: "
                  f"RSS {first_round_rss:.1f} MiB ({parts(first_parts)})")
        else:
            print("  first round        never quiet")
        end_text = ("never quiet" if end_rss is None
                    else f"{end_rss:.1f} MiB ({parts(end_parts)})")
        print(f"  at the end, quiet  RSS {end_text}")
        for n, (rss, p) in zip((40, 200), after_reloads):
            if rss is not None:
                print(f"  {n:>3} SIGHUPs later   RSS {rss:.1f} MiB ({parts(p)})")
        print(f"  peak RSS           {peak:.1f} MiB")
        grew = (first_round_rss is None or end_rss is None
                or end_rss > first_round_rss)
        print(f"  no growth          {'no' if grew else 'yes'}")
        print(f"  exit after SIGTERM {code}")
        print("BENCH " + json.dumps({
            "bench": "serve", "tenants": tenants, "users": users, "interval_s": interval,
            "duration_s": round(elapsed, 1), "syncs_ok": len(secs), "syncs_failed": failures,
            "syncs_per_minute": round(per_min, 1),
            "p50_s": round(percentile(secs, 50), 3), "p99_s": round(percentile(secs, 99), 3),
            "peak_rss_mib": round(peak, 1),
            "first_round_rss_mib": None if first_round_rss is None else round(first_round_rss, 1),
            "end_rss_mib": None if end_rss is None else round(end_rss, 1),
            "after_40_200_sighups_rss_mib": [None if r is None else round(r, 1)
                                             for r, _ in after_reloads],
            "no_growth": not grew, "exit": code,
        }))
        if failures or code != 0 or grew:
            sys.exit(1)
    finally:
        if serve and serve.poll() is None:
            serve.kill()
        sim.terminate()
        sim.wait()


if __name__ == "__main__":
    main()
