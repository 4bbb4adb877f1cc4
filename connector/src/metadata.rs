//! What the connector says about itself without any configuration: its settings, the hosts it
//! may talk to, and the resource types it offers.

use crate::config::{
    AS_USER_EMAIL, AS_USER_ID, BASE_URL, CLIENT_ID, CLIENT_SECRET, DEFAULT_ENVIRONMENT,
    ENVIRONMENT, ENVIRONMENTS, GROUPS_PER_MINUTE, READ_ONLY, READ_ONLY_VALUES, USERS_PER_MINUTE,
    USER_WRITES_PER_MINUTE,
};
use crate::mapping::{GROUP, USER};
use crate::wit::{
    AccountField, Capabilities, ConfigField, ConnectorMetadata, FieldKind, RateBudget,
    ResourceCapabilities, ResourceTrait, ResourceType,
};

/// Ironclad's documented budgets, requests per minute (API.md, "Rate limits").
const DEFAULT_USERS_PER_MINUTE: u32 = 600;
const DEFAULT_USER_WRITES_PER_MINUTE: u32 = 50;
const DEFAULT_GROUPS_PER_MINUTE: u32 = 600;
const DEFAULT_OTHER_PER_MINUTE: u32 = 800;
const MINUTE_MS: u32 = 60_000;

/// Ironclad's per-company budgets, for the host to enforce. A request counts against the first
/// that covers it, so user writes come before the user budget that covers every other method.
/// Ironclad's table writes `scim/v2/users*` in lower case; the host matches paths ignoring case.
fn rate_budgets() -> Vec<RateBudget> {
    let budget = |name: &str, requests: &[&str], limit: u32, setting: Option<&str>| RateBudget {
        name: name.to_owned(),
        requests: requests.iter().map(|r| (*r).to_owned()).collect(),
        limit,
        window_ms: MINUTE_MS,
        limit_setting: setting.map(str::to_owned),
    };
    vec![
        budget(
            "user-writes",
            &["PATCH /scim/v2/Users", "DELETE /scim/v2/Users"],
            DEFAULT_USER_WRITES_PER_MINUTE,
            Some(USER_WRITES_PER_MINUTE),
        ),
        budget(
            "users",
            &["* /scim/v2/Users"],
            DEFAULT_USERS_PER_MINUTE,
            Some(USERS_PER_MINUTE),
        ),
        budget(
            "groups",
            &["* /scim/v2/Groups"],
            DEFAULT_GROUPS_PER_MINUTE,
            Some(GROUPS_PER_MINUTE),
        ),
        // Every other API, the OAuth token exchange included.
        budget("other", &["* /"], DEFAULT_OTHER_PER_MINUTE, None),
    ]
}

fn field(name: &str, description: &str) -> ConfigField {
    ConfigField {
        name: name.to_owned(),
        description: description.to_owned(),
        required: false,
        secret: false,
        default: None,
        allowed_values: Vec::new(),
        kind: FieldKind::Text,
    }
}

pub fn config_schema() -> Vec<ConfigField> {
    vec![
        ConfigField {
            required: true,
            ..field(
                CLIENT_ID,
                "Client id of the Ironclad OAuth app (client-credentials grant), from Ironclad's API settings.",
            )
        },
        ConfigField {
            required: true,
            secret: true,
            ..field(
                CLIENT_SECRET,
                "Client secret of that OAuth app, shown once when the app was created.",
            )
        },
        field(
            AS_USER_EMAIL,
            "Email of the Ironclad user the connector acts as (an admin, for provisioning). One of as-user-email or as-user-id is required; email wins when both are set.",
        ),
        field(
            AS_USER_ID,
            "Ironclad id of the user the connector acts as, when as-user-email is not set.",
        ),
        ConfigField {
            default: Some(DEFAULT_ENVIRONMENT.to_owned()),
            allowed_values: ENVIRONMENTS.iter().map(|e| (*e).to_owned()).collect(),
            ..field(
                ENVIRONMENT,
                "Ironclad environment the OAuth app was registered in: it selects https://{environment}.ironcladapp.com.",
            )
        },
        // An origin field: setting it is the operator's grant to reach that
        // origin, so the host needs no Ironclad knowledge to allow it.
        ConfigField {
            kind: FieldKind::Origin,
            ..field(
                BASE_URL,
                "Origin to use instead of the environment's (a separate sandbox, a test server), e.g. https://sandbox.example.com. No path. Setting it grants the connector that origin.",
            )
        },
        ConfigField {
            default: Some("false".to_owned()),
            allowed_values: READ_ONLY_VALUES.iter().map(|v| (*v).to_owned()).collect(),
            ..field(
                READ_ONLY,
                "Ask Ironclad only for the read scopes (scim.users.readUsers, scim.groups.readGroups) and refuse every change (grant, revoke, create-account). When false the connector also asks scim.groups.updateGroups and scim.users.createUsers.",
            )
        },
        per_minute_field(
            USERS_PER_MINUTE,
            DEFAULT_USERS_PER_MINUTE,
            "Lowers the budget on GET/POST/PUT /scim/v2/Users requests (budget `users`), per minute: a whole number from 1 to Ironclad's 600. The host enforces it across all of the tenant's instances. Lower it when other tools share the company's budget or in the demo environment.",
        ),
        per_minute_field(
            GROUPS_PER_MINUTE,
            DEFAULT_GROUPS_PER_MINUTE,
            "Lowers the budget on /scim/v2/Groups requests (listings and membership changes; budget `groups`), per minute: a whole number from 1 to Ironclad's 600. The host enforces it.",
        ),
        per_minute_field(
            USER_WRITES_PER_MINUTE,
            DEFAULT_USER_WRITES_PER_MINUTE,
            "Lowers the budget on PATCH/DELETE /scim/v2/Users requests (budget `user-writes`), per minute: a whole number from 1 to Ironclad's 50. The host enforces it.",
        ),
    ]
}

/// A setting that lowers one of the budgets below: the host checks and enforces it.
fn per_minute_field(name: &str, default: u32, description: &str) -> ConfigField {
    ConfigField {
        default: Some(default.to_string()),
        ..field(name, description)
    }
}

fn account_field(name: &str, required: bool, description: &str) -> AccountField {
    AccountField {
        name: name.to_owned(),
        description: description.to_owned(),
        required,
    }
}

/// What a person fills in to create an Ironclad account.
pub fn account_creation_schema() -> Vec<AccountField> {
    vec![
        account_field(
            "email",
            true,
            "The new user's work email: it becomes their Ironclad login (userName) and primary email.",
        ),
        account_field("given-name", true, "The new user's given (first) name."),
        account_field("family-name", true, "The new user's family (last) name."),
        account_field("title", false, "Job title, shown in Ironclad."),
        account_field(
            "department",
            false,
            "Department (the SCIM enterprise extension's department).",
        ),
    ]
}

pub fn metadata() -> ConnectorMetadata {
    ConnectorMetadata {
        display_name: "Ironclad".to_owned(),
        description: "Syncs Ironclad users, groups and group memberships through Ironclad's SCIM API, with an OAuth client-credentials app acting as an Ironclad user; grants and revokes group membership and creates accounts (never deletes users).".to_owned(),
        version: env!("CARGO_PKG_VERSION").to_owned(),
        config_schema: config_schema(),
        account_creation_schema: account_creation_schema(),
        // The static grant; base-url is an origin field, so it needs no entry.
        outbound_hosts: vec!["https://{environment}.ironcladapp.com".to_owned()],
        // The client-credentials exchange: a POST that changes nothing.
        read_only_requests: vec!["POST /oauth/token".to_owned()],
        rate_budgets: rate_budgets(),
        capabilities: vec![
            // Users are created, never deleted (see `provisioning::NO_DEPROVISIONING`).
            ResourceCapabilities {
                resource_type: USER.to_owned(),
                capabilities: Capabilities::SYNC | Capabilities::CREATE_ACCOUNT,
            },
            ResourceCapabilities {
                resource_type: GROUP.to_owned(),
                capabilities: Capabilities::SYNC | Capabilities::GRANT | Capabilities::REVOKE,
            },
        ],
    }
}

/// Users own nothing (they receive grants, on groups), so the host never asks for theirs; a
/// group's entitlement and grants come with the page that lists it.
pub fn resource_types() -> Vec<ResourceType> {
    vec![
        ResourceType {
            id: USER.to_owned(),
            display_name: "User".to_owned(),
            traits: vec![ResourceTrait::User],
            description: "An Ironclad user account".to_owned(),
            has_entitlements: false,
            has_grants: false,
        },
        ResourceType {
            id: GROUP.to_owned(),
            display_name: "Group".to_owned(),
            traits: vec![ResourceTrait::Group],
            description: "An Ironclad group; membership is its entitlement".to_owned(),
            has_entitlements: true,
            has_grants: true,
        },
    ]
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    #[test]
    fn schema_marks_the_secret_and_the_choices() {
        let schema = config_schema();
        let get = |n: &str| schema.iter().find(|f| f.name == n).unwrap();
        assert!(get("ic-client-secret").secret && get("ic-client-secret").required);
        assert!(get("ic-client-id").required && !get("ic-client-id").secret);
        assert_eq!(schema.iter().filter(|f| f.secret).count(), 1);
        assert_eq!(get("environment").default.as_deref(), Some("na1"));
        assert_eq!(get("environment").allowed_values, ["na1", "eu1", "demo"]);
        assert_eq!(get("read-only").default.as_deref(), Some("false"));
        assert!(get("read-only").allowed_values.contains(&"yes".to_owned()));
        for (name, default) in [
            ("users-requests-per-minute", "600"),
            ("groups-requests-per-minute", "600"),
            ("user-writes-per-minute", "50"),
        ] {
            let f = get(name);
            assert_eq!(f.default.as_deref(), Some(default), "{name}");
            assert!(
                !f.required && !f.secret && f.allowed_values.is_empty(),
                "{name}"
            );
            assert!(f.description.contains("per minute"), "{name}");
        }
    }

    #[test]
    fn metadata_offers_sync_membership_changes_and_account_creation() {
        let m = metadata();
        assert_eq!(m.display_name, "Ironclad");
        assert_eq!(m.version, env!("CARGO_PKG_VERSION"));
        let caps = |t: &str| {
            m.capabilities
                .iter()
                .find(|c| c.resource_type == t)
                .unwrap()
                .capabilities
        };
        assert_eq!(m.capabilities.len(), 2);
        assert_eq!(
            caps("user"),
            Capabilities::SYNC | Capabilities::CREATE_ACCOUNT
        );
        assert!(!caps("user").contains(Capabilities::DELETE));
        assert_eq!(
            caps("group"),
            Capabilities::SYNC | Capabilities::GRANT | Capabilities::REVOKE
        );
        let fields: Vec<_> = m
            .account_creation_schema
            .iter()
            .map(|f| (f.name.as_str(), f.required))
            .collect();
        assert_eq!(
            fields,
            [
                ("email", true),
                ("given-name", true),
                ("family-name", true),
                ("title", false),
                ("department", false),
            ]
        );
        assert!(m
            .account_creation_schema
            .iter()
            .all(|f| !f.description.is_empty()));
        let ids: Vec<_> = resource_types().into_iter().map(|t| t.id).collect();
        assert_eq!(ids, ["user", "group"]);
    }

    #[test]
    fn only_groups_have_entitlements_and_grants() {
        let types: Vec<_> = resource_types()
            .into_iter()
            .map(|t| (t.id, t.has_entitlements, t.has_grants))
            .collect();
        assert_eq!(
            types,
            [
                ("user".to_owned(), false, false),
                ("group".to_owned(), true, true),
            ]
        );
    }
}
