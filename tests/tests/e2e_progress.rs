//! Progress on a terminal, through a pseudo-terminal (`script` from
//! util-linux): a sync shows the listing under way and the writing phase,
//! and the summary's times add up to the whole; piped, it shows no bar.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::process::Command;
use std::time::Duration;

use common::{host_bin, ironclad_component, Host};
use ironclad_sim::{Faults, SimConfig, Simulator, TenantSpec};

fn slow_sim() -> Simulator {
    Simulator::start(SimConfig {
        tenant: TenantSpec {
            users: 3000,
            groups: 20,
            memberships: 3000,
            seed: 7,
        },
        faults: Faults {
            latency: Duration::from_millis(150),
            ..Faults::default()
        },
        ..SimConfig::default()
    })
    .unwrap()
}

/// The summary's total and its three parts, in seconds.
fn times(summary: &str) -> (f64, [f64; 3]) {
    let line = summary
        .lines()
        .find(|l| l.contains("synced ") && l.contains(" s (starting "))
        .unwrap_or_else(|| panic!("no summary line:\n{summary}"));
    let nums: Vec<f64> = line
        .split(|c: char| !(c.is_ascii_digit() || c == '.'))
        .filter(|w| w.contains('.') && w.parse::<f64>().is_ok())
        .map(|w| w.parse().unwrap())
        .collect();
    let n = nums.len();
    assert!(n >= 4, "{line}");
    (nums[n - 4], [nums[n - 3], nums[n - 2], nums[n - 1]])
}

#[test]
fn a_sync_on_a_terminal_shows_progress_and_times_that_add_up() {
    let sim = slow_sim();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("s.c1z");
    let cmd = format!(
        "{} --component {} sync -f {}",
        host_bin().display(),
        ironclad_component().display(),
        out.display()
    );
    let run = common::baton_env(&mut Command::new("script"), &sim)
        .args(["-qfec", &cmd, "/dev/null"])
        .env("TERM", "xterm")
        .output()
        .expect("util-linux `script` runs the host on a pseudo-terminal");
    let shown = String::from_utf8_lossy(&run.stdout);
    assert!(run.status.success(), "{shown}");
    assert!(
        shown.contains("listing user ("),
        "progress of the listing:\n{shown}"
    );
    assert!(shown.contains(" rows/s"), "a rate:\n{shown}");
    // The connector passes Ironclad's total on: after the first page of
    // users the time left is shown, with the requests made.
    assert!(
        shown.contains("listing user (1000 of 3000, about "),
        "the total:\n{shown}"
    );
    assert!(shown.contains(" left)"), "the time left:\n{shown}");
    assert!(shown.contains(" requests, 0 retries"), "requests:\n{shown}");
    let (total, parts) = times(&shown);
    let sum: f64 = parts.iter().sum();
    assert!((total - sum).abs() < 0.02, "{total} vs {parts:?}");
    assert!(parts[1] > 0.5, "fetching took the latency: {parts:?}");
}

#[test]
fn piped_output_shows_no_progress() {
    let sim = slow_sim();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("s.c1z");
    let run = Host::for_sim(&sim).run(&["sync", "-f", out.to_str().unwrap()]);
    run.assert_ok();
    assert!(!run.stderr.contains("rows/s"), "{}", run.stderr);
    assert!(!run.stderr.contains('\u{1b}'), "{}", run.stderr);
    let (total, parts) = times(&run.stdout);
    assert!((total - parts.iter().sum::<f64>()).abs() < 0.02);
}
