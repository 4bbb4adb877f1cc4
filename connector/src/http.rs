//! The one place requests leave the component (waki over `wasi:http`). It hands back the status,
//! `Retry-After` and the whole body; what a status means is decided by the callers, who know
//! which endpoint they asked.

use std::time::Duration;

use serde::Serialize;
use waki::bindings::wasi::io::streams::StreamError;
use waki::{Client, ErrorCode, Method, RequestBuilder};

use crate::errors::truncate;
use crate::wit::ConnectorError;

/// Bounds only the connect; the host bounds the rest (and clamps this too).
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(20);

pub struct Reply {
    pub status: u16,
    pub retry_after: Option<String>,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }
}

pub fn post_json<T: Serialize>(
    url: &str,
    origin: &str,
    headers: &[(&'static str, &str)],
    body: &T,
) -> Result<Reply, ConnectorError> {
    send(Client::new().post(url).json(body), origin, headers)
}

/// A request with an optional body already encoded; `headers` say its content type.
pub fn request(
    method: Method,
    url: &str,
    origin: &str,
    headers: &[(&'static str, &str)],
    body: Option<&[u8]>,
) -> Result<Reply, ConnectorError> {
    let mut request = Client::new().request(method, url);
    if let Some(body) = body {
        request = request.body(body);
    }
    send(request, origin, headers)
}

fn send(
    mut request: RequestBuilder,
    origin: &str,
    headers: &[(&'static str, &str)],
) -> Result<Reply, ConnectorError> {
    request = request.connect_timeout(CONNECT_TIMEOUT);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request
        .send()
        .map_err(|e| {
            if e.downcast_ref::<StreamError>().is_some() {
                // Writing a request body fails first when the connection does, and hides the
                // `wasi:http` error code behind a closed stream.
                return ConnectorError::Unavailable(format!(
                    "could not reach Ironclad at {origin}: the connection closed while the request was sent ({}): check base-url and the network, then try again",
                    truncate(&e.to_string())
                ));
            }
            transport_error(e.downcast_ref::<ErrorCode>(), &e.to_string(), origin)
        })?;
    let status = response.status_code();
    let retry_after = response
        .header("retry-after")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let body = read_body(&response).map_err(|e| {
        ConnectorError::Unavailable(format!(
            "reading Ironclad's answer from {origin} failed ({}): try again",
            truncate(&e)
        ))
    })?;
    Ok(Reply {
        status,
        retry_after,
        body,
    })
}

/// The most of a declared `Content-Length` reserved up front: the header is the server's word,
/// and a body longer than it declared still reads whole, only with the usual growth.
const MAX_RESERVED: usize = 64 << 20;

/// The whole body, in a buffer sized by `Content-Length` where the server gave one: a page of
/// groups is tens of MB, and a buffer grown by doubling would peak near three times that in the
/// guest's memory, which never shrinks.
pub fn read_body(response: &waki::Response) -> Result<Vec<u8>, String> {
    let declared = response
        .header("content-length")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<usize>().ok())
        .unwrap_or(0);
    let mut body = Vec::with_capacity(declared.min(MAX_RESERVED));
    while let Some(chunk) = response.chunk(1 << 20).map_err(|e| e.to_string())? {
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// A request that got no HTTP answer. `code` is what `wasi:http` reported, when it did; `detail`
/// is waki's own description otherwise.
pub fn transport_error(code: Option<&ErrorCode>, detail: &str, origin: &str) -> ConnectorError {
    let Some(code) = code else {
        return ConnectorError::Other(format!(
            "the request to {origin} could not be sent ({})",
            truncate(detail)
        ));
    };
    // Some codes carry the host's own words: quoted like any other text, secrets hidden.
    let quoted = truncate(&format!("{code:?}"));
    match code {
        ErrorCode::HttpRequestDenied => ConnectorError::PermissionDenied(format!(
            "the host refused the request to {origin}: add {origin} to the host's outbound allow-list"
        )),
        ErrorCode::DestinationIpProhibited => ConnectorError::PermissionDenied(format!(
            "the host refused to connect to the address {origin} resolves to: check base-url, or allow that address on the host"
        )),
        ErrorCode::DnsTimeout | ErrorCode::DnsError(_) | ErrorCode::DestinationNotFound => {
            ConnectorError::Unavailable(format!(
                "could not resolve {origin} ({quoted}): check base-url/environment and the network"
            ))
        }
        ErrorCode::ConnectionRefused
        | ErrorCode::DestinationUnavailable
        | ErrorCode::DestinationIpUnroutable
        | ErrorCode::ConnectionTerminated
        | ErrorCode::ConnectionTimeout
        | ErrorCode::ConnectionReadTimeout
        | ErrorCode::ConnectionWriteTimeout
        | ErrorCode::ConnectionLimitReached
        | ErrorCode::HttpResponseTimeout
        | ErrorCode::HttpResponseIncomplete
        | ErrorCode::HttpProtocolError => ConnectorError::Unavailable(format!(
            "could not reach Ironclad at {origin} ({quoted}): try again later"
        )),
        ErrorCode::TlsProtocolError
        | ErrorCode::TlsCertificateError
        | ErrorCode::TlsAlertReceived(_) => ConnectorError::Unavailable(format!(
            "the TLS handshake with {origin} failed ({quoted}): check base-url and any proxy between the host and Ironclad"
        )),
        ErrorCode::HttpResponseBodySize(_)
        | ErrorCode::HttpResponseHeaderSize(_)
        | ErrorCode::HttpResponseHeaderSectionSize(_) => ConnectorError::Other(format!(
            "Ironclad's answer from {origin} was larger than the host allows ({quoted})"
        )),
        _ => ConnectorError::Other(format!(
            "the request to {origin} failed ({quoted})"
        )),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    const O: &str = "https://na1.ironcladapp.com";

    #[test]
    fn denied_requests_say_what_to_allow() {
        match transport_error(Some(&ErrorCode::HttpRequestDenied), "", O) {
            ConnectorError::PermissionDenied(m) => {
                assert!(
                    m.contains("add https://na1.ironcladapp.com to the host's outbound allow-list"),
                    "{m}"
                )
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn network_failures_are_unavailable() {
        for code in [
            ErrorCode::ConnectionRefused,
            ErrorCode::DnsTimeout,
            ErrorCode::ConnectionTimeout,
            ErrorCode::HttpResponseTimeout,
            ErrorCode::TlsCertificateError,
        ] {
            assert!(
                matches!(
                    transport_error(Some(&code), "", O),
                    ConnectorError::Unavailable(_)
                ),
                "{code:?}"
            );
        }
    }

    #[test]
    fn other_failures_are_other() {
        assert!(matches!(
            transport_error(None, "invalid uri character", O),
            ConnectorError::Other(_)
        ));
        assert!(matches!(
            transport_error(Some(&ErrorCode::InternalError(Some("x".into()))), "", O),
            ConnectorError::Other(_)
        ));
    }
}
