//! Broken and hostile answers from "Ironclad" (or a proxy in front of it):
//! each gives a clear one-line error or a tolerant, exact result; never a
//! crash of the component, a hang or a partial file.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{read_json, sim, Host, Run};
use ironclad_sim::{Faults, Hostile, Simulator};

fn sync_with(h: Hostile) -> (Simulator, Run, Option<serde_json::Value>) {
    let sim = sim(2_300, 5, 300);
    sim.set_faults(Faults {
        hostile: Some(h),
        ..Faults::default()
    });
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("out.json");
    std::fs::write(&file, "previous").unwrap();
    let run = Host::for_sim(&sim).run(&["sync", "-f", file.to_str().unwrap()]);
    assert!(
        !run.stderr.contains("crashed") && !run.stderr.contains("panicked"),
        "{}",
        run.stderr
    );
    let out = if run.ok() {
        Some(read_json(&file))
    } else {
        assert_eq!(
            std::fs::read_to_string(&file).unwrap(),
            "previous",
            "a failed sync keeps the old file"
        );
        None
    };
    (sim, run, out)
}

fn user_ids(out: &serde_json::Value) -> std::collections::BTreeSet<String> {
    out["resources"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["id"]["resource_type"] == "user")
        .map(|r| r["id"]["resource"].as_str().unwrap().to_string())
        .collect()
}

fn tenant_user_ids(sim: &Simulator) -> std::collections::BTreeSet<String> {
    sim.tenant().users.into_iter().map(|u| u.id).collect()
}

#[track_caller]
fn assert_clear_error(run: &Run, words: &str) {
    assert!(!run.ok());
    let line = run.error_line();
    assert!(line.contains(words), "{line}");
    assert!(line.len() < 600, "one short line: {line}");
}

#[test]
fn malformed_json_is_a_clear_error() {
    let (_, run, _) = sync_with(Hostile::MalformedJson);
    assert_clear_error(&run, "not the expected JSON");
}

#[test]
fn wrong_types_are_a_clear_error() {
    let (_, run, _) = sync_with(Hostile::WrongTypes);
    assert_clear_error(&run, "not the expected JSON");
}

#[test]
fn an_html_page_is_a_clear_error() {
    let (_, run, _) = sync_with(Hostile::HtmlPage);
    assert_clear_error(&run, "not the expected JSON");
}

#[test]
fn an_empty_200_is_a_clear_error() {
    let (_, run, _) = sync_with(Hostile::EmptyOk);
    assert_clear_error(&run, "not the expected JSON");
}

#[test]
fn missing_fields_are_tolerated() {
    let (sim, run, out) = sync_with(Hostile::MissingFields);
    run.assert_ok();
    assert_eq!(user_ids(&out.unwrap()), tenant_user_ids(&sim));
}

#[test]
fn huge_strings_pass_through_intact() {
    let (sim, run, out) = sync_with(Hostile::HugeStrings);
    run.assert_ok();
    let out = out.unwrap();
    assert_eq!(user_ids(&out), tenant_user_ids(&sim));
    let longest = out["resources"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| r["profile"]["title"].as_str())
        .map(str::len)
        .max()
        .unwrap();
    assert_eq!(longest, 4 << 20);
}

#[test]
fn a_total_that_lies_high_still_gives_the_exact_users() {
    let (sim, run, out) = sync_with(Hostile::TotalTooHigh);
    run.assert_ok();
    assert_eq!(user_ids(&out.unwrap()), tenant_user_ids(&sim));
    // Three real pages and one empty one that ends the listing, plus at most
    // the three sent ahead (the connector's `ahead::AHEAD`) for pages the
    // lying total promised.
    let asked = sim.requests()["GET /scim/v2/Users"];
    assert!((4..=4 + 3).contains(&asked), "{asked} requests");
}

#[test]
fn a_total_that_lies_low_still_gives_the_exact_users() {
    let (sim, run, out) = sync_with(Hostile::TotalTooLow);
    run.assert_ok();
    assert_eq!(user_ids(&out.unwrap()), tenant_user_ids(&sim));
}

#[test]
fn a_response_over_the_size_cap_is_refused() {
    let sim = sim(1_000, 2, 10);
    sim.set_faults(Faults {
        hostile: Some(Hostile::HugeStrings),
        ..Faults::default()
    });
    let run = Host::for_sim(&sim).run(&[
        "--max-response-mb",
        "2",
        "sync",
        "-f",
        "/tmp/never-written.json",
    ]);
    assert!(!run.ok());
    assert!(run.stderr.contains("--max-response-mb"), "{}", run.stderr);
    assert!(!std::path::Path::new("/tmp/never-written.json").exists());
}
