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
    let sim = sim(6_000, 1_500, 6_000);
    sim.set_faults(Faults {
        latency: Duration::from_millis(100),
        ..Faults::default()
    });
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
        most <= 4,
        "{most} at once: one page read and three ahead at most"
    );
}

#[test]
fn the_operator_caps_the_requests_in_flight_and_the_rows_stay_exact() {
    let sim = sim(6_000, 20, 600);
    sim.set_faults(Faults {
        latency: Duration::from_millis(50),
        ..Faults::default()
    });
    // Pages sent ahead past the cap fail inside the component and are asked
    // for again in their turn.
    let out = sync_json(&sim, &["--max-concurrent-requests", "2"]);
    let users: BTreeSet<String> = sim.tenant().users.iter().map(|u| u.id.clone()).collect();
    assert_eq!(ids(&out, "user"), users);
    assert_eq!(grant_ids(&out), tenant_grant_ids(&sim));
    let most = sim.max_in_flight();
    assert_eq!(most, 2, "the cap, and used");
}
