//! What a connector says, in types that do not depend on the contract
//! version it was built for. Rows use the `sync-store` model; the rest
//! (metadata, pages, provisioning outcomes, errors) is defined here.

use std::time::Duration;

use sync_store::model::{Entitlement, Grant, Resource, ResourceId, ResourceType};
use zeroize::Zeroizing;

/// A contract version this runtime runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ContractVersion {
    /// `idgov:connector@0.1.0`.
    V0_1,
    /// `idgov:connector@0.2.0`.
    V0_2,
    /// `idgov:connector@0.3.0`.
    V0_3,
}

impl ContractVersion {
    /// Every version this runtime runs, oldest first.
    pub const SUPPORTED: [ContractVersion; 3] = [
        ContractVersion::V0_1,
        ContractVersion::V0_2,
        ContractVersion::V0_3,
    ];

    /// `0.1.0`, `0.2.0`, `0.3.0`.
    pub fn as_str(self) -> &'static str {
        match self {
            ContractVersion::V0_1 => "0.1.0",
            ContractVersion::V0_2 => "0.2.0",
            ContractVersion::V0_3 => "0.3.0",
        }
    }

    /// Every supported version for a sentence: "0.1.0, 0.2.0 and 0.3.0".
    pub fn listed() -> String {
        let all: Vec<&str> = Self::SUPPORTED.iter().map(|v| v.as_str()).collect();
        match all.split_last() {
            Some((last, [])) => last.to_string(),
            Some((last, rest)) => format!("{} and {last}", rest.join(", ")),
            None => String::new(),
        }
    }

    /// The version of an export name's package (`…@0.2.0`): same major and
    /// minor (pre-1.0, the minor is the breaking part).
    pub fn of_package_version(version: &str) -> Option<ContractVersion> {
        let major_minor: Vec<&str> = version.split('.').take(2).collect();
        ContractVersion::SUPPORTED.into_iter().find(|v| {
            v.as_str()
                .split('.')
                .take(2)
                .eq(major_minor.iter().copied())
        })
    }
}

impl std::fmt::Display for ContractVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One setting a connector takes through `wasi:config`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigField {
    /// Kebab-case name; also read from `BATON_<NAME>`.
    pub name: String,
    /// What it is, for people.
    pub description: String,
    /// Whether a sync can start without it.
    pub required: bool,
    /// Never logged, printed or echoed.
    pub secret: bool,
    /// The value used when none is given.
    pub default: Option<String>,
    /// The only values accepted; empty means any.
    pub allowed_values: Vec<String>,
    /// What the value is (0.1.0 fields are all text).
    pub kind: FieldKind,
}

/// What a setting's value is, for the host.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum FieldKind {
    /// Text the connector interprets itself.
    #[default]
    Text,
    /// An origin the connector calls: setting it grants that origin.
    Origin,
}

impl FieldKind {
    /// `text` or `origin`, as in the contract.
    pub fn name(self) -> &'static str {
        match self {
            FieldKind::Text => "text",
            FieldKind::Origin => "origin",
        }
    }
}

/// What a host may ask of one resource type.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Capabilities {
    /// Its resources are listed by a sync.
    pub sync: bool,
    /// Its entitlements can be granted.
    pub grant: bool,
    /// Its grants can be revoked.
    pub revoke: bool,
    /// Accounts of this type can be created.
    pub create_account: bool,
    /// Its resources can be deleted.
    pub delete: bool,
}

impl Capabilities {
    /// The names of the capabilities set, in a fixed order.
    pub fn names(self) -> Vec<&'static str> {
        [
            (self.sync, "sync"),
            (self.grant, "grant"),
            (self.revoke, "revoke"),
            (self.create_account, "create_account"),
            (self.delete, "delete"),
        ]
        .into_iter()
        .filter_map(|(on, name)| on.then_some(name))
        .collect()
    }
}

/// One field of the form a person fills to create an account.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccountField {
    /// Field name.
    pub name: String,
    /// What it is.
    pub description: String,
    /// Whether it must be given.
    pub required: bool,
}

/// A connector's static description.
#[derive(Clone, Debug)]
pub struct Metadata {
    /// The application's name, e.g. "Ironclad".
    pub display_name: String,
    /// One paragraph on what the connector does.
    pub description: String,
    /// The connector's own version.
    pub version: String,
    /// The contract version the component was built for.
    pub contract: ContractVersion,
    /// Its settings.
    pub config_schema: Vec<ConfigField>,
    /// What `create-account` needs.
    pub account_creation_schema: Vec<AccountField>,
    /// Static outbound patterns (see [`crate::egress`]); under 0.1.0
    /// free text, used where it parses as a pattern.
    pub outbound_hosts: Vec<String>,
    /// Per resource type, what may be asked.
    pub capabilities: Vec<(String, Capabilities)>,
    /// Requests that change nothing although not GET or HEAD (`METHOD
    /// /path`), let through while provisioning is off (see
    /// [`crate::egress`]); none under 0.1.0.
    pub read_only_requests: Vec<String>,
    /// The application's rate budgets, for the host to enforce (see
    /// [`crate::rate`]); none before 0.3.0.
    pub rate_budgets: Vec<DeclaredBudget>,
}

/// A rate budget as the connector declared it (contract 0.3.0): at most
/// `limit` requests of those it covers in any `window`. Checked when a
/// connector is opened ([`crate::rate::Budgets::plan`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeclaredBudget {
    /// Its name, e.g. "users".
    pub name: String,
    /// What it covers, each `METHOD /path` (`*` for any method).
    pub requests: Vec<String>,
    /// Requests allowed in any window.
    pub limit: u32,
    /// The window's length.
    pub window: Duration,
    /// The setting through which the operator may lower `limit`.
    pub limit_setting: Option<String>,
}

/// A resource type and what the sync needs to ask about its resources.
#[derive(Clone, Debug)]
pub struct TypeInfo {
    /// The type as it goes into the output.
    pub resource_type: ResourceType,
    /// False: no resource of this type has entitlements (never asked).
    pub has_entitlements: bool,
    /// False: no resource of this type has grants (never asked).
    pub has_grants: bool,
}

/// Entitlements and grants that came with a resource page.
#[derive(Clone, Debug, Default)]
pub struct Included {
    /// Every entitlement of the page's items not in `pending`.
    pub entitlements: Vec<Entitlement>,
    /// Every grant on those entitlements.
    pub grants: Vec<Grant>,
    /// Items to ask about one by one.
    pub pending: Vec<ResourceId>,
}

/// One page of resources.
#[derive(Clone, Debug)]
pub struct ResourcePage {
    /// The resources.
    pub items: Vec<Resource>,
    /// None ends the listing.
    pub next_page_token: Option<String>,
    /// The application's count of this type, when it said.
    pub total_hint: Option<u64>,
    /// Entitlements and grants of the items, when the connector had them.
    pub included: Option<Included>,
}

/// One page of entitlements.
#[derive(Clone, Debug)]
pub struct EntitlementPage {
    /// The entitlements.
    pub items: Vec<Entitlement>,
    /// None ends the listing.
    pub next_page_token: Option<String>,
}

/// One page of grants.
#[derive(Clone, Debug)]
pub struct GrantPage {
    /// The grants.
    pub items: Vec<Grant>,
    /// None ends the listing.
    pub next_page_token: Option<String>,
}

/// A connector's typed error.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ConnectorError {
    /// The configuration is wrong or incomplete.
    #[error("invalid configuration: {0}")]
    InvalidConfig(String),
    /// The credentials were refused.
    #[error("not authenticated: {0}")]
    Unauthenticated(String),
    /// The credentials lack a permission.
    #[error("permission denied: {0}")]
    PermissionDenied(String),
    /// The thing asked about does not exist.
    #[error("not found: {0}")]
    NotFound(String),
    /// The thing to create exists.
    #[error("already exists: {0}")]
    AlreadyExists(String),
    /// The application asked the caller to slow down.
    #[error("{}", rate_limited(.message, *.retry_after))]
    RateLimited {
        /// The application's words.
        message: String,
        /// How long it asked the caller to wait, when it said.
        retry_after: Option<Duration>,
    },
    /// The application is down or unreachable for now.
    #[error("service unavailable: {0}")]
    Unavailable(String),
    /// The host passed something the connector cannot use.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// The connector cannot do this.
    #[error("unsupported: {0}")]
    Unsupported(String),
    /// Anything else, in the connector's words.
    #[error("{0}")]
    Other(String),
}

fn rate_limited(message: &str, retry_after: Option<Duration>) -> String {
    match retry_after {
        Some(d) => format!("rate limited (retry after {} ms): {message}", d.as_millis()),
        None => format!("rate limited: {message}"),
    }
}

impl ConnectorError {
    /// Rate limits and outages pass; everything else needs a person.
    /// `Some(wait)` means retry, no sooner than `wait` when given.
    pub fn retry_hint(&self) -> Option<Option<Duration>> {
        match self {
            ConnectorError::RateLimited { retry_after, .. } => Some(*retry_after),
            ConnectorError::Unavailable(_) => Some(None),
            _ => None,
        }
    }
}

/// The result of `grant`.
#[derive(Clone, Debug)]
pub enum GrantOutcome {
    /// The grant now exists.
    Granted(Grant),
    /// Nothing changed: the principal had it.
    AlreadyGranted,
}

/// The result of `revoke`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RevokeOutcome {
    /// The grant is gone.
    Revoked,
    /// Nothing changed: the principal did not have it.
    AlreadyRevoked,
}

/// Profile attributes of a new account.
#[derive(Clone, Debug, Default)]
pub struct AccountProfile {
    /// Given name.
    pub given_name: Option<String>,
    /// Family name.
    pub family_name: Option<String>,
    /// Job title.
    pub title: Option<String>,
    /// Department.
    pub department: Option<String>,
}

/// A new account.
#[derive(Clone, Debug)]
pub struct AccountInfo {
    /// The login (often the email).
    pub login: String,
    /// Emails, the primary one marked.
    pub emails: Vec<sync_store::model::Email>,
    /// Profile attributes.
    pub profile: AccountProfile,
}

/// What a generated password must contain.
#[derive(Clone, Copy, Debug)]
pub struct RandomPassword {
    /// Total length (a connector may raise it).
    pub length: u32,
    /// Lower-case letters at least.
    pub min_lower: u32,
    /// Upper-case letters at least.
    pub min_upper: u32,
    /// Digits at least.
    pub min_digits: u32,
    /// Special characters at least.
    pub min_special: u32,
}

/// How the new account authenticates.
#[derive(Clone, Copy, Debug)]
pub enum CredentialOption {
    /// A password generated inside the component.
    RandomPassword(RandomPassword),
    /// None (the application signs in elsewhere).
    NoPassword,
}

/// A secret created for an account: vault it, never show it. The password
/// is wiped from memory when this drops.
pub struct Credential {
    /// The account's login.
    pub login: String,
    /// The password.
    pub password: Zeroizing<String>,
}

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Credential({}, [hidden])", self.login)
    }
}

/// The result of `create-account`.
#[derive(Debug)]
pub enum CreateAccountOutcome {
    /// Created; the credential when one was generated.
    Created(Resource, Option<Credential>),
    /// It was there already; nothing changed.
    AlreadyExists(Resource),
    /// A person must finish (the message says what).
    ActionRequired(String),
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn only_transient_errors_are_retried() {
        let rl = ConnectorError::RateLimited {
            message: "slow down".into(),
            retry_after: Some(Duration::from_millis(1500)),
        };
        assert_eq!(rl.retry_hint(), Some(Some(Duration::from_millis(1500))));
        assert_eq!(
            rl.to_string(),
            "rate limited (retry after 1500 ms): slow down"
        );
        assert_eq!(
            ConnectorError::Unavailable("503".into()).retry_hint(),
            Some(None)
        );
        assert_eq!(
            ConnectorError::PermissionDenied("no".into()).retry_hint(),
            None
        );
        assert_eq!(
            ConnectorError::InvalidArgument("no".into()).retry_hint(),
            None
        );
    }

    #[test]
    fn versions_match_on_major_and_minor() {
        assert_eq!(
            ContractVersion::of_package_version("0.1.0"),
            Some(ContractVersion::V0_1)
        );
        assert_eq!(
            ContractVersion::of_package_version("0.2.3"),
            Some(ContractVersion::V0_2)
        );
        assert_eq!(
            ContractVersion::of_package_version("0.3.0"),
            Some(ContractVersion::V0_3)
        );
        assert_eq!(ContractVersion::of_package_version("0.4.0"), None);
        assert_eq!(ContractVersion::of_package_version(""), None);
    }
}
