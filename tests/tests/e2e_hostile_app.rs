//! A hostile or careless application, through the real host and the real
//! Ironclad component: one that quotes request bodies (a generated password
//! among them) back in its errors, and one that never stops paging.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{sim, Host};
use ironclad_sim::Faults;

/// Every run of 8 characters of `secret`.
fn runs(secret: &str) -> Vec<String> {
    let chars: Vec<char> = secret.chars().collect();
    chars
        .windows(8.min(chars.len()))
        .map(|w| w.iter().collect())
        .collect()
}

#[test]
fn a_password_echoed_in_an_error_is_never_printed() {
    let sim = sim(5, 1, 2);
    sim.set_faults(Faults {
        echo_body_in_errors: true,
        ..Faults::default()
    });
    let dir = tempfile::tempdir().unwrap();
    for i in 0..12 {
        let cred = dir.path().join(format!("cred-{i}.json"));
        let email = format!("echo.{i}@example-tenant.test");
        let run = Host::for_sim(&sim).run(&[
            "--provisioning",
            "--log-level",
            "debug",
            "create-account",
            "--email",
            &email,
            "--given-name",
            "Echo",
            "--family-name",
            "Test",
            "--credentials-out",
            cred.to_str().unwrap(),
        ]);
        assert!(!run.ok());
        let line = run.error_line();
        assert!(line.contains("invalid request"), "{}", run.stderr);
        assert!(
            line.contains("redacted"),
            "the password's place is marked: {line}"
        );
        assert!(!cred.exists(), "no credential for an account not created");
        let body: serde_json::Value =
            serde_json::from_str(sim.echoed_bodies().last().unwrap()).unwrap();
        let password = body["password"].as_str().expect("a generated password");
        let shown = format!("{}{}", run.stdout, run.stderr);
        for run8 in runs(password) {
            assert!(
                !shown.contains(&run8),
                "8 characters of the password {password:?} were printed:\n{shown}"
            );
        }
    }
}

#[test]
fn an_application_that_never_stops_paging_is_stopped() {
    let sim = sim(2500, 10, 100);
    sim.set_faults(Faults {
        endless_pages: true,
        ..Faults::default()
    });
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("s.c1z");
    let run = Host::for_sim(&sim).run(&["sync", "-f", out.to_str().unwrap()]);
    let line = run.error_line();
    assert!(
        line.contains("Ironclad announced 2500 users but kept sending full pages past"),
        "{line}"
    );
    assert!(!out.exists(), "nothing written");
    // About 2500 + 10,000 entries, pages of 1000: the connector stopped
    // it, not a host cap.
    assert!(sim.total_requests() < 30, "{}", sim.total_requests());
}
