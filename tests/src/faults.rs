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
    match decide(&faults, n) {
        None => next.run(req).await,
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
