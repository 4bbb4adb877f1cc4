//! Outbound HTTP: every request a component makes comes through
//! `send_request` here, so this is the one place that enforces the
//! allow-list, clamps timeouts, caps response bodies and counts requests.
//! The host's own client ([`crate::client`]) sends it: resolved once, every
//! address vetted, a vetted address dialled, connections pooled.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use wasmtime_wasi_http::{Error as HttpError, RequestOptions, WasiBody, WasiHttpHooks};

use crate::allow_list::Origin;
use crate::client::Client;
use crate::egress::Policy;
use crate::network::Network;
use crate::rate::Budgets;

/// Timeouts applied to every outbound request, whatever the guest asked:
/// wasmtime's own default is 600 s for each, far too long for a sync.
#[derive(Clone, Copy, Debug)]
pub struct Timeouts {
    pub connect: Duration,
    pub first_byte: Duration,
    pub between_bytes: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            connect: Duration::from_secs(10),
            first_byte: Duration::from_secs(60),
            between_bytes: Duration::from_secs(30),
        }
    }
}

impl Timeouts {
    /// The guest may ask for shorter timeouts, never longer ones.
    fn clamp(&self, asked: Option<RequestOptions>) -> RequestOptions {
        let asked = asked.unwrap_or_default();
        let pick =
            |guest: Option<Duration>, ours: Duration| Some(guest.map_or(ours, |g| g.min(ours)));
        RequestOptions {
            connect_timeout: pick(asked.connect_timeout, self.connect),
            first_byte_timeout: pick(asked.first_byte_timeout, self.first_byte),
            between_bytes_timeout: pick(asked.between_bytes_timeout, self.between_bytes),
        }
    }
}

#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub timeouts: Timeouts,
    /// Largest response body a component may read.
    pub max_body_bytes: u64,
}

/// The store's `WasiHttpHooks`.
pub struct Outbound {
    policy: Arc<Policy>,
    /// Sends what `policy` lets through; its connections are this
    /// policy's alone.
    client: Client,
    limits: Limits,
    requests: Arc<AtomicU64>,
    /// The tenant's rate budgets: every request waits for its turn here.
    budgets: Arc<Budgets>,
}

type IoFuture = Box<dyn Future<Output = Result<(), HttpError>> + Send>;
type SendFuture =
    Box<dyn Future<Output = Result<(http::Response<WasiBody>, IoFuture), HttpError>> + Send>;

impl Outbound {
    pub fn new(policy: Policy, limits: Limits, requests: Arc<AtomicU64>) -> Self {
        let policy = Arc::new(policy);
        Outbound {
            client: Client::new(policy.clone(), &Network::default(), limits.timeouts.connect),
            policy,
            limits,
            requests,
            budgets: Arc::new(Budgets::none()),
        }
    }

    /// Fixes what the instance may reach, how, and how fast: its
    /// connections (and their pool) belong to this policy alone; its
    /// budgets are the tenant's.
    pub fn set_policy(&mut self, policy: Arc<Policy>, network: &Network, budgets: Arc<Budgets>) {
        self.client = Client::new(policy.clone(), network, self.limits.timeouts.connect);
        self.policy = policy;
        self.budgets = budgets;
    }
}

impl WasiHttpHooks for Outbound {
    fn send_request(
        &mut self,
        request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        fut: IoFuture,
    ) -> SendFuture {
        let _ = fut;
        let origin = match Origin::of_url(&request.uri().to_string()) {
            Ok(o) => o,
            Err(e) => {
                tracing::warn!("refused an outbound request to an unusable URI: {e:#}");
                return Box::new(async { Err(HttpError::HttpRequestUriInvalid) });
            }
        };
        if let Err(denial) = self.policy.check(&origin) {
            tracing::warn!(%origin, "refused an outbound request: {denial}");
            return Box::new(async { Err(HttpError::HttpRequestDenied) });
        }
        if let Err(denial) = self
            .policy
            .check_method(request.method(), request.uri().path())
        {
            tracing::warn!(%origin, "refused {denial}");
            return Box::new(async { Err(HttpError::HttpRequestDenied) });
        }
        let client = self.client.clone();
        let options = self.limits.timeouts.clamp(options);
        let max_body = self.limits.max_body_bytes;
        let requests = self.requests.clone();
        let budgets = self.budgets.clone();
        tracing::debug!(method = %request.method(), %origin, path = request.uri().path(), "outbound request");
        Box::new(async move {
            let request = sized(request, MAX_REQUEST_BODY).await?;
            // The wait for the budget comes before the timeouts start: it
            // is the host's pacing, not the application being slow.
            budgets.admit(request.method(), request.uri().path()).await;
            requests.fetch_add(1, Ordering::Relaxed);
            // The dialer holds each connect to the operator's connect
            // timeout (a pooled connection outlives the request that
            // opened it, so a guest's shorter one no longer applies); the
            // head must come within the first-byte timeout of the request
            // being handed over (a new connection's TLS handshake included,
            // as it is part of getting that first byte).
            let first_byte = options
                .first_byte_timeout
                .unwrap_or(Duration::from_secs(60));
            let between = options
                .between_bytes_timeout
                .unwrap_or(Duration::from_secs(30));
            let response = client.send(&origin, request, first_byte, between).await?;
            let response = response.map(|body| {
                use http_body_util::BodyExt as _;
                Capped {
                    inner: body,
                    left: max_body,
                    limit: max_body,
                }
                .boxed_unsync()
            });
            // The pool's own tasks drive the connection: nothing for
            // wasmtime to await beside the response.
            let io: IoFuture = Box::new(async { Ok(()) });
            Ok((response, io))
        })
    }
}

/// The largest request body the host holds to send it with a
/// `Content-Length`. A connector's bodies are a few hundred bytes of JSON
/// (a token request, a membership change, a new account); a larger one is
/// refused rather than held without bound.
pub const MAX_REQUEST_BODY: usize = 8 << 20;

/// The request with its body read whole and sent with a `Content-Length`.
/// `wasi:http` streams a guest's body, which hyper would send chunked, and
/// some gateways and WAFs answer a chunked request with 411 or drop it.
/// The guest writes its body after handing the request over, so this waits
/// for the guest to finish it (the send runs in its own task). A body the
/// guest sized itself goes as it is: wasmtime holds it to that size.
async fn sized(
    request: http::Request<WasiBody>,
    max: usize,
) -> Result<http::Request<WasiBody>, HttpError> {
    use http_body_util::BodyExt as _;
    if request.headers().contains_key(http::header::CONTENT_LENGTH) {
        return Ok(request);
    }
    let (mut parts, body) = request.into_parts();
    let bytes = http_body_util::Limited::new(body, max)
        .collect()
        .await
        .map_err(|e| {
            if e.is::<http_body_util::LengthLimitError>() {
                tracing::warn!(
                    max,
                    "refused an outbound request whose body is over the host's cap"
                );
                return HttpError::HttpRequestBodySize(Some(max as u64));
            }
            match e.downcast::<HttpError>() {
                Ok(code) => *code,
                Err(e) => HttpError::InternalError(Some(e.to_string())),
            }
        })?
        .to_bytes();
    // An empty GET stays without the header, as a plain client sends it;
    // a method that carries a body states its length even when it is 0.
    let carries_body = !matches!(
        parts.method,
        http::Method::GET | http::Method::HEAD | http::Method::DELETE | http::Method::OPTIONS
    );
    if !bytes.is_empty() || carries_body {
        parts.headers.insert(
            http::header::CONTENT_LENGTH,
            http::HeaderValue::from(bytes.len()),
        );
    }
    let body = http_body_util::Full::new(bytes)
        .map_err(|never| match never {})
        .boxed_unsync();
    Ok(http::Request::from_parts(parts, body))
}

/// A response body that fails once it passes `limit` bytes, so a hostile or
/// broken server cannot fill the component's memory (or the host's).
struct Capped<B> {
    inner: B,
    left: u64,
    limit: u64,
}

impl<B> Body for Capped<B>
where
    B: Body<Data = Bytes, Error = HttpError> + Unpin,
{
    type Data = Bytes;
    type Error = HttpError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, HttpError>>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    let n = data.len() as u64;
                    if n > this.left {
                        tracing::warn!(
                            limit = this.limit,
                            "refused a response body larger than --max-response-mb"
                        );
                        return Poll::Ready(Some(Err(HttpError::HttpResponseBodySize(Some(
                            this.limit,
                        )))));
                    }
                    this.left -= n;
                }
                Poll::Ready(Some(Ok(frame)))
            }
            other => other,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use http_body_util::BodyExt as _;

    fn request(method: http::Method, body: &'static [u8]) -> http::Request<WasiBody> {
        let body = http_body_util::Full::new(Bytes::from_static(body))
            .map_err(|never| match never {})
            .boxed_unsync();
        http::Request::builder()
            .method(method)
            .uri("http://127.0.0.1:9/x")
            .body(body)
            .unwrap()
    }

    fn run<T>(f: impl Future<Output = T>) -> T {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(f)
    }

    #[test]
    fn request_bodies_go_out_with_their_length() {
        let sized = run(sized(request(http::Method::PATCH, b"{\"op\":1}"), 64)).unwrap();
        assert_eq!(sized.headers()[http::header::CONTENT_LENGTH], "8");
        let body = run(sized.into_body().collect()).unwrap().to_bytes();
        assert_eq!(&body[..], b"{\"op\":1}");
        // An empty POST says 0; an empty GET says nothing, as plain clients do.
        let post = run(super::sized(request(http::Method::POST, b""), 64)).unwrap();
        assert_eq!(post.headers()[http::header::CONTENT_LENGTH], "0");
        let get = run(super::sized(request(http::Method::GET, b""), 64)).unwrap();
        assert!(!get.headers().contains_key(http::header::CONTENT_LENGTH));
    }

    #[test]
    fn a_request_body_over_the_cap_is_refused() {
        let err = run(sized(request(http::Method::POST, &[b'x'; 65]), 64)).unwrap_err();
        assert!(
            matches!(err, HttpError::HttpRequestBodySize(Some(64))),
            "{err:?}"
        );
    }

    #[test]
    fn timeouts_only_shrink() {
        let t = Timeouts::default();
        let got = t.clamp(Some(RequestOptions {
            connect_timeout: Some(Duration::from_secs(1)),
            first_byte_timeout: Some(Duration::from_secs(9999)),
            between_bytes_timeout: None,
        }));
        assert_eq!(got.connect_timeout, Some(Duration::from_secs(1)));
        assert_eq!(got.first_byte_timeout, Some(t.first_byte));
        assert_eq!(got.between_bytes_timeout, Some(t.between_bytes));
    }

    #[tokio::test]
    async fn bodies_past_the_cap_fail() {
        let body =
            http_body_util::Full::new(Bytes::from(vec![7u8; 100])).map_err(|never| match never {});
        let capped = Capped {
            inner: body,
            left: 50,
            limit: 50,
        };
        let err = capped.collect().await.err().unwrap();
        assert!(matches!(err, HttpError::HttpResponseBodySize(Some(50))));
        let body =
            http_body_util::Full::new(Bytes::from(vec![7u8; 40])).map_err(|never| match never {});
        let capped = Capped {
            inner: body,
            left: 50,
            limit: 50,
        };
        assert_eq!(capped.collect().await.ok().unwrap().to_bytes().len(), 40);
    }

    #[tokio::test]
    async fn internal_addresses_need_an_operator_rule_naming_them() {
        use crate::allow_list::AllowList;
        use crate::egress::OperatorEgress;
        let meta = crate::types::Metadata {
            display_name: String::new(),
            description: String::new(),
            version: String::new(),
            contract: crate::types::ContractVersion::V0_2,
            config_schema: vec![],
            account_creation_schema: vec![],
            outbound_hosts: vec![],
            capabilities: vec![],
            read_only_requests: vec![],
            rate_budgets: vec![],
        };
        let plan = |allow: &[&str]| {
            Policy::plan(
                &meta,
                &Default::default(),
                &OperatorEgress {
                    allow: AllowList::parse(allow).unwrap(),
                    ..Default::default()
                },
            )
            .unwrap()
        };
        let send = |allow: &[&str], url: &str| {
            let client = Client::new(
                Arc::new(plan(allow)),
                &Network::default(),
                Duration::from_secs(2),
            );
            let origin = Origin::of_url(url).unwrap();
            let req = request(http::Method::GET, b"");
            let (mut parts, body) = req.into_parts();
            parts.uri = url.parse().unwrap();
            async move {
                client
                    .send(
                        &origin,
                        http::Request::from_parts(parts, body),
                        Duration::from_secs(5),
                        Duration::from_secs(5),
                    )
                    .await
            }
        };
        // `localhost` resolves to loopback: allowed because the operator
        // named it, so the dial happens (and finds nothing on port 9).
        let err = send(&["http://localhost:9"], "http://localhost:9/x")
            .await
            .err()
            .unwrap();
        assert!(matches!(err, HttpError::ConnectionRefused), "{err:?}");
        // The metadata address, not named by any operator rule: never
        // dialled.
        let err = send(&[], "http://169.254.169.254/latest")
            .await
            .err()
            .unwrap();
        assert!(matches!(err, HttpError::DestinationIpProhibited), "{err:?}");
    }
}
