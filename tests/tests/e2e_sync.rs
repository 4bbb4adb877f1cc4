//! End to end: the real host runs the real Ironclad component against the
//! simulator over loopback HTTP, and the output must be exactly the tenant.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::BTreeSet;

use common::{assert_previous_kept, read_json, sim, tenant_grant_ids, Host};
use ironclad_sim::{Faults, Simulator};
use serde_json::Value;

type Set = BTreeSet<String>;

fn strings(v: &Value, f: impl Fn(&Value) -> String) -> Set {
    v.as_array().expect("array").iter().map(f).collect()
}

/// Checks the sync output against the simulator's tenant, item by item.
fn assert_exact(out: &Value, sim: &Simulator) {
    let tenant = sim.tenant();
    let want_users: Set = tenant
        .users
        .iter()
        .map(|u| {
            format!(
                "{}|{}|{}|{}",
                u.id, u.user_name, u.given_name, u.family_name
            )
        })
        .collect();
    let got_users: Set = out["resources"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["id"]["resource_type"] == "user")
        .map(|r| {
            let u = &r["user"];
            assert_eq!(u["status"], "enabled");
            let emails = u["emails"].as_array().unwrap();
            assert!(emails
                .iter()
                .any(|e| e["primary"] == true && e["address"] == u["login"]));
            format!(
                "{}|{}|{}|{}",
                r["id"]["resource"].as_str().unwrap(),
                u["login"].as_str().unwrap(),
                u["given_name"].as_str().unwrap(),
                u["family_name"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(
        got_users.len(),
        tenant.users.len(),
        "one resource per user, no duplicates"
    );
    assert_eq!(got_users, want_users);

    let want_groups: Set = tenant
        .groups
        .iter()
        .map(|g| format!("{}|{}", g.id, g.display_name))
        .collect();
    let got_groups: Set = out["resources"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["id"]["resource_type"] == "group")
        .map(|r| {
            format!(
                "{}|{}",
                r["id"]["resource"].as_str().unwrap(),
                r["display_name"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(got_groups, want_groups);

    let want_ents: Set = tenant
        .groups
        .iter()
        .map(|g| format!("group:{}:member", g.id))
        .collect();
    let got_ents = strings(&out["entitlements"], |e| {
        assert_eq!(e["purpose"], "assignment");
        assert_eq!(e["slug"], "member");
        assert_eq!(e["grantable_to"], serde_json::json!(["user"]));
        e["id"].as_str().unwrap().to_string()
    });
    assert_eq!(got_ents, want_ents);

    let want_grants: Set = tenant_grant_ids(sim);
    let got_grants = strings(&out["grants"], |g| {
        let id = g["id"].as_str().unwrap().to_string();
        assert_eq!(
            id,
            format!(
                "{}:{}:{}",
                g["entitlement"].as_str().unwrap(),
                g["principal"]["resource_type"].as_str().unwrap(),
                g["principal"]["resource"].as_str().unwrap()
            )
        );
        id
    });
    assert_eq!(
        got_grants.len(),
        out["grants"].as_array().unwrap().len(),
        "no duplicate grants"
    );
    assert_eq!(got_grants, want_grants);

    let stats = &out["stats"];
    assert_eq!(stats["resources"]["user"], tenant.users.len());
    assert_eq!(stats["resources"]["group"], tenant.groups.len());
    assert_eq!(stats["grants"], want_grants.len());
}

#[test]
fn a_large_tenant_syncs_exactly_with_the_minimum_of_requests() {
    let sim = sim(2_600, 120, 7_000);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("out.json");
    let run =
        Host::for_sim(&sim).run(&["--log-level", "info", "sync", "-f", file.to_str().unwrap()]);
    run.assert_ok();
    let out = read_json(&file);
    assert_exact(&out, &sim);

    // Contract 0.2.0: one component call per page (3 user pages, 1 group
    // page), none per resource: the group pages carry their members.
    assert!(
        run.stderr.contains("pages=4 asked_one_by_one=0"),
        "{}",
        run.stderr
    );

    // One token, ceil(2600/1000) user pages, one group page (members come
    // with the groups): nothing asked twice, no per-group requests.
    let req = sim.requests();
    assert_eq!(req.get("POST /oauth/token"), Some(&1), "{req:?}");
    assert_eq!(req.get("GET /scim/v2/Users"), Some(&3), "{req:?}");
    assert_eq!(req.get("GET /scim/v2/Groups"), Some(&1), "{req:?}");
    assert_eq!(sim.total_requests(), 5, "{req:?}");
    assert_eq!(out["stats"]["http_requests"], 5);
    assert!(
        run.stdout.contains("http requests"),
        "summary printed:\n{}",
        run.stdout
    );
    assert!(
        run.stdout.contains("2600 resources"),
        "summary printed:\n{}",
        run.stdout
    );
}

#[test]
fn rate_limits_and_server_errors_still_give_the_exact_result() {
    let sim = sim(2_100, 30, 3_000);
    sim.set_faults(Faults {
        rate_limit_every: Some(2),
        retry_after_secs: None,
        server_error_every: Some(3),
        server_error_status: 503,
        ..Faults::default()
    });
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("out.json");
    Host::for_sim(&sim)
        .run(&["sync", "-f", file.to_str().unwrap()])
        .assert_ok();
    let out = read_json(&file);
    assert_exact(&out, &sim);
    assert!(
        out["stats"]["retries"].as_u64().unwrap() >= 2,
        "{}",
        out["stats"]
    );
}

#[test]
fn retry_after_is_honoured() {
    let sim = sim(300, 5, 200);
    sim.set_faults(Faults {
        rate_limit_every: Some(2),
        retry_after_secs: Some(1),
        ..Faults::default()
    });
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("out.json");
    let started = std::time::Instant::now();
    Host::for_sim(&sim)
        .run(&["sync", "-f", file.to_str().unwrap()])
        .assert_ok();
    assert_exact(&read_json(&file), &sim);
    // The one 429 asked for a second; the host's own backoff is 20 ms.
    assert!(started.elapsed() >= std::time::Duration::from_secs(1));
}

#[test]
fn a_wrong_secret_is_refused_clearly_and_keeps_the_previous_file() {
    let sim = sim(50, 3, 60);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("sync.json");
    std::fs::write(&file, "previous good sync").unwrap();
    let secret = "wrong-secret-value-123";
    let run = Host::for_sim(&sim)
        .env("BATON_IC_CLIENT_SECRET", secret)
        .run(&["sync", "-f", file.to_str().unwrap()]);
    assert!(!run.ok());
    let line = run.error_line();
    assert!(
        line.contains("unauthorized_client"),
        "Ironclad's words: {line}"
    );
    assert!(
        line.contains("ic-client-secret"),
        "says what to fix: {line}"
    );
    assert!(!run.stderr.contains(secret) && !run.stdout.contains(secret));
    assert!(!run.stderr.contains("panicked") && !run.stderr.contains("backtrace"));
    assert_previous_kept(dir.path(), &file, "previous good sync");
}

#[test]
fn a_missing_as_user_is_named_before_any_request() {
    let sim = sim(20, 2, 10);
    let run = Host::for_sim(&sim).env_remove("BATON_AS_USER_EMAIL").run(&[
        "sync",
        "-f",
        "/nonexistent/x.json",
    ]);
    assert!(!run.ok());
    let line = run.error_line();
    assert!(
        line.contains("as-user-email") && line.contains("as-user-id"),
        "{line}"
    );
    assert_eq!(sim.total_requests(), 0);
}

#[test]
fn an_unknown_environment_is_named_with_the_allowed_ones() {
    let sim = sim(20, 2, 10);
    let run = Host::for_sim(&sim)
        .env_remove("BATON_BASE_URL")
        .env("BATON_ENVIRONMENT", "mars1")
        .run(&["validate"]);
    assert!(!run.ok());
    let line = run.error_line();
    assert!(
        line.contains("mars1") && line.contains("na1") && line.contains("eu1"),
        "{line}"
    );
    assert_eq!(sim.total_requests(), 0);
}

#[test]
fn validate_says_whom_the_connector_acts_as() {
    let sim = sim(20, 2, 10);
    let run = Host::for_sim(&sim).run(&["validate"]);
    run.assert_ok();
    assert!(run.stdout.contains(&sim.admin_email()), "{}", run.stdout);
    assert_eq!(sim.requests().get("GET /oauth/userinfo"), Some(&1));
}

#[test]
fn config_flags_work_like_the_environment() {
    let sim = sim(30, 2, 10);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("out.json");
    // The secret comes from a file, as a mounted Kubernetes Secret would.
    let secret = dir.path().join("secret");
    std::fs::write(&secret, format!("{}\n", sim.client_secret())).unwrap();
    let run = Host::new().run(&[
        "--config",
        &format!("ic-client-id={}", sim.client_id()),
        "--config",
        &format!("ic-client-secret=@{}", secret.display()),
        "--config",
        &format!("as-user-email={}", sim.admin_email()),
        "--config",
        &format!("base-url={}", sim.base_url()),
        "sync",
        "-f",
        file.to_str().unwrap(),
    ]);
    run.assert_ok();
    assert_exact(&read_json(&file), &sim);
}

#[test]
fn metadata_lists_the_schema_with_secrets_marked() {
    let run = Host::new().run(&["metadata"]);
    run.assert_ok();
    let meta: Value = serde_json::from_str(&run.stdout).unwrap();
    let schema = meta["config_schema"].as_array().unwrap();
    let secret = schema
        .iter()
        .find(|f| f["name"] == "ic-client-secret")
        .unwrap();
    assert_eq!(secret["secret"], true);
    assert_eq!(secret["env"], "BATON_IC_CLIENT_SECRET");
    let env = schema.iter().find(|f| f["name"] == "environment").unwrap();
    assert_eq!(env["default"], "na1");
    let types: Set = strings(&meta["resource_types"], |t| {
        t["id"].as_str().unwrap().to_string()
    });
    assert_eq!(
        types,
        ["group", "user"].into_iter().map(String::from).collect()
    );
}
