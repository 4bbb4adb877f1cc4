//! The sync data model: what a connector reports (resource types,
//! resources, entitlements, grants) and what a sync counted. It is also the
//! JSON output document (snake_case), so every enum serializes as the word
//! people read in that file.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// One sync, whole: what a reader loads and the JSON output's document
/// (its fields in this order).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SyncOutput {
    /// The connector that ran the sync.
    pub connector: ConnectorInfo,
    /// The resource types, as the connector declared them.
    pub resource_types: Vec<ResourceType>,
    /// Users, groups, … in the order they were listed.
    pub resources: Vec<Resource>,
    /// What can be granted, each on its resource.
    pub entitlements: Vec<Entitlement>,
    /// Who holds which entitlement.
    pub grants: Vec<Grant>,
    /// What the sync counted.
    pub stats: Stats,
}

/// The connector a sync ran, as its metadata names it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConnectorInfo {
    /// E.g. `Ironclad`.
    pub display_name: String,
    /// The connector's own version.
    pub version: String,
}

/// A kind of resource (`user`, `group`, …).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResourceType {
    /// The type id, the first part of its resources' ids.
    pub id: String,
    /// The name people read.
    pub display_name: String,
    /// What the governance platform treats it as.
    pub traits: Vec<Trait>,
    /// Free text; empty when none.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
}

/// A resource's identity: its type and its id in the application
/// (`TYPE:ID` in baton's notation, see [`crate::ids`]).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ResourceId {
    /// The resource type's id.
    pub resource_type: String,
    /// The application's id for the record.
    pub resource: String,
}

/// A user, group or other record of the application.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Resource {
    /// Its type and id.
    pub id: ResourceId,
    /// The resource it belongs to, for nested types.
    pub parent: Option<ResourceId>,
    /// The name people read.
    pub display_name: String,
    /// Free text, when the application has some.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Set on resources of a type with the user trait.
    pub user: Option<UserTrait>,
    /// Set on resources of a type with the group trait.
    pub group: Option<GroupTrait>,
    /// Other attributes, as text.
    pub profile: BTreeMap<String, String>,
    /// RFC 3339, when the application created it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_at: Option<String>,
}

/// What makes a resource a user account.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserTrait {
    /// The name the user signs in with.
    pub login: String,
    /// Addresses; at most one is primary.
    pub emails: Vec<Email>,
    /// Whether the account can be used.
    pub status: AccountStatus,
    /// First name.
    pub given_name: Option<String>,
    /// Last name.
    pub family_name: Option<String>,
}

/// One of a user's email addresses.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Email {
    /// The address.
    pub address: String,
    /// The one the application treats as the user's own.
    pub primary: bool,
}

/// What makes a resource a group.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupTrait {
    /// Where the group comes from (e.g. `external`: an identity provider
    /// pushes it), when the application says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
}

/// Something that can be granted on a resource (a group's membership, …).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entitlement {
    /// `TYPE:ID:SLUG`, escaped as [`crate::ids`] says.
    pub id: String,
    /// The resource it belongs to.
    pub resource: ResourceId,
    /// The last part of the id (e.g. `member`).
    pub slug: String,
    /// The name people read.
    pub display_name: String,
    /// Free text; empty when none.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    /// Why it exists.
    pub purpose: Purpose,
    /// The resource types it can be granted to.
    pub grantable_to: Vec<String>,
}

/// An entitlement held by a principal (a user's group membership, …).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grant {
    /// `TYPE:ID:SLUG:PRINCIPAL_TYPE:PRINCIPAL_ID`, escaped as [`crate::ids`] says.
    pub id: String,
    /// The entitlement's id.
    pub entitlement: String,
    /// Who holds it.
    pub principal: ResourceId,
}

/// What a sync counted.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stats {
    /// Resources kept, by type (types with none are absent).
    pub resources: BTreeMap<String, u64>,
    /// Entitlements kept.
    pub entitlements: u64,
    /// Grants kept.
    pub grants: u64,
    /// HTTP requests the connector made.
    pub http_requests: u64,
    /// Requests retried (rate limits, unavailable).
    pub retries: u64,
    /// Records listed more than once (paging under churn), kept once.
    pub duplicates_skipped: u64,
    /// Milliseconds spent fetching.
    pub elapsed_ms: u64,
    /// RFC 3339, when the sync started.
    pub started_at: String,
    /// Resource types whose count the application reported differently
    /// while the sync paged through them: records were created or deleted
    /// meanwhile, and a later sync will catch what this one missed.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub totals_moved: BTreeMap<String, TotalMoved>,
}

/// A resource type's total as the application reported it on the first
/// and on the last page.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TotalMoved {
    /// On the first page.
    pub first: u64,
    /// On the last page.
    pub last: u64,
}

/// What kind of thing a resource type is, for the governance platform.
/// `Secret` and `Unspecified` only come from files other tools wrote.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Trait {
    /// User accounts.
    User,
    /// Groups of principals.
    Group,
    /// Roles.
    Role,
    /// Applications.
    App,
    /// Secrets (API keys, …).
    Secret,
    /// None given.
    Unspecified,
}

/// Whether a user account can be used.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AccountStatus {
    /// Active.
    Enabled,
    /// Suspended or deactivated.
    Disabled,
    /// Gone from the application.
    Deleted,
    /// Not known (other tools' files).
    Unspecified,
}

/// Why an entitlement exists; `Unspecified` only comes from other tools' files.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Purpose {
    /// Membership or assignment (a group's `member`).
    Assignment,
    /// A permission.
    Permission,
    /// Ownership of the resource.
    Ownership,
    /// None given.
    Unspecified,
}

impl Trait {
    /// The word used in JSON and tables.
    pub fn name(self) -> &'static str {
        match self {
            Trait::User => "user",
            Trait::Group => "group",
            Trait::Role => "role",
            Trait::App => "app",
            Trait::Secret => "secret",
            Trait::Unspecified => "unspecified",
        }
    }
}

impl AccountStatus {
    /// The word used in JSON and tables.
    pub fn name(self) -> &'static str {
        match self {
            AccountStatus::Enabled => "enabled",
            AccountStatus::Disabled => "disabled",
            AccountStatus::Deleted => "deleted",
            AccountStatus::Unspecified => "unspecified",
        }
    }
}

impl Purpose {
    /// The word used in JSON and tables.
    pub fn name(self) -> &'static str {
        match self {
            Purpose::Assignment => "assignment",
            Purpose::Permission => "permission",
            Purpose::Ownership => "ownership",
            Purpose::Unspecified => "unspecified",
        }
    }
}

impl std::fmt::Display for ResourceId {
    /// `TYPE:ID`, the baton form.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.resource_type, self.resource)
    }
}
