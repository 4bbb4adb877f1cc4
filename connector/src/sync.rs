//! The `sync` interface: settings loaded per call, Ironclad asked as little as possible.
//! Group listings carry their members, so entitlements and grants of a listed group are answered
//! from the instance's cache without a request.

use std::collections::HashSet;

use crate::client::{self, Ironclad};
use crate::config::Config;
use crate::errors::truncate;
use crate::mapping::{self, GROUP, USER};
use crate::paging::{self, Page};
use crate::scim::{Group, User};
use crate::state::{self, CachedGroup};
use crate::wit::{ConnectorError, EntitlementPage, GrantPage, Resource, ResourceId, ResourcePage};

/// Runs `f` against Ironclad, making sure no message carries the secret or the token.
fn with_ironclad<R>(
    f: impl FnOnce(&Ironclad) -> Result<R, ConnectorError>,
) -> Result<R, ConnectorError> {
    client::run(Config::load()?, &[], f)
}

pub fn outbound_origins() -> Result<Vec<String>, ConnectorError> {
    Ok(vec![Config::load()?.origin])
}

pub fn validate() -> Result<String, ConnectorError> {
    with_ironclad(|ic| ic.userinfo().map(|info| mapping::acting_as(&info)))
}

fn unknown_type(kind: &str) -> ConnectorError {
    ConnectorError::InvalidArgument(format!(
        "unknown resource type '{}': this connector has 'user' and 'group'",
        truncate(kind)
    ))
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
    let start = paging::start_index(token)?;
    let restart = token.is_none_or(str::is_empty);
    with_ironclad(|ic| {
        let (page, entries): (_, Vec<(String, Resource)>) = if kind == USER {
            let page = ic.users_page(start)?;
            let entries = page
                .items::<User>()
                .iter()
                .filter_map(mapping::user_resource)
                .map(|r| (r.id.resource.clone(), r))
                .collect();
            (page, entries)
        } else {
            let page = ic.groups_page(start)?;
            let groups = page.items::<Group>();
            remember_groups(&groups);
            let entries = groups
                .iter()
                .filter_map(mapping::group_resource)
                .map(|r| (r.id.resource.clone(), r))
                .collect();
            (page, entries)
        };
        let (items, repeated) = state::with(|s| s.dedupe(kind, restart, start, entries));
        let next_page_token = paging::next_token(&Page {
            start,
            len: page.page_len(),
            repeated,
            total_results: page.total_results,
        });
        Ok(ResourcePage {
            items,
            next_page_token,
            total_hint: page.total_results,
        })
    })
}

fn remember_groups(groups: &[Group]) {
    state::with(|s| {
        for g in groups {
            if let Some(id) = g.id.as_deref().filter(|id| !id.is_empty()) {
                s.groups.insert(
                    id.to_owned(),
                    CachedGroup {
                        name: mapping::group_name(g, id),
                        members: g.member_user_ids(),
                    },
                );
            }
        }
    });
}

/// The group as cached by a listing; asked of Ironclad (once) when not cached, or when `members`
/// are needed and the listing left them out.
fn group(id: &str, need_members: bool) -> Result<CachedGroup, ConnectorError> {
    let cached = state::with(|s| s.groups.get(id).cloned());
    if let Some(g) = cached.filter(|g| !need_members || g.members.is_some()) {
        return Ok(g);
    }
    let fetched = with_ironclad(|ic| ic.group(id))?;
    let g = CachedGroup {
        name: mapping::group_name(&fetched, id),
        members: Some(fetched.member_user_ids().unwrap_or_default()),
    };
    state::with(|s| s.groups.insert(id.to_owned(), g.clone()));
    Ok(g)
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
            let g = group(&resource.resource, false)?;
            vec![mapping::member_entitlement(&resource.resource, &g.name)]
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
            let g = group(&resource.resource, true)?;
            let mut seen = HashSet::new();
            g.members
                .unwrap_or_default()
                .iter()
                .filter(|uid| seen.insert(uid.as_str().to_owned()))
                .map(|uid| mapping::member_grant(&resource.resource, uid))
                .collect()
        }
        other => return Err(unknown_type(other)),
    };
    Ok(GrantPage {
        items,
        next_page_token: None,
    })
}
