//! The c1z writer thread's side of the streaming sink: a database beside
//! the target (a copy of the existing file's syncs, if any), one open
//! transaction, prepared statements, and each page inserted as it arrives.
//! At the end: the `v1_sync_runs` row, older syncs dropped (the two newest
//! previous finished ones stay), the lookup indexes built (one sort each,
//! rather than kept up to date row by row), a compact copy if rows were
//! dropped, and the file packed over the target.
//!
//! A plain sink's database is in a temp directory, without a journal: any
//! failure throws it away. A resumable sink's is in the target's partial
//! directory ([`super::resume`]): older syncs are dropped from the copy
//! before the first commit, and rows and the end go through a rollback
//! journal with a commit at the driver's checkpoints (spaced by their
//! cost), so a sync killed at any point is continued from its last commit.
//!
//! Rows are deduplicated by the tables' unique keys (`INSERT OR IGNORE`: the
//! first occurrence wins, a duplicate changes no row). Grants embed their
//! entitlement as the SDK's `grant.NewGrant` does (its id and whole owning
//! resource) and entitlements their whole resource, looked up in a
//! small cache of the last records written, else in the database; nothing
//! here grows with the tenant but the database file.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{anyhow, bail, Context as _};
use prost::Message as _;
use rusqlite::{params, Connection, OptionalExtension as _};

use super::encode::{self, EntitlementRow, StoredStats};
use super::guard::Budget;
use super::recent::Recent;
use super::resume::{self, Partial, ResumePolicy, Resumed, Saved, Stamp, Start, StartOver};
use super::{guard, pack_via, proto, schema, sniff, trust, unpack_capped, Kind};
use crate::model::{ConnectorInfo, Entitlement, Grant, Resource, ResourceType};
use crate::sink::{Counts, Finished, RunStats};

/// What the sink hands the writer thread, in the order the trait's calls come.
pub(super) enum Msg {
    Begin(ConnectorInfo, Vec<ResourceType>),
    Resources(Vec<Resource>),
    Entitlements(Vec<Entitlement>),
    Grants(Vec<Grant>),
    /// Commit what came so far with the driver's state.
    Checkpoint(String),
    Finish(RunStats),
}

/// Knobs the tests turn; the defaults are what syncs use.
#[derive(Clone, Debug)]
pub(super) struct Options {
    /// Resources and entitlements remembered for embedding, each.
    pub cache_entries: usize,
    /// A cap on the database's pages (tests: a full disk).
    pub max_pages: Option<u64>,
    /// The caps on the existing file whose syncs are kept.
    pub limits: super::Limits,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            cache_entries: 4096,
            max_pages: None,
            limits: super::Limits::default(),
        }
    }
}

/// Pages of a new file. Rows are appended in rowid order and most blobs
/// are a few hundred bytes; 16 KiB pages mean fewer page writes and splits
/// than SQLite's 4 KiB (measured with examples/write_bench.rs: 4 KiB was
/// the slowest, 8 and 16 KiB within noise of each other).
const PAGE_SIZE: u32 = 16 * 1024;
/// SQLite's page cache while rows arrive, in KiB: fixed, so memory does not
/// grow with the tenant. Past it, B-tree pages are read back from the OS's
/// file cache; 4 to 16 MiB made no measurable difference to the time.
const CACHE_KIB: i64 = 8 * 1024;
/// The page cache while the indexes are built (each sort's memory is the
/// cache's size).
const INDEX_CACHE_KIB: i64 = 2 * 1024;

const INSERT_TYPE: &str = "INSERT OR IGNORE INTO v1_resource_types \
    (external_id, data, sync_id, discovered_at) VALUES (?1, ?2, ?3, ?4)";
const RESOURCE_DATA: &str = "SELECT data FROM v1_resources WHERE external_id = ?1 AND sync_id = ?2";
const ENTITLEMENT_ROW: &str = "SELECT resource_type_id, resource_id, data FROM v1_entitlements \
    WHERE external_id = ?1 AND sync_id = ?2";
/// The run row of a resumable sync, written when it begins: no `ended_at`
/// until it finishes (what the SDK's readers take for an unfinished sync),
/// its saved position in `sync_token`.
const INSERT_UNFINISHED: &str = "INSERT INTO v1_sync_runs (sync_id, started_at, ended_at, \
    sync_token, sync_type, parent_sync_id, linked_sync_id, supports_diff, grants_backfilled) \
    VALUES (?1, ?2, NULL, ?3, 'full', '', '', 1, 1)";
const SAVE_POSITION: &str = "UPDATE v1_sync_runs SET sync_token = ?2 WHERE sync_id = ?1";
const END_RUN: &str = "UPDATE v1_sync_runs SET started_at = ?2, ended_at = ?3, sync_token = '', \
    stats = ?4 WHERE sync_id = ?1";
/// A finished full sync with its grants: `supports_diff` 1, or the SDK's
/// file-diff and rollback tools refuse it (MODEL.md).
const INSERT_RUN: &str = "INSERT INTO v1_sync_runs (sync_id, started_at, ended_at, sync_token, \
    sync_type, parent_sync_id, linked_sync_id, supports_diff, grants_backfilled, stats) \
    VALUES (?1, ?2, ?3, '', 'full', '', '', 1, 1, ?4)";

/// The insert statements, with the sync's id and `discovered_at` written in
/// as literals: the same for every row, so not bound 600,000 times.
struct Inserts {
    resource: String,
    entitlement: String,
    grant: String,
}

impl Inserts {
    fn new(sync_id: &str, at: &str) -> anyhow::Result<Inserts> {
        // Ours (base62, digits and separators), but checked: they go
        // into SQL text.
        let plain = |s: &str| {
            s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b" -:.".contains(&b))
        };
        if !plain(sync_id) || !plain(at) {
            bail!("unexpected characters in the sync id {sync_id:?} or time {at:?}");
        }
        Ok(Inserts {
            resource: format!(
                "INSERT OR IGNORE INTO v1_resources (resource_type_id, external_id, \
                 parent_resource_type_id, parent_resource_id, data, sync_id, discovered_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5, '{sync_id}', '{at}')"
            ),
            entitlement: format!(
                "INSERT OR IGNORE INTO v1_entitlements (resource_type_id, resource_id, external_id, \
                 data, sync_id, discovered_at) VALUES (?1, ?2, ?3, ?4, '{sync_id}', '{at}')"
            ),
            grant: format!(
                "INSERT OR IGNORE INTO v1_grants (resource_type_id, resource_id, entitlement_id, \
                 principal_resource_type_id, principal_resource_id, external_id, expansion, \
                 needs_expansion, data, sync_id, discovered_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, NULL, 0, ?7, '{sync_id}', '{at}')"
            ),
        })
    }
}

/// Where the database lives: a temp directory gone with the sink, or the
/// target's partial directory, kept when the sync stops part way.
enum Work {
    Temp(tempfile::TempDir),
    Partial(Partial),
}

impl Work {
    fn path(&self) -> &Path {
        match self {
            Work::Temp(t) => t.path(),
            Work::Partial(p) => &p.dir,
        }
    }
}

/// What a resumable sync saves with each checkpoint besides the driver's
/// state, and the unfinished sync it continues, if any.
struct Resumable {
    origin: String,
    target: Option<Stamp>,
    continued: Option<(String, Saved)>,
    /// Syncs of the target dropped from the copy when the sync started.
    dropped: usize,
}

/// The temp database, ready for rows: made before the sink is handed out,
/// so a target that is not a c1z fails the call that asks for the sink.
pub(super) struct Store {
    work: Work,
    db: PathBuf,
    conn: Connection,
    target: PathBuf,
    cache_entries: usize,
    resumable: Option<Resumable>,
}

/// Whether `target` holds syncs to keep; refuses a file that is not a c1z.
fn existing(target: &Path) -> anyhow::Result<bool> {
    match sniff(target)? {
        None => Ok(false),
        Some(Kind::C1zV1) => Ok(true),
        Some(kind) => bail!(
            "{} exists and is not a c1z v1 file ({}); refusing to replace it: remove it or choose another -f",
            target.display(),
            kind.describe()
        ),
    }
}

/// How the database keeps its transactions.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Journal {
    /// None: the database is thrown away on any failure.
    Off,
    /// A rollback journal: each checkpoint a commit that survives the
    /// process.
    Rollback,
}

/// Opens `db` for this crate alone, SQLite's defences on and its schema
/// checked (`check`) before any statement reads a row.
pub(super) fn open_checked(
    db: &Path,
    check: Check<'_>,
    limits: &super::Limits,
) -> anyhow::Result<Connection> {
    let conn = Connection::open(db).context("cannot open the temporary database")?;
    // Before anything reads the file: only we open it (and a partial
    // database an older version left in WAL mode needs no shared-memory
    // index, `-shm`, until it is switched to a rollback journal).
    conn.pragma_update(None, "locking_mode", "EXCLUSIVE")?;
    // The existing file is untrusted: SQLite's defences on, and its
    // schema checked before any statement reads or writes a row (a
    // trigger would otherwise run on our deletes and persist into the
    // new file).
    guard::harden(&conn)?;
    // The budget covers the check, not the writer's own statements after
    // it (Limits::statement_budget says why).
    let checked = |file: &Path, check: fn(&Connection, &Path) -> anyhow::Result<()>| {
        let budget = Budget::install(&conn, limits.statement_budget);
        check(&conn, file).map_err(|e| budget.explain(e, file))?;
        Budget::remove(&conn);
        anyhow::Ok(())
    };
    match check {
        Check::None => {}
        Check::File(file) => checked(file, trust::check)?,
        Check::Partial(file) => checked(file, trust::check_partial)?,
    }
    Ok(conn)
}

/// Which schema check a database gets before any statement reads a row.
#[derive(Clone, Copy)]
pub(super) enum Check<'a> {
    /// A new, empty database.
    None,
    /// A copy of the file at this path.
    File(&'a Path),
    /// An unfinished sync's database, at this path.
    Partial(&'a Path),
}

/// Opens `db` (an existing file's copy, a new file, or a partial sync's
/// database) and makes it ready for rows, after checking its schema.
fn open_db(
    db: &Path,
    check: Check<'_>,
    is_new: bool,
    journal: Journal,
    opts: &Options,
) -> anyhow::Result<Connection> {
    let conn = open_checked(db, check, &opts.limits)?;
    if is_new {
        // Before the first write, which fixes the page size.
        conn.pragma_update(None, "page_size", PAGE_SIZE)?;
    }
    set_journal(&conn, journal)?;
    conn.pragma_update(None, "cache_size", -CACHE_KIB)?;
    if let Some(n) = opts.max_pages {
        conn.pragma_update_and_check(None, "max_page_count", n, |r| r.get::<_, i64>(0))?;
    }
    // The lookup indexes are built once the rows are in (an existing
    // file's too: rebuilding them is cheaper than keeping them up to
    // date row by row).
    schema::create_tables(&conn).context("cannot create the c1z tables")?;
    schema::drop_indexes(&conn).context("cannot prepare the c1z tables")?;
    Ok(conn)
}

/// Puts `conn`'s database in the `journal` mode, with its syncing.
fn set_journal(conn: &Connection, journal: Journal) -> anyhow::Result<()> {
    match journal {
        // The temp database is thrown away on any failure, so it needs no
        // journal, no fsyncs and no file locks while it is built.
        Journal::Off => {
            guard::without_defensive(conn, |c| {
                c.pragma_update_and_check(None, "journal_mode", "OFF", |r| r.get::<_, String>(0))
            })?;
            conn.pragma_update(None, "synchronous", "OFF")?;
        }
        // Rows are appended on new pages, which need no journal: a commit
        // copies to the journal only the pages it changes that existed
        // before it (index pages, the last leaves), then writes its pages
        // once. A WAL wrote every page twice, to the WAL and back (measured
        // on the bench's 100,000-user sync: 5.7 to 6.3 s against 6.4 to
        // 7.5 s, and a tenth less CPU). A killed process (SIGKILL, the OOM
        // killer) loses nothing committed: the next open rolls a hot
        // journal back. No fsync
        // (measured: NORMAL's made the bench's sync a third slower), so an
        // OS crash may damage the file: where the OS says when it booted, a
        // resume after a reboot checks the database first
        // (`resume::survived_reboot`), and elsewhere NORMAL keeps it whole.
        Journal::Rollback => {
            let mode: String =
                conn.pragma_update_and_check(None, "journal_mode", "DELETE", |r| r.get(0))?;
            if !mode.eq_ignore_ascii_case("delete") {
                bail!("cannot switch the sync's database to journal_mode=DELETE (got {mode})");
            }
            let sync = if resume::boot_id().is_some() {
                "OFF"
            } else {
                "NORMAL"
            };
            conn.pragma_update(None, "synchronous", sync)?;
        }
    }
    Ok(())
}

/// Fills `db` (which must not exist) with the target's syncs when it
/// `existed`, or creates it empty and private, and opens it without a
/// journal, its schema checked.
fn copy(db: &Path, target: &Path, existed: bool, opts: &Options) -> anyhow::Result<Connection> {
    let check = if existed {
        unpack_capped(target, db, opts.limits.max_decoded_bytes)?;
        Check::File(target)
    } else {
        // SQLite would create it 0644 less the umask.
        crate::atomic::create_private(db)?;
        Check::None
    };
    open_db(db, check, !existed, Journal::Off, opts)
}

impl Store {
    pub fn open(target: &Path, opts: &Options) -> anyhow::Result<Store> {
        let existed = existing(target)?;
        let work = crate::atomic::work_dir(target)?;
        let db = work.path().join("sync.db");
        let conn = copy(&db, target, existed, opts)?;
        Ok(Store {
            work: Work::Temp(work),
            db,
            conn,
            target: target.to_path_buf(),
            cache_entries: opts.cache_entries,
            resumable: None,
        })
    }

    /// [`Store::open`] in the target's partial directory, continuing the
    /// unfinished sync found there when `policy` allows.
    pub fn open_resumable(
        target: &Path,
        opts: &Options,
        policy: &ResumePolicy,
    ) -> anyhow::Result<(Store, Start)> {
        let existed = existing(target)?;
        let partial = Partial::lock(target)?;
        let db = partial.db();
        let mut start = Start::New;
        if db.exists() {
            let found = (|| {
                let conn = open_db(&db, Check::Partial(&db), false, Journal::Rollback, opts)?;
                let found = resume::unfinished(&conn)?;
                anyhow::Ok((conn, found))
            })();
            match found {
                Ok((conn, Some((sync_id, saved)))) => {
                    let verdict = match resume::judge(&saved, policy, target)? {
                        None => resume::survived_reboot(&conn, &saved).err(),
                        why => why,
                    };
                    match verdict {
                        None => {
                            let resumed = Resumed {
                                sync_id: sync_id.clone(),
                                state: saved.driver.clone(),
                                rows: saved.rows(),
                                started: UNIX_EPOCH + Duration::from_secs(saved.started_unix),
                            };
                            let resumable = Resumable {
                                origin: policy.origin.clone(),
                                target: saved.target,
                                dropped: saved.dropped,
                                continued: Some((sync_id, saved)),
                            };
                            let store = Store::partial(partial, db, conn, target, opts, resumable);
                            return Ok((store, Start::Resumed(resumed)));
                        }
                        Some(why) => start = Start::StartedOver(why),
                    }
                }
                // Killed before its first checkpoint: nothing to say.
                Ok((_, None)) => {}
                Err(e) => start = Start::StartedOver(StartOver::Unreadable(format!("{e:#}"))),
            }
            partial.clear()?;
        }
        // Before the copy: a target replaced while the copy is made is
        // then seen as changed by the next resume.
        let stamp = Stamp::of(target)?;
        // The copy needs no journal until its first commit: a kill before
        // that leaves no unfinished sync to continue, whatever the file.
        let conn = copy(&db, target, existed, opts)?;
        // The target's syncs beyond the two newest finished ones go now,
        // so the new sync's rows take their pages and nothing needs
        // deleting (journaled, since the sync can be continued) or
        // compacting at the end.
        let dropped = match existed {
            true => keep_recent(&conn, "")?.1,
            false => 0,
        };
        set_journal(&conn, Journal::Rollback)?;
        let resumable = Resumable {
            origin: policy.origin.clone(),
            target: stamp,
            continued: None,
            dropped,
        };
        let store = Store::partial(partial, db, conn, target, opts, resumable);
        Ok((store, start))
    }

    /// A store in the target's partial directory.
    fn partial(
        partial: Partial,
        db: PathBuf,
        conn: Connection,
        target: &Path,
        opts: &Options,
        resumable: Resumable,
    ) -> Store {
        Store {
            work: Work::Partial(partial),
            db,
            conn,
            target: target.to_path_buf(),
            cache_entries: opts.cache_entries,
            resumable: Some(resumable),
        }
    }

    /// The temp database, for the tests.
    #[cfg(test)]
    pub fn db_path(&self) -> &Path {
        &self.db
    }

    /// The writer thread: pages until `Finish` (then the file is written),
    /// or until the sink is dropped or cancels (then nothing is). A temp
    /// directory goes either way; a partial directory stays when the sync
    /// stopped with progress committed, for the next sync to continue.
    pub fn run(self, rx: Receiver<Msg>, cancel: &AtomicBool) -> anyhow::Result<Finished> {
        let Store {
            work,
            db,
            conn,
            target,
            cache_entries,
            resumable,
        } = self;
        // Whether the partial directory holds progress worth keeping.
        let mut durable = resumable.as_ref().is_some_and(|r| r.continued.is_some());
        let result = (|| {
            let mut w = Writer::new(conn, cache_entries, resumable)?;
            loop {
                let Ok(msg) = rx.recv() else {
                    // The driver stopped (an error, a signal): what its
                    // last checkpoint covers is kept.
                    durable |= w.commit().context("cannot commit the sync's progress")?;
                    bail!(
                        "the sync stopped before it finished; {} was left as it was",
                        target.display()
                    );
                };
                if cancel.load(Ordering::Relaxed) {
                    bail!(
                        "the sync was cancelled; {} was left as it was",
                        target.display()
                    );
                }
                match msg {
                    Msg::Begin(connector, types) => w.begin(connector, &types)?,
                    Msg::Resources(rows) => w
                        .resources(&rows)
                        .context("cannot write resources to the c1z database")?,
                    Msg::Entitlements(rows) => w
                        .entitlements(&rows)
                        .context("cannot write entitlements to the c1z database")?,
                    Msg::Grants(rows) => w
                        .grants(&rows)
                        .context("cannot write grants to the c1z database")?,
                    Msg::Checkpoint(state) => {
                        durable |= w
                            .checkpoint(state)
                            .context("cannot commit the sync's progress")?;
                    }
                    Msg::Finish(run) => return w.finish(run, work.path(), &db, &target),
                }
            }
        })();
        match work {
            Work::Temp(t) => drop(t),
            Work::Partial(p) if result.is_ok() || !durable => p.remove(),
            Work::Partial(p) => {
                tracing::info!(
                    "the sync's progress is kept in {}; the next sync to {} continues it",
                    p.dir.display(),
                    target.display()
                );
            }
        }
        result
    }
}

struct Writer {
    conn: Connection,
    sync_id: String,
    /// `discovered_at` of every row.
    at: String,
    sql: Inserts,
    connector: ConnectorInfo,
    types: HashMap<String, proto::ResourceType>,
    /// Encoded resources by external id (`type:id`).
    resources: Recent<Vec<u8>>,
    entitlements: Recent<EntitlementRow>,
    counts: Counts,
    key: String,
    buf: Vec<u8>,
    principal: Vec<u8>,
    /// Resumable syncs only: what each checkpoint saves besides the
    /// driver's state.
    saved: Option<SavedBase>,
    /// Whether the run row is in the database (written when a resumable
    /// sync begins; a plain sync writes it when it finishes).
    run_row: bool,
    /// The driver's latest position not committed yet.
    position: Option<String>,
    /// When the last commit ended, and what it cost.
    committed: Instant,
    commit_cost: Duration,
}

/// A checkpoint commits only when the last commit is this many times its
/// own cost ago, so commits take at most about a ninth of the writer's
/// time. A commit writes every page the rows since the last one touched,
/// and the unique keys put those all over their indexes: committing every
/// page of 1,000 users of a 400,000-user tenant wrote some 16 MB each time
/// and made the bench's sync 60 % slower. Small tenants still commit
/// every page; a killed sync repeats at most the pages since its last
/// commit.
const COMMIT_SPACING: u32 = 8;

/// The parts of [`Saved`] fixed for the whole sync.
struct SavedBase {
    origin: String,
    target: Option<Stamp>,
    started_unix: u64,
    dropped: usize,
}

impl Writer {
    fn new(
        conn: Connection,
        cache_entries: usize,
        resumable: Option<Resumable>,
    ) -> anyhow::Result<Writer> {
        conn.execute_batch("BEGIN")
            .context("cannot start the c1z transaction")?;
        let (sync_id, at, counts, saved, run_row) = match resumable {
            Some(Resumable {
                origin,
                target,
                continued: Some((sync_id, saved)),
                dropped,
            }) => (
                sync_id,
                saved.discovered_at,
                saved.counts,
                Some(SavedBase {
                    origin,
                    target,
                    started_unix: saved.started_unix,
                    dropped,
                }),
                true,
            ),
            other => (
                super::new_sync_id(),
                encode::local_time(&conn, SystemTime::now())?,
                Counts::default(),
                other.map(|r| SavedBase {
                    origin: r.origin,
                    target: r.target,
                    started_unix: resume::now_unix(),
                    dropped: r.dropped,
                }),
                false,
            ),
        };
        Ok(Writer {
            conn,
            sql: Inserts::new(&sync_id, &at)?,
            sync_id,
            at,
            connector: ConnectorInfo {
                display_name: String::new(),
                version: String::new(),
            },
            types: HashMap::new(),
            resources: Recent::new(cache_entries),
            entitlements: Recent::new(cache_entries),
            counts,
            key: String::new(),
            buf: Vec::with_capacity(4096),
            principal: Vec::with_capacity(128),
            saved,
            run_row,
            position: None,
            committed: Instant::now(),
            commit_cost: Duration::ZERO,
        })
    }

    /// The `sync_token` of an unfinished run: the position `driver`.
    fn saved(&self, driver: String) -> anyhow::Result<Option<String>> {
        let Some(base) = &self.saved else {
            return Ok(None);
        };
        Ok(Some(serde_json::to_string(&Saved {
            v: resume::SAVED_VERSION,
            origin: base.origin.clone(),
            target: base.target,
            started_unix: base.started_unix,
            dropped: base.dropped,
            boot: resume::boot_id(),
            discovered_at: self.at.clone(),
            counts: self.counts.clone(),
            driver,
        })?))
    }

    fn begin(&mut self, connector: ConnectorInfo, types: &[ResourceType]) -> anyhow::Result<()> {
        self.connector = connector;
        if let (Some(token), false) = (self.saved(String::new())?, self.run_row) {
            self.conn
                .execute(INSERT_UNFINISHED, params![self.sync_id, self.at, token])
                .context("cannot write the sync run to the c1z database")?;
            self.run_row = true;
        }
        let mut stmt = self.conn.prepare_cached(INSERT_TYPE)?;
        for t in types {
            let p = encode::resource_type(t);
            stmt.execute(params![t.id, p.encode_to_vec(), self.sync_id, self.at])
                .context("cannot write resource types to the c1z database")?;
            self.types.entry(t.id.clone()).or_insert(p);
        }
        Ok(())
    }

    fn resources(&mut self, rows: &[Resource]) -> anyhow::Result<()> {
        let mut insert = self.conn.prepare_cached(&self.sql.resource)?;
        for r in rows {
            set_key(&mut self.key, &r.id.resource_type, &r.id.resource);
            encode::resource_into(r, &mut self.buf);
            let n = insert.execute(params![
                r.id.resource_type,
                self.key,
                r.parent.as_ref().map(|p| p.resource_type.as_str()),
                r.parent.as_ref().map(|p| p.resource.as_str()),
                self.buf,
            ])?;
            if n == 0 {
                self.counts.duplicates += 1;
                continue;
            }
            self.counts.resource(&r.id.resource_type);
            self.resources.insert(&self.key, self.buf.clone());
        }
        Ok(())
    }

    fn entitlements(&mut self, rows: &[Entitlement]) -> anyhow::Result<()> {
        let mut insert = self.conn.prepare_cached(&self.sql.entitlement)?;
        let mut owner_data = self.conn.prepare_cached(RESOURCE_DATA)?;
        for e in rows {
            let owner = &e.resource;
            set_key(&mut self.key, &owner.resource_type, &owner.resource);
            let found = match self.resources.get(&self.key) {
                Some(data) => Some(data.clone()),
                None => owner_data
                    .query_row(params![self.key, self.sync_id], |r| r.get::<_, Vec<u8>>(0))
                    .optional()?,
            };
            let bare = found.is_none();
            let owner_blob = match found {
                Some(data) => data,
                None => {
                    encode::bare_resource(&owner.resource_type, &owner.resource).encode_to_vec()
                }
            };
            encode::entitlement(e, &owner_blob, &self.types, &mut self.buf);
            let n =
                insert.execute(params![owner.resource_type, owner.resource, e.id, self.buf,])?;
            if n == 0 {
                self.counts.duplicates += 1;
                continue;
            }
            self.counts.entitlements += 1;
            if bare {
                self.counts.orphans += 1;
            }
            let mut data = Vec::with_capacity(owner_blob.len() + e.id.len() + 8);
            proto::encode_grant_entitlement(&owner_blob, &e.id, &mut data);
            self.entitlements.insert(
                &e.id,
                EntitlementRow {
                    resource_type: owner.resource_type.clone(),
                    resource: owner.resource.clone(),
                    data,
                    orphan: false,
                },
            );
        }
        Ok(())
    }

    fn grants(&mut self, rows: &[Grant]) -> anyhow::Result<()> {
        let mut insert = self.conn.prepare_cached(&self.sql.grant)?;
        let mut ent_row = self.conn.prepare_cached(ENTITLEMENT_ROW)?;
        for g in rows {
            if self.entitlements.get(&g.entitlement).is_none() {
                let found = ent_row
                    .query_row(params![g.entitlement, self.sync_id], |r| {
                        Ok((r.get(0)?, r.get(1)?, r.get::<_, Vec<u8>>(2)?))
                    })
                    .optional()?
                    .map(|(resource_type, resource, whole)| {
                        // Written by this sync, so it decodes; the grant
                        // embeds its resource and id only.
                        let e = proto::Entitlement::decode(whole.as_slice())?;
                        let owner = e.resource.unwrap_or_default().encode_to_vec();
                        let mut data = Vec::new();
                        proto::encode_grant_entitlement(&owner, &e.id, &mut data);
                        anyhow::Ok(EntitlementRow {
                            resource_type,
                            resource,
                            data,
                            orphan: false,
                        })
                    })
                    .transpose()?;
                let found = found.unwrap_or_else(|| encode::orphan_entitlement(&g.entitlement));
                self.entitlements.insert(&g.entitlement, found);
            }
            let ent = self
                .entitlements
                .get(&g.entitlement)
                .ok_or_else(|| anyhow!("the entitlement cache lost {}", g.entitlement))?;
            let p = &g.principal;
            // The principal by id only, as baton connectors build grants:
            // the user's record is in v1_resources once, not in each grant.
            self.principal.clear();
            proto::encode_resource_ref(&p.resource_type, &p.resource, &mut self.principal);
            proto::encode_grant(&ent.data, &self.principal, &g.id, &mut self.buf);
            let n = insert.execute(params![
                ent.resource_type,
                ent.resource,
                g.entitlement,
                p.resource_type,
                p.resource,
                g.id,
                self.buf,
            ])?;
            if n == 0 {
                self.counts.duplicates += 1;
                continue;
            }
            self.counts.grants += 1;
            if ent.orphan {
                self.counts.orphans += 1;
            }
        }
        Ok(())
    }

    /// Commits the rows so far with the driver's `state`, and goes on in a
    /// new transaction.
    /// Takes the driver's latest position, and commits it with the rows
    /// so far unless the last commit was too recent for its cost
    /// ([`COMMIT_SPACING`]); true when it committed.
    fn checkpoint(&mut self, state: String) -> anyhow::Result<bool> {
        if self.saved.is_none() {
            return Ok(false);
        }
        self.position = Some(state);
        if self.committed.elapsed() < self.commit_cost.saturating_mul(COMMIT_SPACING) {
            return Ok(false);
        }
        self.commit()
    }

    /// Commits the rows so far with the latest position taken, if any;
    /// true when it did.
    fn commit(&mut self) -> anyhow::Result<bool> {
        let Some(state) = self.position.take() else {
            return Ok(false);
        };
        let Some(token) = self.saved(state)? else {
            return Ok(false);
        };
        let started = Instant::now();
        self.conn
            .prepare_cached(SAVE_POSITION)?
            .execute(params![self.sync_id, token])?;
        self.conn.execute_batch("COMMIT")?;
        self.committed = Instant::now();
        self.commit_cost = started.elapsed();
        self.conn.execute_batch("BEGIN")?;
        Ok(true)
    }

    fn finish(
        mut self,
        run: RunStats,
        work: &Path,
        db: &Path,
        target: &Path,
    ) -> anyhow::Result<Finished> {
        let clock = Instant::now();
        if self.saved.is_some() {
            // Every row is in: committed with the last position, a sync
            // killed from here on is continued at its end.
            if !self.commit().context("cannot commit the sync's progress")? {
                self.conn.execute_batch("COMMIT; BEGIN")?;
            }
        }
        let started = humantime::parse_rfc3339_weak(&run.started_at).unwrap_or_else(|_| {
            SystemTime::now()
                .checked_sub(Duration::from_millis(run.fetch_ms))
                .unwrap_or_else(SystemTime::now)
        });
        let stats = self.counts.stats(run);
        let stored = serde_json::to_string(&StoredStats {
            connector: &self.connector,
            stats: &stats,
        })?;
        let started_at = encode::local_time(&self.conn, started)?;
        let ended_at = encode::local_time(&self.conn, SystemTime::now())?;
        let statement = if self.run_row { END_RUN } else { INSERT_RUN };
        self.conn
            .execute(
                statement,
                params![self.sync_id, started_at, ended_at, stored],
            )
            .context("cannot write the sync run to the c1z database")?;
        // Old syncs go before the indexes are built: fewer rows to sort.
        let (kept, dropped, deleted_rows) = keep_recent(&self.conn, &self.sync_id)?;
        let dropped = dropped + self.saved.as_ref().map_or(0, |b| b.dropped);
        // The page cache is no help to the sorts that build the indexes,
        // and SQLite sizes each sort's memory by it: shrinking it keeps the
        // peak down at no cost in time (measured).
        self.conn
            .pragma_update(None, "cache_size", -INDEX_CACHE_KIB)?;
        schema::create_indexes(&self.conn).context("cannot index the c1z tables")?;
        tracing::debug!(ms = clock.elapsed().as_millis() as u64, "c1z indexes built");
        // A resumable sync is marked finished before the commit that ends
        // it: after that commit its database no longer says it is
        // unfinished, and a kill before the marker would lose it.
        if self.saved.is_some() {
            resume::mark_finished(work, &self.sync_id, db)?;
        }
        self.conn
            .execute_batch("COMMIT")
            .context("cannot commit the sync")?;
        tracing::debug!(ms = clock.elapsed().as_millis() as u64, "c1z committed");
        // Readers open the database with the default rollback journal, and
        // a file packed in WAL mode would need a `-wal` beside it: said in
        // the header before the compact copy, which takes the mode from it.
        let mode: String =
            self.conn
                .pragma_update_and_check(None, "journal_mode", "DELETE", |r| r.get(0))?;
        if !mode.eq_ignore_ascii_case("delete") {
            bail!("cannot switch the database to journal_mode=DELETE (got {mode})");
        }

        // Deleted syncs leave free pages; without a vacuum the file never
        // shrinks. VACUUM INTO writes the compact copy in our directory
        // (a plain VACUUM would build it in the system's temp directory).
        let compact = work.join("compact.db");
        let packed = match compact.to_str() {
            Some(to) if deleted_rows > 0 => {
                // VACUUM INTO fills an empty file and keeps its mode.
                crate::atomic::create_private(&compact)?;
                self.conn
                    .execute("VACUUM INTO ?1", [to])
                    .context("cannot compact the c1z database")?;
                compact.as_path()
            }
            None if deleted_rows > 0 => {
                self.conn
                    .execute_batch("VACUUM")
                    .context("cannot compact the c1z database")?;
                db
            }
            _ => db,
        };
        let Writer {
            conn,
            sync_id,
            counts,
            ..
        } = self;
        conn.close()
            .map_err(|(_, e)| e)
            .context("cannot close the temporary database")?;
        // A resumable sync's temp file goes in its partial directory, so a
        // kill while it is written leaves nothing beside the target; and a
        // kill before the rename leaves the finished database marked, for
        // the next sync to write ([`write_finished`]).
        let via = self.saved.is_some().then_some(work);
        if via.is_some() && packed != db {
            resume::mark_finished(work, &sync_id, packed)?;
        }
        pack_via(packed, target, via)?;
        tracing::debug!(ms = clock.elapsed().as_millis() as u64, "c1z packed");
        if counts.orphans > 0 {
            tracing::warn!(
                orphans = counts.orphans,
                "grants or entitlements name entitlements or resources the sync did not list; they carry only their ids"
            );
        }
        tracing::info!(sync_id = %sync_id, kept, dropped, "c1z written");
        Ok(Finished {
            stats,
            sync_id: Some(sync_id),
            kept,
            dropped,
            orphans: counts.orphans,
        })
    }
}

/// Writes the sync a killed process had finished but not yet written
/// over `target` (its partial directory marked so): the file is packed,
/// the directory removed, and what was written said. `None` when there is
/// no such sync (or another process holds the directory).
pub(super) fn write_finished(target: &Path, opts: &Options) -> anyhow::Result<Option<Finished>> {
    let Some((partial, sync_id, db)) = resume::finished(target)? else {
        return Ok(None);
    };
    let (stats, kept) = {
        // Read only, bar the rollback of a hot journal (a kill during the
        // ending commit): the database is packed as it is. Checked as a
        // partial database, which it still is when that commit was not
        // made (then without the lookup indexes).
        let conn = open_checked(&db, Check::Partial(&db), &opts.limits)?;
        let stored: Option<String> = conn
            .query_row(
                "SELECT stats FROM v1_sync_runs WHERE sync_id = ?1 AND ended_at IS NOT NULL",
                [&sync_id],
                |r| r.get(0),
            )
            .optional()?
            .flatten();
        let Some(stored) = stored else {
            // Killed before its ending commit: continued instead.
            resume::unmark_finished(&partial.dir)?;
            return Ok(None);
        };
        let stats: crate::model::Stats =
            serde_json::from_str(&stored).context("the finished sync's stats do not parse")?;
        let kept: i64 = conn.query_row(
            "SELECT count(*) FROM v1_sync_runs WHERE sync_id != ?1 AND ended_at IS NOT NULL",
            [&sync_id],
            |r| r.get(0),
        )?;
        (stats, usize::try_from(kept).unwrap_or(0))
    };
    pack_via(&db, target, Some(&partial.dir))?;
    partial.remove();
    tracing::info!(sync_id = %sync_id, "c1z written");
    Ok(Some(Finished {
        stats,
        sync_id: Some(sync_id),
        kept,
        dropped: 0,
        orphans: 0,
    }))
}

/// `type:id`, the external id of a resource, into a reused string.
fn set_key(key: &mut String, resource_type: &str, resource: &str) {
    key.clear();
    key.push_str(resource_type);
    key.push(':');
    key.push_str(resource);
}

/// Drops every sync but `new` and the two newest previous finished full
/// ones; rows of unknown or unfinished syncs go too. Returns (kept, dropped
/// runs, deleted rows).
fn keep_recent(conn: &Connection, new: &str) -> anyhow::Result<(usize, usize, usize)> {
    let mut keep: Vec<String> = vec![new.to_string()];
    {
        let mut stmt = conn.prepare(
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
        let n = conn
            .execute(
                &format!("DELETE FROM {table} WHERE sync_id NOT IN ({placeholders})"),
                rusqlite::params_from_iter(keep.iter()),
            )
            .with_context(|| format!("cannot drop old syncs from {table}"))?;
        if table == "v1_sync_runs" {
            dropped = n;
        }
        deleted += n;
    }
    Ok((keep.len() - 1, dropped, deleted))
}
