//! The service's HTTP API: health, readiness and metrics for the platform,
//! and `/v1` for operators, behind a bearer token.
//!
//! Every answer under `/v1` that is not a file is JSON; an error is
//! `{"error": "<one line>"}` with the status that fits. Request bodies are
//! capped, and the token is compared in constant time.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{DefaultBodyLimit, Path, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq as _;

use super::service::{Provision, ProvisionError, Service, StartRefused};

/// The largest request body any endpoint takes.
const MAX_BODY: usize = 64 << 10;

/// What the handlers share.
#[derive(Clone)]
pub struct Api {
    pub service: Arc<Service>,
    /// SHA-256 of the API token; `None` when `--api-token-file` is not given.
    pub token: Option<Arc<[u8; 32]>>,
}

/// Reads the API token: the file's first line, at least 16 characters.
pub fn read_token(path: &std::path::Path) -> anyhow::Result<[u8; 32]> {
    use anyhow::Context as _;
    let text = zeroize::Zeroizing::new(
        std::fs::read_to_string(path)
            .with_context(|| format!("cannot read --api-token-file {}", path.display()))?,
    );
    let token = text.lines().next().unwrap_or("").trim();
    if token.len() < 16 {
        anyhow::bail!(
            "--api-token-file {}: the token is shorter than 16 characters; use a long random one (e.g. `openssl rand -hex 32`)",
            path.display()
        );
    }
    Ok(Sha256::digest(token.as_bytes()).into())
}

pub fn router(api: Api) -> Router {
    let v1 = Router::new()
        .route("/tenants", get(tenants))
        .route("/tenants/{id}/syncs", post(start_sync))
        .route("/tenants/{id}/syncs/latest", get(latest))
        .route("/tenants/{id}/grants", post(grant))
        .route("/tenants/{id}/revocations", post(revoke))
        .route("/tenants/{id}/accounts", post(create_account))
        .layer(middleware::from_fn_with_state(api.clone(), authorize));
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .nest("/v1", v1)
        .fallback(|| async { error(StatusCode::NOT_FOUND, "no such endpoint") })
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(api)
}

/// A JSON error answer.
fn error(status: StatusCode, message: &str) -> Response {
    (status, Json(serde_json::json!({ "error": message }))).into_response()
}

async fn authorize(State(api): State<Api>, req: Request, next: Next) -> Response {
    let Some(want) = &api.token else {
        return error(
            StatusCode::FORBIDDEN,
            "the API is off: start serve with --api-token-file FILE to turn it on",
        );
    };
    let given = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    // Digests are compared, so neither the token's length nor its bytes
    // show in the time taken.
    let ok = given.is_some_and(|g| {
        let digest: [u8; 32] = Sha256::digest(g.trim().as_bytes()).into();
        bool::from(digest.ct_eq(want.as_ref()))
    });
    if !ok {
        let mut r = error(
            StatusCode::UNAUTHORIZED,
            "missing or wrong token: send Authorization: Bearer <the token in --api-token-file>",
        );
        r.headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        return r;
    }
    next.run(req).await
}

async fn readyz(State(api): State<Api>) -> Response {
    if api.service.is_ready() {
        (StatusCode::OK, "ready\n").into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not ready\n").into_response()
    }
}

async fn metrics(State(api): State<Api>) -> Response {
    let mut headers = HeaderMap::new();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8"),
    );
    (headers, api.service.metrics.encode()).into_response()
}

async fn tenants(State(api): State<Api>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        api.service.tenants_json(),
    )
        .into_response()
}

async fn start_sync(State(api): State<Api>, Path(id): Path<String>) -> Response {
    match api.service.start_now(&id) {
        Ok(job) => (
            StatusCode::ACCEPTED,
            Json(serde_json::json!({ "tenant": id, "job": job, "status": "queued" })),
        )
            .into_response(),
        Err(StartRefused::NoSuchTenant) => no_tenant(),
        Err(StartRefused::Busy(job)) => (
            StatusCode::CONFLICT,
            Json(serde_json::json!({
                "error": "a sync of this tenant is already queued or running",
                "job": job,
            })),
        )
            .into_response(),
        Err(StartRefused::Stopping) => error(
            StatusCode::SERVICE_UNAVAILABLE,
            "the service is stopping; no new sync starts",
        ),
    }
}

fn no_tenant() -> Response {
    error(
        StatusCode::NOT_FOUND,
        "no such tenant here (GET /v1/tenants lists this replica's tenants)",
    )
}

async fn latest(State(api): State<Api>, Path(id): Path<String>) -> Response {
    if !api.service.has_tenant(&id) {
        return no_tenant();
    }
    let none_yet = || {
        error(
            StatusCode::NOT_FOUND,
            &format!(
                "tenant {id} has no finished sync yet (POST /v1/tenants/{id}/syncs starts one)"
            ),
        )
    };
    let Some(path) = api.service.latest_file(&id) else {
        return none_yet();
    };
    // The file is replaced by a rename when a sync finishes: the handle
    // opened here keeps reading the version it opened, whole.
    let Ok(file) = tokio::fs::File::open(&path).await else {
        return none_yet();
    };
    let len = file.metadata().await.map(|m| m.len()).ok();
    let mut headers = HeaderMap::new();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{id}.c1z\"")) {
        headers.insert(header::CONTENT_DISPOSITION, v);
    }
    if let Some(n) = len {
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from(n));
    }
    let body = Body::from_stream(tokio_util::io::ReaderStream::new(file));
    (headers, body).into_response()
}

/// A JSON body, or a 400 whose one line says what is wrong with it.
fn body<T>(
    parsed: Result<Json<T>, axum::extract::rejection::JsonRejection>,
) -> Result<T, Box<Response>> {
    parsed.map(|Json(v)| v).map_err(|e| {
        let text: String = e.body_text().chars().take(300).collect();
        Box::new(error(e.status(), &text.replace(['\n', '\r'], " ")))
    })
}

/// A bad id in a request: 400 with the parser's one line.
fn bad_id(e: anyhow::Error) -> Response {
    error(StatusCode::BAD_REQUEST, &format!("{e:#}"))
}

async fn provision(api: &Api, id: &str, call: Provision) -> Response {
    match api.service.provision(id, call).await {
        Ok(v) => Json(v).into_response(),
        Err(ProvisionError::NoSuchTenant) => no_tenant(),
        Err(ProvisionError::Off(t)) => error(
            StatusCode::FORBIDDEN,
            &format!("provisioning is off for tenant {t}: set provisioning = true for it in the tenants file (or --provisioning / BATON_PROVISIONING=true for the default tenant)"),
        ),
        Err(ProvisionError::Failed { status, line }) => error(
            StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY),
            &line,
        ),
    }
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct GrantBody {
    /// TYPE:ID:SLUG.
    entitlement: String,
    /// TYPE:ID.
    principal: String,
}

async fn grant(
    State(api): State<Api>,
    Path(id): Path<String>,
    parsed: Result<Json<GrantBody>, axum::extract::rejection::JsonRejection>,
) -> Response {
    let b = match body(parsed) {
        Ok(b) => b,
        Err(r) => return *r,
    };
    let call = match (
        sync_store::ids::parse_entitlement_id(&b.entitlement),
        sync_store::ids::parse_resource_id(&b.principal),
    ) {
        (Ok(entitlement), Ok(principal)) => Provision::Grant {
            entitlement,
            principal,
        },
        (Err(e), _) | (_, Err(e)) => return bad_id(e),
    };
    provision(&api, &id, call).await
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct RevokeBody {
    /// TYPE:ID:SLUG:PRINCIPAL_TYPE:PRINCIPAL_ID.
    grant: String,
}

async fn revoke(
    State(api): State<Api>,
    Path(id): Path<String>,
    parsed: Result<Json<RevokeBody>, axum::extract::rejection::JsonRejection>,
) -> Response {
    let b = match body(parsed) {
        Ok(b) => b,
        Err(r) => return *r,
    };
    match sync_store::ids::parse_grant_id(&b.grant) {
        Ok(grant) => provision(&api, &id, Provision::Revoke { grant }).await,
        Err(e) => bad_id(e),
    }
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct AccountBody {
    email: String,
    given_name: String,
    family_name: String,
    title: Option<String>,
    department: Option<String>,
    /// Set no password (SSO tenants).
    #[serde(default)]
    no_password: bool,
    password_length: Option<u32>,
    /// The age X25519 public key a generated password is encrypted to.
    age_recipient: Option<String>,
}

async fn create_account(
    State(api): State<Api>,
    Path(id): Path<String>,
    parsed: Result<Json<AccountBody>, axum::extract::rejection::JsonRejection>,
) -> Response {
    use connector_runtime::{AccountInfo, AccountProfile, CredentialOption, RandomPassword};
    let b = match body(parsed) {
        Ok(b) => b,
        Err(r) => return *r,
    };
    let recipient = match b
        .age_recipient
        .as_deref()
        .map(|r| r.trim().parse::<age::x25519::Recipient>())
    {
        Some(Ok(r)) => Some(r),
        Some(Err(e)) => {
            return error(
                StatusCode::BAD_REQUEST,
                &format!("age_recipient is not an age X25519 public key (age1…): {e}"),
            )
        }
        None => None,
    };
    // A password with nowhere safe to go is never generated: the answer
    // carries it only encrypted.
    if !b.no_password && recipient.is_none() {
        return error(
            StatusCode::BAD_REQUEST,
            "a generated password is returned only encrypted: give age_recipient (an age1… public key), or no_password: true for SSO tenants",
        );
    }
    let credential = if b.no_password {
        CredentialOption::NoPassword
    } else {
        CredentialOption::RandomPassword(RandomPassword {
            length: b.password_length.unwrap_or(24).clamp(12, 128),
            min_lower: 1,
            min_upper: 1,
            min_digits: 1,
            min_special: 1,
        })
    };
    let info = AccountInfo {
        login: b.email.clone(),
        emails: vec![sync_store::model::Email {
            address: b.email,
            primary: true,
        }],
        profile: AccountProfile {
            given_name: Some(b.given_name),
            family_name: Some(b.family_name),
            title: b.title,
            department: b.department,
        },
    };
    provision(
        &api,
        &id,
        Provision::CreateAccount {
            info,
            credential,
            recipient,
        },
    )
    .await
}
