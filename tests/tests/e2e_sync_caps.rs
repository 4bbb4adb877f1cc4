//! Per-sync caps hold whatever the component says: the rogue fixture's
//! `endless` behaviour answers full pages of fresh ids with a new token for
//! ever. Each cap stops the sync with a one-line error naming its flag, and
//! no output is written (the progress is kept for a next run, which may
//! raise the cap).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{fixture_component, Host};

fn endless(caps: &[&str]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.c1z");
    let mut args = vec!["-c", "behaviour=endless"];
    args.extend_from_slice(caps);
    args.extend_from_slice(&["sync", "-f", out.to_str().unwrap()]);
    let run = Host::new()
        .component(&fixture_component("rogue_connector"))
        .run(&args);
    assert!(!run.ok());
    assert!(!out.exists(), "nothing written");
    // What was listed before the cap is kept for the next run (which may
    // raise the cap), and nothing else.
    let left: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(left, [".out.c1z.partial"], "no temp file left");
    let line = run.error_line();
    assert!(line.contains("its progress is kept"), "{line}");
    line
}

#[test]
fn pages_of_one_listing_are_capped() {
    let line = endless(&["--max-pages", "30"]);
    assert!(
        line.contains("listing thing resources: more than 30 pages in one listing (--max-pages)"),
        "{line}"
    );
}

#[test]
fn rows_are_capped() {
    let line = endless(&["--max-rows", "2500"]);
    assert!(line.contains("passed 2500 rows (--max-rows)"), "{line}");
}

#[test]
fn bytes_lifted_are_capped() {
    let line = endless(&["--max-sync-mb", "1"]);
    assert!(line.contains("1 MiB of rows (--max-sync-mb)"), "{line}");
}

#[test]
fn the_whole_sync_has_a_deadline() {
    let line = endless(&["--sync-timeout", "2s"]);
    assert!(
        line.contains("ran past its deadline of 2s (--sync-timeout)"),
        "{line}"
    );
}
