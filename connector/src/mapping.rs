//! SCIM users and groups as the WIT data model, and the one entitlement (group membership) with
//! its grants. Ids follow the baton formats: entitlement `group:<gid>:member`, grant
//! `group:<gid>:member:user:<uid>`, with a `:` or `\` inside an id preceded by `\` (as the
//! baton SDK escapes them), so ids holding `:` cannot run into each other.

use crate::scim::{Group, User, UserInfo};
use crate::wit::{
    AccountStatus, Email, Entitlement, Grant, GroupTrait, Purpose, Resource, ResourceId, UserTrait,
};

pub const USER: &str = "user";
pub const GROUP: &str = "group";
pub const MEMBER: &str = "member";

fn present(s: &Option<String>) -> Option<String> {
    s.as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
}

pub fn resource_id(kind: &str, id: &str) -> ResourceId {
    ResourceId {
        resource_type: kind.to_owned(),
        resource: id.to_owned(),
    }
}

/// `None` for a user without an id (it cannot be named, so it cannot be synced).
pub fn user_resource(u: &User) -> Option<Resource> {
    let id = present(&u.id)?;
    let user_name = present(&u.user_name);
    let given = u.name.as_ref().and_then(|n| present(&n.given_name));
    let family = u.name.as_ref().and_then(|n| present(&n.family_name));

    let full_name = [given.as_deref(), family.as_deref()]
        .into_iter()
        .flatten()
        .collect::<Vec<_>>()
        .join(" ");
    let display_name = if !full_name.is_empty() {
        full_name
    } else {
        user_name.clone().unwrap_or_else(|| id.clone())
    };

    let mut emails: Vec<Email> = u
        .emails
        .iter()
        .filter_map(|e| {
            present(&e.value).map(|address| Email {
                address,
                primary: e.primary.unwrap_or(false),
            })
        })
        .collect();
    if emails.is_empty() {
        if let Some(name) = &user_name {
            emails.push(Email {
                address: name.clone(),
                primary: true,
            });
        }
    } else if !emails.iter().any(|e| e.primary) {
        // Ironclad's userName is the login email; prefer it as primary, else the first listed.
        let at = user_name
            .as_deref()
            .and_then(|n| {
                emails
                    .iter()
                    .position(|e| e.address.eq_ignore_ascii_case(n))
            })
            .unwrap_or(0);
        if let Some(e) = emails.get_mut(at) {
            e.primary = true;
        }
    }

    let login = user_name
        .clone()
        .or_else(|| emails.first().map(|e| e.address.clone()))
        .unwrap_or_else(|| id.clone());

    // Ironclad drops users set inactive, so a listed user is nearly always enabled.
    let status = if u.active == Some(false) {
        AccountStatus::Disabled
    } else {
        AccountStatus::Enabled
    };

    let created = u.meta.as_ref().and_then(|m| present(&m.created));
    let profile: Vec<(String, String)> = [
        ("title", present(&u.title)),
        (
            "department",
            u.enterprise.as_ref().and_then(|e| present(&e.department)),
        ),
        (
            "provider",
            u.ironclad.as_ref().and_then(|e| present(&e.provider)),
        ),
        ("created", created.clone()),
    ]
    .into_iter()
    .filter_map(|(k, v)| v.map(|v| (k.to_owned(), v)))
    .collect();

    Some(Resource {
        id: resource_id(USER, &id),
        parent: None,
        display_name,
        description: None,
        user: Some(UserTrait {
            login,
            emails,
            status,
            given_name: given,
            family_name: family,
        }),
        group: None,
        profile,
        created_at: created,
    })
}

/// The name a group is shown under; groups without one fall back to their id.
pub fn group_name(g: &Group, id: &str) -> String {
    present(&g.display_name).unwrap_or_else(|| id.to_owned())
}

pub fn group_resource(g: &Group) -> Option<Resource> {
    let id = present(&g.id)?;
    let external_id = present(&g.external_id);
    let profile = external_id
        .iter()
        .map(|x| ("external_id".to_owned(), x.clone()))
        .collect();
    Some(Resource {
        id: resource_id(GROUP, &id),
        parent: None,
        display_name: group_name(g, &id),
        description: None,
        user: None,
        group: Some(GroupTrait {
            // An externalId is set only by an identity provider pushing the group.
            source: external_id.map(|_| "external".to_owned()),
        }),
        profile,
        created_at: g.meta.as_ref().and_then(|m| present(&m.created)),
    })
}

/// The parts joined by `:`, a `:` or `\` inside a part escaped with `\`; parts without either
/// are joined as they are.
fn join_id(parts: &[&str]) -> String {
    let mut out = String::with_capacity(parts.iter().map(|p| p.len() + 1).sum());
    for (i, part) in parts.iter().enumerate() {
        if i > 0 {
            out.push(':');
        }
        push_escaped(&mut out, part);
    }
    out
}

/// Appends `part` with each `:` and `\` preceded by `\`, copying the runs between them whole.
fn push_escaped(out: &mut String, part: &str) {
    let mut rest = part;
    while let Some(at) = rest.find([':', '\\']) {
        out.push_str(&rest[..at]);
        out.push('\\');
        out.push_str(&rest[at..=at]);
        rest = &rest[at + 1..];
    }
    out.push_str(rest);
}

pub fn member_entitlement_id(group_id: &str) -> String {
    join_id(&[GROUP, group_id, MEMBER])
}

pub fn member_entitlement(group_id: &str, group_name: &str) -> Entitlement {
    Entitlement {
        id: member_entitlement_id(group_id),
        resource: resource_id(GROUP, group_id),
        display_name: format!("{group_name} Group Member"),
        description: format!("Member of the Ironclad group {group_name}"),
        slug: MEMBER.to_owned(),
        purpose: Purpose::Assignment,
        grantable_to: vec![USER.to_owned()],
    }
}

pub fn member_grant(group_id: &str, user_id: &str) -> Grant {
    member_grants(group_id, &[user_id]).remove(0)
}

/// The membership grants of one group, its entitlement's id and resource built once for all.
pub fn member_grants<S: AsRef<str>>(group_id: &str, user_ids: &[S]) -> Vec<Grant> {
    let entitlement = member_entitlement_id(group_id);
    let resource = resource_id(GROUP, group_id);
    user_ids
        .iter()
        .map(|uid| {
            let uid = uid.as_ref();
            // join_id(GROUP, group, MEMBER, USER, uid): the entitlement's id is the first three.
            let mut id = String::with_capacity(entitlement.len() + USER.len() + uid.len() + 2);
            id.push_str(&entitlement);
            id.push(':');
            id.push_str(USER);
            id.push(':');
            push_escaped(&mut id, uid);
            Grant {
                id,
                entitlement: entitlement.clone(),
                resource: resource.clone(),
                principal: resource_id(USER, uid),
            }
        })
        .collect()
}

/// One line for `validate`: "acting as Jane Doe <jane@acme.com> in Acme".
pub fn acting_as(info: &UserInfo) -> String {
    let name = present(&info.display_name).or_else(|| {
        let full = [present(&info.first_name), present(&info.last_name)]
            .into_iter()
            .flatten()
            .collect::<Vec<_>>()
            .join(" ");
        (!full.is_empty()).then_some(full)
    });
    let mut line = "acting as".to_owned();
    if let Some(name) = name {
        line.push(' ');
        line.push_str(&name);
    }
    match present(&info.email) {
        Some(email) => line.push_str(&format!(" <{email}>")),
        None if line == "acting as" => line.push_str(" an unnamed user"),
        None => {}
    }
    if let Some(company) = present(&info.company_name) {
        line.push_str(&format!(" in {company}"));
    }
    // One line, whatever Ironclad put in its fields.
    line.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    /// The shape of `UserResponseObject` in Ironclad's SCIM OpenAPI document.
    const SAMPLE_USER: &str = r#"{
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
        "userName": "alex.doe@example.com",
        "name": {"givenName": "Alex", "familyName": "Doe"},
        "title": "Vice President",
        "id": "6660d37dec0eac3deffb680e",
        "emails": [{"value": "alex.doe@example.com", "type": "work", "primary": true},
                   {"value": "alex@home.example", "type": "home", "primary": false}],
        "active": true,
        "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {"department": "Legal"},
        "urn:ietf:params:scim:schemas:extension:ironclad:2.0:User":
            {"departmentHead": "jane.doe@test.com", "provider": "local", "allowProviderConversion": false},
        "meta": {"resourceType": "User", "created": "2025-03-26T18:33:48.336Z",
                 "lastModified": "2025-03-26T18:33:48.336Z",
                 "location": "https://na1.ironcladapp.com/scim/v2/Users/6660d37dec0eac3deffb680e"}
    }"#;

    const SAMPLE_GROUP: &str = r#"{
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
        "displayName": "Legal Ops Group",
        "id": "74906dd6-f2c6-4442-8875-57846f15b061",
        "externalId": "123",
        "members": [{"type": "User", "value": "6660d37dec0eac3deffb680e"}],
        "meta": {"resourceType": "Group",
                 "location": "https://na1.ironcladapp.com/scim/v2/Groups/74906dd6-f2c6-4442-8875-57846f15b061"}
    }"#;

    #[test]
    fn maps_a_full_user() {
        let u: User = serde_json::from_str(SAMPLE_USER).unwrap();
        let r = user_resource(&u).unwrap();
        assert_eq!(r.id.resource_type, "user");
        assert_eq!(r.id.resource, "6660d37dec0eac3deffb680e");
        assert_eq!(r.display_name, "Alex Doe");
        assert!(r.parent.is_none() && r.group.is_none());
        let t = r.user.unwrap();
        assert_eq!(t.login, "alex.doe@example.com");
        assert_eq!(t.emails.len(), 2);
        assert!(t.emails[0].primary && !t.emails[1].primary);
        assert_eq!(t.status, AccountStatus::Enabled);
        assert_eq!(t.given_name.as_deref(), Some("Alex"));
        assert_eq!(t.family_name.as_deref(), Some("Doe"));
        let profile: Vec<(&str, &str)> = r
            .profile
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        assert_eq!(
            profile,
            [
                ("title", "Vice President"),
                ("department", "Legal"),
                ("provider", "local"),
                ("created", "2025-03-26T18:33:48.336Z"),
            ]
        );
        assert_eq!(r.created_at.as_deref(), Some("2025-03-26T18:33:48.336Z"));
    }

    #[test]
    fn maps_a_sparse_user() {
        let u: User =
            serde_json::from_str(r#"{"id":"u2","userName":"sam@acme.com","active":false}"#)
                .unwrap();
        let r = user_resource(&u).unwrap();
        assert_eq!(r.display_name, "sam@acme.com");
        assert!(r.profile.is_empty());
        assert!(r.created_at.is_none());
        let t = r.user.unwrap();
        assert_eq!(t.status, AccountStatus::Disabled);
        assert_eq!(t.emails.len(), 1);
        assert_eq!(t.emails[0].address, "sam@acme.com");
        assert!(t.emails[0].primary);
        assert!(t.given_name.is_none() && t.family_name.is_none());
    }

    #[test]
    fn primary_email_falls_back_to_user_name() {
        let u: User = serde_json::from_str(
            r#"{"id":"u3","userName":"b@x.com","name":{"givenName":"Bo"},
                "emails":[{"value":"a@x.com"},{"value":"B@x.com"}]}"#,
        )
        .unwrap();
        let r = user_resource(&u).unwrap();
        assert_eq!(r.display_name, "Bo");
        let t = r.user.unwrap();
        assert_eq!(
            t.emails.iter().map(|e| e.primary).collect::<Vec<_>>(),
            [false, true]
        );
    }

    #[test]
    fn user_without_id_is_skipped() {
        let u: User = serde_json::from_str(r#"{"userName":"x@y"}"#).unwrap();
        assert!(user_resource(&u).is_none());
    }

    #[test]
    fn maps_a_group_and_its_membership() {
        let g: Group = serde_json::from_str(SAMPLE_GROUP).unwrap();
        let r = group_resource(&g).unwrap();
        let gid = "74906dd6-f2c6-4442-8875-57846f15b061";
        assert_eq!(r.id.resource_type, "group");
        assert_eq!(r.id.resource, gid);
        assert_eq!(r.display_name, "Legal Ops Group");
        assert_eq!(r.group.unwrap().source.as_deref(), Some("external"));
        assert_eq!(r.profile, [("external_id".to_owned(), "123".to_owned())]);
        assert!(r.user.is_none());

        let e = member_entitlement(gid, "Legal Ops Group");
        assert_eq!(e.id, format!("group:{gid}:member"));
        assert_eq!(e.slug, "member");
        assert_eq!(e.display_name, "Legal Ops Group Group Member");
        assert_eq!(
            e.description,
            "Member of the Ironclad group Legal Ops Group"
        );
        assert_eq!(e.purpose, Purpose::Assignment);
        assert_eq!(e.grantable_to, ["user"]);

        let grant = member_grant(gid, "6660d37dec0eac3deffb680e");
        assert_eq!(
            grant.id,
            format!("group:{gid}:member:user:6660d37dec0eac3deffb680e")
        );
        assert_eq!(grant.entitlement, e.id);
        assert_eq!(grant.resource.resource_type, "group");
        assert_eq!(grant.resource.resource, gid);
        assert_eq!(grant.principal.resource_type, "user");
        assert_eq!(grant.principal.resource, "6660d37dec0eac3deffb680e");
    }

    #[test]
    fn ids_with_colons_are_escaped_so_memberships_do_not_collide() {
        let one = member_grant("a", "b:member:user:c");
        let two = member_grant("a:member:user:b", "c");
        assert_eq!(one.id, r"group:a:member:user:b\:member\:user\:c");
        assert_eq!(two.id, r"group:a\:member\:user\:b:member:user:c");
        assert_eq!(two.entitlement, r"group:a\:member\:user\:b:member");
        assert_eq!(member_entitlement_id(r"x\y"), r"group:x\\y:member");
    }

    #[test]
    fn group_without_external_id_has_no_source() {
        let g: Group = serde_json::from_str(r#"{"id":"g1"}"#).unwrap();
        let r = group_resource(&g).unwrap();
        assert_eq!(r.display_name, "g1");
        assert!(r.group.unwrap().source.is_none());
        assert!(r.profile.is_empty());
    }

    #[test]
    fn acting_as_is_one_line() {
        let info: UserInfo = serde_json::from_str(
            r#"{"sub":"63d4","id":"63d4","email":"user@example.com","username":"username",
                "firstName":"John","lastName":"Doe","displayName":"John Doe","title":"Engineer",
                "companyId":"6013","companyName":"Example Company","scopes":[]}"#,
        )
        .unwrap();
        assert_eq!(
            acting_as(&info),
            "acting as John Doe <user@example.com> in Example Company"
        );
        let info: UserInfo =
            serde_json::from_str(r#"{"firstName":"Jo","lastName":"Ng","companyName":"A\nB"}"#)
                .unwrap();
        assert_eq!(acting_as(&info), "acting as Jo Ng in A B");
    }
}
