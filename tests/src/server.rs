//! The state every handler shares, and the router that ties the modules
//! together.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::Duration;

use axum::http::StatusCode;
use axum::middleware::from_fn_with_state;
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;

use crate::errors::code_message;
use crate::faults::{self, Faults};
use crate::oauth::{self, Tokens};
use crate::scim;
use crate::stats::{self, Stats};
use crate::tenant::TenantState;

pub(crate) const COMPANY_NAME: &str = "Example Tenant";

pub(crate) struct Shared {
    pub(crate) client_id: String,
    pub(crate) client_secret: String,
    pub(crate) allowed_scopes: Vec<String>,
    pub(crate) token_lifetime: Duration,
    /// [`crate::Simulator::base_url`] (`https://` under TLS), for
    /// `meta.location`.
    pub(crate) base_url: String,
    pub(crate) company_id: String,
    tenant: RwLock<TenantState>,
    pub(crate) tokens: Tokens,
    faults: RwLock<Faults>,
    /// SCIM requests since the faults were last set: the fault schedule's
    /// clock.
    pub(crate) fault_counter: AtomicU64,
    pub(crate) stats: Stats,
    pub(crate) saml: bool,
    /// Request bodies quoted back under `--echo-body-in-errors`, for tests
    /// to look for what they held.
    pub(crate) echoed: std::sync::Mutex<Vec<String>>,
}

pub(crate) struct SharedInit {
    pub(crate) client_id: String,
    pub(crate) client_secret: String,
    pub(crate) allowed_scopes: Vec<String>,
    pub(crate) token_lifetime: Duration,
    pub(crate) base_url: String,
    pub(crate) company_id: String,
    pub(crate) tenant: TenantState,
    pub(crate) faults: Faults,
    pub(crate) saml: bool,
}

impl Shared {
    pub(crate) fn new(init: SharedInit) -> Self {
        Shared {
            client_id: init.client_id,
            client_secret: init.client_secret,
            allowed_scopes: init.allowed_scopes,
            token_lifetime: init.token_lifetime,
            base_url: init.base_url,
            company_id: init.company_id,
            tenant: RwLock::new(init.tenant),
            tokens: Tokens::default(),
            faults: RwLock::new(init.faults),
            fault_counter: AtomicU64::new(0),
            stats: Stats::default(),
            saml: init.saml,
            echoed: std::sync::Mutex::new(Vec::new()),
        }
    }

    // A panicking handler can't leave the tenant half-changed in a way that
    // matters to a test double, so poisoning is ignored.
    pub(crate) fn read(&self) -> RwLockReadGuard<'_, TenantState> {
        self.tenant.read().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn write(&self) -> RwLockWriteGuard<'_, TenantState> {
        self.tenant.write().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn faults(&self) -> Faults {
        self.faults
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Replaces the faults and restarts their schedule, so "every Nth" counts
    /// from the change.
    pub(crate) fn set_faults(&self, f: Faults) {
        *self.faults.write().unwrap_or_else(PoisonError::into_inner) = f;
        self.fault_counter.store(0, Ordering::Relaxed);
    }
}

pub(crate) fn router(shared: Arc<Shared>) -> Router {
    let scim = scim::routes().layer(from_fn_with_state(shared.clone(), faults::scim_faults));
    Router::new()
        .route("/oauth/token", post(oauth::token))
        .route("/oauth/userinfo", get(oauth::userinfo))
        .nest("/scim/v2", scim)
        .fallback(not_found)
        .layer(from_fn_with_state(shared.clone(), stats::observe))
        .with_state(shared)
}

async fn not_found() -> Response {
    code_message(StatusCode::NOT_FOUND, "NOT_FOUND", "not found")
}
