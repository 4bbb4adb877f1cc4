//! The host's HTTP client for one connector: resolves a name once, vets
//! every address it resolves to, dials a vetted address (so a DNS answer
//! that changes between vetting and connecting cannot reach an address the
//! vetting refused), verifies the certificate for the origin's name, and
//! keeps connections alive in a bounded pool per origin. Through a proxy it
//! opens a CONNECT tunnel to the origin instead.
//!
//! One client per connector instance: connections are never shared
//! between tenants, whose policies may differ.

use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use hyper_util::client::legacy::connect::proxy::Tunnel;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpStream;
use wasmtime_wasi_http::{Error as HttpError, WasiBody};

use crate::allow_list::Origin;
use crate::egress::Policy;
use crate::network::Network;

/// Idle connections kept per origin. A sync has at most a few requests in
/// flight to one origin at a time (the pipelined pages, the bounds'
/// concurrent-request cap); more idle ones would only hold sockets.
const IDLE_PER_ORIGIN: usize = 8;

/// How long an idle connection is kept: below the 60 s or so after which
/// common load balancers close idle connections themselves, so a request
/// seldom meets a connection closed under it.
const IDLE_TIMEOUT: Duration = Duration::from_secs(50);

type Https = hyper_rustls::HttpsConnector<Dialer>;

/// A connector instance's client.
#[derive(Clone)]
pub(crate) struct Client {
    http: hyper_util::client::legacy::Client<Https, WasiBody>,
}

impl Client {
    pub(crate) fn new(policy: Arc<Policy>, network: &Network, connect_timeout: Duration) -> Self {
        let dialer = Dialer {
            policy,
            network: network.clone(),
            connect_timeout,
        };
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config((*network.tls()).clone())
            .https_or_http()
            .enable_http1()
            .wrap_connector(dialer);
        let http = hyper_util::client::legacy::Client::builder(TokioExecutor::new())
            .pool_max_idle_per_host(IDLE_PER_ORIGIN)
            .pool_idle_timeout(IDLE_TIMEOUT)
            .pool_timer(hyper_util::rt::TokioTimer::new())
            .build(https);
        Client { http }
    }

    /// Sends `request` (its URI absolute) and waits for the response's head
    /// for at most `head_timeout`; the body then fails when it stalls for
    /// `between_bytes`.
    pub(crate) async fn send(
        &self,
        origin: &Origin,
        request: http::Request<WasiBody>,
        head_timeout: Duration,
        between_bytes: Duration,
    ) -> Result<http::Response<Paced>, HttpError> {
        let response = match tokio::time::timeout(head_timeout, self.http.request(request)).await {
            Ok(Ok(r)) => r,
            Ok(Err(e)) => return Err(explain(origin, &e)),
            Err(_) => {
                tracing::warn!(%origin, "no response within {}s", head_timeout.as_secs());
                return Err(HttpError::ConnectionReadTimeout);
            }
        };
        Ok(response.map(|body| Paced::new(body, between_bytes)))
    }
}

/// Why a connection could not be made, as the dialer knows it.
#[derive(Debug, thiserror::Error)]
enum DialError {
    #[error("{origin} resolves to the internal address {ip}; only an --allow-host entry naming {ip} itself allows it")]
    Prohibited { origin: String, ip: IpAddr },
    #[error("DNS lookup of {host} failed: {reason}")]
    Dns { host: String, reason: String },
    #[error("DNS lookup of {host} timed out")]
    DnsTimeout { host: String },
    #[error("{host} has no address")]
    NoAddress { host: String },
    #[error("connecting to {addr} timed out")]
    ConnectTimeout { addr: SocketAddr },
    #[error("connecting to {addr}: {source}")]
    Connect { addr: SocketAddr, source: io::Error },
    #[error("the proxy {proxy} refused or failed the tunnel to {origin}: {reason}")]
    Proxy {
        proxy: String,
        origin: String,
        reason: String,
    },
    #[error("not an origin: {0}")]
    BadUri(String),
}

/// Dials an origin: directly, to a vetted address, or through the proxy.
#[derive(Clone)]
struct Dialer {
    policy: Arc<Policy>,
    network: Network,
    connect_timeout: Duration,
}

type Dialed = TokioIo<TcpStream>;
type DialFuture = Pin<Box<dyn Future<Output = Result<Dialed, DialError>> + Send>>;

impl tower_service::Service<http::Uri> for Dialer {
    type Response = Dialed;
    type Error = DialError;
    type Future = DialFuture;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), DialError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: http::Uri) -> DialFuture {
        let this = self.clone();
        Box::pin(async move {
            let origin = Origin::of_url(&uri.to_string())
                .map_err(|e| DialError::BadUri(format!("{e:#}")))?;
            match this.network.proxy_for(&uri) {
                Some(via) => this.tunnel(&origin, uri, via).await,
                None => this.direct(&origin).await,
            }
        })
    }
}

impl Dialer {
    async fn direct(&self, origin: &Origin) -> Result<Dialed, DialError> {
        let (addrs, operator_given) = self.resolve(origin).await?;
        for ip in &addrs {
            // An address the operator wrote in a --resolve rule for this
            // very origin is named as literally as an --allow-host entry
            // naming it; the component cannot write one.
            if !operator_given && !self.policy.address_allowed(origin, *ip) {
                return Err(DialError::Prohibited {
                    origin: origin.to_string(),
                    ip: *ip,
                });
            }
        }
        let mut last = None;
        for ip in addrs {
            let addr = SocketAddr::new(ip, origin.port);
            match tokio::time::timeout(self.connect_timeout, TcpStream::connect(addr)).await {
                Ok(Ok(tcp)) => {
                    // Requests and responses are small: Nagle and delayed
                    // ACKs would add tens of milliseconds to each.
                    let _ = tcp.set_nodelay(true);
                    return Ok(TokioIo::new(tcp));
                }
                Ok(Err(source)) => last = Some(DialError::Connect { addr, source }),
                Err(_) => last = Some(DialError::ConnectTimeout { addr }),
            }
        }
        Err(last.unwrap_or(DialError::NoAddress {
            host: origin.host.clone(),
        }))
    }

    /// The origin's addresses: its literal address, the operator's
    /// `--resolve` rule, or one DNS lookup; and whether the operator gave
    /// them.
    async fn resolve(&self, origin: &Origin) -> Result<(Vec<IpAddr>, bool), DialError> {
        if let Some(ip) = origin.ip() {
            return Ok((vec![ip], false));
        }
        if let Some(addrs) = self.network.resolved(&origin.host, origin.port) {
            return Ok((addrs.to_vec(), true));
        }
        let lookup = tokio::net::lookup_host((origin.host.as_str(), origin.port));
        let addrs: Vec<IpAddr> = match tokio::time::timeout(self.connect_timeout, lookup).await {
            Ok(Ok(addrs)) => addrs.map(|a| a.ip()).collect(),
            Ok(Err(e)) => {
                return Err(DialError::Dns {
                    host: origin.host.clone(),
                    reason: e.to_string(),
                })
            }
            Err(_) => {
                return Err(DialError::DnsTimeout {
                    host: origin.host.clone(),
                })
            }
        };
        if addrs.is_empty() {
            return Err(DialError::NoAddress {
                host: origin.host.clone(),
            });
        }
        Ok((addrs, false))
    }

    /// A CONNECT tunnel through the operator's proxy. The proxy resolves
    /// the origin's name, so its addresses cannot be vetted here; the
    /// allow-list has already passed the origin itself.
    async fn tunnel(
        &self,
        origin: &Origin,
        uri: http::Uri,
        via: hyper_util::client::proxy::matcher::Intercept,
    ) -> Result<Dialed, DialError> {
        let proxy_uri = via.uri().clone();
        let shown = match (proxy_uri.host(), proxy_uri.port_u16()) {
            (Some(h), Some(p)) => format!("{h}:{p}"),
            (Some(h), None) => h.to_string(),
            _ => "(unnamed)".to_string(),
        };
        let mut to_proxy = HttpConnector::new();
        to_proxy.set_connect_timeout(Some(self.connect_timeout));
        to_proxy.set_nodelay(true);
        let mut tunnel = Tunnel::new(proxy_uri, to_proxy);
        if let Some(auth) = via.basic_auth() {
            tunnel = tunnel.with_auth(auth.clone());
        }
        // The tunnel is to the origin's authority, whatever the path.
        let target = http::Uri::builder()
            .scheme(uri.scheme_str().unwrap_or("https"))
            .authority(if origin.host.contains(':') {
                format!("[{}]:{}", origin.host, origin.port)
            } else {
                format!("{}:{}", origin.host, origin.port)
            })
            .path_and_query("/")
            .build()
            .map_err(|e| DialError::BadUri(e.to_string()))?;
        use tower_service::Service as _;
        let fut = tunnel.call(target);
        match tokio::time::timeout(self.connect_timeout, fut).await {
            Ok(Ok(io)) => Ok(io),
            Ok(Err(e)) => Err(DialError::Proxy {
                proxy: shown,
                origin: origin.to_string(),
                // hyper-util's errors name the proxy's answer ("proxy
                // authorization required", "unsuccessful tunnel") and never
                // the credentials.
                reason: error_chain(&e),
            }),
            Err(_) => Err(DialError::Proxy {
                proxy: shown,
                origin: origin.to_string(),
                reason: "timed out".to_string(),
            }),
        }
    }
}

/// The wasi:http error code for a failed request, with the reason logged
/// once in words an operator can act on.
fn explain(origin: &Origin, e: &hyper_util::client::legacy::Error) -> HttpError {
    use std::error::Error as _;
    let mut cause = e.source();
    while let Some(c) = cause {
        if let Some(d) = c.downcast_ref::<DialError>() {
            tracing::warn!(%origin, "refused or failed an outbound request: {d}");
            return match d {
                DialError::Prohibited { .. } => HttpError::DestinationIpProhibited,
                DialError::Dns { reason, .. } => HttpError::DnsError {
                    rcode: Some(reason.clone()),
                    info_code: None,
                },
                DialError::DnsTimeout { .. } => HttpError::DnsTimeout,
                DialError::NoAddress { .. } => HttpError::DestinationNotFound,
                DialError::ConnectTimeout { .. } => HttpError::ConnectionTimeout,
                DialError::Connect { source, .. } => match source.kind() {
                    io::ErrorKind::ConnectionRefused => HttpError::ConnectionRefused,
                    _ => HttpError::DestinationUnavailable,
                },
                DialError::Proxy { .. } => HttpError::DestinationUnavailable,
                DialError::BadUri(_) => HttpError::HttpRequestUriInvalid,
            };
        }
        if let Some(tls) = c.downcast_ref::<rustls::Error>() {
            return tls_error(origin, tls);
        }
        if let Some(tls) = c.downcast_ref::<io::Error>().and_then(rustls_inside) {
            return tls_error(origin, tls);
        }
        if let Some(h) = c.downcast_ref::<hyper::Error>() {
            if h.is_incomplete_message() || h.is_canceled() || h.is_closed() {
                tracing::warn!(%origin, "the connection closed before a response: {}", error_chain(e));
                return HttpError::ConnectionTerminated;
            }
        }
        cause = c.source();
    }
    tracing::warn!(%origin, "outbound request failed: {}", error_chain(e));
    HttpError::HttpProtocolError
}

/// The TLS error an I/O error carries, however deeply: the TLS stream
/// wraps it in an I/O error and the connector wraps that in another, and
/// `io::Error::source` skips the error it wraps, so the chain alone never
/// shows it.
fn rustls_inside(e: &io::Error) -> Option<&rustls::Error> {
    let inner = e.get_ref()?;
    if let Some(tls) = inner.downcast_ref::<rustls::Error>() {
        return Some(tls);
    }
    inner.downcast_ref::<io::Error>().and_then(rustls_inside)
}

fn tls_error(origin: &Origin, e: &rustls::Error) -> HttpError {
    match e {
        rustls::Error::InvalidCertificate(why) => {
            tracing::warn!(
                %origin,
                "the TLS certificate of {origin} is not trusted ({why:?}); if a private CA or an inspecting proxy signs it, give that CA with --ca-file"
            );
            HttpError::TlsCertificateError
        }
        rustls::Error::AlertReceived(alert) => {
            tracing::warn!(%origin, "the TLS handshake with {origin} failed: the server sent {alert:?}");
            HttpError::TlsAlertReceived {
                alert_id: None,
                alert_message: Some(format!("{alert:?}")),
            }
        }
        other => {
            tracing::warn!(%origin, "the TLS handshake with {origin} failed: {other}");
            HttpError::TlsProtocolError
        }
    }
}

/// `e` and its causes on one line.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let s = c.to_string();
        if !out.contains(&s) {
            out.push_str(": ");
            out.push_str(&s);
        }
        cause = c.source();
    }
    out
}

/// A response body that fails when no bytes arrive for `between` (a
/// stalled server must not hold a sync until its call timeout).
pub(crate) struct Paced {
    inner: hyper::body::Incoming,
    between: Duration,
    stall: Pin<Box<tokio::time::Sleep>>,
}

impl Paced {
    fn new(inner: hyper::body::Incoming, between: Duration) -> Self {
        Paced {
            inner,
            between,
            stall: Box::pin(tokio::time::sleep(between)),
        }
    }
}

impl Body for Paced {
    type Data = Bytes;
    type Error = HttpError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, HttpError>>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                let next = tokio::time::Instant::now() + this.between;
                this.stall.as_mut().reset(next);
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(
                wasmtime_wasi_http::p2::hyper_response_error(e).into(),
            ))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => match this.stall.as_mut().poll(cx) {
                Poll::Ready(()) => Poll::Ready(Some(Err(HttpError::ConnectionReadTimeout))),
                Poll::Pending => Poll::Pending,
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
