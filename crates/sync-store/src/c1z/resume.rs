//! Where an unfinished sync waits for the next process: a private directory
//! beside the target, `.NAME.partial/`, holding the sync's database with a
//! rollback journal (each checkpoint a commit, so SIGKILL loses at most the
//! pages since the last one) and a lock file, so two syncs to one target never share
//! it. The database is a copy of the target's previous syncs plus the
//! unfinished one, whose `v1_sync_runs` row has no `ended_at` and carries
//! in `sync_token` what the next process needs ([`Saved`]). The target
//! itself is not touched until the sync finishes.
//!
//! A partial sync is continued only when it was started by the same
//! component and configuration (the caller's `origin`, no secret in it), is
//! younger than the caller's maximum age, and the target has not changed
//! since; otherwise the sync starts over and says why ([`StartOver`]).

use std::fs::{File, TryLockError};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context as _};
use rusqlite::{Connection, OptionalExtension as _};
use serde::{Deserialize, Serialize};

use crate::sink::Counts;

/// How a resumable sink treats an unfinished sync it finds.
#[derive(Clone, Debug)]
pub struct ResumePolicy {
    /// Start over whatever is there.
    pub fresh: bool,
    /// An unfinished sync that started longer ago than this starts over.
    pub max_age: Duration,
    /// Names what produces the rows: the component and the configuration,
    /// never a secret. A partial sync with another origin starts over.
    pub origin: String,
}

/// How a resumable sink began.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Start {
    /// No unfinished sync was there.
    New,
    /// An unfinished sync continues.
    Resumed(Resumed),
    /// An unfinished sync was there and was thrown away.
    StartedOver(StartOver),
}

/// The unfinished sync a sink continues.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Resumed {
    /// Its c1z sync id, kept.
    pub sync_id: String,
    /// The driver's state at its last checkpoint.
    pub state: String,
    /// Resources, entitlements and grants it had kept.
    pub rows: u64,
    /// When it started.
    pub started: SystemTime,
}

/// Why an unfinished sync was not continued.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum StartOver {
    /// The caller asked for a fresh sync.
    #[error("a fresh sync was asked for")]
    Fresh,
    /// It started longer ago than the policy allows.
    #[error("the unfinished sync started {} ago, longer than the {} allowed", humantime::format_duration(*age), humantime::format_duration(*max))]
    TooOld {
        /// Its age, in whole seconds.
        age: Duration,
        /// The policy's maximum.
        max: Duration,
    },
    /// Another component or configuration started it.
    #[error("the unfinished sync was started by another component or configuration")]
    OtherOrigin,
    /// The target file changed since it started (another sync wrote it).
    #[error("{} changed since the unfinished sync started", .0.display())]
    TargetChanged(PathBuf),
    /// The machine restarted since and the database did not check out.
    #[error("the machine restarted since the unfinished sync stopped, and its database did not survive ({0})")]
    Damaged(String),
    /// Its files could not be read back.
    #[error("the unfinished sync's files are unreadable ({0})")]
    Unreadable(String),
}

/// The directory that holds the unfinished sync to `target`.
pub fn partial_dir(target: &Path) -> PathBuf {
    let name = target
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "sync".into());
    let dir = match target.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    dir.join(format!(".{name}.partial"))
}

/// What the writer stores in the unfinished run's `sync_token`.
#[derive(Debug, Serialize, Deserialize)]
pub(super) struct Saved {
    /// This record's format.
    pub v: u32,
    pub origin: String,
    /// The target as it was when the sync started (`None`: absent).
    pub target: Option<Stamp>,
    /// Seconds since the epoch when the sync started.
    pub started_unix: u64,
    /// Syncs of the target dropped from the copy when the sync started.
    #[serde(default)]
    pub dropped: usize,
    /// The OS's boot id at the last checkpoint, where it has one.
    #[serde(default)]
    pub boot: Option<String>,
    /// `discovered_at` of every row of the sync.
    pub discovered_at: String,
    pub counts: Counts,
    /// The driver's state, opaque here.
    pub driver: String,
}

/// Format of [`Saved`].
pub(super) const SAVED_VERSION: u32 = 1;

/// Enough of a file's metadata to tell it was replaced or rewritten.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct Stamp {
    len: u64,
    modified_ns: u128,
}

impl Stamp {
    pub fn of(path: &Path) -> anyhow::Result<Option<Stamp>> {
        match std::fs::metadata(path) {
            Ok(m) => Ok(Some(Stamp {
                len: m.len(),
                modified_ns: m
                    .modified()
                    .ok()
                    .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
                    .map_or(0, |d| d.as_nanos()),
            })),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
        }
    }
}

pub(super) fn now_unix() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The partial directory, locked by this process until dropped.
#[derive(Debug)]
pub(super) struct Partial {
    pub dir: PathBuf,
    /// Held for the lock; closing it releases the lock (the kernel does
    /// so too when the process dies).
    _lock: File,
}

impl Partial {
    /// Creates (0700) or opens the partial directory of `target` and
    /// locks it, failing at once if another process holds it.
    pub fn lock(target: &Path) -> anyhow::Result<Partial> {
        match Partial::try_lock(target)? {
            Some(p) => Ok(p),
            None => bail!(
                "another sync to {} is running (it holds {}); wait for it to end",
                target.display(),
                partial_dir(target).display()
            ),
        }
    }

    /// [`Partial::lock`], `None` when another process holds it.
    fn try_lock(target: &Path) -> anyhow::Result<Option<Partial>> {
        let dir = partial_dir(target);
        match std::fs::symlink_metadata(&dir) {
            Ok(m) if m.is_dir() => {}
            Ok(_) => bail!(
                "{} is in the way of the sync's work directory: it is not a directory; remove it",
                dir.display()
            ),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let mut b = std::fs::DirBuilder::new();
                #[cfg(unix)]
                {
                    use std::os::unix::fs::DirBuilderExt as _;
                    b.mode(0o700);
                }
                b.create(&dir)
                    .with_context(|| format!("cannot create {}", dir.display()))?;
            }
            Err(e) => return Err(e).with_context(|| format!("cannot read {}", dir.display())),
        }
        let path = dir.join("lock");
        let mut o = std::fs::OpenOptions::new();
        o.read(true).write(true).create(true).truncate(false);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt as _;
            o.mode(0o600);
        }
        let lock = o
            .open(&path)
            .with_context(|| format!("cannot open {}", path.display()))?;
        match lock.try_lock() {
            Ok(()) => Ok(Some(Partial { dir, _lock: lock })),
            Err(TryLockError::WouldBlock) => Ok(None),
            Err(TryLockError::Error(e)) => {
                Err(e).with_context(|| format!("cannot lock {}", path.display()))
            }
        }
    }

    pub fn db(&self) -> PathBuf {
        self.dir.join("sync.db")
    }

    /// Removes everything but the lock (the database, its WAL or journal,
    /// a compact copy, a temp file of the output), keeping the (locked)
    /// directory.
    pub fn clear(&self) -> anyhow::Result<()> {
        let entries = std::fs::read_dir(&self.dir)
            .with_context(|| format!("cannot read {}", self.dir.display()))?;
        for entry in entries {
            let p = entry
                .with_context(|| format!("cannot read {}", self.dir.display()))?
                .path();
            if p.file_name().is_some_and(|n| n == "lock") {
                continue;
            }
            let removed = match p.is_dir() {
                true => std::fs::remove_dir_all(&p),
                false => std::fs::remove_file(&p),
            };
            removed.with_context(|| format!("cannot remove {}", p.display()))?;
        }
        Ok(())
    }

    /// Removes the whole directory: the sync finished, or left nothing
    /// worth resuming. The lock goes with it.
    pub fn remove(self) {
        if let Err(e) = std::fs::remove_dir_all(&self.dir) {
            tracing::warn!("cannot remove {}: {e}", self.dir.display());
        }
    }
}

/// The marker of a finished database not yet packed over the target.
const FINISHED: &str = "finished";

/// Marks the partial directory `dir` as holding the finished sync
/// `sync_id` in the database `db` (inside it), before the commit that ends
/// its run: whenever a kill comes from there on, the next sync finds the
/// marker ([`finished`]) and writes the sync if that commit was made, or
/// continues it otherwise. Replaced whole (a kill never leaves half a
/// marker), so it can be moved to the compact copy once that is made.
pub(super) fn mark_finished(dir: &Path, sync_id: &str, db: &Path) -> anyhow::Result<()> {
    let name = db
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let path = dir.join(FINISHED);
    crate::atomic::write_atomically(&path, |w| {
        w.write_all(format!("{sync_id}\n{name}\n").as_bytes())?;
        Ok(())
    })
    .with_context(|| format!("cannot write {}", path.display()))
}

/// Removes the marker of a sync whose ending commit was never made (the
/// process was killed before it): the sync is continued instead.
pub(super) fn unmark_finished(dir: &Path) -> anyhow::Result<()> {
    let path = dir.join(FINISHED);
    match std::fs::remove_file(&path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(e).with_context(|| format!("cannot remove {}", path.display()))
        }
        _ => Ok(()),
    }
}

/// The finished sync a killed process left in `target`'s partial directory
/// without writing it: the directory (locked), its sync id and database.
pub(super) fn finished(target: &Path) -> anyhow::Result<Option<(Partial, String, PathBuf)>> {
    if !partial_dir(target).is_dir() {
        return Ok(None);
    }
    let Some(partial) = Partial::try_lock(target)? else {
        return Ok(None);
    };
    let text = match std::fs::read_to_string(partial.dir.join(FINISHED)) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).context("cannot read the finished sync's marker"),
    };
    let mut lines = text.lines();
    let (Some(sync_id), Some(name)) = (lines.next(), lines.next()) else {
        return Ok(None);
    };
    // Only the two names the writer packs from, inside the directory.
    if name != "sync.db" && name != "compact.db" {
        return Ok(None);
    }
    let db = partial.dir.join(name);
    Ok(Some((partial, sync_id.to_string(), db)))
}

/// An unfinished sync to a target, as `inspect` shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Pending {
    /// A sync to the target is running now (its directory is locked).
    Running,
    /// A sync stopped part way; the next one continues it.
    Stopped(Unfinished),
}

/// What an unfinished sync has kept.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unfinished {
    /// Its c1z sync id.
    pub sync_id: String,
    /// Local time, as in the file's `started_at`.
    pub started_at: String,
    /// Rows kept so far.
    pub resources: u64,
    /// See `resources`.
    pub entitlements: u64,
    /// See `resources`.
    pub grants: u64,
    /// The driver's state at its last checkpoint.
    pub state: String,
}

/// The unfinished sync to `target`, if there is one; reads it without
/// changing it (and holds the lock meanwhile, so no sync starts on it).
pub fn pending(target: &Path) -> anyhow::Result<Option<Pending>> {
    let dir = partial_dir(target);
    if !dir.is_dir() {
        return Ok(None);
    }
    let Some(partial) = Partial::try_lock(target)? else {
        return Ok(Some(Pending::Running));
    };
    let db = partial.db();
    if !db.exists() {
        return Ok(None);
    }
    let conn = super::writer::open_checked(
        &db,
        super::writer::Check::Partial(&db),
        &super::Limits::default(),
    )?;
    let Some((sync_id, saved)) = unfinished(&conn)? else {
        return Ok(None);
    };
    let started_at: String = conn.query_row(
        "SELECT started_at FROM v1_sync_runs WHERE sync_id = ?1",
        [&sync_id],
        |r| r.get(0),
    )?;
    Ok(Some(Pending::Stopped(Unfinished {
        sync_id,
        started_at,
        resources: saved.counts.resources.values().sum(),
        entitlements: saved.counts.entitlements,
        grants: saved.counts.grants,
        state: saved.driver,
    })))
}

/// The unfinished run in an opened partial database, if any: its sync id
/// and saved state.
pub(super) fn unfinished(conn: &Connection) -> anyhow::Result<Option<(String, Saved)>> {
    let row: Option<(String, String)> = conn
        .query_row(
            "SELECT sync_id, sync_token FROM v1_sync_runs WHERE ended_at IS NULL \
             ORDER BY id DESC LIMIT 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?;
    let Some((sync_id, token)) = row else {
        return Ok(None);
    };
    let saved: Saved = serde_json::from_str(&token).context("its saved position does not parse")?;
    if saved.v != SAVED_VERSION {
        bail!(
            "its saved position is format {}, not {SAVED_VERSION}",
            saved.v
        );
    }
    Ok(Some((sync_id, saved)))
}

/// The id of the running OS's boot (Linux), which changes at every boot.
pub(super) fn boot_id() -> Option<String> {
    let id = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").ok()?;
    let id = id.trim();
    (!id.is_empty() && id.len() <= 64).then(|| id.to_string())
}

/// `Ok` when the partial database is as its last checkpoint left it: the
/// same boot (a killed process loses nothing committed), or another boot
/// and SQLite's structural check passes (the writer does not fsync, so a
/// machine that crashed may have lost some of its writes).
pub(super) fn survived_reboot(conn: &Connection, saved: &Saved) -> Result<(), StartOver> {
    if saved.boot.is_some() && saved.boot == boot_id() {
        return Ok(());
    }
    let started = std::time::Instant::now();
    let verdict: Result<String, _> = conn.query_row("PRAGMA quick_check(1)", [], |r| r.get(0));
    tracing::info!(
        elapsed_ms = started.elapsed().as_millis() as u64,
        "the unfinished sync's database was checked after a restart of the machine"
    );
    match verdict {
        Ok(v) if v == "ok" => Ok(()),
        Ok(v) => Err(StartOver::Damaged(super::limits::shown(&v))),
        Err(e) => Err(StartOver::Damaged(e.to_string())),
    }
}

/// Whether `saved` may be continued under `policy` for `target`.
pub(super) fn judge(
    saved: &Saved,
    policy: &ResumePolicy,
    target: &Path,
) -> anyhow::Result<Option<StartOver>> {
    if policy.fresh {
        return Ok(Some(StartOver::Fresh));
    }
    let age = Duration::from_secs(now_unix().saturating_sub(saved.started_unix));
    if age > policy.max_age {
        return Ok(Some(StartOver::TooOld {
            age,
            max: policy.max_age,
        }));
    }
    if saved.origin != policy.origin {
        return Ok(Some(StartOver::OtherOrigin));
    }
    if saved.target != Stamp::of(target)? {
        return Ok(Some(StartOver::TargetChanged(target.to_path_buf())));
    }
    Ok(None)
}

impl Saved {
    /// Rows kept so far.
    pub fn rows(&self) -> u64 {
        self.counts.resources.values().sum::<u64>() + self.counts.entitlements + self.counts.grants
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn the_partial_directory_is_hidden_beside_the_target() {
        assert_eq!(
            partial_dir(Path::new("/data/t1/sync.c1z")),
            Path::new("/data/t1/.sync.c1z.partial")
        );
        assert_eq!(
            partial_dir(Path::new("out.c1z")),
            Path::new("./.out.c1z.partial")
        );
    }

    #[test]
    fn a_second_lock_is_refused_and_released_with_the_first() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("out.c1z");
        let first = Partial::lock(&target).unwrap();
        let e = Partial::lock(&target).unwrap_err().to_string();
        assert!(
            e.contains("another sync to") && e.contains("is running"),
            "{e}"
        );
        drop(first);
        let again = Partial::lock(&target).unwrap();
        again.remove();
        assert!(!partial_dir(&target).exists());
    }

    #[test]
    fn a_file_in_the_way_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("out.c1z");
        std::fs::write(partial_dir(&target), "x").unwrap();
        let e = Partial::lock(&target).unwrap_err().to_string();
        assert!(e.contains("not a directory"), "{e}");
    }

    fn saved(origin: &str, started_unix: u64, target: Option<Stamp>) -> Saved {
        Saved {
            v: SAVED_VERSION,
            origin: origin.into(),
            target,
            started_unix,
            dropped: 0,
            boot: boot_id(),
            discovered_at: String::new(),
            counts: Counts::default(),
            driver: String::new(),
        }
    }

    #[test]
    fn the_policy_decides_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("out.c1z");
        let policy = ResumePolicy {
            fresh: false,
            max_age: Duration::from_secs(3600),
            origin: "a".into(),
        };
        let now = now_unix();
        assert_eq!(
            judge(&saved("a", now, None), &policy, &target).unwrap(),
            None
        );
        let fresh = ResumePolicy {
            fresh: true,
            ..policy.clone()
        };
        assert_eq!(
            judge(&saved("a", now, None), &fresh, &target).unwrap(),
            Some(StartOver::Fresh)
        );
        assert!(matches!(
            judge(&saved("a", now - 7200, None), &policy, &target).unwrap(),
            Some(StartOver::TooOld { .. })
        ));
        assert_eq!(
            judge(&saved("b", now, None), &policy, &target).unwrap(),
            Some(StartOver::OtherOrigin)
        );
        std::fs::write(&target, "C1ZF\0").unwrap();
        assert_eq!(
            judge(&saved("a", now, None), &policy, &target).unwrap(),
            Some(StartOver::TargetChanged(target.clone()))
        );
        let stamp = Stamp::of(&target).unwrap();
        assert_eq!(
            judge(&saved("a", now, stamp), &policy, &target).unwrap(),
            None
        );
    }
}
