//! The service's state and its jobs: one engine and one compiled component
//! per path shared by every tenant, a loop per tenant that syncs it at
//! start and then every interval, and at most `--max-concurrent-syncs`
//! syncs at once. Each sync is a fresh sandboxed instance writing the
//! tenant's own c1z file; what one tenant's sync does (fail, trap, hang
//! until its timeout, use a wrong secret) ends in that tenant's report and
//! nowhere else.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant, SystemTime};

use anyhow::Context as _;
use serde::Serialize;
use tokio::sync::{Notify, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument as _;

use connector_runtime::config::{self, Secrets};
use connector_runtime::{
    sync, Component, Connector, Engine, Limits, Metadata, OperatorEgress, RetryPolicy, SyncCaps,
};
use sync_store::c1z;

use super::metrics::{Metrics, Outcome};
use super::tenants::{Resolvable, Tenant};

/// The command line's egress for one tenant's job: its own budget ledger,
/// its own lowering of the budgets on top of the command line's.
fn tenant_egress(
    common: &OperatorEgress,
    spec: &Tenant,
    rates: &connector_runtime::RateLedger,
    writes: bool,
) -> OperatorEgress {
    let mut rate_budgets = common.rate_budgets.clone();
    rate_budgets.extend(spec.rate_budgets.iter().cloned());
    OperatorEgress {
        writes,
        rate_budgets,
        rates: rates.clone(),
        ..common.clone()
    }
}

/// What every tenant's sync shares, from the command line.
pub struct Common {
    pub limits: Limits,
    pub retry: RetryPolicy,
    pub caps: SyncCaps,
    pub egress: OperatorEgress,
    pub c1z_limits: c1z::Limits,
    pub resume_max_age: Duration,
    pub data_dir: PathBuf,
    pub default_component: PathBuf,
}

/// A component loaded once and shared by its tenants.
struct Loaded {
    component: Component,
    meta: Metadata,
}

/// Where a tenant's job stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Slot {
    Idle,
    /// Waiting for a free sync slot.
    Queued(JobId),
    Running(JobId),
}

/// A job's id, 16 hex digits in the API and the logs; a number, so a slot
/// and a report copy it rather than allocate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct JobId(u64);

impl JobId {
    fn new() -> JobId {
        JobId(rand::random())
    }
}

impl std::fmt::Display for JobId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

impl Serialize for JobId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// A tenant's last finished sync, as `/v1/tenants` shows it.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    pub job: JobId,
    /// `success`, `failure` or `cancelled`.
    pub outcome: &'static str,
    #[serde(serialize_with = "rfc3339")]
    pub started_at: SystemTime,
    #[serde(serialize_with = "rfc3339")]
    pub finished_at: SystemTime,
    pub seconds: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sync_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub counts: Option<Counts>,
    pub http_requests: u64,
    pub retries: u64,
    /// One line, secrets scrubbed, at most `MAX_ERROR` characters.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[derive(Clone, Debug, Serialize)]
pub struct Counts {
    pub resources: BTreeMap<String, u64>,
    pub entitlements: u64,
    pub grants: u64,
}

/// The longest error line kept in a report.
const MAX_ERROR: usize = 1000;

/// One tenant: its spec (replaced on reload), its job slot and last report.
pub struct TenantState {
    spec: RwLock<Tenant>,
    slot: Mutex<Slot>,
    last: Mutex<Option<Report>>,
    wake: Notify,
    /// The interval changed: the wait in progress is measured again.
    rescheduled: Notify,
    /// Cancelled when the tenant leaves the tenants file.
    removed: CancellationToken,
    /// What the tenant's rate budgets have let through, shared by all of
    /// its jobs (and kept across reloads), so a sync and provisioning
    /// calls running together draw on one budget.
    rates: connector_runtime::RateLedger,
}

/// Why a sync could not be started now.
pub enum StartRefused {
    NoSuchTenant,
    Busy(JobId),
    Stopping,
}

pub struct Service {
    common: Common,
    engine: Engine,
    components: Mutex<HashMap<PathBuf, Result<Arc<Loaded>, String>>>,
    tenants: RwLock<BTreeMap<String, Arc<TenantState>>>,
    slots: Semaphore,
    pub metrics: Metrics,
    /// No new job starts once this is cancelled.
    stopping: CancellationToken,
    /// Running jobs stop when this is cancelled (after the grace period).
    cancel_jobs: CancellationToken,
    jobs: TaskTracker,
    loops: TaskTracker,
    ready: std::sync::atomic::AtomicBool,
}

impl Service {
    pub fn new(common: Common, engine: Engine, max_concurrent: usize) -> Arc<Service> {
        Arc::new(Service {
            common,
            engine,
            components: Mutex::new(HashMap::new()),
            tenants: RwLock::new(BTreeMap::new()),
            slots: Semaphore::new(max_concurrent.max(1)),
            metrics: Metrics::new(),
            stopping: CancellationToken::new(),
            cancel_jobs: CancellationToken::new(),
            jobs: TaskTracker::new(),
            loops: TaskTracker::new(),
            ready: std::sync::atomic::AtomicBool::new(false),
        })
    }

    /// Whether the components are loaded and the tenants read, and the
    /// service is not stopping.
    pub fn is_ready(&self) -> bool {
        self.ready.load(std::sync::atomic::Ordering::Relaxed) && !self.stopping.is_cancelled()
    }

    /// Loads a component (once per path); a failure is kept and becomes
    /// the error of every sync of the tenants that use it.
    async fn load(&self, path: &Path) -> Result<Arc<Loaded>, String> {
        if let Some(done) = lock(&self.components).get(path) {
            return done.clone();
        }
        let loaded = async {
            let component = self.engine.load(path)?;
            let (meta, _) = component.metadata(&self.common.limits).await?;
            anyhow::Ok(Arc::new(Loaded { component, meta }))
        }
        .await
        .map_err(|e| format!("component {}: {e:#}", path.display()));
        if let Err(e) = &loaded {
            tracing::error!("{e}");
        }
        lock(&self.components).insert(path.to_path_buf(), loaded.clone());
        loaded
    }

    fn component_path(&self, tenant: &Tenant) -> PathBuf {
        tenant
            .component
            .clone()
            .unwrap_or_else(|| self.common.default_component.clone())
    }

    /// Takes a new tenant set: starts the new tenants' loops, gives the
    /// changed ones their new spec (from their next sync on) and stops the
    /// loops of those gone (a sync of theirs running now finishes).
    pub async fn apply(self: &Arc<Self>, tenants: Vec<Tenant>) {
        for t in &tenants {
            let _ = self.load(&self.component_path(t)).await;
        }
        let mut added = Vec::new();
        {
            let mut map = write(&self.tenants);
            let keep: std::collections::BTreeSet<&str> =
                tenants.iter().map(|t| t.id.as_str()).collect();
            let gone: Vec<String> = map
                .keys()
                .filter(|id| !keep.contains(id.as_str()))
                .cloned()
                .collect();
            for id in gone {
                if let Some(state) = map.remove(&id) {
                    state.removed.cancel();
                    self.metrics.forget(&id);
                    tracing::info!(tenant = %id, "tenant removed");
                }
            }
            for t in tenants {
                match map.get(&t.id) {
                    Some(state) => {
                        let mut spec = write(&state.spec);
                        if *spec != t {
                            tracing::info!(tenant = %t.id, "tenant changed; its next sync uses the new settings");
                            let retimed = spec.interval != t.interval;
                            *spec = t;
                            if retimed {
                                state.rescheduled.notify_one();
                            }
                        }
                    }
                    None => {
                        let state = Arc::new(TenantState {
                            spec: RwLock::new(t.clone()),
                            slot: Mutex::new(Slot::Idle),
                            last: Mutex::new(None),
                            wake: Notify::new(),
                            rescheduled: Notify::new(),
                            removed: CancellationToken::new(),
                            rates: Default::default(),
                        });
                        map.insert(t.id.clone(), state.clone());
                        added.push(state);
                    }
                }
            }
        }
        for state in added {
            let svc = self.clone();
            self.loops
                .spawn(async move { svc.tenant_loop(state).await });
        }
        self.ready.store(true, std::sync::atomic::Ordering::Relaxed);
    }

    /// Syncs the tenant at start, then every interval (with jitter), or
    /// when asked.
    async fn tenant_loop(self: Arc<Self>, state: Arc<TenantState>) {
        // ±10 % so tenants started together drift apart.
        let spread = |interval: Duration| interval.mul_f64(0.9) + jitter(interval.mul_f64(0.2));
        let mut first = true;
        loop {
            let since = tokio::time::Instant::now();
            let mut due = if first {
                // Many tenants starting together spread over a second.
                since + jitter(Duration::from_secs(1))
            } else {
                since + spread(read(&state.spec).interval)
            };
            loop {
                tokio::select! {
                    _ = tokio::time::sleep_until(due) => break,
                    _ = state.wake.notified() => break,
                    _ = state.rescheduled.notified() => {
                        // A new interval counts from the last sync: an
                        // hour shortened to a minute does not wait out the
                        // hour.
                        if !first {
                            due = since + spread(read(&state.spec).interval);
                        }
                    }
                    _ = state.removed.cancelled() => {
                        // Its last sync has ended: its secrets are no longer
                        // scrubbed, unless the tenant came back meanwhile
                        // (a reload), whose syncs set them again.
                        let id = read(&state.spec).id.clone();
                        if !read(&self.tenants).contains_key(&id) {
                            crate::redact::remove(&id);
                        }
                        return;
                    }
                    _ = self.stopping.cancelled() => return,
                }
            }
            first = false;
            let job = {
                let mut slot = lock(&state.slot);
                match &*slot {
                    Slot::Queued(id) => *id,
                    Slot::Running(_) => continue,
                    Slot::Idle => {
                        let id = JobId::new();
                        *slot = Slot::Queued(id);
                        id
                    }
                }
            };
            let svc = self.clone();
            let st = state.clone();
            let handle = self.jobs.spawn(async move { svc.run_job(st, job).await });
            let _ = handle.await;
        }
    }

    /// Asks for a sync of `tenant` now: its job id, or why not.
    pub fn start_now(&self, tenant: &str) -> Result<JobId, StartRefused> {
        if self.stopping.is_cancelled() {
            return Err(StartRefused::Stopping);
        }
        let state = read(&self.tenants)
            .get(tenant)
            .cloned()
            .ok_or(StartRefused::NoSuchTenant)?;
        let mut slot = lock(&state.slot);
        match &*slot {
            Slot::Idle => {
                let id = JobId::new();
                *slot = Slot::Queued(id);
                state.wake.notify_one();
                Ok(id)
            }
            Slot::Queued(id) | Slot::Running(id) => Err(StartRefused::Busy(*id)),
        }
    }

    async fn run_job(self: Arc<Self>, state: Arc<TenantState>, job: JobId) {
        // Waiting for a slot ends with the service.
        let permit = tokio::select! {
            p = self.slots.acquire() => p,
            _ = self.cancel_jobs.cancelled() => {
                *lock(&state.slot) = Slot::Idle;
                return;
            }
        };
        let Ok(_permit) = permit else { return };
        *lock(&state.slot) = Slot::Running(job);
        let spec = read(&state.spec).clone();
        let started_at = SystemTime::now();
        let started = Instant::now();
        self.metrics.running(true);
        let span = tracing::info_span!("sync", tenant = %spec.id, job = %job);
        let ended = self
            .clone()
            .sync_on_own_thread(spec.clone(), state.rates.clone(), span.clone())
            .await;
        self.metrics.running(false);
        let seconds = started.elapsed().as_secs_f64();
        let mut report = Report {
            job,
            outcome: "cancelled",
            started_at,
            finished_at: SystemTime::now(),
            seconds,
            sync_id: None,
            counts: None,
            http_requests: 0,
            retries: 0,
            error: None,
        };
        match ended {
            Some(Ok(done)) => {
                let s = &done.stats;
                report.outcome = "success";
                report.sync_id = done.sync_id.clone();
                report.http_requests = s.http_requests;
                report.retries = s.retries;
                report.counts = Some(Counts {
                    resources: s.resources.clone(),
                    entitlements: s.entitlements,
                    grants: s.grants,
                });
                span.in_scope(|| {
                    tracing::info!(
                        "synced in {seconds:.2} s: {} resources, {} entitlements, {} grants, {} requests",
                        s.resources.values().sum::<u64>(),
                        s.entitlements,
                        s.grants,
                        s.http_requests
                    )
                });
            }
            Some(Err(failed)) => {
                report.outcome = "failure";
                report.http_requests = failed.http_requests;
                report.error = Some(failed.line.clone());
                span.in_scope(|| tracing::error!("sync failed: {}", failed.line));
            }
            None => {
                report.error =
                    Some("the service stopped during the sync; its progress is kept".into());
                span.in_scope(|| tracing::warn!("sync cancelled: the service is stopping"));
            }
        }
        self.metrics.record(&Outcome {
            tenant: &spec.id,
            outcome: report.outcome,
            seconds,
            http_requests: report.http_requests,
            retries: report.retries,
            counts: report.counts.as_ref().map(|c| (&c.resources, c.grants)),
        });
        *lock(&state.last) = Some(report);
        *lock(&state.slot) = Slot::Idle;
        // Once the whole job is over (its thread, its report, its log
        // lines): a quiet service's resident size is then what is live.
        crate::memory::release_free();
    }

    /// Checks that `tenant`'s component loads and its settings resolve.
    pub async fn preflight(&self, tenant: &Tenant) -> anyhow::Result<()> {
        let loaded = self
            .load(&self.component_path(tenant))
            .await
            .map_err(anyhow::Error::msg)?;
        self.resolve(tenant, &loaded).map(|_| ())
    }

    /// A tenant's settings, resolved against its component's schema.
    fn resolve(&self, spec: &Tenant, loaded: &Loaded) -> anyhow::Result<config::Resolved> {
        let source = Resolvable::of(spec, &loaded.meta.config_schema)?;
        let lookup = |k: &str| source.lookup(k);
        let env = match &source.prefix {
            Some(p) => config::Environment::bound(p, &lookup)?,
            None => config::Environment::none(),
        };
        config::resolve(&loaded.meta.config_schema, &source.flags, &env)
    }

    /// Runs [`Service::sync_tenant`] on a thread of its own; `None` when
    /// cancelled.
    async fn sync_on_own_thread(
        self: Arc<Self>,
        spec: Tenant,
        rates: connector_runtime::RateLedger,
        span: tracing::Span,
    ) -> Option<Result<sync_store::Finished, Failed>> {
        let cancel = self.cancel_jobs.clone();
        let name = format!("sync-{}", spec.id);
        on_own_thread(name, async move || {
            tokio::select! {
                r = self.sync_tenant(&spec, &rates).instrument(span) => Some(r),
                _ = cancel.cancelled() => None,
            }
        })
        .await
        .unwrap_or_else(|e| Some(Err(Failed::line(e))))
    }

    /// Opens a fresh instance for `tenant` and runs one provisioning call
    /// in it, on a thread of its own, as a sync runs.
    pub async fn provision(
        self: &Arc<Self>,
        tenant: &str,
        call: Provision,
    ) -> Result<serde_json::Value, ProvisionError> {
        let state = read(&self.tenants)
            .get(tenant)
            .cloned()
            .ok_or(ProvisionError::NoSuchTenant)?;
        let spec = read(&state.spec).clone();
        let rates = state.rates.clone();
        if !spec.provisioning {
            return Err(ProvisionError::Off(spec.id));
        }
        let svc = self.clone();
        let span = tracing::info_span!("provision", tenant = %spec.id);
        let answer = on_own_thread(format!("provision-{}", spec.id), async move || {
            let mut secrets = Secrets::default();
            let r = svc
                .provision_inner(&spec, &rates, call, &mut secrets)
                .instrument(span)
                .await;
            r.map_err(|e| match e {
                ProvisionError::Failed { status, line } => ProvisionError::Failed {
                    status,
                    line: one_line(&secrets.scrub(&line)),
                },
                other => other,
            })
        })
        .await
        .map_err(|line| ProvisionError::Failed { status: 500, line })?;
        crate::memory::release_free();
        answer
    }

    async fn provision_inner(
        &self,
        spec: &Tenant,
        rates: &connector_runtime::RateLedger,
        call: Provision,
        secrets: &mut Secrets,
    ) -> Result<serde_json::Value, ProvisionError> {
        use connector_runtime::{CreateAccountOutcome, GrantOutcome, RevokeOutcome};
        use serde_json::json;
        let c = &self.common;
        let setup = |e: anyhow::Error| ProvisionError::Failed {
            status: 500,
            line: format!("{e:#}"),
        };
        let loaded = self
            .load(&self.component_path(spec))
            .await
            .map_err(|line| ProvisionError::Failed { status: 500, line })?;
        let resolved = self.resolve(spec, &loaded).map_err(setup)?;
        *secrets = resolved.secrets.clone();
        self.install_secrets(&spec.id, &resolved.secrets);
        let egress = tenant_egress(&c.egress, spec, rates, true);
        let mut conn = Connector::open(&loaded.component, &c.limits, resolved.values, &egress)
            .await
            .map_err(|e| setup(e.into()))?;
        match call {
            Provision::Grant {
                entitlement,
                principal,
            } => match conn.grant(&principal, &entitlement).await? {
                GrantOutcome::Granted(g) => {
                    Ok(json!({"outcome": "granted", "grant": g.id.to_string()}))
                }
                GrantOutcome::AlreadyGranted => Ok(json!({
                    "outcome": "already_granted",
                    "grant": sync_store::ids::grant_id(&entitlement.resource, &entitlement.slug, &principal),
                })),
            },
            Provision::Revoke { grant } => {
                let outcome = match conn.revoke(&grant).await? {
                    RevokeOutcome::Revoked => "revoked",
                    RevokeOutcome::AlreadyRevoked => "already_revoked",
                };
                Ok(json!({"outcome": outcome, "grant": grant.id.to_string()}))
            }
            Provision::CreateAccount {
                info,
                credential,
                recipient,
            } => match conn.create_account(&info, credential).await? {
                CreateAccountOutcome::Created(resource, credential) => {
                    let mut body =
                        json!({"outcome": "created", "resource": resource.id.to_string()});
                    if let Some(cred) = credential {
                        // The password is a secret from now on, in the log
                        // and in any error.
                        *secrets = secrets.with(cred.password.as_str());
                        self.install_secrets(&spec.id, secrets);
                        let Some(r) = recipient else {
                            return Err(ProvisionError::Failed {
                                status: 502,
                                line: "the connector returned a password though none was asked for; it was not shown: reset it in the application".into(),
                            });
                        };
                        let armored =
                            crate::provision::encrypt_credential(&r, &cred).map_err(setup)?;
                        body["credential_age"] = armored.into();
                    }
                    Ok(body)
                }
                CreateAccountOutcome::AlreadyExists(r) => {
                    Ok(json!({"outcome": "already_exists", "resource": r.id.to_string()}))
                }
                CreateAccountOutcome::ActionRequired(msg) => {
                    Ok(json!({"outcome": "action_required", "message": one_line(&msg)}))
                }
            },
        }
    }

    /// One sync of one tenant into `DATA_DIR/<tenant>/sync.c1z`.
    async fn sync_tenant(
        &self,
        spec: &Tenant,
        rates: &connector_runtime::RateLedger,
    ) -> Result<sync_store::Finished, Failed> {
        let mut secrets = Secrets::default();
        let mut requests = 0;
        let r = self
            .sync_inner(spec, rates, &mut secrets, &mut requests)
            .await;
        r.map_err(|e| Failed {
            line: one_line(&secrets.scrub(&format!("{e:#}"))),
            http_requests: requests,
        })
    }

    async fn sync_inner(
        &self,
        spec: &Tenant,
        rates: &connector_runtime::RateLedger,
        secrets: &mut Secrets,
        requests: &mut u64,
    ) -> anyhow::Result<sync_store::Finished> {
        let c = &self.common;
        let loaded = self
            .load(&self.component_path(spec))
            .await
            .map_err(anyhow::Error::msg)?;
        let schema = &loaded.meta.config_schema;
        let resolved = self.resolve(spec, &loaded)?;
        *secrets = resolved.secrets.clone();
        self.install_secrets(&spec.id, &resolved.secrets);
        let origin =
            connector_runtime::checkpoint::origin(&loaded.component, schema, &resolved.values);
        let egress = tenant_egress(&c.egress, spec, rates, spec.provisioning);
        let mut conn =
            Connector::open(&loaded.component, &c.limits, resolved.values, &egress).await?;
        let dir = c.data_dir.join(&spec.id);
        make_private_dir(&dir)?;
        let file = dir.join("sync.c1z");
        if let Some(done) = c1z::write_finished(&file, c.c1z_limits.clone())? {
            return Ok(done);
        }
        let policy = c1z::ResumePolicy {
            fresh: false,
            max_age: c.resume_max_age,
            origin,
        };
        let (sink, start) = c1z::resumable_sink(&file, c.c1z_limits.clone(), &policy)?;
        crate::say_start(&start);
        let r = sync::run_with(&mut conn, &loaded.meta, &c.retry, &c.caps, sink).await;
        *requests = conn.http_requests();
        r
    }

    /// Makes a tenant's secrets what every log line is scrubbed of for it.
    fn install_secrets(&self, tenant: &str, secrets: &Secrets) {
        crate::redact::set(tenant, secrets);
    }

    /// `/v1/tenants`: each tenant, its state and last sync, as JSON
    /// written straight from the tenants' records (no tree of values: a
    /// few allocations for any number of tenants).
    pub fn tenants_json(&self) -> Vec<u8> {
        let map = read(&self.tenants);
        let view: Vec<TenantView> = map
            .iter()
            .map(|(id, state)| TenantView { id, state })
            .collect();
        serde_json::to_vec(&view).unwrap_or_else(|_| b"[]".to_vec())
    }

    /// Whether this replica runs `tenant`.
    pub fn has_tenant(&self, tenant: &str) -> bool {
        read(&self.tenants).contains_key(tenant)
    }

    /// The latest c1z file of a tenant of this replica ([`Service::has_tenant`]),
    /// when it has one.
    pub fn latest_file(&self, tenant: &str) -> Option<PathBuf> {
        let file = self.common.data_dir.join(tenant).join("sync.c1z");
        file.is_file().then_some(file)
    }

    /// Stops scheduling, lets running syncs finish for up to `grace`, then
    /// cancels those left (their previous files stay; their progress is
    /// kept for the next start).
    pub async fn shut_down(&self, grace: Duration) {
        self.stopping.cancel();
        self.loops.close();
        self.jobs.close();
        let running = self.jobs.len();
        if running > 0 {
            tracing::info!("stopping: waiting up to {grace:?} for {running} running syncs");
        }
        if tokio::time::timeout(grace, self.jobs.wait()).await.is_err() {
            tracing::warn!(
                "stopping: the grace period ended; cancelling {} syncs (their previous files stay)",
                self.jobs.len()
            );
            self.cancel_jobs.cancel();
            // A cancelled sync commits its last position as its sink is
            // dropped: a moment, not another grace period.
            let _ = tokio::time::timeout(Duration::from_secs(10), self.jobs.wait()).await;
        }
        self.cancel_jobs.cancel();
        let _ = tokio::time::timeout(Duration::from_secs(1), self.loops.wait()).await;
    }
}

/// A tenant as `/v1/tenants` shows it, its record read under its locks
/// while it is written.
struct TenantView<'a> {
    id: &'a str,
    state: &'a TenantState,
}

impl Serialize for TenantView<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap as _;
        let (status, job) = match *lock(&self.state.slot) {
            Slot::Idle => ("idle", None),
            Slot::Queued(j) => ("queued", Some(j)),
            Slot::Running(j) => ("running", Some(j)),
        };
        let (interval, provisioning) = {
            let spec = read(&self.state.spec);
            (spec.interval.as_secs(), spec.provisioning)
        };
        let mut m = s.serialize_map(Some(6))?;
        m.serialize_entry("id", self.id)?;
        m.serialize_entry("interval_seconds", &interval)?;
        m.serialize_entry("provisioning", &provisioning)?;
        m.serialize_entry("status", status)?;
        m.serialize_entry("job", &job)?;
        m.serialize_entry("last", &*lock(&self.state.last))?;
        m.end()
    }
}

/// A failed sync: its error line (scrubbed, one line) and the requests it
/// made.
struct Failed {
    line: String,
    http_requests: u64,
}

impl Failed {
    fn line(line: String) -> Failed {
        Failed {
            line,
            http_requests: 0,
        }
    }
}

/// A provisioning call asked through the API.
pub enum Provision {
    Grant {
        entitlement: sync_store::ids::EntitlementId,
        principal: sync_store::model::ResourceId,
    },
    Revoke {
        grant: sync_store::ids::GrantId,
    },
    CreateAccount {
        info: connector_runtime::AccountInfo,
        credential: connector_runtime::CredentialOption,
        /// Where a generated password goes, encrypted; `None` only with
        /// no password asked for.
        recipient: Option<age::x25519::Recipient>,
    },
}

/// Why a provisioning call did not happen, or failed.
#[derive(Debug)]
pub enum ProvisionError {
    NoSuchTenant,
    /// Provisioning is off for this tenant.
    Off(String),
    /// The call failed: an HTTP status that fits and one line.
    Failed {
        status: u16,
        line: String,
    },
}

impl From<connector_runtime::CallError> for ProvisionError {
    fn from(e: connector_runtime::CallError) -> Self {
        use connector_runtime::{CallError, ConnectorError};
        let status = match &e {
            CallError::Connector(ConnectorError::NotFound(_)) => 404,
            CallError::Connector(ConnectorError::InvalidArgument(_)) => 400,
            CallError::Connector(ConnectorError::AlreadyExists(_)) => 409,
            _ => 502,
        };
        ProvisionError::Failed {
            status,
            line: format!("{e:#}"),
        }
    }
}

/// Text made one line and bounded, for a report or an answer.
fn one_line(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(MAX_ERROR)
        .collect()
}

/// Runs `work` on a thread of its own with a single-threaded runtime. A
/// connector call's future cannot move between threads (the runtime's
/// async closures are not `Send` for every lifetime), and a thread per
/// running job (at most `--max-concurrent-syncs` syncs) also keeps one
/// component's CPU time off the threads that answer the API. `Err` when
/// the thread could not start or stopped without an answer.
async fn on_own_thread<T, F>(name: String, work: F) -> Result<T, String>
where
    T: Send + 'static,
    F: AsyncFnOnce() -> T + Send + 'static,
{
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name(name)
        .spawn(move || {
            match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => {
                    let out = rt.block_on(work());
                    // The job's runtime and everything it held go before the
                    // caller is answered, so its trim gives their pages back.
                    drop(rt);
                    let _ = tx.send(out);
                }
                Err(e) => tracing::error!("cannot start a job's runtime: {e}"),
            }
        })
        .map_err(|e| format!("cannot start the job's thread: {e}"))?;
    rx.await.map_err(|_| {
        "the job stopped unexpectedly (a bug in the host; the previous file is kept)".to_string()
    })
}

fn jitter(up_to: Duration) -> Duration {
    up_to.mul_f64(rand::random::<f64>())
}

fn rfc3339<S: serde::Serializer>(t: &SystemTime, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(&humantime::format_rfc3339_seconds(*t))
}

/// A tenant's data directory, readable by this user alone.
fn make_private_dir(dir: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::DirBuilderExt as _;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("cannot create the data directory {}", dir.display()))
}

// A poisoned lock only means another job panicked while holding it; the
// data is plain state, still usable.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn read<T>(m: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    m.read().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn write<T>(m: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    m.write().unwrap_or_else(std::sync::PoisonError::into_inner)
}
