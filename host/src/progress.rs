//! Progress of a sync on a terminal: the listing under way, rows and pages
//! so far and their rate, then the writing phase. A wrapper around the
//! sink, so it sees each page as it arrives; it also times the write, so the
//! summary's times add up whether or not a bar is drawn.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use indicatif::{HumanDuration, ProgressBar, ProgressDrawTarget, ProgressStyle};
use sync_store::model::{ConnectorInfo, Entitlement, Grant, Resource, ResourceType};
use sync_store::sink::{Finished, Position, RunStats, SyncSink};

/// The bar being drawn, if any: log lines are written around it.
static BAR: Mutex<Option<ProgressBar>> = Mutex::new(None);

/// Runs `write` with the bar lifted off the terminal, so a log line never
/// lands in the middle of it.
pub fn suspend<R>(write: impl FnOnce() -> R) -> R {
    let bar = BAR.lock().unwrap_or_else(PoisonError::into_inner).clone();
    match bar {
        Some(bar) => bar.suspend(write),
        None => write(),
    }
}

/// How long the sink took to write the output, once it has.
#[derive(Clone, Default)]
pub struct WriteTime(Arc<Mutex<Duration>>);

impl WriteTime {
    pub fn get(&self) -> Duration {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

pub struct Progress {
    inner: Box<dyn SyncSink>,
    bar: Option<Bar>,
    write_time: WriteTime,
    listing: String,
    resources: u64,
    entitlements: u64,
    grants: u64,
    pages: u64,
    /// What the driver last said of the listing under way.
    at: Listing,
    /// When the sink was made: the start of the first listing.
    started: Instant,
}

/// The listing under way, as the driver reports it after each page.
#[derive(Default)]
struct Listing {
    /// The resource type being listed.
    kind: String,
    /// When the current type's listing started: the end of the previous
    /// one, or of the start of the sync for the first.
    since: Option<Instant>,
    /// When the driver last reported.
    last: Option<Instant>,
    listed: u64,
    total: Option<u64>,
    requests: u64,
    retries: u64,
}

impl Listing {
    /// The time left at this listing's rate so far, once there is a total
    /// and something to measure the rate on.
    fn eta(&self, now: Instant) -> Option<Duration> {
        let total = self.total?;
        let spent = now.duration_since(self.since?);
        if self.listed == 0 || total <= self.listed || spent.is_zero() {
            return None;
        }
        let left = (total - self.listed) as f64 * spent.as_secs_f64() / self.listed as f64;
        Some(Duration::from_secs_f64(left.min(1e7)))
    }
}

impl Progress {
    /// Wraps `inner`; draws a bar only when `draw` (stderr is a terminal
    /// and logs are text).
    pub fn wrap(inner: Box<dyn SyncSink>, draw: bool) -> (Box<dyn SyncSink>, WriteTime) {
        let bar = draw.then(|| {
            let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
            bar.set_style(
                ProgressStyle::with_template("{spinner} {elapsed:>4} {msg}")
                    .unwrap_or_else(|_| ProgressStyle::default_spinner()),
            );
            bar.enable_steady_tick(Duration::from_millis(120));
            *BAR.lock().unwrap_or_else(PoisonError::into_inner) = Some(bar.clone());
            Bar(bar)
        });
        let write_time = WriteTime::default();
        let sink = Progress {
            inner,
            bar,
            write_time: write_time.clone(),
            listing: String::new(),
            resources: 0,
            entitlements: 0,
            grants: 0,
            pages: 0,
            at: Listing::default(),
            started: Instant::now(),
        };
        (Box::new(sink), write_time)
    }

    fn show(&self, rows: usize) {
        if let Some(Bar(bar)) = &self.bar {
            bar.inc(rows as u64);
            let of = match self.at.total {
                Some(total) => format!("{} of {total}", self.at.listed),
                None => format!("{}", self.at.listed),
            };
            let eta = match self.at.eta(Instant::now()) {
                Some(left) => format!(", about {} left", HumanDuration(left)),
                None => String::new(),
            };
            bar.set_message(format!(
                "listing {} ({of}{eta}): {} resources, {} entitlements, {} grants, {} pages, {} requests, {} retries, {} rows/s",
                self.listing,
                self.resources,
                self.entitlements,
                self.grants,
                self.pages,
                self.at.requests,
                self.at.retries,
                rate(bar.position(), self.started.elapsed()),
            ));
        }
    }
}

impl Progress {
    /// The listing of `kind` under way: a new type's count and rate start
    /// over, from where the previous listing ended (a listing with no rows
    /// is first seen by `position`).
    fn enter(&mut self, kind: &str) {
        if kind == self.at.kind {
            return;
        }
        self.at = Listing {
            kind: kind.to_owned(),
            since: self.at.last.or(Some(self.started)),
            last: self.at.last,
            listed: 0,
            total: None,
            requests: self.at.requests,
            retries: self.at.retries,
        };
        // The type's id comes from the component: shown escaped.
        self.listing = crate::terminal::escape(kind).into_owned();
    }
}

/// Rows a second, whole.
fn rate(rows: u64, spent: Duration) -> u64 {
    let secs = spent.as_secs_f64();
    if secs <= 0.0 {
        return 0;
    }
    (rows as f64 / secs) as u64
}

/// The drawn bar, cleared from the terminal however the sync ends.
struct Bar(ProgressBar);

impl Drop for Bar {
    fn drop(&mut self) {
        self.0.finish_and_clear();
        *BAR.lock().unwrap_or_else(PoisonError::into_inner) = None;
    }
}

impl SyncSink for Progress {
    fn resumed(&self) -> Option<&str> {
        self.inner.resumed()
    }

    fn checkpoint(&mut self, state: &str) -> anyhow::Result<()> {
        self.inner.checkpoint(state)
    }

    fn begin(&mut self, connector: &ConnectorInfo, types: &[ResourceType]) -> anyhow::Result<()> {
        self.inner.begin(connector, types)
    }

    fn resources(&mut self, rows: Vec<Resource>) -> anyhow::Result<()> {
        let n = rows.len();
        if let Some(first) = rows.first() {
            self.enter(&first.id.resource_type);
        }
        self.resources += n as u64;
        self.pages += 1;
        self.inner.resources(rows)?;
        self.show(n);
        Ok(())
    }

    fn entitlements(&mut self, rows: Vec<Entitlement>) -> anyhow::Result<()> {
        let n = rows.len();
        self.entitlements += n as u64;
        self.inner.entitlements(rows)?;
        self.show(n);
        Ok(())
    }

    fn grants(&mut self, rows: Vec<Grant>) -> anyhow::Result<()> {
        let n = rows.len();
        self.grants += n as u64;
        self.inner.grants(rows)?;
        self.show(n);
        Ok(())
    }

    fn position(&mut self, at: &Position<'_>) {
        self.enter(at.resource_type);
        self.at.last = Some(Instant::now());
        self.at.listed = at.listed;
        self.at.total = at.total_hint;
        self.at.requests = at.http_requests;
        self.at.retries = at.retries;
        self.inner.position(at);
        self.show(0);
    }

    fn finish(self: Box<Self>, run: RunStats) -> anyhow::Result<Finished> {
        if let Some(Bar(bar)) = &self.bar {
            bar.set_message(format!(
                "writing {} resources, {} entitlements, {} grants ({} requests, {} retries)",
                self.resources, self.entitlements, self.grants, run.http_requests, run.retries
            ));
        }
        let started = Instant::now();
        // The bar stays drawn (it goes when this function's `self` does)
        // while the sink writes.
        let Progress {
            inner,
            write_time,
            bar: _bar,
            ..
        } = *self;
        let done = inner.finish(run);
        *write_time.0.lock().unwrap_or_else(PoisonError::into_inner) = started.elapsed();
        done
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listing(listed: u64, total: Option<u64>, spent_ms: u64) -> (Listing, Instant) {
        let since = Instant::now();
        let at = Listing {
            kind: "user".into(),
            since: Some(since),
            last: Some(since),
            listed,
            total,
            requests: 0,
            retries: 0,
        };
        (at, since + Duration::from_millis(spent_ms))
    }

    #[test]
    fn the_time_left_follows_the_listing_rate() {
        // 1,000 of 4,000 in 2 s: 3,000 more at the same rate take 6 s.
        let (at, now) = listing(1000, Some(4000), 2000);
        assert_eq!(at.eta(now), Some(Duration::from_secs(6)));
    }

    #[test]
    fn no_time_left_is_guessed_without_a_total_a_rate_or_anything_left() {
        let (at, now) = listing(1000, None, 2000);
        assert_eq!(at.eta(now), None);
        let (at, now) = listing(0, Some(4000), 2000);
        assert_eq!(at.eta(now), None);
        // A total that lies (fewer than listed) gives no negative time.
        let (at, now) = listing(5000, Some(4000), 2000);
        assert_eq!(at.eta(now), None);
    }
}
