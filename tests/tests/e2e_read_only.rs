//! The provisioning switch binds the component, not only the CLI: with
//! provisioning off the host's outbound layer sends GET, HEAD and the
//! requests the component declares as changing nothing (the Ironclad
//! connector's token exchange), whatever the component tries. The rogue
//! fixture sends PATCH, POST and DELETE (then a GET) from `validate` and
//! from `list-resources` during a plain sync.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{fixture_component, sim, Host, Run};

/// Runs `command` (with `-f FILE` for a sync) on the rogue fixture told to
/// write to the simulator, which the operator granted.
fn write_during(command: &str, sim: &ironclad_sim::Simulator, extra: &[&str]) -> Run {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("out.json");
    let target = format!("target={}/scim/v2/Users/1", sim.base_url());
    let mut args = vec![
        "--call-timeout-secs",
        "10",
        "--allow-host",
        &sim.base_url(),
        "-c",
        "behaviour=write",
        "-c",
        &target,
    ]
    .into_iter()
    .map(String::from)
    .collect::<Vec<_>>();
    args.extend(extra.iter().map(|s| s.to_string()));
    args.push(command.into());
    if command == "sync" {
        args.extend(["-f".into(), file.to_str().unwrap().into()]);
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    Host::new()
        .component(&fixture_component("rogue_connector"))
        .env("BATON_LOG_LEVEL", "info")
        .run(&args)
}

#[test]
fn with_provisioning_off_no_write_leaves_the_host() {
    let sim = sim(5, 1, 2);
    let run = write_during("sync", &sim, &[]);
    let line = run.error_line();
    for method in ["PATCH", "POST", "DELETE"] {
        assert!(line.contains(&format!("{method} failed")), "{line}");
        assert!(
            run.stderr.contains(&format!(
                "refused a {method} request while provisioning is off"
            )),
            "the log says why:\n{}",
            run.stderr
        );
    }
    assert!(line.contains("GET answered"), "reads still go out: {line}");
    assert_eq!(
        sim.total_requests(),
        1,
        "the GET alone reached the application"
    );
    assert_eq!(sim.write_requests(), 0, "nothing was changed");
}

#[test]
fn validate_with_provisioning_off_sends_no_write_either() {
    let sim = sim(5, 1, 2);
    let run = write_during("validate", &sim, &[]);
    run.assert_ok();
    let said = run.stdout.trim();
    for method in ["PATCH", "POST", "DELETE"] {
        assert!(said.contains(&format!("{method} failed")), "{said}");
    }
    assert_eq!(sim.total_requests(), 1, "the GET alone: {said}");
    assert_eq!(sim.write_requests(), 0);
}

#[test]
fn with_provisioning_on_the_same_writes_go_out() {
    // The control: the refusals above are the switch's doing.
    let sim = sim(5, 1, 2);
    let run = write_during("sync", &sim, &["--provisioning=true"]);
    let line = run.error_line();
    assert!(line.contains("PATCH answered"), "{line}");
    assert_eq!(sim.write_requests(), 3, "PATCH, POST and DELETE went out");
}

#[test]
fn metadata_says_what_a_read_only_run_may_send() {
    let sim = sim(5, 1, 2);
    let run = Host::for_sim(&sim).run(&["metadata"]);
    run.assert_ok();
    let meta: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(meta["egress"]["writes"], false);
    assert_eq!(
        meta["egress"]["read_only_requests"],
        serde_json::json!(["POST /oauth/token"])
    );
    // And a real sync needs nothing more: the token exchange goes out.
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("s.json");
    Host::for_sim(&sim)
        .run(&["sync", "-f", out.to_str().unwrap()])
        .assert_ok();
    assert_eq!(sim.write_requests(), 0);
}
