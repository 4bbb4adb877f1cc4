"""One tenant of `make bench` (see scripts/bench.sh), or --compare to close.

Measures, on the simulator the environment points at: the floor (curl fetching
the token and every page the sync fetches, on one keep-alive connection), the
sync through the host (wall time and the child's peak RSS, measured by Python
so no GNU time is needed), the warm-start time of `connector-host metadata`,
and the c1z writer's own floor: the seconds sync-store's write_bench needs
after the last row to index and pack the same tenant, with no component and
no HTTP (a c1z sync can go no faster than the curl floor plus that).
"""
import json, os, resource, statistics, subprocess, sys, time

# Extra host flags for every timed sync (BENCH_HOST_FLAGS="--max-in-flight 8").
HOST_FLAGS = os.environ.get("BENCH_HOST_FLAGS", "").split()

RESULTS = os.path.join(os.environ.get("TMPDIR", "/tmp"), "connector-bench-results.jsonl")


def floor(base, users, groups):
    """Seconds for curl to fetch the same pages the sync fetches."""
    page = 1000
    urls = []
    for kind, n in (("Users", users), ("Groups", groups)):
        for start in range(1, max(n, 1) + 1, page):
            urls.append(f"{base}/scim/v2/{kind}?startIndex={start}&count={page}")
    token = json.loads(subprocess.run(
        ["curl", "-sf", "-X", "POST", f"{base}/oauth/token",
         "-d", "grant_type=client_credentials",
         "--data-urlencode", f"client_id={os.environ['BATON_IC_CLIENT_ID']}",
         "--data-urlencode", f"client_secret={os.environ['BATON_IC_CLIENT_SECRET']}",
         "--data-urlencode", "scope=scim.users.readUsers scim.groups.readGroups"],
        check=True, stdout=subprocess.PIPE, text=True).stdout)["access_token"]
    cfg = os.path.join(os.path.dirname(os.environ.get("CONNECTOR_CACHE_DIR", "/tmp")), "curl.cfg")
    with open(cfg, "w") as f:
        f.write(f'header = "Authorization: Bearer {token}"\n')
        f.write(f'header = "x-as-user-email: {os.environ["BATON_AS_USER_EMAIL"]}"\n')
        for u in urls:
            f.write(f'url = "{u}"\noutput = "/dev/null"\n')
    best = None
    for _ in range(3):
        t0 = time.monotonic()
        subprocess.run(["curl", "-sf", "-K", cfg], check=True)
        dt = time.monotonic() - t0
        best = dt if best is None else min(best, dt)
    return best, len(urls) + 1


def writer_floor(host, users, groups, memberships):
    """Seconds the c1z writer alone needs after the last row (sync-store's write_bench), or None."""
    bench = os.path.join(os.path.dirname(host), "examples", "write_bench")
    if not os.path.exists(bench):
        return None
    out = subprocess.run([bench, str(users), str(groups), str(memberships)],
                         check=True, stdout=subprocess.PIPE, text=True).stdout
    for line in out.splitlines():
        if line.startswith("finish"):
            return float(line.split()[1])
    return None


def metadata_warm(host):
    subprocess.run([host, "metadata"], check=True, stdout=subprocess.DEVNULL)  # fills the cache
    runs = []
    for _ in range(10):
        t0 = time.monotonic()
        subprocess.run([host, "metadata"], check=True, stdout=subprocess.DEVNULL)
        runs.append(time.monotonic() - t0)
    return statistics.median(runs)


def one(host, out, users, groups, memberships, latency):
    floor_s, floor_requests = floor(os.environ["BATON_BASE_URL"], int(users), int(groups))
    # The compiled component is cached by the first command a machine runs (measured apart,
    # as the warm start below); the sync is timed from a warm cache.
    subprocess.run([host, "metadata"], check=True, stdout=subprocess.DEVNULL)
    t0 = time.monotonic()
    # The same memory limit for every tenant (the 400,000-user one needs more than the default 256).
    mem = os.environ.get("BENCH_MEMORY_MB", "1024")
    p = subprocess.run([host, *HOST_FLAGS, "--memory-mb", mem, "sync", "-f", out],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wall = time.monotonic() - t0
    if p.returncode != 0:
        sys.stderr.write(p.stderr)
        sys.exit(p.returncode)
    rss_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    st = json.loads(subprocess.run([host, "inspect", "-f", out, "stats", "-o", "json"],
                                   check=True, stdout=subprocess.PIPE, text=True).stdout)
    res = {
        "format": os.path.splitext(out)[1][1:],
        "users": int(users), "groups": int(groups), "memberships_asked": int(memberships),
        "latency_ms": int(latency),
        "resources": sum(st["resources"].values()), "entitlements": st["entitlements"], "grants": st["grants"],
        "wall_s": round(wall, 2), "floor_s": round(floor_s, 2), "ratio": round(wall / floor_s, 2),
        "http_requests": st["http_requests"], "floor_requests": floor_requests, "retries": st["retries"],
        "host_peak_rss_mib": round(rss_kib / 1024, 1), "output_bytes": os.path.getsize(out),
        "metadata_warm_ms": round(metadata_warm(host) * 1000, 1),
    }
    print(f"tenant          {users} users, {groups} groups, {st['grants']} memberships (latency {latency} ms)")
    print(f"sync wall time  {res['wall_s']} s   ({res['http_requests']} requests, retries {res['retries']})")
    print(f"floor (curl)    {res['floor_s']} s   ({floor_requests} requests)")
    print(f"ratio           {res['ratio']}x")
    print(f"host peak RSS   {res['host_peak_rss_mib']} MiB")
    print(f"output          {res['output_bytes'] / 1e6:.1f} MB {res['format']}")
    print(f"metadata, warm  {res['metadata_warm_ms']} ms (median of 10)")
    writer = writer_floor(host, users, groups, memberships)
    if writer is not None:
        res["c1z_writer_finish_s"] = round(writer, 2)
        res["ratio_to_both_floors"] = round(wall / (floor_s + writer), 2)
        print(f"c1z writer      {res['c1z_writer_finish_s']} s after the last row to index and pack the same tenant"
              " (examples/write_bench: no component, no HTTP)")
        print(f"ratio to both   {res['ratio_to_both_floors']}x (wall / (curl floor + c1z writer))")
    print("BENCH " + json.dumps(res), flush=True)
    with open(RESULTS, "a") as f:
        f.write(json.dumps(res) + "\n")


def sync_once(host, out, kill_after=None):
    """One sync into `out`: (wall seconds, killed). With `kill_after`, SIGKILL at that many seconds."""
    mem = os.environ.get("BENCH_MEMORY_MB", "1024")
    t0 = time.monotonic()
    p = subprocess.Popen([host, *HOST_FLAGS, "--memory-mb", mem, "sync", "-f", out],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        stdout, stderr = p.communicate(timeout=kill_after)
    except subprocess.TimeoutExpired:
        p.kill()
        p.communicate()
        return time.monotonic() - t0, True
    if p.returncode != 0:
        sys.stderr.write(stderr)
        sys.exit(p.returncode)
    return time.monotonic() - t0, False


def resume(host, out, phase, ref_wall=None):
    """The resume bench, on a fresh simulator per phase (its request count is printed by bench.sh).

    `ref`: one uninterrupted sync, timed. `kill`: the same sync killed with SIGKILL at half the
    reference's wall time, then run again to the end, the second run timed."""
    subprocess.run([host, "metadata"], check=True, stdout=subprocess.DEVNULL)  # a warm cache
    if phase == "ref":
        wall, _ = sync_once(host, out)
        print(json.dumps({"wall_s": round(wall, 2)}))
        return
    half = float(ref_wall) / 2
    _, killed = sync_once(host, out, kill_after=half)
    if not killed:
        sys.exit("resume bench: the sync finished before it could be killed")
    st = subprocess.run([host, "inspect", "-f", out, "syncs", "-o", "json"],
                        check=True, stdout=subprocess.PIPE, text=True).stdout
    kept = json.loads(st)[0]
    env = dict(os.environ, BATON_LOG_LEVEL="info")
    t0 = time.monotonic()
    p = subprocess.run([host, *HOST_FLAGS, "--memory-mb", os.environ.get("BENCH_MEMORY_MB", "1024"), "sync", "-f", out],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    wall = time.monotonic() - t0
    if p.returncode != 0:
        sys.stderr.write(p.stderr)
        sys.exit(p.returncode)
    line = next((l for l in p.stderr.splitlines() if "resuming sync" in l), "")
    print(json.dumps({"killed_at_s": round(half, 2), "kept_at_kill": kept.get("position"),
                      "rows_kept": kept.get("resources", 0) + kept.get("entitlements", 0) + kept.get("grants", 0),
                      "resumed_wall_s": round(wall, 2), "resume_line": line.split("INFO ")[-1]}))


def compare():
    with open(RESULTS) as f:
        rows = [json.loads(l) for l in f]
    os.remove(RESULTS)
    if len(rows) >= 2:
        a, b = rows[-2], rows[-1]
        print(f"memory growth   {b['users']} vs {a['users']} users: peak RSS x{b['host_peak_rss_mib'] / a['host_peak_rss_mib']:.2f}")


if __name__ == "__main__":
    if sys.argv[1:] == ["--compare"]:
        compare()
    elif sys.argv[1:2] == ["--resume"]:
        resume(*sys.argv[2:])
    else:
        one(*sys.argv[1:])
