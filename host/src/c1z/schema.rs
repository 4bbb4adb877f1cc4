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

pub const DDL: &str = "
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
CREATE INDEX IF NOT EXISTS idx_resources_resource_type_id_v1
    ON v1_resources (resource_type_id);
CREATE INDEX IF NOT EXISTS idx_resources_parent_resource_id_v1
    ON v1_resources (parent_resource_type_id, parent_resource_id);

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
CREATE INDEX IF NOT EXISTS idx_entitlements_resource_id_v1
    ON v1_entitlements (resource_type_id, resource_id);

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
CREATE INDEX IF NOT EXISTS idx_grants_resource_type_id_resource_id_v1
    ON v1_grants (resource_type_id, resource_id);
CREATE INDEX IF NOT EXISTS idx_grants_principal_id_v1
    ON v1_grants (principal_resource_type_id, principal_resource_id);
CREATE INDEX IF NOT EXISTS idx_grants_entitlement_id_principal_id_v1
    ON v1_grants (entitlement_id, principal_resource_type_id, principal_resource_id);
CREATE INDEX IF NOT EXISTS idx_grants_entitlement_id_sync_id_v1
    ON v1_grants (entitlement_id, sync_id, id);

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

pub fn create(conn: &rusqlite::Connection) -> rusqlite::Result<()> {
    conn.execute_batch(DDL)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn every_table_is_created_and_the_ddl_is_rerunnable() {
        let conn = rusqlite::Connection::open_in_memory().unwrap();
        create(&conn).unwrap();
        create(&conn).unwrap();
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
    }
}
