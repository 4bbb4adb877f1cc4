//! Ironclad's endpoints as the connector uses them: every call carries a current token and the
//! acting user, a 401 gets one fresh token and one retry (a token can be revoked or expire
//! early), and a refusal becomes a `connector-error` in Ironclad's own words. Ironclad's rate
//! budgets are declared in the metadata and enforced by the host for every request (token
//! requests, retries and pages sent ahead included), so nothing here paces itself.

use std::time::Instant;

use serde::de::DeserializeOwned;
use serde::Serialize;
use waki::Method;

use crate::ahead;
use crate::config::Config;
use crate::errors::{self, api_error, unexpected_body};
use crate::http::{self, Reply};
use crate::oauth::{self, Token, TokenRequest};
use crate::paging::PAGE_SIZE;
use crate::scim::{Group, ListResponse, NewUser, User, UserInfo};
use crate::state;
use crate::wit::ConnectorError;

const SCIM_ACCEPT: &str = "application/scim+json, application/json";
/// What bodies are sent as: the type Ironclad's SCIM documents and examples use (rather than
/// RFC 7644's `application/scim+json`, which they never mention).
const SCIM_CONTENT_TYPE: &str = "application/json";
const PATCH_OP_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";
const TOKEN_ENDPOINT: &str = "POST /oauth/token";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MemberOp {
    Add,
    Remove,
}

impl MemberOp {
    fn as_str(self) -> &'static str {
        match self {
            MemberOp::Add => "add",
            MemberOp::Remove => "remove",
        }
    }
}

/// The two listings this connector pages through.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Listing {
    Users,
    Groups,
}

impl Listing {
    fn name(self) -> &'static str {
        match self {
            Listing::Users => "Users",
            Listing::Groups => "Groups",
        }
    }

    fn path(self, start: u64) -> String {
        format!(
            "/scim/v2/{}?startIndex={start}&count={PAGE_SIZE}",
            self.name()
        )
    }
}

pub struct Ironclad {
    config: Config,
}

/// Runs `f` against Ironclad, making sure no message carries the client secret, an access token
/// (the cached one, and any minted during the call) or any of `also_secret` (a generated
/// password), in any of the forms an echo of a request may quote them in.
pub fn run<R>(
    config: Config,
    also_secret: &[&str],
    f: impl FnOnce(&Ironclad) -> Result<R, ConnectorError>,
) -> Result<R, ConnectorError> {
    let secret = config.client_secret.expose().to_owned();
    let token = state::with(|s| s.token.as_ref().map(|t| t.value.clone()));
    let mut hidden = vec![secret.as_str()];
    hidden.extend(token.as_deref());
    hidden.extend_from_slice(also_secret);
    // Scrubbed inside the call, while the tokens it minted are still known.
    errors::hiding(&hidden, || {
        f(&Ironclad::new(config)).map_err(errors::scrub_hidden)
    })
}

impl Ironclad {
    pub fn new(config: Config) -> Self {
        Ironclad { config }
    }

    pub fn userinfo(&self) -> Result<UserInfo, ConnectorError> {
        self.get_json("/oauth/userinfo")
    }

    pub fn users_page(&self, start: u64) -> Result<ListResponse<User>, ConnectorError> {
        self.list_page(Listing::Users, start)
    }

    pub fn groups_page(&self, start: u64) -> Result<ListResponse<Group>, ConnectorError> {
        self.list_page(Listing::Groups, start)
    }

    /// A page of a listing: the answer to a request sent ahead for it when one came back whole,
    /// else asked for now.
    fn list_page<T: DeserializeOwned>(
        &self,
        listing: Listing,
        start: u64,
    ) -> Result<T, ConnectorError> {
        let path = listing.path(start);
        let endpoint = format!("GET {path}");
        let answer = match ahead::take(listing.name(), start, &self.config.origin) {
            Some(answer) => answer,
            None => self.open(&path)?,
        };
        if !answer.is_success() {
            return Err(self.error(&endpoint, &answer.read()?));
        }
        answer.json(&endpoint)
    }

    /// Sends the requests for the pages of `listing` at `starts` ahead of their turn, up to
    /// `ahead::limit()` outstanding (each waits its turn in the host's rate budget): the host
    /// works on one page while the next are on their way. Best effort: a page not sent ahead is
    /// asked for in its turn.
    pub fn send_ahead(&self, listing: Listing, starts: &[u64]) {
        let Some(token) = self.cached_token() else {
            return;
        };
        let origin = self.config.origin.as_str();
        let authorization = format!("Bearer {token}");
        let headers = self.auth_headers(&authorization);
        for &start in starts {
            if ahead::outstanding() >= ahead::limit() {
                break;
            }
            if ahead::is_sent(listing.name(), start) {
                continue;
            }
            let path = listing.path(start);
            if !ahead::send(listing.name(), start, origin, &path, &headers) {
                break;
            }
        }
    }

    pub fn group(&self, id: &str) -> Result<Group, ConnectorError> {
        self.get_json(&format!("/scim/v2/Groups/{}", escape_segment(id)))
    }

    /// `GET /Users?filter=userName eq "<login>"`: the users with that login (at most one).
    pub fn users_named(&self, login: &str) -> Result<Vec<User>, ConnectorError> {
        let filter = user_name_filter(login);
        let page: ListResponse<User> = self.get_json(&format!(
            "/scim/v2/Users?filter={}",
            escape_segment(&filter)
        ))?;
        Ok(page.items())
    }

    /// `PATCH /Groups/{id}` adding or removing one member. 200 (with the group) and 204 are both
    /// success; any other answer comes back as a `Reply` for the caller to word.
    pub fn patch_members(
        &self,
        group_id: &str,
        op: MemberOp,
        user_id: &str,
    ) -> Result<Reply, ConnectorError> {
        let body = serde_json::json!({
            "schemas": [PATCH_OP_SCHEMA],
            "Operations": [{"op": op.as_str(), "path": "members", "value": [{"value": user_id}]}],
        });
        self.send_json(
            Method::Patch,
            &format!("/scim/v2/Groups/{}", escape_segment(group_id)),
            &body,
        )
    }

    /// `POST /Users`; the answer is the caller's to read (201, 409, 400 mean different things).
    pub fn post_user(&self, body: &NewUser<'_>) -> Result<Reply, ConnectorError> {
        self.send_json(Method::Post, "/scim/v2/Users", body)
    }

    fn send_json<T: Serialize>(
        &self,
        method: Method,
        path: &str,
        body: &T,
    ) -> Result<Reply, ConnectorError> {
        let body = serde_json::to_vec(body).map_err(|e| {
            ConnectorError::Other(format!(
                "cannot encode the request body for {path}: {}",
                errors::truncate(&e.to_string())
            ))
        })?;
        self.call(
            method,
            path,
            &[("content-type", SCIM_CONTENT_TYPE)],
            Some(&body),
        )
    }

    fn get_json<T: DeserializeOwned>(&self, path: &str) -> Result<T, ConnectorError> {
        let endpoint = format!("GET {path}");
        let reply = self.call(Method::Get, path, &[], None)?;
        if !reply.is_success() {
            return Err(self.error(&endpoint, &reply));
        }
        serde_json::from_slice(&reply.body).map_err(|e| unexpected_body(&endpoint, &e))
    }

    /// A refusal in Ironclad's words, for `endpoint` ("PATCH /scim/v2/Groups/…").
    pub fn error(&self, endpoint: &str, reply: &Reply) -> ConnectorError {
        api_error(
            endpoint,
            reply.status,
            &reply.body,
            reply.retry_after.as_deref(),
            &self.config.as_user,
        )
    }

    /// One request with the token and the acting user; a 401 gets a fresh token and one retry.
    /// Every other answer is handed back as it came.
    fn call(
        &self,
        method: Method,
        path: &str,
        extra_headers: &[(&'static str, &str)],
        body: Option<&[u8]>,
    ) -> Result<Reply, ConnectorError> {
        let url = format!("{}{path}", self.config.origin);
        self.with_auth(extra_headers, |headers| {
            let reply = http::request(method.clone(), &url, &self.config.origin, headers, body)?;
            Ok((reply.status, reply))
        })
    }

    /// A `GET` with the token and the acting user, its body left to stream; a 401 gets a fresh
    /// token and one retry.
    fn open(&self, path: &str) -> Result<http::Answer, ConnectorError> {
        let url = format!("{}{path}", self.config.origin);
        self.with_auth(&[], |headers| {
            let answer = http::open_get(&url, &self.config.origin, headers)?;
            Ok((answer.status, answer))
        })
    }

    /// The headers every SCIM request carries: the token (`Bearer …`), what is accepted, and the
    /// acting user.
    fn auth_headers<'a>(&'a self, authorization: &'a str) -> [(&'static str, &'a str); 3] {
        let as_user = &self.config.as_user;
        [
            ("authorization", authorization),
            ("accept", SCIM_ACCEPT),
            (as_user.header_name(), as_user.value()),
        ]
    }

    /// Sends with the token and the acting user; a 401 gets a fresh token and one retry.
    fn with_auth<R>(
        &self,
        extra_headers: &[(&'static str, &str)],
        send: impl Fn(&[(&'static str, &str)]) -> Result<(u16, R), ConnectorError>,
    ) -> Result<R, ConnectorError> {
        let mut token = self.token(false)?;
        let mut retried = false;
        loop {
            let authorization = format!("Bearer {token}");
            let mut headers = self.auth_headers(&authorization).to_vec();
            headers.extend_from_slice(extra_headers);
            let (status, answer) = send(&headers)?;
            if status == 401 && !retried {
                retried = true;
                token = self.token(true)?;
                continue;
            }
            return Ok(answer);
        }
    }

    /// The cached token while it is good for these settings; never a new one.
    fn cached_token(&self) -> Option<String> {
        let key = oauth::cache_key(&self.config);
        let now = Instant::now();
        state::with(|s| {
            s.token
                .as_ref()
                .filter(|t| t.usable(&key, now))
                .map(|t| t.value.clone())
        })
    }

    /// The cached token while it is good for these settings, else a new one.
    fn token(&self, force_new: bool) -> Result<String, ConnectorError> {
        if let Some(token) = self.cached_token().filter(|_| !force_new) {
            return Ok(token);
        }
        state::with(|s| s.token = None);
        let key = oauth::cache_key(&self.config);

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
        errors::also_hide(&value);
        state::with(|s| s.token = Some(token));
        Ok(value)
    }
}

/// `userName eq "<login>"`, with the login quoted as a SCIM string (RFC 7644 §3.4.2.2: a JSON
/// string, so `\` and `"` are escaped, and control characters too).
pub fn user_name_filter(login: &str) -> String {
    let quoted = serde_json::Value::String(login.to_owned()).to_string();
    format!("userName eq {quoted}")
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

    #[test]
    fn user_name_filters_are_quoted_and_escaped() {
        assert_eq!(
            user_name_filter("jane.doe@acme.com"),
            r#"userName eq "jane.doe@acme.com""#
        );
        assert_eq!(
            user_name_filter(r#"a"b\c@x.com"#),
            r#"userName eq "a\"b\\c@x.com""#
        );
        assert_eq!(
            escape_segment(&user_name_filter("a+b@x.com")),
            "userName%20eq%20%22a%2Bb%40x%2Ecom%22"
        );
    }
}
