//! HTTPS for the simulator: the certificate it presents, and an axum
//! listener that does the TLS handshake before handing connections to the
//! router. The host's own HTTP client (rustls, a connection pool, `--ca-file`,
//! `--resolve`) is tested against this, so the server side is plain rustls
//! with the ring provider and nothing clever.

use std::fmt;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use axum::serve::Listener;
use tokio::net::TcpStream;
use tokio::task::JoinSet;
use tokio_rustls::rustls::pki_types::pem::PemObject as _;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::{self, ServerConfig};
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;

use crate::server::Shared;

/// A client that connects and then says nothing must not hold a handshake
/// slot forever; real clients finish in milliseconds on loopback.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The certificate chain and private key the simulator serves HTTPS with,
/// both PEM. The chain is the leaf first, then any intermediates (the root
/// may follow; clients ignore it). The key is PKCS#8, PKCS#1 (RSA) or SEC1
/// (EC). Held as bytes so tests can make them in memory; the binary reads
/// them from files with [`TlsIdentity::from_files`].
#[derive(Clone)]
pub struct TlsIdentity {
    cert_chain_pem: Vec<u8>,
    key_pem: Vec<u8>,
}

impl TlsIdentity {
    pub fn from_pem(cert_chain_pem: impl Into<Vec<u8>>, key_pem: impl Into<Vec<u8>>) -> Self {
        TlsIdentity {
            cert_chain_pem: cert_chain_pem.into(),
            key_pem: key_pem.into(),
        }
    }

    pub fn from_files(cert_chain: &Path, key: &Path) -> anyhow::Result<Self> {
        let read = |p: &Path, what: &str| {
            std::fs::read(p).with_context(|| format!("reading the TLS {what} {}", p.display()))
        };
        Ok(TlsIdentity {
            cert_chain_pem: read(cert_chain, "certificate chain")?,
            key_pem: read(key, "private key")?,
        })
    }

    /// The rustls configuration, or a one-line reason it can't be made.
    /// Checked when the simulator starts, so a bad file fails `start`
    /// rather than every handshake.
    pub(crate) fn server_config(&self) -> anyhow::Result<Arc<ServerConfig>> {
        let certs = CertificateDer::pem_slice_iter(&self.cert_chain_pem)
            .collect::<Result<Vec<_>, _>>()
            .context("reading the TLS certificate chain (PEM)")?;
        anyhow::ensure!(
            !certs.is_empty(),
            "the TLS certificate chain holds no PEM CERTIFICATE block"
        );
        let key = PrivateKeyDer::from_pem_slice(&self.key_pem)
            .context("reading the TLS private key (PEM: PKCS#8, PKCS#1 or SEC1)")?;
        // The provider is named rather than taken from the process default:
        // which default is installed depends on the features the whole
        // dependency graph happens to enable.
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut cfg = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .context("choosing TLS protocol versions")?
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .context("the TLS certificate chain and private key do not go together")?;
        // The router speaks HTTP/1.1 only (axum without http2): say so, so a
        // client offering h2 settles on HTTP/1.1 during the handshake.
        cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Arc::new(cfg))
    }
}

// The key must never reach a test's failure output.
impl fmt::Debug for TlsIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsIdentity")
            .field(
                "cert_chain_pem",
                &format_args!("{} bytes", self.cert_chain_pem.len()),
            )
            .field("key_pem", &format_args!("<redacted>"))
            .finish()
    }
}

/// Accepts TCP connections from `inner` and hands out those whose TLS
/// handshake succeeded. Handshakes run as their own tasks, so one slow or
/// silent client delays nobody else; a failed one is logged, counted
/// ([`crate::Simulator::tls_failures`]) and dropped, and the server goes on.
pub(crate) struct TlsListener<L> {
    inner: L,
    acceptor: TlsAcceptor,
    shared: Arc<Shared>,
    handshakes: JoinSet<Option<(TlsStream<TcpStream>, SocketAddr)>>,
}

impl<L> TlsListener<L> {
    pub(crate) fn new(inner: L, config: Arc<ServerConfig>, shared: Arc<Shared>) -> Self {
        TlsListener {
            inner,
            acceptor: TlsAcceptor::from(config),
            shared,
            handshakes: JoinSet::new(),
        }
    }
}

impl<L> Listener for TlsListener<L>
where
    L: Listener<Io = TcpStream, Addr = SocketAddr>,
{
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            // Both branches are cancel-safe: a TCP accept not yet returned
            // loses nothing, and handshakes live on in the JoinSet.
            tokio::select! {
                (tcp, addr) = self.inner.accept() => {
                    let acceptor = self.acceptor.clone();
                    let shared = self.shared.clone();
                    self.handshakes.spawn(handshake(acceptor, tcp, addr, shared));
                }
                Some(done) = self.handshakes.join_next() => {
                    if let Ok(Some(conn)) = done {
                        return conn;
                    }
                }
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        self.inner.local_addr()
    }
}

async fn handshake(
    acceptor: TlsAcceptor,
    tcp: TcpStream,
    addr: SocketAddr,
    shared: Arc<Shared>,
) -> Option<(TlsStream<TcpStream>, SocketAddr)> {
    let reason = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
        Ok(Ok(tls)) => return Some((tls, addr)),
        Ok(Err(e)) => e.to_string(),
        Err(_) => format!("no handshake within {}s", HANDSHAKE_TIMEOUT.as_secs()),
    };
    shared.stats.record_tls_failure();
    eprintln!("ironclad-sim: TLS handshake with {addr} failed: {reason}");
    None
}

/// A host name for [`crate::SimConfig::public_host`]: DNS letters, digits,
/// dots and hyphens (an IPv4 address passes too). Anything else would make
/// the base URL mean something other than `scheme://name:port`.
pub(crate) fn check_public_host(name: &str) -> anyhow::Result<()> {
    let ok = !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-');
    anyhow::ensure!(
        ok,
        "public host {name:?} is not a host name: use letters, digits, '.' and '-' (e.g. ironclad.test)"
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    fn self_signed(name: &str) -> rcgen::CertifiedKey<rcgen::KeyPair> {
        rcgen::generate_simple_self_signed(vec![name.to_string()]).unwrap()
    }

    #[test]
    fn a_matching_chain_and_key_make_a_config() {
        let ck = self_signed("ironclad.test");
        let id = TlsIdentity::from_pem(ck.cert.pem(), ck.signing_key.serialize_pem());
        let cfg = id.server_config().unwrap();
        assert_eq!(cfg.alpn_protocols, vec![b"http/1.1".to_vec()]);
    }

    #[test]
    fn bad_pem_is_a_clear_error() {
        let ck = self_signed("ironclad.test");
        let key = ck.signing_key.serialize_pem();

        let err = TlsIdentity::from_pem("not a certificate", key.clone())
            .server_config()
            .unwrap_err();
        assert!(format!("{err:#}").contains("no PEM CERTIFICATE"), "{err:#}");

        let err = TlsIdentity::from_pem(ck.cert.pem(), "nope")
            .server_config()
            .unwrap_err();
        assert!(format!("{err:#}").contains("private key"), "{err:#}");

        let other = self_signed("other.test");
        let err = TlsIdentity::from_pem(ck.cert.pem(), other.signing_key.serialize_pem())
            .server_config()
            .unwrap_err();
        assert!(format!("{err:#}").contains("do not go together"), "{err:#}");
    }

    #[test]
    fn the_key_is_not_in_debug_output() {
        let ck = self_signed("ironclad.test");
        let key = ck.signing_key.serialize_pem();
        let shown = format!("{:?}", TlsIdentity::from_pem(ck.cert.pem(), key.clone()));
        assert!(!shown.contains(key.lines().nth(1).unwrap()), "{shown}");
        assert!(shown.contains("redacted"), "{shown}");
    }

    #[test]
    fn public_hosts() {
        for ok in [
            "ironclad.test",
            "127.0.0.1",
            "localhost",
            "na1.ironcladapp.com",
        ] {
            check_public_host(ok).unwrap();
        }
        for bad in ["", "a/b", "host:1", "user@host", "a b", "[::1]"] {
            assert!(check_public_host(bad).is_err(), "{bad:?}");
        }
    }
}
