//! Ironclad's endpoints as the connector uses them: every call carries a current token and the
//! acting user, a 401 gets one fresh token and one retry (a token can be revoked or expire
//! early), and a refusal becomes a `connector-error` in Ironclad's own words.

use std::time::Instant;

use serde::de::DeserializeOwned;

use crate::config::Config;
use crate::errors::{api_error, unexpected_body};
use crate::http;
use crate::oauth::{self, Token, TokenRequest};
use crate::paging::PAGE_SIZE;
use crate::scim::{Group, ListResponse, UserInfo};
use crate::state;
use crate::wit::ConnectorError;

const SCIM_ACCEPT: &str = "application/scim+json, application/json";
const TOKEN_ENDPOINT: &str = "POST /oauth/token";

pub struct Ironclad {
    config: Config,
}

impl Ironclad {
    pub fn new(config: Config) -> Self {
        Ironclad { config }
    }

    pub fn userinfo(&self) -> Result<UserInfo, ConnectorError> {
        self.get_json("/oauth/userinfo")
    }

    pub fn users_page(&self, start: u64) -> Result<ListResponse, ConnectorError> {
        self.get_json(&format!(
            "/scim/v2/Users?startIndex={start}&count={PAGE_SIZE}"
        ))
    }

    pub fn groups_page(&self, start: u64) -> Result<ListResponse, ConnectorError> {
        self.get_json(&format!(
            "/scim/v2/Groups?startIndex={start}&count={PAGE_SIZE}"
        ))
    }

    pub fn group(&self, id: &str) -> Result<Group, ConnectorError> {
        self.get_json(&format!("/scim/v2/Groups/{}", escape_segment(id)))
    }

    fn get_json<T: DeserializeOwned>(&self, path: &str) -> Result<T, ConnectorError> {
        let endpoint = format!("GET {path}");
        let body = self.get(path, &endpoint)?;
        serde_json::from_slice(&body).map_err(|e| unexpected_body(&endpoint, &e))
    }

    fn get(&self, path: &str, endpoint: &str) -> Result<Vec<u8>, ConnectorError> {
        let origin = self.config.origin.as_str();
        let url = format!("{origin}{path}");
        let as_user = &self.config.as_user;
        let mut token = self.token(false)?;
        let mut retried = false;
        loop {
            let authorization = format!("Bearer {token}");
            let headers = [
                ("authorization", authorization.as_str()),
                ("accept", SCIM_ACCEPT),
                (as_user.header_name(), as_user.value()),
            ];
            let reply = http::get(&url, origin, &headers)?;
            if reply.status == 401 && !retried {
                retried = true;
                token = self.token(true)?;
                continue;
            }
            if reply.is_success() {
                return Ok(reply.body);
            }
            return Err(api_error(
                endpoint,
                reply.status,
                &reply.body,
                reply.retry_after.as_deref(),
                as_user,
            ));
        }
    }

    /// The cached token while it is good for these settings, else a new one.
    fn token(&self, force_new: bool) -> Result<String, ConnectorError> {
        let key = oauth::cache_key(&self.config);
        if !force_new {
            let now = Instant::now();
            let cached = state::with(|s| {
                s.token
                    .as_ref()
                    .filter(|t| t.usable(&key, now))
                    .map(|t| t.value.clone())
            });
            if let Some(token) = cached {
                return Ok(token);
            }
        }
        state::with(|s| s.token = None);

        let origin = self.config.origin.as_str();
        let minted_at = Instant::now();
        let reply = http::post_json(
            &format!("{origin}/oauth/token"),
            origin,
            &[("accept", "application/json")],
            &TokenRequest::new(&self.config),
        )?;
        if !reply.is_success() {
            return Err(oauth::token_error(reply.status, &reply.body, &self.config)
                .unwrap_or_else(|| {
                    api_error(
                        TOKEN_ENDPOINT,
                        reply.status,
                        &reply.body,
                        reply.retry_after.as_deref(),
                        &self.config.as_user,
                    )
                }));
        }
        let token = Token::from_response(&reply.body, key, minted_at)?;
        let value = token.value.clone();
        state::with(|s| s.token = Some(token));
        Ok(value)
    }
}

/// Percent-encodes an id for use as one path segment; Ironclad's ids are hex or UUIDs, but an id
/// handed in by a host is not trusted to be (dots too, so `..` cannot climb the path).
pub fn escape_segment(id: &str) -> String {
    let mut out = String::with_capacity(id.len());
    for b in id.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    #[test]
    fn ids_are_escaped_as_one_segment() {
        assert_eq!(
            escape_segment("74906dd6-f2c6-4442-8875-57846f15b061"),
            "74906dd6-f2c6-4442-8875-57846f15b061"
        );
        assert_eq!(escape_segment("../Users?x=1"), "%2E%2E%2FUsers%3Fx%3D1");
        assert_eq!(escape_segment("é"), "%C3%A9");
    }
}
