//! `connector-host serve` through the real binary: the real component in
//! the real host, syncing the simulator on loopback, and its HTTP API
//! asked over real HTTP.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{fixture_component, host_bin, ironclad_component, sim, wait4};
use ironclad_sim::{Faults, Simulator};
use serde_json::Value;

const TOKEN: &str = "a-test-token-long-enough-0123456789";

/// A running `serve` process, its stderr collected as it comes.
struct Serve {
    child: Child,
    addr: String,
    log: Arc<Mutex<String>>,
    /// Reaped by `stop`: nothing left to kill.
    reaped: bool,
}

impl Serve {
    /// Starts `serve` with `args` (after the subcommand) and `env`, and
    /// waits until it listens.
    /// The Ironclad component is given by path, as in the other tests.
    fn start(args: &[&str], env: &[(&str, String)]) -> Serve {
        let mut cmd = Command::new(host_bin());
        cmd.env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("RUST_BACKTRACE", "0")
            .args(["--retry-base-ms", "20", "--no-cache", "--component"])
            .arg(ironclad_component())
            .arg("serve")
            .args(["--listen", "127.0.0.1:0"])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("start connector-host serve");
        let stderr = child.stderr.take().unwrap();
        let log = Arc::new(Mutex::new(String::new()));
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let mut l = sink.lock().unwrap();
                l.push_str(&line);
                l.push('\n');
            }
        });
        let started = Instant::now();
        let addr = loop {
            let text = log.lock().unwrap().clone();
            if let Some(rest) = text.split("serving on http://").nth(1) {
                break rest.split_whitespace().next().unwrap().to_string();
            }
            if let Ok(Some(status)) = child.try_wait() {
                panic!("serve exited ({status}) before listening:\n{text}");
            }
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "serve never listened:\n{text}"
            );
            std::thread::sleep(Duration::from_millis(20));
        };
        let serve = Serve {
            child,
            addr,
            log,
            reaped: false,
        };
        // Ready once the components are loaded and the tenants read.
        while serve.get("/readyz", None).0 != 200 {
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "serve never got ready:\n{}",
                serve.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        serve
    }

    /// [`Serve::start`] with DIR/data as the data directory and the test
    /// token (written to DIR/token) turning the API on.
    fn in_dir(dir: &Path, args: &[&str], env: &[(&str, String)]) -> Serve {
        let token = token_file(dir);
        let data = dir.join("data");
        let mut all = vec![
            "--data-dir",
            data.to_str().unwrap(),
            "--api-token-file",
            token.to_str().unwrap(),
        ];
        all.extend_from_slice(args);
        Serve::start(&all, env)
    }

    fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    fn get(&self, path: &str, token: Option<&str>) -> (u16, Vec<u8>) {
        http(&self.addr, "GET", path, token, "")
    }

    fn post(&self, path: &str, token: Option<&str>) -> (u16, Vec<u8>) {
        http(&self.addr, "POST", path, token, "")
    }

    /// POSTs a JSON body with the token; the status and the JSON answer.
    fn post_json(&self, path: &str, body: &Value) -> (u16, Value) {
        let (status, raw) = http(&self.addr, "POST", path, Some(TOKEN), &body.to_string());
        (status, json(&raw))
    }

    fn tenants(&self) -> Vec<Value> {
        let (status, body) = self.get("/v1/tenants", Some(TOKEN));
        assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
        serde_json::from_slice::<Value>(&body)
            .unwrap()
            .as_array()
            .unwrap()
            .clone()
    }

    fn tenant(&self, id: &str) -> Value {
        self.tenants()
            .into_iter()
            .find(|t| t["id"] == id)
            .unwrap_or_else(|| panic!("no tenant {id}"))
    }

    /// Waits until `pred` holds for the tenant's record.
    fn wait_for(&self, id: &str, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
        let started = Instant::now();
        loop {
            let t = self.tenant(id);
            if pred(&t) {
                return t;
            }
            assert!(
                started.elapsed() < Duration::from_secs(90),
                "tenant {id} never {what}: {t}\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn signal(&self, sig: i32) {
        let pid = i32::try_from(self.child.id()).unwrap();
        // SAFETY: kill(2) on our own child's pid.
        assert_eq!(unsafe { libc::kill(pid, sig) }, 0);
    }

    /// Sends SIGTERM and waits for the exit: its code and how long it took.
    fn stop(mut self) -> (Option<i32>, Duration, String) {
        let started = Instant::now();
        self.signal(libc::SIGTERM);
        let (code, _) = wait4(self.child.id());
        self.reaped = true;
        let took = started.elapsed();
        // Let the reader thread take the last lines.
        std::thread::sleep(Duration::from_millis(100));
        (code, took, self.log())
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        if !self.reaped {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// One HTTP/1.1 request on a fresh connection; the status and the body.
fn http(addr: &str, method: &str, path: &str, token: Option<&str>, body: &str) -> (u16, Vec<u8>) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let auth = token.map_or(String::new(), |t| format!("Authorization: Bearer {t}\r\n"));
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n{auth}Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    let head = String::from_utf8_lossy(&raw[..split]).to_string();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    let mut body = raw[split + 4..].to_vec();
    if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        body = dechunk(&body);
    }
    (status, body)
}

fn dechunk(mut raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let eol = raw.windows(2).position(|w| w == b"\r\n").unwrap();
        let size =
            usize::from_str_radix(std::str::from_utf8(&raw[..eol]).unwrap().trim(), 16).unwrap();
        if size == 0 {
            return out;
        }
        out.extend_from_slice(&raw[eol + 2..eol + 2 + size]);
        raw = &raw[eol + 2 + size + 2..];
    }
}

fn json(body: &[u8]) -> Value {
    serde_json::from_slice(body)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(body)))
}

/// The simulator's credentials in `BATON_*`, as the Kubernetes Secret sets
/// them.
fn baton(sim: &Simulator) -> Vec<(&'static str, String)> {
    vec![
        ("CONNECTOR_ENV_PREFIX", "BATON_".into()),
        ("BATON_IC_CLIENT_ID", sim.client_id()),
        ("BATON_IC_CLIENT_SECRET", sim.client_secret()),
        ("BATON_AS_USER_EMAIL", sim.admin_email()),
        ("BATON_BASE_URL", sim.base_url()),
    ]
}

fn token_file(dir: &Path) -> PathBuf {
    let p = dir.join("token");
    std::fs::write(&p, format!("{TOKEN}\n")).unwrap();
    p
}

fn metric(text: &str, line_start: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(line_start))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

#[test]
fn serve_with_the_environment_alone_syncs_and_serves_health_metrics_and_the_file() {
    let sim = sim(300, 12, 400);
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let serve = Serve::in_dir(dir.path(), &[], &baton(&sim));
    assert_eq!(serve.get("/healthz", None).0, 200);

    // It syncs at start, without being asked.
    let t = serve.wait_for("default", "synced", |t| t["last"]["outcome"] == "success");
    assert_eq!(serve.get("/readyz", None).0, 200);
    let last = &t["last"];
    assert_eq!(last["counts"]["resources"]["user"], 300);
    let grants = common::tenant_grant_ids(&sim).len() as u64;
    assert_eq!(last["counts"]["grants"].as_u64(), Some(grants));
    assert!(last["sync_id"].as_str().is_some_and(|s| !s.is_empty()));

    // Metrics name the tenant and count what the sync found.
    let (status, body) = serve.get("/metrics", None);
    assert_eq!(status, 200);
    let text = String::from_utf8(body).unwrap();
    assert_eq!(
        metric(
            &text,
            "connector_syncs_total{tenant=\"default\",outcome=\"success\"}"
        ),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        metric(
            &text,
            "connector_resources{tenant=\"default\",resource_type=\"user\"}"
        ),
        Some(300.0)
    );
    assert_eq!(
        metric(&text, "connector_grants{tenant=\"default\"}"),
        Some(grants as f64)
    );
    assert!(metric(&text, "connector_http_requests_total{tenant=\"default\"}").unwrap() >= 2.0);
    assert!(
        metric(
            &text,
            "connector_last_success_timestamp_seconds{tenant=\"default\"}"
        )
        .unwrap()
            > 1e9
    );
    assert!(
        text.contains("connector_sync_duration_seconds_count 1"),
        "{text}"
    );
    assert!(!text.contains(&sim.client_secret()));

    // The latest file, byte for byte the one on disk, and a c1z the host
    // reads back.
    let (status, file) = serve.get("/v1/tenants/default/syncs/latest", Some(TOKEN));
    assert_eq!(status, 200);
    assert_eq!(file, std::fs::read(data.join("default/sync.c1z")).unwrap());
    let got = dir.path().join("got.c1z");
    std::fs::write(&got, &file).unwrap();
    let run = common::Host::new().run(&[
        "inspect",
        "-f",
        got.to_str().unwrap(),
        "stats",
        "-o",
        "json",
    ]);
    run.assert_ok();
    assert!(run.stdout.contains(&format!("{grants}")), "{}", run.stdout);

    // /v1 wants the token: none and a wrong one are refused alike.
    for bad in [None, Some("wrong-token-wrong-token-wrong")] {
        let (status, body) = serve.get("/v1/tenants", bad);
        assert_eq!(status, 401);
        assert!(json(&body)["error"].as_str().unwrap().contains("Bearer"));
        assert_eq!(serve.post("/v1/tenants/default/syncs", bad).0, 401);
        assert_eq!(serve.get("/v1/tenants/default/syncs/latest", bad).0, 401);
    }
    assert_eq!(serve.post("/v1/tenants/nobody/syncs", Some(TOKEN)).0, 404);
    assert_eq!(
        serve.get("/v1/tenants/nobody/syncs/latest", Some(TOKEN)).0,
        404
    );
    assert_eq!(serve.get("/nowhere", None).0, 404);

    // A sync on demand: accepted once, refused while it runs.
    sim.set_faults(Faults {
        latency: Duration::from_millis(100),
        ..Faults::default()
    });
    let (status, body) = serve.post("/v1/tenants/default/syncs", Some(TOKEN));
    assert_eq!(status, 202, "{}", String::from_utf8_lossy(&body));
    let job = json(&body)["job"].as_str().unwrap().to_string();
    let (status, body) = serve.post("/v1/tenants/default/syncs", Some(TOKEN));
    assert_eq!(status, 409, "{}", String::from_utf8_lossy(&body));
    assert_eq!(json(&body)["job"], job.as_str());
    let t = serve.wait_for("default", "synced again", |t| {
        t["last"]["job"] == job.as_str()
    });
    assert_eq!(t["last"]["outcome"], "success");
    // The job is 16 hex digits; its times are RFC 3339 UTC, in order.
    assert!(
        job.len() == 16 && job.bytes().all(|b| b.is_ascii_hexdigit()),
        "{job}"
    );
    let at = |k: &str| {
        let text = t["last"][k].as_str().unwrap();
        assert!(text.ends_with('Z') && text.len() == 20, "{k}: {text}");
        text.to_string()
    };
    assert!(at("started_at") <= at("finished_at"), "{t}");
    assert_eq!(t["last"]["counts"]["resources"]["user"], 300, "{t}");

    let (code, took, log) = serve.stop();
    assert_eq!(code, Some(0), "{log}");
    assert!(took < Duration::from_secs(10), "{took:?}");
    assert!(!log.contains(&sim.client_secret()), "{log}");
}

#[test]
fn without_a_token_file_the_api_is_off_and_says_how_to_turn_it_on() {
    let sim = sim(20, 2, 20);
    let dir = tempfile::tempdir().unwrap();
    let serve = Serve::start(
        &["--data-dir", dir.path().join("d").to_str().unwrap()],
        &baton(&sim),
    );
    let (status, body) = serve.get("/v1/tenants", Some(TOKEN));
    assert_eq!(status, 403);
    assert!(json(&body)["error"]
        .as_str()
        .unwrap()
        .contains("--api-token-file"));
    assert_eq!(serve.get("/healthz", None).0, 200);
}

#[test]
fn serve_refuses_to_start_without_credentials_and_says_which() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(host_bin())
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .args(["--component", ironclad_component().to_str().unwrap()])
        .args(["--env-prefix", "BATON_", "serve", "--listen", "127.0.0.1:0"])
        .args(["--data-dir", dir.path().to_str().unwrap()])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("BATON_IC_CLIENT_SECRET"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
}

/// One `[[tenant]]` of the simulator: `extra` lines after its id, its
/// settings, and the client secret read from `secret_file`.
fn sim_tenant(sim: &Simulator, id: &str, extra: &str, secret_file: &Path) -> String {
    format!(
        "[[tenant]]\nid = \"{id}\"\n{extra}[tenant.settings]\nic-client-id = \"{}\"\nas-user-email = \"{}\"\nbase-url = \"{}\"\n[tenant.secrets]\nic-client-secret = {{ file = \"{}\" }}\n\n",
        sim.client_id(),
        sim.admin_email(),
        sim.base_url(),
        secret_file.display()
    )
}

/// DIR/tenants.toml with the one tenant `id` of the simulator (`extra`
/// lines after its id), its secret in DIR/client-secret; both paths.
fn one_tenant(sim: &Simulator, dir: &Path, id: &str, extra: &str) -> (PathBuf, PathBuf) {
    let secret = dir.join("client-secret");
    std::fs::write(&secret, sim.client_secret()).unwrap();
    let tenants = dir.join("tenants.toml");
    std::fs::write(&tenants, sim_tenant(sim, id, extra, &secret)).unwrap();
    (tenants, secret)
}

/// A tenants file for the simulator: `good` with its real credentials from
/// files, `wrong` with a wrong secret, and `hostile` running the rogue
/// component that panics when asked for resources.
fn three_tenants(sim: &Simulator, dir: &Path) -> PathBuf {
    let secret = |name: &str, value: &str| {
        let p = dir.join(name);
        std::fs::write(&p, format!("{value}\n")).unwrap();
        p
    };
    let good = secret("good-secret", &sim.client_secret());
    let wrong = secret("wrong-secret", "not-the-secret-0123456789abcdef");
    let every = "interval = \"2s\"\n";
    let tenants = sim_tenant(sim, "good", every, &good)
        + &sim_tenant(sim, "wrong", every, &wrong)
        + &format!(
            "[[tenant]]\nid = \"hostile\"\n{every}component = \"{}\"\n[tenant.settings]\nbehaviour = \"panic\"\n",
            fixture_component("rogue_connector").display()
        );
    let p = dir.join("tenants.toml");
    std::fs::write(&p, tenants).unwrap();
    p
}

#[test]
fn one_tenant_with_a_wrong_secret_and_one_hostile_do_not_disturb_the_good_one() {
    let sim = sim(100, 5, 100);
    let dir = tempfile::tempdir().unwrap();
    let tenants = three_tenants(&sim, dir.path());
    let data = dir.path().join("data");
    let serve = Serve::in_dir(dir.path(), &["--tenants", tenants.to_str().unwrap()], &[]);
    // The good tenant syncs on schedule: a second sync, on its own.
    let first = serve.wait_for("good", "synced", |t| t["last"]["outcome"] == "success")["last"]
        ["job"]
        .clone();
    serve.wait_for("good", "synced on schedule", |t| {
        t["last"]["outcome"] == "success" && t["last"]["job"] != first
    });
    let wrong = serve.wait_for("wrong", "failed", |t| t["last"]["outcome"] == "failure");
    let hostile = serve.wait_for("hostile", "failed", |t| t["last"]["outcome"] == "failure");
    let wrong_line = wrong["last"]["error"].as_str().unwrap();
    assert!(
        wrong_line.contains("credentials") || wrong_line.contains("client"),
        "{wrong_line}"
    );
    let hostile_line = hostile["last"]["error"].as_str().unwrap();
    assert!(hostile_line.contains("crashed"), "{hostile_line}");

    let (_, body) = serve.get("/metrics", None);
    let text = String::from_utf8(body).unwrap();
    assert!(
        metric(
            &text,
            "connector_syncs_total{tenant=\"good\",outcome=\"success\"}"
        )
        .unwrap()
            >= 2.0,
        "{text}"
    );
    assert!(
        metric(
            &text,
            "connector_syncs_total{tenant=\"wrong\",outcome=\"failure\"}"
        )
        .unwrap()
            >= 1.0
    );
    assert!(
        metric(
            &text,
            "connector_syncs_total{tenant=\"hostile\",outcome=\"failure\"}"
        )
        .unwrap()
            >= 1.0
    );
    assert!(data.join("good/sync.c1z").is_file());
    assert!(!data.join("wrong/sync.c1z").exists());

    let (code, _, log) = serve.stop();
    assert_eq!(code, Some(0), "{log}");
    for secret in [
        sim.client_secret(),
        "not-the-secret-0123456789abcdef".into(),
    ] {
        assert!(!log.contains(&secret), "a secret in the log:\n{log}");
        assert!(!text.contains(&secret));
        assert!(!wrong_line.contains(&secret));
    }
    // Each tenant's lines name it.
    assert!(log.contains("tenant=wrong"), "{log}");
}

/// Every tenant's secret is scrubbed from the one log they share: three
/// tenants whose component quotes its own secret in a rate-limit message
/// the host logs at each retry; then one secret is rotated (its file
/// rewritten, read again at the next sync) and the new one is scrubbed too.
#[test]
fn every_tenants_secret_is_scrubbed_from_the_shared_log_and_a_rotated_one_too() {
    let dir = tempfile::tempdir().unwrap();
    let secret = |i: usize, round: usize| format!("t{i}-r{round}-Zq8vN3kTpx92LmW0rYc4");
    let mut tenants = String::new();
    for i in 0..3 {
        let file = dir.path().join(format!("secret-{i}"));
        std::fs::write(&file, secret(i, 0)).unwrap();
        tenants += &format!(
            "[[tenant]]\nid = \"echo-{i}\"\ninterval = \"1s\"\ncomponent = \"{}\"\n[tenant.settings]\nbehaviour = \"echo-log\"\napi-id = \"id-{i}\"\n[tenant.secrets]\napi-secret = {{ file = \"{}\" }}\n\n",
            fixture_component("rogue_connector").display(),
            file.display()
        );
    }
    let file = dir.path().join("tenants.toml");
    std::fs::write(&file, tenants).unwrap();
    let serve = Serve::in_dir(
        dir.path(),
        &["--max-retries", "2", "--tenants", file.to_str().unwrap()],
        &[],
    );
    let failed = |t: &Value| t["last"]["outcome"] == "failure";
    for i in 0..3 {
        serve.wait_for(&format!("echo-{i}"), "failed", failed);
    }
    let before = serve.wait_for("echo-0", "failed", failed)["last"]["job"].clone();
    std::fs::write(dir.path().join("secret-0"), secret(0, 1)).unwrap();
    // A sync that started after the rotation: the one after the next.
    let next = serve.wait_for("echo-0", "synced again", |t| {
        failed(t) && t["last"]["job"] != before
    })["last"]["job"]
        .clone();
    serve.wait_for("echo-0", "synced with the new secret", |t| {
        failed(t) && t["last"]["job"] != before && t["last"]["job"] != next
    });
    let (code, _, log) = serve.stop();
    assert_eq!(code, Some(0), "{log}");
    for s in [secret(0, 0), secret(0, 1), secret(1, 0), secret(2, 0)] {
        for run in s.as_bytes().windows(8) {
            let run = std::str::from_utf8(run).unwrap();
            assert!(!log.contains(run), "{run:?} of a secret in the log:\n{log}");
        }
    }
    for i in 0..3 {
        assert!(
            log.lines()
                .any(|l| l.contains(&format!("tenant=echo-{i}"))
                    && l.contains("slow down, [redacted]")),
            "echo-{i}'s retries are logged, scrubbed:\n{log}"
        );
    }
}

#[test]
fn sigterm_during_a_sync_exits_0_within_the_grace_period_and_keeps_the_previous_file() {
    let sim = sim(2000, 20, 2000);
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let serve = Serve::in_dir(dir.path(), &["--shutdown-grace", "1s"], &baton(&sim));
    serve.wait_for("default", "synced", |t| t["last"]["outcome"] == "success");
    let file = data.join("default/sync.c1z");
    let before = std::fs::read(&file).unwrap();

    // A slow sync: 400 ms a request, about 20 requests.
    sim.set_faults(Faults {
        latency: Duration::from_millis(400),
        ..Faults::default()
    });
    assert_eq!(serve.post("/v1/tenants/default/syncs", Some(TOKEN)).0, 202);
    serve.wait_for("default", "ran", |t| t["status"] == "running");
    std::thread::sleep(Duration::from_millis(500));
    let (code, took, log) = serve.stop();
    assert_eq!(code, Some(0), "{log}");
    assert!(took < Duration::from_secs(8), "took {took:?}\n{log}");
    assert!(log.contains("cancelling"), "{log}");
    assert_eq!(
        std::fs::read(&file).unwrap(),
        before,
        "the previous file changed"
    );
    assert!(
        sync_store_partial(&file).exists(),
        "the cancelled sync's progress is kept"
    );
}

fn sync_store_partial(file: &Path) -> PathBuf {
    let name = file.file_name().unwrap().to_string_lossy();
    file.with_file_name(format!(".{name}.partial"))
}

#[test]
fn sighup_with_a_broken_file_keeps_the_tenants_and_a_good_one_is_taken() {
    let sim = sim(30, 3, 30);
    let dir = tempfile::tempdir().unwrap();
    let tenants = three_tenants(&sim, dir.path());
    let serve = Serve::in_dir(dir.path(), &["--tenants", tenants.to_str().unwrap()], &[]);
    assert_eq!(serve.tenants().len(), 3);
    std::fs::write(&tenants, "[[tenant]]\nid = \"Bad Id\"\n").unwrap();
    serve.signal(libc::SIGHUP);
    let started = Instant::now();
    while !serve.log().contains("keeping the tenants as they were") {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "{}",
            serve.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let ids: Vec<Value> = serve.tenants().iter().map(|t| t["id"].clone()).collect();
    assert_eq!(ids, ["good", "hostile", "wrong"]);

    // A good file: one tenant left, one added.
    std::fs::write(
        &tenants,
        format!(
            "[[tenant]]\nid = \"other\"\ncomponent = \"{}\"\n[tenant.settings]\nbehaviour = \"panic\"\n",
            fixture_component("rogue_connector").display()
        ),
    )
    .unwrap();
    serve.signal(libc::SIGHUP);
    let started = Instant::now();
    loop {
        let ids: Vec<Value> = serve.tenants().iter().map(|t| t["id"].clone()).collect();
        if ids == ["other"] {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(20), "{ids:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_shortened_interval_applies_to_the_wait_in_progress() {
    let sim = sim(20, 2, 20);
    let dir = tempfile::tempdir().unwrap();
    let (tenants, secret) = one_tenant(&sim, dir.path(), "slow", "interval = \"1h\"\n");
    let serve = Serve::in_dir(dir.path(), &["--tenants", tenants.to_str().unwrap()], &[]);
    let first = serve.wait_for("slow", "synced", |t| {
        t["status"] == "idle" && t["last"]["outcome"] == "success"
    });
    // An hour cut to two seconds: the next sync comes seconds after the
    // first, not an hour later.
    std::fs::write(
        &tenants,
        sim_tenant(&sim, "slow", "interval = \"2s\"\n", &secret),
    )
    .unwrap();
    serve.signal(libc::SIGHUP);
    let started = Instant::now();
    let second = serve.wait_for("slow", "synced again", |t| {
        t["last"]["job"] != first["last"]["job"] && t["last"]["outcome"] == "success"
    });
    assert!(started.elapsed() < Duration::from_secs(30), "{second}");
    assert_eq!(second["interval_seconds"], 2);
}

#[test]
fn two_shards_over_one_tenants_file_sync_every_tenant_exactly_once() {
    let sim = sim(20, 2, 20);
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("client-secret");
    std::fs::write(&secret, sim.client_secret()).unwrap();
    let all: Vec<String> = (0..8).map(|i| format!("tenant-{i}")).collect();
    let text: String = all
        .iter()
        .map(|t| sim_tenant(&sim, t, "", &secret))
        .collect();
    let tenants = dir.path().join("tenants.toml");
    std::fs::write(&tenants, text).unwrap();
    let data = dir.path().join("data");
    let shard = |s: &str| {
        Serve::in_dir(
            dir.path(),
            &["--tenants", tenants.to_str().unwrap(), "--shard", s],
            &[],
        )
    };
    let (a, b) = (shard("0/2"), shard("1/2"));
    let mut seen = Vec::new();
    for s in [&a, &b] {
        let mine: Vec<String> = s
            .tenants()
            .iter()
            .map(|t| t["id"].as_str().unwrap().to_string())
            .collect();
        assert!(!mine.is_empty() && mine.len() < all.len(), "{mine:?}");
        for t in &mine {
            s.wait_for(t, "synced", |v| v["last"]["outcome"] == "success");
        }
        seen.extend(mine);
    }
    seen.sort();
    assert_eq!(seen, all, "every tenant exactly once");
    for t in &all {
        assert!(data.join(t).join("sync.c1z").is_file(), "{t}");
    }
}

#[test]
fn provisioning_through_the_api_on_and_off() {
    use serde_json::json;
    let sim = sim(40, 3, 30);
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("secret");
    std::fs::write(&secret, sim.client_secret()).unwrap();
    let tenant =
        |id: &str, on: bool| sim_tenant(&sim, id, &format!("provisioning = {on}\n"), &secret);
    let tenants = dir.path().join("tenants.toml");
    std::fs::write(&tenants, tenant("writer", true) + &tenant("reader", false)).unwrap();
    let serve = Serve::in_dir(dir.path(), &["--tenants", tenants.to_str().unwrap()], &[]);
    let t = sim.tenant();
    let group = &t.groups[0];
    let user = t
        .users
        .iter()
        .find(|u| !group.members.contains(&u.id))
        .unwrap();
    let grant = json!({
        "entitlement": format!("group:{}:member", group.id),
        "principal": format!("user:{}", user.id),
    });
    let grant_id = format!("group:{}:member:user:{}", group.id, user.id);

    // Off: refused before anything reaches the application.
    let writes = sim.write_requests();
    let (status, body) = serve.post_json("/v1/tenants/reader/grants", &grant);
    assert_eq!(status, 403, "{body}");
    assert!(body["error"]
        .as_str()
        .unwrap()
        .contains("provisioning = true"));
    assert_eq!(sim.write_requests(), writes);

    // On: granted, then already granted, revoked, then already revoked.
    let (status, body) = serve.post_json("/v1/tenants/writer/grants", &grant);
    assert_eq!(
        (status, &body["outcome"]),
        (200, &json!("granted")),
        "{body}"
    );
    assert_eq!(body["grant"], grant_id.as_str());
    assert!(sim.tenant().groups[0].members.contains(&user.id));
    let (_, body) = serve.post_json("/v1/tenants/writer/grants", &grant);
    assert_eq!(body["outcome"], "already_granted");
    let revoke = json!({ "grant": grant_id });
    let (status, body) = serve.post_json("/v1/tenants/writer/revocations", &revoke);
    assert_eq!(
        (status, &body["outcome"]),
        (200, &json!("revoked")),
        "{body}"
    );
    assert!(!sim.tenant().groups[0].members.contains(&user.id));
    let (_, body) = serve.post_json("/v1/tenants/writer/revocations", &revoke);
    assert_eq!(body["outcome"], "already_revoked");

    // Bad input: one line, the right status.
    let (status, body) =
        serve.post_json("/v1/tenants/writer/grants", &json!({"entitlement": "nope"}));
    assert_eq!(status, 422, "{body}");
    let (status, body) = serve.post_json(
        "/v1/tenants/writer/grants",
        &json!({"entitlement": "group", "principal": "user:x"}),
    );
    assert_eq!(status, 400, "{body}");
    let (status, _) = serve.post_json("/v1/tenants/nobody/grants", &grant);
    assert_eq!(status, 404);

    // An account: its password only ever encrypted to the recipient given.
    let account = |extra: Value| {
        let mut b = json!({
            "email": "new.person@example-tenant.test",
            "given_name": "New",
            "family_name": "Person",
        });
        b.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        b
    };
    let (status, body) = serve.post_json("/v1/tenants/writer/accounts", &account(json!({})));
    assert_eq!(status, 400, "{body}");
    assert!(body["error"].as_str().unwrap().contains("age_recipient"));
    let identity = age::x25519::Identity::generate();
    let (status, body) = serve.post_json(
        "/v1/tenants/writer/accounts",
        &account(json!({"age_recipient": identity.to_public().to_string()})),
    );
    assert_eq!(
        (status, &body["outcome"]),
        (200, &json!("created")),
        "{body}"
    );
    let armored = body["credential_age"].as_str().unwrap();
    let plain = age::decrypt(&identity, armored.as_bytes()).unwrap();
    let vaulted: Value = serde_json::from_slice(&plain).unwrap();
    let password = vaulted["password"].as_str().unwrap();
    assert!(password.len() >= 12);
    assert!(!body.to_string().contains(password));
    let (code, _, log) = serve.stop();
    assert_eq!(code, Some(0));
    assert!(!log.contains(password), "the password in the log");
    assert!(!log.contains(&sim.client_secret()));
}

/// A tenant's jobs draw on one rate budget, which the process keeps
/// between them: a sync started right after another waits for what the
/// first used, and one started after an idle window goes at once.
#[test]
fn a_tenants_syncs_share_its_rate_budget_and_an_idle_window_makes_it_whole() {
    // 5 pages of users a sync, under the tenant's 3 every 4 s.
    let sim = sim(4_500, 2, 20);
    let dir = tempfile::tempdir().unwrap();
    let extra = "interval = \"1h\"\nrate-budgets = [\"users=3/4s\"]\n";
    let (tenants, _) = one_tenant(&sim, dir.path(), "paced", extra);
    let serve = Serve::in_dir(dir.path(), &["--tenants", tenants.to_str().unwrap()], &[]);
    let synced = |after: &Value| {
        let job = after["last"]["job"].clone();
        serve.wait_for("paced", "synced", move |t| {
            t["status"] == "idle" && t["last"]["outcome"] == "success" && t["last"]["job"] != job
        })
    };
    let first = synced(&Value::Null);
    assert_eq!(serve.post("/v1/tenants/paced/syncs", Some(TOKEN)).0, 202);
    let second = synced(&first);
    let users = "GET /scim/v2/Users";
    let times = sim.arrivals(users);
    assert_eq!(times.len(), 10, "{:?}", sim.requests());
    let window = Duration::from_secs(4) - Duration::from_millis(400);
    let most = Simulator::most_in_window(&times, window);
    assert!(most <= 3, "{most} user pages within 4 s over two syncs");

    std::thread::sleep(Duration::from_millis(4_500));
    assert_eq!(serve.post("/v1/tenants/paced/syncs", Some(TOKEN)).0, 202);
    synced(&second);
    // Counted from the third sync's token request, which no user budget
    // covers: what comes before it is the job starting, not the budget.
    let token = sim.arrivals("POST /oauth/token")[2];
    let first_page = sim.arrivals(users)[10].duration_since(token);
    assert!(
        first_page < Duration::from_secs(1),
        "the first page after an idle window waited {first_page:?}"
    );
}
