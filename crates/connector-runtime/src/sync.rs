//! Drives a full sync the way governance platforms expect (resource types,
//! every resource of each type, the entitlements and grants of the
//! resources that have them, each page's right after that page), following
//! page tokens, retrying transient refusals, and handing every page to a
//! [`SyncSink`] as it arrives: nothing here holds the tenant. With a 0.2.0 connector whose pages carry their
//! items' entitlements and grants, a sync is one component call per page.
//!
//! Every page of resources is followed by a checkpoint: the sink commits
//! the rows so far with where the sync stands ([`Checkpoint`]), and a sink
//! that continues an unfinished sync hands that back, so the sync goes on
//! from there ([`SyncSink::resumed`]).
//!
//! Cancelling is dropping the future: the sink goes with it, and a sink
//! dropped before `finish` writes no output (a resumable one keeps what its
//! checkpoints committed).

use std::collections::HashSet;
use std::time::{Duration, Instant};

use anyhow::bail;
use sync_store::model::{ConnectorInfo, ResourceId, TotalMoved};
use sync_store::sink::{Finished, Position, RunStats, SyncSink};

use crate::caps::{measure, past_deadline, SyncCaps, Tally};
use crate::checkpoint::{Checkpoint, Next};
use crate::connector::Connector;
use crate::errors::CallError;
use crate::retry::RetryPolicy;
use crate::types::{EntitlementPage, GrantPage, Metadata, TypeInfo};

/// What the per-resource page types have in common: the token of the next
/// page, and their rows' count and size.
trait Paged {
    fn next_token(&mut self) -> Option<String>;
    fn measure(&self) -> (usize, u64);
}

impl Paged for EntitlementPage {
    fn next_token(&mut self) -> Option<String> {
        self.next_page_token.take()
    }
    fn measure(&self) -> (usize, u64) {
        measure(&self.items)
    }
}

impl Paged for GrantPage {
    fn next_token(&mut self) -> Option<String> {
        self.next_page_token.take()
    }
    fn measure(&self) -> (usize, u64) {
        measure(&self.items)
    }
}

/// The connector, the retry budget and the counters of one sync.
struct Driver<'a> {
    conn: &'a mut Connector,
    policy: &'a RetryPolicy,
    retries: u64,
    pages: u64,
    tally: Tally,
    /// When this process started on the sync.
    started: Instant,
    /// Requests, retries and fetching milliseconds of the earlier
    /// processes of a continued sync.
    earlier: (u64, u64, u64),
    /// When the last checkpoint was made.
    saved: Instant,
}

/// How often, at most, the position is handed to the sink while resources
/// are asked about one by one (after every page of resources it always
/// is); the sink decides which positions it commits.
const SAVE_EVERY: Duration = Duration::from_millis(250);

/// Runs a full sync of `conn` into `sink` under the default [`SyncCaps`]
/// and finishes the sink: the output is written only when every page came
/// in.
pub async fn run(
    conn: &mut Connector,
    meta: &Metadata,
    policy: &RetryPolicy,
    sink: Box<dyn SyncSink>,
) -> anyhow::Result<Finished> {
    run_with(conn, meta, policy, &SyncCaps::default(), sink).await
}

/// [`run`] under `caps`: past any of them the sync stops with an error
/// naming the cap, and the sink is dropped unfinished (nothing written).
pub async fn run_with(
    conn: &mut Connector,
    meta: &Metadata,
    policy: &RetryPolicy,
    caps: &SyncCaps,
    sink: Box<dyn SyncSink>,
) -> anyhow::Result<Finished> {
    // The timer stops a sync waiting on the network; a component that
    // answers at once never lets it fire, so each call also checks the
    // clock (`Driver::with_retry`).
    match tokio::time::timeout(caps.deadline, drive(conn, meta, policy, caps, sink)).await {
        Ok(done) => done,
        Err(_) => Err(past_deadline(caps.deadline)),
    }
}

async fn drive(
    conn: &mut Connector,
    meta: &Metadata,
    policy: &RetryPolicy,
    caps: &SyncCaps,
    mut sink: Box<dyn SyncSink>,
) -> anyhow::Result<Finished> {
    let saved = sink.resumed().map(Checkpoint::parse).transpose()?;
    let resuming = saved.is_some();
    let mut d = Driver {
        conn,
        policy,
        retries: 0,
        pages: 0,
        tally: Tally::new(*caps),
        started: Instant::now(),
        earlier: (0, 0, 0),
        saved: Instant::now(),
    };

    let types: Vec<TypeInfo> = d
        .with_retry(&|| "listing resource types".into(), async |c| {
            c.resource_types().await
        })
        .await?;
    // Resource ids are `TYPE:ID` split at the first colon (in the c1z's
    // external ids and on the command line): a type id with one would make
    // two resources one.
    if let Some(t) = types.iter().find(|t| t.resource_type.id.contains(':')) {
        bail!(
            "the connector declared the resource type {:?}, whose id contains ':'; type ids may not (a bug in the connector)",
            t.resource_type.id
        );
    }
    let ids: Vec<String> = types.iter().map(|t| t.resource_type.id.clone()).collect();
    let mut cp = match saved {
        None => Checkpoint::new(now_rfc3339(), ids),
        Some(mut cp) => {
            if cp.types != ids {
                bail!(
                    "cannot continue the unfinished sync: the connector's resource types changed since it started; start it over (--fresh)"
                );
            }
            // A token from an instance that is gone may mean nothing to a
            // connector that did not promise otherwise: its listing starts
            // again, and what it returns twice counts once.
            if !d.conn.page_tokens_outlive_instance() {
                cp.restart_listing();
            }
            d.tally.restore(cp.rows, cp.bytes);
            d.earlier = (cp.http_requests, cp.retries, cp.fetch_ms);
            tracing::info!(position = %cp.describe(), "continuing an unfinished sync");
            cp
        }
    };
    sink.begin(
        &ConnectorInfo {
            display_name: meta.display_name.clone(),
            version: meta.version.clone(),
        },
        &types
            .iter()
            .map(|t| t.resource_type.clone())
            .collect::<Vec<_>>(),
    )?;

    // Resources already queued to be asked about one by one in this
    // process (a connector may return one on several pages).
    let mut pending_seen: HashSet<ResourceId> = HashSet::new();
    let mut asked_one_by_one = 0u64;
    let mut refetch = resuming && cp.left() > 0;
    while let Some(t) = types.get(cp.done) {
        let rt = &t.resource_type.id;
        let what = || format!("listing {rt} resources");
        let mut pager = Pager::new(&what);
        pager.pages = cp.listing_pages;
        loop {
            // Continuing a sync stopped while it asked about a page's
            // resources one by one: that page is listed again first. A
            // connector may answer those questions from what the page left
            // in the instance (Ironclad's group members), which a new
            // instance lacks; listing the page again costs one request
            // where asking without it could cost one per resource.
            let again = std::mem::take(&mut refetch);
            let at = if again {
                cp.page.clone()
            } else {
                // The last page's resources still to ask about, each for
                // its entitlements and grants.
                asked_one_by_one += cp.left() as u64;
                d.drain(t, &mut cp, sink.as_mut()).await?;
                cp.next.clone()
            };
            let token = match &at {
                Next::End => break,
                Next::Start => None,
                Next::Token(s) => Some(s.clone()),
            };
            pager.token = token.clone();
            let mut page = d
                .with_retry(&what, async |c| {
                    c.list_resources(rt, None, token.as_deref()).await
                })
                .await?;
            d.pages += 1;
            let next = page.next_page_token.take();
            if let Some(hint) = page.total_hint {
                cp.totals
                    .get_or_insert(TotalMoved {
                        first: hint,
                        last: hint,
                    })
                    .last = hint;
            }
            if let Some(r) = page.items.iter().find(|r| &r.id.resource_type != rt) {
                bail!(
                    "{}: the connector returned a resource of type {:?} (a bug in the connector)",
                    what(),
                    r.id.resource_type
                );
            }
            if !again {
                cp.listed += page.items.len() as u64;
            }
            pager.count(&d.tally)?;
            cp.listing_pages = pager.pages;
            let (n, bytes) = measure(&page.items);
            d.tally.add(n, bytes)?;
            if let Some(inc) = &page.included {
                let (n, bytes) = measure(&inc.entitlements);
                d.tally.add(n, bytes)?;
                let (n, bytes) = measure(&inc.grants);
                d.tally.add(n, bytes)?;
            }
            let mut asked = Vec::new();
            let mut ask = |id: ResourceId| {
                if (t.has_entitlements || t.has_grants) && pending_seen.insert(id.clone()) {
                    asked.push(id);
                }
            };
            match page.included {
                Some(inc) => {
                    inc.pending.into_iter().for_each(&mut ask);
                    sink.resources(page.items)?;
                    if !inc.entitlements.is_empty() {
                        sink.entitlements(inc.entitlements)?;
                    }
                    if !inc.grants.is_empty() {
                        sink.grants(inc.grants)?;
                    }
                }
                None => {
                    page.items.iter().map(|r| r.id.clone()).for_each(&mut ask);
                    sink.resources(page.items)?;
                }
            }
            // The same resources to ask about as before the restart: those
            // done stay done. Otherwise (the page changed meanwhile) all
            // are asked about, and what comes twice counts once.
            if !(again && asked == cp.pending) {
                cp.pending = asked;
                cp.entitlements_done = 0;
                cp.grants_done = 0;
            }
            cp.page = at;
            cp.next = match pager.advance(next)? {
                true => Next::Token(pager.token.clone().unwrap_or_default()),
                false => Next::End,
            };
            sink.position(&Position {
                resource_type: rt,
                listed: cp.listed,
                total_hint: cp.totals.as_ref().map(|t| t.last),
                http_requests: d.requests(),
                retries: d.retries(),
            });
            // The page's rows, and its resources still to ask about, saved
            // together: they are asked about right away, while the
            // connector may still hold what it read for them.
            d.save(&mut cp, sink.as_mut())?;
        }
        if let Some(moved) = cp.totals.take().filter(|t| t.first != t.last) {
            tracing::warn!(
                resource_type = %rt,
                "the application's {} count moved from {} to {} during the sync: records created or deleted meanwhile may be missing until the next sync",
                rt, moved.first, moved.last
            );
            cp.totals_moved.insert(rt.clone(), moved);
        }
        tracing::info!(
            resource_type = %rt,
            rows = cp.listed,
            component_memory_mib = d.conn.memory_bytes() >> 20,
            "resources listed"
        );
        cp.done += 1;
        cp.enter_listing();
        d.save(&mut cp, sink.as_mut())?;
    }
    tracing::info!(
        pages = d.pages,
        asked_one_by_one,
        component_memory_mib = d.conn.memory_bytes() >> 20,
        "listings done"
    );

    let run = RunStats {
        started_at: cp.started_at,
        http_requests: d.requests(),
        retries: d.retries(),
        duplicates_skipped: 0,
        fetch_ms: d.fetch_ms(),
        totals_moved: cp.totals_moved,
    };
    sink.finish(run)
}

/// Describes a listing for messages; called only when one is needed.
// Sync, so a sync future can move between the threads of a service.
type Describe<'a> = &'a (dyn Fn() -> String + Sync);

/// Follows one listing's page tokens and stops a connector that would loop.
struct Pager<'a> {
    what: Describe<'a>,
    token: Option<String>,
    used: HashSet<String>,
    pages: u64,
}

impl<'a> Pager<'a> {
    fn new(what: Describe<'a>) -> Self {
        Pager {
            what,
            token: None,
            used: HashSet::new(),
            pages: 0,
        }
    }

    /// Counts a page of the listing against the page cap.
    fn count(&mut self, tally: &Tally) -> anyhow::Result<()> {
        self.pages += 1;
        tally.check_pages(self.pages, self.what)
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
    /// Requests so far, in every process of the sync.
    fn requests(&self) -> u64 {
        self.earlier.0 + self.conn.http_requests()
    }

    /// Retries so far, in every process of the sync.
    fn retries(&self) -> u64 {
        self.earlier.1 + self.retries
    }

    /// Milliseconds of fetching so far, in every process of the sync.
    fn fetch_ms(&self) -> u64 {
        self.earlier.2 + self.started.elapsed().as_millis() as u64
    }

    /// [`Driver::save`] when the last checkpoint is [`SAVE_EVERY`] old:
    /// one resource's entitlements or grants can be a single quick call,
    /// and a commit for each would cost more than it saves.
    fn save_soon(&mut self, cp: &mut Checkpoint, sink: &mut dyn SyncSink) -> anyhow::Result<()> {
        if self.saved.elapsed() < SAVE_EVERY {
            return Ok(());
        }
        self.save(cp, sink)
    }

    /// Commits the rows so far with the position `cp`, its counters brought
    /// up to date.
    fn save(&mut self, cp: &mut Checkpoint, sink: &mut dyn SyncSink) -> anyhow::Result<()> {
        self.saved = Instant::now();
        cp.http_requests = self.requests();
        cp.retries = self.retries();
        cp.fetch_ms = self.fetch_ms();
        (cp.rows, cp.bytes) = self.tally.taken();
        sink.checkpoint(&cp.to_text()?)
    }

    /// Lists the entitlements, then the grants, of each pending resource of
    /// type `t` not done yet, as far as the type has them, with a
    /// checkpoint after each (one by one: per-resource listings can run
    /// 100,000s of times, so their descriptions are only formatted when
    /// something goes wrong).
    async fn drain(
        &mut self,
        t: &TypeInfo,
        cp: &mut Checkpoint,
        sink: &mut dyn SyncSink,
    ) -> anyhow::Result<()> {
        if cp.pending.is_empty() {
            return Ok(());
        }
        while t.has_entitlements && cp.entitlements_done < cp.pending.len() {
            let id = &cp.pending[cp.entitlements_done];
            self.each_page(
                &|| format!("listing entitlements of {id}"),
                async |c, token| c.list_entitlements(id, token).await,
                |page: EntitlementPage| sink.entitlements(page.items),
            )
            .await?;
            cp.entitlements_done += 1;
            self.save_soon(cp, sink)?;
        }
        while t.has_grants && cp.grants_done < cp.pending.len() {
            let id = &cp.pending[cp.grants_done];
            self.each_page(
                &|| format!("listing grants of {id}"),
                async |c, token| c.list_grants(id, token).await,
                |page: GrantPage| sink.grants(page.items),
            )
            .await?;
            cp.grants_done += 1;
            self.save_soon(cp, sink)?;
        }
        // Saved now, not with the next page: a sync killed while that page
        // is fetched would otherwise list this one again.
        cp.pending.clear();
        cp.entitlements_done = 0;
        cp.grants_done = 0;
        self.save(cp, sink)
    }

    /// Every page of one listing, each fetched with retries and handed to
    /// `on_page`, until the connector says the listing is done.
    async fn each_page<P: Paged>(
        &mut self,
        what: Describe<'_>,
        mut fetch: impl AsyncFnMut(&mut Connector, Option<&str>) -> Result<P, CallError>,
        mut on_page: impl FnMut(P) -> anyhow::Result<()>,
    ) -> anyhow::Result<()> {
        let mut pager = Pager::new(what);
        loop {
            let token = pager.token.clone();
            let mut page = self
                .with_retry(what, async |c| fetch(c, token.as_deref()).await)
                .await?;
            self.pages += 1;
            pager.count(&self.tally)?;
            let (rows, bytes) = page.measure();
            self.tally.add(rows, bytes)?;
            let next = page.next_token();
            on_page(page)?;
            if !pager.advance(next)? {
                return Ok(());
            }
        }
    }

    async fn with_retry<T>(
        &mut self,
        what: Describe<'_>,
        mut call: impl AsyncFnMut(&mut Connector) -> Result<T, CallError>,
    ) -> anyhow::Result<T> {
        let mut attempt = 0;
        let mut waited = Duration::ZERO;
        loop {
            self.tally.check_deadline()?;
            let err = match call(self.conn).await {
                Ok(v) => return Ok(v),
                Err(e) => e,
            };
            let what = what();
            let Some(retry_after) = err.retry_hint() else {
                if matches!(err, CallError::Connector(_)) {
                    bail!("{what}: {err}");
                }
                return Err(err.into());
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
            self.retries += 1;
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
