//! Atomic output: a temp file in the target's directory, flushed to disk,
//! then renamed over the target, so a failed or interrupted sync never
//! replaces a good file with a partial one. Every temp file and directory
//! is private to the user from the moment it exists (0600 and 0700, set
//! here rather than left to the umask): a sync holds a tenant's accounts
//! and grants.

use std::io::Write as _;
use std::path::Path;

use anyhow::Context as _;

/// A private (mode 0700) temporary directory in `target`'s directory, for
/// the work files of an output that is written at the end: beside the
/// target rather than in /tmp, which is often memory, since a sync's
/// database can be hundreds of MB. It goes when dropped.
pub fn work_dir(target: &Path) -> anyhow::Result<tempfile::TempDir> {
    let dir = parent_dir(target);
    let mut b = tempfile::Builder::new();
    b.prefix(".connector-host-");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        b.permissions(std::fs::Permissions::from_mode(0o700));
    }
    b.tempdir_in(dir)
        .with_context(|| format!("cannot create a temporary directory in {}", dir.display()))
}

/// Creates the file `path`, which must not exist yet, readable and
/// writable by its owner only (0600), for the crate's temp files: an
/// unpacked c1z, a database before SQLite opens it (SQLite creates a new
/// database 0644 less the umask, and its journals copy the database's
/// mode), a compact copy before `VACUUM INTO` fills it. Refusing an
/// existing path means nothing planted there is written through.
pub(crate) fn create_private(path: &Path) -> anyhow::Result<std::fs::File> {
    let mut o = std::fs::OpenOptions::new();
    o.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        o.mode(0o600);
    }
    o.open(path)
        .with_context(|| format!("cannot create {}", path.display()))
}

fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    }
}

/// Writes what `write` produces to `path` through a temp file in the same
/// directory, flushed to disk, then renamed over the target; on an error
/// the temp file goes and the target is untouched.
pub fn write_atomically(
    path: &Path,
    write: impl FnOnce(&mut dyn std::io::Write) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    write_atomically_via(path, parent_dir(path), write)
}

/// [`write_atomically`] with the temp file in `dir`, which must be on the
/// target's filesystem: a process killed while it writes leaves the temp
/// file there (a resumable sync's partial directory, cleared with it)
/// rather than beside the target.
pub(crate) fn write_atomically_via(
    path: &Path,
    dir: &Path,
    write: impl FnOnce(&mut dyn std::io::Write) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let mut b = tempfile::Builder::new();
    b.prefix(".connector-host-").suffix(".tmp");
    // tempfile's default too, but said here: the output is renamed into
    // place with this mode.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        b.permissions(std::fs::Permissions::from_mode(0o600));
    }
    let mut tmp = b
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

    #[cfg(unix)]
    #[test]
    fn work_dirs_are_private_and_beside_the_target() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let work = work_dir(&dir.path().join("out.c1z")).unwrap();
        assert_eq!(work.path().parent(), Some(dir.path()));
        let mode = std::fs::metadata(work.path()).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700);
    }

    #[cfg(unix)]
    #[test]
    fn temp_files_are_private_from_the_start() {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.c1z");
        let mut seen = None;
        write_atomically(&path, |w| {
            w.write_all(b"x")?;
            for e in std::fs::read_dir(dir.path())? {
                let p = e?.path();
                if p.extension().is_some_and(|x| x == "tmp") {
                    seen = Some(mode(&p));
                }
            }
            Ok(())
        })
        .unwrap();
        assert_eq!(seen, Some(0o600), "the temp file while it is written");
        assert_eq!(mode(&path), 0o600, "the output it became");

        let db = dir.path().join("db");
        create_private(&db).unwrap();
        assert_eq!(mode(&db), 0o600);
        assert!(create_private(&db).is_err(), "an existing path is refused");
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
