//! End to end: the real host syncs the simulator into a c1z file, and the
//! file is checked the way another reader would see it: its SQLite schema
//! against MODEL.md, every protobuf blob with an independent wire-format
//! reader (not the host's prost types), its zstd frame with the `zstd`
//! command, and `inspect` against both the c1z and the JSON output.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use common::{sim, Host};
use ironclad_sim::Simulator;
use serde_json::Value;

const MAGIC: &[u8] = b"C1ZF\0";

fn sync_to(sim: &Simulator, file: &Path) -> common::Run {
    let run = Host::for_sim(sim).run(&["sync", "-f", file.to_str().unwrap()]);
    run.assert_ok();
    run
}

/// `inspect … -o json` on `file`, parsed.
fn inspect(file: &Path, args: &[&str]) -> Value {
    let mut all = vec!["inspect", "-f", file.to_str().unwrap(), "-o", "json"];
    all.extend_from_slice(args);
    let run = Host::new().run(&all);
    run.assert_ok();
    serde_json::from_str(&run.stdout).unwrap_or_else(|e| panic!("{e}: {}", run.stdout))
}

fn inspect_table(file: &Path, args: &[&str]) -> String {
    let mut all = vec!["inspect", "-f", file.to_str().unwrap()];
    all.extend_from_slice(args);
    let run = Host::new().run(&all);
    run.assert_ok();
    run.stdout
}

/// Each element of a JSON array as its JSON text, as a set.
fn set(v: &Value) -> BTreeSet<String> {
    v.as_array()
        .unwrap_or_else(|| panic!("not an array: {v}"))
        .iter()
        .map(|x| x.to_string())
        .collect()
}

fn ids(v: &Value, f: impl Fn(&Value) -> String) -> BTreeSet<String> {
    v.as_array().unwrap().iter().map(f).collect()
}

/// The SQLite database inside a c1z, decoded with the zstd library.
fn unpack(c1z: &Path, dir: &Path) -> PathBuf {
    let bytes = std::fs::read(c1z).unwrap();
    assert_eq!(&bytes[..5], MAGIC, "the c1z magic");
    let db = zstd::stream::decode_all(&bytes[5..]).unwrap();
    assert!(db.starts_with(b"SQLite format 3\0"));
    let path = dir.join("unpacked.db");
    std::fs::write(&path, db).unwrap();
    path
}

fn db(c1z: &Path, dir: &Path) -> rusqlite::Connection {
    rusqlite::Connection::open(unpack(c1z, dir)).unwrap()
}

#[test]
fn c1z_and_json_show_the_same_sets_through_inspect() {
    let sim = sim(300, 12, 700);
    let dir = tempfile::tempdir().unwrap();
    let c1z = dir.path().join("out.c1z");
    let json = dir.path().join("out.json");
    sync_to(&sim, &c1z);
    sync_to(&sim, &json);
    assert!(std::fs::read(&c1z).unwrap().starts_with(MAGIC));
    assert!(std::fs::read(&json).unwrap().starts_with(b"{"));

    let tenant = sim.tenant();
    let user = tenant.users[3].id.clone();
    let group = tenant.groups.iter().find(|g| g.members.len() > 1).unwrap();
    let ent = format!("group:{}:member", group.id);
    let user_filter = format!("user:{user}");
    let group_filter = format!("group:{}", group.id);
    let queries: Vec<Vec<&str>> = vec![
        vec!["resources"],
        vec!["resources", "-t", "user"],
        vec!["resources", "-t", "group"],
        vec!["resource-types"],
        vec!["entitlements"],
        vec!["entitlements", "-t", "group"],
        vec!["grants"],
        vec!["grants", "-e", &ent],
        vec!["grants", "-r", &user_filter],
        vec!["grants", "-r", &group_filter],
    ];
    for q in &queries {
        let a = inspect(&c1z, q);
        let b = inspect(&json, q);
        assert_eq!(set(&a), set(&b), "inspect {q:?}");
        assert_eq!(
            a.as_array().unwrap().len(),
            b.as_array().unwrap().len(),
            "inspect {q:?}"
        );
    }

    // And the sets are the tenant's.
    let res = inspect(&c1z, &["resources", "-t", "user"]);
    assert_eq!(res.as_array().unwrap().len(), tenant.users.len());
    let u0 = res
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["id"]["resource"] == user)
        .unwrap();
    let tu = tenant.user(&user).unwrap();
    assert_eq!(u0["user"]["login"], tu.user_name.as_str());
    assert_eq!(u0["user"]["status"], "enabled");
    assert_eq!(u0["created_at"], tu.created.as_str());
    assert_eq!(u0["profile"]["created"], tu.created.as_str());
    let groups = inspect(&c1z, &["resources", "-t", "group"]);
    assert_eq!(groups.as_array().unwrap().len(), tenant.groups.len());
    let members = ids(&inspect(&c1z, &["grants", "-e", &ent]), |g| {
        g["principal"]["resource"].as_str().unwrap().to_string()
    });
    assert_eq!(members, group.members.iter().cloned().collect());
    let of_user = ids(&inspect(&c1z, &["grants", "-r", &user_filter]), |g| {
        g["entitlement"].as_str().unwrap().to_string()
    });
    let want: BTreeSet<String> = tenant
        .groups
        .iter()
        .filter(|g| g.members.contains(&user))
        .map(|g| format!("group:{}:member", g.id))
        .collect();
    assert_eq!(of_user, want);
    let all_grants = ids(&inspect(&c1z, &["grants"]), |g| {
        g["id"].as_str().unwrap().to_string()
    });
    assert_eq!(all_grants, common::tenant_grant_ids(&sim));

    // Stats: the same counts from both files.
    let (a, b) = (inspect(&c1z, &["stats"]), inspect(&json, &["stats"]));
    for key in [
        "resources",
        "entitlements",
        "grants",
        "resource_types",
        "connector",
    ] {
        assert_eq!(a[key], b[key], "stats {key}");
    }
    assert_eq!(a["resources"]["user"], tenant.users.len());
    assert_eq!(a["grants"], tenant.memberships());
    assert_eq!(a["sync_id"].as_str().unwrap().len(), 27);
    assert!(a["ended_at"].is_string());

    // People get a table: a header, then one line per row.
    let t = inspect_table(&c1z, &["resources", "-t", "group"]);
    let lines: Vec<&str> = t.lines().collect();
    assert!(
        lines[0].starts_with("TYPE") && lines[0].contains("DISPLAY NAME"),
        "{t}"
    );
    assert_eq!(lines.len(), 1 + tenant.groups.len(), "{t}");
    assert!(t.contains(&tenant.groups[0].display_name));
    let t = inspect_table(&json, &["stats"]);
    assert!(
        t.contains("grants") && t.contains(&tenant.memberships().to_string()),
        "{t}"
    );
}

// ---------------------------------------------------------------------------
// The schema, from MODEL.md.

/// (column, type, not null, default, primary key)
type Col = (&'static str, &'static str, bool, Option<&'static str>, bool);

fn model_tables() -> BTreeMap<&'static str, Vec<Col>> {
    let pk = ("id", "INTEGER", false, None, true);
    let nn = |n, t| (n, t, true, None, false);
    let null = |n, t| (n, t, false, None, false);
    let def = |n, t, d| (n, t, true, Some(d), false);
    BTreeMap::from([
        (
            "v1_resource_types",
            vec![
                pk,
                nn("external_id", "TEXT"),
                nn("data", "BLOB"),
                nn("sync_id", "TEXT"),
                nn("discovered_at", "DATETIME"),
            ],
        ),
        (
            "v1_resources",
            vec![
                pk,
                nn("resource_type_id", "TEXT"),
                nn("external_id", "TEXT"),
                null("parent_resource_type_id", "TEXT"),
                null("parent_resource_id", "TEXT"),
                nn("data", "BLOB"),
                nn("sync_id", "TEXT"),
                nn("discovered_at", "DATETIME"),
            ],
        ),
        (
            "v1_entitlements",
            vec![
                pk,
                nn("resource_type_id", "TEXT"),
                nn("resource_id", "TEXT"),
                nn("external_id", "TEXT"),
                nn("data", "BLOB"),
                nn("sync_id", "TEXT"),
                nn("discovered_at", "DATETIME"),
            ],
        ),
        (
            "v1_grants",
            vec![
                pk,
                nn("resource_type_id", "TEXT"),
                nn("resource_id", "TEXT"),
                nn("entitlement_id", "TEXT"),
                nn("principal_resource_type_id", "TEXT"),
                nn("principal_resource_id", "TEXT"),
                nn("external_id", "TEXT"),
                null("expansion", "BLOB"),
                def("needs_expansion", "INTEGER", "0"),
                nn("data", "BLOB"),
                nn("sync_id", "TEXT"),
                nn("discovered_at", "DATETIME"),
            ],
        ),
        (
            "v1_sync_runs",
            vec![
                pk,
                nn("sync_id", "TEXT"),
                nn("started_at", "DATETIME"),
                null("ended_at", "DATETIME"),
                nn("sync_token", "TEXT"),
                def("sync_type", "TEXT", "'full'"),
                def("parent_sync_id", "TEXT", "''"),
                def("linked_sync_id", "TEXT", "''"),
                def("supports_diff", "INTEGER", "0"),
                def("grants_backfilled", "INTEGER", "0"),
                null("stats", "TEXT"),
                def("ingest_invariant_generation", "TEXT", "''"),
                def("ingest_invariant_coverage", "TEXT", "''"),
                def("ingest_invariant_mode", "TEXT", "''"),
            ],
        ),
        (
            "v1_assets",
            vec![
                pk,
                nn("external_id", "TEXT"),
                nn("content_type", "TEXT"),
                nn("data", "BLOB"),
                nn("sync_id", "TEXT"),
                nn("discovered_at", "DATETIME"),
            ],
        ),
        (
            "v1_connector_sessions",
            vec![
                pk,
                nn("sync_id", "TEXT"),
                nn("key", "TEXT"),
                nn("value", "BLOB"),
            ],
        ),
    ])
}

fn model_unique_keys() -> BTreeMap<&'static str, Vec<Vec<&'static str>>> {
    BTreeMap::from([
        ("v1_resource_types", vec![vec!["external_id", "sync_id"]]),
        ("v1_resources", vec![vec!["external_id", "sync_id"]]),
        ("v1_entitlements", vec![vec!["external_id", "sync_id"]]),
        ("v1_grants", vec![vec!["external_id", "sync_id"]]),
        ("v1_sync_runs", vec![vec!["sync_id"]]),
        ("v1_assets", vec![]),
        ("v1_connector_sessions", vec![vec!["sync_id", "key"]]),
    ])
}

fn model_indexes() -> BTreeMap<&'static str, Vec<Vec<&'static str>>> {
    BTreeMap::from([
        ("v1_resource_types", vec![]),
        (
            "v1_resources",
            vec![
                vec!["resource_type_id"],
                vec!["parent_resource_type_id", "parent_resource_id"],
            ],
        ),
        (
            "v1_entitlements",
            vec![vec!["resource_type_id", "resource_id"]],
        ),
        (
            "v1_grants",
            vec![
                vec!["resource_type_id", "resource_id"],
                vec!["principal_resource_type_id", "principal_resource_id"],
                vec![
                    "entitlement_id",
                    "principal_resource_type_id",
                    "principal_resource_id",
                ],
                vec!["entitlement_id", "sync_id", "id"],
            ],
        ),
        ("v1_sync_runs", vec![]),
        ("v1_assets", vec![]),
        ("v1_connector_sessions", vec![]),
    ])
}

fn strings(conn: &rusqlite::Connection, sql: &str) -> Vec<String> {
    let mut stmt = conn.prepare(sql).unwrap();
    stmt.query_map([], |r| r.get::<_, String>(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

/// Index column lists of a table, unique ones or the others.
fn indexes(conn: &rusqlite::Connection, table: &str, unique: bool) -> BTreeSet<Vec<String>> {
    let mut stmt = conn
        .prepare(&format!("PRAGMA index_list({table})"))
        .unwrap();
    let list: Vec<(String, bool, String)> = stmt
        .query_map([], |r| Ok((r.get(1)?, r.get::<_, i64>(2)? == 1, r.get(3)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    list.into_iter()
        .filter(|(_, u, origin)| *u == unique && origin != "pk")
        .map(|(name, _, _)| {
            let mut stmt = conn.prepare(&format!("PRAGMA index_info({name})")).unwrap();
            let mut cols: Vec<(i64, String)> = stmt
                .query_map([], |r| Ok((r.get(0)?, r.get(2)?)))
                .unwrap()
                .collect::<Result<_, _>>()
                .unwrap();
            cols.sort();
            cols.into_iter().map(|(_, c)| c).collect()
        })
        .collect()
}

fn is_local_datetime(s: &str) -> bool {
    let b = s.as_bytes();
    let digits = |r: std::ops::Range<usize>| b[r].iter().all(u8::is_ascii_digit);
    if b.len() < 19
        || !(digits(0..4)
            && b[4] == b'-'
            && digits(5..7)
            && b[7] == b'-'
            && digits(8..10)
            && b[10] == b' ')
        || !(digits(11..13) && b[13] == b':' && digits(14..16) && b[16] == b':' && digits(17..19))
    {
        return false;
    }
    match &s[19..] {
        "" => true,
        frac => {
            let f = &frac[1..];
            frac.starts_with('.')
                && (1..=9).contains(&f.len())
                && f.bytes().all(|c| c.is_ascii_digit())
                && !f.ends_with('0')
        }
    }
}

#[test]
fn the_sqlite_schema_is_the_model_one() {
    let sim = sim(120, 6, 200);
    let dir = tempfile::tempdir().unwrap();
    let c1z = dir.path().join("out.c1z");
    sync_to(&sim, &c1z);
    let raw = unpack(&c1z, dir.path());
    let header = std::fs::read(&raw).unwrap();
    // Bytes 18 and 19 are the write/read format versions: 1 is the rollback
    // journal, 2 would be WAL.
    assert_eq!(
        (header[18], header[19]),
        (1, 1),
        "closed in journal_mode=DELETE"
    );
    let conn = rusqlite::Connection::open(&raw).unwrap();

    let tables: BTreeSet<String> = strings(
        &conn,
        "SELECT name FROM sqlite_master WHERE type='table' AND name NOT LIKE 'sqlite_%'",
    )
    .into_iter()
    .collect();
    let model = model_tables();
    assert_eq!(tables, model.keys().map(|s| s.to_string()).collect());

    for (table, cols) in &model {
        let mut stmt = conn
            .prepare(&format!("PRAGMA table_info({table})"))
            .unwrap();
        let got: Vec<(String, String, bool, Option<String>, bool)> = stmt
            .query_map([], |r| {
                Ok((
                    r.get(1)?,
                    r.get(2)?,
                    r.get::<_, i64>(3)? == 1,
                    r.get(4)?,
                    r.get::<_, i64>(5)? >= 1,
                ))
            })
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        let want: Vec<(String, String, bool, Option<String>, bool)> = cols
            .iter()
            .map(|(n, t, nn, d, pk)| (n.to_string(), t.to_string(), *nn, d.map(String::from), *pk))
            .collect();
        assert_eq!(got, want, "columns of {table}");

        let to_set = |v: &Vec<Vec<&str>>| -> BTreeSet<Vec<String>> {
            v.iter()
                .map(|c| c.iter().map(|s| s.to_string()).collect())
                .collect()
        };
        assert_eq!(
            indexes(&conn, table, true),
            to_set(&model_unique_keys()[table]),
            "unique keys of {table}"
        );
        assert_eq!(
            indexes(&conn, table, false),
            to_set(&model_indexes()[table]),
            "indexes of {table}"
        );
    }

    // One finished full run, and every row belongs to it.
    let (sync_id, started, ended, token, kind, backfilled, stats): (
        String,
        String,
        Option<String>,
        String,
        String,
        i64,
        String,
    ) = conn
        .query_row(
            "SELECT sync_id, started_at, ended_at, sync_token, sync_type, grants_backfilled, stats FROM v1_sync_runs",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?, r.get(6)?)),
        )
        .unwrap();
    assert_eq!(sync_id.len(), 27);
    assert!(
        sync_id.bytes().all(|c| c.is_ascii_alphanumeric()),
        "{sync_id}"
    );
    assert!(is_local_datetime(&started), "{started}");
    let ended = ended.expect("ended_at set");
    assert!(is_local_datetime(&ended), "{ended}");
    assert!(ended >= started);
    assert!(token.is_empty() || token == "{}");
    assert_eq!((kind.as_str(), backfilled), ("full", 1));
    let supports_diff: i64 = conn
        .query_row("SELECT supports_diff FROM v1_sync_runs", [], |r| r.get(0))
        .unwrap();
    assert_eq!(supports_diff, 1, "the SDK's diff tools accept the sync");
    let stats: Value = serde_json::from_str(&stats).unwrap();
    assert_eq!(stats["grants"], sim.tenant().memberships());
    for table in [
        "v1_resource_types",
        "v1_resources",
        "v1_entitlements",
        "v1_grants",
    ] {
        let other: i64 = conn
            .query_row(
                &format!("SELECT count(*) FROM {table} WHERE sync_id != ?1"),
                [&sync_id],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(other, 0, "{table}");
        for at in strings(
            &conn,
            &format!("SELECT DISTINCT discovered_at FROM {table}"),
        ) {
            assert!(is_local_datetime(&at), "{table}: {at}");
        }
    }
    assert!(!dir.path().join("out.c1z-wal").exists());
}

// ---------------------------------------------------------------------------
// The protobuf blobs, read with a wire-format reader written here.

#[derive(Debug, Clone)]
enum W {
    Varint(u64),
    Len(Vec<u8>),
    Fixed64,
    Fixed32,
}

fn varint(b: &[u8], i: &mut usize) -> u64 {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let byte = b[*i];
        *i += 1;
        v |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return v;
        }
    }
    panic!("varint too long");
}

/// The fields of one message, in wire order.
fn fields(b: &[u8]) -> Vec<(u64, W)> {
    let mut i = 0;
    let mut out = Vec::new();
    while i < b.len() {
        let key = varint(b, &mut i);
        let (num, wt) = (key >> 3, key & 7);
        let v = match wt {
            0 => W::Varint(varint(b, &mut i)),
            1 => {
                i += 8;
                W::Fixed64
            }
            2 => {
                let n = varint(b, &mut i) as usize;
                let v = b[i..i + n].to_vec();
                i += n;
                W::Len(v)
            }
            5 => {
                i += 4;
                W::Fixed32
            }
            _ => panic!("wire type {wt} at field {num}"),
        };
        out.push((num, v));
    }
    assert_eq!(i, b.len());
    out
}

/// A message decoded under a schema: each field number must be allowed
/// with its wire type ('v' varint, 'l' length-delimited), and fields come
/// in number order (a deterministic encoding).
struct Msg {
    name: &'static str,
    fields: Vec<(u64, W)>,
}

fn msg(name: &'static str, b: &[u8], schema: &[(u64, char)]) -> Msg {
    let fs = fields(b);
    let mut last = 0;
    for (n, w) in &fs {
        let want = schema
            .iter()
            .find(|(k, _)| k == n)
            .unwrap_or_else(|| panic!("{name}: field {n} is not in MODEL.md"))
            .1;
        let ok = matches!((want, w), ('v', W::Varint(_)) | ('l', W::Len(_)));
        assert!(ok, "{name}: field {n} has the wrong wire type: {w:?}");
        assert!(
            *n >= last,
            "{name}: field {n} after {last}: not in number order"
        );
        last = *n;
    }
    Msg { name, fields: fs }
}

impl Msg {
    fn all(&self, n: u64) -> Vec<&W> {
        self.fields
            .iter()
            .filter(|(k, _)| *k == n)
            .map(|(_, w)| w)
            .collect()
    }
    fn bytes(&self, n: u64) -> Option<&[u8]> {
        let all = self.all(n);
        assert!(all.len() <= 1, "{}: field {n} repeated", self.name);
        all.first().map(|w| match w {
            W::Len(b) => b.as_slice(),
            other => panic!("{}: field {n}: {other:?}", self.name),
        })
    }
    fn str(&self, n: u64) -> String {
        self.bytes(n)
            .map(|b| String::from_utf8(b.to_vec()).unwrap())
            .unwrap_or_default()
    }
    fn num(&self, n: u64) -> u64 {
        match self.all(n).first() {
            None => 0,
            Some(W::Varint(v)) => *v,
            Some(other) => panic!("{}: field {n}: {other:?}", self.name),
        }
    }
    fn repeated(&self, n: u64) -> Vec<&[u8]> {
        self.all(n)
            .into_iter()
            .map(|w| match w {
                W::Len(b) => b.as_slice(),
                other => panic!("{}: field {n}: {other:?}", self.name),
            })
            .collect()
    }
}

const RESOURCE_TYPE: &[(u64, char)] = &[(1, 'l'), (2, 'l'), (3, 'l'), (4, 'l'), (5, 'l'), (6, 'v')];
const RESOURCE_ID: &[(u64, char)] = &[(1, 'l'), (2, 'l'), (3, 'v')];
const RESOURCE: &[(u64, char)] = &[
    (1, 'l'),
    (2, 'l'),
    (3, 'l'),
    (4, 'l'),
    (5, 'l'),
    (9, 'l'),
    (10, 'l'),
    (11, 'l'),
    (12, 'l'),
];
const STATUS: &[(u64, char)] = &[(1, 'v'), (2, 'l')];
const ENTITLEMENT: &[(u64, char)] = &[
    (1, 'l'),
    (2, 'l'),
    (3, 'l'),
    (4, 'l'),
    (5, 'l'),
    (6, 'l'),
    (7, 'v'),
    (8, 'l'),
];
const GRANT: &[(u64, char)] = &[(1, 'l'), (2, 'l'), (3, 'l'), (4, 'l'), (5, 'l')];
const USER_TRAIT: &[(u64, char)] = &[
    (1, 'l'),
    (2, 'l'),
    (3, 'l'),
    (4, 'l'),
    (5, 'v'),
    (6, 'l'),
    (7, 'l'),
    (8, 'l'),
    (9, 'l'),
    (10, 'l'),
    (11, 'l'),
    (12, 'l'),
    (13, 'l'),
];
const EMAIL: &[(u64, char)] = &[(1, 'l'), (2, 'v')];
const STRUCTURED_NAME: &[(u64, char)] = &[(1, 'l'), (2, 'l'), (3, 'l'), (4, 'l'), (5, 'l')];
const GROUP_TRAIT: &[(u64, char)] = &[(1, 'l'), (2, 'l'), (3, 'l')];
const ANY: &[(u64, char)] = &[(1, 'l'), (2, 'l')];
const STRUCT: &[(u64, char)] = &[(1, 'l')];
const MAP_ENTRY: &[(u64, char)] = &[(1, 'l'), (2, 'l')];
const VALUE: &[(u64, char)] = &[(1, 'v'), (2, 'l'), (3, 'l'), (4, 'v'), (5, 'l'), (6, 'l')];
const TIMESTAMP: &[(u64, char)] = &[(1, 'v'), (2, 'v')];

const USER_URL: &str = "type.googleapis.com/c1.connector.v2.UserTrait";
const GROUP_URL: &str = "type.googleapis.com/c1.connector.v2.GroupTrait";

fn resource_id(b: &[u8]) -> (String, String) {
    let m = msg("ResourceId", b, RESOURCE_ID);
    (m.str(1), m.str(2))
}

/// google.protobuf.Struct of string values.
fn profile(b: &[u8]) -> BTreeMap<String, String> {
    let s = msg("Struct", b, STRUCT);
    s.repeated(1)
        .into_iter()
        .map(|e| {
            let e = msg("Struct.FieldsEntry", e, MAP_ENTRY);
            let v = msg("Value", e.bytes(2).unwrap(), VALUE);
            (e.str(1), v.str(3))
        })
        .collect()
}

fn timestamp(b: &[u8]) -> (i64, u64) {
    let t = msg("Timestamp", b, TIMESTAMP);
    (t.num(1) as i64, t.num(2))
}

/// Seconds and nanoseconds of `YYYY-MM-DDTHH:MM:SS.mmmZ`.
fn rfc3339(s: &str) -> (i64, u64) {
    let n = |r: std::ops::Range<usize>| s[r].parse::<i64>().unwrap();
    let (y, m, d) = (n(0..4), n(5..7), n(8..10));
    // Days from the civil date (Howard Hinnant's algorithm).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * ((m + 9) % 12) + 2) / 5 + d - 1;
    let days = era * 146_097 + yoe * 365 + yoe / 4 - yoe / 100 + doy - 719_468;
    let secs = days * 86_400 + n(11..13) * 3600 + n(14..16) * 60 + n(17..19);
    let nanos = if s.as_bytes()[19] == b'.' {
        n(20..23) as u64 * 1_000_000
    } else {
        0
    };
    (secs, nanos)
}

/// A Resource, fully checked against its own parts; returns it with its
/// decoded trait for the caller to compare with the tenant.
struct Res {
    id: (String, String),
    display_name: String,
    profile: BTreeMap<String, String>,
    created: Option<(i64, u64)>,
    status: Option<u64>,
    user: Option<Msg>,
    group: Option<Msg>,
}

fn resource(b: &[u8]) -> Res {
    let r = msg("Resource", b, RESOURCE);
    let mut user = None;
    let mut group = None;
    for a in r.repeated(4) {
        let a = msg("Any", a, ANY);
        match a.str(1).as_str() {
            USER_URL => user = Some(msg("UserTrait", a.bytes(2).unwrap_or_default(), USER_TRAIT)),
            GROUP_URL => {
                group = Some(msg(
                    "GroupTrait",
                    a.bytes(2).unwrap_or_default(),
                    GROUP_TRAIT,
                ))
            }
            other => panic!("an annotation of a type the SDK does not know: {other}"),
        }
    }
    let profile_bytes = r.bytes(9).map(<[u8]>::to_vec);
    let created_bytes = r.bytes(12).map(<[u8]>::to_vec);
    let status = r.bytes(11).map(|s| msg("Status", s, STATUS).num(1));
    // Older readers look on the trait: the same profile, status and time.
    if let Some(u) = &user {
        assert_eq!(
            u.bytes(3).map(<[u8]>::to_vec),
            profile_bytes,
            "UserTrait.profile = Resource.profile"
        );
        assert_eq!(
            u.bytes(8).map(<[u8]>::to_vec),
            created_bytes,
            "UserTrait.created_at = Resource.created_at"
        );
        let st = msg(
            "UserTrait.Status",
            u.bytes(2).expect("UserTrait.status"),
            STATUS,
        )
        .num(1);
        assert_eq!(Some(st), status, "UserTrait.status = Resource.status");
    }
    if let Some(g) = &group {
        assert_eq!(
            g.bytes(2).map(<[u8]>::to_vec),
            profile_bytes,
            "GroupTrait.profile = Resource.profile"
        );
    }
    Res {
        id: resource_id(r.bytes(1).expect("Resource.id")),
        display_name: r.str(3),
        profile: profile_bytes.as_deref().map(profile).unwrap_or_default(),
        created: created_bytes.as_deref().map(timestamp),
        status,
        user,
        group,
    }
}

fn rows(conn: &rusqlite::Connection, sql: &str, n: usize) -> Vec<(Vec<String>, Vec<u8>)> {
    let mut stmt = conn.prepare(sql).unwrap();
    stmt.query_map([], |r| {
        let cols = (0..n)
            .map(|i| r.get::<_, String>(i))
            .collect::<Result<Vec<_>, _>>()?;
        Ok((cols, r.get::<_, Vec<u8>>(n)?))
    })
    .unwrap()
    .collect::<Result<_, _>>()
    .unwrap()
}

#[test]
fn every_blob_decodes_field_by_field_as_the_model_says() {
    let sim = sim(250, 10, 600);
    let dir = tempfile::tempdir().unwrap();
    let c1z = dir.path().join("out.c1z");
    sync_to(&sim, &c1z);
    let conn = db(&c1z, dir.path());
    let tenant = sim.tenant();

    // Resource types: the traits are packed varints of the Trait enum.
    let types = rows(&conn, "SELECT external_id, data FROM v1_resource_types", 1);
    assert_eq!(types.len(), 2);
    let mut user_type = Vec::new();
    for (cols, data) in &types {
        let t = msg("ResourceType", data, RESOURCE_TYPE);
        assert_eq!(t.str(1), cols[0]);
        assert!(!t.str(2).is_empty());
        let want: &[u8] = if cols[0] == "user" { &[1] } else { &[2] };
        assert_eq!(t.bytes(3).unwrap(), want, "{}: traits", cols[0]);
        if cols[0] == "user" {
            user_type = data.clone();
        }
    }

    // Resources: users with a UserTrait, groups with a GroupTrait.
    let res = rows(
        &conn,
        "SELECT resource_type_id, external_id, data FROM v1_resources",
        2,
    );
    assert_eq!(res.len(), tenant.users.len() + tenant.groups.len());
    let mut by_id: BTreeMap<(String, String), Vec<u8>> = BTreeMap::new();
    for (cols, data) in &res {
        let r = resource(data);
        assert_eq!(r.id.0, cols[0]);
        assert_eq!(
            cols[1],
            format!("{}:{}", r.id.0, r.id.1),
            "external_id is <type>:<id>"
        );
        if r.id.0 == "user" {
            let u = tenant.user(&r.id.1).expect("a tenant user");
            assert_eq!(
                r.display_name,
                format!("{} {}", u.given_name, u.family_name)
            );
            let ut = r.user.as_ref().expect("a user carries a UserTrait");
            assert!(r.group.is_none());
            assert_eq!(ut.str(6), u.user_name, "login");
            assert_eq!(ut.num(5), 1, "account type HUMAN");
            assert_eq!(r.status, Some(1), "ENABLED");
            let emails: Vec<(String, u64)> = ut
                .repeated(1)
                .into_iter()
                .map(|e| {
                    let e = msg("Email", e, EMAIL);
                    (e.str(1), e.num(2))
                })
                .collect();
            assert!(emails.contains(&(u.user_name.clone(), 1)), "{emails:?}");
            let name = msg(
                "StructuredName",
                ut.bytes(12).expect("structured_name"),
                STRUCTURED_NAME,
            );
            assert_eq!(
                (name.str(1), name.str(2)),
                (u.given_name.clone(), u.family_name.clone())
            );
            assert_eq!(
                r.created,
                Some(rfc3339(&u.created)),
                "created_at of {}",
                u.created
            );
            assert_eq!(r.profile.get("created"), Some(&u.created));
            assert_eq!(r.profile.get("provider"), Some(&u.provider));
            assert_eq!(r.profile.get("title"), u.title.as_ref());
        } else {
            assert_eq!(r.id.0, "group");
            let g = tenant.group(&r.id.1).expect("a tenant group");
            assert_eq!(r.display_name, g.display_name);
            let gt = r.group.as_ref().expect("a group carries a GroupTrait");
            assert!(r.user.is_none());
            assert_eq!(r.profile.get("external_id"), g.external_id.as_ref());
            assert_eq!(
                gt.str(3).is_empty(),
                g.external_id.is_none(),
                "group_source_type"
            );
        }
        by_id.insert(r.id.clone(), data.clone());
    }

    // Entitlements embed their whole resource and the grantable types.
    let ents = rows(
        &conn,
        "SELECT resource_type_id, resource_id, external_id, data FROM v1_entitlements",
        3,
    );
    assert_eq!(ents.len(), tenant.groups.len());
    let mut ent_blobs: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    for (cols, data) in &ents {
        let e = msg("Entitlement", data, ENTITLEMENT);
        assert_eq!(e.str(2), cols[2]);
        assert_eq!(cols[2], format!("group:{}:member", cols[1]));
        let owner = e.bytes(1).expect("Entitlement.resource");
        assert_eq!(
            owner,
            by_id[&(cols[0].clone(), cols[1].clone())].as_slice(),
            "the whole resource"
        );
        assert_eq!(e.str(8), "member");
        assert_eq!(e.num(7), 1, "ASSIGNMENT");
        assert!(e.str(3).ends_with("Group Member"));
        assert_eq!(
            e.repeated(5),
            vec![user_type.as_slice()],
            "grantable to the user type"
        );
        ent_blobs.insert(cols[2].clone(), data.clone());
    }

    // Grants embed their entitlement's resource and id, and the principal's id.
    let grants = rows(
        &conn,
        "SELECT resource_type_id, resource_id, entitlement_id, principal_resource_type_id, \
         principal_resource_id, external_id, data FROM v1_grants",
        6,
    );
    assert_eq!(grants.len(), tenant.memberships());
    for (cols, data) in &grants {
        let g = msg("Grant", data, GRANT);
        assert_eq!(g.str(3), cols[5]);
        assert_eq!(cols[5], format!("{}:{}:{}", cols[2], cols[3], cols[4]));
        // The entitlement as the SDK's grant.NewGrant embeds it: its whole
        // owning resource and its id, nothing else.
        let embedded = msg("Entitlement", g.bytes(1).unwrap(), ENTITLEMENT);
        let listed = msg("Entitlement", &ent_blobs[&cols[2]], ENTITLEMENT);
        assert_eq!(embedded.bytes(1), listed.bytes(1), "its owning resource");
        assert_eq!(embedded.str(2), cols[2], "its id");
        assert_eq!(
            embedded.fields.iter().map(|(n, _)| *n).collect::<Vec<_>>(),
            [1, 2],
            "only the resource and the id"
        );
        // The principal by id only, as baton connectors build membership
        // grants: the user is its own resource row.
        let p = msg("Resource", g.bytes(2).unwrap(), RESOURCE);
        assert_eq!(
            p.bytes(1).map(resource_id),
            Some((cols[3].clone(), cols[4].clone())),
            "the principal's id"
        );
        assert!(
            by_id.contains_key(&(cols[3].clone(), cols[4].clone())),
            "the principal is a resource row"
        );
        assert_eq!(
            p.all(3).len() + p.all(4).len() + p.all(9).len(),
            0,
            "nothing but the id"
        );
        assert_eq!(cols[2], format!("{}:{}:member", cols[0], cols[1]));
        let group = tenant.group(&cols[1]).unwrap();
        assert!(group.members.contains(&cols[4]));
    }
}

// ---------------------------------------------------------------------------
// The zstd stream.

fn zstd_cli() -> &'static str {
    let have = || {
        Command::new("zstd")
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
    };
    if !have() {
        let _ = Command::new("apt-get")
            .args(["install", "-y", "zstd"])
            .status();
        if !have() {
            let _ = Command::new("apt-get").arg("update").status();
            let _ = Command::new("apt-get")
                .args(["install", "-y", "zstd"])
                .status();
        }
    }
    assert!(
        have(),
        "the `zstd` command is missing and `apt-get install -y zstd` did not install it: install zstd to run this test"
    );
    "zstd"
}

/// Walks one zstd frame (RFC 8878) from `b[0]`; returns its window size
/// and where it ends.
fn frame(b: &[u8]) -> (u64, usize) {
    assert_eq!(&b[..4], &[0x28, 0xb5, 0x2f, 0xfd], "zstd frame magic");
    let fhd = b[4];
    let fcs_flag = fhd >> 6;
    let single_segment = fhd & 0x20 != 0;
    let checksum = fhd & 0x04 != 0;
    let dict_flag = fhd & 0x03;
    let mut i = 5;
    let mut window = 0u64;
    if !single_segment {
        let wd = b[i];
        i += 1;
        let log = 10 + u64::from(wd >> 3);
        let base = 1u64 << log;
        window = base + (base / 8) * u64::from(wd & 7);
    }
    i += [0, 1, 2, 4][dict_flag as usize];
    let fcs_len = match (fcs_flag, single_segment) {
        (0, true) => 1,
        (0, false) => 0,
        (1, _) => 2,
        (2, _) => 4,
        _ => 8,
    };
    let mut fcs = 0u64;
    for k in 0..fcs_len {
        fcs |= u64::from(b[i + k]) << (8 * k);
    }
    if fcs_len == 2 {
        fcs += 256;
    }
    i += fcs_len;
    if single_segment {
        window = fcs;
    }
    loop {
        let h = u32::from(b[i]) | u32::from(b[i + 1]) << 8 | u32::from(b[i + 2]) << 16;
        i += 3;
        let last = h & 1 != 0;
        let kind = (h >> 1) & 3;
        let size = (h >> 3) as usize;
        assert_ne!(kind, 3, "reserved block type");
        i += if kind == 1 { 1 } else { size };
        if last {
            break;
        }
    }
    if checksum {
        i += 4;
    }
    (window, i)
}

#[test]
fn the_zstd_stream_is_one_standard_frame_within_the_window_cap() {
    let zstd = zstd_cli();
    let sim = sim(2_500, 100, 5_000);
    let dir = tempfile::tempdir().unwrap();
    let c1z = dir.path().join("out.c1z");
    sync_to(&sim, &c1z);
    let bytes = std::fs::read(&c1z).unwrap();
    assert_eq!(&bytes[..5], MAGIC);
    let stream = &bytes[5..];

    let (window, end) = frame(stream);
    assert_eq!(end, stream.len(), "exactly one frame, nothing after it");
    assert!(window > 0 && window <= 128 << 20, "window {window} B");

    let zst = dir.path().join("stream.zst");
    std::fs::write(&zst, stream).unwrap();
    let list = Command::new(zstd).args(["-lv"]).arg(&zst).output().unwrap();
    let text =
        String::from_utf8_lossy(&list.stdout).to_string() + &String::from_utf8_lossy(&list.stderr);
    assert!(list.status.success(), "{text}");
    assert!(text.contains("Frames: 1"), "{text}");
    let cli_window: u64 = text
        .lines()
        .find(|l| l.contains("Window Size"))
        .and_then(|l| l.split('(').nth(1))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no window size in:\n{text}"));
    assert_eq!(cli_window, window);

    let out = Command::new(zstd)
        .args(["-d", "-c", "-q"])
        .arg(&zst)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.stdout.starts_with(b"SQLite format 3\0"));
    assert_eq!(out.stdout, zstd::stream::decode_all(stream).unwrap());

    // The demo tenant: the c1z is much smaller than the JSON.
    let json = dir.path().join("out.json");
    sync_to(&sim, &json);
    let (c, j) = (
        bytes.len(),
        std::fs::metadata(&json).unwrap().len() as usize,
    );
    eprintln!(
        "demo tenant: c1z {c} B, JSON {j} B, SQLite {} B",
        out.stdout.len()
    );
    assert!(c < j, "c1z {c} B vs JSON {j} B");
}

// ---------------------------------------------------------------------------
// Syncs kept in the file, and diff.

#[test]
fn diff_reports_exactly_a_change_in_the_tenant_and_two_previous_syncs_are_kept() {
    let sim = sim(200, 8, 400);
    let dir = tempfile::tempdir().unwrap();
    let c1z = dir.path().join("out.c1z");
    sync_to(&sim, &c1z);

    let added = sim.add_user("new.person@example-tenant.test", "New", "Person");
    let tenant = sim.tenant();
    let group = tenant
        .groups
        .iter()
        .find(|g| !g.members.is_empty())
        .unwrap();
    let member = group.members[0].clone();
    assert!(sim.remove_member(&group.id, &member));
    let run = sync_to(&sim, &c1z);
    assert!(
        run.stdout.contains("previous syncs kept 1"),
        "{}",
        run.stdout
    );

    let d = inspect(&c1z, &["diff"]);
    let res_ids = |v: &Value| {
        ids(v, |r| {
            format!(
                "{}:{}",
                r["id"]["resource_type"].as_str().unwrap(),
                r["id"]["resource"].as_str().unwrap()
            )
        })
    };
    let grant_ids = |v: &Value| ids(v, |g| g["id"].as_str().unwrap().to_string());
    let one = |s: String| BTreeSet::from([s]);
    assert_eq!(
        res_ids(&d["resources"]["added"]),
        one(format!("user:{added}")),
        "{d}"
    );
    assert!(
        d["resources"]["removed"].as_array().unwrap().is_empty(),
        "{d}"
    );
    assert!(d["grants"]["added"].as_array().unwrap().is_empty(), "{d}");
    let removed = format!("group:{}:member:user:{member}", group.id);
    assert_eq!(
        grant_ids(&d["grants"]["removed"]),
        one(removed.clone()),
        "{d}"
    );
    assert!(d["entitlements"]["added"].as_array().unwrap().is_empty());
    assert!(d["entitlements"]["removed"].as_array().unwrap().is_empty());
    assert_eq!(d["resources"]["added"][0]["display_name"], "New Person");

    let t = inspect_table(&c1z, &["diff"]);
    let lines: Vec<&str> = t.lines().collect();
    assert!(lines[0].starts_with("from "), "{t}");
    assert_eq!(
        lines.len(),
        4,
        "a from line, a header and two changes:\n{t}"
    );
    assert!(
        t.lines()
            .any(|l| l.starts_with('+') && l.contains(&added) && l.contains("New Person")),
        "{t}"
    );
    assert!(
        t.lines()
            .any(|l| l.starts_with('-') && l.contains(&removed)),
        "{t}"
    );

    // Two more syncs: the first is dropped, the latest and two previous stay.
    let first = inspect(&c1z, &["syncs"]).as_array().unwrap()[1]["sync_id"].clone();
    sync_to(&sim, &c1z);
    let run = sync_to(&sim, &c1z);
    assert!(run.stdout.contains("kept 2, dropped 1"), "{}", run.stdout);
    let syncs = inspect(&c1z, &["syncs"]);
    let listed: Vec<String> = ids(&syncs, |s| s["sync_id"].as_str().unwrap().to_string())
        .into_iter()
        .collect();
    assert_eq!(listed.len(), 3, "{syncs}");
    assert!(!listed.contains(&first.as_str().unwrap().to_string()));
    let conn = db(&c1z, dir.path());
    for table in [
        "v1_resource_types",
        "v1_resources",
        "v1_entitlements",
        "v1_grants",
        "v1_sync_runs",
    ] {
        let got: BTreeSet<String> =
            strings(&conn, &format!("SELECT DISTINCT sync_id FROM {table}"))
                .into_iter()
                .collect();
        assert_eq!(got, listed.iter().cloned().collect(), "{table}");
    }
    let t = inspect_table(&c1z, &["diff"]);
    assert!(t.contains("no changes"), "{t}");
}

#[test]
fn the_default_output_is_sync_c1z_and_a_foreign_file_is_never_replaced() {
    let sim = sim(40, 3, 50);
    let dir = tempfile::tempdir().unwrap();
    Host::for_sim(&sim)
        .current_dir(dir.path())
        .run(&["sync"])
        .assert_ok();
    let default = dir.path().join("sync.c1z");
    assert!(std::fs::read(&default).unwrap().starts_with(MAGIC));
    let run = Host::new()
        .current_dir(dir.path())
        .run(&["inspect", "stats"]);
    run.assert_ok();
    assert!(run.stdout.contains("sync id"), "{}", run.stdout);

    let notes = dir.path().join("notes.c1z");
    std::fs::write(&notes, "important notes").unwrap();
    let before = sim.requests().get("GET /scim/v2/Users").copied();
    let run = Host::for_sim(&sim).run(&["sync", "-f", notes.to_str().unwrap()]);
    assert!(!run.ok());
    let line = run.error_line();
    assert!(
        line.contains("not a c1z") && line.contains("notes.c1z"),
        "{line}"
    );
    assert_eq!(std::fs::read_to_string(&notes).unwrap(), "important notes");
    assert_eq!(
        sim.requests().get("GET /scim/v2/Users").copied(),
        before,
        "refused before syncing"
    );
    let names: BTreeSet<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        names,
        BTreeSet::from(["notes.c1z".to_string(), "sync.c1z".to_string()]),
        "no temp files left"
    );

    let run = Host::new().run(&["inspect", "-f", notes.to_str().unwrap(), "resources"]);
    assert!(!run.ok());
    assert!(run.error_line().contains("neither a c1z"), "{}", run.stderr);
    let missing = dir.path().join("missing.c1z");
    let run = Host::new().run(&["inspect", "-f", missing.to_str().unwrap(), "stats"]);
    assert!(
        run.error_line().contains("does not exist"),
        "{}",
        run.stderr
    );
    let json = dir.path().join("one.json");
    sync_to(&sim, &json);
    let run = Host::new().run(&["inspect", "-f", json.to_str().unwrap(), "diff"]);
    assert!(
        run.error_line().contains("JSON output holds one sync"),
        "{}",
        run.stderr
    );
}
