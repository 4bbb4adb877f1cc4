//! Progress of a sync on a terminal: the listing under way, rows and pages
//! so far and their rate, then the writing phase. A wrapper around the
//! sink, so it sees each page as it arrives; it also times the write, so the
//! summary's times add up whether or not a bar is drawn.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use sync_store::model::{ConnectorInfo, Entitlement, Grant, Resource, ResourceType};
use sync_store::sink::{Finished, RunStats, SyncSink};

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
}

impl Progress {
    /// Wraps `inner`; draws a bar only when `draw` (stderr is a terminal
    /// and logs are text).
    pub fn wrap(inner: Box<dyn SyncSink>, draw: bool) -> (Box<dyn SyncSink>, WriteTime) {
        let bar = draw.then(|| {
            let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
            bar.set_style(
                ProgressStyle::with_template("{spinner} {elapsed:>4} {msg} ({per_sec} rows)")
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
        };
        (Box::new(sink), write_time)
    }

    fn show(&self, rows: usize) {
        if let Some(Bar(bar)) = &self.bar {
            bar.inc(rows as u64);
            bar.set_message(format!(
                "listing {}: {} resources, {} entitlements, {} grants, {} pages",
                self.listing, self.resources, self.entitlements, self.grants, self.pages
            ));
        }
    }
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
    fn begin(&mut self, connector: &ConnectorInfo, types: &[ResourceType]) -> anyhow::Result<()> {
        self.inner.begin(connector, types)
    }

    fn resources(&mut self, rows: Vec<Resource>) -> anyhow::Result<()> {
        let n = rows.len();
        if let Some(first) = rows.first() {
            // The type's id comes from the component: shown escaped.
            self.listing = crate::terminal::escape(&first.id.resource_type).into_owned();
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
