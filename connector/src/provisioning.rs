//! The `provisioning` interface: group membership (grant / revoke) and account creation.
//!
//! Every write loads the settings first and, when configured read-only, refuses before any
//! request. Arguments are checked before anything is sent. Grant and revoke read the group first
//! (Ironclad does not document what adding a member twice or removing a non-member answers), so
//! "already granted" / "already revoked" are reported without writing. Deleting users is never
//! done: Ironclad asks customers to go through its support.

use crate::client::{self, Ironclad, MemberOp};
use crate::config::Config;
use crate::errors::{ironclad_words_within, truncate};
use crate::http::Reply;
use crate::mapping::{self, GROUP, MEMBER, USER};
use crate::password::{self, Password, Policy, WasiRandom};
use crate::scim::{
    NewEmail, NewEnterprise, NewName, NewUser, User, ENTERPRISE_USER_SCHEMA, USER_SCHEMA,
};
use crate::state;
use crate::wit::{
    AccountCreated, AccountInfo, ConnectorError, CreateAccountOutcome, Credential,
    CredentialOption, EntitlementRef, Grant, GrantOutcome, Resource, ResourceId, RevokeOutcome,
};

/// Why users are never deleted; the whole message of `delete-resource` for users.
pub const NO_DEPROVISIONING: &str = "deleting an Ironclad user removes them from the company and reassigns their workflows; Ironclad asks customers to contact its support first, so this connector does not deprovision";

/// Ironclad's reasons for refusing a new user can spell out its password rule (~200
/// characters): quoted whole up to this.
const CREATE_REFUSAL_LIMIT: usize = 1000;

const USERS_ENDPOINT: &str = "POST /scim/v2/Users";

/// The settings, when they allow changes.
fn writable(action: &str) -> Result<Config, ConnectorError> {
    let config = Config::load()?;
    refuse_if_read_only(action, config.read_only)?;
    Ok(config)
}

fn refuse_if_read_only(action: &str, read_only: bool) -> Result<(), ConnectorError> {
    if read_only {
        return Err(ConnectorError::PermissionDenied(format!(
            "{action} refused: the connector is configured read-only (read-only=true) and changes nothing in Ironclad; set read-only=false to allow changes"
        )));
    }
    Ok(())
}

// ------------------------------------------------------------------ membership

/// One user's membership of one group: what grant and revoke change.
#[derive(Debug, PartialEq, Eq)]
struct Membership {
    group: String,
    user: String,
}

fn unknown_type(what: &str, kind: &str) -> ConnectorError {
    ConnectorError::InvalidArgument(format!(
        "unknown {what} type '{}': this connector has 'user' and 'group'",
        truncate(kind)
    ))
}

/// The group owning the entitlement: only groups have one (membership).
fn entitlement_group(owner: &ResourceId, action: &str) -> Result<String, ConnectorError> {
    match owner.resource_type.as_str() {
        GROUP if owner.resource.is_empty() => Err(ConnectorError::InvalidArgument(format!(
            "{action}: the entitlement's group id is empty"
        ))),
        GROUP => Ok(owner.resource.clone()),
        USER => Err(ConnectorError::Unsupported(format!(
            "{action}: Ironclad users have no entitlements; only group membership (group:<group id>:member) can be granted or revoked"
        ))),
        other => Err(unknown_type("resource", other)),
    }
}

/// The principal: Ironclad groups hold users only.
fn principal_user(principal: &ResourceId, action: &str) -> Result<String, ConnectorError> {
    match principal.resource_type.as_str() {
        USER if principal.resource.is_empty() => Err(ConnectorError::InvalidArgument(format!(
            "{action}: the principal's user id is empty"
        ))),
        USER => Ok(principal.resource.clone()),
        GROUP => Err(ConnectorError::Unsupported(format!(
            "{action}: Ironclad groups hold users only; a group cannot be a member of another group"
        ))),
        other => Err(unknown_type("principal", other)),
    }
}

fn membership_to_grant(
    principal: &ResourceId,
    entitlement: &EntitlementRef,
) -> Result<Membership, ConnectorError> {
    let group = entitlement_group(&entitlement.resource, "grant")?;
    if entitlement.slug != MEMBER {
        return Err(ConnectorError::InvalidArgument(format!(
            "grant: Ironclad groups have one entitlement, '{MEMBER}'; '{}' is not one",
            truncate(&entitlement.slug)
        )));
    }
    let expected = mapping::member_entitlement_id(&group);
    if !entitlement.id.is_empty() && entitlement.id != expected {
        return Err(ConnectorError::InvalidArgument(format!(
            "grant: entitlement id '{}' does not match its resource and slug ({})",
            truncate(&entitlement.id),
            truncate(&expected)
        )));
    }
    let user = principal_user(principal, "grant")?;
    Ok(Membership { group, user })
}

fn membership_to_revoke(grant: &Grant) -> Result<Membership, ConnectorError> {
    let group = entitlement_group(&grant.resource, "revoke")?;
    let expected = mapping::member_entitlement_id(&group);
    if grant.entitlement != expected {
        return Err(ConnectorError::InvalidArgument(format!(
            "revoke: entitlement '{}' is not the membership of group {} (expected {})",
            truncate(&grant.entitlement),
            truncate(&group),
            truncate(&expected)
        )));
    }
    let user = principal_user(&grant.principal, "revoke")?;
    let expected_id = mapping::member_grant(&group, &user).id;
    if !grant.id.is_empty() && grant.id != expected_id {
        return Err(ConnectorError::InvalidArgument(format!(
            "revoke: grant id '{}' does not match its entitlement and principal ({})",
            truncate(&grant.id),
            truncate(&expected_id)
        )));
    }
    Ok(Membership { group, user })
}

pub fn grant(
    principal: &ResourceId,
    entitlement: &EntitlementRef,
) -> Result<GrantOutcome, ConnectorError> {
    let config = writable("grant")?;
    let m = membership_to_grant(principal, entitlement)?;
    let changed = client::run(config, &[], |ic| change(ic, &m, MemberOp::Add))?;
    Ok(if changed {
        GrantOutcome::Granted(mapping::member_grant(&m.group, &m.user))
    } else {
        GrantOutcome::AlreadyGranted
    })
}

pub fn revoke(grant: &Grant) -> Result<RevokeOutcome, ConnectorError> {
    let config = writable("revoke")?;
    let m = membership_to_revoke(grant)?;
    let changed = client::run(config, &[], |ic| change(ic, &m, MemberOp::Remove))?;
    Ok(if changed {
        RevokeOutcome::Revoked
    } else {
        RevokeOutcome::AlreadyRevoked
    })
}

fn group_not_found(group: &str, words: Option<&str>) -> ConnectorError {
    let words = words.map(|w| format!(" ({w})")).unwrap_or_default();
    ConnectorError::NotFound(format!(
        "Ironclad has no group {}{words}: it may have been deleted; sync again",
        truncate(group)
    ))
}

/// Reads the group, then adds or removes the member when needed. `false`: nothing to change.
fn change(ic: &Ironclad, m: &Membership, op: MemberOp) -> Result<bool, ConnectorError> {
    let group = ic.group(&m.group).map_err(|e| match e {
        ConnectorError::NotFound(_) => group_not_found(&m.group, None),
        other => other,
    })?;
    let name = mapping::group_name(&group, &m.group);
    // `None`: Ironclad left members out, so membership is unknown and the change is sent anyway
    // (SCIM servers treat a repeated add or remove as a no-op).
    let members = group.member_user_ids();
    let is_member = members.as_ref().map(|ms| ms.contains(&m.user));
    if is_member == Some(op == MemberOp::Add) {
        remember(&m.group, name, members);
        return Ok(false);
    }

    let reply = ic.patch_members(&m.group, op, &m.user)?;
    if !reply.is_success() {
        return Err(patch_error(ic, m, op, &reply));
    }
    let members = members.map(|mut ms| {
        ms.retain(|u| u != &m.user);
        if op == MemberOp::Add {
            ms.push(m.user.clone());
        }
        ms
    });
    remember(&m.group, name, members);
    Ok(true)
}

/// Keeps the instance's cache of the group in step with what was just read or written.
fn remember(group: &str, name: String, members: Option<Vec<String>>) {
    state::with(|s| s.refresh_group(group, name, members));
}

fn patch_error(ic: &Ironclad, m: &Membership, op: MemberOp, reply: &Reply) -> ConnectorError {
    let endpoint = format!("PATCH /scim/v2/Groups/{}", client::escape_segment(&m.group));
    let words = crate::errors::ironclad_words(&reply.body);
    let change = match op {
        MemberOp::Add => format!("adding user {} to group {}", m.user, m.group),
        MemberOp::Remove => format!("removing user {} from group {}", m.user, m.group),
    };
    match ic.error(&endpoint, reply) {
        ConnectorError::NotFound(_) => group_not_found(&m.group, Some(&words)),
        ConnectorError::InvalidArgument(_) => ConnectorError::InvalidArgument(format!(
            "Ironclad refused {} ({words})",
            truncate(&change)
        )),
        other => other,
    }
}

// ------------------------------------------------------------------ accounts

/// The new account, checked: everything Ironclad requires is there.
#[derive(Debug, PartialEq, Eq)]
struct Account<'a> {
    login: &'a str,
    given_name: &'a str,
    family_name: &'a str,
    /// The login among them; exactly one primary.
    emails: Vec<(&'a str, bool)>,
    title: Option<&'a str>,
    department: Option<&'a str>,
}

fn present(s: &Option<String>) -> Option<&str> {
    s.as_deref().map(str::trim).filter(|s| !s.is_empty())
}

impl<'a> Account<'a> {
    fn from_info(info: &'a AccountInfo) -> Result<Self, ConnectorError> {
        let login = info.login.trim();
        if login.is_empty() {
            return Err(ConnectorError::InvalidArgument(
                "create-account: the login is empty; it must be the new user's email (Ironclad's userName)".to_owned(),
            ));
        }
        if !login.contains('@') || login.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(ConnectorError::InvalidArgument(format!(
                "create-account: login '{}' is not an email address; Ironclad's userName is the user's email",
                truncate(login)
            )));
        }
        let required = |value: &'a Option<String>, field: &str| {
            present(value).ok_or_else(|| {
                ConnectorError::InvalidArgument(format!(
                    "create-account: {field} is required; Ironclad needs the new user's given and family names"
                ))
            })
        };
        let given_name = required(&info.profile.given_name, "given-name")?;
        let family_name = required(&info.profile.family_name, "family-name")?;

        let mut emails: Vec<(&str, bool)> = Vec::new();
        for e in &info.emails {
            let address = e.address.trim();
            if !address.is_empty() && !emails.iter().any(|(a, _)| a.eq_ignore_ascii_case(address)) {
                emails.push((address, e.primary));
            }
        }
        if !emails.iter().any(|(a, _)| a.eq_ignore_ascii_case(login)) {
            emails.insert(0, (login, false));
        }
        // One primary: the first marked so, else the login.
        let primary = emails
            .iter()
            .position(|(_, p)| *p)
            .or_else(|| {
                emails
                    .iter()
                    .position(|(a, _)| a.eq_ignore_ascii_case(login))
            })
            .unwrap_or(0);
        for (i, e) in emails.iter_mut().enumerate() {
            e.1 = i == primary;
        }

        Ok(Account {
            login,
            given_name,
            family_name,
            emails,
            title: present(&info.profile.title),
            department: present(&info.profile.department),
        })
    }

    fn body(&self, password: Option<&'a str>) -> NewUser<'a> {
        let mut schemas = vec![USER_SCHEMA];
        if self.department.is_some() {
            schemas.push(ENTERPRISE_USER_SCHEMA);
        }
        NewUser {
            schemas,
            user_name: self.login,
            name: NewName {
                given_name: self.given_name,
                family_name: self.family_name,
            },
            emails: self
                .emails
                .iter()
                .map(|(value, primary)| NewEmail {
                    value,
                    kind: "work",
                    primary: *primary,
                })
                .collect(),
            title: self.title,
            enterprise: self
                .department
                .map(|department| NewEnterprise { department }),
            active: true,
            password,
        }
    }
}

pub fn create_account(
    info: &AccountInfo,
    credential: &CredentialOption,
) -> Result<CreateAccountOutcome, ConnectorError> {
    let config = writable("create-account")?;
    let account = Account::from_info(info)?;
    let password = match credential {
        CredentialOption::RandomPassword(request) => {
            let policy = Policy::for_request(request)
                .map_err(|why| ConnectorError::InvalidArgument(format!("create-account: {why}")))?;
            Some(password::generate(&policy, &mut WasiRandom))
        }
        CredentialOption::NoPassword => None,
    };
    let secret = password.as_ref().map(|p| p.expose().to_owned());
    let also_secret: Vec<&str> = secret.iter().map(String::as_str).collect();
    client::run(config, &also_secret, |ic| create(ic, &account, password))
}

fn create(
    ic: &Ironclad,
    account: &Account<'_>,
    password: Option<Password>,
) -> Result<CreateAccountOutcome, ConnectorError> {
    let body = account.body(password.as_ref().map(Password::expose));
    let reply = ic.post_user(&body)?;
    let login = account.login;

    if reply.is_success() {
        let created = serde_json::from_slice::<User>(&reply.body)
            .ok()
            .as_ref()
            .and_then(mapping::user_resource);
        let resource = match created {
            Some(r) => r,
            // Created, but the answer does not name it: find it by its login.
            None => find_user(ic, login).ok().flatten().ok_or_else(|| {
                ConnectorError::Other(format!(
                    "Ironclad created {} but its answer named no user id and a lookup by userName did not find it; {}",
                    truncate(login),
                    if password.is_some() {
                        "the generated password was not kept: reset it in Ironclad"
                    } else {
                        "look the account up in Ironclad"
                    }
                ))
            })?,
        };
        return Ok(CreateAccountOutcome::Created(AccountCreated {
            resource,
            credential: password.map(|p| Credential {
                login: login.to_owned(),
                password: p.into_inner(),
            }),
        }));
    }

    match reply.status {
        409 => match find_user(ic, login)? {
            Some(existing) => Ok(CreateAccountOutcome::AlreadyExists(existing)),
            None => Err(ConnectorError::AlreadyExists(format!(
                "Ironclad says a user with userName {} already exists ({}), but a lookup by userName finds none",
                truncate(login),
                crate::errors::ironclad_words(&reply.body)
            ))),
        },
        _ => Err(match ic.error(USERS_ENDPOINT, &reply) {
            ConnectorError::InvalidArgument(_) => {
                let words = ironclad_words_within(&reply.body, CREATE_REFUSAL_LIMIT);
                let hint = if password.is_none() && words.to_ascii_lowercase().contains("password") {
                    ": this company does not sign in through SAML, so new users need a password; create the account with a generated one"
                } else {
                    ""
                };
                ConnectorError::InvalidArgument(format!(
                    "Ironclad refused to create {} ({words}){hint}",
                    truncate(login)
                ))
            }
            other => other,
        }),
    }
}

/// The user whose userName is `login` (Ironclad compares them case-insensitively).
fn find_user(ic: &Ironclad, login: &str) -> Result<Option<Resource>, ConnectorError> {
    let users = ic.users_named(login)?;
    let exact = users.iter().position(|u| {
        u.user_name
            .as_deref()
            .is_some_and(|n| n.trim().eq_ignore_ascii_case(login))
    });
    Ok(exact
        .or(if users.len() == 1 { Some(0) } else { None })
        .and_then(|i| users.get(i))
        .and_then(mapping::user_resource))
}

// ------------------------------------------------------------------ deleting

/// Never sends anything, read-only or not: there is nothing this connector deletes.
pub fn delete_resource(id: &ResourceId) -> ConnectorError {
    match id.resource_type.as_str() {
        GROUP => ConnectorError::Unsupported(
            "this connector manages group membership, not groups: it does not delete Ironclad groups".to_owned(),
        ),
        _ => ConnectorError::Unsupported(NO_DEPROVISIONING.to_owned()),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;
    use crate::wit::{AccountProfile, Email};

    fn rid(kind: &str, id: &str) -> ResourceId {
        mapping::resource_id(kind, id)
    }

    fn ent(kind: &str, id: &str, slug: &str) -> EntitlementRef {
        EntitlementRef {
            id: format!("{kind}:{id}:{slug}"),
            resource: rid(kind, id),
            slug: slug.to_owned(),
        }
    }

    fn invalid(e: ConnectorError) -> String {
        match e {
            ConnectorError::InvalidArgument(m) => m,
            other => panic!("expected invalid-argument, got {other:?}"),
        }
    }

    fn unsupported(e: ConnectorError) -> String {
        match e {
            ConnectorError::Unsupported(m) => m,
            other => panic!("expected unsupported, got {other:?}"),
        }
    }

    #[test]
    fn read_only_refuses_with_the_setting() {
        match refuse_if_read_only("grant", true) {
            Err(ConnectorError::PermissionDenied(m)) => {
                assert!(m.starts_with("grant refused"), "{m}");
                assert!(m.contains("read-only"), "{m}");
            }
            other => panic!("{other:?}"),
        }
        assert!(refuse_if_read_only("grant", false).is_ok());
    }

    #[test]
    fn grants_route_to_group_membership() {
        let m = membership_to_grant(&rid("user", "u1"), &ent("group", "g1", "member")).unwrap();
        assert_eq!(
            m,
            Membership {
                group: "g1".into(),
                user: "u1".into()
            }
        );
        // An empty id is taken from the parts.
        let mut e = ent("group", "g1", "member");
        e.id.clear();
        assert!(membership_to_grant(&rid("user", "u1"), &e).is_ok());
    }

    #[test]
    fn other_grants_say_why_not() {
        let u = rid("user", "u1");
        let m = unsupported(membership_to_grant(&u, &ent("user", "u2", "member")).unwrap_err());
        assert!(m.contains("group:<group id>:member"), "{m}");
        let m = invalid(membership_to_grant(&u, &ent("group", "g1", "admin")).unwrap_err());
        assert!(m.contains("'admin' is not one"), "{m}");
        let m = invalid(membership_to_grant(&u, &ent("role", "r1", "member")).unwrap_err());
        assert!(m.contains("unknown resource type 'role'"), "{m}");
        let m = unsupported(
            membership_to_grant(&rid("group", "g2"), &ent("group", "g1", "member")).unwrap_err(),
        );
        assert!(m.contains("hold users only"), "{m}");
        let m = invalid(
            membership_to_grant(&rid("app", "a"), &ent("group", "g1", "member")).unwrap_err(),
        );
        assert!(m.contains("unknown principal type 'app'"), "{m}");
        invalid(membership_to_grant(&rid("user", ""), &ent("group", "g1", "member")).unwrap_err());
        invalid(membership_to_grant(&u, &ent("group", "", "member")).unwrap_err());
        let mut e = ent("group", "g1", "member");
        e.id = "group:g9:member".into();
        let m = invalid(membership_to_grant(&u, &e).unwrap_err());
        assert!(m.contains("does not match"), "{m}");
    }

    #[test]
    fn revokes_check_the_grant_parts() {
        let g = mapping::member_grant("g1", "u1");
        assert_eq!(
            membership_to_revoke(&g).unwrap(),
            Membership {
                group: "g1".into(),
                user: "u1".into()
            }
        );
        let mut bad = g.clone();
        bad.entitlement = "group:g1:owner".into();
        invalid(membership_to_revoke(&bad).unwrap_err());
        let mut bad = g.clone();
        bad.id = "group:g1:member:user:u2".into();
        invalid(membership_to_revoke(&bad).unwrap_err());
        let mut bad = g.clone();
        bad.principal = rid("group", "g2");
        unsupported(membership_to_revoke(&bad).unwrap_err());
        let mut bad = g;
        bad.resource = rid("user", "u9");
        unsupported(membership_to_revoke(&bad).unwrap_err());
    }

    fn info(login: &str, emails: &[(&str, bool)]) -> AccountInfo {
        AccountInfo {
            login: login.to_owned(),
            emails: emails
                .iter()
                .map(|(a, p)| Email {
                    address: (*a).to_owned(),
                    primary: *p,
                })
                .collect(),
            profile: AccountProfile {
                given_name: Some("Nora".into()),
                family_name: Some("Newhire".into()),
                title: Some("Counsel".into()),
                department: Some("Legal".into()),
            },
        }
    }

    #[test]
    fn the_post_body_is_ironclads_shape() {
        let i = info("nora@acme.test", &[("nora@acme.test", true)]);
        let a = Account::from_info(&i).unwrap();
        let v = serde_json::to_value(a.body(Some("Pw-1234567890abcd"))).unwrap();
        assert_eq!(
            v,
            serde_json::json!({
                "schemas": [
                    "urn:ietf:params:scim:schemas:core:2.0:User",
                    "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
                ],
                "userName": "nora@acme.test",
                "name": {"givenName": "Nora", "familyName": "Newhire"},
                "emails": [{"value": "nora@acme.test", "type": "work", "primary": true}],
                "title": "Counsel",
                "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {"department": "Legal"},
                "active": true,
                "password": "Pw-1234567890abcd"
            })
        );
        assert!(!format!("{:?}", a.body(Some("Pw-1234567890abcd"))).contains("Pw-1234567890abcd"));
    }

    #[test]
    fn optional_fields_and_password_are_left_out() {
        let mut i = info("sso@acme.test", &[]);
        i.profile.title = None;
        i.profile.department = Some("  ".into());
        let v = serde_json::to_value(Account::from_info(&i).unwrap().body(None)).unwrap();
        assert_eq!(v["schemas"], serde_json::json!([USER_SCHEMA]));
        assert_eq!(
            v["emails"],
            serde_json::json!([{"value": "sso@acme.test", "type": "work", "primary": true}])
        );
        for key in ["title", "password", ENTERPRISE_USER_SCHEMA] {
            assert!(v.get(key).is_none(), "{key}");
        }
    }

    #[test]
    fn emails_keep_one_primary_and_include_the_login() {
        let i = info(
            "a@x.test",
            &[("b@x.test", false), ("B@x.test", true), ("c@x.test", true)],
        );
        let a = Account::from_info(&i).unwrap();
        assert_eq!(
            a.emails,
            [("a@x.test", false), ("b@x.test", false), ("c@x.test", true)]
        );
        let i = info("a@x.test", &[("b@x.test", false)]);
        assert_eq!(
            Account::from_info(&i).unwrap().emails,
            [("a@x.test", true), ("b@x.test", false)]
        );
    }

    #[test]
    fn accounts_need_an_email_login_and_names() {
        let m = invalid(Account::from_info(&info(" ", &[])).unwrap_err());
        assert!(m.contains("login is empty"), "{m}");
        let m = invalid(Account::from_info(&info("nora", &[])).unwrap_err());
        assert!(m.contains("not an email"), "{m}");
        let mut i = info("n@x.test", &[]);
        i.profile.family_name = Some(" ".into());
        let m = invalid(Account::from_info(&i).unwrap_err());
        assert!(m.contains("family-name is required"), "{m}");
        i.profile.given_name = None;
        let m = invalid(Account::from_info(&i).unwrap_err());
        assert!(m.contains("given-name is required"), "{m}");
    }

    #[test]
    fn deleting_is_unsupported_with_the_reason() {
        let m = unsupported(delete_resource(&rid("user", "u1")));
        assert!(m.contains("workflows") && m.contains("support"), "{m}");
        let m = unsupported(delete_resource(&rid("group", "g1")));
        assert!(m.contains("does not delete Ironclad groups"), "{m}");
    }
}
