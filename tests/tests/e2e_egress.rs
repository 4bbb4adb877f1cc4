//! Egress through the real binary: what a component may reach is what the
//! operator granted (origin settings, `--allow-host`, the component's static
//! patterns filled with settings), never what the component says at run
//! time. The rogue fixture (tests/fixtures/rogue) declares `declared` from
//! `outbound-origins` and then asks for `target`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{fixture_component, sim, Host, Run};

/// The fixture declares `declared` (when given), then asks for `target`,
/// under the operator's `extra` flags.
fn call(declared: Option<&str>, target: &str, extra: &[&str]) -> Run {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("out.json");
    let target = format!("target={target}");
    let mut args: Vec<String> = vec!["--call-timeout-secs".into(), "5".into()];
    args.extend(extra.iter().map(|s| s.to_string()));
    args.extend(["-c".into(), "behaviour=call".into(), "-c".into(), target]);
    if let Some(d) = declared {
        args.extend(["-c".into(), format!("declared={d}")]);
    }
    args.extend(["sync".into(), "-f".into(), file.to_str().unwrap().into()]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let run = Host::new()
        .component(&fixture_component("rogue_connector"))
        .run(&args);
    assert!(!file.exists(), "no output from a refused run");
    run
}

#[test]
fn an_origin_the_component_declares_for_itself_is_refused_at_start() {
    let sim = sim(5, 1, 2);
    let origin = sim.base_url();
    let target = format!("{origin}/oauth/userinfo");
    let localhost = origin.replace("127.0.0.1", "localhost");
    for declared in [
        origin.as_str(),
        localhost.as_str(),
        "https://api.example.com",
    ] {
        let run = call(Some(declared), &target, &[]);
        let line = run.error_line();
        assert!(
            line.contains(&format!("needs {declared}")) && line.contains("--allow-host"),
            "{line}"
        );
    }
    assert_eq!(sim.total_requests(), 0, "nothing reached the simulator");
}

#[test]
fn an_undeclared_request_is_refused_with_the_origin_named_and_never_sent() {
    let sim = sim(5, 1, 2);
    let target = format!("{}/oauth/userinfo", sim.base_url());
    let run = call(None, &target, &[]);
    assert!(
        run.error_line().contains("HttpRequestDenied"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains(&format!(
            "{} is not among the origins the operator granted",
            sim.base_url()
        )),
        "the log names the refused origin:\n{}",
        run.stderr
    );
    let public = call(None, "https://api.example.com/x", &[]);
    assert!(
        public
            .stderr
            .contains("grant it with --allow-host https://api.example.com"),
        "{}",
        public.stderr
    );
    assert_eq!(sim.total_requests(), 0, "nothing reached the simulator");
}

#[test]
fn the_operators_grant_opens_loopback_and_localhost() {
    let sim = sim(5, 1, 2);
    let origin = sim.base_url();
    let localhost = origin.replace("127.0.0.1", "localhost");
    for granted in [&origin, &localhost] {
        let target = format!("{granted}/oauth/userinfo");
        let run = call(Some(granted), &target, &["--allow-host", granted]);
        // The fixture reports what it reached as an error, so the sync
        // fails, but the request went through (the simulator answers 401
        // without a token).
        assert!(run.error_line().contains("reached"), "{}", run.stderr);
        assert!(
            run.stderr.contains(&format!(
                "egress: may reach {granted} (the operator's allow-list)"
            )),
            "the log says what the component may reach and why:\n{}",
            run.stderr
        );
    }
    assert_eq!(sim.total_requests(), 2);
}

#[test]
fn a_grant_for_one_origin_opens_no_other() {
    let sim = sim(5, 1, 2);
    let target = format!("{}/oauth/userinfo", sim.base_url());
    // Granted a port that is not the simulator's: the simulator stays shut.
    let run = call(None, &target, &["--allow-host", "http://127.0.0.1:9"]);
    assert!(
        run.error_line().contains("HttpRequestDenied"),
        "{}",
        run.stderr
    );
    // A wildcard never names an address, so it cannot open loopback.
    let run = call(
        None,
        "http://127.0.0.1:9/",
        &["--allow-host", "https://*.example.com"],
    );
    assert!(
        run.error_line().contains("HttpRequestDenied"),
        "{}",
        run.stderr
    );
    assert_eq!(sim.total_requests(), 0);
}

#[test]
fn a_cloud_metadata_address_is_refused_unless_named() {
    // Declared by the component, granted by nobody: refused at start.
    let run = call(
        Some("https://169.254.169.254"),
        "https://169.254.169.254/latest/meta-data/",
        &[],
    );
    assert!(
        run.error_line().contains("needs https://169.254.169.254"),
        "{}",
        run.stderr
    );
}

#[test]
fn plain_http_beyond_the_local_network_is_refused() {
    let run = call(
        None,
        "http://example.com/",
        &["--allow-host", "http://example.com"],
    );
    let line = run.error_line();
    assert!(
        line.contains("plain http") && line.contains("use https"),
        "{line}"
    );
}

#[test]
fn an_allow_host_entry_with_a_path_is_refused() {
    let run = call(
        None,
        "https://api.example.com/",
        &["--allow-host", "https://api.example.com/scim"],
    );
    assert!(
        run.error_line().contains("without a path"),
        "{}",
        run.stderr
    );
}

#[test]
fn pinning_ignores_the_components_origin_settings() {
    let sim = sim(5, 1, 2);
    // base-url is an origin setting: a grant, unless the operator pins.
    let run = Host::for_sim(&sim).run(&["--allow-host-only", "validate"]);
    let line = run.error_line();
    assert!(
        line.contains(&format!("needs {}", sim.base_url())),
        "{line}"
    );
    assert_eq!(sim.total_requests(), 0);
    Host::for_sim(&sim)
        .run(&[
            "--allow-host-only",
            "--allow-host",
            &sim.base_url(),
            "validate",
        ])
        .assert_ok();
}

#[test]
fn a_sync_logs_what_the_component_may_reach_and_why() {
    let sim = sim(5, 1, 2);
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.c1z");
    let run = Host::for_sim(&sim).run(&["sync", "-f", out.to_str().unwrap()]);
    run.assert_ok();
    let egress: Vec<&str> = run
        .stderr
        .lines()
        .filter(|l| l.contains("egress:"))
        .collect();
    assert!(
        egress.iter().any(|l| l.contains(&format!(
            "may reach {} (the operator's setting base-url)",
            sim.base_url()
        ))),
        "{}",
        run.stderr
    );
    assert!(
        egress.iter().any(|l| l.contains(
            "may reach https://na1.ironcladapp.com (the component's pattern https://{environment}.ironcladapp.com with environment=na1)"
        )),
        "{}",
        run.stderr
    );
}

#[test]
fn metadata_shows_what_the_component_may_reach_before_anything_runs() {
    let run = Host::new().run(&["metadata", "-c", "environment=eu1"]);
    run.assert_ok();
    let doc: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(
        doc["egress"]["granted"],
        serde_json::json!([{
            "origin": "https://eu1.ironcladapp.com",
            "why": "the component's pattern https://{environment}.ironcladapp.com with environment=eu1",
        }])
    );
    assert_eq!(
        doc["egress"]["origin_settings"],
        serde_json::json!(["base-url"])
    );
    let base = doc["config_schema"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["name"] == "base-url")
        .unwrap();
    assert_eq!(base["kind"], "origin");
    // The operator's entries are part of the answer.
    let run = Host::new().run(&["metadata", "--allow-host", "https://*.example.com"]);
    let doc: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert!(
        doc["egress"]["granted"]
            .as_array()
            .unwrap()
            .iter()
            .any(|g| g["origin"] == "https://*.example.com"
                && g["why"] == "the operator's allow-list")
    );
}
