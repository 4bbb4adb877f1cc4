//! What the host holds for one instance, and what the component's standard
//! library imports beyond its world, against the rogue fixture (built from
//! source by `make fixtures`) through the real `connector-host`.
//!
//! Each bound is shown holding by the host's peak RSS (from `wait4`, exact
//! for that one child): under the instance's memory limit plus
//! [`OVERHEAD_MIB`]. Without the bounds each of these components grows the
//! host without end (wasmtime's defaults allow about 128 GB).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

use common::{fixture_component, host_bin, run_measured, Run};

/// The instance's memory limit in these runs.
const MEMORY_MIB: u64 = 32;

/// What the host may use beyond the instance's memory limit: the process
/// itself with the compiled component loaded from the cache (about 30 MiB
/// in a debug build), the default 16 MiB the host may hold for the
/// component, and the allocator's slack.
const OVERHEAD_MIB: u64 = 64;

struct Measured {
    run: Run,
    peak_rss_mib: u64,
}

impl Measured {
    #[track_caller]
    fn assert_bounded(&self) {
        assert!(
            self.peak_rss_mib <= MEMORY_MIB + OVERHEAD_MIB,
            "host peak RSS {} MiB, over the {MEMORY_MIB} MiB memory limit plus {OVERHEAD_MIB} MiB\n{}",
            self.peak_rss_mib,
            self.run.stderr
        );
    }
}

/// A cache of compiled components shared by these tests, so a measured run
/// loads the component instead of compiling it (compiling is the host's
/// own cost, not something the component makes it hold).
fn cache_dir() -> &'static Path {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    DIR.get_or_init(|| {
        // The cache takes only a private directory (0700).
        let dir = tempfile::tempdir().unwrap();
        std::fs::set_permissions(
            dir.path(),
            std::os::unix::fs::PermissionsExt::from_mode(0o700),
        )
        .unwrap();
        let path = dir.path().to_str().unwrap().to_string();
        let (bin, args) = rogue_cmd(&["--cache-dir", &path, "metadata"], &[]);
        let out = Command::new(bin).args(args).env_clear().output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        dir
    })
    .path()
}

fn rogue_cmd(args: &[&str], config: &[&str]) -> (PathBuf, Vec<String>) {
    let mut all: Vec<String> = vec![
        "--component".into(),
        fixture_component("rogue_connector")
            .to_str()
            .unwrap()
            .into(),
    ];
    for c in config {
        all.push("-c".into());
        all.push((*c).into());
    }
    all.extend(args.iter().map(|a| a.to_string()));
    (host_bin(), all)
}

/// Runs the host on the rogue fixture with `behaviour`, `extra` flags and
/// settings, `env` added to an otherwise empty environment, and `stdin`
/// fed to the host; measures the host's peak RSS.
fn rogue(behaviour: &str, extra: &[&str], env: &[(&str, &str)], stdin: &[u8]) -> Measured {
    let out = tempfile::tempdir().unwrap();
    let file = out.path().join("out.json");
    let memory = MEMORY_MIB.to_string();
    let cache = cache_dir().to_str().unwrap().to_string();
    let b = format!("behaviour={behaviour}");
    let mut args = vec![
        "--cache-dir",
        &cache,
        "--memory-mb",
        &memory,
        "--call-timeout-secs",
        "30",
        "-c",
        &b,
    ];
    args.extend_from_slice(extra);
    args.extend_from_slice(&["sync", "-f", file.to_str().unwrap()]);
    let (bin, args) = rogue_cmd(&args, &[]);
    let (run, peak_rss_mib) = run_measured(
        Command::new(bin)
            .args(args)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("RUST_BACKTRACE", "0")
            .envs(env.iter().copied()),
        stdin,
    );
    Measured { run, peak_rss_mib }
}

#[test]
fn leaked_handles_stop_at_the_resource_cap() {
    let m = rogue("leak-resources", &[], &[], b"");
    let line = m.run.error_line();
    assert!(
        line.contains("1024 live WASI resources (--max-resources)"),
        "{}",
        m.run.stderr
    );
    m.assert_bounded();
}

#[test]
fn the_resource_cap_follows_its_flag() {
    let m = rogue("leak-resources", &["--max-resources", "50"], &[], b"");
    assert!(
        m.run.error_line().contains("50 live WASI resources"),
        "{}",
        m.run.stderr
    );
}

#[test]
fn an_oversized_header_set_stops_at_the_field_size_cap() {
    // The attack: 120 KiB sets, under wasmtime's own 128 KiB.
    let m = rogue("huge-field", &[], &[], b"");
    assert!(
        m.run
            .error_line()
            .contains("32 KiB of HTTP header fields in one set (--max-field-kb)"),
        "{}",
        m.run.stderr
    );
    m.assert_bounded();
}

#[test]
fn leaked_header_sets_stop_at_the_host_byte_budget() {
    // 30 KiB sets pass the field-size cap; 16 MiB of them come before the
    // 1024th handle.
    let m = rogue("leak-fields", &[], &[], b"");
    assert!(
        m.run
            .error_line()
            .contains("16 MiB held by the host for it")
            && m.run.error_line().contains("--max-host-mb"),
        "{}",
        m.run.stderr
    );
    m.assert_bounded();
    let m = rogue("leak-fields", &["--max-host-mb", "4"], &[], b"");
    assert!(
        m.run.error_line().contains("4 MiB held by the host"),
        "{}",
        m.run.stderr
    );
}

#[test]
fn a_burst_of_requests_stops_at_the_concurrency_cap() {
    // A server that accepts and never answers, so every admitted request
    // keeps its connection open until the first-byte timeout.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let accepted = Arc::new(AtomicUsize::new(0));
    {
        let accepted = accepted.clone();
        std::thread::spawn(move || {
            let mut open = Vec::new();
            for s in listener.incoming().flatten() {
                accepted.fetch_add(1, Ordering::SeqCst);
                open.push(s);
            }
        });
    }
    let origin = format!("http://127.0.0.1:{port}");
    let declared = format!("declared={origin}");
    let target = format!("target=127.0.0.1:{port}");
    let m = rogue(
        "many-requests",
        &[
            "--max-concurrent-requests",
            "8",
            "--allow-host",
            &origin,
            "--first-byte-timeout-secs",
            "2",
            "-c",
            &declared,
            "-c",
            &target,
            "-c",
            "count=200",
        ],
        &[],
        b"",
    );
    let line = m.run.error_line();
    assert!(
        line.contains("0 answered, 192 refused with ConnectionLimitReached, 8 failed otherwise"),
        "{}",
        m.run.stderr
    );
    assert!(
        m.run
            .stderr
            .contains("8 requests in flight already, the host's limit (--max-concurrent-requests)"),
        "{}",
        m.run.stderr
    );
    assert_eq!(
        accepted.load(Ordering::SeqCst),
        8,
        "connections the server saw"
    );
    m.assert_bounded();
}

#[test]
fn the_component_sees_no_environment() {
    let m = rogue(
        "read-env",
        &[],
        &[
            ("HOME", "/root"),
            ("AWS_SECRET_ACCESS_KEY", "from-the-host"),
        ],
        b"",
    );
    assert!(
        m.run
            .error_line()
            .contains("environment: 0 variables, 0 arguments"),
        "{}",
        m.run.stderr
    );
}

#[test]
fn the_component_reads_nothing_from_stdin() {
    let m = rogue("read-stdin", &[], &[], b"input meant for the host\n");
    assert!(
        m.run.error_line().contains("stdin: 0 bytes (Ok(0))"),
        "{}",
        m.run.stderr
    );
}

#[test]
fn stdout_and_stderr_become_log_lines_tagged_with_the_component() {
    let m = rogue(
        "print",
        &["-c", "target=a-setting-kept-out-of-logs"],
        &[],
        b"",
    );
    m.run.assert_ok();
    let line = |text: &str| {
        m.run
            .stderr
            .lines()
            .find(|l| l.contains(text))
            .unwrap_or_else(|| panic!("no log line with {text:?}:\n{}", m.run.stderr))
            .to_string()
    };
    let out = line("hello on stdout");
    assert!(
        out.contains("INFO") && out.contains("rogue_connector") && out.contains("stdout"),
        "{out}"
    );
    assert!(out.contains("[redacted]"), "settings are scrubbed: {out}");
    let err = line("hello on stderr");
    assert!(
        err.contains("WARN") && err.contains("rogue_connector") && err.contains("stderr"),
        "{err}"
    );
    // A last line without its newline still reaches the log.
    assert!(line("a last line without a newline").contains("rogue_connector"));
    assert!(!m.run.stderr.contains("a-setting-kept-out-of-logs"));
    assert!(
        !m.run.stdout.contains("hello"),
        "the host's stdout carries only its own output:\n{}",
        m.run.stdout
    );
}

#[test]
fn exit_is_a_trap_with_its_own_message() {
    // The fixture calls exit(3); wasi:cli/exit carries only success or
    // failure, so the host sees a failing exit, status 1.
    let m = rogue("exit", &[], &[], b"");
    assert!(
        m.run.error_line().contains("called exit(1)"),
        "{}",
        m.run.stderr
    );
}
