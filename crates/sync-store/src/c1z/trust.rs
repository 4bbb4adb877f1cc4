//! Whether an unpacked c1z's database is one this crate can query: its
//! schema must be exactly the one [`super::schema`] creates, object for
//! object. A file from disk could otherwise bring a view that never ends,
//! a trigger that runs (and persists into the next file) when the writer
//! deletes old syncs, or a table declared with defaults, checks or
//! collations that run on our statements. Checked before any statement
//! touches the file's rows; only `sqlite_master` and the tables' column
//! lists are read, on a connection [`super::guard::harden`]ed first.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use anyhow::Context as _;
use rusqlite::{Connection, ErrorCode};

use super::limits::{shown, C1zError};
use super::schema;

/// More objects than the schema has plus room for SQLite's own: a file
/// with more is refused without reading them all.
const MAX_OBJECTS: i64 = 64;

/// One row of `sqlite_master`.
#[derive(Debug)]
struct Object {
    kind: String,
    name: String,
    table: String,
    sql: Option<String>,
}

/// `Ok` if the database on `conn` has exactly the c1z schema; else
/// [`C1zError::Untrusted`] saying what it has, or an error saying it is
/// not an SQLite database at all.
pub(super) fn check(conn: &Connection, file: &Path) -> anyhow::Result<()> {
    check_schema(conn, file, true)
}

/// [`check`] for an unfinished sync's database, whose lookup indexes the
/// writer builds only when the sync finishes.
pub(super) fn check_partial(conn: &Connection, file: &Path) -> anyhow::Result<()> {
    check_schema(conn, file, false)
}

fn check_schema(conn: &Connection, file: &Path, lookup_indexes: bool) -> anyhow::Result<()> {
    let refuse = |why: String| -> anyhow::Error { C1zError::untrusted(file, why).into() };
    let (reference, want) =
        reference_schema().context("cannot build the c1z schema to compare with")?;
    // An error here may be the budget's interruption; the caller's
    // `Budget::explain` says so over whatever is returned.
    let found = match objects(conn) {
        Ok(Objects::Listed(found)) => found,
        Ok(Objects::TooMany(n)) => {
            return Err(refuse(format!(
                "it has {n} schema objects where a c1z has {}",
                want.len()
            )))
        }
        Err(e) if is_not_a_database(&e) => {
            return Err(e).with_context(|| {
                format!(
                    "{} is not a valid c1z file: its content is not an SQLite database",
                    file.display()
                )
            })
        }
        // SQLite's message would quote the file's own text: left out.
        Err(_) => return Err(refuse("its SQLite schema does not load".into())),
    };
    let by_name: BTreeMap<&str, &Object> = want.iter().map(|o| (o.name.as_str(), o)).collect();

    // Views and triggers first: the most telling refusal.
    if let Some(o) = found
        .iter()
        .find(|o| o.kind == "view" || o.kind == "trigger")
    {
        return Err(refuse(format!(
            "it has a {} {} (views and triggers are refused)",
            o.kind,
            shown(&o.name)
        )));
    }
    let mut seen = BTreeSet::new();
    for o in &found {
        if o.kind != "table" && o.kind != "index" {
            return Err(refuse(format!(
                "it has a {} {}",
                shown(&o.kind),
                shown(&o.name)
            )));
        }
        // SQLite's indexes for UNIQUE and PRIMARY KEY constraints. None of
        // the schema's tables declares one, so a table that did would fail
        // the comparison of its declaration below.
        if o.kind == "index" && o.name.starts_with("sqlite_autoindex_") && o.sql.is_none() {
            continue;
        }
        let Some(w) = by_name.get(o.name.as_str()) else {
            return Err(refuse(format!(
                "it has {} {} {} that the c1z schema does not",
                article(&o.kind),
                o.kind,
                shown(&o.name)
            )));
        };
        let what = format!("its {} {}", o.kind, shown(&o.name));
        if w.kind != o.kind {
            return Err(refuse(format!(
                "{what} is {} {} in the c1z schema",
                article(&w.kind),
                w.kind
            )));
        }
        if w.table != o.table {
            return Err(refuse(format!(
                "{what} is on the table {} where the c1z schema has it on {}",
                shown(&o.table),
                shown(&w.table)
            )));
        }
        let sql = o.sql.as_deref().map(normalized);
        if o.kind == "table" {
            // A virtual table would run its module to list its columns.
            if !sql
                .as_deref()
                .is_some_and(|s| s.starts_with("CREATE TABLE "))
            {
                return Err(refuse(format!("{what} is not a plain table")));
            }
            if let Some(why) = columns_differ(conn, &reference, &o.name)? {
                return Err(refuse(format!("{what} {why}")));
            }
        }
        if sql != w.sql.as_deref().map(normalized) {
            return Err(refuse(format!(
                "{what} is declared differently from the c1z schema (its constraints, defaults or collations)"
            )));
        }
        seen.insert(o.name.as_str());
    }
    let required = |name: &str| lookup_indexes || !schema::INDEXES.contains(&name);
    if let Some(w) = want
        .iter()
        .find(|w| !seen.contains(w.name.as_str()) && required(&w.name))
    {
        return Err(refuse(format!(
            "it lacks the {} {}",
            w.kind,
            shown(&w.name)
        )));
    }
    Ok(())
}

enum Objects {
    Listed(Vec<Object>),
    TooMany(i64),
}

/// The file's `sqlite_master` (reading it first loads and parses the
/// schema, which runs nothing of it).
fn objects(conn: &Connection) -> rusqlite::Result<Objects> {
    let n: i64 = conn.query_row("SELECT count(*) FROM sqlite_master", [], |r| r.get(0))?;
    if n > MAX_OBJECTS {
        return Ok(Objects::TooMany(n));
    }
    Ok(Objects::Listed(list(conn)?))
}

fn list(conn: &Connection) -> rusqlite::Result<Vec<Object>> {
    let mut stmt = conn.prepare("SELECT type, name, tbl_name, sql FROM sqlite_master")?;
    let rows = stmt.query_map([], |r| {
        Ok(Object {
            kind: r.get(0)?,
            name: r.get(1)?,
            table: r.get(2)?,
            sql: r.get(3)?,
        })
    })?;
    rows.collect()
}

/// The schema as [`schema`] creates it, in memory, and its objects.
fn reference_schema() -> rusqlite::Result<(Connection, Vec<Object>)> {
    let conn = Connection::open_in_memory()?;
    schema::create_tables(&conn)?;
    schema::create_indexes(&conn)?;
    let objects = list(&conn)?;
    Ok((conn, objects))
}

/// How the columns of `table` in the file differ from the schema's, if
/// they do: the first column of its own, else the first it lacks, else the
/// first declared otherwise.
fn columns_differ(
    conn: &Connection,
    reference: &Connection,
    table: &str,
) -> anyhow::Result<Option<String>> {
    let have = columns(conn, table)?;
    let want = columns(reference, table)?;
    if let Some(c) = have.iter().find(|c| !want.iter().any(|w| w.0 == c.0)) {
        return Ok(Some(format!(
            "has a column {} that the c1z schema does not",
            shown(&c.0)
        )));
    }
    if let Some(w) = want.iter().find(|w| !have.iter().any(|c| c.0 == w.0)) {
        return Ok(Some(format!("lacks the column {}", shown(&w.0))));
    }
    if let Some((c, _)) = have.iter().zip(&want).find(|(c, w)| c != w) {
        return Ok(Some(format!(
            "declares its column {} differently from the c1z schema (type, order, default, key or NOT NULL)",
            shown(&c.0)
        )));
    }
    Ok(None)
}

/// Name, declared type, NOT NULL, default, primary key and hidden
/// (generated) of each column, in order: `PRAGMA table_xinfo`.
type Column = (String, String, bool, Option<String>, i64, i64);

fn columns(conn: &Connection, table: &str) -> anyhow::Result<Vec<Column>> {
    let mut stmt = conn.prepare(
        "SELECT name, type, \"notnull\", dflt_value, pk, hidden FROM pragma_table_xinfo(?1) ORDER BY cid",
    )?;
    let rows = stmt.query_map([table], |r| {
        Ok((
            r.get(0)?,
            r.get(1)?,
            r.get(2)?,
            r.get(3)?,
            r.get(4)?,
            r.get(5)?,
        ))
    })?;
    rows.collect::<Result<_, _>>()
        .with_context(|| format!("cannot list the columns of {table}"))
}

/// SQL text with each run of whitespace made one space: the schema's DDL
/// may be laid out again without files written before turning untrusted.
fn normalized(sql: &str) -> String {
    sql.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn article(kind: &str) -> &'static str {
    if kind.starts_with(['a', 'e', 'i', 'o', 'u']) {
        "an"
    } else {
        "a"
    }
}

fn is_not_a_database(e: &rusqlite::Error) -> bool {
    matches!(e, rusqlite::Error::SqliteFailure(f, _) if f.code == ErrorCode::NotADatabase)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic)]
    use std::path::PathBuf;
    use std::time::{Duration, Instant};

    use super::*;
    use crate::c1z::{pack, sink, C1z, Limits};
    use crate::testing::{sample, write_doc};

    /// A c1z with this crate's schema, one finished sync, and `extra` run
    /// over it, packed by the crate's own packer; in `dir`, whose `tmp`
    /// holds the reader's temp directories.
    fn crafted(dir: &Path, extra: &str) -> PathBuf {
        let db = dir.join("crafted.db");
        {
            let conn = Connection::open(&db).unwrap();
            schema::create_tables(&conn).unwrap();
            schema::create_indexes(&conn).unwrap();
            conn.execute_batch(
                "INSERT INTO v1_sync_runs (sync_id, started_at, ended_at, sync_token) \
                 VALUES ('s1', '2025-06-01 10:00:00', '2025-06-01 10:01:00', '');",
            )
            .unwrap();
            conn.execute_batch(extra).unwrap();
        }
        let path = dir.join("s.c1z");
        pack(&db, &path).unwrap();
        std::fs::remove_file(&db).unwrap();
        std::fs::create_dir_all(dir.join("tmp")).unwrap();
        path
    }

    fn entries(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    /// What the reader and the writer say of the crafted file; both refuse
    /// it with a [`C1zError::Untrusted`], leave it as it was and leave no
    /// temp file.
    fn refused(extra: &str) -> String {
        let dir = tempfile::tempdir().unwrap();
        let path = crafted(dir.path(), extra);
        let before = std::fs::read(&path).unwrap();
        let clock = Instant::now();

        let e = C1z::open_in(&path, &Limits::default(), &dir.path().join("tmp"))
            .err()
            .unwrap();
        let Some(C1zError::Untrusted { file, why }) = e.downcast_ref::<C1zError>() else {
            panic!("the reader: {e:#}");
        };
        assert_eq!(file, &path);
        assert_eq!(
            e.to_string(),
            format!(
                "{} is not a c1z this host wrote or can trust: {why}; sync again to a new file",
                path.display()
            )
        );
        assert_eq!(format!("{e:#}"), e.to_string(), "one line, no context");
        let read = e.to_string();

        let e = sink(&path).err().unwrap();
        assert_eq!(e.to_string(), read, "the writer says the same");
        assert!(clock.elapsed() < Duration::from_secs(10), "refused at once");
        assert_eq!(std::fs::read(&path).unwrap(), before);
        assert_eq!(entries(dir.path()), ["s.c1z", "tmp"]);
        assert_eq!(entries(&dir.path().join("tmp")), Vec::<String>::new());
        why.clone()
    }

    #[test]
    fn the_crafted_schema_as_is_passes() {
        let dir = tempfile::tempdir().unwrap();
        let path = crafted(dir.path(), "");
        let c = C1z::open_in(&path, &Limits::default(), &dir.path().join("tmp")).unwrap();
        assert_eq!(c.finished().unwrap().len(), 1);
        drop(c);
        // And what the writer makes of it passes again.
        write_doc(&path, &sample(&["u1"], &["u1"]));
        let c = C1z::open(&path).unwrap();
        assert_eq!(c.finished().unwrap().len(), 2);
    }

    #[test]
    fn a_view_that_never_ends_is_refused_before_any_query() {
        let why = refused(
            "CREATE VIEW forever AS WITH RECURSIVE c(x) AS \
             (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT x FROM c;",
        );
        assert_eq!(
            why,
            r#"it has a view "forever" (views and triggers are refused)"#
        );
    }

    #[test]
    fn a_trigger_is_refused_before_the_writer_deletes_a_row() {
        let why = refused(
            "CREATE TRIGGER keep AFTER DELETE ON v1_sync_runs BEGIN \
             INSERT INTO v1_sync_runs (sync_id, started_at, sync_token) \
             VALUES ('planted', '2025-01-01', ''); END;",
        );
        assert_eq!(
            why,
            r#"it has a trigger "keep" (views and triggers are refused)"#
        );
    }

    #[test]
    fn names_in_the_message_are_escaped_and_cut() {
        let name = format!("v\n{}", "x".repeat(200));
        let why = refused(&format!("CREATE VIEW \"{name}\" AS SELECT 1;"));
        assert!(!why.contains('\n'), "{why}");
        assert!(why.starts_with(r#"it has a view "v\nxxx"#), "{why}");
        assert!(why.len() < 120, "{why}");
    }

    #[test]
    fn tables_indexes_and_columns_of_its_own_are_refused() {
        assert_eq!(
            refused("CREATE TABLE notes (x);"),
            r#"it has a table "notes" that the c1z schema does not"#
        );
        assert_eq!(
            refused("CREATE INDEX idx_mine ON v1_grants (data);"),
            r#"it has an index "idx_mine" that the c1z schema does not"#
        );
        assert_eq!(
            refused("ALTER TABLE v1_grants ADD COLUMN extra TEXT;"),
            r#"its table "v1_grants" has a column "extra" that the c1z schema does not"#
        );
        assert_eq!(
            refused("ALTER TABLE v1_grants DROP COLUMN expansion;"),
            r#"its table "v1_grants" lacks the column "expansion""#
        );
        assert_eq!(
            refused("DROP TABLE v1_assets;"),
            r#"it lacks the table "v1_assets""#
        );
        assert_eq!(
            refused("DROP INDEX idx_grants_principal_id_v1;"),
            r#"it lacks the index "idx_grants_principal_id_v1""#
        );
    }

    #[test]
    fn a_table_or_index_declared_otherwise_is_refused() {
        // Same columns, but a CHECK that would run on every insert.
        let why = refused(
            "DROP TABLE v1_assets; CREATE TABLE v1_assets (
                id INTEGER PRIMARY KEY,
                external_id TEXT NOT NULL,
                content_type TEXT NOT NULL,
                data BLOB NOT NULL,
                sync_id TEXT NOT NULL,
                discovered_at DATETIME NOT NULL CHECK (length(hex(zeroblob(100000000))) > 0)
            );",
        );
        assert_eq!(
            why,
            r#"its table "v1_assets" is declared differently from the c1z schema (its constraints, defaults or collations)"#
        );
        let why = refused(
            "DROP TABLE v1_assets; CREATE TABLE v1_assets (
                id INTEGER PRIMARY KEY,
                external_id TEXT NOT NULL,
                content_type TEXT NOT NULL DEFAULT 'x',
                data BLOB NOT NULL,
                sync_id TEXT NOT NULL,
                discovered_at DATETIME NOT NULL
            );",
        );
        assert!(
            why.contains(r#"declares its column "content_type" differently"#),
            "{why}"
        );
        let why = refused(
            "DROP INDEX idx_grants_principal_id_v1; \
             CREATE INDEX idx_grants_principal_id_v1 ON v1_grants (principal_resource_id) \
             WHERE length(data) > 0;",
        );
        assert!(
            why.starts_with(r#"its index "idx_grants_principal_id_v1" is declared differently"#),
            "{why}"
        );
        let why = refused(
            "DROP INDEX idx_grants_principal_id_v1; \
             CREATE INDEX idx_grants_principal_id_v1 ON v1_resources (external_id);",
        );
        assert!(why.contains(r#"is on the table "v1_resources""#), "{why}");
    }

    #[test]
    fn a_schema_that_does_not_parse_is_refused_without_its_text() {
        let why = refused(
            "PRAGMA writable_schema=ON; \
             UPDATE sqlite_master SET sql = 'CREATE TABLE v1_assets (\n' \
             WHERE name = 'v1_assets';",
        );
        assert_eq!(why, "its SQLite schema does not load");
    }

    #[test]
    fn a_schema_of_many_objects_is_refused_unread() {
        let tables: String = (0..100)
            .map(|i| format!("CREATE TABLE t{i} (x);"))
            .collect();
        let why = refused(&tables);
        assert!(
            why.starts_with("it has 120 schema objects where a c1z has 20"),
            "{why}"
        );
    }

    #[test]
    fn a_slow_query_hits_the_budget() {
        // 300,000 grants: counting them takes far longer than 1 ms.
        let dir = tempfile::tempdir().unwrap();
        let path = crafted(
            dir.path(),
            "INSERT INTO v1_grants (resource_type_id, resource_id, entitlement_id, \
             principal_resource_type_id, principal_resource_id, external_id, data, sync_id, \
             discovered_at) SELECT 'group', 'g1', 'e', 'user', 'u' || x, 'x' || x, x'00', 's1', \
             '2025-06-01' FROM (WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c \
             WHERE x < 300000) SELECT x FROM c);",
        );
        let limits = Limits {
            statement_budget: Duration::from_millis(1),
            ..Limits::default()
        };
        // The check may already run past so small a budget; listing the
        // syncs certainly does.
        let e = C1z::open_in(&path, &limits, &dir.path().join("tmp"))
            .and_then(|c| c.syncs())
            .unwrap_err();
        assert_eq!(
            e.downcast_ref::<C1zError>(),
            Some(&C1zError::TooSlow {
                file: path.clone(),
                budget: Duration::from_millis(1)
            }),
            "{e:#}"
        );
        assert!(e.to_string().contains("ran past its 1ms budget"), "{e}");
        assert_eq!(entries(&dir.path().join("tmp")), Vec::<String>::new());
    }

    #[test]
    fn content_that_is_not_sqlite_is_named_so() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("db");
        std::fs::write(&db, vec![7u8; 8192]).unwrap();
        let path = dir.path().join("s.c1z");
        pack(&db, &path).unwrap();
        std::fs::create_dir(dir.path().join("tmp")).unwrap();
        let e = C1z::open_in(&path, &Limits::default(), &dir.path().join("tmp"))
            .err()
            .unwrap();
        assert!(
            e.to_string()
                .contains("its content is not an SQLite database"),
            "{e:#}"
        );
        assert_eq!(entries(&dir.path().join("tmp")), Vec::<String>::new());
    }
}
