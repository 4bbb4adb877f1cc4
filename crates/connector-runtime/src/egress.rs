//! Egress: what a component may reach, decided by the host from what the
//! operator gave, never by what the component says at run time.
//!
//! | source                                   | grants                                   | may name loopback/private addresses |
//! |------------------------------------------|------------------------------------------|-------------------------------------|
//! | the component's static `outbound-hosts` patterns, each `{setting}` filled from the settings | the expanded origin (`https` only) | no |
//! | a setting of kind `origin` that the operator set (0.2.0) | that origin                    | yes, when it names the address literally (or `localhost`) |
//! | the operator's list (`--allow-host`)     | each entry (`*.domain` too)              | yes, when the entry names the address literally (or `localhost`) |
//! | anything the component answers at run time (`outbound-origins`) | nothing: checked against the above, a miss refuses to start | — |
//!
//! A pinned policy ([`OperatorEgress::pinned`]) is the operator's list
//! alone: a marketplace fixes a component's origins per tenant.
//!
//! Writes are the operator's too: unless [`OperatorEgress::writes`] (the
//! provisioning switch), only GET and HEAD go out, plus the requests the
//! component declares as changing nothing (`read-only-requests`, such as an
//! OAuth token exchange: `POST /oauth/token`), whatever the component does.
//! Internal addresses (see [`is_internal`]) are refused after DNS unless an
//! operator-given origin names them, so an allowed name cannot be pointed
//! inside the network.

use std::collections::BTreeMap;
use std::net::IpAddr;

use crate::allow_list::{is_internal, AllowList, Entry, Origin};
use crate::types::{ConfigField, FieldKind, Metadata};

/// What the operator (the CLI's flags, a marketplace's tenant record) gives.
#[derive(Clone, Debug, Default)]
pub struct OperatorEgress {
    /// Origins granted on top of the component's patterns and origin settings.
    pub allow: AllowList,
    /// Grant `allow` alone: ignore the component's patterns and origin settings.
    pub pinned: bool,
    /// Let requests through that may change the application (provisioning
    /// on). Off: GET, HEAD and the component's declared read-only requests.
    pub writes: bool,
    /// How requests get there: trusted CAs, `--resolve`, the proxy.
    pub network: crate::network::Network,
    /// The operator's lowering of the connector's rate budgets.
    pub rate_budgets: Vec<crate::rate::Lowering>,
    /// What the tenant's budgets have let through: hand every connector of
    /// one tenant the same ledger (clones share it), so they share its
    /// budgets.
    pub rates: crate::rate::RateLedger,
}

impl OperatorEgress {
    /// Exactly `allow`, nothing from the component.
    pub fn pinned(allow: AllowList) -> OperatorEgress {
        OperatorEgress {
            allow,
            pinned: true,
            ..OperatorEgress::default()
        }
    }
}

/// Why an origin is granted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Why {
    /// A static pattern of the component, with the settings that filled it.
    Pattern {
        /// The pattern as the component wrote it.
        pattern: String,
        /// `(setting, value)` for each placeholder.
        with: Vec<(String, String)>,
    },
    /// A setting of kind `origin` the operator set.
    Setting(String),
    /// An entry of the operator's list.
    Operator,
}

impl std::fmt::Display for Why {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Why::Pattern { pattern, with } if with.is_empty() => {
                write!(f, "the component's pattern {pattern}")
            }
            Why::Pattern { pattern, with } => {
                let with: Vec<String> = with.iter().map(|(k, v)| format!("{k}={v}")).collect();
                write!(
                    f,
                    "the component's pattern {pattern} with {}",
                    with.join(", ")
                )
            }
            Why::Setting(name) => write!(f, "the operator's setting {name}"),
            Why::Operator => f.write_str("the operator's allow-list"),
        }
    }
}

/// One granted origin (or `*.domain`) and where it comes from.
#[derive(Clone, Debug)]
pub struct Rule {
    entry: Entry,
    why: Why,
}

impl Rule {
    /// The entry, as `scheme://host[:port]`.
    pub fn entry(&self) -> String {
        self.entry.to_string()
    }

    /// Why it is granted.
    pub fn why(&self) -> &Why {
        &self.why
    }

    /// Given by the operator: only such rules may name internal addresses.
    fn operator_given(&self) -> bool {
        !matches!(self.why, Why::Pattern { .. })
    }
}

/// A component pattern that grants nothing, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unused {
    /// The pattern as written.
    pub pattern: String,
    /// Why it grants nothing.
    pub reason: String,
}

/// The run's egress policy.
#[derive(Clone, Debug, Default)]
pub struct Policy {
    rules: Vec<Rule>,
    unused: Vec<Unused>,
    writes: bool,
    read_only: Vec<ReadOnlyRequest>,
}

/// A request the component declares as changing nothing although its
/// method is not GET or HEAD: `METHOD /path`, matching a request of that
/// method whose path is `/path` or ends with it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReadOnlyRequest {
    method: http::Method,
    path: String,
}

impl ReadOnlyRequest {
    /// Parses `METHOD /path`; a declaration that would let any write
    /// through (a bare `/`, a query, a wildcard) is refused.
    pub fn parse(s: &str) -> Result<ReadOnlyRequest, String> {
        let (method, path) = s
            .split_once(' ')
            .ok_or_else(|| "expected `METHOD /path`".to_string())?;
        let method = http::Method::from_bytes(method.as_bytes())
            .map_err(|_| "not an HTTP method".to_string())?;
        let segment_ok = |seg: &str| {
            !seg.is_empty()
                && seg
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b))
        };
        if path.len() > 256 || !path.starts_with('/') || !path[1..].split('/').all(segment_ok) {
            return Err("the path must be `/` and plain segments, without a query".into());
        }
        Ok(ReadOnlyRequest {
            method,
            path: path.to_string(),
        })
    }

    fn matches(&self, method: &http::Method, path: &str) -> bool {
        // The declared path starts with `/`, so a match at the end of a
        // longer path is on a segment boundary (a base URL with a prefix).
        *method == self.method && path.ends_with(&self.path)
    }
}

impl std::fmt::Display for ReadOnlyRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.method, self.path)
    }
}

/// A request refused because provisioning is off.
#[derive(Debug, PartialEq, Eq)]
pub struct WriteDenial {
    /// The method asked for.
    pub method: http::Method,
    /// What would have been let through.
    pub allowed: Vec<String>,
}

impl std::fmt::Display for WriteDenial {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "a {} request while provisioning is off (the component may send {}); pass --provisioning to let it change the application",
            self.method,
            self.allowed.join(", ")
        )
    }
}

/// Why a request was refused, with the entry that would allow it.
#[derive(Debug, PartialEq, Eq)]
pub struct Denial {
    /// Where the component tried to go.
    pub origin: Origin,
}

impl std::fmt::Display for Denial {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} is not among the origins the operator granted this component; grant it with --allow-host {}",
            self.origin,
            self.origin.as_entry()
        )
    }
}

/// Why the operator's input makes no usable policy.
#[derive(Debug, thiserror::Error)]
pub enum EgressError {
    /// An origin setting that is not an origin.
    #[error("setting {field} is not an origin ({reason}): give scheme://host[:port], e.g. https://api.example.com")]
    BadSetting {
        /// The setting.
        field: String,
        /// What is wrong with it.
        reason: String,
    },
    /// Plain http to a host on the internet.
    #[error("{entry} ({why}) uses plain http beyond the local network; use https")]
    PlainHttp {
        /// The origin.
        entry: String,
        /// Where it came from.
        why: Why,
    },
}

/// The placeholders of a pattern (`{name}` labels), or why it is not one.
fn placeholders(pattern: &str) -> Result<Vec<String>, String> {
    let host = pattern
        .split_once("://")
        .map(|(_, rest)| rest.split([':', '/']).next().unwrap_or(""))
        .ok_or("not scheme://host")?;
    let mut names = Vec::new();
    for label in host.split('.') {
        if let Some(inner) = label.strip_prefix('{') {
            let name = inner
                .strip_suffix('}')
                .filter(|n| !n.is_empty() && !n.contains(['{', '}']))
                .ok_or_else(|| format!("{label:?}: a placeholder is a whole label, {{setting}}"))?;
            names.push(name.to_string());
        } else if label.contains(['{', '}']) {
            return Err(format!(
                "{label:?}: a placeholder is a whole label, {{setting}}"
            ));
        }
    }
    Ok(names)
}

/// A value fit to stand for one DNS label: nothing that could add a label,
/// a port, a path or credentials to the pattern.
fn is_label(value: &str) -> bool {
    (1..=63).contains(&value.len())
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        && !value.starts_with('-')
        && !value.ends_with('-')
}

/// Expands one pattern with the settings, or says why it grants nothing.
fn expand(
    pattern: &str,
    schema: &[ConfigField],
    settings: &BTreeMap<String, String>,
) -> Result<Rule, String> {
    let mut text = pattern.trim().to_string();
    let mut with = Vec::new();
    for name in placeholders(&text)? {
        let field = schema
            .iter()
            .find(|f| f.name == name)
            .ok_or_else(|| format!("{{{name}}} is not one of the connector's settings"))?;
        if field.secret {
            // A secret in a host name would leave through DNS.
            return Err(format!("{{{name}}} is a secret setting"));
        }
        let value = settings
            .get(&name)
            .ok_or_else(|| format!("{name} is not set"))?
            .to_ascii_lowercase();
        if !is_label(&value) {
            return Err(format!(
                "{name} is not a single DNS label (letters, digits, -)"
            ));
        }
        text = text.replace(&format!("{{{name}}}"), &value);
        with.push((name, value));
    }
    let entry = Entry::parse(&text).map_err(|e| format!("{e:#}"))?;
    if entry.scheme() != "https" {
        return Err("a component's pattern must be https".into());
    }
    if entry.exact_host().is_some_and(names_local) {
        return Err("a component's pattern never grants a loopback or private address; the operator grants those".into());
    }
    Ok(Rule {
        entry,
        why: Why::Pattern {
            pattern: pattern.to_string(),
            with,
        },
    })
}

/// A host that is loopback or an internal address written literally.
fn names_local(host: &str) -> bool {
    host == "localhost"
        || host.ends_with(".localhost")
        || host
            .parse::<IpAddr>()
            .is_ok_and(|ip| ip.is_loopback() || is_internal(ip))
}

impl Policy {
    /// The policy for a component with `meta`, configured with `settings`
    /// (resolved values, defaults included), under the operator's `egress`.
    pub fn plan(
        meta: &Metadata,
        settings: &BTreeMap<String, String>,
        egress: &OperatorEgress,
    ) -> Result<Policy, EgressError> {
        let mut policy = Policy {
            writes: egress.writes,
            ..Policy::default()
        };
        for declared in &meta.read_only_requests {
            match ReadOnlyRequest::parse(declared) {
                Ok(r) => policy.read_only.push(r),
                Err(reason) => tracing::warn!(
                    "the component's read-only request {:?} is ignored: {reason}",
                    declared.chars().take(100).collect::<String>()
                ),
            }
        }
        if !egress.pinned {
            for pattern in &meta.outbound_hosts {
                match expand(pattern, &meta.config_schema, settings) {
                    Ok(rule) => policy.rules.push(rule),
                    Err(reason) => policy.unused.push(Unused {
                        pattern: pattern.clone(),
                        reason,
                    }),
                }
            }
            for field in &meta.config_schema {
                if field.kind != FieldKind::Origin {
                    continue;
                }
                let Some(value) = settings.get(&field.name) else {
                    continue;
                };
                // A default is the component's word, not the operator's.
                if field.default.as_ref() == Some(value) {
                    continue;
                }
                let origin = Origin::of_url(value).map_err(|e| EgressError::BadSetting {
                    field: field.name.clone(),
                    reason: format!("{e:#}"),
                })?;
                let entry =
                    Entry::parse(&origin.as_entry()).map_err(|e| EgressError::BadSetting {
                        field: field.name.clone(),
                        reason: format!("{e:#}"),
                    })?;
                policy.rules.push(Rule {
                    entry,
                    why: Why::Setting(field.name.clone()),
                });
            }
        }
        for entry in egress.allow.entries() {
            policy.rules.push(Rule {
                entry: entry.clone(),
                why: Why::Operator,
            });
        }
        for rule in &policy.rules {
            let local = rule.entry.exact_host().is_some_and(names_local);
            if rule.entry.scheme() == "http" && !local {
                return Err(EgressError::PlainHttp {
                    entry: rule.entry(),
                    why: rule.why.clone(),
                });
            }
        }
        Ok(policy)
    }

    /// Nothing at all: the policy of an instance before it is configured.
    pub fn deny_all() -> Policy {
        Policy::default()
    }

    /// The granted origins, with why, in the order they were granted.
    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    /// The component's patterns that grant nothing for these settings.
    pub fn unused(&self) -> &[Unused] {
        &self.unused
    }

    /// One line per grant and per unused pattern, for logs and `metadata`.
    pub fn describe(&self) -> Vec<String> {
        let mut lines: Vec<String> = self
            .rules
            .iter()
            .map(|r| format!("may reach {} ({})", r.entry(), r.why))
            .collect();
        lines.extend(
            self.unused
                .iter()
                .map(|u| format!("pattern {} grants nothing: {}", u.pattern, u.reason)),
        );
        if self.rules.is_empty() {
            lines.push("may reach nothing: no origin is granted".into());
        }
        lines.push(if self.writes {
            "may change the application (provisioning is on)".into()
        } else {
            format!(
                "may only read: {} (provisioning is off)",
                self.read_requests().join(", ")
            )
        });
        lines
    }

    /// The rule that grants `origin`.
    /// Whether a request of `method` to `path` may go out: anything while
    /// writes are allowed; otherwise GET, HEAD and the declared read-only
    /// requests.
    pub fn check_method(&self, method: &http::Method, path: &str) -> Result<(), WriteDenial> {
        let read = *method == http::Method::GET || *method == http::Method::HEAD;
        if self.writes || read || self.read_only.iter().any(|r| r.matches(method, path)) {
            return Ok(());
        }
        Err(WriteDenial {
            method: method.clone(),
            allowed: self.read_requests(),
        })
    }

    /// What goes out while provisioning is off: GET, HEAD and the declared
    /// read-only requests.
    fn read_requests(&self) -> Vec<String> {
        ["GET".to_string(), "HEAD".to_string()]
            .into_iter()
            .chain(self.read_only.iter().map(|r| r.to_string()))
            .collect()
    }

    /// Whether requests that may change the application go out.
    pub fn writes(&self) -> bool {
        self.writes
    }

    pub fn check(&self, origin: &Origin) -> Result<&Rule, Denial> {
        self.rules
            .iter()
            .find(|r| r.entry.matches(origin))
            .ok_or_else(|| Denial {
                origin: origin.clone(),
            })
    }

    /// Whether a resolved address may be dialled for `origin`: public
    /// addresses always; loopback and internal ones only when an
    /// operator-given rule for this origin names that address literally
    /// (or `localhost`, for loopback).
    pub fn address_allowed(&self, origin: &Origin, ip: IpAddr) -> bool {
        if !ip.is_loopback() && !is_internal(ip) {
            return true;
        }
        self.rules.iter().any(|r| {
            r.operator_given()
                && r.entry.matches(origin)
                && match r.entry.exact_host() {
                    Some("localhost") => ip.is_loopback() || is_loopback_mapped(ip),
                    Some(h) => h.parse::<IpAddr>() == Ok(ip),
                    None => false,
                }
        })
    }
}

fn is_loopback_mapped(ip: IpAddr) -> bool {
    matches!(ip, IpAddr::V6(v6) if v6.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback()))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::types::ContractVersion;

    fn o(text: &str) -> Origin {
        Origin::of_url(text).unwrap()
    }

    fn field(name: &str, kind: FieldKind, default: Option<&str>, secret: bool) -> ConfigField {
        ConfigField {
            name: name.into(),
            description: String::new(),
            required: false,
            secret,
            default: default.map(Into::into),
            allowed_values: vec![],
            kind,
        }
    }

    fn meta(patterns: &[&str]) -> Metadata {
        Metadata {
            display_name: "x".into(),
            description: String::new(),
            version: "0".into(),
            contract: ContractVersion::V0_2,
            config_schema: vec![
                field("environment", FieldKind::Text, Some("na1"), false),
                field("base-url", FieldKind::Origin, None, false),
                field("token", FieldKind::Text, None, true),
                field(
                    "mirror",
                    FieldKind::Origin,
                    Some("https://mirror.example.com"),
                    false,
                ),
            ],
            account_creation_schema: vec![],
            outbound_hosts: patterns.iter().map(|p| p.to_string()).collect(),
            capabilities: vec![],
            read_only_requests: vec!["POST /oauth/token".into()],
            rate_budgets: vec![],
        }
    }

    fn settings(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn plan(patterns: &[&str], set: &[(&str, &str)], allow: &[&str]) -> Policy {
        let egress = OperatorEgress {
            allow: AllowList::parse(allow).unwrap(),
            pinned: false,
            ..Default::default()
        };
        Policy::plan(&meta(patterns), &settings(set), &egress).unwrap()
    }

    #[test]
    fn a_pattern_is_filled_with_the_setting() {
        let p = plan(
            &["https://{environment}.ironcladapp.com"],
            &[("environment", "eu1")],
            &[],
        );
        assert!(p.check(&o("https://eu1.ironcladapp.com/scim")).is_ok());
        assert!(p.check(&o("https://na1.ironcladapp.com")).is_err());
        assert_eq!(
            p.describe()[0],
            "may reach https://eu1.ironcladapp.com (the component's pattern https://{environment}.ironcladapp.com with environment=eu1)"
        );
    }

    #[test]
    fn a_setting_cannot_smuggle_a_host_into_a_pattern() {
        for value in [
            "evil.com/",
            "a.evil",
            "x@evil.com",
            "evil.com:443#",
            "",
            "-x",
        ] {
            let p = plan(
                &["https://{environment}.ironcladapp.com"],
                &[("environment", value)],
                &[],
            );
            assert!(p.rules().is_empty(), "{value:?}");
            assert_eq!(p.unused().len(), 1);
        }
    }

    #[test]
    fn secrets_never_fill_a_pattern() {
        let p = plan(&["https://{token}.example.com"], &[("token", "abc")], &[]);
        assert!(p.rules().is_empty());
        assert!(p.unused()[0].reason.contains("secret"));
    }

    #[test]
    fn malformed_patterns_grant_nothing() {
        for bad in [
            "origin of base-url when set",
            "http://{environment}.example.com",
            "https://x{environment}.example.com",
            "https://{unknown}.example.com",
            "https://127.0.0.1:9",
            "https://localhost",
            "https://10.1.2.3",
            "https://api.example.com/path",
        ] {
            let p = plan(&[bad], &[("environment", "na1")], &[]);
            assert!(p.rules().is_empty(), "{bad}");
        }
    }

    #[test]
    fn an_origin_setting_the_operator_set_is_granted_but_its_default_is_not() {
        let p = plan(&[], &[("base-url", "http://127.0.0.1:8080/x")], &[]);
        assert!(p.check(&o("http://127.0.0.1:8080/oauth")).is_ok());
        assert_eq!(p.rules()[0].why(), &Why::Setting("base-url".into()));
        let d = plan(&[], &[("mirror", "https://mirror.example.com")], &[]);
        assert!(d.rules().is_empty(), "a default is no grant");
    }

    #[test]
    fn text_settings_grant_nothing() {
        let p = plan(&[], &[("environment", "https://evil.example.com")], &[]);
        assert!(p.rules().is_empty());
    }

    #[test]
    fn the_operators_list_adds_and_pinning_keeps_only_it() {
        let p = plan(
            &["https://api.example.com"],
            &[],
            &["https://*.other.example"],
        );
        assert!(p.check(&o("https://api.example.com")).is_ok());
        assert!(p.check(&o("https://a.other.example")).is_ok());
        let pinned = Policy::plan(
            &meta(&["https://api.example.com"]),
            &settings(&[("base-url", "https://b.example.com")]),
            &OperatorEgress::pinned(AllowList::parse(&["https://c.example.com"]).unwrap()),
        )
        .unwrap();
        assert!(pinned.check(&o("https://api.example.com")).is_err());
        assert!(pinned.check(&o("https://b.example.com")).is_err());
        assert!(pinned.check(&o("https://c.example.com")).is_ok());
    }

    #[test]
    fn an_empty_policy_denies_everything() {
        let p = plan(&[], &[], &[]);
        let d = p.check(&o("https://api.example.com")).unwrap_err();
        assert!(d
            .to_string()
            .contains("--allow-host https://api.example.com"));
        assert!(Policy::deny_all().check(&o("http://127.0.0.1:1")).is_err());
        assert_eq!(
            p.describe(),
            vec![
                "may reach nothing: no origin is granted",
                "may only read: GET, HEAD, POST /oauth/token (provisioning is off)"
            ]
        );
    }

    #[test]
    fn plain_http_only_to_the_local_network() {
        let egress = OperatorEgress {
            allow: AllowList::parse(&["http://example.com"]).unwrap(),
            pinned: false,
            ..Default::default()
        };
        let err = Policy::plan(&meta(&[]), &settings(&[]), &egress).unwrap_err();
        assert!(err.to_string().contains("plain http"), "{err}");
        let err = Policy::plan(
            &meta(&[]),
            &settings(&[("base-url", "http://example.com")]),
            &OperatorEgress::default(),
        )
        .unwrap_err();
        assert!(err.to_string().contains("setting base-url"), "{err}");
        assert!(
            plan(&[], &[], &["http://localhost:9", "http://10.0.0.5"])
                .rules()
                .len()
                == 2
        );
    }

    #[test]
    fn internal_addresses_only_where_the_operator_names_them() {
        let public = "93.184.216.34".parse().unwrap();
        let p = plan(
            &["https://api.example.com"],
            &[],
            &["https://*.corp.example"],
        );
        for ip in [
            "127.0.0.1",
            "::1",
            "169.254.169.254",
            "10.0.0.5",
            "100.64.0.1",
            "198.18.0.1",
            "240.0.0.1",
            "192.0.0.8",
            "64:ff9b::a00:5",
            "2002:a00:5::1",
            "::10.0.0.5",
            "::ffff:127.0.0.1",
        ] {
            let ip: IpAddr = ip.parse().unwrap();
            assert!(
                !p.address_allowed(&o("https://api.example.com"), ip),
                "{ip}"
            );
            assert!(!p.address_allowed(&o("https://a.corp.example"), ip), "{ip}");
        }
        assert!(p.address_allowed(&o("https://api.example.com"), public));

        let named = plan(
            &[],
            &[("base-url", "http://127.0.0.1:8080")],
            &["https://10.0.0.5", "http://localhost:9"],
        );
        assert!(named.address_allowed(&o("http://127.0.0.1:8080"), "127.0.0.1".parse().unwrap()));
        assert!(named.address_allowed(&o("https://10.0.0.5"), "10.0.0.5".parse().unwrap()));
        assert!(named.address_allowed(&o("http://localhost:9"), "::1".parse().unwrap()));
        // Naming one address does not open another behind the same origin.
        assert!(!named.address_allowed(&o("https://10.0.0.5"), "10.0.0.6".parse().unwrap()));
        assert!(!named.address_allowed(&o("http://localhost:9"), "10.0.0.6".parse().unwrap()));
    }

    #[test]
    fn with_provisioning_off_only_reads_and_declared_exchanges_pass() {
        let read_only = plan(&[], &[], &[]);
        let m = |s: &str| http::Method::from_bytes(s.as_bytes()).unwrap();
        assert!(read_only.check_method(&m("GET"), "/scim/v2/Users").is_ok());
        assert!(read_only.check_method(&m("HEAD"), "/").is_ok());
        assert!(read_only.check_method(&m("POST"), "/oauth/token").is_ok());
        // Behind a base URL with a path prefix too, on a segment boundary.
        assert!(read_only
            .check_method(&m("POST"), "/ic/oauth/token")
            .is_ok());
        let denied = read_only
            .check_method(&m("POST"), "/scim/v2/Users")
            .unwrap_err();
        assert_eq!(
            denied.to_string(),
            "a POST request while provisioning is off (the component may send GET, HEAD, POST /oauth/token); pass --provisioning to let it change the application"
        );
        for (method, path) in [
            ("PATCH", "/oauth/token"),
            ("DELETE", "/x"),
            ("POST", "/xoauth/token"),
        ] {
            assert!(
                read_only.check_method(&m(method), path).is_err(),
                "{method} {path}"
            );
        }
        let writes = Policy::plan(
            &meta(&[]),
            &settings(&[]),
            &OperatorEgress {
                writes: true,
                ..OperatorEgress::default()
            },
        )
        .unwrap();
        assert!(writes
            .check_method(&m("DELETE"), "/scim/v2/Users/1")
            .is_ok());
    }

    #[test]
    fn a_read_only_declaration_cannot_open_every_write() {
        for bad in [
            "POST /",
            "POST",
            "POST /a?b=c",
            "POST /a/*",
            "POST a",
            "P OST /a",
            "POST /a//b",
        ] {
            assert!(ReadOnlyRequest::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(
            ReadOnlyRequest::parse("POST /oauth/token")
                .unwrap()
                .to_string(),
            "POST /oauth/token"
        );
    }
}
