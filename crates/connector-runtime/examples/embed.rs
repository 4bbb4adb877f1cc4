//! Embedding the runtime in another Rust program: load a connector
//! component, configure it, sync it into a c1z file, then grant and revoke
//! one membership. Settings come from the environment, the names the
//! existing connector's deployments use (`BATON_IC_CLIENT_ID`,
//! `BATON_IC_CLIENT_SECRET`, `BATON_AS_USER_EMAIL`, `BATON_BASE_URL`, …).
//!
//! ```text
//! cargo run -p connector-runtime --example embed -- COMPONENT.wasm OUT.c1z
//! ```
//! `make test` runs it against the Ironclad simulator (scripts/example.sh).

use std::path::Path;

use anyhow::{bail, Context as _};
use connector_runtime::sync_store::{c1z, ids};
use connector_runtime::{
    config, sync, Connector, Engine, EngineConfig, GrantOutcome, Limits, OperatorEgress,
    RetryPolicy, RevokeOutcome,
};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let [_, component, out] = args.as_slice() else {
        bail!("usage: embed COMPONENT.wasm OUT.c1z");
    };

    // One engine per process; it caches compiled components on disk.
    let engine = Engine::new(&EngineConfig::default())?;
    let component = engine.load(Path::new(component))?;
    let limits = Limits::default();

    // The connector describes its settings; take them from BATON_* variables.
    let (meta, _types) = component.metadata(&limits).await?;
    let lookup = |k: &str| std::env::var(k).ok();
    let env = config::Environment::bound("BATON_", &lookup)?;
    let settings = config::resolve(&meta.config_schema, &[], &env)?;

    // A fresh sandboxed instance: HTTP only to the origins its settings
    // grant, and writes let through (this program grants and revokes).
    let egress = OperatorEgress {
        writes: true,
        ..OperatorEgress::default()
    };
    let mut conn = Connector::open(&component, &limits, settings.values, &egress).await?;
    println!("acting as: {}", conn.validate().await?);

    // Stream a full sync into a c1z file (written atomically at the end).
    let sink = c1z::sink(Path::new(out))?;
    let done = sync::run(&mut conn, &meta, &RetryPolicy::default(), sink).await?;
    println!(
        "synced {} resources, {} entitlements, {} grants in {} requests",
        done.stats.resources.values().sum::<u64>(),
        done.stats.entitlements,
        done.stats.grants,
        done.stats.http_requests
    );

    // Read it back with sync-store alone: a user and a group they are not in.
    let file = c1z::C1z::open(Path::new(out))?;
    let latest = file
        .finished()?
        .into_iter()
        .next()
        .context("no finished sync")?;
    let sync = file.load(&latest)?;
    let group = sync
        .entitlements
        .iter()
        .find(|e| e.resource.resource_type == "group")
        .context("no group entitlement to grant")?;
    let member = |u: &str| {
        sync.grants
            .iter()
            .any(|g| g.entitlement == group.id && g.principal.resource == u)
    };
    let user = sync
        .resources
        .iter()
        .find(|r| r.id.resource_type == "user" && !member(&r.id.resource))
        .context("every user is in that group already")?;

    // Grant, then revoke, by the baton ids.
    let entitlement = ids::parse_entitlement_id(&group.id)?;
    match conn.grant(&user.id, &entitlement).await? {
        GrantOutcome::Granted(g) => println!("granted {}", g.id),
        GrantOutcome::AlreadyGranted => println!("already granted"),
    }
    let grant = ids::parse_grant_id(&ids::grant_id(
        &entitlement.resource,
        &entitlement.slug,
        &user.id,
    ))?;
    match conn.revoke(&grant).await? {
        RevokeOutcome::Revoked => println!("revoked {}", grant.id),
        RevokeOutcome::AlreadyRevoked => println!("already revoked {}", grant.id),
    }
    Ok(())
}
