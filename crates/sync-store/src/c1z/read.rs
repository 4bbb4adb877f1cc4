//! Reads a c1z back into the sync's output model, so `inspect` shows a c1z
//! and a JSON output the same way. Resources, types and entitlements come
//! from their protobuf blobs; grants from their denormalized columns (their
//! blobs repeat the entitlement and principal, and there can be 500,000).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use prost::Message as _;
use prost_types::{value::Kind as ValueKind, Struct, Value};
use rusqlite::{Connection, OpenFlags};
use serde::Serialize;

use super::guard::Budget;
use super::proto::{self, user_trait};
use super::Limits;
use crate::model::{self as output, SyncOutput};

/// One row of `v1_sync_runs`, with its row counts.
#[derive(Clone, Debug, Serialize)]
pub struct SyncInfo {
    /// The sync's KSUID.
    pub sync_id: String,
    /// `full` for what this crate writes; other tools write `partial`, ….
    pub sync_type: String,
    /// Local time, `YYYY-MM-DD HH:MM:SS[.fraction]`.
    pub started_at: String,
    /// Local time; `None` for a sync that never finished.
    pub ended_at: Option<String>,
    /// Resource rows of the sync.
    pub resources: u64,
    /// Entitlement rows of the sync.
    pub entitlements: u64,
    /// Grant rows of the sync.
    pub grants: u64,
    /// The `stats` column, when it holds JSON.
    #[serde(skip)]
    pub stats: Option<serde_json::Value>,
}

/// An unpacked c1z, open read-only, its schema checked; each statement on
/// it runs under the budget of its [`Limits`] ([`C1zError::TooSlow`]). The
/// temp copy goes when this drops.
///
/// [`C1zError::TooSlow`]: super::C1zError::TooSlow
pub struct C1z {
    conn: Connection,
    budget: Budget,
    /// The c1z's path, for messages.
    file: PathBuf,
    _dir: tempfile::TempDir,
}

impl C1z {
    /// Unpacks the c1z at `path` into a private temp directory and opens it,
    /// under the default [`Limits`].
    pub fn open(path: &Path) -> anyhow::Result<C1z> {
        C1z::open_with(path, &Limits::default())
    }

    /// [`C1z::open`] under `limits`. The file is refused with a
    /// [`C1zError`](super::C1zError) if it decodes to more than their cap,
    /// if its database is not exactly the schema this crate writes (a
    /// view, a trigger, a table, index or column of its own), or if
    /// checking that runs past the statement budget.
    pub fn open_with(path: &Path, limits: &Limits) -> anyhow::Result<C1z> {
        C1z::open_in(path, limits, &std::env::temp_dir())
    }

    /// [`C1z::open_with`], its temp directory made in `tmp` (a caller that
    /// must clean up after a signal gives a directory of its own).
    pub fn open_in(path: &Path, limits: &Limits, tmp: &Path) -> anyhow::Result<C1z> {
        let mut b = tempfile::Builder::new();
        b.prefix("connector-host-inspect-");
        // tempfile's default, but said: the copy is a tenant's data.
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            b.permissions(std::fs::Permissions::from_mode(0o700));
        }
        let dir = b
            .tempdir_in(tmp)
            .with_context(|| format!("cannot create a temporary directory in {}", tmp.display()))?;
        let db = dir.path().join("sync.db");
        super::unpack_capped(path, &db, limits.max_decoded_bytes)?;
        let conn = Connection::open_with_flags(&db, OpenFlags::SQLITE_OPEN_READ_ONLY)
            .with_context(|| format!("{} is not a valid c1z file", path.display()))?;
        // Nothing in the file runs: SQLite's defences first, then its
        // schema checked before any statement reads a row.
        super::guard::harden(&conn)?;
        let budget = Budget::install(&conn, limits.statement_budget);
        super::trust::check(&conn, path).map_err(|e| budget.explain(e, path))?;
        Ok(C1z {
            conn,
            budget,
            file: path.to_path_buf(),
            _dir: dir,
        })
    }

    /// Every sync in the file, newest first.
    pub fn syncs(&self) -> anyhow::Result<Vec<SyncInfo>> {
        self.syncs_now()
            .map_err(|e| self.budget.explain(e, &self.file))
    }

    /// One sync, in the output model.
    pub fn load(&self, sync: &SyncInfo) -> anyhow::Result<SyncOutput> {
        self.load_now(sync)
            .map_err(|e| self.budget.explain(e, &self.file))
    }

    /// A statement on the file, with the budget's clock restarted: each
    /// is run as soon as it is prepared.
    fn prepare(&self, sql: &str) -> rusqlite::Result<rusqlite::Statement<'_>> {
        self.budget.restart();
        self.conn.prepare(sql)
    }

    fn syncs_now(&self) -> anyhow::Result<Vec<SyncInfo>> {
        let counts = |table: &str| -> anyhow::Result<BTreeMap<String, u64>> {
            let mut stmt = self.prepare(&format!(
                "SELECT sync_id, count(*) FROM {table} GROUP BY sync_id"
            ))?;
            let rows = stmt.query_map([], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)? as u64))
            })?;
            Ok(rows.collect::<Result<_, _>>()?)
        };
        let (res, ents, grants) = (
            counts("v1_resources")?,
            counts("v1_entitlements")?,
            counts("v1_grants")?,
        );
        let mut stmt = self.prepare(
            "SELECT sync_id, sync_type, started_at, ended_at, stats FROM v1_sync_runs \
             ORDER BY ended_at IS NULL, ended_at DESC, id DESC",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, Option<String>>(3)?,
                r.get::<_, Option<String>>(4)?,
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (sync_id, sync_type, started_at, ended_at, stats) = row?;
            let n = |m: &BTreeMap<String, u64>| m.get(&sync_id).copied().unwrap_or(0);
            out.push(SyncInfo {
                resources: n(&res),
                entitlements: n(&ents),
                grants: n(&grants),
                stats: stats.and_then(|s| serde_json::from_str(&s).ok()),
                sync_id,
                sync_type,
                started_at,
                ended_at,
            });
        }
        Ok(out)
    }

    /// Finished full syncs, newest first: what readers take as "the" sync
    /// and what diffs compare.
    pub fn finished(&self) -> anyhow::Result<Vec<SyncInfo>> {
        Ok(self
            .syncs()?
            .into_iter()
            .filter(|s| s.ended_at.is_some() && s.sync_type == "full")
            .collect())
    }

    fn load_now(&self, sync: &SyncInfo) -> anyhow::Result<SyncOutput> {
        let id = sync.sync_id.as_str();
        let resource_types = self.blobs("v1_resource_types", id, |b| {
            let t = proto::ResourceType::decode(b)?;
            Ok(output::ResourceType {
                id: t.id,
                display_name: t.display_name,
                traits: t.traits.iter().map(|v| trait_of(*v)).collect(),
                description: t.description,
            })
        })?;
        let resources = self.blobs("v1_resources", id, |b| {
            Ok(resource(proto::Resource::decode(b)?))
        })?;
        let entitlements = self.blobs("v1_entitlements", id, |b| {
            let e = proto::Entitlement::decode(b)?;
            let owner = e.resource.and_then(|r| r.id).unwrap_or_default();
            Ok(output::Entitlement {
                id: e.id,
                resource: output::ResourceId {
                    resource_type: owner.resource_type,
                    resource: owner.resource,
                },
                slug: e.slug,
                display_name: e.display_name,
                description: e.description,
                purpose: purpose_of(e.purpose),
                grantable_to: e.grantable_to.into_iter().map(|t| t.id).collect(),
            })
        })?;

        let mut stmt = self.prepare(
            "SELECT external_id, entitlement_id, principal_resource_type_id, principal_resource_id \
             FROM v1_grants WHERE sync_id = ?1 ORDER BY id",
        )?;
        let grants = stmt
            .query_map([id], |r| {
                Ok(output::Grant {
                    id: r.get(0)?,
                    entitlement: r.get(1)?,
                    principal: output::ResourceId {
                        resource_type: r.get(2)?,
                        resource: r.get(3)?,
                    },
                })
            })?
            .collect::<Result<Vec<_>, _>>()
            .context("cannot read v1_grants")?;

        let stored = sync.stats.clone().unwrap_or_default();
        let connector =
            serde_json::from_value(stored["connector"].clone()).unwrap_or(output::ConnectorInfo {
                display_name: String::new(),
                version: String::new(),
            });
        let mut stats: output::Stats = serde_json::from_value(stored).unwrap_or_default();
        // The stored counts are the writer's word; these are the file's.
        stats.resources = BTreeMap::new();
        for r in &resources {
            *stats
                .resources
                .entry(r.id.resource_type.clone())
                .or_default() += 1;
        }
        stats.entitlements = entitlements.len() as u64;
        stats.grants = grants.len() as u64;
        if stats.started_at.is_empty() {
            stats.started_at = sync.started_at.clone();
        }
        Ok(SyncOutput {
            connector,
            resource_types,
            resources,
            entitlements,
            grants,
            stats,
        })
    }

    fn blobs<T>(
        &self,
        table: &str,
        sync_id: &str,
        decode: impl Fn(&[u8]) -> Result<T, prost::DecodeError>,
    ) -> anyhow::Result<Vec<T>> {
        let mut stmt = self.prepare(&format!(
            "SELECT id, data FROM {table} WHERE sync_id = ?1 ORDER BY id"
        ))?;
        let mut rows = stmt.query([sync_id])?;
        let mut out = Vec::new();
        while let Some(row) = rows.next()? {
            let rowid: i64 = row.get(0)?;
            let data = row.get_ref(1)?.as_blob()?;
            out.push(
                decode(data)
                    .with_context(|| format!("{table} row {rowid}: its data does not decode"))?,
            );
        }
        Ok(out)
    }
}

pub(super) fn trait_of(v: i32) -> output::Trait {
    match proto::Trait::try_from(v) {
        Ok(proto::Trait::User) => output::Trait::User,
        Ok(proto::Trait::Group) => output::Trait::Group,
        Ok(proto::Trait::Role) => output::Trait::Role,
        Ok(proto::Trait::App) => output::Trait::App,
        Ok(proto::Trait::Secret) => output::Trait::Secret,
        _ => output::Trait::Unspecified,
    }
}

fn status_of(v: i32) -> output::AccountStatus {
    match proto::ResourceStatus::try_from(v) {
        Ok(proto::ResourceStatus::Enabled) => output::AccountStatus::Enabled,
        Ok(proto::ResourceStatus::Disabled) => output::AccountStatus::Disabled,
        Ok(proto::ResourceStatus::Deleted) => output::AccountStatus::Deleted,
        _ => output::AccountStatus::Unspecified,
    }
}

fn purpose_of(v: i32) -> output::Purpose {
    match proto::Purpose::try_from(v) {
        Ok(proto::Purpose::Assignment) => output::Purpose::Assignment,
        Ok(proto::Purpose::Permission) => output::Purpose::Permission,
        Ok(proto::Purpose::Ownership) => output::Purpose::Ownership,
        _ => output::Purpose::Unspecified,
    }
}

fn some(s: String) -> Option<String> {
    (!s.is_empty()).then_some(s)
}

fn resource(r: proto::Resource) -> output::Resource {
    let ut: Option<proto::UserTrait> =
        proto::find_annotation(&r.annotations, proto::USER_TRAIT_URL);
    let gt: Option<proto::GroupTrait> =
        proto::find_annotation(&r.annotations, proto::GROUP_TRAIT_URL);
    // Newer writers put these on the resource, older ones on the trait.
    let profile = r
        .profile
        .clone()
        .or_else(|| ut.as_ref().and_then(|u| u.profile.clone()))
        .or_else(|| gt.as_ref().and_then(|g| g.profile.clone()));
    let created_at = r
        .created_at
        .or_else(|| ut.as_ref().and_then(|u| u.created_at));
    let id = r.id.unwrap_or_default();
    output::Resource {
        id: output::ResourceId {
            resource_type: id.resource_type,
            resource: id.resource,
        },
        parent: r.parent_resource_id.map(|p| output::ResourceId {
            resource_type: p.resource_type,
            resource: p.resource,
        }),
        display_name: r.display_name,
        description: some(r.description),
        user: ut.map(|u| {
            let name = u.structured_name.unwrap_or_default();
            output::UserTrait {
                login: u.login,
                emails: u
                    .emails
                    .into_iter()
                    .map(|e: user_trait::Email| output::Email {
                        address: e.address,
                        primary: e.is_primary,
                    })
                    .collect(),
                status: status_of(u.status.map(|s| s.status).unwrap_or(0)),
                given_name: some(name.given_name),
                family_name: some(name.family_name),
            }
        }),
        group: gt.map(|g| output::GroupTrait {
            source: some(g.group_source_type),
        }),
        profile: profile.map(profile_strings).unwrap_or_default(),
        created_at: created_at.map(|t| t.to_string()),
    }
}

/// The output model keeps profile values as strings; other JSON kinds are
/// shown as their JSON text.
fn profile_strings(s: Struct) -> BTreeMap<String, String> {
    s.fields
        .into_iter()
        .map(|(k, v)| {
            let text = match v.kind {
                Some(ValueKind::StringValue(s)) => s,
                other => value_json(&Value { kind: other }).to_string(),
            };
            (k, text)
        })
        .collect()
}

fn value_json(v: &Value) -> serde_json::Value {
    match &v.kind {
        None | Some(ValueKind::NullValue(_)) => serde_json::Value::Null,
        Some(ValueKind::NumberValue(n)) => serde_json::json!(n),
        Some(ValueKind::StringValue(s)) => serde_json::json!(s),
        Some(ValueKind::BoolValue(b)) => serde_json::json!(b),
        Some(ValueKind::StructValue(s)) => serde_json::Value::Object(
            s.fields
                .iter()
                .map(|(k, v)| (k.clone(), value_json(v)))
                .collect(),
        ),
        Some(ValueKind::ListValue(l)) => {
            serde_json::Value::Array(l.values.iter().map(value_json).collect())
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::testing::{sample, write_doc};

    #[test]
    fn what_is_written_reads_back_the_same() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.c1z");
        let out = sample(&["u1", "u2"], &["u1", "u2"]);
        write_doc(&path, &out);
        let c = C1z::open(&path).unwrap();
        let syncs = c.finished().unwrap();
        assert_eq!(syncs.len(), 1);
        assert_eq!(
            (syncs[0].resources, syncs[0].entitlements, syncs[0].grants),
            (3, 1, 2)
        );
        let back = c.load(&syncs[0]).unwrap();
        let a = serde_json::to_value(&out).unwrap();
        let b = serde_json::to_value(&back).unwrap();
        for key in [
            "connector",
            "resource_types",
            "resources",
            "entitlements",
            "grants",
        ] {
            assert_eq!(a[key], b[key], "{key}");
        }
        assert_eq!(a["stats"]["resources"], b["stats"]["resources"]);
    }

    #[test]
    fn syncs_come_newest_first() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.c1z");
        let first = write_doc(&path, &sample(&["u1"], &[]));
        let second = write_doc(&path, &sample(&["u1", "u2"], &["u2"]));
        let c = C1z::open(&path).unwrap();
        let ids: Vec<String> = c
            .finished()
            .unwrap()
            .into_iter()
            .map(|s| s.sync_id)
            .collect();
        assert_eq!(ids, [second.sync_id.unwrap(), first.sync_id.unwrap()]);
    }

    #[test]
    fn a_file_over_the_cap_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.c1z");
        write_doc(&path, &sample(&["u1"], &[]));
        let limits = Limits {
            max_decoded_bytes: 4096,
            ..Limits::default()
        };
        let e = C1z::open_with(&path, &limits).err().unwrap();
        assert!(e.to_string().contains("over the 4096 bytes cap"), "{e}");
    }

    #[cfg(unix)]
    #[test]
    fn the_unpacked_copy_is_private() {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.c1z");
        write_doc(&path, &sample(&["u1"], &[]));
        let c = C1z::open(&path).unwrap();
        assert_eq!(mode(c._dir.path()), 0o700);
        assert_eq!(mode(&c._dir.path().join("sync.db")), 0o600);
    }

    #[test]
    fn non_string_profile_values_show_as_json() {
        let s = Struct {
            fields: [
                (
                    "n".to_string(),
                    Value {
                        kind: Some(ValueKind::NumberValue(2.5)),
                    },
                ),
                (
                    "b".to_string(),
                    Value {
                        kind: Some(ValueKind::BoolValue(true)),
                    },
                ),
            ]
            .into(),
        };
        let m = profile_strings(s);
        assert_eq!(m["n"], "2.5");
        assert_eq!(m["b"], "true");
    }
}
