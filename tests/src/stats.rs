//! Request counting per endpoint, so tests can assert how many calls (and
//! how many writes) a connector made; and connection counting, so they can
//! assert that a client reused its connections.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use axum::extract::{Request, State};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::Response;

use crate::server::Shared;

#[derive(Default)]
pub(crate) struct Stats {
    per_endpoint: Mutex<HashMap<String, u64>>,
    total: AtomicU64,
    writes: AtomicU64,
    /// Requests whose body came with `Transfer-Encoding: chunked`.
    chunked: AtomicU64,
    /// Requests that stated their body's length (`Content-Length`).
    sized: AtomicU64,
    /// Requests being answered now, and the most there ever were at once.
    in_flight: AtomicU64,
    max_in_flight: AtomicU64,
    /// TCP connections accepted, before any TLS handshake.
    connections: AtomicU64,
    /// TLS handshakes that failed or timed out.
    tls_failures: AtomicU64,
    /// When each request arrived, with its endpoint key, oldest first (the
    /// first `MAX_ARRIVALS`): what rate-budget tests count windows in.
    arrivals: Mutex<Vec<(std::time::Instant, String)>>,
}

/// Arrivals kept: a bench's long soak must not grow the simulator without
/// bound.
const MAX_ARRIVALS: usize = 1_000_000;

impl Stats {
    pub(crate) fn record(&self, method: &Method, path: &str) {
        self.total.fetch_add(1, Ordering::Relaxed);
        if is_scim_write(method, path) {
            self.writes.fetch_add(1, Ordering::Relaxed);
        }
        let key = endpoint_key(method, path);
        {
            let mut arrivals = self.arrivals.lock().unwrap_or_else(PoisonError::into_inner);
            if arrivals.len() < MAX_ARRIVALS {
                arrivals.push((std::time::Instant::now(), key.clone()));
            }
        }
        let mut map = self
            .per_endpoint
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        *map.entry(key).or_insert(0) += 1;
    }

    pub(crate) fn snapshot(&self) -> BTreeMap<String, u64> {
        let map = self
            .per_endpoint
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        map.iter().map(|(k, v)| (k.clone(), *v)).collect()
    }

    pub(crate) fn arrivals(&self) -> Vec<(std::time::Instant, String)> {
        self.arrivals
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    pub(crate) fn total(&self) -> u64 {
        self.total.load(Ordering::Relaxed)
    }

    pub(crate) fn writes(&self) -> u64 {
        self.writes.load(Ordering::Relaxed)
    }

    /// Notes how the request's body was framed.
    pub(crate) fn record_framing(&self, headers: &axum::http::HeaderMap) {
        let chunked = headers
            .get_all(axum::http::header::TRANSFER_ENCODING)
            .iter()
            .any(|v| {
                v.to_str()
                    .is_ok_and(|v| v.to_ascii_lowercase().contains("chunked"))
            });
        if chunked {
            self.chunked.fetch_add(1, Ordering::Relaxed);
        } else if headers.contains_key(axum::http::header::CONTENT_LENGTH) {
            self.sized.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Counts a request in until the returned guard is dropped (its answer is out).
    pub(crate) fn in_flight(&self) -> InFlight<'_> {
        let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        self.max_in_flight.fetch_max(now, Ordering::SeqCst);
        InFlight(self)
    }

    pub(crate) fn max_in_flight(&self) -> u64 {
        self.max_in_flight.load(Ordering::SeqCst)
    }

    /// Starts counting the most at once afresh, from those being answered now.
    pub(crate) fn reset_max_in_flight(&self) {
        let now = self.in_flight.load(Ordering::SeqCst);
        self.max_in_flight.store(now, Ordering::SeqCst);
    }

    pub(crate) fn chunked(&self) -> u64 {
        self.chunked.load(Ordering::Relaxed)
    }

    pub(crate) fn sized(&self) -> u64 {
        self.sized.load(Ordering::Relaxed)
    }

    pub(crate) fn record_connection(&self) {
        self.connections.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn connections(&self) -> u64 {
        self.connections.load(Ordering::Relaxed)
    }

    pub(crate) fn record_tls_failure(&self) {
        self.tls_failures.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn tls_failures(&self) -> u64 {
        self.tls_failures.load(Ordering::Relaxed)
    }
}

/// A request being answered (see [`Stats::in_flight`]).
pub(crate) struct InFlight<'a>(&'a Stats);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

fn is_scim_write(method: &Method, path: &str) -> bool {
    (path == "/scim/v2" || path.starts_with("/scim/v2/"))
        && matches!(
            *method,
            Method::POST | Method::PATCH | Method::PUT | Method::DELETE
        )
}

/// `"PATCH /scim/v2/Groups/{id}"`: the method and the path with the resource
/// id replaced, so every group's PATCH lands on one key.
pub(crate) fn endpoint_key(method: &Method, path: &str) -> String {
    if let Some(rest) = path.strip_prefix("/scim/v2/") {
        let mut parts = rest.splitn(3, '/');
        if let (Some(resource), Some(id)) = (parts.next(), parts.next()) {
            if !id.is_empty() {
                return match parts.next() {
                    Some(tail) => format!("{method} /scim/v2/{resource}/{{id}}/{tail}"),
                    None => format!("{method} /scim/v2/{resource}/{{id}}"),
                };
            }
        }
    }
    format!("{method} {path}")
}

/// Outermost middleware: count every request as received (faulted ones
/// too), then add the configured latency.
pub(crate) async fn observe(
    State(shared): State<Arc<Shared>>,
    req: Request,
    next: Next,
) -> Response {
    shared.stats.record(req.method(), req.uri().path());
    shared.stats.record_framing(req.headers());
    let _answering = shared.stats.in_flight();
    let latency = shared.faults().latency;
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    next.run(req).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys() {
        assert_eq!(
            endpoint_key(&Method::PATCH, "/scim/v2/Groups/74906dd6-f2c6"),
            "PATCH /scim/v2/Groups/{id}"
        );
        assert_eq!(
            endpoint_key(&Method::GET, "/scim/v2/Users"),
            "GET /scim/v2/Users"
        );
        assert_eq!(
            endpoint_key(&Method::GET, "/scim/v2/Users/"),
            "GET /scim/v2/Users/"
        );
        assert_eq!(
            endpoint_key(&Method::POST, "/oauth/token"),
            "POST /oauth/token"
        );
        assert!(is_scim_write(&Method::DELETE, "/scim/v2/Users/x"));
        assert!(!is_scim_write(&Method::POST, "/oauth/token"));
        assert!(!is_scim_write(&Method::GET, "/scim/v2/Users"));
    }

    #[test]
    fn counts() {
        let s = Stats::default();
        s.record(&Method::GET, "/scim/v2/Users/a");
        s.record(&Method::GET, "/scim/v2/Users/b");
        s.record(&Method::POST, "/scim/v2/Users");
        assert_eq!(s.total(), 3);
        assert_eq!(s.writes(), 1);
        assert_eq!(s.snapshot().get("GET /scim/v2/Users/{id}"), Some(&2));
    }
}
