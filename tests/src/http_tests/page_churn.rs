//! `page_churn` through real HTTP: a page's answer depends on its
//! `startIndex` and `count` alone, never on what was asked before or beside
//! it, and two simulators of one spec answer alike.

use std::collections::HashSet;

use serde_json::Value;

use super::{scim, token_with};
use crate::{Faults, Hostile, SimConfig, Simulator, TenantSpec};

fn churning(users: usize, hostile: Option<Hostile>) -> Simulator {
    Simulator::start(SimConfig {
        tenant: TenantSpec {
            users,
            groups: 4,
            memberships: users,
            seed: 7,
        },
        faults: Faults {
            page_churn: true,
            hostile,
            ..Faults::default()
        },
        ..SimConfig::default()
    })
    .unwrap()
}

/// The raw body of `GET /Users?startIndex=s&count=c`.
fn page(sim: &Simulator, token: &str, s: u64, c: u64) -> Vec<u8> {
    let r = scim(
        sim,
        token,
        "GET",
        &format!("/Users?startIndex={s}&count={c}"),
        None,
    );
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    r.body
}

fn json(body: &[u8]) -> Value {
    serde_json::from_slice(body).unwrap()
}

fn ids(body: &[u8]) -> Vec<String> {
    json(body)["Resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["id"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn a_page_is_the_same_bytes_whatever_was_asked_before_or_beside_it() {
    let sim = churning(260, None);
    let token = token_with(&sim, None);
    let before = serde_json::to_string(&sim.tenant()).unwrap();
    let first = page(&sim, &token, 101, 50);
    // Other pages, in any order, some twice, some at once from threads.
    for (s, c) in [(1, 50), (201, 50), (151, 50), (1, 50), (51, 25), (1001, 10)] {
        page(&sim, &token, s, c);
    }
    std::thread::scope(|scope| {
        for s in [1, 51, 101, 151, 201, 251] {
            let (sim, token) = (&sim, &token);
            scope.spawn(move || page(sim, token, s, 50));
        }
    });
    assert_eq!(page(&sim, &token, 101, 50), first, "same page, same bytes");
    assert_eq!(
        serde_json::to_string(&sim.tenant()).unwrap(),
        before,
        "the real tenant never changed"
    );
    // A filtered lookup and a single user see the real tenant.
    let gone = sim.tenant().users[1].clone();
    assert!(!ids(&first).contains(&gone.id));
    let r = scim(&sim, &token, "GET", &format!("/Users/{}", gone.id), None);
    assert_eq!(r.status, 200);
}

#[test]
fn totals_grow_by_one_per_step_and_the_lies_follow_them() {
    for (hostile, lie) in [
        (None, 1.0),
        (Some(Hostile::TotalTooHigh), 10.0),
        (Some(Hostile::TotalTooLow), 1.0 / 3.0),
    ] {
        let sim = churning(300, hostile);
        let token = token_with(&sim, None);
        for k in 0..5u64 {
            let body = json(&page(&sim, &token, k * 100 + 1, 100));
            let truth = 300 + k;
            let want = (truth as f64 * lie).floor() as u64;
            assert_eq!(body["totalResults"], want, "{hostile:?} after {k} steps");
        }
    }
}

#[test]
fn paging_through_skips_one_user_per_step_and_keeps_the_admin() {
    let sim = churning(450, None);
    let token = token_with(&sim, None);
    let tenant = sim.tenant();
    let mut seen = Vec::new();
    for k in 0.. {
        let got = ids(&page(&sim, &token, k * 100 + 1, 100));
        if got.is_empty() {
            break;
        }
        seen.extend(got);
    }
    assert_eq!(seen[0], tenant.users[0].id, "the admin comes first");
    let unique: HashSet<&String> = seen.iter().collect();
    assert_eq!(unique.len(), seen.len(), "nothing listed twice");
    let real: HashSet<&String> = tenant.users.iter().map(|u| &u.id).collect();
    let listed_real = seen.iter().filter(|id| real.contains(id)).count();
    // Pages 1 to 4 came after 1 to 4 steps: each step shifted one user
    // past the page boundary before it.
    assert_eq!(listed_real, 450 - 4);
    assert_eq!(seen.len() - listed_real, 2 * 4, "the users made by 4 steps");

    // A tenant of three: past two steps only the admin is left to keep.
    let tiny = churning(3, None);
    let token = token_with(&tiny, None);
    let body = json(&page(&tiny, &token, 6, 1));
    assert_eq!(body["totalResults"], 1 + 2 * 5, "the admin and ten made");
    assert_eq!(
        json(&page(&tiny, &token, 1, 1))["Resources"][0]["id"],
        tiny.admin_id()
    );
}

#[test]
fn two_simulators_of_one_spec_serve_the_same_tenant_and_pages() {
    let (a, b) = (churning(500, None), churning(500, None));
    assert_eq!(
        serde_json::to_string(&a.tenant()).unwrap(),
        serde_json::to_string(&b.tenant()).unwrap()
    );
    assert_eq!(a.admin_id(), b.admin_id());
    let (ta, tb) = (token_with(&a, None), token_with(&b, None));
    for s in [1, 201, 401] {
        // Only `meta.location` names the server.
        let pa = String::from_utf8(page(&a, &ta, s, 200)).unwrap();
        let pb = String::from_utf8(page(&b, &tb, s, 200)).unwrap();
        assert_eq!(
            pa.replace(&a.base_url(), "BASE"),
            pb.replace(&b.base_url(), "BASE")
        );
    }
}
