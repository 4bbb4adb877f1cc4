//! Application data that tries to fool the operator, through the real host
//! and component: display names with terminal escapes, and ids with `:`
//! and `\` (among them two memberships a plain `:` join makes one). Every
//! membership is synced, nothing reaches the terminal raw (tables, diff,
//! result lines, error lines, text logs), JSON stays exact, and grants with
//! `:` in their ids are revoked from the command line.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::BTreeSet;
use std::path::Path;

use common::{fixture_component, read_json, Host, Run};
use ironclad_sim::hostile_names::{
    BACKSLASH_USER, COLLIDING_GROUP, COLLIDING_USER, HOSTILE_FAMILY_NAME, HOSTILE_GIVEN_NAME,
    PLAIN_GROUP, PLAIN_USER,
};
use ironclad_sim::{SimConfig, Simulator, TenantSpec};

/// The two memberships a plain join of the parts makes one.
const COLLIDING_A: &str = r"group:a:member:user:b\:member\:user\:c";
const COLLIDING_B: &str = r"group:a\:member\:user\:b:member:user:c";

fn hostile_sim() -> Simulator {
    Simulator::start(SimConfig {
        tenant: TenantSpec {
            users: 12,
            groups: 3,
            memberships: 15,
            seed: 7,
        },
        hostile_names: true,
        ..SimConfig::default()
    })
    .expect("simulator starts")
}

/// The baton id escaping, written out again here so the test does not
/// trust the code it checks.
fn escaped(part: &str) -> String {
    part.replace('\\', r"\\").replace(':', r"\:")
}

fn grant_ids(sim: &Simulator) -> BTreeSet<String> {
    sim.tenant()
        .groups
        .iter()
        .flat_map(|g| {
            g.members
                .iter()
                .map(move |u| format!("group:{}:member:user:{}", escaped(&g.id), escaped(u)))
        })
        .collect()
}

/// Fails on any character that would act on a terminal rather than show:
/// controls other than the line ends of the output itself, bidirectional
/// and invisible formatting characters.
#[track_caller]
fn assert_nothing_raw(what: &str, text: &str) {
    let bad: Vec<char> = text
        .chars()
        .filter(|&c| {
            (c.is_control() && c != '\n')
                || matches!(c, '\u{061c}' | '\u{200b}'..='\u{200f}' | '\u{2028}'..='\u{202e}' | '\u{2060}'..='\u{2069}' | '\u{feff}')
        })
        .collect();
    assert!(bad.is_empty(), "{what} printed {bad:?} raw:\n{text}");
}

#[track_caller]
fn assert_clean(what: &str, run: &Run) {
    assert_nothing_raw(&format!("{what} (stdout)"), &run.stdout);
    assert_nothing_raw(&format!("{what} (stderr)"), &run.stderr);
}

fn inspect(file: &Path, args: &[&str]) -> Run {
    let mut all = vec!["inspect", "-f", file.to_str().unwrap()];
    all.extend_from_slice(args);
    Host::new().run(&all)
}

#[test]
fn a_hostile_tenant_syncs_every_membership_and_prints_nothing_raw() {
    let sim = hostile_sim();
    let want = grant_ids(&sim);
    assert!(want.contains(COLLIDING_A) && want.contains(COLLIDING_B));
    let dir = tempfile::tempdir().unwrap();

    // JSON: every membership, none lost as a "duplicate", names exact.
    let json = dir.path().join("out.json");
    let run =
        Host::for_sim(&sim).run(&["--log-level", "debug", "sync", "-f", json.to_str().unwrap()]);
    run.assert_ok();
    assert_clean("sync", &run);
    let doc = read_json(&json);
    let got: BTreeSet<String> = doc["grants"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(got, want);
    assert_eq!(doc["stats"]["duplicates_skipped"], 0);
    assert_eq!(doc["stats"]["grants"], want.len());
    let eve = doc["resources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["id"]["resource"] == COLLIDING_USER)
        .expect("the user with ':' in its id");
    assert_eq!(
        eve["display_name"],
        format!("{HOSTILE_GIVEN_NAME} {HOSTILE_FAMILY_NAME}"),
        "JSON keeps the name exact"
    );

    // c1z: the same grants, the raw ids in the rows' columns.
    let c1z = dir.path().join("sync.c1z");
    let run = Host::for_sim(&sim).run(&["sync", "-f", c1z.to_str().unwrap()]);
    run.assert_ok();
    assert_clean("sync", &run);
    let run = inspect(&c1z, &["-o", "json", "grants"]);
    run.assert_ok();
    let rows: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    let got: BTreeSet<String> = rows
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(got, want);
    let principals: BTreeSet<String> = rows
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["principal"]["resource"].as_str().unwrap().to_string())
        .collect();
    for raw in [COLLIDING_USER, PLAIN_USER, BACKSLASH_USER] {
        assert!(principals.contains(raw), "{raw} kept raw: {principals:?}");
    }

    // Tables, from both files: escapes shown, not acted on.
    for file in [&c1z, &json] {
        for what in [
            &["resources"][..],
            &["entitlements"],
            &["grants"],
            &["stats"],
        ] {
            let run = inspect(file, what);
            run.assert_ok();
            assert_clean(&format!("inspect {what:?}"), &run);
        }
        let users = inspect(file, &["resources", "-t", "user"]).stdout;
        assert!(
            users.contains(r"Eve\u{202e}nimdA \x1b]0;pwned\x07\x1b[2J"),
            "{users}"
        );
        assert!(users.contains(r"Mal\rlory Row\nuser"), "{users}");
        let grants = inspect(file, &["grants", "-r", &format!("user:{COLLIDING_USER}")]).stdout;
        assert!(
            grants.lines().any(|l| l.starts_with("group:a:member ")
                && l.contains(&format!(" user:{COLLIDING_USER} "))),
            "{grants}"
        );
        let groups = inspect(file, &["entitlements"]).stdout;
        assert!(
            groups.contains(r"\x1b[31mLegal\x1b[0m Approvers\x07 Group Member"),
            "{groups}"
        );
        assert!(groups.contains(r"Ops\r\n+  grant"), "{groups}");
    }

    // Diff: one of the colliding memberships goes, the other stays.
    assert!(sim.remove_member(COLLIDING_GROUP, PLAIN_USER));
    let run = Host::for_sim(&sim).run(&["sync", "-f", c1z.to_str().unwrap()]);
    run.assert_ok();
    let run = inspect(&c1z, &["diff"]);
    run.assert_ok();
    assert_clean("inspect diff", &run);
    let removed: Vec<&str> = run.stdout.lines().filter(|l| l.starts_with('-')).collect();
    assert_eq!(removed.len(), 1, "{}", run.stdout);
    assert!(removed[0].contains(COLLIDING_B), "{}", run.stdout);
    assert!(
        removed[0].contains(r"Mal\rlory Row\nuser"),
        "{}",
        run.stdout
    );
    let kept = inspect(&c1z, &["-o", "json", "grants", "-e", "group:a:member"]).stdout;
    assert!(kept.contains(&COLLIDING_A.replace('\\', r"\\")), "{kept}");
}

#[test]
fn grants_with_colons_in_their_ids_are_granted_and_revoked_from_the_cli() {
    let sim = hostile_sim();
    let provisioning = || Host::for_sim(&sim).env("BATON_PROVISIONING", "true");
    let members = |g: &str| sim.tenant().group(g).unwrap().members.clone();

    // Revoke each of the colliding pair by its id: exactly that membership goes.
    let run = provisioning().run(&["revoke", "--grant", COLLIDING_B]);
    run.assert_ok();
    assert_eq!(run.stdout.trim(), format!("revoked {COLLIDING_B}"));
    assert!(!members(COLLIDING_GROUP).contains(&PLAIN_USER.to_string()));
    assert!(members(PLAIN_GROUP).contains(&COLLIDING_USER.to_string()));

    let run = provisioning().run(&["revoke", "--grant", COLLIDING_A]);
    run.assert_ok();
    assert_eq!(run.stdout.trim(), format!("revoked {COLLIDING_A}"));
    assert!(!members(PLAIN_GROUP).contains(&COLLIDING_USER.to_string()));

    // A backslash too; then again: already revoked.
    let id = format!(
        "group:{}:member:user:{}",
        escaped(COLLIDING_GROUP),
        escaped(BACKSLASH_USER)
    );
    assert_eq!(id, r"group:a\:member\:user\:b:member:user:d\\\:e\\f");
    let run = provisioning().run(&["revoke", "--grant", &id]);
    run.assert_ok();
    assert_eq!(run.stdout.trim(), format!("revoked {id}"));
    assert!(!members(COLLIDING_GROUP).contains(&BACKSLASH_USER.to_string()));
    let run = provisioning().run(&["revoke", "--grant", &id]);
    run.assert_ok();
    assert_eq!(run.stdout.trim(), format!("already revoked {id}"));

    // Granted back by the entitlement id (escaped) and the principal (TYPE:ID,
    // the id raw after the first colon).
    let grant_back = || {
        let run = provisioning().run(&[
            "grant",
            "--entitlement",
            r"group:a\:member\:user\:b:member",
            "--principal",
            &format!("user:{PLAIN_USER}"),
        ]);
        run.assert_ok();
        run.stdout.trim().to_string()
    };
    assert_eq!(grant_back(), format!("granted {COLLIDING_B}"));
    assert!(members(COLLIDING_GROUP).contains(&PLAIN_USER.to_string()));
    assert_eq!(grant_back(), format!("already granted {COLLIDING_B}"));

    // The unescaped join is refused with a line that says how to write it.
    let run = provisioning().run(&["revoke", "--grant", "group:a:member:user:b:member:user:c"]);
    assert!(!run.ok());
    let line = run.error_line();
    assert!(line.contains(r"'\:'"), "{line}");
    assert!(members(COLLIDING_GROUP).contains(&PLAIN_USER.to_string()));
}

#[test]
fn result_lines_error_lines_and_logs_from_a_hostile_component_print_nothing_raw() {
    let rogue = || {
        Host::new()
            .component(&fixture_component("rogue_connector"))
            .env("BATON_BEHAVIOUR", "hostile-text")
    };
    // `ok:` line.
    let run = rogue().run(&["validate"]);
    run.assert_ok();
    assert_clean("validate", &run);
    assert!(
        run.stdout.starts_with(
            r"ok: rogue pwned\x1b]0;owned\x07\x1b[2J\r\nerror: forged \u{202e}desrever"
        ),
        "{}",
        run.stdout
    );

    // The retry warning (a text log) and the error line, each one line.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("out.json");
    let run = rogue().run(&["--max-retries", "1", "sync", "-f", file.to_str().unwrap()]);
    assert!(!run.ok());
    assert_clean("sync", &run);
    let shown = r"pwned\x1b]0;owned\x07\x1b[2J\r\nerror: forged \u{202e}desrever";
    let warn = run
        .stderr
        .lines()
        .find(|l| l.contains("retrying"))
        .unwrap_or_else(|| panic!("no retry warning:\n{}", run.stderr));
    assert!(warn.contains(shown), "{warn}");
    assert!(run.error_line().contains(shown), "{}", run.stderr);
    assert_eq!(
        run.stderr
            .lines()
            .filter(|l| l.starts_with("error:"))
            .count(),
        1,
        "no forged error line:\n{}",
        run.stderr
    );
}
