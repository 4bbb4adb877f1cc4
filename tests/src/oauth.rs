//! `POST /oauth/token` (client credentials), `GET /oauth/userinfo`, the
//! token store, and the bearer / as-user checks every SCIM call goes
//! through.

// Errors here are finished HTTP responses on their way out, not values
// callers inspect, so their size doesn't matter.
#![allow(clippy::result_large_err)]

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::Response;
use base64::Engine as _;
use rand::RngCore;
use serde_json::{json, Value};

use crate::errors::{code_message, oauth_error, plain_json, unauthorized};
use crate::server::Shared;
use crate::tenant::{hex, TenantState, User};

/// Every scope in Ironclad's scope table.
pub const ALL_SCOPES: [&str; 9] = [
    "scim.users.readUsers",
    "scim.users.createUsers",
    "scim.users.updateUsers",
    "scim.users.deleteUsers",
    "scim.groups.readGroups",
    "scim.groups.createGroups",
    "scim.groups.updateGroups",
    "scim.groups.deleteGroups",
    "scim.schemas.readSchemas",
];

#[derive(Clone, Debug)]
pub(crate) struct Token {
    pub(crate) scopes: Vec<String>,
    expires: Instant,
}

impl Token {
    pub(crate) fn has_scope(&self, scope: &str) -> bool {
        self.scopes.iter().any(|s| s == scope)
    }
}

#[derive(Default)]
pub(crate) struct Tokens {
    live: Mutex<HashMap<String, Token>>,
    issued: AtomicU64,
}

impl Tokens {
    fn issue(&self, scopes: Vec<String>, lifetime: Duration) -> String {
        // Opaque: 32 random bytes from the OS-seeded thread RNG (tokens need
        // not be reproducible, and must not be guessable across runs).
        let mut raw = [0u8; 32];
        rand::rng().fill_bytes(&mut raw);
        let token = hex(&raw);
        let now = Instant::now();
        let mut live = self.live.lock().unwrap_or_else(PoisonError::into_inner);
        // Expired tokens are dropped here, but kept for a while so that
        // presenting one still says "token has expired", not "invalid".
        live.retain(|_, t| t.expires + Duration::from_secs(3600) > now);
        live.insert(
            token.clone(),
            Token {
                scopes,
                expires: now + lifetime,
            },
        );
        self.issued.fetch_add(1, Ordering::Relaxed);
        token
    }

    fn check(&self, token: &str) -> Result<Token, &'static str> {
        let live = self.live.lock().unwrap_or_else(PoisonError::into_inner);
        match live.get(token) {
            None => Err("invalid authentication token"),
            Some(t) if t.expires <= Instant::now() => Err("token has expired"),
            Some(t) => Ok(t.clone()),
        }
    }

    pub(crate) fn issued(&self) -> u64 {
        self.issued.load(Ordering::Relaxed)
    }

    /// Every token still remembered (live or recently expired), so tests
    /// can check that none leaks into what the host prints.
    pub(crate) fn known(&self) -> Vec<String> {
        let live = self.live.lock().unwrap_or_else(PoisonError::into_inner);
        live.keys().cloned().collect()
    }
}

/// The bearer token of a request, or the 401 Ironclad's auth layer sends.
pub(crate) fn bearer(shared: &Shared, headers: &HeaderMap) -> Result<Token, Response> {
    let value = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let token = match value.split_once(' ') {
        Some((scheme, t)) if scheme.eq_ignore_ascii_case("bearer") => t.trim(),
        _ => "",
    };
    if token.is_empty() {
        return Err(unauthorized("invalid authentication token"));
    }
    shared.tokens.check(token).map_err(unauthorized)
}

pub(crate) enum AsUserError {
    Missing,
    Unknown(String),
}

/// The user named by `x-as-user-email` (preferred when both are sent) or
/// `x-as-user-id`. Client-credentials tokens (the only kind the simulator
/// issues) act as nobody without one.
pub(crate) fn as_user<'a>(
    state: &'a TenantState,
    headers: &HeaderMap,
) -> Result<&'a User, AsUserError> {
    let get = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
            .filter(|v| !v.is_empty())
    };
    if let Some(email) = get("x-as-user-email") {
        return state
            .user_by_name(email)
            .ok_or_else(|| AsUserError::Unknown(email.to_string()));
    }
    if let Some(id) = get("x-as-user-id") {
        return state
            .user(id)
            .ok_or_else(|| AsUserError::Unknown(id.to_string()));
    }
    Err(AsUserError::Missing)
}

/// `8-4-4-4-12` hex digits, any case.
pub(crate) fn is_uuid(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 36
        && b.iter().enumerate().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => *c == b'-',
            _ => c.is_ascii_hexdigit(),
        })
}

/// Token request parameters from a JSON or form body (Ironclad documents
/// JSON; form encoding works too). Without a usable Content-Type both are
/// tried.
fn body_params(headers: &HeaderMap, body: &[u8]) -> Result<HashMap<String, String>, Response> {
    let ctype = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    let bad = || {
        oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "Invalid or missing parameters: request body could not be parsed",
        )
    };
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(HashMap::new());
    }
    if ctype.contains("json") {
        return json_params(body).ok_or_else(bad);
    }
    if ctype.contains("x-www-form-urlencoded") {
        return form_params(body).ok_or_else(bad);
    }
    json_params(body)
        .or_else(|| form_params(body))
        .ok_or_else(bad)
}

fn json_params(body: &[u8]) -> Option<HashMap<String, String>> {
    let Value::Object(map) = serde_json::from_slice::<Value>(body).ok()? else {
        return None;
    };
    let mut out = HashMap::new();
    for (k, v) in map {
        let s = match v {
            Value::Null => continue,
            Value::String(s) => s,
            // A scope list sent as an array is read as the space-separated
            // string it stands for.
            Value::Array(items) => items
                .iter()
                .filter_map(Value::as_str)
                .collect::<Vec<_>>()
                .join(" "),
            other => other.to_string(),
        };
        out.insert(k, s);
    }
    Some(out)
}

fn form_params(body: &[u8]) -> Option<HashMap<String, String>> {
    serde_urlencoded::from_bytes::<Vec<(String, String)>>(body)
        .ok()
        .map(|pairs| pairs.into_iter().collect())
}

/// `Authorization: Basic base64(id:secret)`, when present.
fn basic_credentials(headers: &HeaderMap) -> Result<Option<(String, String)>, Response> {
    let Some(value) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    else {
        return Ok(None);
    };
    let Some((scheme, encoded)) = value.split_once(' ') else {
        return Ok(None);
    };
    if !scheme.eq_ignore_ascii_case("basic") {
        return Ok(None);
    }
    let bad = || {
        oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "Invalid or missing parameters: malformed Basic authorization header",
        )
    };
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .map_err(|_| bad())?;
    let text = String::from_utf8(decoded).map_err(|_| bad())?;
    let (id, secret) = text.split_once(':').ok_or_else(bad)?;
    Ok(Some((id.to_string(), secret.to_string())))
}

/// `POST /oauth/token`. Checks run in the order a schema-validating server
/// would: parameter shape (400), grant type (400), client credentials
/// (403, Ironclad's choice over RFC 6749's 401), then scope (400).
pub(crate) async fn token(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    match issue_token(&shared, &headers, &body) {
        Ok(resp) | Err(resp) => resp,
    }
}

fn issue_token(shared: &Shared, headers: &HeaderMap, body: &[u8]) -> Result<Response, Response> {
    let params = body_params(headers, body)?;
    let (client_id, client_secret) = match basic_credentials(headers)? {
        Some(pair) => pair,
        None => (
            params.get("client_id").cloned().unwrap_or_default(),
            params.get("client_secret").cloned().unwrap_or_default(),
        ),
    };
    if client_id.is_empty() {
        return Err(oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "Invalid or missing parameters: client_id is required",
        ));
    }
    if !is_uuid(&client_id) {
        return Err(oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "Invalid or missing parameters: Invalid value for client_id, expected type UUID",
        ));
    }
    match params.get("grant_type").map(String::as_str) {
        None | Some("") => {
            return Err(oauth_error(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "Invalid or missing parameters: grant_type is required",
            ))
        }
        Some("client_credentials") => {}
        Some(_) => {
            return Err(oauth_error(
                StatusCode::BAD_REQUEST,
                "unsupported_grant_type",
                "grant type not supported for this client",
            ))
        }
    }
    if !client_id.eq_ignore_ascii_case(&shared.client_id) || client_secret != shared.client_secret {
        return Err(oauth_error(
            StatusCode::FORBIDDEN,
            "unauthorized_client",
            "client authentication failed",
        ));
    }
    let scopes: Vec<String> = match params.get("scope").map(|s| s.trim()) {
        None | Some("") => shared.allowed_scopes.clone(),
        Some(requested) => {
            let mut granted: Vec<String> = Vec::new();
            for s in requested.split_whitespace() {
                if !shared.allowed_scopes.iter().any(|a| a == s) {
                    return Err(oauth_error(
                        StatusCode::BAD_REQUEST,
                        "invalid_scope",
                        &format!("scope {s} is not allowed for this client"),
                    ));
                }
                if !granted.iter().any(|g| g == s) {
                    granted.push(s.to_string());
                }
            }
            granted
        }
    };
    let scope = scopes.join(" ");
    let access_token = shared.tokens.issue(scopes, shared.token_lifetime);
    let mut resp = plain_json(
        StatusCode::OK,
        &json!({
            "token_type": "Bearer",
            "access_token": access_token,
            "expires_in": shared.token_lifetime.as_secs(),
            "scope": scope,
        }),
    );
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(resp)
}

/// `GET /oauth/userinfo`: who the token acts as. A client-credentials token
/// acts as the user in the as-user header, which is required here as on
/// SCIM routes; errors use the non-SCIM `{code, message}` shape.
pub(crate) async fn userinfo(State(shared): State<Arc<Shared>>, headers: HeaderMap) -> Response {
    let token = match bearer(&shared, &headers) {
        Ok(t) => t,
        Err(resp) => return resp,
    };
    let state = shared.read();
    let user = match as_user(&state, &headers) {
        Ok(u) => u,
        Err(AsUserError::Missing) => {
            let mut body = json!({
                "code": "MISSING_PARAM",
                "message": "x-as-user-email or x-as-user-id header is required for client credentials tokens",
            });
            if let Some(obj) = body.as_object_mut() {
                obj.insert("param".into(), Value::String("x-as-user-email".into()));
            }
            return plain_json(StatusCode::BAD_REQUEST, &body);
        }
        Err(AsUserError::Unknown(who)) => {
            return code_message(
                StatusCode::FORBIDDEN,
                "FORBIDDEN",
                &format!("user {who} is not a member of this company"),
            )
        }
    };
    plain_json(
        StatusCode::OK,
        &json!({
            "sub": user.id,
            "id": user.id,
            "email": user.user_name,
            "username": user.user_name,
            "firstName": user.given_name,
            "lastName": user.family_name,
            "displayName": format!("{} {}", user.given_name, user.family_name),
            "title": user.title.clone().unwrap_or_default(),
            "companyId": shared.company_id,
            "companyName": crate::server::COMPANY_NAME,
            "scopes": token.scopes,
        }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuids() {
        assert!(is_uuid("0b7c1f0e-3a52-4c1e-9d1a-6f1d2e3c4b5a"));
        assert!(is_uuid("0B7C1F0E-3A52-4C1E-9D1A-6F1D2E3C4B5A"));
        assert!(!is_uuid("0b7c1f0e3a524c1e9d1a6f1d2e3c4b5a"));
        assert!(!is_uuid("not-a-uuid"));
        assert!(!is_uuid("0b7c1f0e-3a52-4c1e-9d1a-6f1d2e3c4b5g"));
    }

    #[test]
    fn params_from_json_and_form() {
        let mut h = HeaderMap::new();
        let j = br#"{"grant_type":"client_credentials","scope":["a","b"]}"#;
        let p = body_params(&h, j).ok().unwrap_or_default();
        assert_eq!(p.get("scope").map(String::as_str), Some("a b"));
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/x-www-form-urlencoded"),
        );
        let p = body_params(&h, b"grant_type=client_credentials&scope=a+b")
            .ok()
            .unwrap_or_default();
        assert_eq!(p.get("scope").map(String::as_str), Some("a b"));
    }
}
