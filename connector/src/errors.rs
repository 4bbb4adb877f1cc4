//! Turning Ironclad's refusals into `connector-error`s that say what happened and what to do.
//!
//! Ironclad answers errors in three shapes depending on the endpoint (SCIM
//! `{status, scimType, detail}`, OAuth `{error, error_description}`, the rest `{code, message}`),
//! so bodies are read loosely and quoted in Ironclad's own words.

use serde::Deserialize;

use crate::config::AsUser;
use crate::redact::{self, SecretForms};
use crate::scim::loose_string;
use crate::wit::{ConnectorError, RateLimit};

/// Quoted text is cut here: enough to recognise the cause, short enough for one log line.
pub const QUOTE_LIMIT: usize = 200;

pub fn truncate(s: &str) -> String {
    truncate_to(s, QUOTE_LIMIT)
}

/// Cuts `s` to `limit` characters, after hiding the secrets of the current call in every form
/// [`redact`] knows: scrubbing only after the cut would miss a secret that straddles it and let
/// most of it through.
pub fn truncate_to(s: &str, limit: usize) -> String {
    let (mut out, cut) = HIDDEN.with(|h| redact::hide(s.trim(), &h.borrow(), limit));
    if cut {
        out.push('…');
    }
    out
}

/// `s` with the secrets of the current call hidden but nothing cut: a line handed to the host
/// whole, such as `validate`'s.
pub fn hide_secrets(s: &str) -> String {
    HIDDEN.with(|h| redact::hide(s, &h.borrow(), usize::MAX).0)
}

thread_local! {
    /// The secrets of the call under way, set by [`hiding`] (and added to by [`also_hide`]); a
    /// component instance runs one call at a time on one thread.
    static HIDDEN: std::cell::RefCell<Vec<SecretForms>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Runs `f` with `secrets` hidden from every quote it cuts short.
pub fn hiding<R>(secrets: &[&str], f: impl FnOnce() -> R) -> R {
    let kept: Vec<SecretForms> = secrets.iter().filter_map(|s| SecretForms::new(s)).collect();
    let before = HIDDEN.with(|h| std::mem::replace(&mut *h.borrow_mut(), kept));
    let result = f();
    HIDDEN.with(|h| *h.borrow_mut() = before);
    result
}

/// Hides `secret` too for the rest of the current call: an access token minted during it.
pub fn also_hide(secret: &str) {
    HIDDEN.with(|h| {
        let mut hidden = h.borrow_mut();
        if !hidden.iter().any(|s| s.raw() == secret) {
            hidden.extend(SecretForms::new(secret));
        }
    });
}

/// Every error shape Ironclad uses, merged: whichever fields are present win.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct ErrorBody {
    #[serde(rename = "scimType", deserialize_with = "loose_string")]
    pub scim_type: Option<String>,
    #[serde(deserialize_with = "loose_string")]
    pub detail: Option<String>,
    #[serde(deserialize_with = "loose_string")]
    pub error: Option<String>,
    #[serde(deserialize_with = "loose_string")]
    pub error_description: Option<String>,
    #[serde(deserialize_with = "loose_string")]
    pub code: Option<String>,
    #[serde(deserialize_with = "loose_string")]
    pub message: Option<String>,
}

impl ErrorBody {
    pub fn parse(body: &[u8]) -> Self {
        serde_json::from_slice(body).unwrap_or_default()
    }
}

/// Ironclad's own words for a failure, e.g. "invalidFilter: No matching schema for attribute: x".
/// Falls back to the raw body (cut short) when it is not one of the known shapes.
pub fn ironclad_words(body: &[u8]) -> String {
    ironclad_words_within(body, QUOTE_LIMIT)
}

/// [`ironclad_words`] cut at `limit` characters instead, for a reason that must reach a person
/// whole (a rule Ironclad spells out).
pub fn ironclad_words_within(body: &[u8], limit: usize) -> String {
    let truncate = |s: &str| truncate_to(s, limit);
    let e = ErrorBody::parse(body);
    let pairs = [
        (e.scim_type.as_deref(), e.detail.as_deref()),
        (e.error.as_deref(), e.error_description.as_deref()),
        (e.code.as_deref(), e.message.as_deref()),
    ];
    for pair in pairs {
        match pair {
            (Some(k), Some(d)) => return truncate(&format!("{k}: {d}")),
            (None, Some(d)) | (Some(d), None) => return truncate(d),
            (None, None) => {}
        }
    }
    let raw = String::from_utf8_lossy(body);
    let raw = raw.trim();
    if raw.is_empty() {
        "no details given".to_owned()
    } else {
        truncate(&raw.split_whitespace().collect::<Vec<_>>().join(" "))
    }
}

/// `Retry-After` in seconds; an HTTP date is ignored because the guest's clock and Ironclad's may
/// disagree, and the host backs off on its own when no hint is given.
pub fn retry_after_ms(header: Option<&str>) -> Option<u64> {
    let v = header?.trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(secs.saturating_mul(1000));
    }
    match v.parse::<f64>() {
        Ok(secs) if secs.is_finite() && secs >= 0.0 => Some((secs * 1000.0).round() as u64),
        _ => None,
    }
}

/// Does Ironclad's complaint concern the user we act as (the `x-as-user-*` header)?
fn about_as_user(words: &str, as_user: &AsUser) -> bool {
    let lower = words.to_ascii_lowercase();
    ["as-user", "as_user", "asuser", "acting user", "impersonat"]
        .iter()
        .any(|k| lower.contains(k))
        || lower.contains(&as_user.value().to_ascii_lowercase())
}

/// A refusal from a SCIM or `/oauth/userinfo` call. `endpoint` reads like "GET /scim/v2/Users".
pub fn api_error(
    endpoint: &str,
    status: u16,
    body: &[u8],
    retry_after: Option<&str>,
    as_user: &AsUser,
) -> ConnectorError {
    let words = ironclad_words(body);
    let who = as_user.describe();
    match status {
        401 => ConnectorError::Unauthenticated(format!(
            "Ironclad rejected the access token for {endpoint} even after a fresh one was minted ({words}): check that the OAuth app is still active"
        )),
        403 if about_as_user(&words, as_user) => ConnectorError::PermissionDenied(format!(
            "Ironclad refused {endpoint} for {who} ({words}): set {} to an active Ironclad user with admin rights",
            as_user_field(as_user)
        )),
        403 => ConnectorError::PermissionDenied(format!(
            "Ironclad refused {endpoint} ({words}): the OAuth app needs the SCIM scopes and {who} must be allowed to manage users and groups"
        )),
        400 if about_as_user(&words, as_user) => ConnectorError::InvalidConfig(format!(
            "{}: Ironclad rejected {who} ({words}): set it to an active Ironclad user",
            as_user_field(as_user)
        )),
        400 => ConnectorError::InvalidArgument(format!("Ironclad rejected {endpoint} ({words})")),
        404 => ConnectorError::NotFound(format!("Ironclad has no such resource: {endpoint} ({words})")),
        409 => ConnectorError::AlreadyExists(format!("Ironclad says it already exists: {endpoint} ({words})")),
        429 => ConnectorError::RateLimited(RateLimit {
            message: format!(
                "Ironclad is rate limiting {endpoint} ({words}): wait and try again"
            ),
            retry_after_ms: retry_after_ms(retry_after),
        }),
        500..=599 => ConnectorError::Unavailable(format!(
            "Ironclad failed on {endpoint} with HTTP {status} ({words}): try again later"
        )),
        _ => ConnectorError::Other(format!(
            "Ironclad answered {endpoint} with unexpected HTTP {status} ({words})"
        )),
    }
}

fn as_user_field(as_user: &AsUser) -> &'static str {
    match as_user {
        AsUser::Email(_) => crate::config::AS_USER_EMAIL,
        AsUser::Id(_) => crate::config::AS_USER_ID,
    }
}

/// A 2xx answer whose body is not what the endpoint documents.
pub fn unexpected_body(endpoint: &str, err: &serde_json::Error) -> ConnectorError {
    ConnectorError::Other(format!(
        "Ironclad answered {endpoint} with a body that is not the expected JSON: {}",
        truncate(&err.to_string())
    ))
}

/// Last line of defence: whatever a message quotes, the secret and the token never leave, in any
/// form [`redact`] knows. The connector itself scrubs with [`scrub_hidden`].
#[cfg(any(test, feature = "fuzzing"))]
pub fn scrub(err: ConnectorError, secrets: &[&str]) -> ConnectorError {
    let forms: Vec<SecretForms> = secrets.iter().filter_map(|s| SecretForms::new(s)).collect();
    scrub_with(err, &forms)
}

/// [`scrub`] with the secrets of the current call (see [`hiding`]).
pub fn scrub_hidden(err: ConnectorError) -> ConnectorError {
    HIDDEN.with(|h| scrub_with(err, &h.borrow()))
}

fn scrub_with(err: ConnectorError, secrets: &[SecretForms]) -> ConnectorError {
    let clean = |m: String| redact::hide(&m, secrets, usize::MAX).0;
    match err {
        ConnectorError::InvalidConfig(m) => ConnectorError::InvalidConfig(clean(m)),
        ConnectorError::Unauthenticated(m) => ConnectorError::Unauthenticated(clean(m)),
        ConnectorError::PermissionDenied(m) => ConnectorError::PermissionDenied(clean(m)),
        ConnectorError::NotFound(m) => ConnectorError::NotFound(clean(m)),
        ConnectorError::AlreadyExists(m) => ConnectorError::AlreadyExists(clean(m)),
        ConnectorError::RateLimited(r) => ConnectorError::RateLimited(RateLimit {
            message: clean(r.message),
            retry_after_ms: r.retry_after_ms,
        }),
        ConnectorError::Unavailable(m) => ConnectorError::Unavailable(clean(m)),
        ConnectorError::InvalidArgument(m) => ConnectorError::InvalidArgument(clean(m)),
        ConnectorError::Unsupported(m) => ConnectorError::Unsupported(clean(m)),
        ConnectorError::Other(m) => ConnectorError::Other(clean(m)),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    fn email() -> AsUser {
        AsUser::Email("admin@acme.com".into())
    }

    #[test]
    fn words_come_from_each_error_shape() {
        let scim = br#"{"schemas":["urn:ietf:params:scim:api:messages:2.0:Error"],"status":"400","scimType":"invalidFilter","detail":"No matching schema for attribute: legalName"}"#;
        assert_eq!(
            ironclad_words(scim),
            "invalidFilter: No matching schema for attribute: legalName"
        );
        let oauth =
            br#"{"error":"unauthorized_client","error_description":"client not authorized"}"#;
        assert_eq!(
            ironclad_words(oauth),
            "unauthorized_client: client not authorized"
        );
        let other = br#"{"code":"UNAUTHORIZED","message":"token has expired"}"#;
        assert_eq!(ironclad_words(other), "UNAUTHORIZED: token has expired");
        // The documented misspelling `schema`, a numeric status and only a detail.
        let odd = br#"{"schema":["x"],"status":404,"detail":"Resource 6643 not found"}"#;
        assert_eq!(ironclad_words(odd), "Resource 6643 not found");
        assert_eq!(
            ironclad_words(br#"{"status":"403"}"#),
            r#"{"status":"403"}"#
        );
        assert_eq!(ironclad_words(b""), "no details given");
        assert_eq!(
            ironclad_words(b"<html>\n  Bad   Gateway</html>"),
            "<html> Bad Gateway</html>"
        );
    }

    #[test]
    fn quoted_bodies_are_cut_short() {
        let long = format!(r#"{{"detail":"{}"}}"#, "é".repeat(1000));
        let w = ironclad_words(long.as_bytes());
        assert_eq!(w.chars().count(), QUOTE_LIMIT + 1);
        assert!(w.ends_with('…'));
    }

    #[test]
    fn retry_after_takes_seconds_and_ignores_dates() {
        assert_eq!(retry_after_ms(Some("7")), Some(7000));
        assert_eq!(retry_after_ms(Some(" 1.5 ")), Some(1500));
        assert_eq!(retry_after_ms(Some("Wed, 21 Oct 2015 07:28:00 GMT")), None);
        assert_eq!(retry_after_ms(Some("-3")), None);
        assert_eq!(retry_after_ms(None), None);
    }

    #[test]
    fn statuses_map_to_error_cases() {
        let e = |status, body: &[u8]| {
            api_error("GET /scim/v2/Users", status, body, Some("12"), &email())
        };
        assert!(matches!(e(401, b""), ConnectorError::Unauthenticated(_)));
        assert!(matches!(e(403, b""), ConnectorError::PermissionDenied(_)));
        assert!(matches!(
            e(400, br#"{"scimType":"invalidFilter","detail":"x"}"#),
            ConnectorError::InvalidArgument(_)
        ));
        assert!(matches!(e(404, b""), ConnectorError::NotFound(_)));
        assert!(matches!(e(409, b""), ConnectorError::AlreadyExists(_)));
        assert!(matches!(e(500, b""), ConnectorError::Unavailable(_)));
        assert!(matches!(e(503, b""), ConnectorError::Unavailable(_)));
        assert!(matches!(e(418, b""), ConnectorError::Other(_)));
        match e(429, br#"{"code":"RATE_LIMITED","message":"slow down"}"#) {
            ConnectorError::RateLimited(r) => {
                assert_eq!(r.retry_after_ms, Some(12_000));
                assert!(
                    r.message.contains("RATE_LIMITED: slow down"),
                    "{}",
                    r.message
                );
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn as_user_complaints_name_the_setting() {
        let body =
            br#"{"status":"400","detail":"x-as-user-email header refers to an unknown user"}"#;
        match api_error("GET /scim/v2/Users", 400, body, None, &email()) {
            ConnectorError::InvalidConfig(m) => {
                assert!(m.starts_with("as-user-email: "), "{m}");
                assert!(m.contains("unknown user"), "{m}");
            }
            other => panic!("{other:?}"),
        }
        let body = br#"{"status":"403","detail":"admin@acme.com is not an administrator"}"#;
        match api_error("GET /scim/v2/Users", 403, body, None, &email()) {
            ConnectorError::PermissionDenied(m) => {
                assert!(m.contains("for as-user-email admin@acme.com"), "{m}");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_secret_straddling_the_cut_is_hidden_before_cutting() {
        let secret = "s3cr3t-value-that-is-long";
        let body = format!(
            r#"{{"detail":"{}{secret} rest"}}"#,
            "x".repeat(QUOTE_LIMIT - 20)
        );
        let cut = hiding(&[secret], || ironclad_words(body.as_bytes()));
        assert!(!cut.contains(&secret[..8]), "{cut}");
        assert!(cut.contains("<redacted>"), "{cut}");
        // Outside a call nothing is hidden, and the previous set comes back after one.
        assert!(ironclad_words(body.as_bytes()).contains(&secret[..8]));
    }

    /// A generated-looking password with every character that encodings change.
    const PASSWORD: &str = "q\"W\\e/R+t%Y u€i9Op😀Z";

    /// The password's encodings, written independently of `redact`: what servers echo.
    fn encodings(s: &str) -> Vec<String> {
        let json = serde_json::Value::String(s.to_owned()).to_string();
        let json = json[1..json.len() - 1].to_owned();
        let unicode = |upper: bool| {
            s.chars()
                .map(|c| {
                    if c.is_ascii_alphanumeric() {
                        return c.to_string();
                    }
                    let mut units = [0u16; 2];
                    c.encode_utf16(&mut units)
                        .iter()
                        .map(|u| match upper {
                            true => format!("\\u{u:04X}"),
                            false => format!("\\u{u:04x}"),
                        })
                        .collect()
                })
                .collect::<String>()
        };
        let percent = |upper: bool, plus: bool| {
            s.bytes()
                .map(|b| match b {
                    b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                        char::from(b).to_string()
                    }
                    b' ' if plus => "+".to_owned(),
                    _ if upper => format!("%{b:02X}"),
                    _ => format!("%{b:02x}"),
                })
                .collect::<String>()
        };
        vec![
            s.to_owned(),
            json.clone(),
            json.replace('/', "\\/"),
            unicode(true),
            unicode(false),
            percent(true, false),
            percent(false, false),
            percent(true, true),
        ]
    }

    /// Every run of 8 characters of `secret`, raw and in each encoding.
    fn pieces(secret: &str) -> Vec<String> {
        let chars: Vec<char> = secret.chars().collect();
        chars
            .windows(8)
            .flat_map(|w| encodings(&w.iter().collect::<String>()))
            .collect()
    }

    #[track_caller]
    fn assert_no_piece(text: &str, pieces: &[String]) {
        for piece in pieces {
            assert!(!text.contains(piece), "{piece:?} of the secret in {text:?}");
        }
    }

    /// Bodies Ironclad or a proxy may answer with, echoing `echo` (a request body) in them.
    fn echoing_bodies(echo: &str) -> Vec<String> {
        let quoted = |v: &str| serde_json::Value::String(v.to_owned()).to_string();
        let detail = format!("invalid request: {echo}");
        vec![
            format!(
                r#"{{"schemas":["urn:ietf:params:scim:api:messages:2.0:Error"],"status":"400","detail":{}}}"#,
                quoted(&detail)
            ),
            format!(r#"{{"code":"BAD_REQUEST","message":{}}}"#, quoted(&detail)),
            // An unknown shape is quoted raw: the echo is escaped twice there.
            format!(r#"{{"status":400,"errors":[{}]}}"#, quoted(&detail)),
            detail,
        ]
    }

    #[test]
    fn an_echoed_password_is_hidden_in_every_encoding_and_at_every_cut() {
        let pieces = pieces(PASSWORD);
        // One call: the secrets' forms are worked out once.
        hiding(&["other-secret", PASSWORD], || {
            for form in encodings(PASSWORD) {
                let request = format!(r#"{{"userName":"n@acme.test","password":"{form}"}}"#);
                for pad in (0..QUOTE_LIMIT + 10).step_by(3) {
                    let echo = format!("{}{request}", "x".repeat(pad));
                    for body in echoing_bodies(&echo) {
                        let body = body.as_bytes();
                        for limit in [QUOTE_LIMIT, 1000] {
                            let words = ironclad_words_within(body, limit);
                            assert_no_piece(&words, &pieces);
                            if limit == 1000 {
                                // Only the password goes: what follows it is still quoted.
                                assert!(words.contains("<redacted>"), "{words}");
                                assert!(!words.ends_with("<redacted>"), "{words}");
                            }
                        }
                        let e = api_error("POST /scim/v2/Users", 400, body, None, &email());
                        assert_no_piece(&format!("{:?}", scrub_hidden(e)), &pieces);
                    }
                }
            }
        });
    }

    #[test]
    fn a_token_minted_during_the_call_is_hidden_too() {
        let token = "tok-9f8e7d6c5b4a";
        let body = format!(r#"{{"detail":"bearer {token} revoked"}}"#);
        let words = hiding(&["s3cr3t-value"], || {
            also_hide(token);
            ironclad_words(body.as_bytes())
        });
        assert_eq!(words, "bearer <redacted> revoked");
        // Only for that call.
        assert!(ironclad_words(body.as_bytes()).contains(token));
    }

    #[test]
    fn whole_lines_are_hidden_but_not_cut() {
        let line = format!("acting as {} <s3cr3t-value@x>", "x".repeat(QUOTE_LIMIT));
        let hidden = hiding(&["s3cr3t-value"], || hide_secrets(&line));
        assert_eq!(
            hidden,
            format!("acting as {} <<redacted>@x>", "x".repeat(QUOTE_LIMIT))
        );
    }

    #[test]
    fn scrub_finds_encoded_secrets() {
        let e = ConnectorError::Other(r#"echo p\"w\\d/1234 and p%22w%5Cd%2F1234"#.into());
        match scrub(e, &["p\"w\\d/1234"]) {
            ConnectorError::Other(m) => assert_eq!(m, "echo <redacted> and <redacted>"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn scrub_removes_secrets_everywhere() {
        let e = ConnectorError::Other("echo s3cr3t and tok3n-abc".into());
        match scrub(e, &["s3cr3t", "tok3n-abc", ""]) {
            ConnectorError::Other(m) => assert_eq!(m, "echo <redacted> and <redacted>"),
            other => panic!("{other:?}"),
        }
    }
}
