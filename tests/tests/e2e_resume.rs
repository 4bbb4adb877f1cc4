//! Resumable syncs (issue 13) end to end. A sync of a tenant that churns
//! while it is listed and lies about its size is killed with SIGKILL at 20
//! random moments and resumed each time; its final rows must be exactly
//! those of a sync that was never interrupted. The churn is the simulator's
//! `page_churn`: a page's answer depends on its `startIndex` alone, so both
//! syncs see the same tenant however often pages are asked again (with
//! `churn`, which changes the tenant on every request, no two syncs could be
//! compared). And: an unfinished sync shows in `inspect syncs`, a killed
//! sync leaves the previous file as it was (also when killed while it
//! writes the file, which leaves nothing behind), and a sync starts over,
//! saying why, when asked to, when the unfinished one is too old, or when
//! another component or configuration started it.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::BTreeSet;
use std::os::unix::process::ExitStatusExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{host_bin, ironclad_component, Host, Run};
use ironclad_sim::{Faults, Hostile, SimConfig, Simulator, TenantSpec};
use rand::rngs::StdRng;
use rand::{Rng as _, SeedableRng as _};
use serde_json::Value;

/// The kill test's tenant: seven pages of users (the connector asks for
/// 1,000 a page), two pages of groups, the second holding more members than
/// a page may carry (so the host asks about some groups one by one), and a
/// latency that keeps a debug host busy for a few seconds per sync while
/// letting kills land both in HTTP waits and in page writes.
const USERS: usize = 6_500;
const GROUPS: usize = 1_200;
const MEMBERSHIPS: usize = 20_000;
const LATENCY: Duration = Duration::from_millis(60);

/// What the c1z's latest finished sync holds, as `inspect -o json` shows
/// it: every resource, entitlement and grant (ids and data), each as its
/// JSON text, sorted (a row kept twice shows as one entry too many), and
/// the counts `stats` gives.
#[derive(Debug)]
struct Rows {
    resources: Vec<String>,
    entitlements: Vec<String>,
    grants: Vec<String>,
    counts: Value,
}

fn inspect(file: &Path, what: &str) -> Value {
    let run = Host::new().run(&["inspect", "-f", file.to_str().unwrap(), "-o", "json", what]);
    run.assert_ok();
    serde_json::from_str(&run.stdout).unwrap_or_else(|e| panic!("{e}: {}", run.stdout))
}

fn rows(file: &Path) -> Rows {
    let sorted = |what| {
        let mut v: Vec<String> = inspect(file, what)
            .as_array()
            .unwrap_or_else(|| panic!("inspect {what}: not an array"))
            .iter()
            .map(Value::to_string)
            .collect();
        v.sort();
        v
    };
    let stats = inspect(file, "stats");
    Rows {
        resources: sorted("resources"),
        entitlements: sorted("entitlements"),
        grants: sorted("grants"),
        counts: serde_json::json!({
            "resources": stats["resources"],
            "entitlements": stats["entitlements"],
            "grants": stats["grants"],
        }),
    }
}

/// Row sets of thousands: on a mismatch, say how they differ instead of
/// printing both.
#[track_caller]
fn assert_same_rows(want: &Rows, got: &Rows, what: &str) {
    let tables = [
        ("resources", &want.resources, &got.resources),
        ("entitlements", &want.entitlements, &got.entitlements),
        ("grants", &want.grants, &got.grants),
    ];
    for (table, w, g) in tables {
        if w == g {
            continue;
        }
        let (ws, gs): (BTreeSet<&String>, BTreeSet<&String>) =
            (w.iter().collect(), g.iter().collect());
        let missing: Vec<_> = ws.difference(&gs).take(3).collect();
        let extra: Vec<_> = gs.difference(&ws).take(3).collect();
        panic!(
            "{what}: {table} differ from the uninterrupted sync's: {} rows ({} distinct) against {} ({} distinct); missing e.g. {missing:?}; extra e.g. {extra:?}",
            g.len(),
            gs.len(),
            w.len(),
            ws.len()
        );
    }
    assert_eq!(want.counts, got.counts, "{what}: stats counts");
}

/// The files beside `out` (names), sorted.
fn beside(out: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(out.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// Where the host keeps an unfinished sync to `out`.
fn partial_dir(out: &Path) -> PathBuf {
    let name = out.file_name().unwrap().to_str().unwrap();
    out.with_file_name(format!(".{name}.partial"))
}

/// A `sync -f OUT` running in the background. Its output goes to files in a
/// directory of their own (not beside OUT, where the test checks that
/// nothing is left): a pipe nobody reads until the end could fill and stall
/// the host.
struct Syncing {
    child: Child,
    stdout: PathBuf,
    stderr: PathBuf,
}

/// How a background sync ended.
struct Ended {
    run: Run,
    /// Stopped by our SIGKILL, not ended by itself.
    killed: bool,
}

/// What a background sync runs: the component, extra environment, and
/// arguments after `sync -f OUT`.
struct SyncCmd<'a> {
    component: PathBuf,
    env: Vec<(&'a str, &'a str)>,
    sync_args: Vec<&'a str>,
}

impl Default for SyncCmd<'_> {
    fn default() -> Self {
        SyncCmd {
            component: ironclad_component(),
            env: Vec::new(),
            sync_args: Vec::new(),
        }
    }
}

impl SyncCmd<'_> {
    fn start(&self, sim: &Simulator, out: &Path, logs: &Path) -> Syncing {
        static RUNS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = RUNS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let (stdout, stderr) = (
            logs.join(format!("{n}.stdout")),
            logs.join(format!("{n}.stderr")),
        );
        let mut cmd = Command::new(host_bin());
        common::baton_env(&mut cmd, sim);
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        let child = cmd
            .args(["--retry-base-ms", "20", "--component"])
            .arg(&self.component)
            .args(["sync", "-f"])
            .arg(out)
            .args(&self.sync_args)
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&stdout).unwrap())
            .stderr(std::fs::File::create(&stderr).unwrap())
            .spawn()
            .unwrap();
        Syncing {
            child,
            stdout,
            stderr,
        }
    }
}

impl Syncing {
    /// True once the simulator has seen a request past `before`: the host
    /// is past its start and syncing. False if it ended first.
    fn wait_until_asking(&mut self, sim: &Simulator, before: u64) -> bool {
        let started = Instant::now();
        while sim.total_requests() <= before {
            if self.child.try_wait().unwrap().is_some() {
                return false;
            }
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "the sync never asked the simulator anything"
            );
            std::thread::sleep(Duration::from_millis(2));
        }
        true
    }

    /// Waits until the simulator has answered `n` more user listings than
    /// `before` (the host asks for the next pages while it writes one).
    fn wait_for_user_pages(&mut self, sim: &Simulator, before: u64, n: u64) {
        let started = Instant::now();
        while user_pages(sim) < before + n {
            assert!(
                self.child.try_wait().unwrap().is_none(),
                "the sync ended before it was {n} user pages in"
            );
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "the sync stalled"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Waits until the host has logged a line holding `needle`; false if it
    /// ended first.
    fn wait_for_log(&mut self, needle: &str) -> bool {
        let started = Instant::now();
        loop {
            let err = std::fs::read_to_string(&self.stderr).unwrap_or_default();
            if err.contains(needle) {
                return true;
            }
            if self.child.try_wait().unwrap().is_some() {
                return false;
            }
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "the host never logged {needle:?}"
            );
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    /// SIGKILL (if it is still running), then reap it.
    fn kill(mut self) -> Ended {
        // Kill on an exited but unreaped child is harmless: it ended by
        // itself, and its status says so.
        self.child.kill().unwrap();
        self.reap()
    }

    fn wait(self) -> Ended {
        self.reap()
    }

    fn reap(mut self) -> Ended {
        let status = self.child.wait().unwrap();
        let read = |p: &Path| String::from_utf8_lossy(&std::fs::read(p).unwrap()).into_owned();
        Ended {
            run: Run {
                code: status.code(),
                stdout: read(&self.stdout),
                stderr: read(&self.stderr),
            },
            killed: status.signal() == Some(libc::SIGKILL),
        }
    }
}

/// A test that fails part way leaves no host running.
impl Drop for Syncing {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn user_pages(sim: &Simulator) -> u64 {
    sim.requests()
        .get("GET /scim/v2/Users")
        .copied()
        .unwrap_or(0)
}

fn churning(hostile: Hostile) -> Simulator {
    Simulator::start(SimConfig {
        tenant: TenantSpec {
            users: USERS,
            groups: GROUPS,
            memberships: MEMBERSHIPS,
            seed: 13,
        },
        faults: Faults {
            latency: LATENCY,
            page_churn: true,
            hostile: Some(hostile),
            ..Faults::default()
        },
        ..SimConfig::default()
    })
    .unwrap()
}

/// The seed of the kill moments: `RESUME_SEED` to replay a run, else the
/// clock's. Printed either way.
fn kill_seed() -> u64 {
    let seed = std::env::var("RESUME_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
        });
    eprintln!("kill moments from RESUME_SEED={seed}");
    seed
}

/// Syncs `hostile`'s churning tenant once uninterrupted on one simulator,
/// and on an identical second one kills the sync `kills` times at random
/// moments, resuming each time, then lets it finish: the rows must be the
/// same.
///
/// The kill moments: each run is killed a random time after its first
/// request (before that the host is still starting, not syncing), drawn
/// uniformly from [0, W/2) where W is how long the uninterrupted sync ran
/// past its first request. A run killed that way gets a quarter of the sync
/// further on average, less what it redoes (a new token, the page under way
/// when the last one died), so kills fall early, late and in the final
/// write alike, and now and then a run finishes before its kill (or is
/// killed with its file already in place). That one is no kill: its file is
/// checked against the reference like the last one's, then removed with
/// what is left of its partial directory, and the kills go on from a fresh
/// output, so every kill counted landed in a sync under way and the test
/// still ends after a bounded number of runs. After each kill that left an
/// unfinished sync (`inspect syncs` says so), the next run must continue it.
fn killed_and_resumed_matches_uninterrupted(hostile: Hostile, kills: usize) {
    let (a, b) = (churning(hostile), churning(hostile));
    assert_eq!(
        serde_json::to_string(&a.tenant()).unwrap(),
        serde_json::to_string(&b.tenant()).unwrap(),
        "one seed, one tenant"
    );
    let dir = tempfile::tempdir().unwrap();
    let logs = tempfile::tempdir().unwrap();
    let cmd = SyncCmd::default();

    // The reference, timed: from the start to its first request, and from
    // there to the end.
    let reference = dir.path().join("reference").join("out.c1z");
    std::fs::create_dir(reference.parent().unwrap()).unwrap();
    let spawned = Instant::now();
    let mut sync = cmd.start(&a, &reference, logs.path());
    assert!(
        sync.wait_until_asking(&a, 0),
        "the reference sync asked nothing"
    );
    let asking = Instant::now();
    let ended = sync.wait();
    ended.run.assert_ok();
    let work = asking.elapsed();
    eprintln!(
        "{hostile:?}: the uninterrupted sync started in {:?} and synced for {work:?} ({} requests)",
        asking - spawned,
        a.total_requests()
    );
    let want = rows(&reference);
    assert_eq!(beside(&reference), ["out.c1z"]);

    let out = dir.path().join("resumed").join("out.c1z");
    std::fs::create_dir(out.parent().unwrap()).unwrap();
    let window = work / 2;
    let mut rng = StdRng::seed_from_u64(kill_seed());
    let (mut killed, mut runs, mut resumed, mut finished_early) = (0, 0, 0, 0);
    // Whether the last kill left an unfinished sync (as `inspect syncs`
    // shows it): the next run must then continue it.
    let mut unfinished = false;
    let ended = loop {
        runs += 1;
        assert!(runs <= 3 * kills + 5, "{runs} runs for {killed} kills");
        let before = b.total_requests();
        let mut sync = cmd.start(&b, &out, logs.path());
        let ended = if killed < kills && sync.wait_until_asking(&b, before) {
            let delay = window.mul_f64(rng.random::<f64>());
            std::thread::sleep(delay);
            let ended = sync.kill();
            if ended.killed {
                eprintln!("run {runs}: killed {delay:?} after its first request");
            }
            ended
        } else {
            sync.wait()
        };
        let err = &ended.run.stderr;
        assert!(
            !err.contains("starting the sync over"),
            "run {runs} threw an unfinished sync away:\n{err}"
        );
        match err.lines().find(|l| l.contains("resuming sync")) {
            Some(line) => {
                resumed += 1;
                eprintln!("run {runs}: {line}");
            }
            None => assert!(
                !unfinished,
                "run {runs} did not continue the unfinished sync the last kill left:\n{err}"
            ),
        }
        if ended.killed && !out.exists() {
            killed += 1;
            unfinished = shows_unfinished(&out);
            continue;
        }
        unfinished = false;
        if !ended.killed {
            ended.run.assert_ok();
            if killed == kills {
                break ended;
            }
        }
        // It finished before its kill, or was killed once its file was in
        // place (what is left of its partial directory then is the next
        // run's to clear): no kill, a complete file.
        finished_early += 1;
        eprintln!("run {runs} finished before its kill: checked, removed, going on afresh");
        assert_same_rows(&want, &rows(&out), &format!("run {runs}"));
        if !ended.killed {
            assert_eq!(
                beside(&out),
                ["out.c1z"],
                "run {runs}: only the output is left (a temp file of a sync killed while it wrote the file?)"
            );
        }
        std::fs::remove_file(&out).unwrap();
        let _ = std::fs::remove_dir_all(partial_dir(&out));
    };
    eprintln!(
        "{killed} kills in {runs} runs; {resumed} resumed; {finished_early} finished before their kill"
    );

    ended.run.assert_ok();
    assert!(resumed >= 1, "no run resumed the sync");
    assert_same_rows(&want, &rows(&out), "after the kills");
    assert!(!partial_dir(&out).exists(), "the partial directory is gone");
    assert_eq!(
        beside(&out),
        ["out.c1z"],
        "nothing else is left beside the output (a temp file of a sync killed while it wrote the file?)"
    );
    // Like the reference, the file holds the one sync.
    assert_eq!(
        inspect(&out, "syncs").as_array().unwrap().len(),
        inspect(&reference, "syncs").as_array().unwrap().len(),
        "syncs in the file"
    );
}

/// Whether `inspect syncs` shows an unfinished sync to `out` (it fails
/// when there is neither a file nor an unfinished sync to show).
fn shows_unfinished(out: &Path) -> bool {
    partial_dir(out).exists()
        && Host::new()
            .run(&["inspect", "-f", out.to_str().unwrap(), "syncs"])
            .stdout
            .lines()
            .any(|l| l.contains("unfinished"))
}

#[test]
fn a_sync_killed_20_times_and_resumed_matches_one_never_interrupted() {
    killed_and_resumed_matches_uninterrupted(Hostile::TotalTooHigh, 20);
}

#[test]
fn a_sync_killed_and_resumed_under_a_total_that_lies_low_matches_too() {
    killed_and_resumed_matches_uninterrupted(Hostile::TotalTooLow, 6);
}

// ---------------------------------------------------------------------------
// Continuing or starting over.

/// A tenant of six pages of users, slow enough to kill part way.
fn slow_sim() -> Simulator {
    Simulator::start(SimConfig {
        tenant: TenantSpec {
            users: 6_000,
            groups: 40,
            memberships: 3_000,
            seed: 17,
        },
        faults: Faults {
            latency: Duration::from_millis(150),
            ..Faults::default()
        },
        ..SimConfig::default()
    })
    .unwrap()
}

/// Runs `cmd` and kills it part way, once it has committed a page: the
/// host asks for the next pages while it writes one, so by the sixth user
/// listing (of six) the first two pages and their checkpoints are on their
/// way to disk. Should the kill still beat the commit, the same command runs
/// again (it then finds nothing to continue and says nothing). Answers the
/// first run's stderr; `inspect syncs` then shows the unfinished sync.
fn kill_part_way(cmd: &SyncCmd<'_>, sim: &Simulator, out: &Path, logs: &Path) -> String {
    let mut first = None;
    let mut shown = String::new();
    for _ in 0..3 {
        let before = user_pages(sim);
        let mut sync = cmd.start(sim, out, logs);
        sync.wait_for_user_pages(sim, before, 6);
        let ended = sync.kill();
        assert!(
            ended.killed,
            "the sync ended by itself:\n{}",
            ended.run.stderr
        );
        let stderr = first.get_or_insert(ended.run.stderr).clone();
        let syncs = Host::new().run(&["inspect", "-f", out.to_str().unwrap(), "syncs"]);
        if syncs.ok() && syncs.stdout.lines().any(|l| l.contains("unfinished")) {
            return stderr;
        }
        shown = format!("{}{}", syncs.stdout, syncs.stderr);
    }
    panic!("inspect syncs shows no unfinished sync after three kills part way:\n{shown}");
}

/// The slow tenant's sync, whole: every user and every membership.
fn assert_whole(out: &Path, sim: &Simulator) {
    let stats = inspect(out, "stats");
    assert_eq!(stats["resources"]["user"], 6_000);
    assert_eq!(stats["grants"], sim.tenant().memberships());
}

/// The line saying the sync starts over, which must give `why`.
#[track_caller]
fn assert_starts_over(stderr: &str, why: &str) {
    let line = stderr
        .lines()
        .find(|l| l.contains("starting the sync over:"))
        .unwrap_or_else(|| panic!("no line saying the sync starts over:\n{stderr}"));
    assert!(line.contains(why), "{line}");
    assert!(!stderr.contains("resuming sync"), "{stderr}");
}

/// The Ironclad component with a custom section appended: the same code, a
/// different file (digest), as a rebuild or an upgrade would give.
fn another_build_of_the_component(dir: &Path) -> PathBuf {
    let mut wasm = std::fs::read(ironclad_component()).unwrap();
    let (name, payload) = (b"e2e-resume".as_slice(), b"another build".as_slice());
    // Section id 0 (custom), its size, then the name (its length first).
    wasm.push(0);
    wasm.push(u8::try_from(1 + name.len() + payload.len()).unwrap());
    wasm.push(u8::try_from(name.len()).unwrap());
    wasm.extend_from_slice(name);
    wasm.extend_from_slice(payload);
    let path = dir.join("another-build.wasm");
    std::fs::write(&path, wasm).unwrap();
    path
}

#[test]
fn a_killed_sync_keeps_the_previous_file_shows_as_unfinished_and_is_continued() {
    let sim = slow_sim();
    let dir = tempfile::tempdir().unwrap();
    let logs = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.c1z");
    let cmd = SyncCmd::default();
    cmd.start(&sim, &out, logs.path()).wait().run.assert_ok();
    let previous = std::fs::read(&out).unwrap();
    let previous_syncs = inspect(&out, "syncs");

    let stderr = kill_part_way(&cmd, &sim, &out, logs.path());
    assert!(!stderr.contains("starting the sync over"), "{stderr}");
    assert_eq!(
        std::fs::read(&out).unwrap(),
        previous,
        "the previous file is untouched"
    );
    assert!(partial_dir(&out).is_dir());
    let syncs = inspect(&out, "syncs");
    assert_eq!(syncs[0]["unfinished"], true, "{syncs}");
    assert_eq!(syncs[0]["running"], false, "{syncs}");
    assert_eq!(
        syncs.as_array().unwrap()[1..],
        previous_syncs.as_array().unwrap()[..],
        "the finished syncs are still there"
    );
    // The previous file still reads as it did.
    assert_eq!(inspect(&out, "stats")["resources"]["user"], 6_000);

    let ended = cmd.start(&sim, &out, logs.path()).wait();
    ended.run.assert_ok();
    let line = ended
        .run
        .stderr
        .lines()
        .find(|l| l.contains("resuming sync"))
        .unwrap_or_else(|| panic!("the sync was not continued:\n{}", ended.run.stderr));
    let id = syncs[0]["sync_id"].as_str().unwrap();
    assert!(
        line.contains(&format!("resuming sync {id} from ")),
        "{line}"
    );
    assert!(line.contains("rows kept"), "{line}");
    assert_ne!(std::fs::read(&out).unwrap(), previous);
    assert_eq!(beside(&out), ["out.c1z"], "nothing else is left");
    let syncs = inspect(&out, "syncs");
    assert!(
        syncs
            .as_array()
            .unwrap()
            .iter()
            .all(|s| s["unfinished"] != true),
        "{syncs}"
    );
    assert_eq!(syncs[0]["sync_id"], id, "the continued sync kept its id");
    assert_whole(&out, &sim);
}

#[test]
fn a_sync_starts_over_when_asked_when_too_old_or_under_another_component_or_configuration() {
    let sim = slow_sim();
    let dir = tempfile::tempdir().unwrap();
    let logs = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.c1z");
    let normal = SyncCmd::default();
    kill_part_way(&normal, &sim, &out, logs.path());
    assert!(!out.exists(), "a killed first sync writes no file");

    let fresh = SyncCmd {
        sync_args: vec!["--fresh"],
        ..SyncCmd::default()
    };
    assert_starts_over(&kill_part_way(&fresh, &sim, &out, logs.path()), "--fresh");

    // That sync started just now: past a max age of 1 s, it is too old.
    // Its start is kept in whole seconds, so wait past the second after.
    std::thread::sleep(Duration::from_millis(2_100));
    let young = SyncCmd {
        sync_args: vec!["--resume-max-age", "1s"],
        ..SyncCmd::default()
    };
    assert_starts_over(
        &kill_part_way(&young, &sim, &out, logs.path()),
        "--resume-max-age",
    );

    // Any non-secret setting names another configuration.
    let read_only = SyncCmd {
        env: vec![("BATON_READ_ONLY", "true")],
        ..SyncCmd::default()
    };
    assert_starts_over(
        &kill_part_way(&read_only, &sim, &out, logs.path()),
        "another component or configuration",
    );
    let rebuilt = SyncCmd {
        component: another_build_of_the_component(logs.path()),
        ..SyncCmd::default()
    };
    assert_starts_over(
        &kill_part_way(&rebuilt, &sim, &out, logs.path()),
        "another component or configuration",
    );
    // Back to the first component and configuration: the rebuild's sync is
    // another's too.
    assert_starts_over(
        &kill_part_way(&normal, &sim, &out, logs.path()),
        "another component or configuration",
    );

    let ended = normal.start(&sim, &out, logs.path()).wait();
    ended.run.assert_ok();
    assert!(
        ended.run.stderr.contains("resuming sync"),
        "{}",
        ended.run.stderr
    );
    assert_eq!(beside(&out), ["out.c1z"], "nothing else is left");
    assert_whole(&out, &sim);
}

/// Kills at moments spread over the end of a sync, once its listings are
/// done (the log says so) and the file is being built, packed and renamed
/// into place, the window a random kill seldom hits: the previous file
/// stays as it was until a sync puts a complete one in its place, and then
/// nothing but the file is left beside it.
#[test]
fn kills_while_the_file_is_written_keep_the_previous_file_and_leave_nothing_behind() {
    let sim = slow_sim();
    let dir = tempfile::tempdir().unwrap();
    let logs = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.c1z");
    let cmd = SyncCmd::default();
    cmd.start(&sim, &out, logs.path()).wait().run.assert_ok();
    let previous = std::fs::read(&out).unwrap();

    // Fine steps, so the short moments of the end (the commit that ends
    // the run, the marker, the rename) are each hit now and then.
    const STEP_MS: u64 = 8;
    let mut replaced = false;
    for step in 0..40u64 {
        let mut sync = cmd.start(&sim, &out, logs.path());
        let ended = if sync.wait_for_log("listings done") {
            std::thread::sleep(Duration::from_millis(STEP_MS * step));
            sync.kill()
        } else {
            sync.wait()
        };
        let err = &ended.run.stderr;
        let how = err.lines().find(|l| l.contains("resuming sync"));
        eprintln!(
            "kill {step}: {} ms after the listings; {}",
            STEP_MS * step,
            how.unwrap_or("a new sync")
        );
        // Every kill came after the listings, their pages committed.
        assert!(
            step == 0 || how.is_some(),
            "the sync the last kill left (after its listings) was not continued:\n{err}"
        );
        if std::fs::read(&out).unwrap() != previous {
            // Killed (or ended) once the new file was in place: it must be
            // whole.
            assert_eq!(inspect(&out, "stats")["resources"]["user"], 6_000);
            replaced = true;
            break;
        }
        assert!(
            ended.killed,
            "the sync ended without replacing the file:\n{err}"
        );
    }
    if !replaced {
        cmd.start(&sim, &out, logs.path()).wait().run.assert_ok();
    }
    // The next sync clears whatever a kill left.
    cmd.start(&sim, &out, logs.path()).wait().run.assert_ok();
    assert_eq!(
        beside(&out),
        ["out.c1z"],
        "nothing else is left beside the output"
    );
    assert_eq!(inspect(&out, "stats")["resources"]["user"], 6_000);
}

/// SIGTERM part way: the host stops with 143 and says the progress is
/// kept (the writer commits the last position it was handed before the
/// process exits), and the next sync continues it to a whole file.
#[test]
fn a_sync_stopped_by_sigterm_keeps_its_progress_and_is_continued() {
    let sim = slow_sim();
    let dir = tempfile::tempdir().unwrap();
    let logs = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.c1z");
    let cmd = SyncCmd::default();
    let before = user_pages(&sim);
    let mut sync = cmd.start(&sim, &out, logs.path());
    sync.wait_for_user_pages(&sim, before, 6);
    let status = Command::new("kill")
        .args(["-TERM", &sync.child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let ended = sync.wait();
    assert_eq!(ended.run.code, Some(143), "{}", ended.run.stderr);
    assert!(
        ended.run.stderr.contains("the sync's progress is kept"),
        "{}",
        ended.run.stderr
    );
    assert!(!out.exists(), "no file from a stopped sync");

    let next = cmd.start(&sim, &out, logs.path()).wait();
    next.run.assert_ok();
    assert!(
        next.run.stderr.contains("resuming sync"),
        "{}",
        next.run.stderr
    );
    assert_eq!(beside(&out), ["out.c1z"]);
    assert_whole(&out, &sim);
}
