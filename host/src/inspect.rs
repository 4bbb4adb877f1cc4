//! `connector-host inspect`: reads a sync's output, c1z or JSON, into one
//! in-memory view (the output model) and shows resources, entitlements,
//! grants, stats, the syncs a c1z holds and the diff between its two latest
//! finished syncs. Tables for people, `-o json` for scripts.

use std::collections::{BTreeMap, HashMap};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};

use anyhow::{bail, Context as _};
use serde::Serialize;
use serde_json::json;

use sync_store::c1z::{self, C1z, Kind, SyncInfo};
use sync_store::diff::diff;
use sync_store::model::{self as output, SyncOutput};

#[derive(clap::Args, Debug)]
pub struct InspectArgs {
    /// The sync output to read: a c1z or a JSON output.
    #[arg(
        short = 'f',
        long = "file",
        default_value = "sync.c1z",
        global = true,
        env = "BATON_FILE"
    )]
    pub file: PathBuf,

    /// How to print: `table` for people, `json` for scripts.
    #[arg(short = 'o', long = "output", value_enum, default_value_t = Format::Table, global = true)]
    pub output: Format,

    #[command(subcommand)]
    pub what: What,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Table,
    Json,
}

#[derive(clap::Subcommand, Debug)]
pub enum What {
    /// Resources of the latest sync.
    Resources {
        /// Only resources of this type (e.g. `user`).
        #[arg(short = 't', long = "resource-type")]
        resource_type: Option<String>,
    },
    /// Resource types of the latest sync.
    ResourceTypes,
    /// Entitlements of the latest sync.
    Entitlements {
        /// Only entitlements on resources of this type (e.g. `group`).
        #[arg(short = 't', long = "resource-type")]
        resource_type: Option<String>,
    },
    /// Grants of the latest sync.
    Grants {
        /// Only grants of this entitlement id.
        #[arg(short = 'e', long = "entitlement")]
        entitlement: Option<String>,
        /// Only grants to this principal or on this resource's entitlements, as TYPE:ID.
        #[arg(short = 'r', long = "resource", value_name = "TYPE:ID")]
        resource: Option<String>,
    },
    /// The latest sync's id, times and counts per type.
    Stats,
    /// The syncs the file holds, newest first.
    Syncs,
    /// Resources, entitlements and grants added and removed between the
    /// previous finished sync and the latest.
    Diff,
}

/// Where this run unpacks c1z files: a private directory of its own, so
/// [`clean_up`] can remove what was unpacked even when a signal stops the
/// run halfway through (the work runs on a thread the signal cannot stop).
static SCRATCH: Mutex<Option<PathBuf>> = Mutex::new(None);

fn scratch() -> anyhow::Result<PathBuf> {
    let dir = tempfile::Builder::new()
        .prefix("connector-host-")
        .tempdir()
        .context("cannot create a temporary directory to unpack into (check TMPDIR)")?
        .keep();
    *SCRATCH.lock().unwrap_or_else(PoisonError::into_inner) = Some(dir.clone());
    Ok(dir)
}

/// Removes whatever this run unpacked; called on every way out.
pub fn clean_up() {
    let dir = SCRATCH
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .take();
    if let Some(dir) = dir {
        let _ = std::fs::remove_dir_all(dir);
    }
}

pub fn run(args: &InspectArgs, limits: &c1z::Limits) -> anyhow::Result<()> {
    let mut out = Vec::new();
    let pending = match args.what {
        What::Syncs => c1z::pending(&args.file)?,
        _ => None,
    };
    match pending {
        None => render(Source::open(&args.file, limits)?, args, &mut out)?,
        Some(p) => {
            // A first sync that stopped part way has no file yet.
            let syncs = match args.file.exists() {
                true => Source::open(&args.file, limits)?.syncs()?,
                false => Vec::new(),
            };
            render_syncs_with_pending(&p, &syncs, args.output == Format::Json, &mut out)?;
        }
    }
    let mut stdout = std::io::stdout().lock();
    // A closed pipe (`| head`) is not an error.
    match stdout.write_all(&out).and_then(|_| stdout.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e.into()),
        _ => Ok(()),
    }
}

/// `syncs` with the unfinished sync to the file: first in the JSON array
/// (`ended_at` null, `unfinished` true, and its position), and on a line
/// after the table for people.
fn render_syncs_with_pending(
    p: &c1z::Pending,
    syncs: &[SyncInfo],
    json_out: bool,
    w: &mut Vec<u8>,
) -> anyhow::Result<()> {
    let (doc, line) = match p {
        c1z::Pending::Running => (
            json!({"unfinished": true, "running": true}),
            "unfinished: a sync to this file is running now".to_string(),
        ),
        c1z::Pending::Stopped(u) => {
            let at = connector_runtime::checkpoint::describe_state(&u.state);
            (
                json!({
                    "sync_id": u.sync_id, "sync_type": "full", "started_at": u.started_at,
                    "ended_at": null, "resources": u.resources,
                    "entitlements": u.entitlements, "grants": u.grants,
                    "unfinished": true, "running": false, "position": at,
                }),
                format!(
                    "unfinished: sync {} started {}, stopped at {at} with {} resources, {} entitlements and {} grants kept; the next sync to this file continues it",
                    u.sync_id, u.started_at, u.resources, u.entitlements, u.grants
                ),
            )
        }
    };
    if json_out {
        let mut all = vec![doc];
        for s in syncs {
            all.push(serde_json::to_value(s)?);
        }
        return write_json(w, &all);
    }
    if !syncs.is_empty() {
        syncs_table(w, syncs)?;
    }
    writeln!(w, "{}", crate::terminal::escape(&line))?;
    Ok(())
}

/// The syncs of a file, a row each.
fn syncs_table(w: &mut Vec<u8>, syncs: &[SyncInfo]) -> anyhow::Result<()> {
    table(
        w,
        &[
            "SYNC ID",
            "TYPE",
            "STARTED",
            "ENDED",
            "RESOURCES",
            "ENTITLEMENTS",
            "GRANTS",
        ],
        syncs.iter().map(|s| {
            vec![
                dash(&s.sync_id),
                s.sync_type.clone(),
                dash(&s.started_at),
                dash(s.ended_at.as_deref().unwrap_or("")),
                s.resources.to_string(),
                s.entitlements.to_string(),
                s.grants.to_string(),
            ]
        }),
    )
}

/// A sync as inspect shows it: where it came from, and its content.
struct Snapshot {
    info: SyncInfo,
    out: SyncOutput,
}

enum Source {
    Json(Box<Snapshot>),
    C1z(Box<C1z>),
}

impl Source {
    fn open(path: &Path, limits: &c1z::Limits) -> anyhow::Result<Source> {
        let name = path.display();
        match c1z::sniff(path)? {
            None => bail!(
                "{name} does not exist: run `connector-host sync -f {name}` first, or pass -f FILE"
            ),
            Some(Kind::C1zV1) => Ok(Source::C1z(Box::new(C1z::open_in(
                path,
                limits,
                &scratch()?,
            )?))),
            Some(Kind::Json) => {
                let f = std::fs::File::open(path).with_context(|| format!("cannot open {name}"))?;
                let mut out: SyncOutput = serde_json::from_reader(std::io::BufReader::new(f))
                    .with_context(|| format!("{name} is not a sync output (JSON)"))?;
                normalize(&mut out);
                let info = SyncInfo {
                    sync_id: String::new(),
                    sync_type: "full".into(),
                    started_at: out.stats.started_at.clone(),
                    ended_at: None,
                    resources: out.resources.len() as u64,
                    entitlements: out.entitlements.len() as u64,
                    grants: out.grants.len() as u64,
                    stats: None,
                };
                Ok(Source::Json(Box::new(Snapshot { info, out })))
            }
            Some(Kind::C1zV3) => {
                bail!("{name} is a c1z v3 (Pebble) file; this host reads c1z v1 and JSON")
            }
            Some(Kind::Other) => bail!("{name} is neither a c1z file nor a JSON sync output"),
        }
    }

    fn syncs(&self) -> anyhow::Result<Vec<SyncInfo>> {
        match self {
            Source::Json(s) => Ok(vec![s.info.clone()]),
            Source::C1z(c) => c.syncs(),
        }
    }

    /// The newest `n` finished syncs, newest first.
    fn latest(self, n: usize) -> anyhow::Result<Vec<Snapshot>> {
        match self {
            Source::Json(s) => {
                if n > 1 {
                    bail!("a JSON output holds one sync; a diff needs a c1z file that holds a previous sync");
                }
                Ok(vec![*s])
            }
            Source::C1z(c) => {
                let finished = c.finished()?;
                if finished.is_empty() {
                    bail!("the file holds no finished sync");
                }
                if finished.len() < n {
                    bail!(
                        "the file holds {} finished sync(s); a diff needs {n}: sync again into the same file",
                        finished.len()
                    );
                }
                finished
                    .into_iter()
                    .take(n)
                    .map(|info| {
                        Ok(Snapshot {
                            out: c.load(&info)?,
                            info,
                        })
                    })
                    .collect()
            }
        }
    }

    fn one(self) -> anyhow::Result<Snapshot> {
        self.latest(1)?
            .into_iter()
            .next()
            .context("the file holds no finished sync")
    }
}

/// Puts a JSON output in the form a c1z reads back as, so the two compare
/// equal: empty strings are absent, times are RFC 3339 as protobuf prints them.
fn normalize(out: &mut SyncOutput) {
    let clear = |s: &mut Option<String>| {
        if s.as_deref() == Some("") {
            *s = None;
        }
    };
    for r in &mut out.resources {
        clear(&mut r.description);
        if let Some(t) = r
            .created_at
            .as_deref()
            .and_then(|s| s.parse::<prost_types::Timestamp>().ok())
        {
            r.created_at = Some(t.to_string());
        }
        if let Some(u) = &mut r.user {
            clear(&mut u.given_name);
            clear(&mut u.family_name);
        }
        if let Some(g) = &mut r.group {
            clear(&mut g.source);
        }
    }
}

fn render(source: Source, args: &InspectArgs, w: &mut Vec<u8>) -> anyhow::Result<()> {
    let json_out = args.output == Format::Json;
    match &args.what {
        What::Resources { resource_type } => {
            let s = source.one()?;
            let rows: Vec<&output::Resource> = s
                .out
                .resources
                .iter()
                .filter(|r| {
                    resource_type
                        .as_ref()
                        .is_none_or(|t| &r.id.resource_type == t)
                })
                .collect();
            if json_out {
                return write_json(w, &rows);
            }
            table(
                w,
                &["TYPE", "ID", "DISPLAY NAME", "DETAILS"],
                rows.iter().map(|r| {
                    vec![
                        r.id.resource_type.clone(),
                        r.id.resource.clone(),
                        r.display_name.clone(),
                        details(r),
                    ]
                }),
            )
        }
        What::ResourceTypes => {
            let s = source.one()?;
            if json_out {
                return write_json(w, &s.out.resource_types);
            }
            table(
                w,
                &["ID", "DISPLAY NAME", "TRAITS", "DESCRIPTION"],
                s.out.resource_types.iter().map(|t| {
                    vec![
                        t.id.clone(),
                        t.display_name.clone(),
                        t.traits
                            .iter()
                            .map(|t| t.name())
                            .collect::<Vec<_>>()
                            .join(","),
                        t.description.clone(),
                    ]
                }),
            )
        }
        What::Entitlements { resource_type } => {
            let s = source.one()?;
            let rows: Vec<&output::Entitlement> = s
                .out
                .entitlements
                .iter()
                .filter(|e| {
                    resource_type
                        .as_ref()
                        .is_none_or(|t| &e.resource.resource_type == t)
                })
                .collect();
            if json_out {
                return write_json(w, &rows);
            }
            table(
                w,
                &["ID", "DISPLAY NAME", "PURPOSE", "GRANTABLE TO"],
                rows.iter().map(|e| {
                    vec![
                        e.id.clone(),
                        e.display_name.clone(),
                        e.purpose.name().to_string(),
                        e.grantable_to.join(","),
                    ]
                }),
            )
        }
        What::Grants {
            entitlement,
            resource,
        } => {
            let s = source.one()?;
            let on = match resource {
                None => None,
                Some(r) => match r.split_once(':') {
                    Some((t, id)) if !t.is_empty() && !id.is_empty() => Some((t, id)),
                    _ => bail!("-r takes TYPE:ID (e.g. user:5f1c…), got {r:?}"),
                },
            };
            let owner: HashMap<&str, &output::ResourceId> = s
                .out
                .entitlements
                .iter()
                .map(|e| (e.id.as_str(), &e.resource))
                .collect();
            let rows: Vec<&output::Grant> = s
                .out
                .grants
                .iter()
                .filter(|g| entitlement.as_ref().is_none_or(|e| &g.entitlement == e))
                .filter(|g| {
                    on.is_none_or(|(t, id)| {
                        let is = |r: &output::ResourceId| r.resource_type == t && r.resource == id;
                        is(&g.principal) || owner.get(g.entitlement.as_str()).is_some_and(|r| is(r))
                    })
                })
                .collect();
            if json_out {
                return write_json(w, &rows);
            }
            let names = names(&s.out);
            table(
                w,
                &["ENTITLEMENT", "PRINCIPAL", "PRINCIPAL NAME"],
                rows.iter().map(|g| {
                    let p = &g.principal;
                    vec![
                        g.entitlement.clone(),
                        format!("{}:{}", p.resource_type, p.resource),
                        names
                            .get(&(p.resource_type.as_str(), p.resource.as_str()))
                            .map(|n| n.to_string())
                            .unwrap_or_default(),
                    ]
                }),
            )
        }
        What::Stats => {
            let s = source.one()?;
            let st = &s.out.stats;
            let mut per_type: BTreeMap<&str, u64> = BTreeMap::new();
            for r in &s.out.resources {
                *per_type.entry(r.id.resource_type.as_str()).or_default() += 1;
            }
            let doc = json!({
                "sync_id": s.info.sync_id,
                "sync_type": s.info.sync_type,
                "started_at": s.info.started_at,
                "ended_at": s.info.ended_at,
                "connector": s.out.connector,
                "resource_types": s.out.resource_types.len(),
                "resources": per_type,
                "entitlements": s.out.entitlements.len(),
                "grants": s.out.grants.len(),
                "http_requests": st.http_requests,
                "retries": st.retries,
                "duplicates_skipped": st.duplicates_skipped,
                "elapsed_ms": st.elapsed_ms,
            });
            if json_out {
                return write_json(w, &doc);
            }
            let mut rows: Vec<Vec<String>> = vec![
                vec!["sync id".into(), dash(&s.info.sync_id)],
                vec![
                    "connector".into(),
                    dash(
                        format!(
                            "{} {}",
                            s.out.connector.display_name, s.out.connector.version
                        )
                        .trim(),
                    ),
                ],
                vec!["started at".into(), dash(&s.info.started_at)],
                vec![
                    "ended at".into(),
                    dash(s.info.ended_at.as_deref().unwrap_or("")),
                ],
                vec![
                    "elapsed".into(),
                    format!("{:.2} s", st.elapsed_ms as f64 / 1000.0),
                ],
                vec![
                    "resource types".into(),
                    s.out.resource_types.len().to_string(),
                ],
            ];
            for (t, n) in &per_type {
                rows.push(vec![format!("resources: {t}"), n.to_string()]);
            }
            rows.push(vec![
                "entitlements".into(),
                s.out.entitlements.len().to_string(),
            ]);
            rows.push(vec!["grants".into(), s.out.grants.len().to_string()]);
            rows.push(vec!["http requests".into(), st.http_requests.to_string()]);
            rows.push(vec!["retries".into(), st.retries.to_string()]);
            table(w, &["STAT", "VALUE"], rows.into_iter())
        }
        What::Syncs => {
            let syncs = source.syncs()?;
            if json_out {
                return write_json(w, &syncs);
            }
            syncs_table(w, &syncs)
        }
        What::Diff => {
            let mut two = source.latest(2)?.into_iter();
            let (Some(new), Some(old)) = (two.next(), two.next()) else {
                bail!("a diff needs two finished syncs");
            };
            let d = diff(&old.out, &new.out);
            if json_out {
                let doc = json!({
                    "from": {"sync_id": old.info.sync_id, "ended_at": old.info.ended_at},
                    "to": {"sync_id": new.info.sync_id, "ended_at": new.info.ended_at},
                    "resources": {"added": d.resources_added, "removed": d.resources_removed, "changed": d.resources_changed},
                    "entitlements": {"added": d.entitlements_added, "removed": d.entitlements_removed},
                    "grants": {"added": d.grants_added, "removed": d.grants_removed},
                });
                return write_json(w, &doc);
            }
            let line = format!(
                "from {} ({}) to {} ({})",
                old.info.sync_id,
                old.info.ended_at.as_deref().unwrap_or("-"),
                new.info.sync_id,
                new.info.ended_at.as_deref().unwrap_or("-")
            );
            writeln!(w, "{}", crate::terminal::escape(&line))?;
            if d.is_empty() {
                writeln!(w, "no changes")?;
                return Ok(());
            }
            let new_names = names(&new.out);
            let old_names = names(&old.out);
            let principal_name = |p: &output::ResourceId| {
                let k = (p.resource_type.as_str(), p.resource.as_str());
                new_names
                    .get(&k)
                    .or_else(|| old_names.get(&k))
                    .map(|s| s.to_string())
                    .unwrap_or_default()
            };
            let mut rows: Vec<Vec<String>> = Vec::new();
            for c in &d.resources_changed {
                rows.push(vec![
                    "~".into(),
                    "resource".into(),
                    c.new.id.to_string(),
                    c.new.display_name.clone(),
                ]);
            }
            for (sign, list) in [("+", &d.resources_added), ("-", &d.resources_removed)] {
                for r in list {
                    rows.push(vec![
                        sign.into(),
                        "resource".into(),
                        format!("{}:{}", r.id.resource_type, r.id.resource),
                        r.display_name.clone(),
                    ]);
                }
            }
            for (sign, list) in [("+", &d.entitlements_added), ("-", &d.entitlements_removed)] {
                for e in list {
                    rows.push(vec![
                        sign.into(),
                        "entitlement".into(),
                        e.id.clone(),
                        e.display_name.clone(),
                    ]);
                }
            }
            for (sign, list) in [("+", &d.grants_added), ("-", &d.grants_removed)] {
                for g in list {
                    rows.push(vec![
                        sign.into(),
                        "grant".into(),
                        g.id.clone(),
                        principal_name(&g.principal),
                    ]);
                }
            }
            table(w, &["", "KIND", "ID", "NAME"], rows.into_iter())
        }
    }
}

fn names(out: &SyncOutput) -> HashMap<(&str, &str), &str> {
    out.resources
        .iter()
        .map(|r| {
            (
                (r.id.resource_type.as_str(), r.id.resource.as_str()),
                r.display_name.as_str(),
            )
        })
        .collect()
}

fn details(r: &output::Resource) -> String {
    let mut parts = Vec::new();
    if let Some(u) = &r.user {
        parts.push(format!("{} ({})", u.login, u.status.name()));
    }
    if let Some(src) = r.group.as_ref().and_then(|g| g.source.as_deref()) {
        parts.push(format!("source {src}"));
    }
    if let Some(p) = &r.parent {
        parts.push(format!("parent {}:{}", p.resource_type, p.resource));
    }
    parts.join("; ")
}

fn dash(s: impl AsRef<str>) -> String {
    let s = s.as_ref();
    if s.is_empty() {
        "-".into()
    } else {
        s.to_string()
    }
}

fn write_json(w: &mut Vec<u8>, v: &impl Serialize) -> anyhow::Result<()> {
    serde_json::to_writer_pretty(&mut *w, v)?;
    w.push(b'\n');
    Ok(())
}

/// Columns without borders, like `kubectl get`: readable, and easy to
/// `grep` and `awk`. On a terminal, long cells wrap to its width.
fn table(
    w: &mut Vec<u8>,
    header: &[&str],
    rows: impl Iterator<Item = Vec<String>>,
) -> anyhow::Result<()> {
    let mut t = comfy_table::Table::new();
    t.load_preset(comfy_table::presets::NOTHING);
    if std::io::IsTerminal::is_terminal(&std::io::stdout()) {
        t.set_content_arrangement(comfy_table::ContentArrangement::Dynamic);
    }
    t.set_header(header.iter().copied());
    // Every cell may quote the application (names, ids, details).
    for r in rows {
        t.add_row(
            r.iter()
                .map(|cell| crate::terminal::escape(cell).into_owned()),
        );
    }
    // The preset pads every cell by one space; the first column needs none.
    for line in t.lines() {
        let line = line.strip_prefix(' ').unwrap_or(&line);
        writeln!(w, "{}", line.trim_end())?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn rid(t: &str, id: &str) -> output::ResourceId {
        output::ResourceId {
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
            "stats": output::Stats::default(),
        });
        serde_json::from_value(doc).unwrap()
    }

    #[test]
    fn tables_have_a_header_and_no_trailing_spaces() {
        let mut w = Vec::new();
        table(
            &mut w,
            &["A", "LONGER"],
            vec![vec!["x".to_string(), "y".to_string()]].into_iter(),
        )
        .unwrap();
        let s = String::from_utf8(w).unwrap();
        let lines: Vec<&str> = s.lines().collect();
        assert_eq!(lines.len(), 2, "{s}");
        assert!(lines[0].contains('A') && lines[0].contains("LONGER"));
        assert!(lines.iter().all(|l| !l.ends_with(' ')));
    }

    #[test]
    fn table_cells_are_escaped() {
        let mut w = Vec::new();
        table(
            &mut w,
            &["NAME"],
            vec![vec!["Eve\u{202e}\r\u{1b}[2J".to_string()]].into_iter(),
        )
        .unwrap();
        let s = String::from_utf8(w).unwrap();
        assert_eq!(s.lines().nth(1), Some(r"Eve\u{202e}\r\x1b[2J"), "{s:?}");
    }

    #[test]
    fn json_outputs_are_normalized_like_c1z_reads() {
        let mut o = sync(&["a"], &[]);
        o.resources[0].created_at = Some("2025-03-26T18:33:48.000Z".into());
        o.resources[0].description = Some(String::new());
        normalize(&mut o);
        assert_eq!(
            o.resources[0].created_at.as_deref(),
            Some("2025-03-26T18:33:48Z")
        );
        assert_eq!(o.resources[0].description, None);
    }
}
