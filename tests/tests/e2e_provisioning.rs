//! Provisioning end to end: the real host, the real component and the
//! simulator, for every command and outcome.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::str::FromStr as _;

use age::secrecy::ExposeSecret as _;
use common::{sim, Host, Run};
use ironclad_sim::{check_password, Faults, SimConfig, Simulator, TenantSpec};

fn provisioning(sim: &Simulator) -> Host {
    Host::for_sim(sim).env("BATON_PROVISIONING", "true")
}

/// A group and a user who is not in it.
fn outsider(sim: &Simulator) -> (String, String) {
    let t = sim.tenant();
    let g = &t.groups[0];
    let u = t
        .users
        .iter()
        .find(|u| !g.members.contains(&u.id))
        .expect("a user outside group 0");
    (g.id.clone(), u.id.clone())
}

fn patches(sim: &Simulator) -> u64 {
    sim.requests()
        .get("PATCH /scim/v2/Groups/{id}")
        .copied()
        .unwrap_or(0)
}

#[test]
fn every_write_command_is_refused_without_the_provisioning_switch() {
    let sim = sim(20, 2, 10);
    let (g, u) = outsider(&sim);
    let ent = format!("group:{g}:member");
    let cases: Vec<Vec<String>> = vec![
        vec![
            "grant".into(),
            "--entitlement".into(),
            ent.clone(),
            "--principal".into(),
            format!("user:{u}"),
        ],
        vec!["revoke".into(), "--grant".into(), format!("{ent}:user:{u}")],
        vec![
            "create-account".into(),
            "--email".into(),
            "new.hire@example-tenant.test".into(),
            "--given-name".into(),
            "New".into(),
            "--family-name".into(),
            "Hire".into(),
            "--no-password".into(),
        ],
        vec![
            "delete-resource".into(),
            "--resource".into(),
            format!("user:{u}"),
        ],
    ];
    for args in cases {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let run = Host::for_sim(&sim).run(&args);
        assert!(!run.ok(), "{args:?} must be refused");
        let line = run.error_line();
        assert!(
            line.contains("--provisioning") && line.contains("BATON_PROVISIONING"),
            "{line}"
        );
    }
    assert_eq!(sim.total_requests(), 0, "nothing reached the simulator");
}

#[test]
fn the_provisioning_flag_works_before_or_after_the_subcommand() {
    let sim = sim(20, 2, 10);
    let (g, u) = outsider(&sim);
    let ent = format!("group:{g}:member");
    let principal = format!("user:{u}");
    let grant = ["grant", "--entitlement", &ent, "--principal", &principal];

    let before = [&["--provisioning"][..], &grant[..]].concat();
    let run = Host::for_sim(&sim).run(&before);
    run.assert_ok();
    assert_eq!(run.stdout.trim(), format!("granted {ent}:{principal}"));

    let after = [&grant[..], &["--provisioning"][..]].concat();
    let run = Host::for_sim(&sim).run(&after);
    run.assert_ok();
    assert_eq!(
        run.stdout.trim(),
        format!("already granted {ent}:{principal}")
    );

    // An explicit value still turns it off, whatever the environment says.
    let off = [&["--provisioning=false"][..], &grant[..]].concat();
    let run = provisioning(&sim).run(&off);
    assert!(
        run.error_line().contains("provisioning is off"),
        "{}",
        run.stderr
    );
}

#[test]
fn grant_then_already_granted() {
    let sim = sim(30, 2, 20);
    let (g, u) = outsider(&sim);
    let ent = format!("group:{g}:member");
    let run = provisioning(&sim).run(&[
        "grant",
        "--entitlement",
        &ent,
        "--principal",
        &format!("user:{u}"),
    ]);
    run.assert_ok();
    assert_eq!(run.stdout.trim(), format!("granted {ent}:user:{u}"));
    assert!(sim.tenant().groups[0].members.contains(&u));
    assert_eq!(patches(&sim), 1);

    let run = provisioning(&sim).run(&[
        "grant",
        "--entitlement",
        &ent,
        "--principal",
        &format!("user:{u}"),
    ]);
    run.assert_ok();
    assert_eq!(run.stdout.trim(), format!("already granted {ent}:user:{u}"));
    assert_eq!(patches(&sim), 1, "already granted: nothing written");
}

/// `wasi:http` streams a component's request body; the host sends each one
/// with its length, as some gateways and WAFs refuse chunked requests.
#[test]
fn every_request_body_goes_out_with_its_length_never_chunked() {
    let sim = sim(30, 2, 20);
    let (g, u) = outsider(&sim);
    let ent = format!("group:{g}:member");
    let principal = format!("user:{u}");
    provisioning(&sim)
        .run(&["grant", "--entitlement", &ent, "--principal", &principal])
        .assert_ok();
    provisioning(&sim)
        .run(&["revoke", "--grant", &format!("{ent}:{principal}")])
        .assert_ok();
    assert!(!sim.tenant().groups[0].members.contains(&u));
    let bodies = sim.requests()["POST /oauth/token"] + patches(&sim);
    assert_eq!(patches(&sim), 2, "{:?}", sim.requests());
    assert_eq!(sim.chunked_requests(), 0, "{:?}", sim.requests());
    assert!(
        sim.sized_requests() >= bodies,
        "{} sized of {bodies} with a body",
        sim.sized_requests()
    );
}

#[test]
fn revoke_then_already_revoked_with_a_204_patch() {
    let sim = sim(30, 2, 20);
    sim.set_faults(Faults {
        patch_returns_204: true,
        ..Faults::default()
    });
    let t = sim.tenant();
    let g = &t.groups[0];
    let u = g.members.first().expect("group 0 has a member").clone();
    let grant = format!("group:{}:member:user:{u}", g.id);
    let run = provisioning(&sim).run(&["revoke", "--grant", &grant]);
    run.assert_ok();
    assert_eq!(run.stdout.trim(), format!("revoked {grant}"));
    assert!(!sim.tenant().groups[0].members.contains(&u));

    let run = provisioning(&sim).run(&["revoke", "--grant", &grant]);
    run.assert_ok();
    assert_eq!(run.stdout.trim(), format!("already revoked {grant}"));
    assert_eq!(patches(&sim), 1);
}

#[test]
fn read_only_refuses_every_write_and_sends_nothing() {
    let sim = sim(30, 2, 20);
    let (g, u) = outsider(&sim);
    let run = provisioning(&sim).env("BATON_READ_ONLY", "true").run(&[
        "grant",
        "--entitlement",
        &format!("group:{g}:member"),
        "--principal",
        &format!("user:{u}"),
    ]);
    assert!(!run.ok());
    assert!(run.error_line().contains("read-only"), "{}", run.stderr);
    assert_eq!(sim.write_requests(), 0);
}

fn create(sim: &Simulator, email: &str, extra: &[&str]) -> Run {
    let mut args = vec![
        "--log-level",
        "debug",
        "create-account",
        "--email",
        email,
        "--given-name",
        "Nora",
        "--family-name",
        "Newhire",
        "--title",
        "Counsel",
        "--department",
        "Legal",
    ];
    args.extend_from_slice(extra);
    provisioning(sim).run(&args)
}

#[test]
fn create_account_vaults_a_password_that_meets_the_rule_and_shows_it_nowhere() {
    let sim = sim(10, 1, 5);
    let dir = tempfile::tempdir().unwrap();
    let cred = dir.path().join("cred.json");
    let email = "nora.newhire@example-tenant.test";
    let run = create(&sim, email, &["--credentials-out", cred.to_str().unwrap()]);
    run.assert_ok();
    let user = sim
        .tenant()
        .users
        .into_iter()
        .find(|u| u.user_name == email)
        .expect("user created");
    assert!(
        run.stdout.contains(&format!("created user:{}", user.id)),
        "{}",
        run.stdout
    );
    assert_eq!(user.title.as_deref(), Some("Counsel"));
    assert_eq!(user.department.as_deref(), Some("Legal"));

    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        assert_eq!(
            std::fs::metadata(&cred).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }
    let vaulted: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&cred).unwrap()).unwrap();
    let password = vaulted["password"].as_str().unwrap();
    assert_eq!(vaulted["login"], email);
    assert_eq!(password.chars().count(), 24);
    assert!(check_password(password), "meets Ironclad's rule");
    assert_eq!(
        user.password.as_deref(),
        Some(password),
        "the vaulted password is the one set"
    );
    assert!(
        !run.stdout.contains(password) && !run.stderr.contains(password),
        "never printed or logged"
    );
    assert!(
        !run.stderr.contains(&sim.client_secret()),
        "the secret is never logged"
    );
}

#[test]
fn create_account_encrypts_to_an_age_recipient() {
    let sim = sim(10, 1, 5);
    let identity = age::x25519::Identity::generate();
    let recipient = identity.to_public().to_string();
    let run = create(
        &sim,
        "age.user@example-tenant.test",
        &["--age-recipient", &recipient],
    );
    run.assert_ok();
    let start = run
        .stdout
        .find("-----BEGIN AGE ENCRYPTED FILE-----")
        .expect("armored ciphertext on stdout");
    let plain = age::decrypt(&identity, &run.stdout.as_bytes()[start..])
        .expect("decrypts with the identity");
    let vaulted: serde_json::Value = serde_json::from_slice(&plain).unwrap();
    let password = vaulted["password"].as_str().unwrap();
    assert!(check_password(password));
    assert!(!run.stdout.contains(password) && !run.stderr.contains(password));
    // A different key cannot read it.
    let other = age::x25519::Identity::from_str(identity.to_string().expose_secret()).unwrap();
    assert_eq!(other.to_public().to_string(), recipient);
    assert!(age::decrypt(
        &age::x25519::Identity::generate(),
        &run.stdout.as_bytes()[start..]
    )
    .is_err());
}

#[test]
fn create_account_refuses_a_random_password_with_nowhere_to_go() {
    let sim = sim(10, 1, 5);
    let run = create(&sim, "lost@example-tenant.test", &[]);
    assert!(!run.ok());
    assert!(
        run.error_line().contains("--credentials-out"),
        "{}",
        run.stderr
    );
    assert_eq!(sim.total_requests(), 0, "refused before sending anything");
}

#[test]
fn create_account_for_an_existing_login_answers_already_exists() {
    let sim = sim(10, 1, 5);
    let existing = sim.tenant().users[3].clone();
    let dir = tempfile::tempdir().unwrap();
    let cred = dir.path().join("cred.json");
    let run = create(
        &sim,
        &existing.user_name,
        &["--credentials-out", cred.to_str().unwrap()],
    );
    run.assert_ok();
    assert_eq!(
        run.stdout.trim(),
        format!("already exists user:{}", existing.id)
    );
    assert!(
        !cred.exists(),
        "no credential file for an account that was not created"
    );
    assert_eq!(
        sim.requests().get("POST /scim/v2/Users"),
        Some(&1),
        "the 409 came from Ironclad"
    );
}

#[test]
fn create_account_without_password_on_a_saml_tenant() {
    let sim = Simulator::start(SimConfig {
        tenant: TenantSpec {
            users: 10,
            groups: 1,
            memberships: 5,
            seed: 3,
        },
        saml: true,
        ..SimConfig::default()
    })
    .unwrap();
    let email = "sso.user@example-tenant.test";
    let run = create(&sim, email, &["--no-password"]);
    run.assert_ok();
    let user = sim
        .tenant()
        .users
        .into_iter()
        .find(|u| u.user_name == email)
        .expect("created");
    assert_eq!(run.stdout.trim(), format!("created user:{}", user.id));
    assert_eq!(user.password, None, "no password was sent");
}

#[test]
fn without_saml_ironclad_asks_for_a_password_in_its_words() {
    let sim = sim(10, 1, 5);
    let run = create(&sim, "sso.user@example-tenant.test", &["--no-password"]);
    assert!(!run.ok());
    assert!(
        run.error_line().contains("password is required"),
        "{}",
        run.stderr
    );
}

#[test]
fn delete_answers_unsupported_with_the_reason() {
    let sim = sim(10, 1, 5);
    let u = sim.tenant().users[2].id.clone();
    let run = provisioning(&sim).run(&["delete-resource", "--resource", &format!("user:{u}")]);
    assert!(!run.ok());
    let line = run.error_line();
    assert!(
        line.contains("unsupported") && line.contains("workflows"),
        "{line}"
    );
    assert_eq!(sim.write_requests(), 0);
}
