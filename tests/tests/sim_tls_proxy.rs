//! The test doubles for the host's own HTTP client, tested themselves: the
//! simulator over HTTPS with a test PKI, its connection and failed-handshake
//! counts, and the CONNECT proxy. The client here is hyper's low-level
//! connection API over tokio-rustls, so a test controls exactly which
//! connection each request rides on.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::future::Future;
use std::io::{Read as _, Write as _};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::proxy::{Connect, Proxy, ProxyOptions};
use common::tls::{resolve_arg, unrelated_ca, TestPki, TEST_HOST};
use http_body_util::{BodyExt as _, Full};
use hyper::body::Bytes;
use hyper::client::conn::http1::SendRequest;
use hyper::header::{HeaderMap, HOST, PROXY_AUTHORIZATION};
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use ironclad_sim::{SimConfig, Simulator, TenantSpec};
use serde_json::{json, Value};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::rustls::pki_types::pem::PemObject as _;
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName};
use tokio_rustls::rustls::{self, ClientConfig, RootCertStore};
use tokio_rustls::TlsConnector;

fn block_on<F: Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}

/// Waits for a count the server updates after the client has moved on.
#[track_caller]
fn eventually(what: &str, cond: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn spec() -> TenantSpec {
    TenantSpec {
        users: 6,
        groups: 2,
        memberships: 5,
        seed: 5,
    }
}

fn plain_sim() -> Simulator {
    Simulator::start(SimConfig {
        tenant: spec(),
        ..SimConfig::default()
    })
    .unwrap()
}

fn tls_sim(pki: &TestPki) -> Simulator {
    Simulator::start(SimConfig {
        tenant: spec(),
        tls: Some(pki.identity()),
        public_host: Some(TEST_HOST.to_string()),
        ..SimConfig::default()
    })
    .unwrap()
}

/// `NAME:PORT` of the base URL: the `Host` header a client sends.
fn authority(sim: &Simulator) -> String {
    sim.base_url().split("://").nth(1).unwrap().to_string()
}

/// A TLS client that trusts only the roots in `ca_pem`.
fn trusting(ca_pem: &Path) -> TlsConnector {
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(ca_pem).unwrap() {
        roots.add(cert.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let cfg = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    TlsConnector::from(Arc::new(cfg))
}

async fn tls_connect(
    connector: &TlsConnector,
    addr: SocketAddr,
    name: ServerName<'static>,
) -> std::io::Result<TlsStream<TcpStream>> {
    let tcp = TcpStream::connect(addr).await?;
    connector.connect(name, tcp).await
}

fn dns(name: &str) -> ServerName<'static> {
    ServerName::try_from(name.to_string()).unwrap()
}

type Sender = SendRequest<Full<Bytes>>;

/// An HTTP/1.1 client connection over `io`; every request sent on the
/// returned sender rides this one connection.
async fn http1<T>(io: T) -> Sender
where
    T: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let (sender, conn) = hyper::client::conn::http1::handshake(io).await.unwrap();
    // Upgrades enabled so a CONNECT's 200 hands the stream over (proxy tests).
    tokio::spawn(conn.with_upgrades());
    sender
}

struct Reply {
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "status {} body not JSON ({e}): {}",
                self.status,
                String::from_utf8_lossy(&self.body)
            )
        })
    }
}

async fn send(
    sender: &mut Sender,
    method: Method,
    host: &str,
    target: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Reply {
    sender.ready().await.unwrap();
    let mut req = Request::builder()
        .method(method)
        .uri(target)
        .header(HOST, host);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = sender
        .send_request(req.body(Full::new(Bytes::from(body.to_string()))).unwrap())
        .await
        .unwrap();
    let (parts, body) = resp.into_parts();
    Reply {
        status: parts.status,
        headers: parts.headers,
        body: body.collect().await.unwrap().to_bytes(),
    }
}

async fn token(sender: &mut Sender, sim: &Simulator) -> String {
    let body = json!({
        "grant_type": "client_credentials",
        "client_id": sim.client_id(),
        "client_secret": sim.client_secret(),
    })
    .to_string();
    let r = send(
        sender,
        Method::POST,
        &authority(sim),
        "/oauth/token",
        &[("content-type", "application/json")],
        &body,
    )
    .await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    r.json()["access_token"].as_str().unwrap().to_string()
}

async fn not_found(sender: &mut Sender, sim: &Simulator) {
    let r = send(sender, Method::GET, &authority(sim), "/nope", &[], "").await;
    assert_eq!(r.status, 404);
}

/// Sends `CONNECT target` and, on 200, answers the tunnel.
async fn connect(
    sender: &mut Sender,
    target: &str,
    authorization: Option<&str>,
) -> Result<hyper::upgrade::Upgraded, Reply> {
    sender.ready().await.unwrap();
    let mut req = Request::builder()
        .method(Method::CONNECT)
        .uri(target)
        .header(HOST, target);
    if let Some(a) = authorization {
        req = req.header(PROXY_AUTHORIZATION, a);
    }
    let resp = sender
        .send_request(req.body(Full::new(Bytes::new())).unwrap())
        .await
        .unwrap();
    if resp.status() != StatusCode::OK {
        let (parts, body) = resp.into_parts();
        return Err(Reply {
            status: parts.status,
            headers: parts.headers,
            body: body.collect().await.unwrap().to_bytes(),
        });
    }
    Ok(hyper::upgrade::on(resp).await.unwrap())
}

async fn to_proxy(proxy: &Proxy) -> Sender {
    http1(TokioIo::new(
        TcpStream::connect(proxy.addr()).await.unwrap(),
    ))
    .await
}

#[test]
fn https_serves_a_client_that_trusts_the_test_ca() {
    let dir = tempfile::tempdir().unwrap();
    let pki = TestPki::create(dir.path(), TEST_HOST);
    let sim = tls_sim(&pki);
    let port = sim.local_addr().port();
    assert_eq!(sim.base_url(), format!("https://{TEST_HOST}:{port}"));
    assert_eq!(resolve_arg(&sim), format!("{TEST_HOST}:{port}:127.0.0.1"));

    block_on(async {
        let connector = trusting(&pki.ca_pem);
        let tls = tls_connect(&connector, sim.local_addr(), dns(TEST_HOST))
            .await
            .unwrap();
        // The server sent the intermediate: the client holds only the root.
        let chain = tls.get_ref().1.peer_certificates().unwrap();
        assert_eq!(chain.len(), 2, "leaf and intermediate");
        let mut conn = http1(TokioIo::new(tls)).await;
        let token = token(&mut conn, &sim).await;
        let auth = format!("Bearer {token}");
        let users = send(
            &mut conn,
            Method::GET,
            &authority(&sim),
            "/scim/v2/Users?count=3",
            &[
                ("authorization", &auth),
                ("x-as-user-email", &sim.admin_email()),
            ],
            "",
        )
        .await;
        assert_eq!(
            users.status,
            200,
            "{}",
            String::from_utf8_lossy(&users.body)
        );
        let resources = users.json()["Resources"].as_array().unwrap().clone();
        assert_eq!(resources.len(), 3);
        for r in resources {
            let location = r["meta"]["location"].as_str().unwrap();
            assert!(
                location.starts_with(&format!("{}/scim/v2/Users/", sim.base_url())),
                "{location}"
            );
        }

        // The certificate also names 127.0.0.1, for clients given the address.
        let by_ip = tls_connect(
            &connector,
            sim.local_addr(),
            ServerName::IpAddress(IpAddr::V4(Ipv4Addr::LOCALHOST).into()),
        )
        .await
        .unwrap();
        not_found(&mut http1(TokioIo::new(by_ip)).await, &sim).await;
    });

    assert_eq!(
        sim.connections(),
        2,
        "two requests shared the first connection"
    );
    assert_eq!(sim.total_requests(), 3);
    assert_eq!(sim.tls_failures(), 0);
}

#[test]
fn failed_handshakes_are_counted_and_the_server_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let pki = TestPki::create(dir.path(), TEST_HOST);
    let other = unrelated_ca(dir.path());
    let sim = tls_sim(&pki);

    block_on(async {
        let err = tls_connect(&trusting(&other), sim.local_addr(), dns(TEST_HOST))
            .await
            .unwrap_err();
        assert!(
            err.to_string().contains("invalid peer certificate"),
            "{err}"
        );
    });
    eventually("the refused handshake to be counted", || {
        sim.tls_failures() == 1
    });

    // The right CA, the wrong name.
    block_on(async {
        let err = tls_connect(&trusting(&pki.ca_pem), sim.local_addr(), dns("other.test"))
            .await
            .unwrap_err();
        assert!(err.to_string().contains("not valid for name"), "{err}");
    });
    eventually("the wrong-name handshake to be counted", || {
        sim.tls_failures() == 2
    });

    // Plain HTTP to the HTTPS port: no answer in HTTP, the connection closed.
    let mut plain = std::net::TcpStream::connect(sim.local_addr()).unwrap();
    plain
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    plain
        .write_all(b"GET /nope HTTP/1.1\r\nHost: ironclad.test\r\n\r\n")
        .unwrap();
    let mut got = Vec::new();
    let _ = plain.read_to_end(&mut got);
    assert!(
        !got.starts_with(b"HTTP/"),
        "{}",
        String::from_utf8_lossy(&got)
    );
    eventually("the plain-HTTP handshake to be counted", || {
        sim.tls_failures() == 3
    });

    block_on(async {
        let tls = tls_connect(&trusting(&pki.ca_pem), sim.local_addr(), dns(TEST_HOST))
            .await
            .unwrap();
        not_found(&mut http1(TokioIo::new(tls)).await, &sim).await;
    });
    assert_eq!(sim.connections(), 4);
    assert_eq!(
        sim.total_requests(),
        1,
        "only the trusted client got through"
    );
    assert_eq!(sim.tls_failures(), 3);
}

#[test]
fn connections_are_counted_on_plain_http() {
    let sim = plain_sim();
    assert!(sim.base_url().starts_with("http://127.0.0.1:"));
    block_on(async {
        let mut first = http1(TokioIo::new(
            TcpStream::connect(sim.local_addr()).await.unwrap(),
        ))
        .await;
        for _ in 0..3 {
            not_found(&mut first, &sim).await;
        }
        assert_eq!(sim.connections(), 1, "three requests, one connection");
        let mut second = http1(TokioIo::new(
            TcpStream::connect(sim.local_addr()).await.unwrap(),
        ))
        .await;
        not_found(&mut second, &sim).await;
    });
    assert_eq!(sim.connections(), 2);
    assert_eq!(sim.total_requests(), 4);
    assert_eq!(sim.tls_failures(), 0);
}

#[test]
fn the_proxy_tunnels_plain_http_and_records_the_target() {
    let sim = plain_sim();
    let proxy = Proxy::start(ProxyOptions::default());
    assert_eq!(proxy.url(), format!("http://{}", proxy.addr()));
    let target = sim.local_addr().to_string();

    block_on(async {
        let mut to_proxy = to_proxy(&proxy).await;
        let tunnel = match connect(&mut to_proxy, &target, None).await {
            Ok(t) => t,
            Err(r) => panic!("CONNECT answered {}", r.status),
        };
        let mut conn = http1(tunnel).await;
        token(&mut conn, &sim).await;
        not_found(&mut conn, &sim).await;
    });

    assert_eq!(proxy.targets(), vec![target.clone()]);
    assert_eq!(
        proxy.connects(),
        vec![Connect {
            target,
            authorization: None,
            status: 200
        }]
    );
    assert_eq!(proxy.connect_count(), 1);
    assert_eq!(proxy.tunnels(), 1);
    assert!(!proxy.auth_seen());
    assert_eq!(proxy.connections(), 1);
    assert_eq!(sim.connections(), 1, "both requests rode the one tunnel");
    assert_eq!(sim.total_requests(), 2);
}

#[test]
fn the_proxy_tunnels_tls_to_the_simulator_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let pki = TestPki::create(dir.path(), TEST_HOST);
    let sim = tls_sim(&pki);
    let proxy = Proxy::start(ProxyOptions {
        resolve: vec![(TEST_HOST.to_string(), IpAddr::V4(Ipv4Addr::LOCALHOST))],
        ..ProxyOptions::default()
    });
    let target = authority(&sim);

    block_on(async {
        let mut to_proxy = to_proxy(&proxy).await;
        let tunnel = match connect(&mut to_proxy, &target, None).await {
            Ok(t) => t,
            Err(r) => panic!("CONNECT answered {}", r.status),
        };
        let tls = trusting(&pki.ca_pem)
            .connect(dns(TEST_HOST), TokioIo::new(tunnel))
            .await
            .unwrap();
        let mut conn = http1(TokioIo::new(tls)).await;
        token(&mut conn, &sim).await;
    });

    assert_eq!(
        proxy.targets(),
        vec![format!("{TEST_HOST}:{}", sim.local_addr().port())]
    );
    assert_eq!(sim.connections(), 1);
    assert_eq!(sim.tls_failures(), 0);
    assert_eq!(sim.tokens_issued(), 1);
}

#[test]
fn the_proxy_demands_its_credentials() {
    let sim = plain_sim();
    let proxy = Proxy::start(ProxyOptions {
        credentials: Some(("alice".to_string(), "s3cret:!".to_string())),
        ..ProxyOptions::default()
    });
    assert_eq!(
        proxy.url_with_credentials("alice", "s3cret:!"),
        format!("http://alice:s3cret%3A%21@{}", proxy.addr())
    );
    let target = sim.local_addr().to_string();
    let basic = |creds: &str| {
        use base64::Engine as _;
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(creds)
        )
    };

    block_on(async {
        // One client connection throughout: a 407 leaves it usable, as
        // clients that retry with credentials expect.
        let mut to_proxy = to_proxy(&proxy).await;
        let Err(refused) = connect(&mut to_proxy, &target, None).await else {
            panic!("CONNECT without credentials was let through");
        };
        assert_eq!(refused.status, 407);
        let challenge = refused.headers["proxy-authenticate"].to_str().unwrap();
        assert!(challenge.starts_with("Basic "), "{challenge}");

        let Err(wrong) = connect(&mut to_proxy, &target, Some(&basic("alice:nope"))).await else {
            panic!("CONNECT with the wrong password was let through");
        };
        assert_eq!(wrong.status, 407);

        let tunnel = match connect(&mut to_proxy, &target, Some(&basic("alice:s3cret:!"))).await {
            Ok(t) => t,
            Err(r) => panic!("CONNECT with credentials answered {}", r.status),
        };
        not_found(&mut http1(tunnel).await, &sim).await;
    });

    let statuses: Vec<u16> = proxy.connects().iter().map(|c| c.status).collect();
    assert_eq!(statuses, [407, 407, 200]);
    let auths: Vec<Option<String>> = proxy
        .connects()
        .into_iter()
        .map(|c| c.authorization)
        .collect();
    assert_eq!(
        auths,
        [
            None,
            Some(basic("alice:nope")),
            Some(basic("alice:s3cret:!"))
        ]
    );
    assert!(proxy.auth_seen());
    assert_eq!(proxy.targets().len(), 3);
    assert_eq!(proxy.tunnels(), 1);
    assert_eq!(proxy.connections(), 1);
    assert_eq!(sim.connections(), 1);
}

#[test]
fn the_proxy_refuses_other_methods_and_dials_known_loopback_only() {
    let proxy = Proxy::start(ProxyOptions::default());
    // A port that was free a moment ago: nothing listens there.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .to_string();

    block_on(async {
        let mut to_proxy = to_proxy(&proxy).await;
        let r = send(
            &mut to_proxy,
            Method::GET,
            "127.0.0.1:1",
            "http://127.0.0.1:1/",
            &[],
            "",
        )
        .await;
        assert_eq!(r.status, 405);
        assert_eq!(r.headers["allow"], "CONNECT");

        // TEST-NET-1: refused before any dial, so nothing leaves the machine.
        let Err(far) = connect(&mut to_proxy, "192.0.2.1:443", None).await else {
            panic!("CONNECT off loopback was let through");
        };
        assert_eq!(far.status, 403);

        // A name it was not given is not looked up in DNS.
        let Err(unknown) = connect(&mut to_proxy, "ironclad.test:443", None).await else {
            panic!("CONNECT to an unknown name was let through");
        };
        assert_eq!(unknown.status, 502);
        assert!(
            String::from_utf8_lossy(&unknown.body).contains("ProxyOptions::resolve"),
            "{}",
            String::from_utf8_lossy(&unknown.body)
        );

        let Err(down) = connect(&mut to_proxy, &closed, None).await else {
            panic!("CONNECT to a closed port was let through");
        };
        assert_eq!(down.status, 502);
    });

    assert_eq!(proxy.other_requests(), 1);
    assert_eq!(
        proxy.targets(),
        vec![
            "192.0.2.1:443".to_string(),
            "ironclad.test:443".to_string(),
            closed
        ]
    );
    assert_eq!(proxy.tunnels(), 0);
}
