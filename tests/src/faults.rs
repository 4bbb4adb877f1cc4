//! Injected trouble: latency everywhere, and every-Nth-request 429s and 5xxs
//! on SCIM routes, deterministic so a test can predict which request fails
//! and check that retries still give the exact result.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::errors;
use crate::server::Shared;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Faults {
    /// Added before every response (OAuth and SCIM).
    pub latency: Duration,
    /// Every Nth SCIM request (1-based, counting SCIM requests only, since
    /// the faults were last set) answers 429.
    pub rate_limit_every: Option<u64>,
    /// When set, 429s carry `Retry-After: N`; otherwise no header (Ironclad
    /// doesn't document one).
    pub retry_after_secs: Option<u64>,
    /// Every Nth SCIM request answers `server_error_status`, offset by N/2 so
    /// it doesn't land on the same requests as the 429s when both are set.
    pub server_error_every: Option<u64>,
    /// 502, 503 or 504; anything outside 500..=599 counts as 503.
    pub server_error_status: u16,
    /// `PATCH /Groups/{id}` answers 204 with no body instead of 200 with the
    /// group (Ironclad documents both).
    pub patch_returns_204: bool,
    /// `GET /Users` listings answer this broken or hostile way.
    pub hostile: Option<Hostile>,
    /// The tenant changes while a sync pages through users: before each
    /// `GET /Users` page after the first, one early user is deleted and two
    /// are created, so offsets shift and `totalResults` grows.
    pub churn: bool,
    /// `GET /Users` pages are answered as if the tenant had churned (one
    /// early user deleted, two made) once per page before the one asked,
    /// computed per request from `startIndex` and `count` alone: the real
    /// tenant never changes, so the same page always gets the same answer
    /// (see `page_churn`). Composes with `TotalTooHigh`/`TotalTooLow`, which
    /// then lie about the churned total.
    pub page_churn: bool,
    /// Every `POST /Users` and `PATCH /Users/{id}` (once authorised) answers
    /// 400 with a SCIM error whose `detail` quotes the request body as
    /// received: whatever secret the body carried comes back JSON-escaped.
    pub echo_body_in_errors: bool,
    /// `GET /Users` and `GET /Groups` listings never end: every page is full,
    /// made-up entries with fresh ids follow the real ones, and
    /// `totalResults` stays the tenant's real size.
    pub endless_pages: bool,
}

/// What a broken proxy or a buggy API release can send instead of a
/// well-formed user listing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Hostile {
    /// 200 with JSON cut off mid-way.
    MalformedJson,
    /// 200 with the right keys holding the wrong types.
    WrongTypes,
    /// 200 with users stripped to their id and userName.
    MissingFields,
    /// 200 with one user's title 4 MiB long.
    HugeStrings,
    /// `totalResults` ten times what exists.
    TotalTooHigh,
    /// `totalResults` a third of what exists.
    TotalTooLow,
    /// 200 with a proxy's HTML sign-in page.
    HtmlPage,
    /// 200 with an empty body.
    EmptyOk,
}

impl Default for Faults {
    fn default() -> Self {
        Faults {
            latency: Duration::ZERO,
            rate_limit_every: None,
            retry_after_secs: None,
            server_error_every: None,
            server_error_status: 503,
            patch_returns_204: false,
            hostile: None,
            churn: false,
            page_churn: false,
            echo_body_in_errors: false,
            endless_pages: false,
        }
    }
}

#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Fault {
    RateLimited,
    ServerError(StatusCode),
}

/// Which fault, if any, the `n`th (1-based) SCIM request gets. A 429 wins
/// when both schedules pick the same request.
pub(crate) fn decide(f: &Faults, n: u64) -> Option<Fault> {
    if let Some(k) = f.rate_limit_every.filter(|&k| k > 0) {
        if n.is_multiple_of(k) {
            return Some(Fault::RateLimited);
        }
    }
    if let Some(k) = f.server_error_every.filter(|&k| k > 0) {
        // Requests k/2, k/2 + k, ...: with k = 1 every request fails, with
        // equal periods the two schedules never meet.
        if n % k == (k / 2) % k {
            return Some(Fault::ServerError(server_status(f.server_error_status)));
        }
    }
    None
}

fn server_status(code: u16) -> StatusCode {
    match StatusCode::from_u16(code) {
        Ok(s) if s.is_server_error() => s,
        _ => StatusCode::SERVICE_UNAVAILABLE,
    }
}

/// Middleware on `/scim/v2`: counts the request and maybe answers for the
/// handler.
pub(crate) async fn scim_faults(
    State(shared): State<Arc<Shared>>,
    req: Request,
    next: Next,
) -> Response {
    let n = shared.fault_counter.fetch_add(1, Ordering::Relaxed) + 1;
    let faults = shared.faults();
    let user_listing = req.method() == axum::http::Method::GET
        && req.uri().path().trim_end_matches('/').ends_with("/Users");
    let later_page = req
        .uri()
        .query()
        .and_then(|q| q.split('&').find_map(|kv| kv.strip_prefix("startIndex=")))
        .is_some_and(|s| s != "1");
    if faults.churn && user_listing && later_page {
        churn(&shared, n);
    }
    match decide(&faults, n) {
        None => match faults.hostile.filter(|_| user_listing) {
            Some(h) => corrupt(h, next.run(req).await).await,
            None => next.run(req).await,
        },
        Some(Fault::RateLimited) => rate_limited(faults.retry_after_secs),
        Some(Fault::ServerError(status)) => gateway_error(status),
    }
}

/// Ironclad's rate limiter answers before any SCIM code runs, in its
/// non-SCIM `{code, message}` shape.
fn rate_limited(retry_after: Option<u64>) -> Response {
    let mut resp = errors::code_message(
        StatusCode::TOO_MANY_REQUESTS,
        "TOO_MANY_REQUESTS",
        "Too many requests, please try again later.",
    );
    if let Some(secs) = retry_after {
        if let Ok(v) = HeaderValue::from_str(&secs.to_string()) {
            resp.headers_mut().insert(header::RETRY_AFTER, v);
        }
    }
    resp
}

/// Deletes one early user (never the first, the admin) and creates two.
fn churn(shared: &Shared, n: u64) {
    let mut state = shared.write();
    let victim = state.users().get(1).map(|u| u.id.clone());
    if let Some(id) = victim {
        state.delete_user(&id);
    }
    for i in 0..2 {
        let _ = state.create_user(crate::tenant::NewUser {
            user_name: format!("churn.{n}.{i}@example-tenant.test"),
            given_name: "Churn".into(),
            family_name: format!("User{n}{i}"),
            provider: "local".into(),
            ..Default::default()
        });
    }
}

/// Rewrites a good `GET /Users` answer into a hostile one.
async fn corrupt(h: Hostile, resp: Response) -> Response {
    if !resp.status().is_success() {
        return resp;
    }
    let bytes = match axum::body::to_bytes(resp.into_body(), usize::MAX).await {
        Ok(b) => b,
        Err(_) => return StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    };
    let mut doc: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or_default();
    let json = |v: &serde_json::Value| {
        let mut r = (StatusCode::OK, v.to_string()).into_response();
        r.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/scim+json"),
        );
        r
    };
    let users = doc.get_mut("Resources").and_then(|r| r.as_array_mut());
    match h {
        Hostile::MalformedJson => {
            let text = String::from_utf8_lossy(&bytes);
            let cut = text.len() / 2;
            (
                StatusCode::OK,
                text[..text.floor_char_boundary(cut)].to_string(),
            )
                .into_response()
        }
        Hostile::WrongTypes => json(&serde_json::json!({
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:ListResponse"],
            "totalResults": "many", "Resources": {"userName": 42}, "startIndex": "one"
        })),
        Hostile::MissingFields => {
            if let Some(users) = users {
                for u in users.iter_mut() {
                    if let Some(o) = u.as_object_mut() {
                        o.retain(|k, _| k == "id" || k == "userName");
                    }
                }
            }
            json(&doc)
        }
        Hostile::HugeStrings => {
            if let Some(first) = users
                .and_then(|u| u.first_mut())
                .and_then(|u| u.as_object_mut())
            {
                first.insert(
                    "title".into(),
                    serde_json::Value::String("T".repeat(4 << 20)),
                );
            }
            json(&doc)
        }
        Hostile::TotalTooHigh | Hostile::TotalTooLow => {
            if let Some(total) = doc.get("totalResults").and_then(|t| t.as_u64()) {
                let lie = if h == Hostile::TotalTooHigh {
                    total * 10
                } else {
                    total / 3
                };
                doc["totalResults"] = lie.into();
            }
            json(&doc)
        }
        Hostile::HtmlPage => {
            let mut r = (
                StatusCode::OK,
                "<!DOCTYPE html><html><head><title>Sign in</title></head><body><form action=\"/login\">Corporate proxy: please sign in</form></body></html>",
            )
                .into_response();
            r.headers_mut()
                .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html"));
            r
        }
        Hostile::EmptyOk => StatusCode::OK.into_response(),
    }
}

/// 5xxs come from the load balancer, as HTML, not from the API.
fn gateway_error(status: StatusCode) -> Response {
    let reason = status.canonical_reason().unwrap_or("Server Error");
    let body = format!(
        "<html>\r\n<head><title>{code} {reason}</title></head>\r\n<body>\r\n<center><h1>{code} {reason}</h1></center>\r\n</body>\r\n</html>\r\n",
        code = status.as_u16()
    );
    let mut resp = (status, body).into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schedule(f: &Faults, n: u64) -> Vec<Option<Fault>> {
        (1..=n).map(|i| decide(f, i)).collect()
    }

    #[test]
    fn every_nth() {
        let f = Faults {
            rate_limit_every: Some(3),
            ..Faults::default()
        };
        let s = schedule(&f, 9);
        let hits: Vec<usize> = (0..9).filter(|&i| s[i].is_some()).map(|i| i + 1).collect();
        assert_eq!(hits, vec![3, 6, 9]);
        assert!(schedule(&Faults::default(), 50).iter().all(Option::is_none));
    }

    #[test]
    fn server_errors_offset_from_rate_limits() {
        let f = Faults {
            rate_limit_every: Some(4),
            server_error_every: Some(4),
            server_error_status: 502,
            ..Faults::default()
        };
        let s = schedule(&f, 8);
        assert_eq!(s[1], Some(Fault::ServerError(StatusCode::BAD_GATEWAY)));
        assert_eq!(s[3], Some(Fault::RateLimited));
        assert_eq!(s[5], Some(Fault::ServerError(StatusCode::BAD_GATEWAY)));
        assert_eq!(s[7], Some(Fault::RateLimited));
        assert_eq!(s.iter().filter(|x| x.is_some()).count(), 4);
    }

    #[test]
    fn every_request_and_bad_status() {
        let f = Faults {
            server_error_every: Some(1),
            server_error_status: 0,
            ..Faults::default()
        };
        assert!(schedule(&f, 5)
            .iter()
            .all(|x| *x == Some(Fault::ServerError(StatusCode::SERVICE_UNAVAILABLE))));
    }
}
