//! What changed between two syncs of one application: the resources,
//! entitlements and grants that came and went, and the resources still
//! there whose attributes changed. Records are matched by their ids
//! (a resource by type and id, an entitlement and a grant by their baton
//! ids); nothing here reads a file, so a c1z's two latest syncs, two JSON
//! outputs, or one of each (read the same way) compare alike.
//!
//! ```
//! # use sync_store::{diff::diff, SyncOutput};
//! # fn show(old: &SyncOutput, new: &SyncOutput) {
//! let d = diff(old, new);
//! for g in &d.grants_added {
//!     println!("+ {}", g.id);
//! }
//! # }
//! ```

use std::collections::{HashMap, HashSet};
use std::hash::Hash;

use serde::Serialize;

use crate::model::{Entitlement, Grant, Resource, SyncOutput};

/// Changes from an old sync to a new one. Each list keeps the order of the
/// sync its records come from (added and changed: the new one; removed: the
/// old one) and borrows from the two syncs.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Diff<'a> {
    /// Resources only in the new sync.
    pub resources_added: Vec<&'a Resource>,
    /// Resources only in the old sync.
    pub resources_removed: Vec<&'a Resource>,
    /// Resources in both whose attributes differ (name, traits, profile,
    /// parent, …).
    pub resources_changed: Vec<ResourceChange<'a>>,
    /// Entitlements only in the new sync.
    pub entitlements_added: Vec<&'a Entitlement>,
    /// Entitlements only in the old sync.
    pub entitlements_removed: Vec<&'a Entitlement>,
    /// Grants only in the new sync.
    pub grants_added: Vec<&'a Grant>,
    /// Grants only in the old sync.
    pub grants_removed: Vec<&'a Grant>,
}

/// One resource as each sync has it.
#[derive(Clone, Debug, Serialize)]
pub struct ResourceChange<'a> {
    /// The resource in the old sync.
    pub old: &'a Resource,
    /// The resource in the new sync.
    pub new: &'a Resource,
}

impl Diff<'_> {
    /// Nothing came, went or changed.
    pub fn is_empty(&self) -> bool {
        self.resources_added.is_empty()
            && self.resources_removed.is_empty()
            && self.resources_changed.is_empty()
            && self.entitlements_added.is_empty()
            && self.entitlements_removed.is_empty()
            && self.grants_added.is_empty()
            && self.grants_removed.is_empty()
    }
}

/// The items of `a` whose key no item of `b` has, in `a`'s order.
pub fn only_in<'a, T, K: Hash + Eq>(
    a: &'a [T],
    b: &'a [T],
    key: impl Fn(&'a T) -> K,
) -> Vec<&'a T> {
    let in_b: HashSet<K> = b.iter().map(&key).collect();
    a.iter().filter(|x| !in_b.contains(&key(x))).collect()
}

/// The changes from `old` to `new` (see [`Diff`]). Pure: it reads only the
/// two syncs.
pub fn diff<'a>(old: &'a SyncOutput, new: &'a SyncOutput) -> Diff<'a> {
    let rkey = |r: &'a Resource| (r.id.resource_type.as_str(), r.id.resource.as_str());
    let ekey = |e: &'a Entitlement| e.id.as_str();
    // A grant is who holds which entitlement, not the string joining them.
    let gkey = |g: &'a Grant| {
        (
            g.entitlement.as_str(),
            g.principal.resource_type.as_str(),
            g.principal.resource.as_str(),
        )
    };
    let before: HashMap<(&str, &str), &Resource> =
        old.resources.iter().map(|r| (rkey(r), r)).collect();
    let resources_changed = new
        .resources
        .iter()
        .filter_map(|n| {
            let o = before.get(&rkey(n))?;
            (*o != n).then_some(ResourceChange { old: o, new: n })
        })
        .collect();
    Diff {
        resources_added: only_in(&new.resources, &old.resources, rkey),
        resources_removed: only_in(&old.resources, &new.resources, rkey),
        resources_changed,
        entitlements_added: only_in(&new.entitlements, &old.entitlements, ekey),
        entitlements_removed: only_in(&old.entitlements, &new.entitlements, ekey),
        grants_added: only_in(&new.grants, &old.grants, gkey),
        grants_removed: only_in(&old.grants, &new.grants, gkey),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use serde_json::json;

    use super::*;
    use crate::model::{ResourceId, Stats};

    fn rid(t: &str, id: &str) -> ResourceId {
        ResourceId {
            resource_type: t.into(),
            resource: id.into(),
        }
    }

    fn sync(users: &[&str], grants: &[&str]) -> SyncOutput {
        let doc = json!({
            "connector": {"display_name": "Ironclad", "version": "0.1.0"},
            "resource_types": [{"id": "user", "display_name": "User", "traits": ["user"]}],
            "resources": users.iter().map(|u| json!({"id": rid("user", u), "parent": null, "display_name": u,
                "user": null, "group": null, "profile": {}})).collect::<Vec<_>>(),
            "entitlements": [],
            "grants": grants.iter().map(|u| json!({"id": format!("group:g:member:user:{u}"),
                "entitlement": "group:g:member", "principal": rid("user", u)})).collect::<Vec<_>>(),
            "stats": Stats::default(),
        });
        serde_json::from_value(doc).unwrap()
    }

    #[test]
    fn diff_names_what_came_and_went() {
        let old = sync(&["a", "b"], &["a", "b"]);
        let new = sync(&["a", "b", "c"], &["a"]);
        let d = diff(&old, &new);
        assert_eq!(d.resources_added.len(), 1);
        assert_eq!(d.resources_added[0].id.resource, "c");
        assert!(d.resources_removed.is_empty());
        assert!(d.resources_changed.is_empty());
        assert!(d.grants_added.is_empty());
        assert_eq!(d.grants_removed[0].id, "group:g:member:user:b");
        assert!(!d.is_empty());
        assert!(diff(&new, &new).is_empty());
    }

    #[test]
    fn a_resource_whose_attributes_changed_is_named_once() {
        let old = sync(&["a", "b"], &[]);
        let mut new = sync(&["b", "a"], &[]);
        new.resources[1].display_name = "Ada".into();
        new.resources[1]
            .profile
            .insert("title".into(), "Counsel".into());
        let d = diff(&old, &new);
        assert_eq!(d.resources_changed.len(), 1);
        let c = &d.resources_changed[0];
        assert_eq!(
            (c.old.display_name.as_str(), c.new.display_name.as_str()),
            ("a", "Ada")
        );
        assert!(d.resources_added.is_empty() && d.resources_removed.is_empty());
        assert!(!d.is_empty());
        // Order alone is no change.
        assert!(diff(&old, &sync(&["b", "a"], &[])).is_empty());
    }

    #[test]
    fn only_in_keeps_the_first_lists_order() {
        let a = [3, 1, 2, 5];
        let b = [2, 4];
        assert_eq!(only_in(&a, &b, |x| *x), [&3, &1, &5]);
    }
}
