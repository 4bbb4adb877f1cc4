//! The three error shapes Ironclad answers with: SCIM errors, RFC 6749
//! OAuth errors, and the `{code, message}` of its other APIs.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::{json, Value};

pub(crate) const SCIM_ERROR: &str = "urn:ietf:params:scim:api:messages:2.0:Error";

/// SCIM answers `application/scim+json` (RFC 7644 §3.1).
pub(crate) fn scim_json<T: Serialize + ?Sized>(status: StatusCode, body: &T) -> Response {
    json_with_type(status, body, "application/scim+json; charset=utf-8")
}

pub(crate) fn plain_json(status: StatusCode, body: &Value) -> Response {
    json_with_type(status, body, "application/json; charset=utf-8")
}

fn json_with_type<T: Serialize + ?Sized>(
    status: StatusCode,
    body: &T,
    content_type: &'static str,
) -> Response {
    // The bodies are Values and plain structs with string keys: serialising
    // them cannot fail.
    let bytes = serde_json::to_vec(body).unwrap_or_default();
    let mut resp = (status, bytes).into_response();
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    resp
}

/// `{"schemas":[Error],"status":"404","scimType"?,"detail"}`: status as a
/// string, as Ironclad sends it.
pub(crate) fn scim_error(
    status: StatusCode,
    scim_type: Option<&str>,
    detail: impl Into<String>,
) -> Response {
    let mut body = json!({
        "schemas": [SCIM_ERROR],
        "status": status.as_u16().to_string(),
        "detail": detail.into(),
    });
    if let (Some(t), Some(obj)) = (scim_type, body.as_object_mut()) {
        obj.insert("scimType".into(), Value::String(t.into()));
    }
    scim_json(status, &body)
}

/// RFC 6749 §5.2 `{error, error_description}`.
pub(crate) fn oauth_error(status: StatusCode, error: &str, description: &str) -> Response {
    let mut resp = plain_json(
        status,
        &json!({"error": error, "error_description": description}),
    );
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

/// Ironclad's non-SCIM shape, used by its auth layer for 401s even on SCIM
/// routes.
pub(crate) fn code_message(status: StatusCode, code: &str, message: &str) -> Response {
    plain_json(status, &json!({"code": code, "message": message}))
}

pub(crate) fn unauthorized(message: &str) -> Response {
    let mut resp = code_message(StatusCode::UNAUTHORIZED, "UNAUTHORIZED", message);
    resp.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Bearer realm=\"ironclad\""),
    );
    resp
}
