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

/// A `GET` whose answer's body is left unread, for the caller to stream.
pub fn open_get(
    url: &str,
    origin: &str,
    headers: &[(&'static str, &str)],
) -> Result<Answer, ConnectorError> {
    open(Client::new().request(Method::Get, url), origin, headers)
}

/// An answer whose body has not been read yet.
pub struct Answer {
    pub status: u16,
    pub retry_after: Option<String>,
    pub response: waki::Response,
    origin: String,
}

impl Answer {
    pub fn new(response: waki::Response, origin: &str) -> Answer {
        let retry_after = response
            .header("retry-after")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        Answer {
            status: response.status_code(),
            retry_after,
            response,
            origin: origin.to_owned(),
        }
    }

    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// The body read whole.
    pub fn read(self) -> Result<Reply, ConnectorError> {
        let body = read_body(&self.response).map_err(|e| read_failed(&self.origin, &e))?;
        Ok(Reply {
            status: self.status,
            retry_after: self.retry_after,
            body,
        })
    }

    /// The body parsed as JSON. A body of a few MB (a page of users) is read whole and parsed
    /// from memory, which is fast; a larger one, or one of unknown length, is parsed as it
    /// arrives and never held whole (a page of groups is tens of MB, and the guest's memory never
    /// shrinks), at about half the speed. A body that breaks off is worth another try; one that
    /// is not the JSON expected is `unexpected` (`endpoint` names the request for it).
    pub fn json<T: serde::de::DeserializeOwned>(self, endpoint: &str) -> Result<T, ConnectorError> {
        if declared_length(&self.response).is_some_and(|n| n <= MAX_READ_WHOLE) {
            let reply = self.read()?;
            return serde_json::from_slice(&reply.body)
                .map_err(|e| crate::errors::unexpected_body(endpoint, &e));
        }
        let origin = self.origin;
        let reader = BodyReader {
            response: self.response,
            chunk: Vec::new(),
            at: 0,
        };
        // Through a `BufReader`: serde_json reads byte by byte, and std reads a byte out of a
        // `BufReader`'s buffer without a call per byte.
        let reader = std::io::BufReader::with_capacity(64 << 10, reader);
        serde_json::from_reader(reader).map_err(|e| {
            if e.is_io() {
                read_failed(&origin, &e.to_string())
            } else {
                crate::errors::unexpected_body(endpoint, &e)
            }
        })
    }
}

/// The largest body [`Answer::json`] reads whole before parsing.
const MAX_READ_WHOLE: usize = 4 << 20;

fn read_failed(origin: &str, detail: &str) -> ConnectorError {
    ConnectorError::Unavailable(format!(
        "reading Ironclad's answer from {origin} failed ({}): try again",
        truncate(detail)
    ))
}

/// A response body as `std::io::Read`, a chunk of up to 64 KiB at a time.
struct BodyReader {
    response: waki::Response,
    chunk: Vec<u8>,
    at: usize,
}

impl std::io::Read for BodyReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.at == self.chunk.len() {
            match self
                .response
                .chunk(64 << 10)
                .map_err(std::io::Error::other)?
            {
                Some(chunk) => {
                    self.chunk = chunk;
                    self.at = 0;
                }
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.chunk.len() - self.at);
        buf[..n].copy_from_slice(&self.chunk[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

fn send(
    request: RequestBuilder,
    origin: &str,
    headers: &[(&'static str, &str)],
) -> Result<Reply, ConnectorError> {
    open(request, origin, headers)?.read()
}

fn open(
    mut request: RequestBuilder,
    origin: &str,
    headers: &[(&'static str, &str)],
) -> Result<Answer, ConnectorError> {
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
    Ok(Answer::new(response, origin))
}

/// The body's length as the server declared it (`Content-Length`), its word only.
fn declared_length(response: &waki::Response) -> Option<usize> {
    response
        .header("content-length")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok())
}

/// The most of a declared `Content-Length` reserved up front: the header is the server's word,
/// and a body longer than it declared still reads whole, only with the usual growth.
const MAX_RESERVED: usize = 64 << 20;

/// The whole body, in a buffer sized by `Content-Length` where the server gave one: a page of
/// groups is tens of MB, and a buffer grown by doubling would peak near three times that in the
/// guest's memory, which never shrinks.
pub fn read_body(response: &waki::Response) -> Result<Vec<u8>, String> {
    let declared = declared_length(response).unwrap_or(0);
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
