//! Pages asked for ahead: once the first page has given the total, the
//! connector keeps the next pages' requests on their way while the host
//! works on the current one. The simulator counts how many requests it
//! answers at once; the rows must be those of the tenant, exactly.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::{read_json, sim, tenant_grant_ids, Host};
use ironclad_sim::{Faults, Simulator};

/// A tenant whose every answer takes `latency_ms`.
fn slow_sim(users: usize, groups: usize, memberships: usize, latency_ms: u64) -> Simulator {
    let sim = sim(users, groups, memberships);
    sim.set_faults(Faults {
        latency: Duration::from_millis(latency_ms),
        ..Faults::default()
    });
    sim
}

fn sync_json(sim: &Simulator, extra: &[&str]) -> serde_json::Value {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("out.json");
    let mut args = extra.to_vec();
    args.extend(["sync", "-f", file.to_str().unwrap()]);
    Host::for_sim(sim).run(&args).assert_ok();
    read_json(&file)
}

fn ids(out: &serde_json::Value, kind: &str) -> BTreeSet<String> {
    out["resources"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["id"]["resource_type"] == kind)
        .map(|r| r["id"]["resource"].as_str().unwrap().to_owned())
        .collect()
}

fn grant_ids(out: &serde_json::Value) -> BTreeSet<String> {
    out["grants"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["id"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn later_pages_are_on_their_way_while_one_is_read_and_the_rows_are_exact() {
    // 6 pages of users, 2 of groups; each answer takes 100 ms.
    let sim = slow_sim(6_000, 1_500, 6_000, 100);
    let out = sync_json(&sim, &[]);
    let tenant = sim.tenant();
    let users: BTreeSet<String> = tenant.users.iter().map(|u| u.id.clone()).collect();
    let groups: BTreeSet<String> = tenant.groups.iter().map(|g| g.id.clone()).collect();
    assert_eq!(ids(&out, "user"), users);
    assert_eq!(ids(&out, "group"), groups);
    assert_eq!(grant_ids(&out), tenant_grant_ids(&sim));
    let asked = sim.requests();
    // Exactly the pages there are: none asked twice, none past the total.
    assert_eq!(asked["GET /scim/v2/Users"], 6, "{asked:?}");
    assert_eq!(asked["GET /scim/v2/Groups"], 2, "{asked:?}");
    let most = sim.max_in_flight();
    assert!(most >= 2, "pages were asked for one at a time ({most})");
    assert!(
        most <= 5,
        "{most} at once: one page read and four ahead (--max-in-flight's default) at most"
    );
}

/// A sync of `sim` with `--max-in-flight n`: the most requests the
/// simulator answered at once, once the rows are checked.
fn most_in_flight_with(sim: &Simulator, n: &str) -> u64 {
    sim.reset_max_in_flight();
    let out = sync_json(sim, &["--max-in-flight", n]);
    let users: BTreeSet<String> = sim.tenant().users.iter().map(|u| u.id.clone()).collect();
    assert_eq!(ids(&out, "user"), users, "--max-in-flight {n}");
    assert_eq!(
        grant_ids(&out),
        tenant_grant_ids(sim),
        "--max-in-flight {n}"
    );
    sim.max_in_flight()
}

#[test]
fn the_operator_sets_how_many_pages_are_in_flight() {
    // 12 pages of users; each answer takes 100 ms.
    let sim = slow_sim(12_000, 10, 100, 100);
    let one = most_in_flight_with(&sim, "1");
    assert!(one <= 2, "{one} at once under --max-in-flight 1");
    let eight = most_in_flight_with(&sim, "8");
    assert!(
        (6..=9).contains(&eight),
        "{eight} at once under --max-in-flight 8"
    );
    assert_eq!(
        sim.requests()["GET /scim/v2/Users"],
        24,
        "each page once a sync"
    );
}

#[test]
fn more_in_flight_than_the_hosts_cap_is_refused_before_any_request() {
    let sim = sim(10, 1, 1);
    let run = Host::for_sim(&sim).run(&[
        "--max-in-flight",
        "20",
        "sync",
        "-f",
        "/nonexistent/out.json",
    ]);
    assert!(!run.ok());
    let line = run.stderr.trim();
    assert!(
        line.contains("--max-in-flight 20 is more than --max-concurrent-requests 16"),
        "{line}"
    );
    assert_eq!(line.lines().count(), 1, "{line}");
    assert_eq!(sim.total_requests(), 0);
}

#[test]
fn the_operator_caps_the_requests_in_flight_and_the_rows_stay_exact() {
    let sim = slow_sim(6_000, 20, 600, 50);
    // --max-in-flight follows the cap down (its default, 4, is higher).
    let out = sync_json(&sim, &["--max-concurrent-requests", "2"]);
    let users: BTreeSet<String> = sim.tenant().users.iter().map(|u| u.id.clone()).collect();
    assert_eq!(ids(&out, "user"), users);
    assert_eq!(grant_ids(&out), tenant_grant_ids(&sim));
    let most = sim.max_in_flight();
    assert_eq!(most, 2, "the cap, and used");
}

#[test]
fn a_429_on_a_page_sent_ahead_is_waited_out_before_it_is_asked_again() {
    // One page of users, then groups. Every second request is refused with
    // `Retry-After: 1`: the token passes, the page of users is refused and
    // passes on its second try, and the first page of groups, sent ahead
    // while the host writes the users, is refused.
    let sim = sim(300, 5, 200);
    sim.set_faults(Faults {
        rate_limit_every: Some(2),
        retry_after_secs: Some(1),
        ..Faults::default()
    });
    let out = sync_json(&sim, &[]);
    let groups: BTreeSet<String> = sim.tenant().groups.iter().map(|g| g.id.clone()).collect();
    assert_eq!(ids(&out, "group"), groups);
    assert_eq!(grant_ids(&out), tenant_grant_ids(&sim));
    let asked = sim.arrivals("GET /scim/v2/Groups");
    assert_eq!(asked.len(), 2, "refused once, then answered");
    let waited = asked[1].duration_since(asked[0]);
    assert!(
        waited >= Duration::from_millis(950),
        "asked again after {waited:?}, not after the second Ironclad asked for"
    );
}
