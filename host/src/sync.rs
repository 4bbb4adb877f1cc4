//! Drives a full sync the way governance platforms expect: resource types,
//! then every resource of each type, then entitlements and grants per
//! resource, following page tokens and retrying transient refusals.

use std::collections::{BTreeMap, HashSet};
use std::time::{Duration, Instant};

use anyhow::bail;

use crate::bindings::exports::idgov::connector::types::{EntitlementPage, GrantPage, ResourcePage};
use crate::bindings::Metadata;
use crate::connector::{CallResult, Connector};
use crate::errors::CallError;
use crate::output::{self, SyncOutput};
use crate::retry::RetryPolicy;

/// Counters the sync keeps as it goes; HTTP requests come from the host's
/// outbound layer, which sees every request whoever makes it.
#[derive(Default)]
struct Progress {
    retries: u64,
    duplicates: u64,
}

/// What every page type has in common: the token of the next page.
trait Paged {
    fn next_token(&mut self) -> Option<String>;
}

impl Paged for ResourcePage {
    fn next_token(&mut self) -> Option<String> {
        self.next_page_token.take()
    }
}

impl Paged for EntitlementPage {
    fn next_token(&mut self) -> Option<String> {
        self.next_page_token.take()
    }
}

impl Paged for GrantPage {
    fn next_token(&mut self) -> Option<String> {
        self.next_page_token.take()
    }
}

/// The connector, the retry budget and the counters of one sync.
struct Driver<'a> {
    conn: &'a mut Connector,
    policy: &'a RetryPolicy,
    progress: Progress,
}

pub async fn run(
    conn: &mut Connector,
    meta: &Metadata,
    policy: &RetryPolicy,
    http_requests: impl Fn() -> u64,
) -> anyhow::Result<SyncOutput> {
    let started = Instant::now();
    let started_at = now_rfc3339();
    let mut d = Driver {
        conn,
        policy,
        progress: Progress::default(),
    };

    let types = d
        .with_retry(&|| "listing resource types".into(), async |c| {
            c.resource_types().await
        })
        .await?;

    let mut resources = Vec::new();
    let mut per_type: BTreeMap<String, u64> = BTreeMap::new();
    let mut totals_moved = BTreeMap::new();
    for rt in &types {
        let what = || format!("listing {} resources", rt.id);
        let mut seen: HashSet<String> = HashSet::new();
        let mut totals: Option<output::TotalMoved> = None;
        d.each_page(
            &what,
            async |c, token| c.list_resources(&rt.id, None, token).await,
            |page: ResourcePage, progress| {
                if let Some(hint) = page.total_hint {
                    let t = totals.get_or_insert(output::TotalMoved {
                        first: hint,
                        last: hint,
                    });
                    t.last = hint;
                }
                for r in page.items {
                    if r.id.resource_type != rt.id {
                        bail!(
                            "{}: the connector returned a resource of type {:?} (a bug in the connector)",
                            what(),
                            r.id.resource_type
                        );
                    }
                    // Offset paging shifts when the tenant changes under us:
                    // the same record can come twice, and it counts once.
                    if seen.insert(r.id.resource.clone()) {
                        resources.push(r);
                    } else {
                        progress.duplicates += 1;
                    }
                }
                Ok(())
            },
        )
        .await?;
        per_type.insert(rt.id.clone(), seen.len() as u64);
        if let Some(t) = totals.filter(|t| t.first != t.last) {
            tracing::warn!(
                resource_type = %rt.id,
                "the application's {} count moved from {} to {} during the sync: records created or deleted meanwhile may be missing until the next sync",
                rt.id, t.first, t.last
            );
            totals_moved.insert(rt.id.clone(), t);
        }
        tracing::info!(resource_type = %rt.id, count = seen.len(), "resources listed");
    }

    // The per-resource listings run once per resource (100,000s of them):
    // their descriptions are only formatted when something goes wrong.
    let mut entitlements = Vec::new();
    for r in &resources {
        d.each_page(
            &|| {
                format!(
                    "listing entitlements of {}:{}",
                    r.id.resource_type, r.id.resource
                )
            },
            async |c, token| c.list_entitlements(&r.id, token).await,
            |page: EntitlementPage, _| {
                entitlements.extend(page.items);
                Ok(())
            },
        )
        .await?;
    }
    tracing::info!(count = entitlements.len(), "entitlements listed");

    let mut grants = Vec::new();
    let mut grant_ids: HashSet<String> = HashSet::new();
    for r in &resources {
        d.each_page(
            &|| format!("listing grants of {}:{}", r.id.resource_type, r.id.resource),
            async |c, token| c.list_grants(&r.id, token).await,
            |page: GrantPage, progress| {
                for g in page.items {
                    if grant_ids.insert(g.id.clone()) {
                        grants.push(g);
                    } else {
                        progress.duplicates += 1;
                    }
                }
                Ok(())
            },
        )
        .await?;
    }
    tracing::info!(count = grants.len(), "grants listed");

    let stats = output::Stats {
        resources: per_type,
        entitlements: entitlements.len() as u64,
        grants: grants.len() as u64,
        http_requests: http_requests(),
        retries: d.progress.retries,
        duplicates_skipped: d.progress.duplicates,
        elapsed_ms: started.elapsed().as_millis() as u64,
        started_at,
        totals_moved,
    };
    Ok(SyncOutput {
        connector: output::ConnectorInfo {
            display_name: meta.display_name.clone(),
            version: meta.version.clone(),
        },
        resource_types: types.iter().map(Into::into).collect(),
        resources: resources.into_iter().map(Into::into).collect(),
        entitlements: entitlements.into_iter().map(Into::into).collect(),
        grants: grants.into_iter().map(Into::into).collect(),
        stats,
    })
}

/// Describes a listing for messages; called only when one is needed.
type Describe<'a> = &'a dyn Fn() -> String;

/// Follows one listing's page tokens and stops a connector that would loop.
struct Pager<'a> {
    what: Describe<'a>,
    token: Option<String>,
    used: HashSet<String>,
}

impl<'a> Pager<'a> {
    fn new(what: Describe<'a>) -> Self {
        Pager {
            what,
            token: None,
            used: HashSet::new(),
        }
    }

    /// Takes the next token; false when the listing is done.
    fn advance(&mut self, next: Option<String>) -> anyhow::Result<bool> {
        let Some(next) = next.filter(|t| !t.is_empty()) else {
            return Ok(false);
        };
        if self.token.as_deref() == Some(next.as_str()) {
            bail!(
                "{}: the connector returned the page token it was given ({next:?}); stopping the sync rather than loop forever (a bug in the connector)",
                (self.what)()
            );
        }
        if !self.used.insert(next.clone()) {
            bail!(
                "{}: the connector returned an earlier page token again ({next:?}); stopping the sync rather than loop forever (a bug in the connector)",
                (self.what)()
            );
        }
        self.token = Some(next);
        Ok(true)
    }
}

impl Driver<'_> {
    /// Every page of one listing, each fetched with retries and handed to
    /// `on_page`, until the connector says the listing is done.
    async fn each_page<P: Paged>(
        &mut self,
        what: Describe<'_>,
        mut fetch: impl AsyncFnMut(&mut Connector, Option<&str>) -> CallResult<P>,
        mut on_page: impl FnMut(P, &mut Progress) -> anyhow::Result<()>,
    ) -> anyhow::Result<()> {
        let mut pager = Pager::new(what);
        loop {
            let token = pager.token.clone();
            let mut page = self
                .with_retry(what, async |c| fetch(c, token.as_deref()).await)
                .await?;
            let next = page.next_token();
            on_page(page, &mut self.progress)?;
            if !pager.advance(next)? {
                return Ok(());
            }
        }
    }

    async fn with_retry<T>(
        &mut self,
        what: Describe<'_>,
        mut call: impl AsyncFnMut(&mut Connector) -> CallResult<T>,
    ) -> anyhow::Result<T> {
        let mut attempt = 0;
        let mut waited = Duration::ZERO;
        loop {
            let err: CallError = match call(self.conn).await? {
                Ok(v) => return Ok(v),
                Err(e) => e,
            };
            let what = what();
            let Some(retry_after) = err.retry_hint() else {
                bail!("{what}: {err}");
            };
            attempt += 1;
            let Some(delay) =
                self.policy
                    .delay(attempt, retry_after, waited, rand::random::<f64>())
            else {
                bail!(
                    "{what}: {err} (gave up after {attempt} attempts over {waited:?}; try again later)"
                );
            };
            tracing::warn!(
                attempt,
                delay_ms = delay.as_millis() as u64,
                "{what}: {err}; retrying"
            );
            tokio::time::sleep(delay).await;
            waited += delay;
            self.progress.retries += 1;
        }
    }
}

fn now_rfc3339() -> String {
    humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn pager_follows_tokens_and_stops_at_none() {
        let mut p = Pager::new(&|| "x".into());
        assert!(p.advance(Some("2".into())).unwrap());
        assert!(p.advance(Some("3".into())).unwrap());
        assert!(!p.advance(None).unwrap());
        let mut p = Pager::new(&|| "x".into());
        assert!(!p.advance(Some(String::new())).unwrap());
    }

    #[test]
    fn pager_stops_a_repeated_token() {
        let mut p = Pager::new(&|| "listing users".into());
        assert!(p.advance(Some("a".into())).unwrap());
        let e = p.advance(Some("a".into())).unwrap_err().to_string();
        assert!(e.contains("page token it was given"), "{e}");
    }

    #[test]
    fn pager_stops_a_cycle() {
        let mut p = Pager::new(&|| "x".into());
        p.advance(Some("a".into())).unwrap();
        p.advance(Some("b".into())).unwrap();
        assert!(p.advance(Some("a".into())).is_err());
    }
}
