//! Each contract version's generated types become the neutral ones, here and
//! only here. The versions share most records field for field, so one macro
//! writes those conversions for all; what differs (resource types and pages,
//! rate budgets) is written per version below.

use sync_store::ids::{EntitlementId, GrantId};
use sync_store::model;

use crate::types::*;

macro_rules! shared_conversions {
    ($($w:ident)::+) => {
        use $($w)::+ as w;
        use super::*;
        pub(crate) use super::identity;

        pub fn error(e: w::ConnectorError) -> ConnectorError {
            match e {
                w::ConnectorError::InvalidConfig(m) => ConnectorError::InvalidConfig(m),
                w::ConnectorError::Unauthenticated(m) => ConnectorError::Unauthenticated(m),
                w::ConnectorError::PermissionDenied(m) => ConnectorError::PermissionDenied(m),
                w::ConnectorError::NotFound(m) => ConnectorError::NotFound(m),
                w::ConnectorError::AlreadyExists(m) => ConnectorError::AlreadyExists(m),
                w::ConnectorError::RateLimited(r) => ConnectorError::RateLimited {
                    message: r.message,
                    retry_after: r.retry_after_ms.map(std::time::Duration::from_millis),
                },
                w::ConnectorError::Unavailable(m) => ConnectorError::Unavailable(m),
                w::ConnectorError::InvalidArgument(m) => ConnectorError::InvalidArgument(m),
                w::ConnectorError::Unsupported(m) => ConnectorError::Unsupported(m),
                w::ConnectorError::Other(m) => ConnectorError::Other(m),
            }
        }

        pub fn id(r: w::ResourceId) -> model::ResourceId {
            model::ResourceId { resource_type: r.resource_type, resource: r.resource }
        }

        pub fn wit_id(r: &model::ResourceId) -> w::ResourceId {
            w::ResourceId { resource_type: r.resource_type.clone(), resource: r.resource.clone() }
        }

        pub fn trait_of(t: w::ResourceTrait) -> model::Trait {
            match t {
                w::ResourceTrait::User => model::Trait::User,
                w::ResourceTrait::Group => model::Trait::Group,
                w::ResourceTrait::Role => model::Trait::Role,
                w::ResourceTrait::App => model::Trait::App,
            }
        }

        fn status_of(s: w::AccountStatus) -> model::AccountStatus {
            match s {
                w::AccountStatus::Enabled => model::AccountStatus::Enabled,
                w::AccountStatus::Disabled => model::AccountStatus::Disabled,
                w::AccountStatus::Deleted => model::AccountStatus::Deleted,
                w::AccountStatus::Unspecified => model::AccountStatus::Unspecified,
            }
        }

        fn purpose_of(p: w::Purpose) -> model::Purpose {
            match p {
                w::Purpose::Assignment => model::Purpose::Assignment,
                w::Purpose::Permission => model::Purpose::Permission,
                w::Purpose::Ownership => model::Purpose::Ownership,
            }
        }

        pub fn resource_type(t: &w::ResourceType) -> model::ResourceType {
            model::ResourceType {
                id: t.id.clone(),
                display_name: t.display_name.clone(),
                traits: t.traits.iter().map(|t| trait_of(*t)).collect(),
                description: t.description.clone(),
            }
        }

        pub fn resource(r: w::Resource) -> model::Resource {
            model::Resource {
                id: id(r.id),
                parent: r.parent.map(id),
                display_name: r.display_name,
                description: r.description,
                user: r.user.map(|u| model::UserTrait {
                    login: u.login,
                    emails: u
                        .emails
                        .into_iter()
                        .map(|e| model::Email { address: e.address, primary: e.primary })
                        .collect(),
                    status: status_of(u.status),
                    given_name: u.given_name,
                    family_name: u.family_name,
                }),
                group: r.group.map(|g| model::GroupTrait { source: g.source }),
                profile: r.profile.into_iter().collect(),
                created_at: r.created_at,
            }
        }

        // Entitlement and grant ids are rebuilt from their parts (escaped
        // as the SDK does): a connector's joined string never decides
        // identity, and ids with `:` in a part cannot collide.
        pub fn entitlement(e: w::Entitlement) -> model::Entitlement {
            let resource = id(e.resource);
            model::Entitlement {
                id: sync_store::ids::canonical_entitlement_id(&resource, &e.id),
                resource,
                slug: e.slug,
                display_name: e.display_name,
                description: e.description,
                purpose: purpose_of(e.purpose),
                grantable_to: e.grantable_to,
            }
        }

        pub fn grant(g: w::Grant) -> model::Grant {
            let principal = id(g.principal);
            let (entitlement, grant_id) =
                sync_store::ids::canonical_grant_ids(&id(g.resource), &g.entitlement, &principal);
            model::Grant { id: grant_id, entitlement, principal }
        }

        pub fn entitlement_page(p: w::EntitlementPage) -> EntitlementPage {
            EntitlementPage {
                items: p.items.into_iter().map(entitlement).collect(),
                next_page_token: p.next_page_token,
            }
        }

        pub fn grant_page(p: w::GrantPage) -> GrantPage {
            GrantPage {
                items: p.items.into_iter().map(grant).collect(),
                next_page_token: p.next_page_token,
            }
        }

        pub fn metadata(m: w::ConnectorMetadata, contract: ContractVersion) -> Metadata {
            let read_only_requests = read_only_requests(&m);
            let rate_budgets = rate_budgets(&m);
            Metadata {
                read_only_requests,
                rate_budgets,
                display_name: m.display_name,
                description: m.description,
                version: m.version,
                contract,
                config_schema: m
                    .config_schema
                    .into_iter()
                    .map(|f| ConfigField {
                        kind: field_kind(&f),
                        name: f.name,
                        description: f.description,
                        required: f.required,
                        secret: f.secret,
                        default: f.default,
                        allowed_values: f.allowed_values,
                    })
                    .collect(),
                account_creation_schema: m
                    .account_creation_schema
                    .into_iter()
                    .map(|f| AccountField {
                        name: f.name,
                        description: f.description,
                        required: f.required,
                    })
                    .collect(),
                outbound_hosts: m.outbound_hosts,
                capabilities: m
                    .capabilities
                    .into_iter()
                    .map(|c| {
                        let f = c.capabilities;
                        let caps = Capabilities {
                            sync: f.contains(w::Capabilities::SYNC),
                            grant: f.contains(w::Capabilities::GRANT),
                            revoke: f.contains(w::Capabilities::REVOKE),
                            create_account: f.contains(w::Capabilities::CREATE_ACCOUNT),
                            delete: f.contains(w::Capabilities::DELETE),
                        };
                        (c.resource_type, caps)
                    })
                    .collect(),
            }
        }

        pub fn entitlement_ref(e: &EntitlementId) -> w::EntitlementRef {
            w::EntitlementRef { id: e.id.clone(), resource: wit_id(&e.resource), slug: e.slug.clone() }
        }

        pub fn grant_record(g: &GrantId) -> w::Grant {
            w::Grant {
                id: g.id.clone(),
                entitlement: g.entitlement.id.clone(),
                resource: wit_id(&g.entitlement.resource),
                principal: wit_id(&g.principal),
            }
        }

        pub fn grant_outcome(o: w::GrantOutcome) -> GrantOutcome {
            match o {
                w::GrantOutcome::Granted(g) => GrantOutcome::Granted(grant(g)),
                w::GrantOutcome::AlreadyGranted => GrantOutcome::AlreadyGranted,
            }
        }

        pub fn revoke_outcome(o: w::RevokeOutcome) -> RevokeOutcome {
            match o {
                w::RevokeOutcome::Revoked => RevokeOutcome::Revoked,
                w::RevokeOutcome::AlreadyRevoked => RevokeOutcome::AlreadyRevoked,
            }
        }

        pub fn account_info(a: &AccountInfo) -> w::AccountInfo {
            w::AccountInfo {
                login: a.login.clone(),
                emails: a
                    .emails
                    .iter()
                    .map(|e| w::Email { address: e.address.clone(), primary: e.primary })
                    .collect(),
                profile: w::AccountProfile {
                    given_name: a.profile.given_name.clone(),
                    family_name: a.profile.family_name.clone(),
                    title: a.profile.title.clone(),
                    department: a.profile.department.clone(),
                },
            }
        }

        pub fn credential_option(c: CredentialOption) -> w::CredentialOption {
            match c {
                CredentialOption::NoPassword => w::CredentialOption::NoPassword,
                CredentialOption::RandomPassword(p) => {
                    w::CredentialOption::RandomPassword(w::RandomPassword {
                        length: p.length,
                        min_lower: p.min_lower,
                        min_upper: p.min_upper,
                        min_digits: p.min_digits,
                        min_special: p.min_special,
                    })
                }
            }
        }

        pub fn create_account_outcome(o: w::CreateAccountOutcome) -> CreateAccountOutcome {
            match o {
                w::CreateAccountOutcome::Created(c) => CreateAccountOutcome::Created(
                    resource(c.resource),
                    c.credential.map(|c| Credential {
                        login: c.login,
                        password: zeroize::Zeroizing::new(c.password),
                    }),
                ),
                w::CreateAccountOutcome::AlreadyExists(r) => {
                    CreateAccountOutcome::AlreadyExists(resource(r))
                }
                w::CreateAccountOutcome::ActionRequired(m) => CreateAccountOutcome::ActionRequired(m),
            }
        }
    };
}

/// `idgov:connector@0.1.0`.
pub mod v0_1 {
    shared_conversions!(crate::bindings::v0_1::exports::idgov::connector::types);

    /// 0.1.0 declares no read-only requests: with provisioning off its
    /// components send GET and HEAD alone.
    fn read_only_requests(_: &w::ConnectorMetadata) -> Vec<String> {
        Vec::new()
    }

    /// 0.1.0 declares no budgets: its components pace themselves.
    fn rate_budgets(_: &w::ConnectorMetadata) -> Vec<DeclaredBudget> {
        Vec::new()
    }

    /// 0.1.0 has no field kinds: every setting is text.
    fn field_kind(_: &w::ConfigField) -> FieldKind {
        FieldKind::Text
    }

    /// 0.1.0 has no hints: every resource may have entitlements and grants.
    pub fn type_infos(types: Vec<w::ResourceType>) -> Vec<TypeInfo> {
        types
            .iter()
            .map(|t| TypeInfo {
                resource_type: resource_type(t),
                has_entitlements: true,
                has_grants: true,
            })
            .collect()
    }

    /// 0.1.0 pages never carry entitlements or grants.
    pub fn resource_page(p: w::ResourcePage) -> ResourcePage {
        ResourcePage {
            items: p.items.into_iter().map(resource).collect(),
            next_page_token: p.next_page_token,
            total_hint: p.total_hint,
            included: None,
        }
    }
}

/// What 0.2.0 added (field kinds, read-only requests, per-type hints, bulk
/// pages), shared by every version since.
macro_rules! since_v0_2 {
    () => {
        fn read_only_requests(m: &w::ConnectorMetadata) -> Vec<String> {
            m.read_only_requests.clone()
        }

        fn field_kind(f: &w::ConfigField) -> FieldKind {
            match f.kind {
                w::FieldKind::Text => FieldKind::Text,
                w::FieldKind::Origin => FieldKind::Origin,
            }
        }

        pub fn type_infos(types: Vec<w::ResourceType>) -> Vec<TypeInfo> {
            types
                .iter()
                .map(|t| TypeInfo {
                    resource_type: resource_type(t),
                    has_entitlements: t.has_entitlements,
                    has_grants: t.has_grants,
                })
                .collect()
        }

        pub fn resource_page(p: w::ResourcePage) -> ResourcePage {
            ResourcePage {
                items: p.items.into_iter().map(resource).collect(),
                next_page_token: p.next_page_token,
                total_hint: p.total_hint,
                included: p.included.map(|i| Included {
                    entitlements: i.entitlements.into_iter().map(entitlement).collect(),
                    grants: i.grants.into_iter().map(grant).collect(),
                    pending: i.pending.into_iter().map(id).collect(),
                }),
            }
        }
    };
}

/// `idgov:connector@0.2.0`.
pub mod v0_2 {
    shared_conversions!(crate::bindings::v0_2::exports::idgov::connector::types);
    since_v0_2!();

    /// 0.2.0 declares no budgets: its components pace themselves.
    fn rate_budgets(_: &w::ConnectorMetadata) -> Vec<DeclaredBudget> {
        Vec::new()
    }
}

/// `idgov:connector@0.3.0`.
pub mod v0_3 {
    shared_conversions!(crate::bindings::v0_3::exports::idgov::connector::types);
    since_v0_2!();

    fn rate_budgets(m: &w::ConnectorMetadata) -> Vec<DeclaredBudget> {
        m.rate_budgets
            .iter()
            .map(|b| DeclaredBudget {
                name: b.name.clone(),
                requests: b.requests.clone(),
                limit: b.limit,
                window: std::time::Duration::from_millis(u64::from(b.window_ms)),
                limit_setting: b.limit_setting.clone(),
            })
            .collect()
    }
}

/// For answers that need no conversion.
pub(crate) fn identity<T>(t: T) -> T {
    t
}
