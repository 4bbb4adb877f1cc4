//! Runs the real `connector-host` binary against a simulator on loopback.
//! `make test` builds the host (debug) and the component (release) first.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

pub mod proxy;
pub mod tls;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use ironclad_sim::{SimConfig, Simulator, TenantSpec};

/// `target/` of this workspace, found from the test binary itself
/// (`target/debug/deps/e2e-…`), so a custom CARGO_TARGET_DIR works too.
pub fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    exe.ancestors()
        .nth(3)
        .expect("target dir above target/debug/deps")
        .to_path_buf()
}

/// The workspace root (this crate is `tests/`).
fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

/// The newest modification time of the files under `dirs` (in the workspace).
fn newest_source(dirs: &[&str]) -> std::time::SystemTime {
    fn walk(p: &Path, newest: &mut std::time::SystemTime) {
        let Ok(meta) = std::fs::metadata(p) else {
            return;
        };
        if meta.is_dir() {
            for e in std::fs::read_dir(p).into_iter().flatten().flatten() {
                walk(&e.path(), newest);
            }
        } else if let Ok(m) = meta.modified() {
            *newest = (*newest).max(m);
        }
    }
    let mut newest = std::time::SystemTime::UNIX_EPOCH;
    for d in dirs {
        walk(&workspace().join(d), &mut newest);
    }
    newest
}

/// Fails, naming what to build, when `artifact` is missing or older than
/// any of its sources: a test never runs a stale binary or component.
#[track_caller]
fn fresh(artifact: PathBuf, sources: &[&str], build: &str) -> PathBuf {
    let built = std::fs::metadata(&artifact)
        .and_then(|m| m.modified())
        .unwrap_or_else(|_| panic!("{} is missing: {build}", artifact.display()));
    assert!(
        built >= newest_source(sources),
        "{} is older than its sources: {build}",
        artifact.display()
    );
    artifact
}

pub fn host_bin() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let profile_dir = exe.parent().unwrap().parent().unwrap();
    fresh(
        profile_dir.join("connector-host"),
        &[
            "host/src",
            "crates/connector-runtime/src",
            "crates/sync-store/src",
            "wit",
        ],
        "run `make test` (or `cargo build -p connector-host`) before these tests",
    )
}

pub fn ironclad_component() -> PathBuf {
    fresh(
        target_dir().join("wasm32-wasip2/release/ironclad_connector.wasm"),
        &["connector/src", "wit/v0.2.0/connector.wit"],
        "run `make component` (make test does) before these tests",
    )
}

pub fn fixture_component(name: &str) -> PathBuf {
    let dir = match name {
        "rogue_connector" => "tests/fixtures/rogue",
        "not_a_connector" => "tests/fixtures/not-a-connector",
        "future_connector" => "tests/fixtures/future-connector",
        _ => "tests/fixtures",
    };
    fresh(
        target_dir().join(format!("wasm32-wasip2/release/{name}.wasm")),
        &[dir],
        "run `make fixtures` (make test does) before these tests",
    )
}

pub fn sim(users: usize, groups: usize, memberships: usize) -> Simulator {
    Simulator::start(SimConfig {
        tenant: TenantSpec {
            users,
            groups,
            memberships,
            seed: 7,
        },
        ..SimConfig::default()
    })
    .expect("simulator starts")
}

pub struct Run {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn ok(&self) -> bool {
        self.code == Some(0)
    }

    #[track_caller]
    pub fn assert_ok(&self) -> &Self {
        assert!(
            self.ok(),
            "host failed ({:?})\nstdout:\n{}\nstderr:\n{}",
            self.code,
            self.stdout,
            self.stderr
        );
        self
    }

    /// The error line the host printed (the last line of stderr).
    pub fn error_line(&self) -> String {
        self.stderr
            .lines()
            .rev()
            .find(|l| l.starts_with("error:"))
            .unwrap_or_else(|| panic!("no error line in stderr:\n{}", self.stderr))
            .to_string()
    }
}

/// A host invocation with the simulator's credentials in the `BATON_*`
/// variables, as a deployment would set them. The process environment is
/// cleared so nothing from the developer's shell leaks in.
pub struct Host {
    cmd: Command,
    component: Option<PathBuf>,
    env_prefix: Option<String>,
}

impl Host {
    pub fn new() -> Host {
        let mut cmd = Command::new(host_bin());
        cmd.env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("RUST_BACKTRACE", "0")
            .args(["--retry-base-ms", "20"]);
        // The component is given by path, so the operator binds the
        // environment to it, as a deployment of a component by path would.
        Host {
            cmd,
            component: Some(ironclad_component()),
            env_prefix: Some("BATON_".into()),
        }
    }

    pub fn for_sim(sim: &Simulator) -> Host {
        let mut h = Host::new();
        h.cmd
            .env("BATON_IC_CLIENT_ID", sim.client_id())
            .env("BATON_IC_CLIENT_SECRET", sim.client_secret())
            .env("BATON_AS_USER_EMAIL", sim.admin_email())
            .env("BATON_BASE_URL", sim.base_url());
        h
    }

    pub fn env(mut self, k: &str, v: &str) -> Host {
        self.cmd.env(k, v);
        self
    }

    pub fn env_remove(mut self, k: &str) -> Host {
        self.cmd.env_remove(k);
        self
    }

    /// Runs the host in `dir` (where default output names land).
    pub fn current_dir(mut self, dir: &Path) -> Host {
        self.cmd.current_dir(dir);
        self
    }

    pub fn component(mut self, path: &Path) -> Host {
        self.component = Some(path.to_path_buf());
        self
    }

    /// No `--component`: the built-in Ironclad component beside the host.
    pub fn built_in_component(mut self) -> Host {
        self.component = None;
        self
    }

    /// `--env-prefix PREFIX`, or none (`None`).
    pub fn env_prefix(mut self, prefix: Option<&str>) -> Host {
        self.env_prefix = prefix.map(String::from);
        self
    }

    pub fn run(mut self, args: &[&str]) -> Run {
        let Output {
            status,
            stdout,
            stderr,
        } = self
            .cmd
            .args(
                self.component
                    .iter()
                    .flat_map(|c| [std::ffi::OsStr::new("--component"), c.as_os_str()]),
            )
            .args(
                self.env_prefix
                    .iter()
                    .flat_map(|p| ["--env-prefix", p.as_str()]),
            )
            .args(args)
            .output()
            .expect("run connector-host");
        Run {
            code: status.code(),
            stdout: String::from_utf8_lossy(&stdout).into_owned(),
            stderr: String::from_utf8_lossy(&stderr).into_owned(),
        }
    }
}

pub fn read_json(path: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(path).expect("read output")).expect("valid JSON output")
}

/// A failed or interrupted run left `file` as it was and no temp file beside
/// it (the directory holds that one file).
#[track_caller]
pub fn assert_previous_kept(dir: &Path, file: &Path, previous: &str) {
    assert_eq!(
        std::fs::read_to_string(file).unwrap(),
        previous,
        "the previous output survives"
    );
    assert_eq!(
        std::fs::read_dir(dir).unwrap().count(),
        1,
        "no temp file left"
    );
}

/// Every membership of the simulator's tenant as a baton grant id.
pub fn tenant_grant_ids(sim: &Simulator) -> std::collections::BTreeSet<String> {
    sim.tenant()
        .groups
        .iter()
        .flat_map(|g| {
            g.members
                .iter()
                .map(move |u| format!("group:{}:member:user:{u}", g.id))
        })
        .collect()
}

/// Reaps `pid` and answers its exit code and its own peak RSS in KiB
/// (`ru_maxrss` of this one child, not of every child the tests ran).
pub fn wait4(pid: u32) -> (Option<i32>, u64) {
    let mut status = 0;
    // SAFETY: a zeroed rusage is a valid value for wait4 to fill in.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: pid is our own unreaped child; both pointers are valid.
    let r = unsafe { libc::wait4(pid as libc::pid_t, &mut status, 0, &mut usage) };
    assert_eq!(r, pid as libc::pid_t, "wait4 failed");
    let code = libc::WIFEXITED(status).then(|| libc::WEXITSTATUS(status));
    (code, usage.ru_maxrss as u64)
}

/// A raw command's environment as a deployment sets it: nothing from the
/// developer's shell but PATH, the simulator's credentials in `BATON_*`,
/// bound to the component given by path.
pub fn baton_env<'a>(cmd: &'a mut Command, sim: &Simulator) -> &'a mut Command {
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("CONNECTOR_ENV_PREFIX", "BATON_")
        .env("BATON_IC_CLIENT_ID", sim.client_id())
        .env("BATON_IC_CLIENT_SECRET", sim.client_secret())
        .env("BATON_AS_USER_EMAIL", sim.admin_email())
        .env("BATON_BASE_URL", sim.base_url())
}

// The child is reaped by `wait4` (for its rusage), which clippy cannot see.
#[allow(clippy::zombie_processes)]
/// Runs `cmd` with `stdin` fed to it (a host that never reads it must not
/// block the test on a full pipe) and stdout and stderr collected; answers
/// how it ended and its own peak RSS in MiB.
pub fn run_measured(cmd: &mut Command, stdin: &[u8]) -> (Run, u64) {
    use std::io::{Read, Write};
    use std::process::Stdio;
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    let data = stdin.to_vec();
    let input = std::thread::spawn(move || {
        let _ = input.write_all(&data);
    });
    let drain = |mut r: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut s = String::new();
            r.read_to_string(&mut s).unwrap();
            s
        })
    };
    let stdout = drain(Box::new(child.stdout.take().unwrap()));
    let stderr = drain(Box::new(child.stderr.take().unwrap()));
    let (code, peak_rss_kib) = wait4(child.id());
    drop(input);
    let run = Run {
        code,
        stdout: stdout.join().unwrap(),
        stderr: stderr.join().unwrap(),
    };
    (run, peak_rss_kib / 1024)
}
