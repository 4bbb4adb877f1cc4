//! How the host reaches the network on components' behalf, set by the
//! operator once per process: the certificate authorities it trusts, names
//! it resolves by hand (`--resolve`, as curl's), and the egress proxy.
//! Nothing here widens what a component may reach: the allow-list and the
//! address vetting ([`crate::egress`]) apply to every request whatever
//! route it takes.

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;
use std::path::Path;
use std::sync::{Arc, LazyLock};

use hyper_util::client::proxy::matcher::{Intercept, Matcher};
use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::CertificateDer;

/// The operator's network settings, ready to use: cheap to clone.
#[derive(Clone)]
pub struct Network {
    tls: Arc<rustls::ClientConfig>,
    resolve: Arc<BTreeMap<(String, u16), Vec<IpAddr>>>,
    proxy: Option<Arc<Matcher>>,
    describe: Arc<Vec<String>>,
}

/// Where the proxy setting comes from.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum ProxyChoice {
    /// No proxy: every request dials its origin.
    #[default]
    Direct,
    /// `HTTPS_PROXY`, `HTTP_PROXY`, `ALL_PROXY` and `NO_PROXY` (or their
    /// lower-case forms), read the way curl reads them.
    Environment,
    /// One proxy for every origin but those `no_proxy` lists (`NO_PROXY`'s
    /// syntax: names, domain suffixes, addresses, CIDR blocks, `*`).
    Url {
        /// `http://[user:password@]host:port`.
        url: String,
        /// Origins that go direct.
        no_proxy: Option<String>,
    },
}

/// Why the operator's network settings are unusable. Never holds a proxy
/// URL's credentials.
#[derive(Debug, thiserror::Error)]
pub enum NetworkError {
    /// A CA file could not be read or holds no usable certificate.
    #[error("--ca-file {path}: {reason}")]
    CaFile {
        /// The file.
        path: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A `--resolve` rule is malformed.
    #[error("--resolve {rule:?}: {reason} (expected HOST:PORT:ADDR[,ADDR...], as curl's)")]
    Resolve {
        /// The rule as given.
        rule: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A proxy setting is unusable.
    #[error("{source_name}: {reason}")]
    Proxy {
        /// `--proxy` or the environment variable's name.
        source_name: String,
        /// What is wrong (the URL itself is not repeated: it may hold a
        /// password).
        reason: String,
    },
}

static DEFAULT: LazyLock<Network> = LazyLock::new(|| NetworkBuilder::default().build());

impl Default for Network {
    /// The bundled web PKI roots, DNS, no proxy.
    fn default() -> Self {
        DEFAULT.clone()
    }
}

impl fmt::Debug for Network {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.describe.iter()).finish()
    }
}

impl Network {
    /// Settings to build up, starting from the bundled roots, DNS and no
    /// proxy.
    pub fn builder() -> NetworkBuilder {
        NetworkBuilder::default()
    }

    /// One line per setting that differs from the defaults, for the log.
    /// Proxy credentials are left out.
    pub fn describe(&self) -> &[String] {
        &self.describe
    }

    pub(crate) fn tls(&self) -> Arc<rustls::ClientConfig> {
        self.tls.clone()
    }

    /// The addresses `--resolve` gives `host:port`, if any.
    pub(crate) fn resolved(&self, host: &str, port: u16) -> Option<&[IpAddr]> {
        self.resolve
            .get(&(host.to_ascii_lowercase(), port))
            .map(Vec::as_slice)
    }

    /// The proxy a request to `uri` goes through, if any.
    pub(crate) fn proxy_for(&self, uri: &http::Uri) -> Option<Intercept> {
        self.proxy.as_ref()?.intercept(uri)
    }
}

/// Builds a [`Network`].
pub struct NetworkBuilder {
    roots: rustls::RootCertStore,
    resolve: BTreeMap<(String, u16), Vec<IpAddr>>,
    proxy: Option<Matcher>,
    describe: Vec<String>,
}

impl Default for NetworkBuilder {
    fn default() -> Self {
        NetworkBuilder {
            // Bundled rather than read from the system: the image is built
            // FROM scratch and has no system store, and a sync must not
            // trust differently from one machine to the next.
            roots: rustls::RootCertStore {
                roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
            },
            resolve: BTreeMap::new(),
            proxy: None,
            describe: Vec::new(),
        }
    }
}

impl NetworkBuilder {
    /// Trusts the certificates of a PEM file as well (a private CA, an
    /// inspecting proxy's).
    pub fn ca_file(mut self, path: &Path) -> Result<Self, NetworkError> {
        let fail = |reason: String| NetworkError::CaFile {
            path: path.display().to_string(),
            reason,
        };
        let pem = std::fs::read(path).map_err(|e| fail(format!("cannot read it: {e}")))?;
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&pem)
            .collect::<Result<_, _>>()
            .map_err(|e| fail(format!("not a PEM certificate file: {e}")))?;
        if certs.is_empty() {
            return Err(fail(
                "holds no certificate (expected PEM blocks: -----BEGIN CERTIFICATE-----)".into(),
            ));
        }
        let (added, refused) = self.roots.add_parsable_certificates(certs);
        if added == 0 {
            return Err(fail(format!(
                "none of its {refused} certificates is usable as a trust anchor"
            )));
        }
        self.describe.push(format!(
            "trusting {added} more certificate authorit{} from {}",
            if added == 1 { "y" } else { "ies" },
            path.display()
        ));
        Ok(self)
    }

    /// `HOST:PORT:ADDR[,ADDR...]`: connections to `HOST:PORT` go to these
    /// addresses instead of what DNS says (curl's `--resolve`). The
    /// certificate is still checked against `HOST`, and the addresses are
    /// vetted like any resolved address.
    pub fn resolve(mut self, rule: &str) -> Result<Self, NetworkError> {
        let fail = |reason: &str| NetworkError::Resolve {
            rule: rule.to_string(),
            reason: reason.to_string(),
        };
        let (host, rest) = rule.split_once(':').ok_or_else(|| fail("no port"))?;
        let (port, addrs) = rest.split_once(':').ok_or_else(|| fail("no address"))?;
        if host.is_empty() || host.starts_with('[') {
            return Err(fail("the host must be a name"));
        }
        let port: u16 = port
            .parse()
            .ok()
            .filter(|p| *p != 0)
            .ok_or_else(|| fail("the port must be 1-65535"))?;
        let addrs = addrs
            .split(',')
            .map(|a| {
                let a = a.trim();
                let a = a
                    .strip_prefix('[')
                    .and_then(|a| a.strip_suffix(']'))
                    .unwrap_or(a);
                a.parse::<IpAddr>()
            })
            .collect::<Result<Vec<_>, _>>()
            .map_err(|_| fail("an address is not an IP address"))?;
        let host = host.to_ascii_lowercase();
        self.describe.push(format!(
            "resolving {host}:{port} to {}",
            addrs
                .iter()
                .map(IpAddr::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        ));
        self.resolve.insert((host, port), addrs);
        Ok(self)
    }

    /// Sends requests through a proxy (CONNECT tunnels), from the
    /// environment or one URL.
    pub fn proxy(mut self, choice: &ProxyChoice) -> Result<Self, NetworkError> {
        let mut builder = Matcher::builder();
        let mut any = false;
        match choice {
            ProxyChoice::Direct => {
                self.proxy = None;
                return Ok(self);
            }
            ProxyChoice::Environment => {
                // Read here rather than by the matcher, which drops an
                // unusable value without a word: an operator who set one
                // must hear why it is not used.
                let var = |names: [&str; 2]| {
                    names.iter().find_map(|n| {
                        std::env::var(n)
                            .ok()
                            .filter(|v| !v.trim().is_empty())
                            .map(|v| (n.to_string(), v))
                    })
                };
                // As curl: HTTP_PROXY is ignored under CGI, where a
                // request's `Proxy:` header would set it.
                let cgi = std::env::var_os("REQUEST_METHOD").is_some();
                if let Some((name, v)) = var(["HTTPS_PROXY", "https_proxy"]) {
                    self.describe
                        .push(format!("https:// through {} ({name})", shown(&name, &v)?));
                    builder = builder.https(v);
                    any = true;
                }
                if let Some((name, v)) = var(["HTTP_PROXY", "http_proxy"]).filter(|_| !cgi) {
                    self.describe
                        .push(format!("http:// through {} ({name})", shown(&name, &v)?));
                    builder = builder.http(v);
                    any = true;
                }
                if let Some((name, v)) = var(["ALL_PROXY", "all_proxy"]) {
                    self.describe
                        .push(format!("otherwise through {} ({name})", shown(&name, &v)?));
                    builder = builder.all(v);
                    any = true;
                }
                if let Some((name, v)) = var(["NO_PROXY", "no_proxy"]) {
                    self.describe.push(format!("direct for {v} ({name})"));
                    builder = builder.no(v);
                }
            }
            ProxyChoice::Url { url, no_proxy } => {
                self.describe
                    .push(format!("through {} (--proxy)", shown("--proxy", url)?));
                builder = builder.all(url.clone());
                any = true;
                if let Some(no) = no_proxy {
                    self.describe.push(format!("direct for {no} (--no-proxy)"));
                    builder = builder.no(no.clone());
                }
            }
        }
        self.proxy = any.then(|| builder.build());
        Ok(self)
    }

    /// The settings, ready.
    pub fn build(self) -> Network {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map(|b| b.with_root_certificates(self.roots).with_no_client_auth());
        // ALPN is left to the connector, which offers HTTP/1.1 alone.
        let tls = match tls {
            Ok(cfg) => cfg,
            // ring's provider supports the safe defaults: unreachable, but
            // not worth a panic.
            Err(_) => rustls::ClientConfig::builder()
                .with_root_certificates(rustls::RootCertStore::empty())
                .with_no_client_auth(),
        };
        Network {
            tls: Arc::new(tls),
            resolve: Arc::new(self.resolve),
            proxy: self.proxy.map(Arc::new),
            describe: Arc::new(self.describe),
        }
    }
}

/// A proxy URL as it may be shown: checked to be usable, credentials left
/// out.
fn shown(source_name: &str, url: &str) -> Result<String, NetworkError> {
    let fail = |reason: &str| NetworkError::Proxy {
        source_name: source_name.to_string(),
        reason: reason.to_string(),
    };
    // A bare `host:port` is an http:// proxy, as curl takes it.
    let full = if url.contains("://") {
        url.to_string()
    } else {
        format!("http://{url}")
    };
    let uri: http::Uri = full
        .parse()
        .map_err(|_| fail("not a proxy URL (expected http://[user:password@]host:port)"))?;
    match uri.scheme_str() {
        Some("http") => {}
        Some(_) => {
            return Err(fail(
                "only http:// proxies are supported (the tunnel to the origin is TLS)",
            ))
        }
        None => return Err(fail("not a proxy URL (expected http://host:port)")),
    }
    let host = uri
        .host()
        .filter(|h| !h.is_empty())
        .ok_or_else(|| fail("the proxy URL has no host"))?;
    if !matches!(uri.path(), "" | "/") || uri.query().is_some() {
        return Err(fail("a proxy URL has no path or query"));
    }
    Ok(match uri.port_u16() {
        Some(p) => format!("http://{host}:{p}"),
        None => format!("http://{host}"),
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn resolve_rules_parse_as_curls() {
        let n = Network::builder()
            .resolve("Ironclad.Test:8443:127.0.0.1,[::1]")
            .unwrap()
            .build();
        assert_eq!(
            n.resolved("ironclad.test", 8443).unwrap(),
            &[
                "127.0.0.1".parse::<IpAddr>().unwrap(),
                "::1".parse().unwrap()
            ]
        );
        assert!(n.resolved("ironclad.test", 443).is_none());
        for bad in [
            "ironclad.test",
            "ironclad.test:443",
            "ironclad.test:0:127.0.0.1",
            "ironclad.test:443:localhost",
            ":443:127.0.0.1",
        ] {
            let e = Network::builder().resolve(bad).err().unwrap().to_string();
            assert!(e.starts_with("--resolve"), "{e}");
        }
    }

    #[test]
    fn a_proxy_url_is_checked_and_shown_without_its_credentials() {
        assert_eq!(
            shown("--proxy", "http://alice:s3cr3t@proxy.corp:3128").unwrap(),
            "http://proxy.corp:3128"
        );
        assert_eq!(
            shown("--proxy", "proxy.corp:3128").unwrap(),
            "http://proxy.corp:3128"
        );
        for bad in [
            "https://alice:s3cr3t@proxy.corp:3128",
            "socks5://alice:s3cr3t@proxy.corp:1080",
            "http://alice:s3cr3t@proxy.corp:3128/path",
            "http://",
        ] {
            let e = shown("HTTPS_PROXY", bad).unwrap_err().to_string();
            assert!(e.starts_with("HTTPS_PROXY: "), "{e}");
            assert!(!e.contains("s3cr3t"), "{e}");
        }
        let n = Network::builder()
            .proxy(&ProxyChoice::Url {
                url: "http://alice:s3cr3t@proxy.corp:3128".into(),
                no_proxy: Some("internal.corp".into()),
            })
            .unwrap()
            .build();
        assert!(!format!("{n:?}").contains("s3cr3t"));
        let via = n
            .proxy_for(
                &"https://acme.ironcladapp.com/scim/v2/Users"
                    .parse()
                    .unwrap(),
            )
            .unwrap();
        assert_eq!(via.uri().host(), Some("proxy.corp"));
        assert!(via.basic_auth().is_some());
        assert!(n
            .proxy_for(&"https://api.internal.corp/x".parse().unwrap())
            .is_none());
    }

    #[test]
    fn a_ca_file_must_hold_a_certificate() {
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "not a certificate\n").unwrap();
        let e = Network::builder()
            .ca_file(&empty)
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("holds no certificate"), "{e}");
        let missing = dir.path().join("missing.pem");
        let e = Network::builder()
            .ca_file(&missing)
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("cannot read it"), "{e}");
    }
}
