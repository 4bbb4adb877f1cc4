//! The operator binds the environment to a component: a component given by
//! path reads no variable unless `--env-prefix` names a prefix for it, the
//! built-in Ironclad component reads `BATON_*` as the existing connector's
//! Kubernetes Secret sets them, and every value read from the environment
//! is scrubbed from the output whatever the component's schema says. The
//! rogue fixture declares `api-id` as a plain setting and reports it.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{fixture_component, sim, Host};

const PRIVATE: &str = "plain-but-private-4711";

fn rogue(prefix: Option<&str>, extra: &[&str]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.json");
    let mut args = vec!["-c", "behaviour=echo-id"];
    args.extend_from_slice(extra);
    args.extend_from_slice(&["sync", "-f", out.to_str().unwrap()]);
    let run = Host::new()
        .component(&fixture_component("rogue_connector"))
        .env_prefix(prefix)
        .env("BATON_API_ID", "meant-for-another-connector")
        .env("BATON_API_SECRET", "another-connectors-secret")
        .env("ROGUE_API_ID", PRIVATE)
        .run(&args);
    assert!(!run.ok());
    assert!(!run.stderr.contains(PRIVATE), "{}", run.stderr);
    run.error_line()
}

#[test]
fn a_component_by_path_reads_no_environment_unless_bound() {
    let line = rogue(None, &[]);
    assert!(
        line.contains(r#"api-id is "", api-secret is absent"#),
        "{line}"
    );
}

#[test]
fn a_bound_prefix_is_all_the_component_reads_and_its_values_are_scrubbed() {
    let line = rogue(Some("ROGUE_"), &[]);
    assert!(
        line.contains(r#"api-id is "[redacted]", api-secret is absent"#),
        "a plain setting from the environment is hidden all the same: {line}"
    );
}

#[test]
fn a_value_given_as_a_flag_is_shown() {
    let line = rogue(Some("ROGUE_"), &["-c", "api-id=visible-on-purpose-1"]);
    assert!(
        line.contains(r#"api-id is "visible-on-purpose-1""#),
        "{line}"
    );
}

#[test]
fn a_bad_prefix_is_a_one_line_error() {
    let line = rogue(Some("rogue"), &[]);
    assert!(line.contains("--env-prefix \"rogue\""), "{line}");
}

#[test]
fn the_built_in_component_reads_baton_variables_and_one_by_path_needs_the_binding() {
    let sim = sim(5, 1, 2);
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("s.json");
    let out = out.to_str().unwrap();
    Host::for_sim(&sim)
        .built_in_component()
        .env_prefix(None)
        .run(&["sync", "-f", out])
        .assert_ok();
    let run = Host::for_sim(&sim)
        .env_prefix(None)
        .run(&["sync", "-f", out]);
    assert!(
        run.error_line()
            .contains("missing settings ic-client-id: pass --config ic-client-id=…"),
        "{}",
        run.stderr
    );
}
