//! What the host makes of a connector's typed errors: a one-line message a
//! person can act on, and whether the call is worth retrying.

use std::time::Duration;

use crate::bindings::ConnectorError;

/// A connector's error, kept typed so the sync loop can branch on it.
#[derive(Debug, thiserror::Error)]
#[error("{}", describe(.0))]
pub struct CallError(pub ConnectorError);

impl CallError {
    /// Rate limits and outages pass; everything else needs a person.
    pub fn retry_hint(&self) -> Option<Option<Duration>> {
        match &self.0 {
            ConnectorError::RateLimited(r) => Some(r.retry_after_ms.map(Duration::from_millis)),
            ConnectorError::Unavailable(_) => Some(None),
            _ => None,
        }
    }
}

pub fn describe(e: &ConnectorError) -> String {
    match e {
        ConnectorError::InvalidConfig(m) => format!("invalid configuration: {m}"),
        ConnectorError::Unauthenticated(m) => format!("not authenticated: {m}"),
        ConnectorError::PermissionDenied(m) => format!("permission denied: {m}"),
        ConnectorError::NotFound(m) => format!("not found: {m}"),
        ConnectorError::AlreadyExists(m) => format!("already exists: {m}"),
        ConnectorError::RateLimited(r) => match r.retry_after_ms {
            Some(ms) => format!("rate limited (retry after {ms} ms): {}", r.message),
            None => format!("rate limited: {}", r.message),
        },
        ConnectorError::Unavailable(m) => format!("service unavailable: {m}"),
        ConnectorError::InvalidArgument(m) => format!("invalid argument: {m}"),
        ConnectorError::Unsupported(m) => format!("unsupported: {m}"),
        ConnectorError::Other(m) => m.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bindings::exports::idgov::connector::types::RateLimit;

    #[test]
    fn only_transient_errors_are_retried() {
        let rl = CallError(ConnectorError::RateLimited(RateLimit {
            message: "slow down".into(),
            retry_after_ms: Some(1500),
        }));
        assert_eq!(rl.retry_hint(), Some(Some(Duration::from_millis(1500))));
        assert_eq!(
            CallError(ConnectorError::Unavailable("503".into())).retry_hint(),
            Some(None)
        );
        assert_eq!(
            CallError(ConnectorError::PermissionDenied("no".into())).retry_hint(),
            None
        );
        assert_eq!(
            CallError(ConnectorError::InvalidArgument("no".into())).retry_hint(),
            None
        );
    }
}
