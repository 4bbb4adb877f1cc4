//! The host process while it holds credentials: no core dumps, not
//! dumpable, and a private file-creation mask, read from /proc while a real
//! sync is under way against a slow simulator.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::os::unix::fs::PermissionsExt as _;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{host_bin, ironclad_component};
use ironclad_sim::{Faults, SimConfig, Simulator, TenantSpec};

/// The unprivileged user the host runs as when the tests run as root.
const NOBODY: u32 = 65534;

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
    // Not dumpable shows as /proc/PID owned by root instead of the
    // process's user: run as an unprivileged user, so the two differ. Its
    // binary and component are copied where that user can reach them (the
    // checkout may sit under a private directory).
    let (host, component) = (dir.path().join("connector-host"), dir.path().join("c.wasm"));
    std::fs::copy(host_bin(), &host).unwrap();
    std::fs::copy(ironclad_component(), &component).unwrap();
    std::fs::set_permissions(&component, std::fs::Permissions::from_mode(0o644)).unwrap();
    let mut cmd = Command::new(&host);
    // SAFETY: geteuid has no preconditions.
    let host_uid = if unsafe { libc::geteuid() } == 0 {
        std::os::unix::process::CommandExt::uid(&mut cmd, NOBODY);
        std::os::unix::process::CommandExt::gid(&mut cmd, NOBODY);
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
        NOBODY
    } else {
        // SAFETY: as above.
        unsafe { libc::geteuid() }
    };
    let child = common::baton_env(&mut cmd, &sim)
        .arg("--component")
        .arg(&component)
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
    let owner = std::os::unix::fs::MetadataExt::uid(
        &std::fs::metadata(format!("/proc/{pid}/status")).unwrap(),
    );
    let out_status = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out_status.stderr);
    assert!(out_status.status.success(), "{stderr}");
    assert_eq!(
        core.split_whitespace().skip(4).take(2).collect::<Vec<_>>(),
        ["0", "0"],
        "{core}"
    );
    assert_eq!(umask.as_deref(), Some("0077"));
    assert_ne!(host_uid, 0);
    assert_eq!(
        owner, 0,
        "/proc/{pid}/status owned by root, not uid {host_uid}: the process is not dumpable"
    );
    let mode = std::fs::metadata(&out).unwrap().permissions().mode();
    assert_eq!(mode & 0o077, 0, "the output file is private: {mode:o}");
}
