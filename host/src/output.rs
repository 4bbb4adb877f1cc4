//! The sync's output document (snake_case JSON) and its atomic write: a
//! failed or interrupted sync never replaces a good file with a partial one.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::Path;

use anyhow::Context as _;
use serde::{Deserialize, Serialize};

use crate::bindings as wit;

#[derive(Debug, Serialize, Deserialize)]
pub struct SyncOutput {
    pub connector: ConnectorInfo,
    pub resource_types: Vec<ResourceType>,
    pub resources: Vec<Resource>,
    pub entitlements: Vec<Entitlement>,
    pub grants: Vec<Grant>,
    pub stats: Stats,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct ConnectorInfo {
    pub display_name: String,
    pub version: String,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct ResourceType {
    pub id: String,
    pub display_name: String,
    pub traits: Vec<String>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ResourceId {
    pub resource_type: String,
    pub resource: String,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct Resource {
    pub id: ResourceId,
    pub parent: Option<ResourceId>,
    pub display_name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    pub user: Option<UserTrait>,
    pub group: Option<GroupTrait>,
    pub profile: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_at: Option<String>,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct UserTrait {
    pub login: String,
    pub emails: Vec<Email>,
    pub status: String,
    pub given_name: Option<String>,
    pub family_name: Option<String>,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct Email {
    pub address: String,
    pub primary: bool,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct GroupTrait {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct Entitlement {
    pub id: String,
    pub resource: ResourceId,
    pub slug: String,
    pub display_name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    pub purpose: String,
    pub grantable_to: Vec<String>,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct Grant {
    pub id: String,
    pub entitlement: String,
    pub principal: ResourceId,
}

#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Stats {
    pub resources: BTreeMap<String, u64>,
    pub entitlements: u64,
    pub grants: u64,
    pub http_requests: u64,
    pub retries: u64,
    pub duplicates_skipped: u64,
    pub elapsed_ms: u64,
    pub started_at: String,
    /// Resource types whose count the application reported differently
    /// while the sync paged through them: records were created or deleted
    /// meanwhile, and a later sync will catch what this one missed.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub totals_moved: BTreeMap<String, TotalMoved>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TotalMoved {
    pub first: u64,
    pub last: u64,
}

impl From<&wit::ResourceId> for ResourceId {
    fn from(id: &wit::ResourceId) -> Self {
        ResourceId {
            resource_type: id.resource_type.clone(),
            resource: id.resource.clone(),
        }
    }
}

impl From<&wit::ResourceType> for ResourceType {
    fn from(t: &wit::ResourceType) -> Self {
        ResourceType {
            id: t.id.clone(),
            display_name: t.display_name.clone(),
            traits: t
                .traits
                .iter()
                .map(|t| trait_name(*t).to_string())
                .collect(),
            description: t.description.clone(),
        }
    }
}

pub fn trait_name(t: wit::ResourceTrait) -> &'static str {
    match t {
        wit::ResourceTrait::User => "user",
        wit::ResourceTrait::Group => "group",
        wit::ResourceTrait::Role => "role",
        wit::ResourceTrait::App => "app",
    }
}

fn status_name(s: wit::AccountStatus) -> &'static str {
    match s {
        wit::AccountStatus::Enabled => "enabled",
        wit::AccountStatus::Disabled => "disabled",
        wit::AccountStatus::Deleted => "deleted",
        wit::AccountStatus::Unspecified => "unspecified",
    }
}

fn purpose_name(p: wit::Purpose) -> &'static str {
    match p {
        wit::Purpose::Assignment => "assignment",
        wit::Purpose::Permission => "permission",
        wit::Purpose::Ownership => "ownership",
    }
}

impl From<wit::Resource> for Resource {
    fn from(r: wit::Resource) -> Self {
        Resource {
            id: (&r.id).into(),
            parent: r.parent.as_ref().map(Into::into),
            display_name: r.display_name,
            description: r.description,
            user: r.user.map(|u| UserTrait {
                login: u.login,
                emails: u
                    .emails
                    .into_iter()
                    .map(|e| Email {
                        address: e.address,
                        primary: e.primary,
                    })
                    .collect(),
                status: status_name(u.status).to_string(),
                given_name: u.given_name,
                family_name: u.family_name,
            }),
            group: r.group.map(|g| GroupTrait { source: g.source }),
            profile: r.profile.into_iter().collect(),
            created_at: r.created_at,
        }
    }
}

impl From<wit::Entitlement> for Entitlement {
    fn from(e: wit::Entitlement) -> Self {
        Entitlement {
            resource: (&e.resource).into(),
            id: e.id,
            slug: e.slug,
            display_name: e.display_name,
            description: e.description,
            purpose: purpose_name(e.purpose).to_string(),
            grantable_to: e.grantable_to,
        }
    }
}

impl From<wit::Grant> for Grant {
    fn from(g: wit::Grant) -> Self {
        Grant {
            id: g.id,
            entitlement: g.entitlement,
            principal: (&g.principal).into(),
        }
    }
}

/// Writes `bytes` to `path` through a temp file in the same directory,
/// flushed to disk, then renamed over the target.
pub fn write_atomically(
    path: &Path,
    write: impl FnOnce(&mut dyn std::io::Write) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let mut tmp = tempfile::Builder::new()
        .prefix(".connector-host-")
        .suffix(".tmp")
        .tempfile_in(dir)
        .with_context(|| format!("cannot create a temporary file in {}", dir.display()))?;
    {
        let mut buffered = std::io::BufWriter::new(tmp.as_file_mut());
        write(&mut buffered)?;
        buffered.flush().context("cannot write the output")?;
    }
    tmp.as_file()
        .sync_all()
        .context("cannot flush the output to disk")?;
    tmp.persist(path)
        .with_context(|| format!("cannot move the output into place at {}", path.display()))?;
    Ok(())
}

pub fn write_json(path: &Path, doc: &SyncOutput) -> anyhow::Result<()> {
    write_atomically(path, |w| {
        serde_json::to_writer(&mut *w, doc).context("cannot encode the output")?;
        w.write_all(b"\n")?;
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_failed_write_leaves_the_old_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.json");
        std::fs::write(&path, "good").unwrap();
        let err = write_atomically(&path, |w| {
            w.write_all(b"partial")?;
            anyhow::bail!("interrupted")
        });
        assert!(err.is_err());
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "good");
        let leftovers: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(leftovers.len(), 1, "the temp file is cleaned up");
    }

    #[test]
    fn a_good_write_replaces_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.json");
        std::fs::write(&path, "old").unwrap();
        write_atomically(&path, |w| Ok(w.write_all(b"new")?)).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "new");
    }
}
