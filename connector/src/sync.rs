//! The `sync` interface: settings loaded per call, Ironclad asked as little as possible.
//! Group listings carry their members, so a page of groups also carries their entitlements and
//! grants (`included`); the few groups it cannot include are answered by `list-entitlements` and
//! `list-grants`, from what the page left in the instance's cache or with one request.

use crate::ahead;
use crate::client::{self, Ironclad, Listing};
use crate::config::Config;
use crate::errors::{self, truncate};
use crate::included::{self, ListedGroup, MAX_INCLUDED_GRANTS};
use crate::mapping::{self, GROUP, USER};
use crate::paging::{self, Page, PAGE_SIZE};
use crate::scim::{Group, ListResponse, User};
use crate::state::{self, CachedGroup};
use crate::wit::{
    ConnectorError, EntitlementPage, GrantPage, Included, Resource, ResourceId, ResourcePage,
};

/// Runs `f` against Ironclad, making sure no message carries the secret or the token.
fn with_ironclad<R>(
    f: impl FnOnce(&Ironclad) -> Result<R, ConnectorError>,
) -> Result<R, ConnectorError> {
    client::run(Config::load()?, &[], f)
}

pub fn outbound_origins() -> Result<Vec<String>, ConnectorError> {
    Ok(vec![Config::load()?.origin])
}

/// The line is Ironclad's words, so it is handed back with the call's secrets hidden, like any
/// error quoting them.
pub fn validate() -> Result<String, ConnectorError> {
    with_ironclad(|ic| {
        ic.userinfo()
            .map(|info| errors::hide_secrets(&mapping::acting_as(&info)))
    })
}

fn unknown_type(kind: &str) -> ConnectorError {
    ConnectorError::InvalidArgument(format!(
        "unknown resource type '{}': this connector has 'user' and 'group'",
        truncate(kind)
    ))
}

/// Where a listing stands: the `startIndex` asked for, and whether it starts afresh.
#[derive(Clone, Copy)]
struct At {
    start: u64,
    restart: bool,
}

fn noun(kind: &str) -> &'static str {
    if kind == USER {
        "users"
    } else {
        "groups"
    }
}

/// One page's items for the host, after dropping those an earlier page already returned.
struct Listed {
    items: Vec<Resource>,
    repeated: usize,
    included: Option<Included>,
}

/// `parent` is ignored: neither type has child types, so every listing is top-level.
pub fn list_resources(
    kind: &str,
    _parent: Option<&ResourceId>,
    token: Option<&str>,
) -> Result<ResourcePage, ConnectorError> {
    if kind != USER && kind != GROUP {
        return Err(unknown_type(kind));
    }
    let position = paging::position(token)?;
    let at = At {
        start: position.start,
        restart: token.is_none_or(str::is_empty),
    };
    with_ironclad(|ic| {
        // A page's length and totals, then its entries (consumed: each form of the page is
        // dropped as the next is built).
        let (len, total_results, listed) = if kind == USER {
            let page = ic.users_page(at.start)?;
            (page.page_len(), page.total_results, users(page, at))
        } else {
            let page = ic.groups_page(at.start)?;
            (page.page_len(), page.total_results, groups(page, at))
        };
        if at.restart {
            ahead::forget();
        }
        // A full page with a total known: the next pages start where offset paging puts them, so
        // they are asked for now, while the host works on this one (for groups, while it also asks
        // about the page's pending groups one by one, which needs no request). A page asked for
        // ahead is lost if the sync stops meanwhile; a resumed sync asks for it again.
        let first_total = position.first_total.or(total_results);
        if let (Some(total), true) = (first_total, len == PAGE_SIZE as usize) {
            let listing = if kind == USER {
                Listing::Users
            } else {
                Listing::Groups
            };
            ic.send_ahead(
                listing,
                &ahead::following(ahead::limit(), at.start, u64::from(PAGE_SIZE), total),
            );
        }
        let paged = Page {
            noun: noun(kind),
            start: at.start,
            len,
            repeated: listed.repeated,
            total_results,
            // The first page's total; a plain-number token (from an earlier version) knows none,
            // and the listing is measured against this page's from there on.
            first_total: position.first_total.or(total_results),
        };
        let next_page_token = paging::next_token(&paged)?;
        if next_page_token.is_none() {
            state::with(|s| s.listing_done(kind));
            // The host lists the types in the order `resource-types` gives them: groups come
            // next, and their first page is asked for now. Were anything else asked first, the
            // page would be dropped unread.
            if kind == USER {
                ic.send_ahead(Listing::Groups, &[1]);
            }
        }
        Ok(ResourcePage {
            items: listed.items,
            next_page_token,
            total_hint: total_results,
            included: listed.included,
        })
    })
}

/// Users have no entitlements or grants (`resource_types` says so), hence nothing included.
fn users(page: ListResponse<User>, at: At) -> Listed {
    let entries = page
        .items()
        .iter()
        .filter_map(mapping::user_resource)
        .map(|r| (r.id.resource.clone(), r))
        .collect();
    let (items, repeated) = state::with(|s| s.dedupe(USER, at.restart, at.start, entries));
    Listed {
        items,
        repeated,
        included: None,
    }
}

/// Only the groups left after deduplication are included or pending: the host has the others
/// from an earlier page already.
fn groups(page: ListResponse<Group>, at: At) -> Listed {
    // Each group's member ids move from one form to the next, never copied: the guest's memory
    // peaks near one form of the page (never shrinking after), not their sum.
    let entries = page
        .items()
        .into_iter()
        .filter_map(ListedGroup::from_scim)
        .map(|g| (g.resource.id.resource.clone(), g))
        .collect();
    let (kept, repeated) = state::with(|s| s.dedupe(GROUP, at.restart, at.start, entries));
    let page = included::group_page(kept, MAX_INCLUDED_GRANTS);
    state::with(|s| s.groups.extend(page.cache));
    Listed {
        items: page.items,
        repeated,
        included: Some(page.included),
    }
}

/// The group as Ironclad has it now: its name and (deduplicated later) its member user ids.
fn fetch_group(id: &str) -> Result<(String, Vec<String>), ConnectorError> {
    let g = with_ironclad(|ic| ic.group(id))?;
    Ok((
        mapping::group_name(&g, id),
        g.member_ids.unwrap_or_default(),
    ))
}

/// The group's name: cached by a listing, else read from Ironclad. The members that come with
/// that read wait in the cache for the `list-grants` that follows, so it needs no request.
fn group_name(id: &str) -> Result<String, ConnectorError> {
    if let Some(name) = state::with(|s| s.group_name(id)) {
        return Ok(name);
    }
    let (name, members) = fetch_group(id)?;
    let g = CachedGroup {
        name: name.clone(),
        members: Some(members),
    };
    state::with(|s| s.groups.insert(id.to_owned(), g));
    Ok(name)
}

/// The group's members: those waiting in the cache (taken out: the host keeps them from here),
/// else read from Ironclad, keeping only the name.
fn group_members(id: &str) -> Result<Vec<String>, ConnectorError> {
    if let Some(members) = state::with(|s| s.take_members(id)) {
        return Ok(members);
    }
    let (name, members) = fetch_group(id)?;
    let g = CachedGroup {
        name,
        members: None,
    };
    state::with(|s| s.groups.insert(id.to_owned(), g));
    Ok(members)
}

/// Entitlements and grants come in one page; a token can only be one we never issued.
fn check_single_page(resource: &ResourceId, token: Option<&str>) -> Result<(), ConnectorError> {
    if token.is_some_and(|t| !t.is_empty()) {
        return Err(ConnectorError::InvalidArgument(format!(
            "page token given for {}:{}, but its entitlements and grants fit in one page: call again without a token",
            resource.resource_type,
            truncate(&resource.resource)
        )));
    }
    if resource.resource.is_empty() {
        return Err(ConnectorError::InvalidArgument(format!(
            "empty {} id",
            resource.resource_type
        )));
    }
    Ok(())
}

pub fn list_entitlements(
    resource: &ResourceId,
    token: Option<&str>,
) -> Result<EntitlementPage, ConnectorError> {
    let items = match resource.resource_type.as_str() {
        USER => Vec::new(),
        GROUP => {
            check_single_page(resource, token)?;
            let name = group_name(&resource.resource)?;
            vec![mapping::member_entitlement(&resource.resource, &name)]
        }
        other => return Err(unknown_type(other)),
    };
    Ok(EntitlementPage {
        items,
        next_page_token: None,
    })
}

pub fn list_grants(
    resource: &ResourceId,
    token: Option<&str>,
) -> Result<GrantPage, ConnectorError> {
    let items = match resource.resource_type.as_str() {
        USER => Vec::new(),
        GROUP => {
            check_single_page(resource, token)?;
            let members = group_members(&resource.resource)?;
            included::member_grants(&resource.resource, members)
        }
        other => return Err(unknown_type(other)),
    };
    Ok(GrantPage {
        items,
        next_page_token: None,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    fn list<T: serde::de::DeserializeOwned>(json: &str) -> ListResponse<T> {
        serde_json::from_str(json).unwrap()
    }

    fn rid(kind: &str, id: &str) -> ResourceId {
        mapping::resource_id(kind, id)
    }

    fn first_page() -> Listed {
        groups(
            list(
                r#"{"totalResults":4,"Resources":[
                    {"id":"g1","displayName":"Legal","members":[{"value":"u1"}]},
                    {"id":"g2","displayName":"Sales"}]}"#,
            ),
            At {
                start: 1,
                restart: true,
            },
        )
    }

    #[test]
    fn a_page_of_groups_includes_only_the_groups_it_returns() {
        first_page();
        // g1 shifted onto the next page: it was returned (and included) already.
        let listed = groups(
            list(
                r#"{"totalResults":4,"Resources":[
                    {"id":"g1","displayName":"Legal","members":[{"value":"u1"}]},
                    {"id":"g3","members":[{"value":"u2"},{"value":"u2"}]}]}"#,
            ),
            At {
                start: 3,
                restart: false,
            },
        );
        assert_eq!(listed.repeated, 1);
        let items: Vec<_> = listed
            .items
            .iter()
            .map(|r| r.id.resource.as_str())
            .collect();
        assert_eq!(items, ["g3"]);
        let inc = listed.included.unwrap();
        let ents: Vec<_> = inc.entitlements.iter().map(|e| e.id.as_str()).collect();
        assert_eq!(ents, ["group:g3:member"]);
        let grants: Vec<_> = inc.grants.iter().map(|g| g.id.as_str()).collect();
        assert_eq!(grants, ["group:g3:member:user:u2"]);
        assert!(inc.pending.is_empty());
    }

    #[test]
    fn listed_groups_leave_only_their_names_behind() {
        let listed = first_page();
        let inc = listed.included.unwrap();
        assert_eq!(inc.pending.len(), 1);
        assert_eq!(inc.pending[0].resource, "g2");
        let cache = state::with(|s| s.groups.clone());
        assert_eq!(cache.len(), 2);
        assert!(cache.values().all(|g| g.members.is_none()), "{cache:?}");
        // A pending group's entitlement is answered from the cached name, with no request.
        let page = list_entitlements(&rid(GROUP, "g2"), None).unwrap();
        assert_eq!(page.items.len(), 1);
        assert_eq!(page.items[0].display_name, "Sales Group Member");
    }

    #[test]
    fn waiting_members_are_handed_out_by_list_grants_once() {
        let waiting = CachedGroup {
            name: "Ops".into(),
            members: Some(vec!["u1".into(), "u2".into(), "u1".into()]),
        };
        state::with(|s| s.groups.insert("g".into(), waiting));
        let page = list_grants(&rid(GROUP, "g"), None).unwrap();
        let grants: Vec<_> = page.items.iter().map(|g| g.id.as_str()).collect();
        assert_eq!(grants, ["group:g:member:user:u1", "group:g:member:user:u2"]);
        assert_eq!(page.next_page_token, None);
        let left = state::with(|s| s.groups.get("g").cloned()).unwrap();
        assert_eq!((left.name.as_str(), left.members), ("Ops", None));
    }

    #[test]
    fn users_include_nothing_and_have_no_entitlements() {
        let listed = users(
            list(r#"{"Resources":[{"id":"u1","userName":"a@b.c"}]}"#),
            At {
                start: 1,
                restart: true,
            },
        );
        assert_eq!(listed.items.len(), 1);
        assert!(listed.included.is_none());
        assert!(list_entitlements(&rid(USER, "u1"), None)
            .unwrap()
            .items
            .is_empty());
        assert!(list_grants(&rid(USER, "u1"), None)
            .unwrap()
            .items
            .is_empty());
    }
}
