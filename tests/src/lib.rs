//! A loopback Ironclad: OAuth client credentials plus SCIM 2.0 Users and
//! Groups, served over real HTTP on 127.0.0.1 so the connector is tested
//! end to end without reaching Ironclad. Plain HTTP by default; HTTPS with a
//! given certificate ([`SimConfig::tls`]), under a public host name the
//! client maps to 127.0.0.1 as `curl --resolve` does.
//!
//! The tenant is generated deterministically from a seed, requests are
//! counted per endpoint, and faults (latency, 429s, 5xxs, a 204 PATCH) can
//! be switched on so tests can check that retries still give the exact
//! result. The API is synchronous: the server runs on its own tokio runtime
//! in a background thread and stops when the [`Simulator`] is dropped.

mod clock;
mod endless;
mod errors;
mod faults;
pub mod hostile_names;
mod oauth;
mod page_churn;
mod password;
mod scim;
mod server;
mod stats;
mod tenant;
mod tls;

use std::collections::BTreeMap;
use std::future::IntoFuture;
use std::net::SocketAddr;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::Context as _;
use axum::serve::{Listener, ListenerExt as _};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

pub use faults::{Faults, Hostile};
pub use oauth::ALL_SCOPES;
pub use password::{check_password, PASSWORD_RULE, PASSWORD_SPECIALS};
pub use tenant::{Group, Tenant, TenantSpec, User};
pub use tls::TlsIdentity;

use server::{Shared, SharedInit};
use tenant::{Membership, NewUser, TenantState};

pub const DEFAULT_CLIENT_ID: &str = "0b7c1f0e-3a52-4c1e-9d1a-6f1d2e3c4b5a";
pub const DEFAULT_CLIENT_SECRET: &str = "sim-secret-do-not-log-7f3a9c";
/// Ironclad's observed token lifetime (6 h).
pub const DEFAULT_TOKEN_LIFETIME: Duration = Duration::from_secs(21_600);

#[derive(Clone, Debug)]
pub struct SimConfig {
    pub tenant: TenantSpec,
    /// A UUID, like Ironclad's client ids.
    pub client_id: String,
    pub client_secret: String,
    /// The scopes the OAuth app was given.
    pub allowed_scopes: Vec<String>,
    pub token_lifetime: Duration,
    pub faults: Faults,
    /// The company signs in through SAML: new users need no password.
    pub saml: bool,
    /// Names with terminal escapes and ids with `:` and `\` (see
    /// [`hostile_names`]).
    pub hostile_names: bool,
    /// Serve HTTPS with this certificate chain and key; `None` (the
    /// default) serves plain HTTP.
    pub tls: Option<TlsIdentity>,
    /// The host name in [`Simulator::base_url`] (and so in every
    /// `meta.location`), e.g. `ironclad.test` for a certificate issued to
    /// that name; the client maps it to 127.0.0.1 (`--resolve`). `None`:
    /// `127.0.0.1`. The server listens on 127.0.0.1 either way.
    pub public_host: Option<String>,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            tenant: TenantSpec::default(),
            client_id: DEFAULT_CLIENT_ID.to_string(),
            client_secret: DEFAULT_CLIENT_SECRET.to_string(),
            allowed_scopes: ALL_SCOPES.iter().map(|s| s.to_string()).collect(),
            token_lifetime: DEFAULT_TOKEN_LIFETIME,
            faults: Faults::default(),
            saml: false,
            hostile_names: false,
            tls: None,
            public_host: None,
        }
    }
}

/// A running simulator. Dropping it stops the server.
pub struct Simulator {
    shared: Arc<Shared>,
    base_url: String,
    local_addr: SocketAddr,
    admin_email: String,
    admin_id: String,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Simulator {
    /// Generates the tenant and serves it on an ephemeral loopback port.
    pub fn start(cfg: SimConfig) -> anyhow::Result<Simulator> {
        Self::start_on(cfg, 0)
    }

    /// As [`Simulator::start`], on a chosen port (0 = ephemeral).
    pub fn start_on(cfg: SimConfig, port: u16) -> anyhow::Result<Simulator> {
        let mut tenant = tenant::Tenant::generate(&cfg.tenant);
        if cfg.hostile_names {
            hostile_names::apply(&mut tenant);
        }
        let admin = tenant
            .users
            .first()
            .context("the tenant needs at least one user: the first is the admin")?;
        let (admin_email, admin_id) = (admin.user_name.clone(), admin.id.clone());
        let tls = cfg
            .tls
            .as_ref()
            .map(TlsIdentity::server_config)
            .transpose()?;
        let public_host = cfg.public_host.as_deref().unwrap_or("127.0.0.1");
        tls::check_public_host(public_host)?;

        let std_listener = std::net::TcpListener::bind(("127.0.0.1", port))
            .with_context(|| format!("binding 127.0.0.1:{port}"))?;
        std_listener.set_nonblocking(true)?;
        let local_addr = std_listener.local_addr()?;
        let scheme = if tls.is_some() { "https" } else { "http" };
        let base_url = format!("{scheme}://{public_host}:{}", local_addr.port());

        let mut rng = ChaCha8Rng::seed_from_u64(cfg.tenant.seed ^ 0xc0_4a_11_1d);
        let company_id = tenant::hex(&rand::Rng::random::<[u8; 12]>(&mut rng));
        let shared = Arc::new(Shared::new(SharedInit {
            client_id: cfg.client_id,
            client_secret: cfg.client_secret,
            allowed_scopes: cfg.allowed_scopes,
            token_lifetime: cfg.token_lifetime,
            base_url: base_url.clone(),
            company_id,
            tenant: TenantState::new(tenant, cfg.tenant.seed),
            faults: cfg.faults,
            saml: cfg.saml,
        }));

        let workers = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(2)
            .clamp(2, 8);
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(workers)
            .thread_name("ironclad-sim")
            .enable_all()
            .build()
            .context("building the simulator's tokio runtime")?;
        let listener = {
            let _guard = runtime.enter();
            tokio::net::TcpListener::from_std(std_listener)?
        };
        let app = server::router(shared.clone());
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let counted = shared.clone();
        let tls_shared = shared.clone();
        let thread = std::thread::Builder::new()
            .name("ironclad-sim-server".into())
            .spawn(move || {
                runtime.block_on(async move {
                    // Every TCP connection is counted as accepted, TLS or
                    // not, so tests can tell a reused connection from a new one.
                    let listener = listener.tap_io(move |tcp| {
                        counted.stats.record_connection();
                        // Small requests and responses: don't let Nagle and
                        // delayed ACKs add 40 ms to each.
                        let _ = tcp.set_nodelay(true);
                    });
                    match tls {
                        None => serve(listener, app, rx).await,
                        Some(config) => {
                            let listener = tls::TlsListener::new(listener, config, tls_shared);
                            serve(listener, app, rx).await
                        }
                    }
                });
                // Open connections are simply cut: a stopped test double
                // needs no graceful drain.
                runtime.shutdown_timeout(Duration::from_millis(500));
            })
            .context("spawning the simulator thread")?;

        Ok(Simulator {
            shared,
            base_url,
            local_addr,
            admin_email,
            admin_id,
            shutdown: Some(tx),
            thread: Some(thread),
        })
    }

    /// `http://127.0.0.1:PORT`, no trailing slash; `https://` under
    /// [`SimConfig::tls`], and [`SimConfig::public_host`] in place of
    /// `127.0.0.1` when set. SCIM is under `/scim/v2`, OAuth under `/oauth`.
    pub fn base_url(&self) -> String {
        self.base_url.clone()
    }

    /// Where it listens: always `127.0.0.1:PORT`, whatever name the base
    /// URL uses (the address for `--resolve NAME:PORT:127.0.0.1`).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    pub fn client_id(&self) -> String {
        self.shared.client_id.clone()
    }

    pub fn client_secret(&self) -> String {
        self.shared.client_secret.clone()
    }

    /// The first generated user, an admin: usable as `x-as-user-email`.
    pub fn admin_email(&self) -> String {
        self.admin_email.clone()
    }

    pub fn admin_id(&self) -> String {
        self.admin_id.clone()
    }

    /// Replaces the faults; the every-Nth schedules restart from here.
    pub fn set_faults(&self, f: Faults) {
        self.shared.set_faults(f);
    }

    pub fn faults(&self) -> Faults {
        self.shared.faults()
    }

    /// Requests received per endpoint key (`"GET /scim/v2/Users/{id}"`),
    /// faulted ones included.
    pub fn requests(&self) -> BTreeMap<String, u64> {
        self.shared.stats.snapshot()
    }

    /// When each request to `endpoint` (a key as in [`Simulator::requests`])
    /// arrived, oldest first.
    pub fn arrivals(&self, endpoint: &str) -> Vec<std::time::Instant> {
        self.shared
            .stats
            .arrivals()
            .into_iter()
            .filter(|(_, key)| key == endpoint)
            .map(|(at, _)| at)
            .collect()
    }

    /// The most of `times` (sorted) that fall in any window of `window`.
    pub fn most_in_window(times: &[std::time::Instant], window: std::time::Duration) -> usize {
        let mut most = 0;
        let mut start = 0;
        for (end, &t) in times.iter().enumerate() {
            while t.duration_since(times[start]) >= window {
                start += 1;
            }
            most = most.max(end + 1 - start);
        }
        most
    }

    pub fn total_requests(&self) -> u64 {
        self.shared.stats.total()
    }

    /// POST/PATCH/PUT/DELETE requests under `/scim/v2` received, whatever
    /// they were answered (faulted and refused ones included).
    pub fn write_requests(&self) -> u64 {
        self.shared.stats.writes()
    }

    /// A snapshot of the users and groups, in creation order.
    pub fn tenant(&self) -> Tenant {
        self.shared.read().tenant().clone()
    }

    /// Adds a (non-admin, `local`) user and returns its id; when the userName
    /// exists already, returns that user's id and changes nothing.
    pub fn add_user(&self, user_name: &str, given: &str, family: &str) -> String {
        let new = NewUser {
            user_name: user_name.to_string(),
            given_name: given.to_string(),
            family_name: family.to_string(),
            provider: "local".to_string(),
            ..NewUser::default()
        };
        match self.shared.write().create_user(new) {
            Ok(u) => u.id.clone(),
            Err(existing) => existing,
        }
    }

    /// Removes a user from the company and all its groups; false if unknown.
    pub fn delete_user(&self, id: &str) -> bool {
        self.shared.write().delete_user(id)
    }

    /// True if the user was added (false: unknown group or user, or already
    /// a member).
    pub fn add_member(&self, group_id: &str, user_id: &str) -> bool {
        self.shared.write().add_member(group_id, user_id) == Membership::Changed
    }

    /// True if the user was removed (false: unknown group, or not a member).
    pub fn remove_member(&self, group_id: &str, user_id: &str) -> bool {
        self.shared.write().remove_member(group_id, user_id) == Membership::Changed
    }

    /// The most requests it was ever answering at once.
    pub fn max_in_flight(&self) -> u64 {
        self.shared.stats.max_in_flight()
    }

    /// Forgets the most counted so far (for another run on the same tenant).
    pub fn reset_max_in_flight(&self) {
        self.shared.stats.reset_max_in_flight();
    }

    /// TCP connections accepted (TLS or not, whether or not the handshake
    /// then succeeded): with [`Simulator::total_requests`], tells whether a
    /// client reused its connections.
    pub fn connections(&self) -> u64 {
        self.shared.stats.connections()
    }

    /// TLS handshakes that failed (a client that did not trust the
    /// certificate, spoke plain HTTP, or said nothing for 10 s). Counted a
    /// moment after the client sees its own error: poll, don't read once.
    pub fn tls_failures(&self) -> u64 {
        self.shared.stats.tls_failures()
    }

    /// Requests that arrived with a chunked body.
    pub fn chunked_requests(&self) -> u64 {
        self.shared.stats.chunked()
    }

    /// Requests that arrived stating their body's length.
    pub fn sized_requests(&self) -> u64 {
        self.shared.stats.sized()
    }

    /// The request bodies quoted back under `echo_body_in_errors`.
    pub fn echoed_bodies(&self) -> Vec<String> {
        self.shared
            .echoed
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    pub fn tokens_issued(&self) -> u64 {
        self.shared.tokens.issued()
    }

    /// The access tokens handed out (live or recently expired).
    pub fn issued_tokens(&self) -> Vec<String> {
        self.shared.tokens.known()
    }
}

/// Serves until `stop` fires (or the server fails, which is logged).
async fn serve<L>(listener: L, app: axum::Router, stop: tokio::sync::oneshot::Receiver<()>)
where
    L: Listener,
    L::Addr: std::fmt::Debug,
{
    tokio::select! {
        res = axum::serve(listener, app).into_future() => {
            if let Err(e) = res {
                eprintln!("ironclad-sim: server stopped: {e}");
            }
        }
        _ = stop => {}
    }
}

impl Drop for Simulator {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod http_tests;
