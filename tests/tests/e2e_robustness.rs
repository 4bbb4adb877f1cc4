//! What a sync must survive: secrets kept out of every output at debug
//! level, tokens that expire mid-sync, and being interrupted or killed.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::process::Stdio;
use std::time::{Duration, Instant};

use common::{assert_previous_kept, host_bin, ironclad_component, read_json, sim, Host};
use ironclad_sim::{Faults, SimConfig, Simulator, TenantSpec};

#[test]
fn no_secret_or_token_appears_anywhere_even_at_debug_level() {
    let sim = sim(1_200, 10, 1_500);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("out.json");
    let mut seen = String::new();
    let debug = |h: Host| {
        h.env("BATON_PROVISIONING", "true")
            .env("BATON_LOG_LEVEL", "trace")
    };

    let run = debug(Host::for_sim(&sim)).run(&["sync", "-f", file.to_str().unwrap()]);
    run.assert_ok();
    seen += &run.stdout;
    seen += &run.stderr;
    seen += &std::fs::read_to_string(&file).unwrap();
    let run = debug(Host::for_sim(&sim)).run(&["metadata"]);
    seen += &run.stdout;
    seen += &run.stderr;
    let run = debug(Host::for_sim(&sim)).run(&["validate"]);
    seen += &run.stdout;
    seen += &run.stderr;

    let t = sim.tenant();
    let g = &t.groups[0];
    let u = t.users.iter().find(|u| !g.members.contains(&u.id)).unwrap();
    let ent = format!("group:{}:member", g.id);
    let run = debug(Host::for_sim(&sim)).run(&[
        "grant",
        "--entitlement",
        &ent,
        "--principal",
        &format!("user:{}", u.id),
    ]);
    seen += &run.stdout;
    seen += &run.stderr;
    let run =
        debug(Host::for_sim(&sim)).run(&["revoke", "--grant", &format!("{ent}:user:{}", u.id)]);
    seen += &run.stdout;
    seen += &run.stderr;
    // And an error path, with a wrong secret that must not be echoed either.
    let run = debug(Host::for_sim(&sim))
        .env("BATON_IC_CLIENT_SECRET", "another-wrong-secret-4242")
        .run(&["validate"]);
    assert!(!run.ok());
    seen += &run.stdout;
    seen += &run.stderr;

    assert!(seen.contains("outbound request"), "debug logging was on");
    assert!(
        !seen.contains(&sim.client_secret()),
        "the client secret leaked"
    );
    assert!(
        !seen.contains("another-wrong-secret-4242"),
        "a wrong secret leaked"
    );
    let tokens = sim.issued_tokens();
    assert!(!tokens.is_empty());
    for token in tokens {
        assert!(!seen.contains(&token), "an access token leaked");
    }
}

#[test]
fn a_token_that_expires_mid_sync_is_minted_again() {
    let sim = Simulator::start(SimConfig {
        tenant: TenantSpec {
            users: 3_000,
            groups: 20,
            memberships: 2_000,
            seed: 11,
        },
        token_lifetime: Duration::from_millis(1_500),
        faults: Faults {
            latency: Duration::from_millis(400),
            ..Faults::default()
        },
        ..SimConfig::default()
    })
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("out.json");
    Host::for_sim(&sim)
        .run(&["sync", "-f", file.to_str().unwrap()])
        .assert_ok();
    let out = read_json(&file);
    assert_eq!(out["stats"]["resources"]["user"], 3_000);
    assert_eq!(
        out["grants"].as_array().unwrap().len(),
        sim.tenant().memberships()
    );
    assert!(
        sim.tokens_issued() >= 2,
        "tokens issued: {}",
        sim.tokens_issued()
    );
}

/// Starts a slow sync over an existing good file; returns the child.
fn slow_sync(sim: &Simulator, file: &std::path::Path) -> std::process::Child {
    sim.set_faults(Faults {
        latency: Duration::from_millis(300),
        ..Faults::default()
    });
    common::baton_env(&mut std::process::Command::new(host_bin()), sim)
        .args([
            "--component",
            ironclad_component().to_str().unwrap(),
            "sync",
            "-f",
            file.to_str().unwrap(),
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn wait_for_requests(sim: &Simulator, n: u64) {
    let start = Instant::now();
    while sim.total_requests() < n {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "the sync never started"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn sigterm_and_sigint_stop_cleanly_and_keep_the_previous_file() {
    for (signal, code) in [("-TERM", 143), ("-INT", 130)] {
        let sim = sim(6_000, 10, 100);
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("sync.json");
        std::fs::write(&file, "previous good sync").unwrap();
        let child = slow_sync(&sim, &file);
        wait_for_requests(&sim, 2);
        let status = std::process::Command::new("kill")
            .args([signal, &child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        let out = child.wait_with_output().unwrap();
        assert_eq!(out.status.code(), Some(code), "{signal}: 128 + its number");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains("interrupted") && stderr.contains("untouched"),
            "{signal}: {stderr}"
        );
        assert_previous_kept(dir.path(), &file, "previous good sync");
    }
}

#[test]
fn sigkill_at_any_moment_leaves_the_previous_file() {
    let sim = sim(6_000, 10, 100);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("sync.json");
    std::fs::write(&file, "previous good sync").unwrap();
    for after_requests in [1, 3, 5] {
        let mut child = slow_sync(&sim, &file);
        wait_for_requests(&sim, sim.total_requests() + after_requests);
        child.kill().unwrap();
        child.wait().unwrap();
        assert_eq!(
            std::fs::read_to_string(&file).unwrap(),
            "previous good sync"
        );
    }
}

#[test]
fn paging_under_churn_gives_no_duplicates_and_says_the_totals_moved() {
    let sim = sim(3_500, 5, 200);
    let before: std::collections::BTreeSet<String> =
        sim.tenant().users.into_iter().map(|u| u.id).collect();
    sim.set_faults(Faults {
        churn: true,
        ..Faults::default()
    });
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("out.json");
    let run = Host::for_sim(&sim).run(&["sync", "-f", file.to_str().unwrap()]);
    run.assert_ok();
    let out = read_json(&file);
    let ids: Vec<String> = out["resources"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["id"]["resource_type"] == "user")
        .map(|r| r["id"]["resource"].as_str().unwrap().to_string())
        .collect();
    let unique: std::collections::BTreeSet<&String> = ids.iter().collect();
    assert_eq!(unique.len(), ids.len(), "no duplicates");
    let after: std::collections::BTreeSet<String> =
        sim.tenant().users.into_iter().map(|u| u.id).collect();
    assert!(
        ids.iter()
            .all(|id| before.contains(id) || after.contains(id)),
        "only real users"
    );
    let moved = &out["stats"]["totals_moved"]["user"];
    assert!(
        moved["first"].as_u64().unwrap() < moved["last"].as_u64().unwrap(),
        "{}",
        out["stats"]
    );
    assert!(run.stderr.contains("count moved"), "{}", run.stderr);
    assert!(
        out["stats"]["totals_moved"].get("group").is_none(),
        "groups held still"
    );
}

#[test]
fn a_refusal_that_is_not_transient_is_not_retried() {
    let sim = sim(50, 2, 20);
    let run = Host::for_sim(&sim)
        .env("BATON_AS_USER_EMAIL", "nobody@example-tenant.test")
        .run(&["sync", "-f", "/tmp/never-written-403.json"]);
    assert!(!run.ok());
    assert!(
        run.error_line().contains("permission denied"),
        "{}",
        run.stderr
    );
    // One token, one refused page: a 403 is not worth a retry.
    assert_eq!(
        sim.requests().get("GET /scim/v2/Users"),
        Some(&1),
        "{:?}",
        sim.requests()
    );
}

#[test]
fn a_server_that_stops_answering_times_out_and_is_retried_then_given_up() {
    let sim = sim(50, 2, 20);
    sim.set_faults(Faults {
        latency: Duration::from_millis(2_500),
        ..Faults::default()
    });
    let started = Instant::now();
    let run = Host::for_sim(&sim).run(&[
        "--first-byte-timeout-secs",
        "1",
        "--max-retries",
        "1",
        "sync",
        "-f",
        "/tmp/never-written-timeout.json",
    ]);
    assert!(!run.ok());
    let line = run.error_line();
    assert!(
        line.contains("unavailable") && line.contains("gave up after"),
        "{line}"
    );
    // The first attempt and one retry each timed out on the token request.
    std::thread::sleep(Duration::from_millis(2_000));
    assert_eq!(
        sim.requests().get("POST /oauth/token"),
        Some(&2),
        "{:?}",
        sim.requests()
    );
    assert!(started.elapsed() < Duration::from_secs(30), "bounded");
}
