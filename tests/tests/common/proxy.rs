//! A CONNECT proxy on loopback, standing in for a corporate egress proxy in
//! the host's `HTTPS_PROXY` / `--proxy` tests. It answers `CONNECT
//! host:port` by dialling the target and copying bytes both ways, so TLS to
//! the simulator runs end to end through it; it records every CONNECT so a
//! test can assert the host went through it, and can demand Basic
//! credentials (407 otherwise). Anything but CONNECT gets 405: it is not a
//! forwarding proxy. Like the simulator it runs on its own thread and
//! runtime, and dropping it stops it.
//!
//! It never asks DNS and dials loopback only: a name is one it was told
//! ([`ProxyOptions::resolve`]) or `localhost`, an address must be loopback.
//! A test that points it elsewhere gets 502 or 403, never a packet off the
//! machine.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use base64::Engine as _;
use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::header::{HeaderValue, ALLOW, PROXY_AUTHENTICATE, PROXY_AUTHORIZATION};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

const DIAL_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Clone, Debug, Default)]
pub struct ProxyOptions {
    /// Require `Proxy-Authorization: Basic base64(user:pass)` on CONNECT;
    /// without it (or with other credentials) the answer is 407 with
    /// `Proxy-Authenticate: Basic`.
    pub credentials: Option<(String, String)>,
    /// Names the proxy resolves itself, like a proxy on the tenant's side
    /// of the network would (`ironclad.test` → 127.0.0.1). Other names but
    /// `localhost` are answered 502.
    pub resolve: Vec<(String, IpAddr)>,
}

/// One CONNECT request as the proxy saw and answered it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Connect {
    /// The request target as sent: `host:port`.
    pub target: String,
    /// The `Proxy-Authorization` header, if any, verbatim.
    pub authorization: Option<String>,
    /// What the proxy answered: 200 (tunnel open), 400, 403, 407, 502 or
    /// 504.
    pub status: u16,
}

struct State {
    credentials: Option<(String, String)>,
    resolve: HashMap<String, IpAddr>,
    connects: Mutex<Vec<Connect>>,
    connections: AtomicU64,
    other_requests: AtomicU64,
}

impl State {
    fn record(&self, target: &str, authorization: Option<String>, status: StatusCode) {
        self.connects.lock().unwrap().push(Connect {
            target: target.to_string(),
            authorization,
            status: status.as_u16(),
        });
    }
}

/// A running proxy. Dropping it stops it (open tunnels are cut).
pub struct Proxy {
    addr: SocketAddr,
    state: Arc<State>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Proxy {
    pub fn start(opts: ProxyOptions) -> Proxy {
        let std_listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind proxy");
        std_listener.set_nonblocking(true).unwrap();
        let addr = std_listener.local_addr().unwrap();
        let state = Arc::new(State {
            credentials: opts.credentials,
            resolve: opts
                .resolve
                .into_iter()
                .map(|(name, ip)| (name.to_ascii_lowercase(), ip))
                .collect(),
            connects: Mutex::new(Vec::new()),
            connections: AtomicU64::new(0),
            other_requests: AtomicU64::new(0),
        });
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("test-proxy")
            .enable_all()
            .build()
            .expect("proxy runtime");
        let listener = {
            let _guard = runtime.enter();
            tokio::net::TcpListener::from_std(std_listener).unwrap()
        };
        let (tx, mut rx) = tokio::sync::oneshot::channel::<()>();
        let serving = state.clone();
        let thread = std::thread::Builder::new()
            .name("test-proxy".into())
            .spawn(move || {
                runtime.block_on(async move {
                    loop {
                        tokio::select! {
                            _ = &mut rx => break,
                            accepted = listener.accept() => match accepted {
                                Ok((tcp, _)) => {
                                    serving.connections.fetch_add(1, Ordering::Relaxed);
                                    tokio::spawn(serve_connection(tcp, serving.clone()));
                                }
                                // Out of descriptors or the like: don't spin.
                                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
                            },
                        }
                    }
                });
                runtime.shutdown_timeout(Duration::from_millis(500));
            })
            .expect("spawn proxy thread");
        Proxy {
            addr,
            state,
            shutdown: Some(tx),
            thread: Some(thread),
        }
    }

    /// `http://127.0.0.1:PORT` (for `HTTPS_PROXY` or `--proxy`).
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// `http://USER:PASS@127.0.0.1:PORT`, user and password percent-encoded.
    pub fn url_with_credentials(&self, user: &str, pass: &str) -> String {
        use percent_encoding::{utf8_percent_encode, NON_ALPHANUMERIC};
        format!(
            "http://{}:{}@{}",
            utf8_percent_encode(user, NON_ALPHANUMERIC),
            utf8_percent_encode(pass, NON_ALPHANUMERIC),
            self.addr
        )
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Every CONNECT received, in order, however it was answered.
    pub fn connects(&self) -> Vec<Connect> {
        self.state.connects.lock().unwrap().clone()
    }

    /// The targets of every CONNECT received, in order (refused ones too).
    pub fn targets(&self) -> Vec<String> {
        self.connects().into_iter().map(|c| c.target).collect()
    }

    pub fn connect_count(&self) -> u64 {
        self.state.connects.lock().unwrap().len() as u64
    }

    /// Tunnels opened (CONNECTs answered 200).
    pub fn tunnels(&self) -> u64 {
        self.connects().iter().filter(|c| c.status == 200).count() as u64
    }

    /// Whether any CONNECT carried a `Proxy-Authorization` header (right
    /// or wrong; see [`Proxy::connects`] for which).
    pub fn auth_seen(&self) -> bool {
        self.connects().iter().any(|c| c.authorization.is_some())
    }

    /// TCP connections accepted from clients.
    pub fn connections(&self) -> u64 {
        self.state.connections.load(Ordering::Relaxed)
    }

    /// Requests other than CONNECT (each answered 405).
    pub fn other_requests(&self) -> u64 {
        self.state.other_requests.load(Ordering::Relaxed)
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

async fn serve_connection(tcp: TcpStream, state: Arc<State>) {
    let _ = tcp.set_nodelay(true);
    let service = service_fn(move |req| handle(req, state.clone()));
    // Errors are the client's going away; the test sees them on its side.
    let _ = http1::Builder::new()
        .serve_connection(TokioIo::new(tcp), service)
        .with_upgrades()
        .await;
}

async fn handle(
    req: Request<Incoming>,
    state: Arc<State>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    if req.method() != Method::CONNECT {
        state.other_requests.fetch_add(1, Ordering::Relaxed);
        let mut resp = answer(StatusCode::METHOD_NOT_ALLOWED, "only CONNECT is supported");
        resp.headers_mut()
            .insert(ALLOW, HeaderValue::from_static("CONNECT"));
        return Ok(resp);
    }
    let target = match req.uri().authority() {
        Some(a) => a.to_string(),
        None => req.uri().to_string(),
    };
    let authorization = req
        .headers()
        .get(PROXY_AUTHORIZATION)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());

    if let Some((user, pass)) = &state.credentials {
        if !basic_matches(authorization.as_deref(), user, pass) {
            state.record(
                &target,
                authorization,
                StatusCode::PROXY_AUTHENTICATION_REQUIRED,
            );
            let mut resp = answer(
                StatusCode::PROXY_AUTHENTICATION_REQUIRED,
                "proxy credentials required",
            );
            resp.headers_mut().insert(
                PROXY_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"test-proxy\""),
            );
            return Ok(resp);
        }
    }

    let upstream = match dial(&state, &req).await {
        Ok(tcp) => tcp,
        Err((status, why)) => {
            state.record(&target, authorization, status);
            return Ok(answer(status, &why));
        }
    };
    state.record(&target, authorization, StatusCode::OK);
    // The 200 must go out before the client starts its TLS handshake, so
    // the tunnel is joined once hyper hands over the connection.
    tokio::spawn(async move {
        if let Ok(upgraded) = hyper::upgrade::on(req).await {
            let mut client = TokioIo::new(upgraded);
            let mut upstream = upstream;
            let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
        }
    });
    Ok(Response::new(Full::new(Bytes::new())))
}

/// Connects to the CONNECT target, on loopback only.
async fn dial(state: &State, req: &Request<Incoming>) -> Result<TcpStream, (StatusCode, String)> {
    let (Some(host), Some(port)) = (req.uri().host(), req.uri().port_u16()) else {
        return Err((
            StatusCode::BAD_REQUEST,
            "CONNECT needs host:port".to_string(),
        ));
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let name = host.to_ascii_lowercase();
    let ip = if let Some(ip) = state.resolve.get(&name) {
        *ip
    } else if let Ok(ip) = host.parse::<IpAddr>() {
        ip
    } else if name == "localhost" {
        IpAddr::V4(std::net::Ipv4Addr::LOCALHOST)
    } else {
        return Err((
            StatusCode::BAD_GATEWAY,
            format!("unknown host {host}: add it to ProxyOptions::resolve"),
        ));
    };
    if !ip.is_loopback() {
        return Err((
            StatusCode::FORBIDDEN,
            format!("this test proxy dials loopback only, not {ip}"),
        ));
    }
    match tokio::time::timeout(DIAL_TIMEOUT, TcpStream::connect((ip, port))).await {
        Ok(Ok(tcp)) => {
            let _ = tcp.set_nodelay(true);
            Ok(tcp)
        }
        Ok(Err(e)) => Err((
            StatusCode::BAD_GATEWAY,
            format!("dialling {ip}:{port}: {e}"),
        )),
        Err(_) => Err((
            StatusCode::GATEWAY_TIMEOUT,
            format!("dialling {ip}:{port}: timed out"),
        )),
    }
}

/// `Basic base64(user:pass)`, the scheme in any case.
fn basic_matches(header: Option<&str>, user: &str, pass: &str) -> bool {
    let Some((scheme, encoded)) = header.and_then(|h| h.trim().split_once(' ')) else {
        return false;
    };
    if !scheme.eq_ignore_ascii_case("basic") {
        return false;
    }
    base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .is_ok_and(|raw| raw == format!("{user}:{pass}").as_bytes())
}

fn answer(status: StatusCode, text: &str) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(Bytes::from(format!("{text}\n"))));
    *resp.status_mut() = status;
    resp
}
