//! What a page of groups hands the host along with the groups (contract 0.2.0's `included`): each
//! group's membership entitlement and grants, so a sync makes one call per page rather than two
//! per group. Ironclad's group listing carries the members, so nothing here needs a request.
//!
//! A group goes to `pending` instead when the listing left its members out, or when its grants
//! would take the page past `MAX_INCLUDED_GRANTS`; the host then asks `list-entitlements` and
//! `list-grants` for it, and this module says what the instance keeps to answer those.

use std::collections::HashSet;

use crate::mapping;
use crate::scim::Group;
use crate::state::CachedGroup;
use crate::wit::{Grant, Included, Resource};

/// Grants one page may include. Each costs ~400 bytes of guest memory (its ids as six strings),
/// and as much again in the host, which lifts the page, converts it and queues a few pages for its
/// writer; the guest's memory never shrinks and the host's allocator keeps its high-water mark.
/// 10,000 keep that near 4 MB a page however large the groups: on the bench's tenants (first pages
/// of 200,000 and 500,000 memberships) the host's peak RSS went from 95 to 72 MiB and from 149 to
/// 136 MiB against 50,000, in the same time. Groups past it go to `pending` and are answered one by
/// one, from what this page left in the instance's cache, still without a request.
pub const MAX_INCLUDED_GRANTS: usize = 10_000;

/// A group as listed: its resource, and its member user ids when the listing carried them.
#[derive(Clone, Debug)]
pub struct ListedGroup {
    pub resource: Resource,
    pub members: Option<Vec<String>>,
}

impl ListedGroup {
    /// `None` for a group without an id, as `mapping::group_resource`.
    pub fn from_scim(mut g: Group) -> Option<Self> {
        Some(ListedGroup {
            resource: mapping::group_resource(&g)?,
            members: g.member_ids.take(),
        })
    }
}

/// A page of groups ready for the host, and what the instance must remember of them.
#[derive(Debug)]
pub struct GroupPage {
    pub items: Vec<Resource>,
    pub included: Included,
    /// Every group of the page by id: the name, and members only for groups that went to
    /// `pending` with their members at hand (so their `list-grants` needs no request).
    pub cache: Vec<(String, CachedGroup)>,
}

/// Splits the page's groups (already deduplicated) into included and pending, first fit: a group
/// too large for what is left of `max_grants` is pending, and smaller ones after it may still fit.
pub fn group_page(groups: Vec<ListedGroup>, max_grants: usize) -> GroupPage {
    let mut page = GroupPage {
        items: Vec::with_capacity(groups.len()),
        included: Included {
            entitlements: Vec::new(),
            grants: Vec::new(),
            pending: Vec::new(),
        },
        cache: Vec::with_capacity(groups.len()),
    };
    for ListedGroup { resource, members } in groups {
        let id = resource.id.resource.clone();
        let name = resource.display_name.clone();
        let room = max_grants.saturating_sub(page.included.grants.len());
        let waiting = match members.map(unique) {
            Some(members) if members.len() <= room => {
                include(&mut page.included, &id, &name, &members);
                None
            }
            // Too many for this page, or not listed at all.
            members => {
                page.included.pending.push(resource.id.clone());
                members
            }
        };
        let cached = CachedGroup {
            name,
            members: waiting,
        };
        page.cache.push((id, cached));
        page.items.push(resource);
    }
    page
}

/// The group's one entitlement (membership) and a grant per member.
fn include(included: &mut Included, id: &str, name: &str, members: &[String]) {
    included
        .entitlements
        .push(mapping::member_entitlement(id, name));
    included.grants.extend(mapping::member_grants(id, members));
}

/// A group's membership grants, one per member however often Ironclad lists them.
pub fn member_grants(group_id: &str, members: Vec<String>) -> Vec<Grant> {
    mapping::member_grants(group_id, &unique(members))
}

/// The members in their first-listed order, each once: a grant id listed twice would be a
/// duplicate record for the host.
fn unique(members: Vec<String>) -> Vec<String> {
    let keep: Vec<bool> = {
        let mut seen = HashSet::with_capacity(members.len());
        members.iter().map(|m| seen.insert(m.as_str())).collect()
    };
    members
        .into_iter()
        .zip(keep)
        .filter_map(|(m, keep)| keep.then_some(m))
        .collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;
    use crate::wit::ResourceId;

    fn listed(json: &str) -> ListedGroup {
        ListedGroup::from_scim(serde_json::from_str(json).unwrap()).unwrap()
    }

    fn ids(r: &[ResourceId]) -> Vec<&str> {
        r.iter().map(|r| r.resource.as_str()).collect()
    }

    fn grant_ids(page: &GroupPage) -> Vec<&str> {
        page.included.grants.iter().map(|g| g.id.as_str()).collect()
    }

    fn cached(page: &GroupPage, id: &str) -> CachedGroup {
        page.cache
            .iter()
            .find(|(g, _)| g == id)
            .map(|(_, c)| c.clone())
            .unwrap()
    }

    #[test]
    fn listed_members_are_included_and_not_kept() {
        let page = group_page(
            vec![
                listed(
                    r#"{"id":"g1","displayName":"Legal","members":[{"value":"u1"},{"value":"u2"}]}"#,
                ),
                listed(r#"{"id":"g2","members":[]}"#),
            ],
            MAX_INCLUDED_GRANTS,
        );
        assert_eq!(
            ids(&page.items.iter().map(|r| r.id.clone()).collect::<Vec<_>>()),
            ["g1", "g2"]
        );
        let ents: Vec<_> = page
            .included
            .entitlements
            .iter()
            .map(|e| e.id.as_str())
            .collect();
        assert_eq!(ents, ["group:g1:member", "group:g2:member"]);
        assert_eq!(
            page.included.entitlements[0].display_name,
            "Legal Group Member"
        );
        assert_eq!(
            grant_ids(&page),
            ["group:g1:member:user:u1", "group:g1:member:user:u2"]
        );
        assert!(page.included.pending.is_empty());
        // Names only: the host has the members now.
        assert_eq!(
            cached(&page, "g1"),
            CachedGroup {
                name: "Legal".into(),
                members: None
            }
        );
        assert_eq!(
            cached(&page, "g2"),
            CachedGroup {
                name: "g2".into(),
                members: None
            }
        );
    }

    #[test]
    fn groups_listed_without_members_are_pending() {
        let page = group_page(
            vec![
                listed(r#"{"id":"g1","displayName":"Legal"}"#),
                listed(r#"{"id":"g2","members":[{"value":"u1"}]}"#),
            ],
            MAX_INCLUDED_GRANTS,
        );
        assert_eq!(page.items.len(), 2);
        assert_eq!(ids(&page.included.pending), ["g1"]);
        assert_eq!(page.included.pending[0].resource_type, "group");
        assert_eq!(page.included.entitlements.len(), 1);
        assert_eq!(grant_ids(&page), ["group:g2:member:user:u1"]);
        // The name spares `list-entitlements` a request; there are no members to keep.
        assert_eq!(
            cached(&page, "g1"),
            CachedGroup {
                name: "Legal".into(),
                members: None
            }
        );
    }

    #[test]
    fn members_listed_twice_give_one_grant() {
        let page = group_page(
            vec![listed(
                r#"{"id":"g","members":[{"value":"u1"},{"value":"u2"},{"value":"u1"}]}"#,
            )],
            MAX_INCLUDED_GRANTS,
        );
        assert_eq!(
            grant_ids(&page),
            ["group:g:member:user:u1", "group:g:member:user:u2"]
        );
        let grants = member_grants("g", vec!["u2".into(), "u1".into(), "u2".into()]);
        let got: Vec<_> = grants
            .iter()
            .map(|g| g.principal.resource.as_str())
            .collect();
        assert_eq!(got, ["u2", "u1"]);
    }

    #[test]
    fn groups_past_the_budget_are_pending_with_their_members_kept() {
        let page = group_page(
            vec![
                listed(r#"{"id":"a","members":[{"value":"u1"},{"value":"u2"}]}"#),
                listed(r#"{"id":"big","members":[{"value":"u1"},{"value":"u2"},{"value":"u2"}]}"#),
                listed(r#"{"id":"c","members":[{"value":"u3"}]}"#),
            ],
            3,
        );
        assert_eq!(page.items.len(), 3);
        assert_eq!(ids(&page.included.pending), ["big"]);
        assert_eq!(
            grant_ids(&page),
            [
                "group:a:member:user:u1",
                "group:a:member:user:u2",
                "group:c:member:user:u3"
            ]
        );
        // Already deduplicated, ready for its `list-grants`.
        assert_eq!(
            cached(&page, "big").members,
            Some(vec!["u1".to_owned(), "u2".to_owned()])
        );
        assert_eq!(cached(&page, "c").members, None);
    }

    #[test]
    fn a_budget_of_zero_still_includes_empty_groups() {
        let page = group_page(
            vec![
                listed(r#"{"id":"g","members":[]}"#),
                listed(r#"{"id":"h","members":[{"value":"u"}]}"#),
            ],
            0,
        );
        assert_eq!(page.included.entitlements.len(), 1);
        assert_eq!(ids(&page.included.pending), ["h"]);
    }

    #[test]
    fn an_empty_page_includes_nothing() {
        let page = group_page(Vec::new(), MAX_INCLUDED_GRANTS);
        assert!(page.items.is_empty() && page.cache.is_empty());
        assert!(page.included.entitlements.is_empty() && page.included.grants.is_empty());
        assert!(page.included.pending.is_empty());
    }
}
