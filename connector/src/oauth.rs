//! Access tokens from Ironclad's client-credentials grant. Ironclad issues no refresh token, so a
//! token is kept for the life of the instance and minted again shortly before it expires.

use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::config::Config;
use crate::errors::{ironclad_words, ErrorBody};
use crate::scim::{loose_string, loose_u64};
use crate::wit::ConnectorError;

pub const READ_SCOPES: &str = "scim.users.readUsers scim.groups.readGroups";
pub const WRITE_SCOPES: &str = "scim.groups.updateGroups scim.users.createUsers";

/// When Ironclad leaves `expires_in` out; its documented example. A 401 mints again anyway.
const DEFAULT_LIFETIME: Duration = Duration::from_secs(3600);
const MAX_MARGIN: Duration = Duration::from_secs(60);

pub fn scopes(read_only: bool) -> String {
    if read_only {
        READ_SCOPES.to_owned()
    } else {
        format!("{READ_SCOPES} {WRITE_SCOPES}")
    }
}

#[derive(Debug, Serialize)]
pub struct TokenRequest<'a> {
    grant_type: &'static str,
    client_id: &'a str,
    client_secret: &'a str,
    scope: String,
}

impl<'a> TokenRequest<'a> {
    pub fn new(config: &'a Config) -> Self {
        TokenRequest {
            grant_type: "client_credentials",
            client_id: &config.client_id,
            client_secret: config.client_secret.expose(),
            scope: scopes(config.read_only),
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct TokenResponse {
    #[serde(deserialize_with = "loose_string")]
    access_token: Option<String>,
    #[serde(deserialize_with = "loose_u64")]
    expires_in: Option<u64>,
}

/// A cached token. `key` ties it to the settings it was minted for, so a token never outlives a
/// change of client, origin or scopes.
#[derive(Clone)]
pub struct Token {
    pub value: String,
    pub key: String,
    pub minted_at: Instant,
    pub lifetime: Duration,
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Token")
            .field("key", &self.key)
            .field("lifetime", &self.lifetime)
            .finish_non_exhaustive()
    }
}

pub fn cache_key(config: &Config) -> String {
    format!(
        "{} {} {}",
        config.origin,
        config.client_id,
        scopes(config.read_only)
    )
}

/// How long before expiry a token is replaced: a minute, or a tenth of a short lifetime, so a
/// request never starts with a token about to lapse and short-lived tokens still get used.
pub fn refresh_margin(lifetime: Duration) -> Duration {
    MAX_MARGIN.min(lifetime / 10)
}

impl Token {
    /// Reads a token endpoint 2xx body. `minted_at` is taken before the request went out, so the
    /// lifetime is never overestimated.
    pub fn from_response(
        body: &[u8],
        key: String,
        minted_at: Instant,
    ) -> Result<Token, ConnectorError> {
        let endpoint = "POST /oauth/token";
        let parsed: TokenResponse = serde_json::from_slice(body)
            .map_err(|e| crate::errors::unexpected_body(endpoint, &e))?;
        let value = parsed
            .access_token
            .filter(|t| !t.is_empty())
            .ok_or_else(|| {
                ConnectorError::Other(format!(
                    "Ironclad answered {endpoint} without an access_token: report this to Ironclad support"
                ))
            })?;
        Ok(Token {
            value,
            key,
            minted_at,
            lifetime: parsed
                .expires_in
                .map_or(DEFAULT_LIFETIME, Duration::from_secs),
        })
    }

    pub fn usable(&self, key: &str, now: Instant) -> bool {
        self.key == key
            && now
                .saturating_duration_since(self.minted_at)
                .saturating_add(refresh_margin(self.lifetime))
                < self.lifetime
    }
}

/// A refusal from the token endpoint. Ironclad reports a wrong secret or unknown client as 403
/// `unauthorized_client`, not 401, so both point at the credentials.
pub fn token_error(status: u16, body: &[u8], config: &Config) -> Option<ConnectorError> {
    let parsed = ErrorBody::parse(body);
    let code = parsed.error.as_deref().unwrap_or_default();
    let words = ironclad_words(body);
    let check_credentials = format!(
        "check ic-client-id and ic-client-secret for this environment ({}): an OAuth app works only where it was registered",
        config.origin
    );
    Some(match (status, code) {
        (400, "invalid_scope") => {
            let advice = if config.read_only {
                "give the OAuth app these scopes in Ironclad"
            } else {
                "give the OAuth app these scopes in Ironclad, or set read-only=true to ask only the read scopes"
            };
            ConnectorError::PermissionDenied(format!(
                "Ironclad refused the scopes asked ({}) ({words}): {advice}",
                scopes(config.read_only)
            ))
        }
        (400, "invalid_request") => ConnectorError::InvalidConfig(format!(
            "ic-client-id: Ironclad says it is not a valid Ironclad client id ({words}): use the client id (a UUID) of the OAuth app"
        )),
        (401, _) => ConnectorError::Unauthenticated(format!(
            "Ironclad refused the client credentials ({words}): {check_credentials}"
        )),
        (403, _) => ConnectorError::PermissionDenied(format!(
            "Ironclad refused the client credentials ({words}): {check_credentials}"
        )),
        (404, _) => ConnectorError::InvalidConfig(format!(
            "base-url: {} has no Ironclad token endpoint (POST /oauth/token answered 404): check base-url and environment",
            config.origin
        )),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    fn config(read_only: bool) -> Config {
        let ro = if read_only { "true" } else { "false" };
        Config::from_lookup(|k| {
            Ok(match k {
                "ic-client-id" => Some("0f8fad5b-d9cb-469f-a165-70867728950e".into()),
                "ic-client-secret" => Some("s3cr3t-value".into()),
                "as-user-email" => Some("admin@acme.com".into()),
                "read-only" => Some(ro.into()),
                _ => None,
            })
        })
        .unwrap()
    }

    #[test]
    fn request_body_and_scopes() {
        let c = config(true);
        let body = serde_json::to_value(TokenRequest::new(&c)).unwrap();
        assert_eq!(body["grant_type"], "client_credentials");
        assert_eq!(body["client_id"], "0f8fad5b-d9cb-469f-a165-70867728950e");
        assert_eq!(body["client_secret"], "s3cr3t-value");
        assert_eq!(body["scope"], "scim.users.readUsers scim.groups.readGroups");
        assert_eq!(
            scopes(false),
            "scim.users.readUsers scim.groups.readGroups scim.groups.updateGroups scim.users.createUsers"
        );
    }

    #[test]
    fn margin_is_a_minute_or_a_tenth() {
        assert_eq!(
            refresh_margin(Duration::from_secs(21600)),
            Duration::from_secs(60)
        );
        assert_eq!(
            refresh_margin(Duration::from_secs(600)),
            Duration::from_secs(60)
        );
        assert_eq!(
            refresh_margin(Duration::from_secs(300)),
            Duration::from_secs(30)
        );
        assert_eq!(refresh_margin(Duration::ZERO), Duration::ZERO);
    }

    #[test]
    fn token_is_replaced_before_it_expires() {
        let t0 = Instant::now();
        let token = Token::from_response(
            br#"{"token_type":"Bearer","access_token":"abc","expires_in":21600}"#,
            "k".into(),
            t0,
        )
        .unwrap();
        assert_eq!(token.lifetime, Duration::from_secs(21600));
        assert!(token.usable("k", t0));
        assert!(token.usable("k", t0 + Duration::from_secs(21539)));
        assert!(!token.usable("k", t0 + Duration::from_secs(21540)));
        assert!(!token.usable("other settings", t0));

        let short = Token::from_response(
            br#"{"access_token":"abc","expires_in":"100"}"#,
            "k".into(),
            t0,
        )
        .unwrap();
        assert!(short.usable("k", t0 + Duration::from_secs(89)));
        assert!(!short.usable("k", t0 + Duration::from_secs(90)));

        let zero =
            Token::from_response(br#"{"access_token":"abc","expires_in":0}"#, "k".into(), t0)
                .unwrap();
        assert!(!zero.usable("k", t0));

        let unknown = Token::from_response(br#"{"access_token":"abc"}"#, "k".into(), t0).unwrap();
        assert_eq!(unknown.lifetime, DEFAULT_LIFETIME);
    }

    #[test]
    fn odd_token_bodies_are_errors_without_panics() {
        let t0 = Instant::now();
        match Token::from_response(b"<html>oops</html>", "k".into(), t0) {
            Err(ConnectorError::Other(m)) => {
                assert!(m.starts_with("Ironclad answered POST /oauth/token with a body that is not the expected JSON: "), "{m}")
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            Token::from_response(br#"{"access_token":""}"#, "k".into(), t0),
            Err(ConnectorError::Other(_))
        ));
        assert!(!format!(
            "{:?}",
            Token::from_response(br#"{"access_token":"tok-xyz"}"#, "k".into(), t0).unwrap()
        )
        .contains("tok-xyz"));
    }

    #[test]
    fn token_endpoint_refusals() {
        let c = config(false);
        let refused =
            br#"{"error":"unauthorized_client","error_description":"client not authorized"}"#;
        match token_error(403, refused, &c) {
            Some(ConnectorError::PermissionDenied(m)) => {
                assert!(m.starts_with("Ironclad refused the client credentials (unauthorized_client: client not authorized): check ic-client-id and ic-client-secret for this environment"), "{m}");
                assert!(!m.contains("s3cr3t"));
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            token_error(401, br#"{"error":"invalid_client"}"#, &c),
            Some(ConnectorError::Unauthenticated(_))
        ));
        match token_error(400, br#"{"error":"invalid_request","error_description":"Invalid value for client_id, expected type UUID"}"#, &c) {
            Some(ConnectorError::InvalidConfig(m)) => {
                assert!(m.starts_with("ic-client-id: Ironclad says it is not a valid Ironclad client id"), "{m}")
            }
            other => panic!("{other:?}"),
        }
        match token_error(400, br#"{"error":"invalid_scope"}"#, &c) {
            Some(ConnectorError::PermissionDenied(m)) => {
                assert!(m.contains("scim.users.createUsers"), "{m}");
                assert!(m.contains("read-only=true"), "{m}");
            }
            other => panic!("{other:?}"),
        }
        match token_error(400, br#"{"error":"invalid_scope"}"#, &config(true)) {
            Some(ConnectorError::PermissionDenied(m)) => {
                assert!(!m.contains("read-only=true"), "{m}")
            }
            other => panic!("{other:?}"),
        }
        assert!(token_error(500, b"", &c).is_none());
        assert!(token_error(429, b"", &c).is_none());
    }
}
