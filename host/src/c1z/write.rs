//! Turns one sync's [`SyncOutput`] into c1z rows and writes the file: the
//! new run is added to the syncs already in the file, the two newest
//! previous finished syncs are kept (what `diff` needs) and older ones are
//! dropped.
//!
//! The bench writes 500,000 grants and each grant's blob embeds its whole
//! entitlement and principal, so every resource and entitlement is encoded
//! once and grants are assembled from those bytes, in one transaction with
//! prepared statements.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context as _};
use prost::Message as _;
use prost_types::{value::Kind as ValueKind, Struct, Timestamp, Value};
use rusqlite::{params, Connection};
use serde::Serialize;

use super::proto::{self, user_trait};
use super::{pack, schema, sniff, unpack, Kind};
use crate::output::{self, SyncOutput};

/// What was written, for the summary and the logs.
#[derive(Debug)]
pub struct Written {
    pub sync_id: String,
    /// Previous finished syncs still in the file.
    pub kept: usize,
    /// Syncs dropped from the file (older ones, unfinished ones).
    pub dropped: usize,
}

/// The `stats` column: the sync's stats plus which connector wrote it (the
/// v1 tables have no other place for that).
#[derive(Serialize)]
struct StoredStats<'a> {
    connector: &'a output::ConnectorInfo,
    #[serde(flatten)]
    stats: &'a output::Stats,
}

pub fn write(path: &Path, out: &SyncOutput) -> anyhow::Result<Written> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    // Beside the target, not in /tmp: the database can be hundreds of MB and
    // /tmp is often memory.
    let work = tempfile::Builder::new()
        .prefix(".connector-host-")
        .tempdir_in(dir)
        .with_context(|| format!("cannot create a temporary directory in {}", dir.display()))?;
    let db_path = work.path().join("sync.db");
    let existed = match sniff(path)? {
        None => false,
        Some(Kind::C1zV1) => {
            unpack(path, &db_path)?;
            true
        }
        Some(kind) => bail!(
            "{} exists and is not a c1z v1 file ({}); refusing to replace it: remove it or choose another -f",
            path.display(),
            kind.describe()
        ),
    };

    let mut conn = Connection::open(&db_path).context("cannot open the temporary database")?;
    if existed {
        check_is_c1z_db(&conn)
            .with_context(|| format!("{} is not a valid c1z file", path.display()))?;
    }
    // The temp database is thrown away on any failure, so it needs no
    // journal and no fsyncs while it is built.
    conn.pragma_update_and_check(None, "journal_mode", "OFF", |r| r.get::<_, String>(0))?;
    conn.pragma_update(None, "synchronous", "OFF")?;
    conn.pragma_update(None, "cache_size", -65_536)?;
    schema::create(&conn).context("cannot create the c1z tables")?;

    let sync_id = super::new_sync_id();
    let started = started_at(out);
    let tx = conn.transaction()?;
    let discovered_at = local_time(&tx, SystemTime::now())?;
    let clock = std::time::Instant::now();
    insert_sync(&tx, out, &sync_id, &discovered_at)?;
    tracing::debug!(ms = clock.elapsed().as_millis() as u64, "c1z rows inserted");
    let ended_at = local_time(&tx, SystemTime::now())?;
    let started_at = local_time(&tx, started)?;
    let stats = serde_json::to_string(&StoredStats {
        connector: &out.connector,
        stats: &out.stats,
    })?;
    tx.execute(
        "INSERT INTO v1_sync_runs (sync_id, started_at, ended_at, sync_token, sync_type, parent_sync_id, \
         linked_sync_id, supports_diff, grants_backfilled, stats) \
         VALUES (?1, ?2, ?3, '', 'full', '', '', 0, 1, ?4)",
        params![sync_id, started_at, ended_at, stats],
    )?;
    let (kept, dropped, deleted_rows) = keep_recent(&tx, &sync_id)?;
    tx.commit().context("cannot commit the sync")?;
    tracing::debug!(ms = clock.elapsed().as_millis() as u64, "c1z committed");
    if deleted_rows > 0 {
        // Deleted syncs leave free pages; without this the file never shrinks.
        conn.execute_batch("VACUUM")?;
    }
    // Readers open the database with the default rollback journal; a file
    // packed in WAL (or no-journal) mode would need a `-wal` beside it.
    let mode: String =
        conn.pragma_update_and_check(None, "journal_mode", "DELETE", |r| r.get(0))?;
    if !mode.eq_ignore_ascii_case("delete") {
        bail!("cannot switch the database to journal_mode=DELETE (got {mode})");
    }
    conn.close()
        .map_err(|(_, e)| e)
        .context("cannot close the temporary database")?;
    tracing::debug!(
        ms = clock.elapsed().as_millis() as u64,
        "c1z database closed"
    );
    pack(&db_path, path)?;
    tracing::debug!(ms = clock.elapsed().as_millis() as u64, "c1z packed");
    tracing::info!(sync_id = %sync_id, kept, dropped, "c1z written");
    Ok(Written {
        sync_id,
        kept,
        dropped,
    })
}

fn check_is_c1z_db(conn: &Connection) -> anyhow::Result<()> {
    let n: i64 = conn
        .query_row(
            "SELECT count(*) FROM sqlite_master WHERE type='table' AND name='v1_sync_runs'",
            [],
            |r| r.get(0),
        )
        .context("its content is not an SQLite database")?;
    if n == 0 {
        bail!("its database has no v1_sync_runs table");
    }
    Ok(())
}

/// Drops every sync but `new` and the two newest previous finished full
/// ones; rows of unknown or unfinished syncs go too. Returns (kept, dropped
/// runs, deleted rows).
fn keep_recent(tx: &rusqlite::Transaction, new: &str) -> anyhow::Result<(usize, usize, usize)> {
    let mut keep: Vec<String> = vec![new.to_string()];
    {
        let mut stmt = tx.prepare(
            "SELECT sync_id FROM v1_sync_runs WHERE sync_id != ?1 AND ended_at IS NOT NULL \
             AND sync_type = 'full' ORDER BY ended_at DESC, id DESC LIMIT 2",
        )?;
        let rows = stmt.query_map([new], |r| r.get::<_, String>(0))?;
        for r in rows {
            keep.push(r?);
        }
    }
    let placeholders = vec!["?"; keep.len()].join(", ");
    let mut dropped = 0;
    let mut deleted = 0;
    for table in schema::TABLES {
        let n = tx.execute(
            &format!("DELETE FROM {table} WHERE sync_id NOT IN ({placeholders})"),
            rusqlite::params_from_iter(keep.iter()),
        )?;
        if table == "v1_sync_runs" {
            dropped = n;
        }
        deleted += n;
    }
    Ok((keep.len() - 1, dropped, deleted))
}

fn started_at(out: &SyncOutput) -> SystemTime {
    humantime::parse_rfc3339_weak(&out.stats.started_at).unwrap_or_else(|_| {
        SystemTime::now() - std::time::Duration::from_millis(out.stats.elapsed_ms)
    })
}

/// `YYYY-MM-DD HH:MM:SS[.fraction]` in local time, the fraction without
/// trailing zeros (MODEL.md). SQLite's `localtime` is libc's, so the zone
/// is the machine's, as the SDK's Go writer would use.
pub(super) fn local_time(conn: &Connection, t: SystemTime) -> rusqlite::Result<String> {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let base: String = conn.query_row(
        "SELECT datetime(?1, 'unixepoch', 'localtime')",
        [d.as_secs() as i64],
        |r| r.get(0),
    )?;
    Ok(with_fraction(base, d.subsec_nanos()))
}

fn with_fraction(mut s: String, nanos: u32) -> String {
    if nanos != 0 {
        let f = format!("{nanos:09}");
        s.push('.');
        s.push_str(f.trim_end_matches('0'));
    }
    s
}

fn insert_sync(
    tx: &rusqlite::Transaction,
    out: &SyncOutput,
    sync_id: &str,
    at: &str,
) -> anyhow::Result<()> {
    let types: HashMap<&str, proto::ResourceType> = out
        .resource_types
        .iter()
        .map(|t| (t.id.as_str(), resource_type(t)))
        .collect();

    let mut stmt = tx.prepare(
        "INSERT OR REPLACE INTO v1_resource_types (external_id, data, sync_id, discovered_at) VALUES (?1, ?2, ?3, ?4)",
    )?;
    for t in &out.resource_types {
        let data = types
            .get(t.id.as_str())
            .map(|p| p.encode_to_vec())
            .unwrap_or_default();
        stmt.execute(params![t.id, data, sync_id, at])?;
    }

    // Each resource's blob, by (type, id), to embed in entitlements and grants.
    let mut encoded: HashMap<(&str, &str), Vec<u8>> = HashMap::with_capacity(out.resources.len());
    let mut stmt = tx.prepare(
        "INSERT OR REPLACE INTO v1_resources (resource_type_id, external_id, parent_resource_type_id, \
         parent_resource_id, data, sync_id, discovered_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )?;
    let mut external_id = String::new();
    for r in &out.resources {
        let data = resource(r).encode_to_vec();
        external_id.clear();
        external_id.push_str(&r.id.resource_type);
        external_id.push(':');
        external_id.push_str(&r.id.resource);
        stmt.execute(params![
            r.id.resource_type,
            external_id,
            r.parent.as_ref().map(|p| p.resource_type.as_str()),
            r.parent.as_ref().map(|p| p.resource.as_str()),
            data,
            sync_id,
            at
        ])?;
        encoded.insert((r.id.resource_type.as_str(), r.id.resource.as_str()), data);
    }

    let mut ents: HashMap<&str, EntitlementRow> = HashMap::with_capacity(out.entitlements.len());
    let mut stmt = tx.prepare(
        "INSERT OR REPLACE INTO v1_entitlements (resource_type_id, resource_id, external_id, data, sync_id, \
         discovered_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?;
    for e in &out.entitlements {
        let owner = encoded
            .get(&(
                e.resource.resource_type.as_str(),
                e.resource.resource.as_str(),
            ))
            .and_then(|b| proto::Resource::decode(b.as_slice()).ok())
            .unwrap_or_else(|| bare_resource(&e.resource.resource_type, &e.resource.resource));
        let data = entitlement(e, owner, &types).encode_to_vec();
        stmt.execute(params![
            e.resource.resource_type,
            e.resource.resource,
            e.id,
            data,
            sync_id,
            at
        ])?;
        ents.insert(
            e.id.as_str(),
            EntitlementRow {
                resource_type: e.resource.resource_type.clone(),
                resource: e.resource.resource.clone(),
                data,
            },
        );
    }

    let mut stmt = tx.prepare(
        "INSERT OR REPLACE INTO v1_grants (resource_type_id, resource_id, entitlement_id, \
         principal_resource_type_id, principal_resource_id, external_id, expansion, needs_expansion, data, \
         sync_id, discovered_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, NULL, 0, ?7, ?8, ?9)",
    )?;
    let mut buf = Vec::with_capacity(4096);
    let mut orphans = 0u64;
    for g in &out.grants {
        let found;
        let ent = match ents.get(g.entitlement.as_str()) {
            Some(e) => e,
            None => {
                orphans += 1;
                found = orphan_entitlement(&g.entitlement);
                &found
            }
        };
        let principal_key = (
            g.principal.resource_type.as_str(),
            g.principal.resource.as_str(),
        );
        let bare;
        let principal = match encoded.get(&principal_key) {
            Some(p) => p.as_slice(),
            None => {
                orphans += 1;
                bare = bare_resource(principal_key.0, principal_key.1).encode_to_vec();
                bare.as_slice()
            }
        };
        proto::encode_grant(&ent.data, principal, &g.id, &mut buf);
        stmt.execute(params![
            ent.resource_type,
            ent.resource,
            g.entitlement,
            g.principal.resource_type,
            g.principal.resource,
            g.id,
            buf,
            sync_id,
            at
        ])?;
    }
    if orphans > 0 {
        tracing::warn!(
            orphans,
            "grants name entitlements or principals the sync did not list; they carry only their ids"
        );
    }
    Ok(())
}

struct EntitlementRow {
    resource_type: String,
    resource: String,
    data: Vec<u8>,
}

/// An entitlement the sync did not list, from its id
/// (`<type>:<resource>:<slug>`) as far as that can be split.
fn orphan_entitlement(id: &str) -> EntitlementRow {
    let (resource_type, rest) = id.split_once(':').unwrap_or((id, ""));
    let (resource, slug) = rest.rsplit_once(':').unwrap_or((rest, ""));
    let e = proto::Entitlement {
        resource: Some(bare_resource(resource_type, resource)),
        id: id.to_string(),
        slug: slug.to_string(),
        ..Default::default()
    };
    EntitlementRow {
        resource_type: resource_type.to_string(),
        resource: resource.to_string(),
        data: e.encode_to_vec(),
    }
}

fn bare_resource(resource_type: &str, resource: &str) -> proto::Resource {
    proto::Resource {
        id: Some(resource_id(resource_type, resource)),
        ..Default::default()
    }
}

fn resource_id(resource_type: &str, resource: &str) -> proto::ResourceId {
    proto::ResourceId {
        resource_type: resource_type.to_string(),
        resource: resource.to_string(),
        baton_resource: false,
    }
}

pub(super) fn trait_value(name: &str) -> proto::Trait {
    match name {
        "user" => proto::Trait::User,
        "group" => proto::Trait::Group,
        "role" => proto::Trait::Role,
        "app" => proto::Trait::App,
        "secret" => proto::Trait::Secret,
        _ => proto::Trait::Unspecified,
    }
}

fn status_value(name: &str) -> proto::ResourceStatus {
    match name {
        "enabled" => proto::ResourceStatus::Enabled,
        "disabled" => proto::ResourceStatus::Disabled,
        "deleted" => proto::ResourceStatus::Deleted,
        _ => proto::ResourceStatus::Unspecified,
    }
}

fn purpose_value(name: &str) -> proto::Purpose {
    match name {
        "assignment" => proto::Purpose::Assignment,
        "permission" => proto::Purpose::Permission,
        "ownership" => proto::Purpose::Ownership,
        _ => proto::Purpose::Unspecified,
    }
}

fn resource_type(t: &output::ResourceType) -> proto::ResourceType {
    proto::ResourceType {
        id: t.id.clone(),
        display_name: t.display_name.clone(),
        traits: t.traits.iter().map(|n| trait_value(n) as i32).collect(),
        annotations: Vec::new(),
        description: t.description.clone(),
        sourced_externally: false,
    }
}

fn profile(p: &BTreeMap<String, String>) -> Option<Struct> {
    if p.is_empty() {
        return None;
    }
    Some(Struct {
        fields: p
            .iter()
            .map(|(k, v)| {
                (
                    k.clone(),
                    Value {
                        kind: Some(ValueKind::StringValue(v.clone())),
                    },
                )
            })
            .collect(),
    })
}

fn or_empty(s: &Option<String>) -> String {
    s.clone().unwrap_or_default()
}

/// The Resource message. Profile, status and created-at go on both the
/// resource (fields 9, 11, 12, newer readers) and the trait (older ones).
pub(super) fn resource(r: &output::Resource) -> proto::Resource {
    let profile = profile(&r.profile);
    let created_at = r
        .created_at
        .as_deref()
        .and_then(|s| s.parse::<Timestamp>().ok());
    let mut annotations = Vec::new();
    let mut status = None;
    if let Some(u) = &r.user {
        let st = status_value(&u.status) as i32;
        status = Some(proto::Status {
            status: st,
            details: String::new(),
        });
        let structured_name = (u.given_name.is_some() || u.family_name.is_some()).then(|| {
            user_trait::StructuredName {
                given_name: or_empty(&u.given_name),
                family_name: or_empty(&u.family_name),
                ..Default::default()
            }
        });
        let ut = proto::UserTrait {
            emails: u
                .emails
                .iter()
                .map(|e| user_trait::Email {
                    address: e.address.clone(),
                    is_primary: e.primary,
                })
                .collect(),
            status: Some(user_trait::Status {
                status: st,
                details: String::new(),
            }),
            profile: profile.clone(),
            account_type: proto::AccountType::Human as i32,
            login: u.login.clone(),
            login_aliases: Vec::new(),
            created_at,
            last_login: None,
            structured_name,
            employee_ids: Vec::new(),
        };
        annotations.push(proto::any(proto::USER_TRAIT_URL, &ut));
    }
    if let Some(g) = &r.group {
        let gt = proto::GroupTrait {
            profile: profile.clone(),
            group_source_type: or_empty(&g.source),
        };
        annotations.push(proto::any(proto::GROUP_TRAIT_URL, &gt));
    }
    proto::Resource {
        id: Some(resource_id(&r.id.resource_type, &r.id.resource)),
        parent_resource_id: r
            .parent
            .as_ref()
            .map(|p| resource_id(&p.resource_type, &p.resource)),
        display_name: r.display_name.clone(),
        annotations,
        description: or_empty(&r.description),
        profile,
        status,
        created_at,
    }
}

fn entitlement(
    e: &output::Entitlement,
    owner: proto::Resource,
    types: &HashMap<&str, proto::ResourceType>,
) -> proto::Entitlement {
    proto::Entitlement {
        resource: Some(owner),
        id: e.id.clone(),
        display_name: e.display_name.clone(),
        description: e.description.clone(),
        grantable_to: e
            .grantable_to
            .iter()
            .map(|t| {
                types
                    .get(t.as_str())
                    .cloned()
                    .unwrap_or_else(|| proto::ResourceType {
                        id: t.clone(),
                        ..Default::default()
                    })
            })
            .collect(),
        annotations: Vec::new(),
        purpose: purpose_value(&e.purpose) as i32,
        slug: e.slug.clone(),
    }
}

#[cfg(test)]
pub(super) mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::output::*;

    /// A small sync: two users, one group, its member entitlement, one grant.
    pub fn sample(users: &[&str], members: &[&str]) -> SyncOutput {
        let user = |id: &str| Resource {
            id: ResourceId {
                resource_type: "user".into(),
                resource: id.into(),
            },
            parent: None,
            display_name: format!("User {id}"),
            description: None,
            user: Some(UserTrait {
                login: format!("{id}@x.com"),
                emails: vec![Email {
                    address: format!("{id}@x.com"),
                    primary: true,
                }],
                status: "enabled".into(),
                given_name: Some("Ada".into()),
                family_name: Some(id.to_uppercase()),
            }),
            group: None,
            profile: [("title".to_string(), "Eng".to_string())].into(),
            created_at: Some("2025-03-26T18:33:48.336Z".into()),
        };
        let mut resources: Vec<Resource> = users.iter().map(|u| user(u)).collect();
        resources.push(Resource {
            id: ResourceId {
                resource_type: "group".into(),
                resource: "g1".into(),
            },
            parent: None,
            display_name: "Legal".into(),
            description: None,
            user: None,
            group: Some(GroupTrait {
                source: Some("external".into()),
            }),
            profile: BTreeMap::new(),
            created_at: None,
        });
        SyncOutput {
            connector: ConnectorInfo {
                display_name: "Ironclad".into(),
                version: "0.1.0".into(),
            },
            resource_types: vec![
                ResourceType {
                    id: "user".into(),
                    display_name: "User".into(),
                    traits: vec!["user".into()],
                    description: String::new(),
                },
                ResourceType {
                    id: "group".into(),
                    display_name: "Group".into(),
                    traits: vec!["group".into()],
                    description: "Ironclad groups".into(),
                },
            ],
            resources,
            entitlements: vec![Entitlement {
                id: "group:g1:member".into(),
                resource: ResourceId {
                    resource_type: "group".into(),
                    resource: "g1".into(),
                },
                slug: "member".into(),
                display_name: "Legal Group Member".into(),
                description: "Member of Legal".into(),
                purpose: "assignment".into(),
                grantable_to: vec!["user".into()],
            }],
            grants: members
                .iter()
                .map(|u| Grant {
                    id: format!("group:g1:member:user:{u}"),
                    entitlement: "group:g1:member".into(),
                    principal: ResourceId {
                        resource_type: "user".into(),
                        resource: u.to_string(),
                    },
                })
                .collect(),
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

    fn open(path: &Path) -> (tempfile::TempDir, Connection) {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("db");
        unpack(path, &db).unwrap();
        let conn = Connection::open(&db).unwrap();
        (dir, conn)
    }

    #[test]
    fn one_sync_gives_one_finished_full_run_and_its_rows() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.c1z");
        let w = write(&path, &sample(&["u1", "u2"], &["u1"])).unwrap();
        assert_eq!((w.kept, w.dropped), (0, 0));
        let (_d, conn) = open(&path);
        let (id, ended, token, kind, backfilled, stats): (String, Option<String>, String, String, i64, String) = conn
            .query_row(
                "SELECT sync_id, ended_at, sync_token, sync_type, grants_backfilled, stats FROM v1_sync_runs",
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?)),
            )
            .unwrap();
        assert_eq!(id, w.sync_id);
        assert!(ended.is_some());
        assert_eq!((token.as_str(), kind.as_str(), backfilled), ("", "full", 1));
        let stats: serde_json::Value = serde_json::from_str(&stats).unwrap();
        assert_eq!(stats["connector"]["display_name"], "Ironclad");
        assert_eq!(stats["grants"], 1);
        let mode: String = conn
            .query_row("PRAGMA journal_mode", [], |r| r.get(0))
            .unwrap();
        assert_eq!(mode, "delete");
        let (rt, rid, ent, pt, pid, data): (String, String, String, String, String, Vec<u8>) = conn
            .query_row(
                "SELECT resource_type_id, resource_id, entitlement_id, principal_resource_type_id, \
                 principal_resource_id, data FROM v1_grants",
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?)),
            )
            .unwrap();
        assert_eq!(
            (rt.as_str(), rid.as_str(), ent.as_str()),
            ("group", "g1", "group:g1:member")
        );
        assert_eq!((pt.as_str(), pid.as_str()), ("user", "u1"));
        let g = proto::Grant::decode(data.as_slice()).unwrap();
        let e = g.entitlement.unwrap();
        assert_eq!(e.resource.unwrap().display_name, "Legal");
        assert_eq!(e.grantable_to[0].display_name, "User");
        let p = g.principal.unwrap();
        let ut: proto::UserTrait =
            proto::find_annotation(&p.annotations, proto::USER_TRAIT_URL).unwrap();
        assert_eq!(ut.login, "u1@x.com");
        assert_eq!(ut.created_at, p.created_at);
        assert_eq!(ut.profile, p.profile);
        let ext: Vec<String> = conn
            .prepare("SELECT external_id FROM v1_resources ORDER BY id")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(ext, ["user:u1", "user:u2", "group:g1"]);
    }

    #[test]
    fn the_two_newest_previous_syncs_are_kept() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.c1z");
        let ids: Vec<String> = (0..4)
            .map(|_| {
                write(&path, &sample(&["u1", "u2"], &["u1", "u2"]))
                    .unwrap()
                    .sync_id
            })
            .collect();
        let (_d, conn) = open(&path);
        for table in schema::TABLES {
            let mut stmt = conn
                .prepare(&format!(
                    "SELECT DISTINCT sync_id FROM {table} ORDER BY sync_id"
                ))
                .unwrap();
            let got: Vec<String> = stmt
                .query_map([], |r| r.get(0))
                .unwrap()
                .collect::<Result<_, _>>()
                .unwrap();
            if matches!(table, "v1_assets" | "v1_connector_sessions") {
                assert!(got.is_empty());
                continue;
            }
            let mut want = ids[1..].to_vec();
            want.sort();
            assert_eq!(got, want, "{table}");
        }
    }

    #[test]
    fn a_file_that_is_not_a_c1z_is_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.c1z");
        std::fs::write(&path, "notes").unwrap();
        let e = write(&path, &sample(&["u1"], &[])).unwrap_err();
        assert!(e.to_string().contains("not a c1z"), "{e}");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "notes");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);

        // The right magic on a stream that is not zstd: refused too.
        std::fs::write(&path, b"C1ZF\0garbage").unwrap();
        let e = write(&path, &sample(&["u1"], &[])).unwrap_err();
        assert!(format!("{e:#}").contains("not a valid c1z"), "{e:#}");
        assert_eq!(std::fs::read(&path).unwrap(), b"C1ZF\0garbage");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn local_times_drop_trailing_zeros() {
        assert_eq!(
            with_fraction("2025-01-02 03:04:05".into(), 0),
            "2025-01-02 03:04:05"
        );
        assert_eq!(
            with_fraction("2025-01-02 03:04:05".into(), 120_000_000),
            "2025-01-02 03:04:05.12"
        );
        assert_eq!(
            with_fraction("2025-01-02 03:04:05".into(), 7),
            "2025-01-02 03:04:05.000000007"
        );
        let conn = Connection::open_in_memory().unwrap();
        let s = local_time(&conn, SystemTime::now()).unwrap();
        let b = s.as_bytes();
        assert!(
            s.len() >= 19 && b[4] == b'-' && b[10] == b' ' && b[13] == b':',
            "{s}"
        );
    }

    #[test]
    fn orphan_entitlements_are_split_from_their_id() {
        let e = orphan_entitlement("group:a:b:member");
        assert_eq!(
            (e.resource_type.as_str(), e.resource.as_str()),
            ("group", "a:b")
        );
        let p = proto::Entitlement::decode(e.data.as_slice()).unwrap();
        assert_eq!(p.slug, "member");
    }
}
