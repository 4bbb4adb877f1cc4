//! The baton id formats, the external contract governance platforms use:
//! resource `TYPE:ID`, entitlement `TYPE:ID:SLUG`, grant
//! `TYPE:ID:SLUG:PRINCIPAL_TYPE:PRINCIPAL_ID`.
//!
//! Entitlement and grant ids are their parts joined by `:`, and a part may
//! hold `:` itself (an application's ids are whatever it chose). As the
//! baton SDK does (`JoinEscapedID` / `SplitEscapedID`), a `:` or `\` inside
//! a part is preceded by `\`; a part without either is written as is, so the
//! ids of ordinary applications are byte for byte what they always were.
//! Decoding splits on the `:` no `\` precedes and accepts no other escape.
//!
//! A resource id is printed and read as `TYPE:ID` split at the first `:`
//! (the host refuses resource type ids with a `:`), with the id raw: it is
//! one column in the c1z, not a joined id.
//!
//! The host never trusts a connector's joined strings for identity: it
//! recomputes entitlement and grant ids from their parts
//! ([`canonical_entitlement_id`], [`canonical_grant_ids`]), so two records
//! share an id only when they share every part.

use anyhow::bail;

use crate::model::ResourceId;

/// An entitlement id taken apart.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EntitlementId {
    /// The whole id, in the escaped form.
    pub id: String,
    /// The resource it belongs to.
    pub resource: ResourceId,
    /// The last part (e.g. `member`).
    pub slug: String,
}

/// A grant id taken apart.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GrantId {
    /// The whole id, in the escaped form.
    pub id: String,
    /// The entitlement granted.
    pub entitlement: EntitlementId,
    /// Who holds it.
    pub principal: ResourceId,
}

/// Joins id parts with `:`, escaping `:` and `\` inside a part with `\`.
pub fn join_id(parts: &[&str]) -> String {
    let mut out = String::with_capacity(parts.iter().map(|p| p.len() + 1).sum());
    for (i, part) in parts.iter().enumerate() {
        if i > 0 {
            out.push(':');
        }
        for c in part.chars() {
            if c == ':' || c == '\\' {
                out.push('\\');
            }
            out.push(c);
        }
    }
    out
}

/// Splits an id made by [`join_id`] back into its parts; `None` when a `\`
/// escapes something other than `:` or `\`, or ends the id.
pub fn split_id(id: &str) -> Option<Vec<String>> {
    let mut parts = Vec::new();
    let mut part = String::new();
    let mut chars = id.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some(e @ (':' | '\\')) => part.push(e),
                _ => return None,
            },
            ':' => parts.push(std::mem::take(&mut part)),
            c => part.push(c),
        }
    }
    parts.push(part);
    Some(parts)
}

/// The entitlement id of `name` on `resource`.
pub fn entitlement_id(resource: &ResourceId, name: &str) -> String {
    join_id(&[&resource.resource_type, &resource.resource, name])
}

/// The id of the grant of `name` on `resource` to `principal`: one flat
/// join of the five parts, as the SDK builds it.
pub fn grant_id(resource: &ResourceId, name: &str, principal: &ResourceId) -> String {
    join_id(&[
        &resource.resource_type,
        &resource.resource,
        name,
        &principal.resource_type,
        &principal.resource,
    ])
}

/// The name part of an entitlement id a connector gave for `resource`:
/// from the escaped form, else from the plain join older connectors write
/// (the resource's type and id, raw, then `:`). `None` for an id of
/// another shape.
fn entitlement_name(resource: &ResourceId, id: &str) -> Option<String> {
    if let Some(mut parts) = split_id(id) {
        if parts.len() == 3 && parts[0] == resource.resource_type && parts[1] == resource.resource {
            return parts.pop();
        }
    }
    id.strip_prefix(resource.resource_type.as_str())
        .and_then(|rest| rest.strip_prefix(':'))
        .and_then(|rest| rest.strip_prefix(resource.resource.as_str()))
        .and_then(|rest| rest.strip_prefix(':'))
        .map(str::to_string)
}

/// The id the host stores for an entitlement on `resource` that the
/// connector called `id`: rebuilt from the parts, so it is escaped however
/// the connector joined them. An id of another shape (not on its own
/// resource) is kept as given.
pub fn canonical_entitlement_id(resource: &ResourceId, id: &str) -> String {
    match entitlement_name(resource, id) {
        Some(name) => entitlement_id(resource, &name),
        None => id.to_string(),
    }
}

/// The ids the host stores for a grant of the entitlement `entitlement`
/// (as the connector named it) on `resource` to `principal`: the
/// entitlement's canonical id and the grant's, both rebuilt from the parts.
pub fn canonical_grant_ids(
    resource: &ResourceId,
    entitlement: &str,
    principal: &ResourceId,
) -> (String, String) {
    match entitlement_name(resource, entitlement) {
        Some(name) => (
            entitlement_id(resource, &name),
            grant_id(resource, &name, principal),
        ),
        // As the SDK does for an entitlement it cannot take apart: its
        // whole id is one part.
        None => (
            entitlement.to_string(),
            join_id(&[entitlement, &principal.resource_type, &principal.resource]),
        ),
    }
}

/// `TYPE:ID`, split at the first `:` (the id may hold more).
pub fn parse_resource_id(text: &str) -> anyhow::Result<ResourceId> {
    match text.split_once(':') {
        Some((t, id)) if !t.is_empty() && !id.is_empty() => Ok(ResourceId {
            resource_type: t.to_string(),
            resource: id.to_string(),
        }),
        _ => bail!("{text:?} is not a resource id of the form TYPE:ID (e.g. user:6660d37dec0eac3deffb680e)"),
    }
}

/// The parts of an escaped id, when there are `N` and none is empty.
fn parts_of<const N: usize>(text: &str) -> Option<[String; N]> {
    let parts = split_id(text)?;
    if parts.iter().any(String::is_empty) {
        return None;
    }
    parts.try_into().ok()
}

const ESCAPING: &str = "a ':' or '\\' inside a part is written '\\:' or '\\\\'";

/// `TYPE:ID:SLUG`, the baton entitlement id.
pub fn parse_entitlement_id(text: &str) -> anyhow::Result<EntitlementId> {
    let Some([t, id, slug]) = parts_of(text) else {
        bail!("{text:?} is not an entitlement id of the form TYPE:ID:SLUG (e.g. group:<group id>:member; {ESCAPING})");
    };
    let resource = ResourceId {
        resource_type: t,
        resource: id,
    };
    Ok(EntitlementId {
        id: entitlement_id(&resource, &slug),
        resource,
        slug,
    })
}

/// `TYPE:ID:SLUG:PRINCIPAL_TYPE:PRINCIPAL_ID`, the baton grant id.
pub fn parse_grant_id(text: &str) -> anyhow::Result<GrantId> {
    let Some([t, id, slug, pt, pid]) = parts_of(text) else {
        bail!(
            "{text:?} is not a grant id of the form TYPE:ID:SLUG:PRINCIPAL_TYPE:PRINCIPAL_ID (e.g. group:<group id>:member:user:<user id>; {ESCAPING})"
        );
    };
    let resource = ResourceId {
        resource_type: t,
        resource: id,
    };
    let principal = ResourceId {
        resource_type: pt,
        resource: pid,
    };
    Ok(GrantId {
        id: grant_id(&resource, &slug, &principal),
        entitlement: EntitlementId {
            id: entitlement_id(&resource, &slug),
            resource,
            slug,
        },
        principal,
    })
}

/// Splits an entitlement id as far as it can be: its escaped parts when
/// there are three, else (an id of another shape) the type before the
/// first colon and the slug after the last.
pub fn split_entitlement_id(id: &str) -> (String, String, String) {
    if let Some([t, r, s]) = split_id(id).and_then(|p| <[String; 3]>::try_from(p).ok()) {
        return (t, r, s);
    }
    let (resource_type, rest) = id.split_once(':').unwrap_or((id, ""));
    let (resource, slug) = rest.rsplit_once(':').unwrap_or((rest, ""));
    (resource_type.into(), resource.into(), slug.into())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn rid(t: &str, id: &str) -> ResourceId {
        ResourceId {
            resource_type: t.into(),
            resource: id.into(),
        }
    }

    #[test]
    fn the_three_forms_parse() {
        let r = parse_resource_id("user:u1").unwrap();
        assert_eq!(r.to_string(), "user:u1");
        assert!(parse_resource_id("user").is_err());
        assert_eq!(parse_resource_id("user:a:b").unwrap().resource, "a:b");
        let e = parse_entitlement_id("group:g1:member").unwrap();
        assert_eq!(
            (e.resource.resource.as_str(), e.slug.as_str()),
            ("g1", "member")
        );
        assert!(parse_entitlement_id("group:g1").is_err());
        let g = parse_grant_id("group:g1:member:user:u1").unwrap();
        assert_eq!(g.entitlement.id, "group:g1:member");
        assert_eq!(g.principal.to_string(), "user:u1");
        assert!(parse_grant_id("group:g1:member:user:").is_err());
    }

    #[test]
    fn parts_without_separators_join_as_they_always_did() {
        assert_eq!(join_id(&["group", "g-1", "member"]), "group:g-1:member");
        assert_eq!(
            grant_id(&rid("group", "g"), "member", &rid("user", "u")),
            "group:g:member:user:u"
        );
    }

    #[test]
    fn colons_and_backslashes_in_parts_are_escaped_and_round_trip() {
        let parts = ["group", "a:b", "mem\\ber", "", "x\\:y"];
        let id = join_id(&parts);
        assert_eq!(id, r"group:a\:b:mem\\ber::x\\\:y");
        assert_eq!(split_id(&id).unwrap(), parts);
        assert_eq!(split_id(r"a\x"), None, "only \\: and \\\\ are escapes");
        assert_eq!(
            split_id("a\\"),
            None,
            "a trailing backslash escapes nothing"
        );
    }

    #[test]
    fn the_colliding_memberships_get_distinct_grant_ids() {
        let one = grant_id(
            &rid("group", "a"),
            "member",
            &rid("user", "b:member:user:c"),
        );
        let two = grant_id(
            &rid("group", "a:member:user:b"),
            "member",
            &rid("user", "c"),
        );
        assert_ne!(one, two);
        assert_eq!(one, r"group:a:member:user:b\:member\:user\:c");
        assert_eq!(two, r"group:a\:member\:user\:b:member:user:c");
        let back = parse_grant_id(&two).unwrap();
        assert_eq!(back.entitlement.resource, rid("group", "a:member:user:b"));
        assert_eq!(back.principal, rid("user", "c"));
        assert_eq!(back.id, two);
        assert_eq!(back.entitlement.id, r"group:a\:member\:user\:b:member");
    }

    #[test]
    fn parsing_refuses_unescaped_separators_in_parts() {
        // The unescaped join of the colliding grant has seven parts.
        let e = parse_grant_id("group:a:member:user:b:member:user:c")
            .unwrap_err()
            .to_string();
        assert!(e.contains(r"'\:'"), "{e}");
        assert!(parse_entitlement_id(r"group:a\b:member").is_err());
    }

    #[test]
    fn canonical_ids_are_rebuilt_from_the_parts_however_the_connector_joined_them() {
        let g = rid("group", "a:member:user:b");
        let escaped = r"group:a\:member\:user\:b:member";
        // Escaped, or joined raw (a connector built before escaping).
        for given in [escaped, "group:a:member:user:b:member"] {
            assert_eq!(canonical_entitlement_id(&g, given), escaped);
            let (e, id) = canonical_grant_ids(&g, given, &rid("user", "c"));
            assert_eq!(e, escaped);
            assert_eq!(id, r"group:a\:member\:user\:b:member:user:c");
        }
        // Plain ids stay byte for byte.
        let plain = rid("group", "g1");
        assert_eq!(
            canonical_grant_ids(&plain, "group:g1:member", &rid("user", "u1")),
            ("group:g1:member".into(), "group:g1:member:user:u1".into())
        );
        // An id not on its own resource is the connector's: kept, and one
        // part of the grant id.
        assert_eq!(canonical_entitlement_id(&plain, "custom:x"), "custom:x");
        assert_eq!(
            canonical_grant_ids(&plain, "custom:x", &rid("user", "u")).1,
            r"custom\:x:user:u"
        );
    }

    #[test]
    fn entitlement_ids_split_into_their_parts() {
        assert_eq!(
            split_entitlement_id(r"group:a\:b:member"),
            ("group".into(), "a:b".into(), "member".into())
        );
        assert_eq!(
            split_entitlement_id("group:a:b:member"),
            ("group".into(), "a:b".into(), "member".into())
        );
        assert_eq!(
            split_entitlement_id("odd"),
            ("odd".into(), String::new(), String::new())
        );
    }
}
