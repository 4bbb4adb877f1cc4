//! The runtime as a library, in process: the real Ironclad component in a
//! real engine, over real HTTP to the simulator on loopback, streaming into
//! the real c1z sink. (`make test` builds the component first; these tests
//! fail naming what to build when it is missing or older than its sources.)

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use connector_runtime::sync_store::c1z;
use connector_runtime::{
    config, sync, Connector, ContractVersion, Engine, EngineConfig, Limits, OperatorEgress,
    RetryPolicy,
};
use ironclad_sim::{Faults, SimConfig, Simulator, TenantSpec};

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .unwrap()
        .to_path_buf()
}

fn newest(p: &Path) -> std::time::SystemTime {
    let meta = std::fs::metadata(p).unwrap();
    if meta.is_dir() {
        std::fs::read_dir(p)
            .unwrap()
            .map(|e| newest(&e.unwrap().path()))
            .max()
            .unwrap_or(std::time::SystemTime::UNIX_EPOCH)
    } else {
        meta.modified().unwrap()
    }
}

/// The release component, refused when missing or stale.
fn component_path(name: &str, sources: &str) -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace().join("target"));
    let p = target.join(format!("wasm32-wasip2/release/{name}.wasm"));
    let built = std::fs::metadata(&p)
        .and_then(|m| m.modified())
        .unwrap_or_else(|_| panic!("{} is missing: run `make component fixtures`", p.display()));
    assert!(
        built >= newest(&workspace().join(sources)),
        "{} is older than {sources}: run `make component fixtures`",
        p.display()
    );
    p
}

fn sim(users: usize, groups: usize, memberships: usize) -> Simulator {
    Simulator::start(SimConfig {
        tenant: TenantSpec {
            users,
            groups,
            memberships,
            seed: 11,
        },
        ..SimConfig::default()
    })
    .unwrap()
}

fn settings(sim: &Simulator) -> Vec<(String, String)> {
    vec![
        ("ic-client-id".into(), sim.client_id()),
        ("ic-client-secret".into(), sim.client_secret()),
        ("as-user-email".into(), sim.admin_email()),
        ("base-url".into(), sim.base_url()),
    ]
}

fn engine(cache: &Path) -> Engine {
    Engine::new(&EngineConfig {
        cache_dir: Some(cache.to_path_buf()),
        ..EngineConfig::default()
    })
    .unwrap()
}

/// The Ironclad component loaded through a cache in `dir`, with the default
/// limits and its metadata.
async fn ironclad(
    dir: &Path,
) -> (
    connector_runtime::Component,
    Limits,
    connector_runtime::Metadata,
) {
    let engine = engine(&dir.join("cache"));
    let component = engine
        .load(&component_path("ironclad_connector", "connector/src"))
        .unwrap();
    let limits = Limits::default();
    let (meta, _) = component.metadata(&limits).await.unwrap();
    (component, limits, meta)
}

#[tokio::test]
async fn a_streamed_sync_holds_exactly_the_tenant() {
    let sim = sim(1_200, 15, 2_500);
    // A total that lies high: paging must still stop, with every user.
    sim.set_faults(Faults {
        hostile: Some(ironclad_sim::Hostile::TotalTooHigh),
        ..Faults::default()
    });
    let dir = tempfile::tempdir().unwrap();
    let engine = engine(&dir.path().join("cache"));
    let component = engine
        .load(&component_path("ironclad_connector", "connector/src"))
        .unwrap();
    assert_eq!(component.contract_version(), ContractVersion::V0_3);
    let limits = Limits::default();
    let (meta, types) = component.metadata(&limits).await.unwrap();
    assert!(types
        .iter()
        .all(|t| t.resource_type.id != "user" || !t.has_grants));
    let resolved = config::resolve(&meta.config_schema, &[], &config::Environment::none());
    assert!(resolved.is_err(), "the secret is required");
    let mut conn = Connector::open(
        &component,
        &limits,
        settings(&sim),
        &OperatorEgress::default(),
    )
    .await
    .unwrap();
    let out = dir.path().join("s.c1z");
    let done = sync::run(
        &mut conn,
        &meta,
        &RetryPolicy::default(),
        c1z::sink(&out).unwrap(),
    )
    .await
    .unwrap();

    let tenant = sim.tenant();
    // Listings only: nothing asked per group, and every request counted.
    let asked: BTreeSet<String> = sim.requests().into_keys().collect();
    assert_eq!(
        asked,
        [
            "GET /scim/v2/Groups",
            "GET /scim/v2/Users",
            "POST /oauth/token"
        ]
        .map(String::from)
        .into(),
    );
    assert_eq!(done.stats.http_requests, sim.total_requests());

    let file = c1z::C1z::open(&out).unwrap();
    let latest = file.finished().unwrap().remove(0);
    assert_eq!(Some(&latest.sync_id), done.sync_id.as_ref());
    let got = file.load(&latest).unwrap();
    let users: BTreeSet<String> = got
        .resources
        .iter()
        .filter(|r| r.id.resource_type == "user")
        .map(|r| r.id.resource.clone())
        .collect();
    let want: BTreeSet<String> = tenant.users.iter().map(|u| u.id.clone()).collect();
    assert_eq!(users, want);
    let grants: BTreeSet<String> = got.grants.iter().map(|g| g.id.clone()).collect();
    let want: BTreeSet<String> = tenant
        .groups
        .iter()
        .flat_map(|g| {
            g.members
                .iter()
                .map(move |u| format!("group:{}:member:user:{u}", g.id))
        })
        .collect();
    assert_eq!(grants, want);
    assert_eq!(got.entitlements.len(), tenant.groups.len());
    assert_eq!(done.stats.grants as usize, want.len());
}

#[tokio::test]
async fn a_cancelled_sync_writes_nothing() {
    let sim = sim(3_000, 5, 100);
    sim.set_faults(Faults {
        latency: Duration::from_millis(300),
        ..Faults::default()
    });
    let dir = tempfile::tempdir().unwrap();
    let (component, limits, meta) = ironclad(dir.path()).await;
    let mut conn = Connector::open(
        &component,
        &limits,
        settings(&sim),
        &OperatorEgress::default(),
    )
    .await
    .unwrap();
    let out = dir.path().join("s.c1z");
    let sink = c1z::sink(&out).unwrap();
    let policy = RetryPolicy::default();
    let run = sync::run(&mut conn, &meta, &policy, sink);
    // Dropping the future is the cancellation.
    assert!(tokio::time::timeout(Duration::from_millis(900), run)
        .await
        .is_err());
    assert!(!out.exists(), "no output");
    let left: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(
        left,
        vec![std::ffi::OsString::from("cache")],
        "no temp files"
    );
}

#[tokio::test]
async fn components_of_both_contract_versions_load_and_compile_once() {
    let dir = tempfile::tempdir().unwrap();
    let engine = engine(&dir.path().join("cache"));
    let rogue = component_path("rogue_connector", "tests/fixtures/rogue");
    let first = engine.load(&rogue).unwrap();
    assert_eq!(first.contract_version(), ContractVersion::V0_1);
    assert!(!first.from_cache());
    let again = engine.load(&rogue).unwrap();
    assert!(again.from_cache(), "the second load is the cached code");
    let (meta, types) = again.metadata(&Limits::default()).await.unwrap();
    assert_eq!(meta.contract, ContractVersion::V0_1);
    assert!(types.iter().all(|t| t.has_entitlements && t.has_grants));
    let future = component_path("future_connector", "tests/fixtures/future-connector");
    let e = engine.load(&future).err().unwrap().to_string();
    assert!(e.contains("built for idgov:connector@0.4.0"), "{e}");
}

/// Two instances of one tenant, syncing at once with one ledger: they draw
/// on one budget, so no window holds more than it, and a third instance
/// opened after an idle window starts at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instances_sharing_a_ledger_share_the_tenants_budget() {
    // 4 pages of users per sync, 8 in all, under 3 every 2 s.
    let sim = sim(3_500, 3, 30);
    let dir = tempfile::tempdir().unwrap();
    let (component, limits, meta) = ironclad(dir.path()).await;
    let egress = OperatorEgress {
        rate_budgets: vec!["users=3/2s".parse().unwrap()],
        ..OperatorEgress::default()
    };
    let run = |name: &'static str| {
        let (component, limits, meta, egress) = (&component, &limits, &meta, &egress);
        let out = dir.path().join(name);
        let sim = &sim;
        async move {
            let mut conn = Connector::open(component, limits, settings(sim), egress)
                .await
                .unwrap();
            let sink = c1z::sink(&out).unwrap();
            sync::run(&mut conn, meta, &RetryPolicy::default(), sink)
                .await
                .unwrap()
        }
    };
    let started = std::time::Instant::now();
    let (a, b) = tokio::join!(run("a.c1z"), run("b.c1z"));
    assert_eq!(a.stats.resources["user"], 3_500);
    assert_eq!(b.stats.resources["user"], 3_500);
    let times = sim.arrivals("GET /scim/v2/Users");
    assert_eq!(times.len(), 8);
    let window = Duration::from_secs(2) - Duration::from_millis(300);
    let most = Simulator::most_in_window(&times, window);
    assert!(most <= 3, "{most} user pages within 2 s from two instances");
    // 8 pages at 3 a window: the last went out in the third window.
    assert!(started.elapsed() >= Duration::from_millis(3_700));

    // After an idle window the budget is whole again: no wait.
    tokio::time::sleep(Duration::from_secs(2)).await;
    run("c.c1z").await;
    let times = sim.arrivals("GET /scim/v2/Users");
    // From the third instance's token request (no user budget covers it).
    let token = sim.arrivals("POST /oauth/token")[2];
    let first = times[8].duration_since(token);
    assert!(
        first < Duration::from_secs(1),
        "the first page waited {first:?}"
    );
}
