//! The sandbox against a component that misbehaves on purpose
//! (tests/fixtures/rogue, built from source by `make test`): each misdeed
//! gets its own clear error and the host stays in control. Egress has its
//! own file, e2e_egress.rs.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{fixture_component, Host, Run};

fn rogue(behaviour: &str, extra: &[&str]) -> Run {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("out.json");
    std::fs::write(&file, "previous").unwrap();
    let mut args = vec!["--call-timeout-secs", "3", "--memory-mb", "64", "-c"];
    let b = format!("behaviour={behaviour}");
    args.push(&b);
    args.extend_from_slice(extra);
    args.extend_from_slice(&["sync", "-f", file.to_str().unwrap()]);
    let run = Host::new()
        .component(&fixture_component("rogue_connector"))
        .run(&args);
    assert_eq!(
        std::fs::read_to_string(&file).unwrap(),
        "previous",
        "the old output survives"
    );
    run
}

#[test]
fn an_endless_loop_is_stopped_at_the_deadline() {
    let run = rogue("spin", &[]);
    assert!(run.error_line().contains("deadline"), "{}", run.stderr);
}

#[test]
fn unbounded_allocation_hits_the_memory_limit() {
    let run = rogue("hog", &[]);
    let line = run.error_line();
    assert!(line.contains("memory"), "{}", run.stderr);
}

#[test]
fn a_panic_is_reported_as_a_crash_of_the_component() {
    let run = rogue("panic", &[]);
    assert!(run.error_line().contains("crashed"), "{}", run.stderr);
    assert!(
        !run.stderr.contains("RUST_BACKTRACE"),
        "no host backtrace: {}",
        run.stderr
    );
}

#[test]
fn a_page_token_that_never_changes_stops_the_sync() {
    let run = rogue("stuck-token", &[]);
    assert!(
        run.error_line().contains("page token it was given"),
        "{}",
        run.stderr
    );
}

#[test]
fn a_record_of_the_wrong_type_is_refused() {
    let run = rogue("wrong-type", &[]);
    assert!(
        run.error_line().contains("bug in the connector"),
        "{}",
        run.stderr
    );
}

fn load(path: &std::path::Path) -> Run {
    Host::new().component(path).run(&["metadata"])
}

#[test]
fn a_core_module_is_told_to_become_a_component() {
    let dir = tempfile::tempdir().unwrap();
    let core = dir.path().join("core.wasm");
    // The smallest valid core module: magic and version 1.
    std::fs::write(&core, b"\0asm\x01\0\0\0").unwrap();
    let run = load(&core);
    assert!(
        run.error_line()
            .contains("core WebAssembly module, not a component"),
        "{}",
        run.stderr
    );
}

#[test]
fn a_component_of_another_world_is_named_as_such() {
    let run = load(&fixture_component("not_a_connector"));
    let line = run.error_line();
    assert!(
        line.contains("is not a connector") && line.contains("wasi:cli/run"),
        "{line}"
    );
}

#[test]
fn a_component_of_an_incompatible_contract_version_is_named_as_such() {
    let run = load(&fixture_component("future_connector"));
    let line = run.error_line();
    assert!(
        line.contains("built for idgov:connector@0.4.0") && line.contains("0.1.0, 0.2.0 and 0.3.0"),
        "{line}"
    );
}

#[test]
fn garbage_is_not_a_component() {
    let dir = tempfile::tempdir().unwrap();
    let junk = dir.path().join("junk.wasm");
    std::fs::write(&junk, b"<html>502 Bad Gateway</html>").unwrap();
    assert!(load(&junk)
        .error_line()
        .contains("not a WebAssembly component"));
}
