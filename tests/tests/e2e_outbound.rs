//! The host's own outbound client through the real binary: TLS verified
//! against `--ca-file` and refused without it, `--resolve`, connections
//! kept alive, and CONNECT proxies (the allow-list still first).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::proxy::{Proxy, ProxyOptions};
use common::tls::{resolve_arg, unrelated_ca, TestPki, TEST_HOST};
use common::{fixture_component, read_json, sim, Host};
use ironclad_sim::{SimConfig, Simulator, TenantSpec};

fn tls_sim(pki: &TestPki) -> Simulator {
    Simulator::start(SimConfig {
        tenant: TenantSpec {
            users: 30,
            groups: 3,
            memberships: 30,
            seed: 7,
        },
        tls: Some(pki.identity()),
        public_host: Some(TEST_HOST.to_string()),
        ..SimConfig::default()
    })
    .expect("simulator starts")
}

fn users_in(out: &std::path::Path) -> usize {
    read_json(out)["resources"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["id"]["resource_type"] == "user")
        .count()
}

#[test]
fn tls_is_verified_against_the_ca_file_and_refused_without_it() {
    let dir = tempfile::tempdir().unwrap();
    let pki = TestPki::create(dir.path(), TEST_HOST);
    let sim = tls_sim(&pki);
    assert!(sim.base_url().starts_with("https://ironclad.test:"));
    let resolve = resolve_arg(&sim);
    let ca = pki.ca_pem.to_str().unwrap().to_string();

    let out = dir.path().join("out.json");
    Host::for_sim(&sim)
        .run(&[
            "--resolve",
            &resolve,
            "--ca-file",
            &ca,
            "sync",
            "-f",
            out.to_str().unwrap(),
        ])
        .assert_ok();
    assert_eq!(users_in(&out), 30);
    assert_eq!(sim.tls_failures(), 0);

    // Without the CA, and with an unrelated one: refused, saying why and
    // what to do, and nothing written.
    let other = unrelated_ca(dir.path());
    for extra in [vec![], vec!["--ca-file", other.to_str().unwrap()]] {
        let out = dir.path().join("refused.json");
        let mut args = vec!["--resolve", resolve.as_str(), "--max-retries", "0"];
        args.extend(extra.iter().copied());
        args.extend(["sync", "-f", out.to_str().unwrap()]);
        let run = Host::for_sim(&sim).run(&args);
        assert!(!run.ok(), "{}", run.stderr);
        let line = run.error_line();
        assert!(line.contains("TLS"), "{line}\n{}", run.stderr);
        assert!(
            run.stderr.contains("is not trusted") && run.stderr.contains("--ca-file"),
            "{}",
            run.stderr
        );
        assert!(!out.exists());
    }
    // The simulator counts a failed handshake a moment after the client
    // gives up on it: polled, not read once.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while sim.tls_failures() < 2 && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert!(sim.tls_failures() >= 2, "{}", sim.tls_failures());
}

#[test]
fn connections_are_kept_alive_across_requests() {
    let sim = sim(10_000, 20, 2_000);
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.json");
    Host::for_sim(&sim)
        .run(&["sync", "-f", out.to_str().unwrap()])
        .assert_ok();
    let (requests, connections) = (sim.total_requests(), sim.connections());
    assert!(requests >= 10, "{requests} requests");
    // A page ahead in flight may open a second or third connection; the
    // rest reuse them.
    assert!(
        connections * 2 <= requests,
        "{connections} connections for {requests} requests"
    );
}

#[test]
fn requests_go_through_the_proxy_from_the_environment() {
    let sim = sim(30, 3, 30);
    let proxy = Proxy::start(ProxyOptions::default());
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.json");
    let run = Host::for_sim(&sim).env("HTTP_PROXY", &proxy.url()).run(&[
        "sync",
        "-f",
        out.to_str().unwrap(),
    ]);
    run.assert_ok();
    assert_eq!(users_in(&out), 30);
    let origin = sim.base_url().trim_start_matches("http://").to_string();
    assert!(proxy.tunnels() >= 1);
    assert!(
        proxy.targets().iter().all(|t| *t == origin),
        "{:?}",
        proxy.targets()
    );
    assert!(run.stderr.contains("(HTTP_PROXY)"), "{}", run.stderr);

    // NO_PROXY sends it direct.
    let proxy2 = Proxy::start(ProxyOptions::default());
    Host::for_sim(&sim)
        .env("HTTP_PROXY", &proxy2.url())
        .env("NO_PROXY", "127.0.0.1")
        .run(&["sync", "-f", out.to_str().unwrap()])
        .assert_ok();
    assert_eq!(proxy2.connect_count(), 0);
}

#[test]
fn tls_through_an_authenticating_proxy_keeps_its_password_out_of_the_logs() {
    let dir = tempfile::tempdir().unwrap();
    let pki = TestPki::create(dir.path(), TEST_HOST);
    let sim = tls_sim(&pki);
    let password = "pr0xy-s3cret-do-not-log";
    let proxy = Proxy::start(ProxyOptions {
        credentials: Some(("alice".into(), password.into())),
        // The proxy resolves the origin's name, not the host.
        resolve: vec![(TEST_HOST.into(), "127.0.0.1".parse().unwrap())],
    });
    let ca = pki.ca_pem.to_str().unwrap().to_string();
    let out = dir.path().join("out.json");
    let run = Host::for_sim(&sim).run(&[
        "--proxy",
        &proxy.url_with_credentials("alice", password),
        "--ca-file",
        &ca,
        "--log-level",
        "debug",
        "sync",
        "-f",
        out.to_str().unwrap(),
    ]);
    run.assert_ok();
    assert_eq!(users_in(&out), 30);
    let port = sim.local_addr().port();
    assert!(proxy
        .targets()
        .iter()
        .all(|t| *t == format!("{TEST_HOST}:{port}")));
    assert!(proxy.auth_seen());
    assert!(!run.stderr.contains(password), "{}", run.stderr);
    assert!(!run.stdout.contains(password));

    // Wrong credentials: a clear failure, still without the password.
    let wrong = "wr0ng-pr0xy-pass";
    let run = Host::for_sim(&sim).run(&[
        "--proxy",
        &proxy.url_with_credentials("alice", wrong),
        "--ca-file",
        &ca,
        "--max-retries",
        "0",
        "sync",
        "-f",
        dir.path().join("no.json").to_str().unwrap(),
    ]);
    assert!(!run.ok());
    assert!(run.stderr.contains("the proxy"), "{}", run.stderr);
    assert!(!run.stderr.contains(wrong), "{}", run.stderr);
}

#[test]
fn a_denied_origin_is_denied_before_the_proxy_sees_it() {
    let sim = sim(5, 1, 2);
    let proxy = Proxy::start(ProxyOptions::default());
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.json");
    // The rogue fixture asks for an origin nobody granted.
    let target = format!("{}/oauth/userinfo", sim.base_url());
    let run = Host::new()
        .component(&fixture_component("rogue_connector"))
        .env("HTTP_PROXY", &proxy.url())
        .env("HTTPS_PROXY", &proxy.url())
        .run(&[
            "--call-timeout-secs",
            "5",
            "-c",
            "behaviour=call",
            "-c",
            &format!("target={target}"),
            "sync",
            "-f",
            out.to_str().unwrap(),
        ]);
    assert!(!run.ok());
    assert!(run.stderr.contains("refused"), "{}", run.stderr);
    assert_eq!(proxy.connect_count(), 0, "{:?}", proxy.connects());
    assert_eq!(sim.total_requests(), 0);
}

#[test]
fn unusable_network_settings_stop_the_run_with_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let not_pem = dir.path().join("not.pem");
    std::fs::write(&not_pem, "hello\n").unwrap();
    // (flags, environment, what the error line must name)
    type Case<'a> = (Vec<String>, Vec<(&'a str, &'a str)>, &'a str);
    let cases: Vec<Case> = vec![
        (
            vec!["--resolve".into(), "ironclad.test:443".into()],
            vec![],
            "--resolve",
        ),
        (
            vec!["--ca-file".into(), not_pem.to_str().unwrap().into()],
            vec![],
            "--ca-file",
        ),
        (
            vec!["--proxy".into(), "socks5://bob:hunter22@proxy:1080".into()],
            vec![],
            "--proxy",
        ),
        (
            vec![],
            vec![("HTTPS_PROXY", "https://bob:hunter22@proxy:3128")],
            "HTTPS_PROXY",
        ),
    ];
    for (args, env, named) in cases {
        let mut host = Host::new();
        for (k, v) in env {
            host = host.env(k, v);
        }
        let mut all: Vec<&str> = args.iter().map(String::as_str).collect();
        all.push("metadata");
        let run = host.run(&all);
        assert_eq!(run.code, Some(1), "{}", run.stderr);
        let line = run.error_line();
        assert!(line.contains(named), "{line}");
        assert!(!run.stderr.contains("hunter22"), "{}", run.stderr);
    }
}
