//! The c1z v1 SQLite schema, table for table and column for column as
//! MODEL.md gives it, with its unique keys and lookup indexes. `IF NOT
//! EXISTS` throughout: the writer runs it over a copy of an existing file.

/// Every table of the format; each row of each belongs to a `sync_id`.
pub const TABLES: [&str; 7] = [
    "v1_resource_types",
    "v1_resources",
    "v1_entitlements",
    "v1_grants",
    "v1_sync_runs",
    "v1_assets",
    "v1_connector_sessions",
];

/// The tables and their unique keys (which deduplicate rows as they are
/// inserted).
pub const TABLES_DDL: &str = "
CREATE TABLE IF NOT EXISTS v1_resource_types (
    id INTEGER PRIMARY KEY,
    external_id TEXT NOT NULL,
    data BLOB NOT NULL,
    sync_id TEXT NOT NULL,
    discovered_at DATETIME NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS idx_resource_types_external_sync_v1
    ON v1_resource_types (external_id, sync_id);

CREATE TABLE IF NOT EXISTS v1_resources (
    id INTEGER PRIMARY KEY,
    resource_type_id TEXT NOT NULL,
    external_id TEXT NOT NULL,
    parent_resource_type_id TEXT,
    parent_resource_id TEXT,
    data BLOB NOT NULL,
    sync_id TEXT NOT NULL,
    discovered_at DATETIME NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS idx_resources_external_sync_v1
    ON v1_resources (external_id, sync_id);

CREATE TABLE IF NOT EXISTS v1_entitlements (
    id INTEGER PRIMARY KEY,
    resource_type_id TEXT NOT NULL,
    resource_id TEXT NOT NULL,
    external_id TEXT NOT NULL,
    data BLOB NOT NULL,
    sync_id TEXT NOT NULL,
    discovered_at DATETIME NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS idx_entitlements_external_sync_v1
    ON v1_entitlements (external_id, sync_id);

CREATE TABLE IF NOT EXISTS v1_grants (
    id INTEGER PRIMARY KEY,
    resource_type_id TEXT NOT NULL,
    resource_id TEXT NOT NULL,
    entitlement_id TEXT NOT NULL,
    principal_resource_type_id TEXT NOT NULL,
    principal_resource_id TEXT NOT NULL,
    external_id TEXT NOT NULL,
    expansion BLOB,
    needs_expansion INTEGER NOT NULL DEFAULT 0,
    data BLOB NOT NULL,
    sync_id TEXT NOT NULL,
    discovered_at DATETIME NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS idx_grants_external_sync_v1
    ON v1_grants (external_id, sync_id);

CREATE TABLE IF NOT EXISTS v1_sync_runs (
    id INTEGER PRIMARY KEY,
    sync_id TEXT NOT NULL,
    started_at DATETIME NOT NULL,
    ended_at DATETIME,
    sync_token TEXT NOT NULL,
    sync_type TEXT NOT NULL DEFAULT 'full',
    parent_sync_id TEXT NOT NULL DEFAULT '',
    linked_sync_id TEXT NOT NULL DEFAULT '',
    supports_diff INTEGER NOT NULL DEFAULT 0,
    grants_backfilled INTEGER NOT NULL DEFAULT 0,
    stats TEXT,
    ingest_invariant_generation TEXT NOT NULL DEFAULT '',
    ingest_invariant_coverage TEXT NOT NULL DEFAULT '',
    ingest_invariant_mode TEXT NOT NULL DEFAULT ''
);
CREATE UNIQUE INDEX IF NOT EXISTS idx_sync_runs_sync_id_v1
    ON v1_sync_runs (sync_id);

CREATE TABLE IF NOT EXISTS v1_assets (
    id INTEGER PRIMARY KEY,
    external_id TEXT NOT NULL,
    content_type TEXT NOT NULL,
    data BLOB NOT NULL,
    sync_id TEXT NOT NULL,
    discovered_at DATETIME NOT NULL
);

CREATE TABLE IF NOT EXISTS v1_connector_sessions (
    id INTEGER PRIMARY KEY,
    sync_id TEXT NOT NULL,
    key TEXT NOT NULL,
    value BLOB NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS idx_connector_sessions_sync_key_v1
    ON v1_connector_sessions (sync_id, key);
";

/// The lookup indexes beside the unique keys, under the names the SDK gives
/// them. The writer builds them after the rows are in: one sort per index
/// is much cheaper than keeping four indexes of 500,000 grants up to date
/// row by row.
pub const INDEXES_DDL: &str = "
CREATE INDEX IF NOT EXISTS idx_resources_resource_type_id_v1
    ON v1_resources (resource_type_id);
CREATE INDEX IF NOT EXISTS idx_resources_parent_resource_id_v1
    ON v1_resources (parent_resource_type_id, parent_resource_id);
CREATE INDEX IF NOT EXISTS idx_entitlements_resource_id_v1
    ON v1_entitlements (resource_type_id, resource_id);
CREATE INDEX IF NOT EXISTS idx_grants_resource_type_id_resource_id_v1
    ON v1_grants (resource_type_id, resource_id);
CREATE INDEX IF NOT EXISTS idx_grants_principal_id_v1
    ON v1_grants (principal_resource_type_id, principal_resource_id);
CREATE INDEX IF NOT EXISTS idx_grants_entitlement_id_principal_id_v1
    ON v1_grants (entitlement_id, principal_resource_type_id, principal_resource_id);
CREATE INDEX IF NOT EXISTS idx_grants_entitlement_id_sync_id_v1
    ON v1_grants (entitlement_id, sync_id, id);
";

/// The names [`INDEXES_DDL`] creates.
pub const INDEXES: [&str; 7] = [
    "idx_resources_resource_type_id_v1",
    "idx_resources_parent_resource_id_v1",
    "idx_entitlements_resource_id_v1",
    "idx_grants_resource_type_id_resource_id_v1",
    "idx_grants_principal_id_v1",
    "idx_grants_entitlement_id_principal_id_v1",
    "idx_grants_entitlement_id_sync_id_v1",
];

/// Creates the tables and their unique keys, not the lookup indexes.
pub fn create_tables(conn: &rusqlite::Connection) -> rusqlite::Result<()> {
    conn.execute_batch(TABLES_DDL)
}

/// Creates the lookup indexes ([`INDEXES_DDL`]).
pub fn create_indexes(conn: &rusqlite::Connection) -> rusqlite::Result<()> {
    conn.execute_batch(INDEXES_DDL)
}

/// Drops the lookup indexes ([`INDEXES`]), for [`create_indexes`] to
/// build again once a sync's rows are in.
pub fn drop_indexes(conn: &rusqlite::Connection) -> rusqlite::Result<()> {
    for name in INDEXES {
        conn.execute_batch(&format!("DROP INDEX IF EXISTS {name}"))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn every_table_is_created_and_the_ddl_is_rerunnable() {
        let conn = rusqlite::Connection::open_in_memory().unwrap();
        for _ in 0..2 {
            create_tables(&conn).unwrap();
            create_indexes(&conn).unwrap();
        }
        let mut stmt = conn
            .prepare("SELECT name FROM sqlite_master WHERE type='table' ORDER BY name")
            .unwrap();
        let mut names: Vec<String> = stmt
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        let mut want: Vec<String> = TABLES.iter().map(|s| s.to_string()).collect();
        names.sort();
        want.sort();
        assert_eq!(names, want);
        let indexes: i64 = conn
            .query_row(
                "SELECT count(*) FROM sqlite_master WHERE type='index' AND sql IS NOT NULL",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(indexes, 13, "6 unique keys and 7 lookup indexes");

        drop_indexes(&conn).unwrap();
        let left: i64 = conn
            .query_row(
                "SELECT count(*) FROM sqlite_master WHERE type='index' AND sql IS NOT NULL",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(left, 6, "INDEXES names every lookup index");
    }
}
