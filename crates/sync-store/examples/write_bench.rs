//! Streams a synthetic tenant through the c1z sink and prints how long the
//! page calls and `finish` took, the output's size and the process's peak
//! RSS. Rows are generated page by page, so the peak is the sink's.
//!
//! ```text
//! cargo run --release -p sync-store --example write_bench -- [USERS] [GROUPS] [MEMBERSHIPS] [OUT]
//! ```
//! Defaults: 100000 5000 500000, and a file in a temp directory under the
//! current one (removed afterwards) when OUT is not given.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use sync_store::model::{
    AccountStatus, ConnectorInfo, Email, Entitlement, Grant, GroupTrait, Purpose, Resource,
    ResourceId, ResourceType, Trait, UserTrait,
};
use sync_store::{RunStats, SyncSink};

const PAGE: usize = 1000;

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let num = |i: usize, default: usize| -> anyhow::Result<usize> {
        match args.get(i) {
            Some(s) => s
                .parse()
                .with_context(|| format!("argument {} ({s:?}) is not a number", i + 1)),
            None => Ok(default),
        }
    };
    let (users, groups, memberships) = (num(0, 100_000)?, num(1, 5_000)?, num(2, 500_000)?);
    if users == 0 || groups == 0 || memberships > users * groups {
        bail!("need at least one user and one group, and at most USERS×GROUPS memberships");
    }
    let scratch;
    let out: PathBuf = match args.get(3) {
        Some(p) => PathBuf::from(p),
        None => {
            scratch = tempfile::Builder::new()
                .prefix("write-bench-")
                .tempdir_in(".")?;
            scratch.path().join("bench.c1z")
        }
    };
    let rss_before = peak_rss_kib()?;

    let cpu_before = cpu_secs();
    let started = Instant::now();
    let mut in_calls = Duration::ZERO;
    let mut timed = |f: &mut dyn FnMut() -> anyhow::Result<()>| -> anyhow::Result<()> {
        let t = Instant::now();
        f()?;
        in_calls += t.elapsed();
        Ok(())
    };
    let mut sink: Box<dyn SyncSink> = sync_store::c1z::sink(&out)?;
    let connector = ConnectorInfo {
        display_name: "Ironclad".into(),
        version: "0.1.0".into(),
    };
    timed(&mut || sink.begin(&connector, &resource_types()))?;
    for start in (0..users).step_by(PAGE) {
        let page: Vec<Resource> = (start..users.min(start + PAGE)).map(user).collect();
        let mut page = Some(page);
        timed(&mut || sink.resources(page.take().unwrap_or_default()))?;
    }
    for start in (0..groups).step_by(PAGE) {
        let page: Vec<Resource> = (start..groups.min(start + PAGE)).map(group).collect();
        let mut page = Some(page);
        timed(&mut || sink.resources(page.take().unwrap_or_default()))?;
    }
    // Entitlements and grants per group, in the driver's order.
    for start in (0..groups).step_by(PAGE) {
        let page: Vec<Entitlement> = (start..groups.min(start + PAGE)).map(member).collect();
        let mut page = Some(page);
        timed(&mut || sink.entitlements(page.take().unwrap_or_default()))?;
    }
    let mut page: Vec<Grant> = Vec::with_capacity(PAGE);
    for g in 0..groups {
        // Memberships spread evenly: group g gets its share of them.
        let count = memberships * (g + 1) / groups - memberships * g / groups;
        for k in 0..count {
            // Distinct users within a group: a stride coprime with USERS
            // would do; 997 is, for every tenant size tried here.
            let u = (g * 104_729 + k * 997) % users;
            page.push(grant(g, u));
            if page.len() == PAGE {
                let mut full = Some(std::mem::replace(&mut page, Vec::with_capacity(PAGE)));
                timed(&mut || sink.grants(full.take().unwrap_or_default()))?;
            }
        }
    }
    if !page.is_empty() {
        let mut last = Some(page);
        timed(&mut || sink.grants(last.take().unwrap_or_default()))?;
    }
    let fetched = started.elapsed();
    let cpu_fetched = cpu_secs();

    let t = Instant::now();
    let finished = sink.finish(RunStats {
        started_at: humantime::format_rfc3339(std::time::SystemTime::now()).to_string(),
        fetch_ms: fetched.as_millis() as u64,
        ..RunStats::default()
    })?;
    let finish = t.elapsed();
    let total = started.elapsed();
    let size = std::fs::metadata(&out)?.len();
    let rss = peak_rss_kib()?;

    let s = &finished.stats;
    println!(
        "tenant          {users} users, {groups} groups, {memberships} memberships (pages of {PAGE})"
    );
    println!(
        "rows kept       {} resources, {} entitlements, {} grants, {} duplicates",
        s.resources.values().sum::<u64>(),
        s.entitlements,
        s.grants,
        s.duplicates_skipped
    );
    println!(
        "page calls      {:.3} s wall from the first to the last page ({:.3} s inside the calls)",
        fetched.as_secs_f64(),
        in_calls.as_secs_f64()
    );
    println!("finish          {:.3} s", finish.as_secs_f64());
    println!("total           {:.3} s", total.as_secs_f64());
    let cpu_end = cpu_secs();
    println!(
        "CPU (all threads) {:.2} s to the last page (generation included), {:.2} s in finish",
        cpu_fetched - cpu_before,
        cpu_end - cpu_fetched
    );
    println!(
        "output          {:.1} MB ({} bytes, {:.0} bytes a grant)",
        size as f64 / 1e6,
        size,
        size as f64 / memberships.max(1) as f64
    );
    println!(
        "peak RSS        {:.1} MiB (VmHWM; {:.1} MiB before the sink)",
        rss as f64 / 1024.0,
        rss_before as f64 / 1024.0
    );
    Ok(())
}

/// User and system CPU seconds of the whole process so far.
fn cpu_secs() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command's closing parenthesis; utime and stime are
    // the 14th and 15th of the line, in clock ticks (100 a second here).
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<u64> = rest
        .split_whitespace()
        .skip(11)
        .take(2)
        .filter_map(|v| v.parse().ok())
        .collect();
    f.iter().sum::<u64>() as f64 / 100.0
}

fn peak_rss_kib() -> anyhow::Result<u64> {
    let status = std::fs::read_to_string("/proc/self/status")
        .context("cannot read /proc/self/status (Linux only)")?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .context("no VmHWM in /proc/self/status")
}

/// A 24-hex-digit id like Ironclad's, from a number.
fn hex_id(kind: u64, n: usize) -> String {
    let mut x = (n as u64)
        .wrapping_mul(0x9E37_79B9_7F4A_7C15)
        .wrapping_add(kind);
    x ^= x >> 29;
    format!("{:016x}{:08x}", x, (n as u32).wrapping_mul(2_654_435_761))
}

fn resource_types() -> Vec<ResourceType> {
    vec![
        ResourceType {
            id: "user".into(),
            display_name: "User".into(),
            traits: vec![Trait::User],
            description: String::new(),
        },
        ResourceType {
            id: "group".into(),
            display_name: "Group".into(),
            traits: vec![Trait::Group],
            description: String::new(),
        },
    ]
}

const FIRST: [&str; 8] = [
    "Ada", "Grace", "Alan", "Edsger", "Barbara", "Ken", "Margaret", "Linus",
];
const LAST: [&str; 8] = [
    "Lovelace", "Hopper", "Turing", "Dijkstra", "Liskov", "Thompson", "Hamilton", "Torvalds",
];
const TITLES: [&str; 4] = ["Counsel", "Paralegal", "Engineer", "Sales Manager"];
const DEPARTMENTS: [&str; 4] = ["Legal", "Engineering", "Sales", "Finance"];

fn user(i: usize) -> Resource {
    let (first, last) = (FIRST[i % 8], LAST[(i / 8) % 8]);
    let email = format!(
        "{}.{}{}@example.com",
        first.to_lowercase(),
        last.to_lowercase(),
        i
    );
    let created = format!(
        "2024-{:02}-{:02}T10:{:02}:00Z",
        1 + i % 12,
        1 + i % 28,
        i % 60
    );
    Resource {
        id: ResourceId {
            resource_type: "user".into(),
            resource: hex_id(1, i),
        },
        parent: None,
        display_name: format!("{first} {last}"),
        description: None,
        user: Some(UserTrait {
            login: email.clone(),
            emails: vec![Email {
                address: email,
                primary: true,
            }],
            status: AccountStatus::Enabled,
            given_name: Some(first.into()),
            family_name: Some(last.into()),
        }),
        group: None,
        profile: BTreeMap::from([
            ("title".to_string(), TITLES[i % 4].to_string()),
            (
                "department".to_string(),
                DEPARTMENTS[(i / 4) % 4].to_string(),
            ),
            ("provider".to_string(), "okta".to_string()),
            ("created".to_string(), created.clone()),
        ]),
        created_at: Some(created),
    }
}

fn group(g: usize) -> Resource {
    Resource {
        id: ResourceId {
            resource_type: "group".into(),
            resource: hex_id(2, g),
        },
        parent: None,
        display_name: format!("{} team {g}", DEPARTMENTS[g % 4]),
        description: None,
        user: None,
        group: Some(GroupTrait {
            source: (g & 1 == 0).then(|| "external".to_string()),
        }),
        profile: if g & 1 == 0 {
            BTreeMap::from([("external_id".to_string(), format!("okta-{g}"))])
        } else {
            BTreeMap::new()
        },
        created_at: Some("2023-05-01T09:00:00Z".into()),
    }
}

fn member(g: usize) -> Entitlement {
    let id = hex_id(2, g);
    Entitlement {
        id: format!("group:{id}:member"),
        resource: ResourceId {
            resource_type: "group".into(),
            resource: id,
        },
        slug: "member".into(),
        display_name: format!("{} team {g} Group Member", DEPARTMENTS[g % 4]),
        description: format!("Member of {} team {g}", DEPARTMENTS[g % 4]),
        purpose: Purpose::Assignment,
        grantable_to: vec!["user".into()],
    }
}

fn grant(g: usize, u: usize) -> Grant {
    let (gid, uid) = (hex_id(2, g), hex_id(1, u));
    Grant {
        id: format!("group:{gid}:member:user:{uid}"),
        entitlement: format!("group:{gid}:member"),
        principal: ResourceId {
            resource_type: "user".into(),
            resource: uid,
        },
    }
}
