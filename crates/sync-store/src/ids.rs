//! The baton id formats, the external contract governance platforms use:
//! resource `TYPE:ID`, entitlement `TYPE:ID:SLUG`, grant
//! `TYPE:ID:SLUG:PRINCIPAL_TYPE:PRINCIPAL_ID`.

use anyhow::bail;

use crate::model::ResourceId;

/// An entitlement id taken apart.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EntitlementId {
    /// The whole id, as given.
    pub id: String,
    /// The resource it belongs to.
    pub resource: ResourceId,
    /// The last part (e.g. `member`).
    pub slug: String,
}

/// A grant id taken apart.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GrantId {
    /// The whole id, as given.
    pub id: String,
    /// The entitlement granted.
    pub entitlement: EntitlementId,
    /// Who holds it.
    pub principal: ResourceId,
}

/// `TYPE:ID`.
pub fn parse_resource_id(text: &str) -> anyhow::Result<ResourceId> {
    match text.split_once(':') {
        Some((t, id)) if !t.is_empty() && !id.is_empty() && !id.contains(':') => Ok(ResourceId {
            resource_type: t.to_string(),
            resource: id.to_string(),
        }),
        _ => bail!("{text:?} is not a resource id of the form TYPE:ID (e.g. user:6660d37dec0eac3deffb680e)"),
    }
}

/// `TYPE:ID:SLUG`, the baton entitlement id.
pub fn parse_entitlement_id(text: &str) -> anyhow::Result<EntitlementId> {
    let parts: Vec<&str> = text.split(':').collect();
    match parts.as_slice() {
        [t, id, slug] if !t.is_empty() && !id.is_empty() && !slug.is_empty() => Ok(EntitlementId {
            id: text.to_string(),
            resource: ResourceId {
                resource_type: t.to_string(),
                resource: id.to_string(),
            },
            slug: slug.to_string(),
        }),
        _ => bail!("{text:?} is not an entitlement id of the form TYPE:ID:SLUG (e.g. group:<group id>:member)"),
    }
}

/// `TYPE:ID:SLUG:PRINCIPAL_TYPE:PRINCIPAL_ID`, the baton grant id.
pub fn parse_grant_id(text: &str) -> anyhow::Result<GrantId> {
    let parts: Vec<&str> = text.split(':').collect();
    match parts.as_slice() {
        [t, id, slug, pt, pid] if [t, id, slug, pt, pid].iter().all(|p| !p.is_empty()) => {
            Ok(GrantId {
                id: text.to_string(),
                entitlement: EntitlementId {
                    id: format!("{t}:{id}:{slug}"),
                    resource: ResourceId {
                        resource_type: t.to_string(),
                        resource: id.to_string(),
                    },
                    slug: slug.to_string(),
                },
                principal: ResourceId {
                    resource_type: pt.to_string(),
                    resource: pid.to_string(),
                },
            })
        }
        _ => bail!(
            "{text:?} is not a grant id of the form TYPE:ID:SLUG:PRINCIPAL_TYPE:PRINCIPAL_ID (e.g. group:<group id>:member:user:<user id>)"
        ),
    }
}

/// Splits an entitlement id as far as it can be when its parts may hold
/// `:` themselves: the type before the first colon, the slug after the last.
pub fn split_entitlement_id(id: &str) -> (&str, &str, &str) {
    let (resource_type, rest) = id.split_once(':').unwrap_or((id, ""));
    let (resource, slug) = rest.rsplit_once(':').unwrap_or((rest, ""));
    (resource_type, resource, slug)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn the_three_forms_parse() {
        let r = parse_resource_id("user:u1").unwrap();
        assert_eq!(r.to_string(), "user:u1");
        assert!(parse_resource_id("user").is_err());
        assert!(parse_resource_id("user:a:b").is_err());
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
    fn entitlement_ids_with_colons_split_at_the_ends() {
        assert_eq!(
            split_entitlement_id("group:a:b:member"),
            ("group", "a:b", "member")
        );
        assert_eq!(split_entitlement_id("odd"), ("odd", "", ""));
    }
}
