//! The c1z sink the driver holds: it hands each page to the writer thread
//! through a bounded channel (a few pages in flight, so fetching and
//! writing overlap and memory stays flat) and returns. An error on the
//! writer thread ends it; the next call or `finish` says why.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{sync_channel, SyncSender};
use std::sync::Arc;
use std::thread::JoinHandle;

use anyhow::{anyhow, bail, Context as _};

use super::resume::{ResumePolicy, Start};
use super::writer::{Msg, Options, Store};
use crate::model::{ConnectorInfo, Entitlement, Grant, Resource, ResourceType};
use crate::sink::{Finished, RunStats, SyncSink};

/// Pages queued for the writer before the driver waits for it.
const PAGES_IN_FLIGHT: usize = 4;

pub(super) struct C1zSink {
    tx: Option<SyncSender<Msg>>,
    thread: Option<JoinHandle<anyhow::Result<Finished>>>,
    cancel: Arc<AtomicBool>,
    /// Why the writer stopped, once it has: every later call says it again.
    failed: Option<String>,
    /// The driver's state saved by the unfinished sync this one continues.
    resumed: Option<String>,
    /// Whether pages queued when the sink is dropped are still written:
    /// a resumable sink's queue may end with a checkpoint worth keeping.
    resumable: bool,
}

impl C1zSink {
    /// Prepares the temp database (failing now if `target` cannot be
    /// written) and starts the writer thread.
    pub fn start(target: &Path, opts: Options) -> anyhow::Result<C1zSink> {
        C1zSink::spawn(Store::open(target, &opts)?, None, false)
    }

    /// [`C1zSink::start`] in the target's partial directory, continuing an
    /// unfinished sync there when `policy` allows; says how it began.
    pub fn start_resumable(
        target: &Path,
        opts: Options,
        policy: &ResumePolicy,
    ) -> anyhow::Result<(C1zSink, Start)> {
        let (store, start) = Store::open_resumable(target, &opts, policy)?;
        let resumed = match &start {
            Start::Resumed(r) => Some(r.state.clone()),
            _ => None,
        };
        Ok((C1zSink::spawn(store, resumed, true)?, start))
    }

    fn spawn(store: Store, resumed: Option<String>, resumable: bool) -> anyhow::Result<C1zSink> {
        let (tx, rx) = sync_channel(PAGES_IN_FLIGHT);
        let cancel = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&cancel);
        let thread = std::thread::Builder::new()
            .name("c1z-writer".into())
            .spawn(move || store.run(rx, &flag))
            .context("cannot start the c1z writer thread")?;
        Ok(C1zSink {
            tx: Some(tx),
            thread: Some(thread),
            cancel,
            failed: None,
            resumed,
            resumable,
        })
    }

    fn send(&mut self, msg: Msg) -> anyhow::Result<()> {
        if let Some(why) = &self.failed {
            bail!("{why}");
        }
        let sent = match &self.tx {
            Some(tx) => tx.send(msg).is_ok(),
            None => false,
        };
        if sent {
            return Ok(());
        }
        // The writer hung up: it failed, and its result says why.
        let err = match self.join() {
            Ok(_) => anyhow!("the c1z writer stopped before the sync finished"),
            Err(e) => e,
        };
        self.failed = Some(format!("{err:#}"));
        Err(err)
    }

    fn join(&mut self) -> anyhow::Result<Finished> {
        self.tx = None;
        match self.thread.take() {
            Some(thread) => thread
                .join()
                .unwrap_or_else(|_| Err(anyhow!("the c1z writer thread panicked"))),
            None => Err(anyhow!("the c1z writer has already stopped")),
        }
    }
}

impl SyncSink for C1zSink {
    fn begin(&mut self, connector: &ConnectorInfo, types: &[ResourceType]) -> anyhow::Result<()> {
        self.send(Msg::Begin(connector.clone(), types.to_vec()))
    }

    fn resources(&mut self, rows: Vec<Resource>) -> anyhow::Result<()> {
        self.send(Msg::Resources(rows))
    }

    fn entitlements(&mut self, rows: Vec<Entitlement>) -> anyhow::Result<()> {
        self.send(Msg::Entitlements(rows))
    }

    fn grants(&mut self, rows: Vec<Grant>) -> anyhow::Result<()> {
        self.send(Msg::Grants(rows))
    }

    fn resumed(&self) -> Option<&str> {
        self.resumed.as_deref()
    }

    fn checkpoint(&mut self, state: &str) -> anyhow::Result<()> {
        self.send(Msg::Checkpoint(state.to_string()))
    }

    fn finish(mut self: Box<Self>, run: RunStats) -> anyhow::Result<Finished> {
        self.send(Msg::Finish(run))?;
        self.join()
    }
}

impl Drop for C1zSink {
    /// Not finished: the writer skips what is queued (a resumable sink's
    /// writer commits it up to the last checkpoint), drops its database
    /// and temp directory (a resumable sink's stays if it holds progress),
    /// and the target stays as it was. Waiting for it means the directory
    /// is in its final state when the sink is gone.
    fn drop(&mut self) {
        if !self.resumable {
            self.cancel.store(true, Ordering::Relaxed);
        }
        self.tx = None;
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
