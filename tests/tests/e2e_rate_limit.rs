//! End to end: the rate budgets the component declares (contract 0.3.0),
//! enforced by the real host against the simulator, which notes when every
//! request arrived. A window never holds more than the budget, pages in
//! flight included; a burst up to the budget is not delayed; the operator
//! lowers a budget (by the component's setting or `--rate-budget`) and is
//! refused, before any request, when trying to raise one.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use common::{read_json, sim, Host};
use ironclad_sim::{Faults, Simulator};
use serde_json::Value;

const USER_PAGES: &str = "GET /scim/v2/Users";

/// Requests leave the host a budget's window apart at the least; they may
/// reach the simulator a little closer together (one waited longer for its
/// connection than the next). Windows are counted this much shorter.
const ARRIVAL_JITTER: Duration = Duration::from_millis(400);

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
fn sync(host: Host, extra: &[&str]) -> (Value, Duration) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("out.json");
    let mut args = vec!["sync", "-f", file.to_str().unwrap()];
    args.extend_from_slice(extra);
    let started = Instant::now();
    host.run(&args).assert_ok();
    let elapsed = started.elapsed();
    (read_json(&file), elapsed)
}

#[test]
fn a_minute_never_holds_more_than_the_budget_with_pages_in_flight() {
    // 15 pages of 1,000 users, each answer taking 50 ms, under the
    // component's own setting lowered to 10 a minute: ten pages go at once
    // (the component keeps up to four in flight), the other five a minute
    // later.
    let sim = sim(14_500, 4, 40);
    sim.set_faults(Faults {
        latency: Duration::from_millis(50),
        ..Faults::default()
    });
    let (out, elapsed) = sync(
        Host::for_sim(&sim).env("BATON_USERS_REQUESTS_PER_MINUTE", "10"),
        &[],
    );
    assert_eq!(user_set(&out), tenant_users(&sim));
    let times = sim.arrivals(USER_PAGES);
    assert_eq!(times.len(), 15, "{:?}", sim.requests());
    let minute = Duration::from_secs(60);
    let most = Simulator::most_in_window(&times, minute - ARRIVAL_JITTER);
    assert!(most <= 10, "{most} user pages within a minute");
    // The burst was not held back: the first ten came as fast as the sync
    // asked for them (paced, the tenth would have come after 54 s).
    let burst = times[9].duration_since(times[0]);
    assert!(
        burst < Duration::from_secs(20),
        "the first ten took {burst:?}"
    );
    assert!(
        times[10].duration_since(times[0]) >= minute - ARRIVAL_JITTER,
        "the eleventh page did not wait for the minute"
    );
    assert!(elapsed >= minute - ARRIVAL_JITTER, "{elapsed:?}");
    let most = sim.max_in_flight();
    assert!(most >= 2, "pages were asked one at a time ({most})");
}

#[test]
fn a_lowered_budget_spaces_the_pages_and_the_default_does_not_wait() {
    // 6 pages under 2 a second: 2 at once, 2 a second later, 2 more a
    // second after that.
    let sim = sim(5_500, 4, 40);
    let want = tenant_users(&sim);
    let (out, elapsed) = sync(Host::for_sim(&sim), &["--rate-budget", "users=2/1s"]);
    assert_eq!(user_set(&out), want);
    let times = sim.arrivals(USER_PAGES);
    assert_eq!(times.len(), 6);
    let second = Duration::from_secs(1);
    let most = Simulator::most_in_window(&times, second - ARRIVAL_JITTER);
    assert!(most <= 2, "{most} user pages within a second");
    assert!(elapsed >= 2 * second - ARRIVAL_JITTER, "{elapsed:?}");

    // Ironclad's budgets (600 a minute): the same sync asks the minimum
    // (1 token + 6 user pages + 1 group page) in a burst, never waiting.
    let before = sim.total_requests();
    let (out, _) = sync(Host::for_sim(&sim), &[]);
    assert_eq!(user_set(&out), want);
    assert_eq!(sim.total_requests() - before, 1 + 6 + 1);
    assert_eq!(out["stats"]["retries"], 0, "{}", out["stats"]);
    let times = sim.arrivals(USER_PAGES);
    let burst = times[11].duration_since(times[6]);
    assert!(burst < Duration::from_secs(10), "6 pages took {burst:?}");
}

#[test]
fn a_budget_may_only_be_lowered_and_a_bad_one_is_refused_before_any_request() {
    let sim = sim(20, 2, 10);
    let refused = |host: Host, extra: &[&str], wanted: &[&str]| {
        let mut args = vec!["sync", "-f", "/nonexistent/x.json"];
        args.extend_from_slice(extra);
        let run = host.run(&args);
        assert_eq!(run.code, Some(1), "{}", run.stderr);
        let line = run.error_line();
        for w in wanted {
            assert!(line.contains(w), "{w:?} not in {line}");
        }
    };
    let env = |k: &str, v: &str| Host::for_sim(&sim).env(k, v);
    refused(
        env("BATON_USER_WRITES_PER_MINUTE", "0"),
        &[],
        &["user-writes-per-minute", "whole number"],
    );
    refused(
        env("BATON_GROUPS_REQUESTS_PER_MINUTE", "ten"),
        &[],
        &["groups-requests-per-minute", "whole number"],
    );
    refused(
        env("BATON_USERS_REQUESTS_PER_MINUTE", "601"),
        &[],
        &[
            "users-requests-per-minute",
            "at most 600 per 1m",
            "only lower",
        ],
    );
    refused(
        Host::for_sim(&sim),
        &["--rate-budget", "users=11/1s"],
        &["users=11/1s", "600 per 1m", "may only be lowered"],
    );
    refused(
        Host::for_sim(&sim),
        &["--rate-budget", "everything=1"],
        &[
            "no budget of that name",
            "user-writes, users, groups, other",
        ],
    );
    // Not a budget at all: a usage error, exit 2.
    let run = Host::for_sim(&sim).run(&["sync", "--rate-budget", "users=fast"]);
    assert_eq!(run.code, Some(2), "{}", run.stderr);
    assert!(run.stderr.contains("users=fast"), "{}", run.stderr);
    assert_eq!(sim.total_requests(), 0);
}

#[test]
fn metadata_lists_the_budgets_the_host_enforces() {
    let run = Host::new().run(&["metadata"]);
    run.assert_ok();
    let meta: Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(meta["contract"], "idgov:connector@0.3.0");
    let budgets = meta["rate_budgets"].as_array().unwrap();
    let named: Vec<(&str, u64, u64)> = budgets
        .iter()
        .map(|b| {
            (
                b["name"].as_str().unwrap(),
                b["limit"].as_u64().unwrap(),
                b["window_ms"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        named,
        [
            ("user-writes", 50, 60_000),
            ("users", 600, 60_000),
            ("groups", 600, 60_000),
            ("other", 800, 60_000)
        ]
    );
    assert_eq!(budgets[1]["limit_setting"], "users-requests-per-minute");
}
