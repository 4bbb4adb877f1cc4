//! The command line itself, without a component or a network: usage errors
//! and missing files are one clear line each. (This test also makes
//! `cargo test` build the `connector-host` binary with the same features as
//! every other test, which the end-to-end suites in `tests/` run.)

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;

fn host(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_connector-host"))
        .env_clear()
        .args(args)
        .output()
        .expect("run connector-host");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn help_lists_every_command() {
    let (ok, stdout, _) = host(&["--help"]);
    assert!(ok);
    for cmd in [
        "metadata",
        "validate",
        "sync",
        "inspect",
        "grant",
        "revoke",
        "create-account",
        "delete-resource",
    ] {
        assert!(stdout.contains(cmd), "{cmd} missing from --help:\n{stdout}");
    }
}

#[test]
fn a_missing_component_is_named() {
    let (ok, _, stderr) = host(&["--component", "/nonexistent/connector.wasm", "metadata"]);
    assert!(!ok);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("cannot read the component /nonexistent/connector.wasm"),
        "{stderr}"
    );
}

#[test]
fn inspecting_a_missing_file_is_one_line() {
    let (ok, _, stderr) = host(&["inspect", "-f", "/nonexistent/sync.c1z", "stats"]);
    assert!(!ok);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.starts_with("error:"), "{stderr}");
}
