//! The CLI habits of baton users through the real binary: log levels and
//! formats from flags or `BATON_*`, usage errors with exit 2, every missing
//! setting named at once, `BATON_FILE`, and shell completions.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{sim, Host};

#[test]
fn an_unknown_log_level_is_a_usage_error() {
    for run in [
        Host::new().run(&["--log-level", "loud", "metadata"]),
        Host::new()
            .env("BATON_LOG_LEVEL", "loud")
            .run(&["metadata"]),
    ] {
        assert_eq!(run.code, Some(2), "{}", run.stderr);
        assert!(
            run.stderr.contains("unknown log level \"loud\""),
            "{}",
            run.stderr
        );
    }
}

#[test]
fn json_logs_are_one_object_per_line_with_tenant_and_component() {
    let sim = sim(20, 2, 10);
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("s.c1z");
    let run = Host::for_sim(&sim).env("BATON_LOG_FORMAT", "json").run(&[
        "sync",
        "-f",
        out.to_str().unwrap(),
    ]);
    run.assert_ok();
    let mut lines = 0;
    for line in run.stderr.lines() {
        let v: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        assert_eq!(v["tenant"], "default", "{line}");
        assert_eq!(v["component"], "ironclad_connector", "{line}");
        assert!(v["level"].is_string() && v["message"].is_string(), "{line}");
        lines += 1;
    }
    assert!(lines >= 3, "{}", run.stderr);
}

#[test]
fn a_failure_in_json_mode_is_a_json_line_too() {
    let run = Host::new().run(&["--log-format", "json", "validate"]);
    assert_eq!(run.code, Some(1));
    let last = run.stderr.lines().last().unwrap();
    let v: serde_json::Value = serde_json::from_str(last).unwrap_or_else(|e| panic!("{e}: {last}"));
    assert_eq!(v["level"], "ERROR");
    assert!(
        v["message"].as_str().unwrap().contains("missing settings"),
        "{last}"
    );
}

#[test]
fn colour_follows_the_flag() {
    let coloured = Host::new().run(&["--color", "always", "--log-level", "debug", "metadata"]);
    assert!(coloured.stderr.contains("\x1b["), "{}", coloured.stderr);
    let plain = Host::new().run(&["--color", "never", "--log-level", "debug", "metadata"]);
    assert!(!plain.stderr.contains('\x1b'), "{}", plain.stderr);
}

#[test]
fn every_missing_setting_is_named_in_one_message() {
    let run = Host::new().run(&["validate"]);
    let line = run.error_line();
    for name in ["ic-client-id", "ic-client-secret"] {
        assert!(line.contains(&format!("{name}: set BATON_")), "{line}");
    }
    assert_eq!(run.code, Some(1));
}

#[test]
fn baton_file_names_the_output_and_the_file_inspect_reads() {
    let sim = sim(20, 2, 10);
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("from-env.c1z");
    Host::for_sim(&sim)
        .env("BATON_FILE", out.to_str().unwrap())
        .run(&["sync"])
        .assert_ok();
    assert!(out.exists());
    let run = Host::new()
        .env("BATON_FILE", out.to_str().unwrap())
        .run(&["inspect", "-o", "json", "stats"]);
    run.assert_ok();
    assert!(run.stdout.contains("resources"), "{}", run.stdout);
}

#[test]
fn completions_are_printed_for_each_shell() {
    for (shell, marker) in [
        ("bash", "complete -F _connector__host"),
        ("zsh", "#compdef connector-host"),
        ("fish", "complete -c connector-host"),
    ] {
        let run = Host::new().run(&["completion", shell]);
        run.assert_ok();
        assert!(
            run.stdout.contains(marker),
            "{shell}: {}",
            &run.stdout[..run.stdout.len().min(300)]
        );
        assert!(run.stdout.contains("--allow-host"), "{shell}");
    }
}
