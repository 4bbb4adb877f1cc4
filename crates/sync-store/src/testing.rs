//! Small syncs for the tests, and a way to stream one into a sink.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::path::Path;

use crate::model::*;
use crate::sink::{Finished, RunStats, SyncSink};

/// A small sync: users, one group, its member entitlement, a grant per member.
pub fn sample(users: &[&str], members: &[&str]) -> SyncOutput {
    let user = |id: &str| Resource {
        id: rid("user", id),
        parent: None,
        display_name: format!("User {id}"),
        description: None,
        user: Some(UserTrait {
            login: format!("{id}@x.com"),
            emails: vec![Email {
                address: format!("{id}@x.com"),
                primary: true,
            }],
            status: AccountStatus::Enabled,
            given_name: Some("Ada".into()),
            family_name: Some(id.to_uppercase()),
        }),
        group: None,
        profile: [("title".to_string(), "Eng".to_string())].into(),
        created_at: Some("2025-03-26T18:33:48.336Z".into()),
    };
    let mut resources: Vec<Resource> = users.iter().map(|u| user(u)).collect();
    resources.push(group("g1", "Legal"));
    SyncOutput {
        connector: ConnectorInfo {
            display_name: "Ironclad".into(),
            version: "0.1.0".into(),
        },
        resource_types: vec![
            ResourceType {
                id: "user".into(),
                display_name: "User".into(),
                traits: vec![Trait::User],
                description: String::new(),
            },
            ResourceType {
                id: "group".into(),
                display_name: "Group".into(),
                traits: vec![Trait::Group],
                description: "Ironclad groups".into(),
            },
        ],
        resources,
        entitlements: vec![member("g1", "Legal")],
        grants: members.iter().map(|u| grant("g1", u)).collect(),
        stats: Stats {
            resources: [
                ("user".to_string(), users.len() as u64),
                ("group".to_string(), 1),
            ]
            .into(),
            entitlements: 1,
            grants: members.len() as u64,
            started_at: "2025-06-01T10:00:00Z".into(),
            ..Stats::default()
        },
    }
}

pub fn rid(t: &str, id: &str) -> ResourceId {
    ResourceId {
        resource_type: t.into(),
        resource: id.into(),
    }
}

pub fn group(id: &str, name: &str) -> Resource {
    Resource {
        id: rid("group", id),
        parent: None,
        display_name: name.into(),
        description: None,
        user: None,
        group: Some(GroupTrait {
            source: Some("external".into()),
        }),
        profile: BTreeMap::new(),
        created_at: None,
    }
}

pub fn member(group: &str, name: &str) -> Entitlement {
    Entitlement {
        id: format!("group:{group}:member"),
        resource: rid("group", group),
        slug: "member".into(),
        display_name: format!("{name} Group Member"),
        description: format!("Member of {name}"),
        purpose: Purpose::Assignment,
        grantable_to: vec!["user".into()],
    }
}

pub fn grant(group: &str, user: &str) -> Grant {
    Grant {
        id: format!("group:{group}:member:user:{user}"),
        entitlement: format!("group:{group}:member"),
        principal: rid("user", user),
    }
}

pub fn run_stats(doc: &SyncOutput) -> RunStats {
    RunStats {
        started_at: doc.stats.started_at.clone(),
        http_requests: 7,
        retries: 1,
        duplicates_skipped: 0,
        fetch_ms: 1234,
        totals_moved: BTreeMap::new(),
    }
}

/// Everything in `doc` into `sink`, `page` rows a call.
pub fn feed(sink: &mut dyn SyncSink, doc: &SyncOutput, page: usize) -> anyhow::Result<()> {
    sink.begin(&doc.connector, &doc.resource_types)?;
    for rows in doc.resources.chunks(page) {
        sink.resources(rows.to_vec())?;
    }
    for rows in doc.entitlements.chunks(page) {
        sink.entitlements(rows.to_vec())?;
    }
    for rows in doc.grants.chunks(page) {
        sink.grants(rows.to_vec())?;
    }
    Ok(())
}

/// `doc` written to the c1z at `path` through the streaming sink.
pub fn write_doc(path: &Path, doc: &SyncOutput) -> Finished {
    let mut sink = crate::c1z::sink(path).unwrap();
    feed(sink.as_mut(), doc, 2).unwrap();
    sink.finish(run_stats(doc)).unwrap()
}
