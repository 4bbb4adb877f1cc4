//! SQLite's own defences, on every connection this crate opens on a c1z
//! database, and the time budget of statements on a file from disk. The
//! schema check ([`super::trust`]) refuses views and triggers outright;
//! these settings mean that, should anything get past it, SQLite still
//! neither expands a view, fires a trigger, nor runs a function the
//! file's schema names that is not marked harmless.

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::bail;
use rusqlite::config::DbConfig;
use rusqlite::Connection;

use super::limits::C1zError;

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

/// How many SQLite VM instructions run between two looks at the clock: a
/// look costs tens of nanoseconds, a thousand instructions microseconds.
const OPS_PER_CHECK: i32 = 1000;

/// A time budget on the statements of one connection: SQLite's progress
/// handler interrupts a statement once the deadline passes. The deadline
/// is set by [`Budget::restart`] as each statement starts.
pub(super) struct Budget {
    state: Arc<State>,
    limit: Duration,
}

struct State {
    origin: Instant,
    /// Nanoseconds after `origin`.
    deadline: AtomicU64,
    /// The handler interrupted a statement since the last [`Budget::explain`].
    hit: AtomicBool,
}

impl Budget {
    /// Installs the handler on `conn`, with the deadline `limit` from now.
    pub fn install(conn: &Connection, limit: Duration) -> Budget {
        let state = Arc::new(State {
            origin: Instant::now(),
            deadline: AtomicU64::new(u64::MAX),
            hit: AtomicBool::new(false),
        });
        let s = Arc::clone(&state);
        conn.progress_handler(
            OPS_PER_CHECK,
            Some(move || {
                let now = nanos(s.origin.elapsed());
                let over = now >= s.deadline.load(Ordering::Relaxed);
                if over {
                    s.hit.store(true, Ordering::Relaxed);
                }
                over
            }),
        );
        let budget = Budget { state, limit };
        budget.restart();
        budget
    }

    /// Removes the handler from `conn`.
    pub fn remove(conn: &Connection) {
        conn.progress_handler(0, None::<fn() -> bool>);
    }

    /// A statement starts: the deadline is `limit` from now.
    pub fn restart(&self) {
        let at = nanos(self.state.origin.elapsed()).saturating_add(nanos(self.limit));
        self.state.deadline.store(at, Ordering::Relaxed);
    }

    /// `e`, or [`C1zError::TooSlow`] if the budget stopped a statement
    /// (SQLite then reports only "interrupted").
    pub fn explain(&self, e: anyhow::Error, file: &Path) -> anyhow::Error {
        if self.state.hit.swap(false, Ordering::Relaxed) {
            C1zError::TooSlow {
                file: file.to_path_buf(),
                budget: self.limit,
            }
            .into()
        } else {
            e
        }
    }
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// Counts to a billion: minutes of work.
    const ENDLESS: &str = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c \
        WHERE x < 1000000000) SELECT count(*) FROM c";

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

    #[test]
    fn a_statement_past_its_budget_is_stopped_and_named() {
        let conn = Connection::open_in_memory().unwrap();
        let budget = Budget::install(&conn, Duration::from_millis(20));
        let clock = Instant::now();
        let e = conn
            .query_row(ENDLESS, [], |r| r.get::<_, i64>(0))
            .unwrap_err();
        assert!(clock.elapsed() < Duration::from_secs(5), "stopped soon");
        let e = budget.explain(e.into(), Path::new("s.c1z"));
        assert_eq!(
            e.downcast_ref::<C1zError>(),
            Some(&C1zError::TooSlow {
                file: "s.c1z".into(),
                budget: Duration::from_millis(20)
            })
        );
        assert!(e.to_string().contains("its 20ms budget"), "{e}");

        // The next statement gets a budget of its own; other errors stay.
        budget.restart();
        let n: i64 = conn.query_row("SELECT 1", [], |r| r.get(0)).unwrap();
        assert_eq!(n, 1);
        let e = conn.prepare("SELECT nope").unwrap_err();
        let e = budget.explain(e.into(), Path::new("s.c1z"));
        assert!(e.downcast_ref::<C1zError>().is_none(), "{e}");

        // Removed: a statement may outlast the deadline.
        Budget::remove(&conn);
        std::thread::sleep(Duration::from_millis(30));
        let n: i64 = conn
            .query_row(
                "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c \
                 WHERE x < 200000) SELECT count(*) FROM c",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(n, 200_000);
    }
}
