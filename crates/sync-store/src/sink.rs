//! Where a sync's rows go as they arrive. The sync driver hands every page
//! to a [`SyncSink`] as soon as the connector answers it, so nothing holds
//! the whole tenant; the sink removes duplicates (offset paging under churn
//! repeats records), counts what it kept, and writes its file atomically in
//! [`SyncSink::finish`]. A sink dropped without `finish` leaves no trace: a
//! failed or interrupted sync never replaces a good file.

use std::collections::{BTreeMap, HashMap};

use crate::model::{ConnectorInfo, Entitlement, Grant, Resource, ResourceType, Stats, TotalMoved};

/// What the driver counted, handed to the sink when the last page is in.
#[derive(Clone, Debug, Default)]
pub struct RunStats {
    /// RFC 3339, when the sync started.
    pub started_at: String,
    /// HTTP requests the connector made.
    pub http_requests: u64,
    /// Requests retried after a rate limit or an unavailable answer.
    pub retries: u64,
    /// Duplicates the driver itself dropped (none today; the sink counts its own).
    pub duplicates_skipped: u64,
    /// Milliseconds spent fetching, from the start to the last page.
    pub fetch_ms: u64,
    /// Resource types whose reported total moved while the sync paged them.
    pub totals_moved: BTreeMap<String, TotalMoved>,
}

/// What a finished sink wrote.
#[derive(Clone, Debug)]
pub struct Finished {
    /// The stats as stored in the output.
    pub stats: Stats,
    /// The c1z sync id, when the output has one.
    pub sync_id: Option<String>,
    /// Previous finished syncs still in the file.
    pub kept: usize,
    /// Syncs dropped from the file.
    pub dropped: usize,
    /// Rows that name something this sync never listed (a grant of an
    /// unlisted entitlement, an entitlement of an unlisted resource): they
    /// were kept, carrying only ids where the full record would go.
    pub orphans: u64,
}

/// Receives one sync's rows in the order the driver fetches them: resource
/// types first, then pages of resources, entitlements and grants. An
/// entitlement arrives after the resource that owns it; a grant after its
/// entitlement when the connector listed it (a grant whose entitlement or
/// principal never came is still kept, carrying only ids).
pub trait SyncSink: Send {
    /// Called once, before any row.
    fn begin(&mut self, connector: &ConnectorInfo, types: &[ResourceType]) -> anyhow::Result<()>;
    /// A page of resources; one already seen in this sync counts as a duplicate.
    fn resources(&mut self, rows: Vec<Resource>) -> anyhow::Result<()>;
    /// A page of entitlements; duplicates by id count once.
    fn entitlements(&mut self, rows: Vec<Entitlement>) -> anyhow::Result<()>;
    /// A page of grants; duplicates by id count once.
    fn grants(&mut self, rows: Vec<Grant>) -> anyhow::Result<()>;
    /// Every row is in: write the output atomically and say what was written.
    fn finish(self: Box<Self>, run: RunStats) -> anyhow::Result<Finished>;
    /// Where the sync stands, after each page of resources and the rows
    /// that came with it: for a display, nothing is stored. Ignored unless
    /// a sink wants it.
    fn position(&mut self, _at: &Position<'_>) {}
    /// The driver's state as of the last checkpoint, when this sink
    /// continues an unfinished sync (its rows up to that checkpoint are
    /// kept); `None` for a new sync. Ignored unless a sink resumes.
    fn resumed(&self) -> Option<&str> {
        None
    }
    /// Makes every row handed over so far durable together with `state`
    /// (the driver's position, opaque here), so that a sync interrupted
    /// after this call, even by SIGKILL, can be continued from it. A sink
    /// that cannot resume ignores it.
    fn checkpoint(&mut self, _state: &str) -> anyhow::Result<()> {
        Ok(())
    }
}

/// Where a sync stands, handed to [`SyncSink::position`] after each page
/// of resources.
#[derive(Clone, Copy, Debug)]
pub struct Position<'a> {
    /// The resource type being listed (the component's word: escape it
    /// before showing it).
    pub resource_type: &'a str,
    /// Resources of this type listed so far.
    pub listed: u64,
    /// The application's latest count of this type, where the connector
    /// passed one on.
    pub total_hint: Option<u64>,
    /// Requests the component has made so far.
    pub http_requests: u64,
    /// Calls retried so far.
    pub retries: u64,
}

/// What a sink counts as rows arrive: the rows it kept (per resource type
/// for resources) and the duplicates it dropped. Both sinks turn it into the
/// stored [`Stats`] the same way.
#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize)]
pub(crate) struct Counts {
    /// Kept resources by type; a `HashMap` so the per-row lookup borrows.
    pub resources: HashMap<String, u64>,
    pub entitlements: u64,
    pub grants: u64,
    pub duplicates: u64,
    pub orphans: u64,
}

impl Counts {
    /// Counts one kept resource of type `t`.
    pub fn resource(&mut self, t: &str) {
        match self.resources.get_mut(t) {
            Some(n) => *n += 1,
            None => {
                self.resources.insert(t.to_string(), 1);
            }
        }
    }

    /// The stats of the sync: these counts plus what the driver counted.
    pub fn stats(&self, run: RunStats) -> Stats {
        Stats {
            resources: self
                .resources
                .iter()
                .map(|(t, n)| (t.clone(), *n))
                .collect(),
            entitlements: self.entitlements,
            grants: self.grants,
            http_requests: run.http_requests,
            retries: run.retries,
            duplicates_skipped: run.duplicates_skipped + self.duplicates,
            elapsed_ms: run.fetch_ms,
            started_at: run.started_at,
            totals_moved: run.totals_moved,
        }
    }
}
