//! End to end: the component's client-side rate limit, run by the real host
//! against the simulator. A lowered budget spaces the requests out and still
//! gives the exact tenant; the default budgets leave a sync of a few pages
//! alone; a budget that is not a number is refused before any request.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use common::{read_json, sim, Host};
use ironclad_sim::Simulator;
use serde_json::Value;

/// 6 pages of 1,000 users.
const USERS: usize = 5_500;
const USER_PAGES: u64 = 6;

fn user_set(out: &Value) -> BTreeSet<String> {
    let resources = out["resources"].as_array().unwrap();
    let users: Vec<String> = resources
        .iter()
        .filter(|r| r["id"]["resource_type"] == "user")
        .map(|r| {
            format!(
                "{}|{}",
                r["id"]["resource"].as_str().unwrap(),
                r["user"]["login"].as_str().unwrap()
            )
        })
        .collect();
    let set: BTreeSet<String> = users.iter().cloned().collect();
    assert_eq!(set.len(), users.len(), "no duplicate users");
    set
}

fn tenant_users(sim: &Simulator) -> BTreeSet<String> {
    sim.tenant()
        .users
        .iter()
        .map(|u| format!("{}|{}", u.id, u.user_name))
        .collect()
}

/// Runs a sync into a JSON file; answers the output and how long it took.
fn sync(host: Host) -> (Value, Duration) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("out.json");
    let started = Instant::now();
    host.run(&["sync", "-f", file.to_str().unwrap()])
        .assert_ok();
    let elapsed = started.elapsed();
    (read_json(&file), elapsed)
}

#[test]
fn a_lowered_budget_spaces_the_user_pages_and_the_default_does_not_wait() {
    let sim = sim(USERS, 4, 40);
    let want = tenant_users(&sim);

    // 60 a minute: a burst of max(1, 60/60) = 1 request (the connector's
    // burst is one second's worth of the budget), then one a second. The
    // token and the group page are other buckets and do not wait.
    let per_minute = 60u64;
    let burst = (per_minute / 60).max(1);
    let spacing = Duration::from_secs(60) / per_minute as u32 * (USER_PAGES - burst) as u32;
    let (out, elapsed) =
        sync(Host::for_sim(&sim).env("BATON_USERS_REQUESTS_PER_MINUTE", &per_minute.to_string()));
    assert_eq!(user_set(&out), want);
    assert!(
        elapsed >= spacing,
        "6 user pages at {per_minute}/min took {elapsed:?}, less than the {spacing:?} of spacing"
    );
    let req = sim.requests();
    assert_eq!(req.get("GET /scim/v2/Users"), Some(&USER_PAGES), "{req:?}");

    // The default budgets (600/min, a burst of 10): the same sync asks the
    // minimum (1 token + 6 user pages + 1 group page) without ever waiting.
    let before = sim.total_requests();
    let (out, _) = sync(Host::for_sim(&sim));
    assert_eq!(user_set(&out), want);
    assert_eq!(sim.total_requests() - before, 1 + USER_PAGES + 1);
    assert_eq!(out["stats"]["http_requests"], 1 + USER_PAGES + 1);
    assert_eq!(out["stats"]["retries"], 0, "{}", out["stats"]);
}

#[test]
fn a_budget_that_is_not_a_positive_number_is_refused_before_any_request() {
    let sim = sim(20, 2, 10);
    for (var, field, value) in [
        (
            "BATON_USER_WRITES_PER_MINUTE",
            "user-writes-per-minute",
            "0",
        ),
        (
            "BATON_GROUPS_REQUESTS_PER_MINUTE",
            "groups-requests-per-minute",
            "ten",
        ),
    ] {
        let run = Host::for_sim(&sim)
            .env(var, value)
            .run(&["sync", "-f", "/nonexistent/x.json"]);
        assert!(!run.ok());
        let line = run.error_line();
        assert!(line.contains(field) && line.contains("1 or more"), "{line}");
    }
    assert_eq!(sim.total_requests(), 0);
}
