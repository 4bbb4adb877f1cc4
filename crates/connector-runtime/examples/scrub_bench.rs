//! `make bench` (part of it): what scrubbing a service's log of every
//! tenant's secrets costs as the tenants grow. Each tenant has its own
//! client secret, paired with its own client id and two shared settings
//! (the forms a sync resolves); a `SecretPool` holds them all, as
//! `connector-host serve` does. Prints, for 1 to 5,000 tenants: the pool's
//! build time and resident size, the cost of setting a tenant's unchanged
//! secrets again (every sync does), of a rotated secret, and of scrubbing
//! one log line. Linux only (reads VmRSS).

use std::time::{Duration, Instant};

use connector_runtime::secrets::{SecretPool, Secrets};

const LINE: &str = "2026-11-29T16:41:44.701041Z  INFO sync{tenant=tenant-0182 \
    job=a3819bffb30fe3f3}: synced in 0.13 s: 2550 resources, 50 entitlements, \
    5000 grants, 5 requests";

fn rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .unwrap_or(0.0)
        / 1024.0
}

fn tenant_secrets(i: usize, rotation: usize) -> Secrets {
    let secret = format!("cs-{i:06}-{rotation}-Zq8/vN+3kT@p!x92LmW0&rY=");
    let id = format!("client-{i:06}");
    Secrets::new(
        [secret.as_str()],
        [id.as_str(), "na1", "https://na1.ironcladapp.com"],
    )
}

fn per(total: Duration, n: u32) -> String {
    format!("{:.2} µs", total.as_secs_f64() * 1e6 / f64::from(n))
}

fn main() {
    println!("scrub: tenants, pool build, pool RSS, unchanged set, rotated set, one log line");
    for tenants in [1usize, 200, 1_000, 5_000] {
        let all: Vec<Secrets> = (0..tenants).map(|i| tenant_secrets(i, 0)).collect();
        let owners: Vec<String> = (0..tenants).map(|i| format!("tenant-{i:06}")).collect();
        let before = rss_mib();
        let started = Instant::now();
        let mut pool = SecretPool::default();
        for (owner, s) in owners.iter().zip(&all) {
            pool.set(owner, s);
        }
        let build = started.elapsed();
        let size = rss_mib() - before;

        let n = 2_000u32;
        let started = Instant::now();
        for i in 0..n as usize {
            let t = i % tenants;
            assert!(!pool.set(&owners[t], &all[t]));
        }
        let unchanged = started.elapsed();

        let rotated = tenant_secrets(0, 1);
        let started = Instant::now();
        assert!(pool.set(&owners[0], &rotated));
        let rotation = started.elapsed();

        let started = Instant::now();
        for _ in 0..n {
            std::hint::black_box(pool.scrub(std::hint::black_box(LINE)));
        }
        let line = started.elapsed();
        println!(
            "scrub: {tenants:>5} tenants, built in {:.1} ms, {size:.1} MiB, unchanged {}, rotated {:.1} ms, a line {}",
            build.as_secs_f64() * 1e3,
            per(unchanged, n),
            rotation.as_secs_f64() * 1e3,
            per(line, n),
        );
        println!(
            "BENCH {}",
            serde_json::json!({
                "bench": "scrub", "tenants": tenants,
                "build_ms": (build.as_secs_f64() * 1e4).round() / 10.0,
                "pool_mib": (size * 10.0).round() / 10.0,
                "unchanged_us": (unchanged.as_secs_f64() * 1e7 / f64::from(n)).round() / 10.0,
                "rotated_ms": (rotation.as_secs_f64() * 1e4).round() / 10.0,
                "line_us": (line.as_secs_f64() * 1e7 / f64::from(n)).round() / 10.0,
            })
        );
    }
}
