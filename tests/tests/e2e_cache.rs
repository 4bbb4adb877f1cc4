//! End to end: the compiled-component cache. A second command loads the
//! cached code instead of compiling; a damaged, truncated or foreign entry
//! is compiled again, never loaded; the cache directory is private.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::{Path, PathBuf};

use common::Host;

fn metadata(cache: &Path, extra: &[&str]) -> common::Run {
    let mut args = vec!["--log-level", "debug"];
    args.extend_from_slice(extra);
    args.push("metadata");
    Host::new()
        .env("CONNECTOR_CACHE_DIR", cache.to_str().unwrap())
        .run(&args)
}

fn entries(cache: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(cache)
        .map(|d| d.map(|e| e.unwrap().path()).collect())
        .unwrap_or_default()
}

#[track_caller]
fn assert_cached(run: &common::Run, cached: bool) {
    run.assert_ok();
    assert!(
        run.stderr.contains(&format!("cached={cached}")),
        "{}",
        run.stderr
    );
    let meta: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(meta["contract"], "idgov:connector@0.3.0");
}

#[test]
fn the_second_command_uses_the_compiled_component() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    assert_cached(&metadata(&cache, &[]), false);
    assert_eq!(entries(&cache).len(), 1, "one entry");
    assert_cached(&metadata(&cache, &[]), true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&cache).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700, "a private directory");
        let entry = &entries(&cache)[0];
        let mode = std::fs::metadata(entry).unwrap().permissions().mode();
        assert_eq!(mode & 0o022, 0, "an entry only its owner can write");
    }
    // --no-cache compiles and leaves the cache alone.
    let run = metadata(&cache, &["--no-cache"]);
    assert!(run.stderr.contains("cached=false"), "{}", run.stderr);
}

#[test]
fn damaged_entries_are_compiled_again_never_loaded() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    assert_cached(&metadata(&cache, &[]), false);
    let entry = entries(&cache).pop().unwrap();
    let good = std::fs::read(&entry).unwrap();
    let mut flipped = good.clone();
    let middle = flipped.len() / 2;
    flipped[middle] ^= 0x40;
    let foreign = {
        // A real entry of another component (the rogue fixture's), renamed.
        let other = dir.path().join("other");
        Host::new()
            .component(&common::fixture_component("rogue_connector"))
            .env("CONNECTOR_CACHE_DIR", other.to_str().unwrap())
            .run(&["metadata"])
            .assert_ok();
        std::fs::read(entries(&other).pop().unwrap()).unwrap()
    };
    for bad in [
        flipped,
        good[..good.len() / 3].to_vec(),
        foreign,
        Vec::new(),
    ] {
        std::fs::write(&entry, &bad).unwrap();
        assert_cached(&metadata(&cache, &[]), false);
        assert_ne!(
            std::fs::read(&entry).unwrap(),
            bad,
            "the entry is written again"
        );
        assert_cached(&metadata(&cache, &[]), true);
    }
}

#[cfg(unix)]
#[test]
fn a_cache_others_can_write_to_is_not_used() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    std::fs::create_dir(&cache).unwrap();
    std::fs::set_permissions(&cache, std::fs::Permissions::from_mode(0o777)).unwrap();
    let run = metadata(&cache, &[]);
    assert_cached(&run, false);
    assert!(run.stderr.contains("not caching"), "{}", run.stderr);
    assert!(entries(&cache).is_empty(), "nothing written there");
}
