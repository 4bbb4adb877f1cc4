//! Compiled components, cached on disk so a command does not compile the
//! component again (about 0.3 s of CPU in release, more in debug).
//!
//! Loading native code from a file is `unsafe` in wasmtime: the bytes are
//! trusted to be what `Engine::precompile_component` produced for this very
//! engine. What makes a cache entry trustworthy here:
//! - **Who wrote it.** The cache directory is created 0700 and used only
//!   when it belongs to this user and no one else may write to it, and every
//!   entry must belong to this user and be writable by no one else: another
//!   local user cannot plant or change an entry.
//! - **What it is.** An entry's name is the SHA-256 of the component's bytes
//!   with the wasmtime version and the engine's compatibility hash, so an
//!   entry is only ever looked up for the component and engine it was made
//!   for. Inside, a header repeats that key and carries the SHA-256 of the
//!   compiled bytes: a truncated, corrupt or foreign entry fails the check
//!   and is compiled again, never loaded.
//! - **When it is read.** The entry is read into memory, checked, and the
//!   checked bytes are what wasmtime deserializes: a change to the file after
//!   the check cannot reach the engine (no memory map of the file).
//!
//! wasmtime itself refuses code from another version or configuration.
//! Entries are written atomically (temp file, then rename), mode 0600.

use std::hash::{Hash as _, Hasher as _};
use std::io::Write as _;
use std::path::{Path, PathBuf};

use sha2::{Digest as _, Sha256};
use wasmtime::component::Component;
use wasmtime::Engine;

const MAGIC: &[u8; 8] = b"IDGVCWA1";

/// A directory of compiled components.
#[derive(Clone, Debug)]
pub struct Cache {
    dir: PathBuf,
}

/// The default directory: `$XDG_CACHE_HOME/connector-host` or
/// `~/.cache/connector-host` (the platform's cache directory elsewhere).
pub fn default_dir() -> Option<PathBuf> {
    dirs::cache_dir().map(|d| d.join("connector-host"))
}

impl Cache {
    /// Opens (creating, mode 0700) a cache directory. `None`, with a
    /// warning, when the directory cannot be trusted: the runtime then
    /// compiles every time rather than load code someone else could write.
    pub fn open(dir: &Path) -> Option<Cache> {
        if let Err(e) = create_private_dir(dir) {
            tracing::warn!(dir = %dir.display(), "not caching compiled components: {e}");
            return None;
        }
        match check_private(dir, true) {
            Ok(()) => Some(Cache {
                dir: dir.to_path_buf(),
            }),
            Err(why) => {
                tracing::warn!(dir = %dir.display(), "not caching compiled components: {why}");
                None
            }
        }
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The compiled component for `bytes`: from the cache when a sound entry
    /// is there, compiled (and stored) otherwise.
    pub fn load_or_compile(
        &self,
        engine: &Engine,
        bytes: &[u8],
        compile: impl FnOnce(&[u8]) -> wasmtime::Result<Vec<u8>>,
    ) -> wasmtime::Result<(Component, bool)> {
        let key = Key::new(engine, bytes);
        let path = self.dir.join(key.file_name());
        match self.read(&path, &key) {
            Ok(Some(code)) => {
                // SAFETY: `code` is in memory (not mapped from the file), was
                // read from an entry owned by this user in a directory only
                // this user can write, and its SHA-256 matches the digest in
                // the header written with it by `store` below, for the key of
                // exactly these component bytes, this wasmtime version and
                // this engine's compatibility hash: it is what
                // `precompile_component` produced for this engine.
                // wasmtime checks the version and settings once more.
                match unsafe { Component::deserialize(engine, &code) } {
                    Ok(c) => return Ok((c, true)),
                    Err(e) => tracing::debug!("cache entry refused by wasmtime: {e:#}"),
                }
            }
            Ok(None) => {}
            Err(why) => tracing::debug!(entry = %path.display(), "cache entry ignored: {why}"),
        }
        let code = compile(bytes)?;
        if let Err(e) = self.store(&path, &key, &code) {
            tracing::debug!("could not cache the compiled component: {e:#}");
        }
        // SAFETY: `code` was produced by `precompile_component` just above,
        // in memory, by `compile` (this engine or one of its configuration;
        // wasmtime checks the version and settings once more).
        let component = unsafe { Component::deserialize(engine, &code)? };
        Ok((component, false))
    }

    /// The checked code of an entry; `Ok(None)` when there is none.
    fn read(&self, path: &Path, key: &Key) -> Result<Option<Vec<u8>>, String> {
        let data = match std::fs::read(path) {
            Ok(d) => d,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e.to_string()),
        };
        check_private(path, false)?;
        let header_len = MAGIC.len() + 32 + 32;
        if data.len() < header_len || &data[..MAGIC.len()] != MAGIC {
            return Err("not a cache entry".into());
        }
        let (head, code) = data.split_at(header_len);
        if head[MAGIC.len()..MAGIC.len() + 32] != key.digest {
            return Err("made for another component or engine".into());
        }
        let code_digest: [u8; 32] = Sha256::digest(code).into();
        if head[MAGIC.len() + 32..] != code_digest {
            return Err("truncated or corrupt".into());
        }
        Ok(Some(code.to_vec()))
    }

    fn store(&self, path: &Path, key: &Key, code: &[u8]) -> std::io::Result<()> {
        let mut tmp = tempfile::Builder::new()
            .prefix(".entry-")
            .tempfile_in(&self.dir)?;
        let code_digest: [u8; 32] = Sha256::digest(code).into();
        tmp.write_all(MAGIC)?;
        tmp.write_all(&key.digest)?;
        tmp.write_all(&code_digest)?;
        tmp.write_all(code)?;
        tmp.as_file().sync_all()?;
        tmp.persist(path).map_err(|e| e.error)?;
        Ok(())
    }
}

/// What an entry is for: the component's bytes, the wasmtime version, the
/// engine's compatibility hash.
struct Key {
    digest: [u8; 32],
}

impl Key {
    fn new(engine: &Engine, component: &[u8]) -> Key {
        let mut compat = std::collections::hash_map::DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut compat);
        let mut h = Sha256::new();
        h.update(Sha256::digest(component));
        h.update(wasmtime_version().as_bytes());
        h.update(compat.finish().to_le_bytes());
        Key {
            digest: h.finalize().into(),
        }
    }

    fn file_name(&self) -> String {
        let hex: String = self.digest.iter().map(|b| format!("{b:02x}")).collect();
        format!("{hex}.cwasm")
    }
}

/// The wasmtime this binary was built with (pinned in Cargo.toml).
fn wasmtime_version() -> &'static str {
    "wasmtime-48.0.8"
}

fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt as _;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
    }
    #[cfg(not(unix))]
    {
        std::fs::create_dir_all(dir)
    }
}

/// This user's, and no one else may write to it (a directory: nor read it).
fn check_private(path: &Path, is_dir: bool) -> Result<(), String> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt as _;
        let meta = std::fs::symlink_metadata(path).map_err(|e| e.to_string())?;
        if meta.file_type().is_symlink() {
            return Err("is a symbolic link".into());
        }
        let me = current_uid();
        if meta.uid() != me {
            return Err(format!("belongs to uid {}, not {me}", meta.uid()));
        }
        let forbidden = if is_dir { 0o077 } else { 0o022 };
        if meta.mode() & forbidden != 0 {
            return Err(format!(
                "mode {:o} lets other users in",
                meta.mode() & 0o777
            ));
        }
    }
    #[cfg(not(unix))]
    let _ = (path, is_dir);
    Ok(())
}

#[cfg(unix)]
fn current_uid() -> u32 {
    use std::os::unix::fs::MetadataExt as _;
    // The owner of /proc/self, or of a file this process creates, is its
    // effective uid (no libc call needed).
    std::fs::metadata("/proc/self")
        .or_else(|_| tempfile::tempfile().and_then(|f| f.metadata()))
        .map(|m| m.uid())
        .unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn engine() -> Engine {
        Engine::default()
    }

    fn bytes() -> Vec<u8> {
        // The smallest component: the empty one, in binary form.
        vec![0, b'a', b's', b'm', 0x0d, 0x00, 0x01, 0x00]
    }

    #[test]
    fn a_second_load_comes_from_the_cache() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::open(&dir.path().join("c")).unwrap();
        let e = engine();
        let (_, hit) = cache
            .load_or_compile(&e, &bytes(), |b| e.precompile_component(b))
            .unwrap();
        assert!(!hit);
        let (_, hit) = cache
            .load_or_compile(&e, &bytes(), |b| e.precompile_component(b))
            .unwrap();
        assert!(hit);
    }

    #[test]
    fn corrupt_truncated_and_foreign_entries_are_compiled_again() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::open(&dir.path().join("c")).unwrap();
        let e = engine();
        cache
            .load_or_compile(&e, &bytes(), |b| e.precompile_component(b))
            .unwrap();
        let entry = std::fs::read_dir(cache.dir())
            .unwrap()
            .map(|d| d.unwrap().path())
            .find(|p| p.extension().is_some_and(|x| x == "cwasm"))
            .unwrap();
        let good = std::fs::read(&entry).unwrap();

        let mut flipped = good.clone();
        let last = flipped.len() - 1;
        flipped[last] ^= 1;
        for bad in [flipped, good[..good.len() / 2].to_vec(), b"junk".to_vec()] {
            std::fs::write(&entry, &bad).unwrap();
            let key = Key::new(&e, &bytes());
            assert!(cache.read(&entry, &key).is_err());
            let (_, hit) = cache
                .load_or_compile(&e, &bytes(), |b| e.precompile_component(b))
                .unwrap();
            assert!(!hit, "a bad entry is never loaded");
        }
        // An entry made for other bytes is not this component's.
        let other = Key::new(&e, b"\0asm\x0d\x00\x01\x00other");
        assert!(cache.read(&entry, &other).is_err());
    }

    #[cfg(unix)]
    #[test]
    fn a_directory_others_can_write_is_not_used() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let open = dir.path().join("open");
        std::fs::create_dir(&open).unwrap();
        std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o777)).unwrap();
        assert!(Cache::open(&open).is_none());
        let fresh = dir.path().join("fresh");
        Cache::open(&fresh).unwrap();
        let mode = std::fs::metadata(&fresh).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700);
    }
}
