//! One memory budget per instance, counting every memory and table, and caps
//! on how many there are, against components crafted here: the contract's
//! world with a dummy body (every export traps), plus a huge table, extra
//! memories or memories that only together pass the budget. Each runs
//! `connector-host metadata` on the real binary, which must refuse the
//! component when it starts, before allocating what it asked for, and stay
//! under the budget plus a stated overhead in peak RSS.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{host_bin, ironclad_component, run_measured};
use wit_component::{ComponentEncoder, StringEncoding};
use wit_parser::{ManglingAndAbi, Resolve};

/// The budget in these runs, in MiB.
const MEMORY_MIB: u64 = 16;

/// The host process itself compiling a small component in a debug build,
/// and the allocator's slack: far below what the crafted components ask.
const OVERHEAD_MIB: u64 = 96;

/// A connector-shaped component whose core module's own memory starts at
/// `pages` (64 KiB each) and which also declares `extra` (module fields in
/// the text format).
fn crafted(dir: &Path, name: &str, pages: u32, extra: &str) -> PathBuf {
    let mut resolve = Resolve::default();
    let wit = Path::new(env!("CARGO_MANIFEST_DIR")).join("../wit/v0.2.0");
    let (pkg, _) = resolve.push_dir(&wit).unwrap();
    let world = resolve.select_world(&[pkg], Some("connector")).unwrap();
    let core = wit_component::dummy_module(&resolve, world, ManglingAndAbi::Standard32);
    let text = wasmprinter::print_bytes(&core).unwrap();
    let own = "(memory (;0;) 0)";
    assert!(text.contains(own), "the dummy's memory: {text}");
    let text = text.replace(own, &format!("(memory (;0;) {pages})"));
    let end = text.rfind(')').unwrap();
    let text = format!("{}{extra}\n)", &text[..end]);
    let mut core = wat::parse_str(&text).unwrap();
    wit_component::embed_component_metadata(&mut core, &resolve, world, StringEncoding::UTF8)
        .unwrap();
    let component = ComponentEncoder::default()
        .module(&core)
        .unwrap()
        .validate(true)
        .encode()
        .unwrap();
    let path = dir.join(format!("{name}.wasm"));
    std::fs::write(&path, component).unwrap();
    path
}

struct Measured {
    ok: bool,
    stderr: String,
    peak_rss_mib: u64,
}

fn metadata(component: &Path) -> Measured {
    let (run, peak_rss_mib) = run_measured(
        Command::new(host_bin())
            .args(["--no-cache", "--memory-mb", &MEMORY_MIB.to_string()])
            .arg("--component")
            .arg(component)
            .arg("metadata")
            .env_clear()
            .env("RUST_BACKTRACE", "0"),
        b"",
    );
    Measured {
        ok: run.ok(),
        stderr: run.stderr,
        peak_rss_mib,
    }
}

impl Measured {
    #[track_caller]
    fn assert_refused(&self, because: &str) {
        assert!(!self.ok, "{}", self.stderr);
        let line = self.stderr.lines().last().unwrap_or_default();
        eprintln!("peak RSS {} MiB: {line}", self.peak_rss_mib);
        assert!(line.contains(because), "{}", self.stderr);
        assert!(
            self.peak_rss_mib <= MEMORY_MIB + OVERHEAD_MIB,
            "peak RSS {} MiB\n{}",
            self.peak_rss_mib,
            self.stderr
        );
    }
}

#[test]
fn the_dummy_starts_and_traps_in_its_export() {
    // The control: without extras the crafted component gets past its start,
    // so each refusal below is its extra's doing.
    let dir = tempfile::tempdir().unwrap();
    let m = metadata(&crafted(dir.path(), "plain", 0, ""));
    assert!(!m.ok);
    assert!(!m.stderr.contains("could not start"), "{}", m.stderr);
    assert!(m.stderr.contains("metadata"), "{}", m.stderr);
}

#[test]
fn a_huge_table_is_refused_before_it_is_allocated() {
    // 200 million entries: 1.6 GB of table the host would fill at start.
    let dir = tempfile::tempdir().unwrap();
    let m = metadata(&crafted(
        dir.path(),
        "table",
        0,
        "(table 200000000 funcref)",
    ));
    // The pool refuses it when the component is linked, the budget when it
    // starts (without the pool): either way before the table exists.
    m.assert_refused("100000");
    assert!(m.stderr.contains("table"), "{}", m.stderr);
}

#[test]
fn tables_and_memories_count_against_one_budget() {
    // An 8 MiB memory and 12 tables of 90,000 entries (8.6 MB): each under
    // the 16 MiB budget and the entry cap, 17 MB together.
    let dir = tempfile::tempdir().unwrap();
    let tables = "(table 90000 funcref)".repeat(12);
    let m = metadata(&crafted(dir.path(), "tables", 128, &tables));
    m.assert_refused(&format!(
        "more than the {MEMORY_MIB} MiB of memory and tables"
    ));
}

#[test]
fn more_memories_than_the_cap_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let m = metadata(&crafted(dir.path(), "memories", 0, &"(memory 1)".repeat(7)));
    m.assert_refused("memories");
}

#[test]
fn memories_are_counted_together() {
    // Two memories of 10 MiB: each under the 16 MiB budget, 20 MiB together.
    let dir = tempfile::tempdir().unwrap();
    let m = metadata(&crafted(dir.path(), "two", 160, "(memory 160)"));
    m.assert_refused(&format!(
        "more than the {MEMORY_MIB} MiB of memory and tables"
    ));
}

#[test]
fn the_real_connector_fits_a_small_budget() {
    let out = Command::new(host_bin())
        .args(["--no-cache", "--memory-mb", &MEMORY_MIB.to_string()])
        .arg("--component")
        .arg(ironclad_component())
        .arg("metadata")
        .env_clear()
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
