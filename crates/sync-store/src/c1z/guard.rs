//! SQLite's own defences, on every connection this crate opens on a c1z
//! database. The schema check ([`super::trust`]) refuses views and
//! triggers outright; these settings mean that, should anything get past
//! it, SQLite still neither expands a view, fires a trigger, nor runs a
//! function the file's schema names that is not marked harmless.

use anyhow::bail;
use rusqlite::config::DbConfig;
use rusqlite::Connection;

/// Defensive mode on, the schema untrusted, triggers and views off. Set
/// before the first statement on the connection, which is what loads the
/// file's schema.
pub(super) fn harden(conn: &Connection) -> anyhow::Result<()> {
    for (flag, name, on) in [
        // No writable_schema, no shadow-table or sqlite_dbpage writes.
        (DbConfig::SQLITE_DBCONFIG_DEFENSIVE, "defensive mode", true),
        // Functions and virtual tables the schema names run only if SQLite
        // marks them innocuous (what `PRAGMA trusted_schema=OFF` sets).
        (
            DbConfig::SQLITE_DBCONFIG_TRUSTED_SCHEMA,
            "the untrusted schema setting",
            false,
        ),
        (
            DbConfig::SQLITE_DBCONFIG_ENABLE_TRIGGER,
            "triggers off",
            false,
        ),
        (DbConfig::SQLITE_DBCONFIG_ENABLE_VIEW, "views off", false),
    ] {
        if conn.set_db_config(flag, on)? != on {
            bail!(
                "SQLite refused {name} on a c1z database; this build cannot read c1z files safely"
            );
        }
    }
    Ok(())
}

/// Runs `f` with defensive mode off, for the writer's `journal_mode=OFF`
/// (which defensive mode refuses, since a rolled-back transaction without
/// a journal corrupts the file: the writer throws its temp database away
/// on any failure). Only the writer's own statements run in `f`.
pub(super) fn without_defensive<T>(
    conn: &Connection,
    f: impl FnOnce(&Connection) -> rusqlite::Result<T>,
) -> anyhow::Result<T> {
    conn.set_db_config(DbConfig::SQLITE_DBCONFIG_DEFENSIVE, false)?;
    let out = f(conn);
    conn.set_db_config(DbConfig::SQLITE_DBCONFIG_DEFENSIVE, true)?;
    Ok(out?)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn views_and_triggers_do_nothing_on_a_hardened_connection() {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(
            "CREATE TABLE t (x); CREATE TABLE log (x);
             CREATE TRIGGER tr AFTER INSERT ON t BEGIN INSERT INTO log VALUES (new.x); END;
             CREATE VIEW v AS SELECT x FROM t;",
        )
        .unwrap();
        harden(&conn).unwrap();
        conn.execute("INSERT INTO t VALUES (1)", []).unwrap();
        let fired: i64 = conn
            .query_row("SELECT count(*) FROM log", [], |r| r.get(0))
            .unwrap();
        assert_eq!(fired, 0, "the trigger did not fire");
        assert!(conn.prepare("SELECT * FROM v").is_err(), "views are off");
        // Defensive: the schema cannot be rewritten by SQL.
        conn.execute_batch("PRAGMA writable_schema=ON").unwrap();
        assert!(conn
            .execute("UPDATE sqlite_master SET sql = 'x' WHERE name = 't'", [])
            .is_err());
        // journal_mode=OFF only with defensive mode lifted, which comes back.
        let mode = |c: &Connection| -> String {
            c.query_row("PRAGMA journal_mode", [], |r| r.get(0))
                .unwrap()
        };
        let file = tempfile::NamedTempFile::new().unwrap();
        let disk = Connection::open(file.path()).unwrap();
        harden(&disk).unwrap();
        disk.pragma_update(None, "journal_mode", "OFF").unwrap();
        assert_eq!(mode(&disk), "delete", "refused while defensive");
        without_defensive(&disk, |c| c.pragma_update(None, "journal_mode", "OFF")).unwrap();
        assert_eq!(mode(&disk), "off");
        assert!(disk.db_config(DbConfig::SQLITE_DBCONFIG_DEFENSIVE).unwrap());
    }
}
