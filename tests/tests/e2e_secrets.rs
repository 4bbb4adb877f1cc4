//! Secrets through the real binary: a component that quotes its secret back
//! (whole, cut short, re-encoded) never gets any of it printed; a secret is
//! refused on the command line and read from a file instead; a generated
//! password's file exists only for an account that was created.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::process::Stdio;
use std::time::{Duration, Instant};

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use common::{fixture_component, host_bin, ironclad_component, sim, Host, Run};
use ironclad_sim::{check_password, Faults};

/// Quotes, a backslash, a slash, `+`, `&`, `%` and `=`: every character that
/// JSON, URL and base64 encodings change.
const SECRET: &str = r#"Sk/9"q+Tz\w8=Lp&Hx3!Rm7%Yc2-Vb5"#;
const API_ID: &str = "rogue-app-0042";

/// Every run of eight characters (the scrubbing rule) of each form a
/// component may quote the secret in.
fn pieces() -> Vec<String> {
    let json = serde_json::to_string(SECRET).unwrap();
    let forms = [
        SECRET.to_string(),
        json[1..json.len() - 1].to_string(),
        percent_encoding::utf8_percent_encode(SECRET, percent_encoding::NON_ALPHANUMERIC)
            .to_string(),
        STANDARD.encode(format!("{API_ID}:{SECRET}")),
    ];
    let mut pieces: Vec<String> = forms
        .iter()
        .flat_map(|f| {
            f.as_bytes()
                .windows(8)
                .map(|w| String::from_utf8(w.to_vec()).unwrap())
                .collect::<Vec<_>>()
        })
        .collect();
    // The id alone is not secret; base64 runs that encode only it are fine.
    let id_only = STANDARD.encode(format!("{API_ID}:"));
    pieces.retain(|p| !id_only.contains(p.as_str()));
    pieces
}

fn assert_nothing_of_the_secret(what: &str, text: &str) {
    for piece in pieces() {
        assert!(
            !text.contains(&piece),
            "{what}: {piece:?} of the secret was printed:\n{text}"
        );
    }
}

fn rogue(behaviour: &str) -> Run {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("out.json");
    let b = format!("behaviour={behaviour}");
    Host::new()
        .component(&fixture_component("rogue_connector"))
        .env("BATON_API_SECRET", SECRET)
        .env("BATON_API_ID", API_ID)
        .run(&[
            "--log-level",
            "debug",
            "--max-retries",
            "2",
            "-c",
            &b,
            "sync",
            "-f",
            file.to_str().unwrap(),
        ])
}

#[test]
fn a_secret_quoted_back_by_a_component_never_appears_whole_or_in_part() {
    for behaviour in [
        "echo-cut",
        "echo-json",
        "echo-percent",
        "echo-basic",
        "echo-log",
    ] {
        let run = rogue(behaviour);
        assert!(!run.ok(), "{behaviour}: the fixture fails the sync");
        let line = run.error_line();
        assert!(
            line.contains("[redacted]"),
            "{behaviour}: the quote reached the error line, scrubbed: {line}"
        );
        assert_nothing_of_the_secret(behaviour, &run.stdout);
        assert_nothing_of_the_secret(behaviour, &run.stderr);
    }
}

#[test]
fn a_secret_in_a_logged_retry_is_scrubbed_from_the_log_too() {
    let run = rogue("echo-log");
    let retries: Vec<&str> = run
        .stderr
        .lines()
        .filter(|l| l.contains("retrying"))
        .collect();
    assert_eq!(retries.len(), 2, "{}", run.stderr);
    for line in retries {
        assert!(line.contains("slow down, [redacted]"), "{line}");
    }
}

#[test]
fn a_secret_on_the_command_line_is_refused_with_both_ways_to_give_it() {
    let sim = sim(5, 1, 2);
    let run = Host::for_sim(&sim)
        .env_remove("BATON_IC_CLIENT_SECRET")
        .run(&["-c", &format!("ic-client-secret={SECRET}"), "validate"]);
    assert!(!run.ok());
    let line = run.error_line();
    assert!(
        line.contains("BATON_IC_CLIENT_SECRET") && line.contains("ic-client-secret=@FILE"),
        "{line}"
    );
    assert_eq!(run.stderr.lines().count(), 1, "{}", run.stderr);
    assert_nothing_of_the_secret("refusal", &run.stderr);
    assert_eq!(sim.total_requests(), 0, "refused before any request");
}

#[test]
fn a_secret_is_read_from_a_file_named_with_at() {
    let sim = sim(5, 1, 2);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("client-secret");
    // As `echo` or an editor leaves it: with a line ending.
    std::fs::write(&file, format!("{}\n", sim.client_secret())).unwrap();
    let run = Host::for_sim(&sim)
        .env_remove("BATON_IC_CLIENT_SECRET")
        .run(&[
            "-c",
            &format!("ic-client-secret=@{}", file.display()),
            "validate",
        ]);
    run.assert_ok();
    assert!(run.stdout.starts_with("ok: "), "{}", run.stdout);
}

#[test]
fn a_missing_or_unreadable_secret_file_is_one_line() {
    let sim = sim(5, 1, 2);
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("not-mounted");
    // A directory where the file should be: unreadable even to root.
    let unreadable = dir.path().to_path_buf();
    for path in [missing, unreadable] {
        let run = Host::for_sim(&sim)
            .env_remove("BATON_IC_CLIENT_SECRET")
            .run(&[
                "-c",
                &format!("ic-client-secret=@{}", path.display()),
                "validate",
            ]);
        assert!(!run.ok());
        let line = run.error_line();
        assert!(
            line.contains("ic-client-secret")
                && line.contains(&path.display().to_string())
                && line.contains("cannot read"),
            "{line}"
        );
        assert_eq!(run.stderr.lines().count(), 1, "{}", run.stderr);
    }
    assert_eq!(sim.total_requests(), 0);
}

fn create_account(email: &str, cred: &std::path::Path) -> Vec<String> {
    [
        "--provisioning",
        "create-account",
        "--email",
        email,
        "--given-name",
        "Retry",
        "--family-name",
        "Later",
        "--credentials-out",
        cred.to_str().unwrap(),
    ]
    .map(String::from)
    .to_vec()
}

#[test]
fn a_failed_create_account_leaves_no_credential_file_and_a_retry_works() {
    let sim = sim(10, 1, 5);
    let dir = tempfile::tempdir().unwrap();
    let cred = dir.path().join("cred.json");
    let email = "retry.later@example-tenant.test";
    let args = create_account(email, &cred);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();

    // Failing before the component is called: a setting is missing.
    let run = Host::for_sim(&sim)
        .env_remove("BATON_IC_CLIENT_ID")
        .run(&args);
    assert!(run.error_line().contains("ic-client-id"), "{}", run.stderr);
    assert!(!cred.exists(), "no file after a configuration error");

    // Failing in the application: every SCIM request answers 503.
    sim.set_faults(Faults {
        server_error_every: Some(1),
        ..Faults::default()
    });
    let run = Host::for_sim(&sim).run(&args);
    assert!(!run.ok(), "{}", run.stdout);
    assert!(!cred.exists(), "no file after the application failed");

    sim.set_faults(Faults::default());
    let run = Host::for_sim(&sim).run(&args);
    run.assert_ok();
    let vaulted: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&cred).unwrap()).unwrap();
    assert_eq!(vaulted["login"], email);
    assert!(check_password(vaulted["password"].as_str().unwrap()));
}

#[test]
fn ctrl_c_during_create_account_removes_the_credential_file() {
    let sim = sim(10, 1, 5);
    // Slow enough that the signal lands while the account is being created.
    sim.set_faults(Faults {
        latency: Duration::from_secs(3),
        ..Faults::default()
    });
    let dir = tempfile::tempdir().unwrap();
    let cred = dir.path().join("cred.json");
    let child = common::baton_env(&mut std::process::Command::new(host_bin()), &sim)
        .arg("--component")
        .arg(ironclad_component())
        .args(create_account("ctrl.c@example-tenant.test", &cred))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while sim.total_requests() == 0 {
        assert!(start.elapsed() < Duration::from_secs(20), "never started");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(cred.exists(), "the file is made before the account");
    let status = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let out = child.wait_with_output().unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("interrupted"), "{stderr}");
    assert!(!cred.exists(), "Ctrl-C left the credential file behind");
}
