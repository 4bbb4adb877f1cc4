//! The connector's settings: read from `wasi:config/store`, checked before any request is made,
//! so a wrong setting is reported as the setting it is rather than as a confusing HTTP failure.

use std::fmt;

use crate::wit::ConnectorError;

pub const CLIENT_ID: &str = "ic-client-id";
pub const CLIENT_SECRET: &str = "ic-client-secret";
pub const AS_USER_EMAIL: &str = "as-user-email";
pub const AS_USER_ID: &str = "as-user-id";
pub const ENVIRONMENT: &str = "environment";
pub const BASE_URL: &str = "base-url";
pub const READ_ONLY: &str = "read-only";
pub const USERS_PER_MINUTE: &str = "users-requests-per-minute";
pub const GROUPS_PER_MINUTE: &str = "groups-requests-per-minute";
pub const USER_WRITES_PER_MINUTE: &str = "user-writes-per-minute";

pub const ENVIRONMENTS: [&str; 3] = ["na1", "eu1", "demo"];
pub const DEFAULT_ENVIRONMENT: &str = "na1";
/// Listed in the schema so a host that checks allowed values accepts every spelling we accept.
pub const READ_ONLY_VALUES: [&str; 6] = ["true", "false", "1", "0", "yes", "no"];

/// Whom Ironclad applies permissions for: client-credentials tokens act as nobody until a SCIM
/// call names a user in one of these headers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AsUser {
    Email(String),
    Id(String),
}

impl AsUser {
    pub fn header_name(&self) -> &'static str {
        match self {
            AsUser::Email(_) => "x-as-user-email",
            AsUser::Id(_) => "x-as-user-id",
        }
    }

    pub fn value(&self) -> &str {
        match self {
            AsUser::Email(v) | AsUser::Id(v) => v,
        }
    }

    /// The setting and its value, as a person would look for it in their configuration.
    pub fn describe(&self) -> String {
        match self {
            AsUser::Email(v) => format!("{AS_USER_EMAIL} {v}"),
            AsUser::Id(v) => format!("{AS_USER_ID} {v}"),
        }
    }
}

/// A string that never shows up in `Debug` output, so a logged config cannot leak it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    pub client_id: String,
    pub client_secret: Secret,
    pub as_user: AsUser,
    pub environment: String,
    /// `scheme://host[:port]`: where every request goes, and what the host must allow.
    pub origin: String,
    pub read_only: bool,
}

impl Config {
    /// Reads the settings the host provides for this instance.
    pub fn load() -> Result<Self, ConnectorError> {
        Self::from_lookup(|key| {
            crate::wasi::config::store::get(key).map_err(|e| match e {
                crate::wasi::config::store::Error::Upstream(m)
                | crate::wasi::config::store::Error::Io(m) => m,
            })
        })
    }

    /// `get` answers a key's value, `None` when unset, or the host's reason it could not read it.
    pub fn from_lookup(
        get: impl Fn(&str) -> Result<Option<String>, String>,
    ) -> Result<Self, ConnectorError> {
        let read = |key: &str| -> Result<Option<String>, ConnectorError> {
            match get(key) {
                // Blank counts as unset: templated configs often render a missing value as "".
                Ok(v) => Ok(v.map(|s| s.trim().to_owned()).filter(|s| !s.is_empty())),
                Err(reason) => Err(invalid(
                    key,
                    &format!(
                        "the host could not read it ({}); check the host's configuration source",
                        crate::errors::truncate(&reason)
                    ),
                )),
            }
        };

        let client_id = read(CLIENT_ID)?.ok_or_else(|| {
            invalid(
                CLIENT_ID,
                "missing; set it to the client id of the Ironclad OAuth app (Company Settings > API)",
            )
        })?;
        if has_control_or_space(&client_id) {
            return Err(invalid(
                CLIENT_ID,
                "contains spaces or control characters; paste the client id exactly as Ironclad shows it",
            ));
        }

        let client_secret = read(CLIENT_SECRET)?.ok_or_else(|| {
            invalid(
                CLIENT_SECRET,
                "missing; set it to the client secret Ironclad showed when the OAuth app was created",
            )
        })?;

        let as_user = match (read(AS_USER_EMAIL)?, read(AS_USER_ID)?) {
            (Some(email), _) => {
                if !email.contains('@') || has_control_or_space(&email) {
                    return Err(invalid(
                        AS_USER_EMAIL,
                        &format!(
                            "'{email}' is not an email address; set it to the email of the Ironclad user the connector acts as"
                        ),
                    ));
                }
                AsUser::Email(email)
            }
            (None, Some(id)) => {
                if has_control_or_space(&id) {
                    return Err(invalid(
                        AS_USER_ID,
                        "contains spaces or control characters; set it to the Ironclad id of the user the connector acts as",
                    ));
                }
                AsUser::Id(id)
            }
            (None, None) => {
                return Err(invalid(
                    AS_USER_EMAIL,
                    "missing; set as-user-email (or as-user-id) to the Ironclad user the connector acts as: Ironclad needs one on every SCIM call made with client credentials",
                ))
            }
        };

        let environment = match read(ENVIRONMENT)? {
            None => DEFAULT_ENVIRONMENT.to_owned(),
            Some(env) => {
                let lower = env.to_ascii_lowercase();
                if !ENVIRONMENTS.contains(&lower.as_str()) {
                    return Err(invalid(
                        ENVIRONMENT,
                        &format!(
                            "'{env}' is not an Ironclad environment; use one of {} (or set base-url for another host)",
                            ENVIRONMENTS.join(", ")
                        ),
                    ));
                }
                lower
            }
        };

        let origin = match read(BASE_URL)? {
            None => environment_origin(&environment),
            Some(url) => parse_base_url(&url).map_err(|why| invalid(BASE_URL, &why))?,
        };

        let read_only = match read(READ_ONLY)? {
            None => false,
            Some(v) => parse_bool(&v).ok_or_else(|| {
                invalid(
                    READ_ONLY,
                    &format!(
                        "'{v}' is not a yes/no value; use true or false (1/0 and yes/no also work)"
                    ),
                )
            })?,
        };

        Ok(Config {
            client_id,
            client_secret: Secret(client_secret),
            as_user,
            environment,
            origin,
            read_only,
        })
    }
}

pub fn environment_origin(environment: &str) -> String {
    format!("https://{environment}.ironcladapp.com")
}

fn invalid(field: &str, what: &str) -> ConnectorError {
    ConnectorError::InvalidConfig(format!("{field}: {what}"))
}

fn has_control_or_space(s: &str) -> bool {
    s.chars().any(|c| c.is_control() || c.is_whitespace())
}

fn parse_bool(v: &str) -> Option<bool> {
    match v.to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" => Some(true),
        "false" | "0" | "no" => Some(false),
        _ => None,
    }
}

/// Turns a base URL into the origin requests go to. Paths are refused rather than kept because the
/// connector appends Ironclad's own (`/oauth`, `/scim/v2`), and the host allow-lists origins only.
/// The reason never quotes the URL whole: it may carry credentials.
pub fn parse_base_url(url: &str) -> Result<String, String> {
    let (scheme, rest) = url
        .split_once("://")
        .ok_or_else(|| "must be a URL such as https://sandbox.example.com".to_owned())?;
    let scheme = scheme.to_ascii_lowercase();
    let default_port = match scheme.as_str() {
        "https" => 443,
        "http" => 80,
        _ => {
            return Err(format!(
            "scheme '{scheme}' is not supported; use https:// (or http:// for a local test server)"
        ))
        }
    };
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    if !tail.is_empty() && tail != "/" {
        return Err(
            "must be an origin only (scheme://host[:port]) with no path, query or fragment: the connector adds /oauth and /scim/v2 itself"
                .to_owned(),
        );
    }
    if authority.contains('@') {
        return Err("must not carry a user name or password".to_owned());
    }
    let (host, port) = split_host_port(authority)?;
    let port = match port {
        None => None,
        Some(p) => {
            let n: u16 = p
                .parse()
                .ok()
                .filter(|n| *n != 0)
                .ok_or_else(|| format!("port '{p}' is not a number between 1 and 65535"))?;
            (n != default_port).then_some(n)
        }
    };
    let host = host.to_ascii_lowercase();
    Ok(match port {
        Some(p) => format!("{scheme}://{host}:{p}"),
        None => format!("{scheme}://{host}"),
    })
}

fn split_host_port(authority: &str) -> Result<(&str, Option<&str>), String> {
    let (host, port) = if authority.starts_with('[') {
        let close = authority
            .find(']')
            .ok_or_else(|| "has an unclosed '[' in its host".to_owned())?;
        let (host, after) = authority.split_at(close + 1);
        let inside = host.trim_start_matches('[').trim_end_matches(']');
        if inside.is_empty()
            || !inside
                .chars()
                .all(|c| c.is_ascii_hexdigit() || c == ':' || c == '.')
        {
            return Err("has an invalid IPv6 host".to_owned());
        }
        match after.strip_prefix(':') {
            Some(port) => (host, Some(port)),
            None if after.is_empty() => (host, None),
            None => return Err("has characters after its IPv6 host".to_owned()),
        }
    } else {
        let (host, port) = match authority.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        };
        if host.is_empty() {
            return Err("has no host".to_owned());
        }
        if !host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.' || c == '_')
        {
            return Err(format!(
                "host '{host}' has characters a host name cannot have"
            ));
        }
        (host, port)
    };
    Ok((host, port))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;
    use std::collections::HashMap;

    fn load(pairs: &[(&str, &str)]) -> Result<Config, ConnectorError> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        Config::from_lookup(|k| Ok(map.get(k).cloned()))
    }

    const BASE: [(&str, &str); 3] = [
        ("ic-client-id", "0f8fad5b-d9cb-469f-a165-70867728950e"),
        ("ic-client-secret", "s3cr3t-value"),
        ("as-user-email", "admin@acme.com"),
    ];

    fn with(extra: &[(&'static str, &'static str)]) -> Vec<(&'static str, &'static str)> {
        let mut v = BASE.to_vec();
        for (k, val) in extra {
            v.retain(|(key, _)| key != k);
            v.push((k, val));
        }
        v
    }

    fn config_message(r: Result<Config, ConnectorError>) -> String {
        match r {
            Err(ConnectorError::InvalidConfig(m)) => m,
            other => panic!("expected invalid-config, got {other:?}"),
        }
    }

    #[test]
    fn minimal_config_uses_defaults() {
        let c = load(&BASE).unwrap();
        assert_eq!(c.environment, "na1");
        assert_eq!(c.origin, "https://na1.ironcladapp.com");
        assert!(!c.read_only);
        assert_eq!(c.as_user, AsUser::Email("admin@acme.com".into()));
    }

    #[test]
    fn missing_required_fields_are_named() {
        let m = config_message(load(&[]));
        assert!(m.starts_with("ic-client-id: missing"), "{m}");
        let m = config_message(load(&[("ic-client-id", "abc")]));
        assert!(m.starts_with("ic-client-secret: missing"), "{m}");
        let m = config_message(load(&[("ic-client-id", "abc"), ("ic-client-secret", "x")]));
        assert!(m.starts_with("as-user-email: missing"), "{m}");
        assert!(m.contains("as-user-id"), "{m}");
    }

    #[test]
    fn blank_values_count_as_missing() {
        let m = config_message(load(&with(&[("ic-client-secret", "   ")])));
        assert!(m.starts_with("ic-client-secret: missing"), "{m}");
    }

    #[test]
    fn email_wins_over_id_and_id_alone_works() {
        let c = load(&with(&[("as-user-id", "5f0375c4")])).unwrap();
        assert_eq!(c.as_user.header_name(), "x-as-user-email");
        let only_id: Vec<_> = with(&[("as-user-id", "5f0375c4")])
            .into_iter()
            .filter(|(k, _)| *k != "as-user-email")
            .collect();
        let c = load(&only_id).unwrap();
        assert_eq!(c.as_user, AsUser::Id("5f0375c4".into()));
        assert_eq!(c.as_user.header_name(), "x-as-user-id");
    }

    #[test]
    fn bad_email_is_refused() {
        let m = config_message(load(&with(&[("as-user-email", "admin")])));
        assert!(
            m.starts_with("as-user-email: 'admin' is not an email"),
            "{m}"
        );
    }

    #[test]
    fn environment_is_checked_and_names_allowed_values() {
        let c = load(&with(&[("environment", "EU1")])).unwrap();
        assert_eq!(c.origin, "https://eu1.ironcladapp.com");
        let c = load(&with(&[("environment", "demo")])).unwrap();
        assert_eq!(c.origin, "https://demo.ironcladapp.com");
        let m = config_message(load(&with(&[("environment", "us2")])));
        assert!(m.starts_with("environment: 'us2'"), "{m}");
        assert!(m.contains("na1, eu1, demo"), "{m}");
    }

    #[test]
    fn base_url_replaces_the_environment_host() {
        let c = load(&with(&[("base-url", "http://127.0.0.1:8080/")])).unwrap();
        assert_eq!(c.origin, "http://127.0.0.1:8080");
        let c = load(&with(&[(
            "base-url",
            "HTTPS://Sandbox.IroncladApp.com:443",
        )]))
        .unwrap();
        assert_eq!(c.origin, "https://sandbox.ironcladapp.com");
        assert_eq!(
            parse_base_url("http://[::1]:9000").unwrap(),
            "http://[::1]:9000"
        );
    }

    #[test]
    fn base_url_mistakes_are_explained() {
        for (url, expect) in [
            ("sandbox.ironcladapp.com", "must be a URL"),
            ("ftp://x.com", "scheme 'ftp'"),
            ("https://x.com/scim/v2", "no path"),
            ("https://x.com?a=b", "no path"),
            ("https://x.com:0", "port '0'"),
            ("https://x.com:99999", "port '99999'"),
            ("https://", "has no host"),
            ("https://bad host", "characters"),
            ("https://[::1", "unclosed"),
        ] {
            let m = config_message(load(&with(&[("base-url", url)])));
            assert!(m.starts_with("base-url: "), "{m}");
            assert!(m.contains(expect), "{url}: {m}");
        }
    }

    #[test]
    fn base_url_with_credentials_is_refused_without_echoing_them() {
        let m = config_message(load(&with(&[("base-url", "https://me:hunter2@x.com")])));
        assert!(m.contains("user name or password"), "{m}");
        assert!(!m.contains("hunter2"), "{m}");
    }

    #[test]
    fn read_only_accepts_common_spellings() {
        for (v, want) in [
            ("true", true),
            ("YES", true),
            ("1", true),
            ("no", false),
            ("0", false),
        ] {
            assert_eq!(
                load(&with(&[("read-only", v)])).unwrap().read_only,
                want,
                "{v}"
            );
        }
        let m = config_message(load(&with(&[("read-only", "maybe")])));
        assert!(m.starts_with("read-only: 'maybe'"), "{m}");
    }

    #[test]
    fn host_read_failures_name_the_key_and_secrets_stay_out_of_debug() {
        let r = Config::from_lookup(|k| {
            if k == "ic-client-secret" {
                Err("vault sealed".into())
            } else {
                Ok(Some("v@x".into()))
            }
        });
        let m = config_message(r);
        assert!(m.starts_with("ic-client-secret: the host could not read it (vault sealed)"));

        let c = load(&BASE).unwrap();
        assert!(!format!("{c:?}").contains("s3cr3t-value"));
    }
}
