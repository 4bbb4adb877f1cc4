//! The outbound allow-list: which origins a component may reach.
//!
//! | entry                      | matches                                  | does not match                 |
//! |----------------------------|------------------------------------------|--------------------------------|
//! | `https://api.example.com`  | `https://api.example.com:443`            | `http://api.example.com`, `https://api.example.com:8443` |
//! | `https://*.example.com`    | `https://a.example.com`, `https://a.b.example.com` | `https://example.com`  |
//! | `http://127.0.0.1:8080`    | that loopback origin only                | any other port                 |
//! | (no entries)               | nothing: an empty list denies everything |                                |
//!
//! Entries are `scheme://host[:port]`; the scheme is required, a missing port
//! is the scheme's default, and entries with a path are refused: this is a
//! host policy, not a URL policy. Which entries a run gets is decided in
//! [`crate::egress`].

use std::net::IpAddr;

use anyhow::{bail, Context as _};

#[derive(Clone, Debug, PartialEq, Eq)]
enum HostPattern {
    Exact(String),
    /// `*.suffix`: any host strictly below `suffix`.
    Subdomains(String),
}

/// One parsed `scheme://host[:port]` entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    scheme: String,
    host: HostPattern,
    port: u16,
}

/// A concrete origin a request goes to, in canonical form.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Origin {
    pub scheme: String,
    pub host: String,
    pub port: u16,
}

fn default_port(scheme: &str) -> Option<u16> {
    match scheme {
        "http" => Some(80),
        "https" => Some(443),
        _ => None,
    }
}

/// Splits `scheme://authority[/]` and refuses anything beyond an origin.
fn split(text: &str) -> anyhow::Result<(String, String, Option<u16>)> {
    let (scheme, rest) = text
        .split_once("://")
        .with_context(|| format!("{text:?}: an entry needs a scheme, e.g. https://{text}"))?;
    let scheme = scheme.to_ascii_lowercase();
    if default_port(&scheme).is_none() {
        bail!("{text:?}: only http and https are supported");
    }
    let authority = rest.strip_suffix('/').unwrap_or(rest);
    if authority.contains(['/', '?', '#']) {
        bail!("{text:?}: entries name an origin, without a path (this is a host policy, not a URL policy)");
    }
    if authority.contains('@') {
        bail!("{text:?}: entries carry no user or password");
    }
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let (h, after) = v6
            .split_once(']')
            .with_context(|| format!("{text:?}: unclosed [ in an IPv6 address"))?;
        (h.to_string(), after.strip_prefix(':'))
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h.to_string(), Some(p)),
            None => (authority.to_string(), None),
        }
    };
    let port = port
        .map(|p| {
            p.parse::<u16>()
                .with_context(|| format!("{text:?}: {p:?} is not a port"))
        })
        .transpose()?;
    if host.is_empty() {
        bail!("{text:?} has no host");
    }
    Ok((scheme, host.to_ascii_lowercase(), port))
}

impl Entry {
    pub fn parse(text: &str) -> anyhow::Result<Entry> {
        let (scheme, host, port) = split(text.trim())?;
        let port = port.or(default_port(&scheme)).unwrap_or(443);
        let host = match host.strip_prefix("*.") {
            Some(suffix) if !suffix.is_empty() && !suffix.contains('*') => HostPattern::Subdomains(suffix.to_string()),
            _ if host.contains('*') => bail!("{text:?}: a wildcard is only allowed as the first label, as in https://*.example.com"),
            _ => HostPattern::Exact(host),
        };
        Ok(Entry { scheme, host, port })
    }

    pub fn matches(&self, o: &Origin) -> bool {
        self.scheme == o.scheme
            && self.port == o.port
            && match &self.host {
                HostPattern::Exact(h) => *h == o.host,
                HostPattern::Subdomains(s) => o
                    .host
                    .strip_suffix(s.as_str())
                    .is_some_and(|prefix| prefix.len() > 1 && prefix.ends_with('.')),
            }
    }

    /// `http` or `https`.
    pub fn scheme(&self) -> &str {
        &self.scheme
    }

    /// The host when the entry names one exactly (not `*.domain`).
    pub fn exact_host(&self) -> Option<&str> {
        match &self.host {
            HostPattern::Exact(h) => Some(h),
            HostPattern::Subdomains(_) => None,
        }
    }
}

impl std::fmt::Display for Entry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let host = match &self.host {
            HostPattern::Exact(h) if h.contains(':') => format!("[{h}]"),
            HostPattern::Exact(h) => h.clone(),
            HostPattern::Subdomains(s) => format!("*.{s}"),
        };
        if default_port(&self.scheme) == Some(self.port) {
            write!(f, "{}://{host}", self.scheme)
        } else {
            write!(f, "{}://{host}:{}", self.scheme, self.port)
        }
    }
}

impl Origin {
    /// An origin from a URL or `scheme://host[:port]`; the path is ignored.
    pub fn of_url(text: &str) -> anyhow::Result<Origin> {
        let url = url::Url::parse(text).with_context(|| format!("{text:?} is not a URL"))?;
        let scheme = url.scheme().to_ascii_lowercase();
        let port = url
            .port_or_known_default()
            .with_context(|| format!("{text:?}: only http and https are supported"))?;
        let host = url
            .host_str()
            .with_context(|| format!("{text:?} has no host"))?
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_ascii_lowercase();
        Ok(Origin { scheme, host, port })
    }

    /// An origin as a connector declares it: nothing beyond the origin.
    pub fn declared(text: &str) -> anyhow::Result<Origin> {
        let (scheme, host, port) = split(text.trim())?;
        if host.contains('*') {
            bail!("{text:?}: a connector declares exact origins, not wildcards");
        }
        let port = port.or(default_port(&scheme)).unwrap_or(443);
        Ok(Origin { scheme, host, port })
    }

    pub fn ip(&self) -> Option<IpAddr> {
        self.host.parse().ok()
    }

    pub fn is_loopback(&self) -> bool {
        self.host == "localhost" || self.ip().is_some_and(|ip| ip.is_loopback())
    }

    /// The shortest entry that allows exactly this origin, for messages.
    pub fn as_entry(&self) -> String {
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        if default_port(&self.scheme) == Some(self.port) {
            format!("{}://{host}", self.scheme)
        } else {
            format!("{}://{host}:{}", self.scheme, self.port)
        }
    }
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.as_entry())
    }
}

/// The operator's entries, parsed once.
#[derive(Clone, Debug, Default)]
pub struct AllowList {
    entries: Vec<Entry>,
}

impl AllowList {
    pub fn parse<S: AsRef<str>>(texts: &[S]) -> anyhow::Result<AllowList> {
        let entries = texts
            .iter()
            .map(|t| Entry::parse(t.as_ref()).with_context(|| "--allow-host".to_string()))
            .collect::<anyhow::Result<_>>()?;
        Ok(AllowList { entries })
    }

    pub fn find(&self, o: &Origin) -> Option<&Entry> {
        self.entries.iter().find(|e| e.matches(o))
    }

    /// The entries, in the order given.
    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }
}

/// Addresses that lead inside a network (or nowhere public) rather than to
/// a SaaS API: loopback, private, link-local (cloud metadata among them),
/// carrier-grade NAT, benchmarking, reserved and documentation ranges, and
/// IPv6 forms that carry such an IPv4 address inside them.
pub fn is_internal(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local() // 169.254/16, cloud metadata among them
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_multicast()
                || v4.is_documentation()
                || o[0] == 0
                || o[0] == 100 && (64..128).contains(&o[1]) // carrier-grade NAT 100.64/10
                || o[0] == 198 && (o[1] & 0xfe) == 18 // benchmarking 198.18/15
                || o[0] >= 240 // reserved 240/4
                || o[..3] == [192, 0, 0] // IETF protocol assignments 192.0.0/24
        }
        IpAddr::V6(v6) => {
            let s = v6.segments();
            // Forms that embed an IPv4 address are judged by that address
            // too: a NAT64 or 6to4 gateway would carry them to it.
            let embedded = if let Some(v4) = v6.to_ipv4_mapped() {
                Some(v4) // ::ffff:a.b.c.d
            } else if s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] || s[..6] == [0; 6] {
                // NAT64 64:ff9b::/96 and IPv4-compatible ::a.b.c.d
                Some(std::net::Ipv4Addr::new(
                    (s[6] >> 8) as u8,
                    s[6] as u8,
                    (s[7] >> 8) as u8,
                    s[7] as u8,
                ))
            } else if s[0] == 0x2002 {
                // 6to4 2002:AABB:CCDD::/48
                Some(std::net::Ipv4Addr::new(
                    (s[1] >> 8) as u8,
                    s[1] as u8,
                    (s[2] >> 8) as u8,
                    s[2] as u8,
                ))
            } else {
                None
            };
            if embedded.is_some_and(|v4| is_internal(IpAddr::V4(v4))) {
                return true;
            }
            v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (s[0] & 0xfe00) == 0xfc00 // unique local fc00::/7
                || (s[0] & 0xffc0) == 0xfe80 // link local fe80::/10
                || s[..2] == [0x2001, 0xdb8] // documentation 2001:db8::/32
                || s[..4] == [0x100, 0, 0, 0] // discard 100::/64
                || v6 == std::net::Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254)
            // AWS IMDS over IPv6
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn o(text: &str) -> Origin {
        Origin::of_url(text).unwrap()
    }

    #[test]
    fn an_exact_entry_matches_its_origin_only() {
        let e = Entry::parse("https://api.example.com").unwrap();
        assert!(e.matches(&o("https://api.example.com/x")));
        assert!(!e.matches(&o("https://other.example.com")));
        assert!(!e.matches(&o("https://sub.api.example.com")));
    }

    #[test]
    fn a_wildcard_matches_subdomains_but_not_the_domain_itself() {
        let e = Entry::parse("https://*.example.com").unwrap();
        assert!(e.matches(&o("https://a.example.com")));
        assert!(e.matches(&o("https://a.b.example.com")));
        assert!(!e.matches(&o("https://example.com")));
        assert!(!e.matches(&o("https://badexample.com")));
        assert!(!e.matches(&o("https://example.com.evil.net")));
    }

    #[test]
    fn a_missing_port_means_the_schemes_default() {
        let e = Entry::parse("https://api.example.com").unwrap();
        assert!(e.matches(&o("https://api.example.com:443")));
        assert!(!e.matches(&o("https://api.example.com:8443")));
        let h = Entry::parse("http://127.0.0.1").unwrap();
        assert!(h.matches(&o("http://127.0.0.1:80")));
    }

    #[test]
    fn the_scheme_must_match() {
        let e = Entry::parse("https://api.example.com").unwrap();
        assert!(!e.matches(&o("http://api.example.com:443")));
    }

    #[test]
    fn the_scheme_is_required() {
        let err = Entry::parse("api.example.com").unwrap_err().to_string();
        assert!(err.contains("needs a scheme"), "{err}");
        assert!(Entry::parse("ftp://x.example.com").is_err());
    }

    #[test]
    fn entries_with_paths_are_rejected() {
        let err = Entry::parse("https://api.example.com/scim")
            .unwrap_err()
            .to_string();
        assert!(err.contains("without a path"), "{err}");
        assert!(Entry::parse("https://api.example.com/").is_ok());
        assert!(Entry::parse("https://api.example.com?x=1").is_err());
    }

    #[test]
    fn wildcards_only_lead() {
        assert!(Entry::parse("https://a.*.example.com").is_err());
        assert!(Entry::parse("https://*").is_err());
    }

    #[test]
    fn origins_print_as_the_entry_that_allows_them() {
        assert_eq!(
            o("https://NA1.ironcladapp.com:443/x").as_entry(),
            "https://na1.ironcladapp.com"
        );
        assert_eq!(
            o("http://127.0.0.1:8080").as_entry(),
            "http://127.0.0.1:8080"
        );
        assert_eq!(o("http://[::1]:8080").as_entry(), "http://[::1]:8080");
    }
}
