//! A c1z read by the host is untrusted input, and what the host unpacks is
//! private and does not outlive it. Files are crafted here from a real
//! sync's c1z (a view, a trigger) or from scratch (zstd frames that decode
//! to far more than their size), then given to the real binary with its
//! temp directory pointed at a directory of the test's own.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::io::Write as _;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{host_bin, sim, Host, Run};

const MAGIC: &[u8] = b"C1ZF\0";

/// A real sync's c1z.
fn good_c1z(dir: &Path) -> PathBuf {
    let sim = sim(20, 3, 30);
    let file = dir.join("good.c1z");
    Host::for_sim(&sim)
        .run(&["sync", "-f", file.to_str().unwrap()])
        .assert_ok();
    file
}

/// `c1z` with `sql` run on its database, packed again as `name`.
fn tampered(c1z: &Path, dir: &Path, name: &str, sql: &str) -> PathBuf {
    let bytes = std::fs::read(c1z).unwrap();
    assert_eq!(&bytes[..5], MAGIC);
    let db_path = dir.join(format!("{name}.db"));
    std::fs::write(&db_path, zstd::stream::decode_all(&bytes[5..]).unwrap()).unwrap();
    rusqlite::Connection::open(&db_path)
        .unwrap()
        .execute_batch(sql)
        .unwrap();
    let mut out = MAGIC.to_vec();
    out.extend(zstd::stream::encode_all(&std::fs::read(&db_path).unwrap()[..], 3).unwrap());
    let path = dir.join(format!("{name}.c1z"));
    std::fs::write(&path, out).unwrap();
    path
}

/// A c1z whose frame decodes to `gib` GiB of zeros, saying so in its
/// header or not: a few hundred KB on disk.
fn bomb(dir: &Path, gib: u64, declared: bool) -> PathBuf {
    let path = dir.join(format!("bomb-{gib}-{declared}.c1z"));
    let mut file = std::fs::File::create(&path).unwrap();
    file.write_all(MAGIC).unwrap();
    let mut enc = zstd::stream::Encoder::new(file, 1).unwrap();
    if declared {
        enc.include_contentsize(true).unwrap();
        enc.set_pledged_src_size(Some(gib << 30)).unwrap();
    }
    let zeros = vec![0u8; 1 << 20];
    for _ in 0..(gib << 10) {
        enc.write_all(&zeros).unwrap();
    }
    enc.finish().unwrap();
    path
}

/// Runs the host with `TMPDIR=tmp`, killing it if it runs past a minute
/// (a hang is the failure some of these files used to cause).
fn host(tmp: &Path, args: &[&str]) -> Run {
    let mut child = Command::new(host_bin())
        .env_clear()
        .env("TMPDIR", tmp)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if started.elapsed() > Duration::from_secs(60) {
            let _ = child.kill();
            panic!("the host hung on {args:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    Run {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn entries(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect()
}

#[test]
fn a_recursive_view_is_refused_not_run() {
    let dir = tempfile::tempdir().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let bad = tampered(
        &good_c1z(dir.path()),
        dir.path(),
        "view",
        "CREATE VIEW forever AS WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n) SELECT i FROM n;",
    );
    let run = host(
        tmp.path(),
        &["inspect", "-f", bad.to_str().unwrap(), "syncs"],
    );
    let line = run.error_line();
    assert!(
        line.contains("is not a c1z this host wrote or can trust") && line.contains("forever"),
        "{line}"
    );
    assert!(entries(tmp.path()).is_empty(), "nothing left unpacked");
}

#[test]
fn a_trigger_in_an_existing_target_stops_the_sync_and_the_file_stays() {
    let dir = tempfile::tempdir().unwrap();
    let bad = tampered(
        &good_c1z(dir.path()),
        dir.path(),
        "trigger",
        "CREATE TRIGGER keep AFTER INSERT ON v1_resources BEGIN DELETE FROM v1_grants; END;",
    );
    let before = std::fs::read(&bad).unwrap();
    let sim = sim(5, 1, 2);
    let run = Host::for_sim(&sim).run(&["sync", "-f", bad.to_str().unwrap()]);
    let line = run.error_line();
    assert!(line.contains("trigger") && line.contains("keep"), "{line}");
    assert_eq!(
        std::fs::read(&bad).unwrap(),
        before,
        "the file is untouched"
    );
}

/// A 2 GiB frame under a 1 GiB cap: refused from its header when it
/// declares its size, stopped while unpacking when it hides it; either way
/// one line naming the cap, and nothing left behind.
#[test]
fn a_frame_decoding_past_the_cap_is_refused_and_leaves_nothing() {
    for declared in [true, false] {
        let dir = tempfile::tempdir().unwrap();
        let tmp = tempfile::tempdir().unwrap();
        let bomb = bomb(dir.path(), 2, declared);
        assert!(std::fs::metadata(&bomb).unwrap().len() < 1 << 20);
        let file = bomb.to_str().unwrap();
        let run = host(
            tmp.path(),
            &["--max-c1z-gb", "1", "inspect", "-f", file, "syncs"],
        );
        let line = run.error_line();
        assert!(
            line.contains("1 GiB") && line.contains("--max-c1z-gb"),
            "declared {declared}: {line}"
        );
        assert!(
            entries(tmp.path()).is_empty(),
            "declared {declared}: nothing left"
        );
    }
}

#[test]
fn inspect_unpacks_privately_and_stops_on_sigterm_removing_it() {
    let dir = tempfile::tempdir().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    // Unpacking takes seconds: time to look at it and to stop it.
    let bomb = bomb(dir.path(), 4, false);
    let child = Command::new(host_bin())
        .env_clear()
        .env("TMPDIR", tmp.path())
        .args(["inspect", "-f", bomb.to_str().unwrap(), "syncs"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Wait for the unpacked copy to appear and grow.
    let started = Instant::now();
    let copy = loop {
        let found = walk(tmp.path())
            .into_iter()
            .find(|p| p.is_file() && p.metadata().map(|m| m.len() > 0).unwrap_or(false));
        if let Some(f) = found {
            break f;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "nothing unpacked"
        );
        std::thread::sleep(Duration::from_millis(5));
    };
    for path in walk(tmp.path()) {
        let mode = path.metadata().unwrap().permissions().mode() & 0o777;
        let want = if path.is_dir() { 0o700 } else { 0o600 };
        assert_eq!(mode, want, "{} is {mode:o}", path.display());
    }
    assert!(copy.starts_with(tmp.path()));
    // SAFETY: kill on our own child's pid.
    unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(143), "{stderr}");
    assert!(stderr.contains("interrupted"), "{stderr}");
    assert!(
        entries(tmp.path()).is_empty(),
        "what was unpacked is removed"
    );
}

/// Every path under `dir`, depth first.
fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.push(p.clone());
                out.extend(walk(&p));
            } else {
                out.push(p);
            }
        }
    }
    out
}
