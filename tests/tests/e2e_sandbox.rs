//! The sandbox against a component that misbehaves on purpose
//! (tests/fixtures/rogue, built from source by `make test`): each misdeed
//! gets its own clear error and the host stays in control.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{fixture_component, sim, Host, Run};

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
fn a_request_outside_the_allow_list_is_refused_and_never_sent() {
    let sim = sim(5, 1, 2);
    // The component declares one loopback origin and calls another: the
    // simulator's. The host must refuse it before any byte leaves.
    let target = format!("{}/oauth/userinfo", sim.base_url());
    let run = call("http://127.0.0.1:9", &target, &[]);
    assert!(!run.ok());
    assert!(
        run.error_line().contains("HttpRequestDenied"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr
            .contains(&sim.base_url().replace("localhost", "127.0.0.1")),
        "the log names the refused origin:\n{}",
        run.stderr
    );
    assert_eq!(sim.total_requests(), 0, "nothing reached the simulator");
}

#[test]
fn a_declared_origin_is_reachable() {
    let sim = sim(5, 1, 2);
    let target = format!("{}/oauth/userinfo", sim.base_url());
    let run = call(&sim.base_url(), &target, &[]);
    // The fixture reports what it reached as an error, so the sync fails, but
    // the request went through: the simulator answered 401 without a token.
    assert!(run.error_line().contains("reached"), "{}", run.stderr);
    assert_eq!(sim.total_requests(), 1);
}

#[test]
fn plain_http_beyond_loopback_is_refused_at_declaration() {
    let run = call("http://example.com", "http://example.com/", &[]);
    assert!(run.error_line().contains("only https"), "{}", run.stderr);
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

#[test]
fn a_declared_cloud_metadata_address_is_refused_after_resolution() {
    // Declared by the connector, so the origin check passes; the address
    // check must still refuse it, and nothing is sent.
    let run = call(
        "https://169.254.169.254",
        "https://169.254.169.254/latest/meta-data/",
        &[],
    );
    assert!(
        run.error_line().contains("DestinationIpProhibited"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr
            .contains("--allow-host entry naming 169.254.169.254"),
        "{}",
        run.stderr
    );
}

#[test]
fn the_operator_list_narrows_what_the_connector_declares() {
    let sim = sim(5, 1, 2);
    let target = format!("{}/oauth/userinfo", sim.base_url());
    let run = call(&sim.base_url(), &target, &["https://*.ironcladapp.com"]);
    assert!(run.error_line().contains("--allow-host"), "{}", run.stderr);
    assert_eq!(sim.total_requests(), 0);
}

#[test]
fn the_operator_can_allow_exactly_the_declared_origin() {
    let sim = sim(5, 1, 2);
    let target = format!("{}/oauth/userinfo", sim.base_url());
    let run = call(&sim.base_url(), &target, &[&sim.base_url()]);
    assert!(run.error_line().contains("reached"), "{}", run.stderr);
    assert_eq!(sim.total_requests(), 1);
}

#[test]
fn an_allow_host_entry_with_a_path_is_refused() {
    let run = rogue("call", &["--allow-host", "https://api.example.com/scim"]);
    assert!(
        run.error_line().contains("without a path"),
        "{}",
        run.stderr
    );
}

/// The fixture declares `declared`, then asks for `target`, under the
/// operator's `--allow-host` entries.
fn call(declared: &str, target: &str, allow_hosts: &[&str]) -> Run {
    let (declared, target) = (format!("declared={declared}"), format!("target={target}"));
    let mut args: Vec<&str> = allow_hosts
        .iter()
        .flat_map(|a| ["--allow-host", a])
        .collect();
    args.extend(["-c", &declared, "-c", &target]);
    rogue("call", &args)
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
        line.contains("built for idgov:connector@0.3.0") && line.contains("0.1.0 and 0.2.0"),
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
