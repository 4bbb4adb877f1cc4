//! The host process while it holds credentials: no core dumps, not
//! dumpable, and a private file-creation mask, read from /proc while a real
//! sync is under way against a slow simulator.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{host_bin, ironclad_component};
use ironclad_sim::{Faults, SimConfig, Simulator, TenantSpec};

/// A field of /proc/PID/status, as written there.
fn status_field(pid: u32, name: &str) -> Option<String> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{name}:")))
        .map(|v| v.trim().to_string())
}

#[test]
fn a_running_host_dumps_no_core_and_creates_private_files() {
    let sim = Simulator::start(SimConfig {
        tenant: TenantSpec {
            users: 50,
            groups: 5,
            memberships: 100,
            seed: 7,
        },
        faults: Faults {
            latency: Duration::from_millis(400),
            ..Faults::default()
        },
        ..SimConfig::default()
    })
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("sync.c1z");
    let child = common::baton_env(&mut Command::new(host_bin()), &sim)
        .arg("--component")
        .arg(ironclad_component())
        .args(["--no-cache", "sync", "-f"])
        .arg(&out)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    // Wait until the host is past its start (it has asked for a token).
    let started = Instant::now();
    while sim.total_requests() == 0 && started.elapsed() < Duration::from_secs(60) {
        std::thread::sleep(Duration::from_millis(20));
    }
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    let umask = status_field(pid, "Umask");
    let core = limits
        .lines()
        .find(|l| l.starts_with("Max core file size"))
        .unwrap()
        .to_string();
    // Not dumpable: /proc/PID is then owned by root, whoever runs the host.
    let meta =
        std::os::unix::fs::MetadataExt::uid(&std::fs::metadata(format!("/proc/{pid}")).unwrap());
    let out_status = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out_status.stderr);
    assert!(out_status.status.success(), "{stderr}");
    assert_eq!(
        core.split_whitespace().skip(4).take(2).collect::<Vec<_>>(),
        ["0", "0"],
        "{core}"
    );
    assert_eq!(umask.as_deref(), Some("0077"));
    assert_eq!(
        meta, 0,
        "/proc/{pid} owned by root: the process is not dumpable"
    );
    let mode =
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&out).unwrap().permissions());
    assert_eq!(mode & 0o077, 0, "the output file is private: {mode:o}");
}
