//! Outbound HTTP policy: which origins a component may reach, with which
//! timeouts. The component never opens a socket itself; every request goes
//! through `send_request` here, so this is the one place to refuse.

use std::collections::BTreeSet;
use std::future::Future;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context as _};
use wasmtime_wasi_http::{Error as HttpError, RequestOptions, WasiBody, WasiHttpHooks};

/// An origin in canonical form: `scheme://host:port`, lower case, port always
/// written, so two spellings of the same origin compare equal.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Origin {
    pub scheme: String,
    pub host: String,
    pub port: u16,
}

impl Origin {
    pub fn parse(text: &str) -> anyhow::Result<Origin> {
        let url = url::Url::parse(text).with_context(|| format!("{text:?} is not a URL"))?;
        let scheme = url.scheme().to_ascii_lowercase();
        if scheme != "http" && scheme != "https" {
            bail!("{text:?}: only http and https origins are supported");
        }
        if url.path() != "/" && !url.path().is_empty() {
            bail!("{text:?}: an origin has no path (this is a host policy, not a URL policy)");
        }
        let host = url
            .host_str()
            .with_context(|| format!("{text:?} has no host"))?
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_ascii_lowercase();
        let port = url
            .port_or_known_default()
            .with_context(|| format!("{text:?} has no port"))?;
        Ok(Origin { scheme, host, port })
    }

    pub fn is_loopback(&self) -> bool {
        self.host == "localhost"
            || self
                .host
                .parse::<IpAddr>()
                .map(|ip| ip.is_loopback())
                .unwrap_or(false)
    }
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.host.contains(':') {
            write!(f, "{}://[{}]:{}", self.scheme, self.host, self.port)
        } else {
            write!(f, "{}://{}:{}", self.scheme, self.host, self.port)
        }
    }
}

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

/// The store's `WasiHttpHooks`: allow-list, timeouts and a request counter.
pub struct OutboundPolicy {
    allowed: BTreeSet<Origin>,
    timeouts: Timeouts,
    requests: Arc<AtomicU64>,
}

impl OutboundPolicy {
    /// A policy that refuses everything: what a component gets while the host
    /// asks it which origins it needs.
    pub fn deny_all(timeouts: Timeouts, requests: Arc<AtomicU64>) -> Self {
        OutboundPolicy {
            allowed: BTreeSet::new(),
            timeouts,
            requests,
        }
    }

    pub fn allow(&mut self, origins: impl IntoIterator<Item = Origin>) {
        self.allowed.extend(origins);
    }

    fn check(&self, uri: &http::Uri) -> Result<Origin, String> {
        let text = uri.to_string();
        let origin = match Origin::parse(&text) {
            Ok(o) => o,
            // Origin::parse refuses paths; the request URI has one, so parse
            // the scheme and authority alone.
            Err(_) => {
                let scheme = uri.scheme_str().unwrap_or("https");
                let authority = uri.authority().map(|a| a.as_str()).unwrap_or("");
                Origin::parse(&format!("{scheme}://{authority}"))
                    .map_err(|e| format!("{text}: {e:#}"))?
            }
        };
        if self.allowed.contains(&origin) {
            Ok(origin)
        } else {
            Err(origin.to_string())
        }
    }
}

/// Checks that an origin a connector declared is one the host can honour:
/// plain http is for loopback only (tests, local simulators).
pub fn vet_declared(origin: &Origin) -> anyhow::Result<()> {
    if origin.scheme == "http" && !origin.is_loopback() {
        bail!(
            "the connector asks for plain http to {origin}; only https is allowed beyond loopback: use an https base URL"
        );
    }
    Ok(())
}

impl WasiHttpHooks for OutboundPolicy {
    fn send_request(
        &mut self,
        request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        fut: Box<dyn Future<Output = Result<(), HttpError>> + Send>,
    ) -> Box<
        dyn Future<
                Output = Result<
                    (
                        http::Response<WasiBody>,
                        Box<dyn Future<Output = Result<(), HttpError>> + Send>,
                    ),
                    HttpError,
                >,
            > + Send,
    > {
        let _ = fut;
        match self.check(request.uri()) {
            Ok(origin) => {
                self.requests.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(method = %request.method(), %origin, path = request.uri().path(), "outbound request");
                let options = self.timeouts.clamp(options);
                Box::new(async move {
                    use http_body_util::BodyExt;
                    let (response, io) =
                        wasmtime_wasi_http::default_send_request(request, Some(options)).await?;
                    Ok((
                        response.map(BodyExt::boxed_unsync),
                        Box::new(io) as Box<dyn Future<Output = Result<(), HttpError>> + Send>,
                    ))
                })
            }
            Err(origin) => {
                tracing::warn!(
                    %origin,
                    "refused an outbound request: {origin} is not in the allow-list (the connector must declare it for its configuration)"
                );
                Box::new(async { Err(HttpError::HttpRequestDenied) })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn origins_normalise_default_ports_and_case() {
        let a = Origin::parse("https://NA1.ironcladapp.com").unwrap();
        let b = Origin::parse("https://na1.ironcladapp.com:443/").unwrap();
        assert_eq!(a, b);
        assert_eq!(a.to_string(), "https://na1.ironcladapp.com:443");
    }

    #[test]
    fn origins_with_paths_are_rejected() {
        assert!(Origin::parse("https://example.com/scim").is_err());
    }

    #[test]
    fn plain_http_only_to_loopback() {
        assert!(vet_declared(&Origin::parse("http://127.0.0.1:8080").unwrap()).is_ok());
        assert!(vet_declared(&Origin::parse("http://[::1]:8080").unwrap()).is_ok());
        assert!(vet_declared(&Origin::parse("http://localhost:1").unwrap()).is_ok());
        assert!(vet_declared(&Origin::parse("http://example.com").unwrap()).is_err());
        assert!(vet_declared(&Origin::parse("https://example.com").unwrap()).is_ok());
    }

    #[test]
    fn requests_are_checked_against_the_exact_origin() {
        let mut p = OutboundPolicy::deny_all(Timeouts::default(), Arc::default());
        assert!(p
            .check(&"https://a.example.com/x".parse().unwrap())
            .is_err());
        p.allow([Origin::parse("https://a.example.com").unwrap()]);
        assert!(p
            .check(
                &"https://a.example.com/scim/v2/Users?count=1"
                    .parse()
                    .unwrap()
            )
            .is_ok());
        assert!(p
            .check(&"https://a.example.com:8443/x".parse().unwrap())
            .is_err());
        assert!(p.check(&"http://a.example.com/x".parse().unwrap()).is_err());
        assert!(p
            .check(&"https://b.example.com/x".parse().unwrap())
            .is_err());
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
}
