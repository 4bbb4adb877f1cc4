//! The `provisioning` interface, ahead of its implementation: membership changes and account
//! creation come in a later version. Until then every call answers without a request —
//! `permission-denied` when configured read-only (the contract's rule for any write), else
//! `unsupported` with the reason.

use crate::config::Config;
use crate::wit::ConnectorError;

pub fn refuse(action: &str) -> ConnectorError {
    match Config::load() {
        Err(e) => e,
        Ok(config) => refusal(action, config.read_only),
    }
}

fn refusal(action: &str, read_only: bool) -> ConnectorError {
    if read_only {
        ConnectorError::PermissionDenied(format!(
            "{action} refused: the connector is configured read-only; set read-only=false to allow changes"
        ))
    } else {
        ConnectorError::Unsupported(format!(
            "{action} is not supported by this version of the Ironclad connector (it syncs only)"
        ))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    #[test]
    fn read_only_wins_over_unsupported() {
        assert!(matches!(
            refusal("grant", true),
            ConnectorError::PermissionDenied(_)
        ));
        assert!(matches!(
            refusal("grant", false),
            ConnectorError::Unsupported(_)
        ));
    }
}
