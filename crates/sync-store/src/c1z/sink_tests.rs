//! The streaming c1z sink, end to end through the file and its reader.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;

use prost::Message as _;
use rusqlite::Connection;

use super::stream::C1zSink;
use super::writer::Options;
use super::*;
use crate::model::*;
use crate::sink::{Finished, RunStats, SyncSink};
use crate::testing::*;

fn open(path: &Path) -> (tempfile::TempDir, Connection) {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    unpack(path, &db).unwrap();
    let conn = Connection::open(&db).unwrap();
    (dir, conn)
}

fn blob(conn: &Connection, sql: &str, key: &str) -> Vec<u8> {
    conn.query_row(sql, [key], |r| r.get(0)).unwrap()
}

fn entries(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn one_sync_gives_one_finished_full_run_its_rows_and_every_index() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.c1z");
    let f = write_doc(&path, &sample(&["u1", "u2"], &["u1"]));
    assert_eq!((f.kept, f.dropped, f.orphans), (0, 0, 0));
    assert_eq!(entries(dir.path()), ["s.c1z"], "no temp directory is left");
    let (_d, conn) = open(&path);
    let (id, ended, token, kind, backfilled, stats): (String, Option<String>, String, String, i64, String) = conn
        .query_row(
            "SELECT sync_id, ended_at, sync_token, sync_type, grants_backfilled, stats FROM v1_sync_runs",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?)),
        )
        .unwrap();
    assert_eq!(Some(id), f.sync_id);
    assert!(ended.is_some());
    assert_eq!((token.as_str(), kind.as_str(), backfilled), ("", "full", 1));
    let stats: serde_json::Value = serde_json::from_str(&stats).unwrap();
    assert_eq!(stats["connector"]["display_name"], "Ironclad");
    assert_eq!(stats["grants"], 1);
    assert_eq!(stats["elapsed_ms"], 1234);
    let mode: String = conn
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "delete");
    let ext: Vec<String> = conn
        .prepare("SELECT external_id FROM v1_resources ORDER BY id")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(ext, ["user:u1", "user:u2", "group:g1"]);

    // The lookup indexes were built at the end, under the schema's names.
    let indexes: Vec<String> = conn
        .prepare(
            "SELECT name FROM sqlite_master WHERE type='index' AND sql IS NOT NULL ORDER BY name",
        )
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let fresh = Connection::open_in_memory().unwrap();
    schema::create_tables(&fresh).unwrap();
    schema::create_indexes(&fresh).unwrap();
    let want: Vec<String> = fresh
        .prepare(
            "SELECT name FROM sqlite_master WHERE type='index' AND sql IS NOT NULL ORDER BY name",
        )
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(indexes, want);
    assert_eq!(indexes.len(), 13);
}

#[test]
fn a_streamed_sync_reads_back_with_its_counts_and_stats() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.c1z");
    let doc = sample(&["u1", "u2", "u3"], &["u1", "u3"]);
    let f = write_doc(&path, &doc);
    let want_stats = Stats {
        http_requests: 7,
        retries: 1,
        elapsed_ms: 1234,
        ..doc.stats.clone()
    };
    assert_eq!(f.stats, want_stats);

    let c = C1z::open(&path).unwrap();
    let syncs = c.finished().unwrap();
    assert_eq!(syncs.len(), 1);
    assert_eq!(
        (syncs[0].resources, syncs[0].entitlements, syncs[0].grants),
        (4, 1, 2)
    );
    let back = c.load(&syncs[0]).unwrap();
    assert_eq!(back.connector, doc.connector);
    assert_eq!(back.resource_types, doc.resource_types);
    assert_eq!(back.entitlements, doc.entitlements);
    assert_eq!(back.grants, doc.grants);
    // Timestamps come back as protobuf prints them; everything else is equal.
    let a = serde_json::to_value(&doc.resources).unwrap();
    let b = serde_json::to_value(&back.resources).unwrap();
    assert_eq!(a.as_array().unwrap().len(), b.as_array().unwrap().len());
    for (x, y) in a.as_array().unwrap().iter().zip(b.as_array().unwrap()) {
        for key in ["id", "parent", "display_name", "user", "group", "profile"] {
            assert_eq!(x[key], y[key], "{key}");
        }
    }
    assert_eq!(back.stats, want_stats);
}

#[test]
fn duplicates_count_once_across_pages_and_kinds_and_the_first_wins() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.c1z");
    let doc = sample(&["u1", "u2"], &["u1", "u2"]);
    let mut sink = sink(&path).unwrap();
    feed(sink.as_mut(), &doc, 1).unwrap();
    let mut again = doc.resources[0].clone();
    again.display_name = "Someone else".into();
    sink.resources(vec![again, doc.resources[1].clone()])
        .unwrap();
    sink.entitlements(vec![doc.entitlements[0].clone()])
        .unwrap();
    sink.grants(vec![doc.grants[1].clone(), doc.grants[1].clone()])
        .unwrap();
    let mut run = run_stats(&doc);
    run.duplicates_skipped = 10;
    let f = sink.finish(run).unwrap();
    assert_eq!(f.stats.duplicates_skipped, 10 + 2 + 1 + 2);
    assert_eq!(f.stats.resources["user"], 2);
    assert_eq!((f.stats.entitlements, f.stats.grants), (1, 2));

    let c = C1z::open(&path).unwrap();
    let back = c.load(&c.finished().unwrap()[0]).unwrap();
    assert_eq!(back.resources.len(), 3);
    assert_eq!(back.resources[0].display_name, "User u1", "the first wins");
    assert_eq!(back.grants, doc.grants);
}

#[test]
fn a_grant_names_its_principal_by_id_and_embeds_its_entitlement_as_the_sdk_does() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.c1z");
    write_doc(&path, &sample(&["u1", "u2"], &["u2"]));
    let (_d, conn) = open(&path);
    let (rt, rid_, ent, pt, pid, data): (String, String, String, String, String, Vec<u8>) = conn
        .query_row(
            "SELECT resource_type_id, resource_id, entitlement_id, principal_resource_type_id, \
             principal_resource_id, data FROM v1_grants",
            [],
            |r| {
                Ok((
                    r.get(0)?,
                    r.get(1)?,
                    r.get(2)?,
                    r.get(3)?,
                    r.get(4)?,
                    r.get(5)?,
                ))
            },
        )
        .unwrap();
    assert_eq!(
        (rt.as_str(), rid_.as_str(), ent.as_str()),
        ("group", "g1", "group:g1:member")
    );
    assert_eq!((pt.as_str(), pid.as_str()), ("user", "u2"));
    let g = proto::Grant::decode(data.as_slice()).unwrap();
    assert_eq!(g.id, "group:g1:member:user:u2");
    assert_eq!(
        g.principal.unwrap(),
        proto::Resource {
            id: Some(proto::ResourceId {
                resource_type: "user".into(),
                resource: "u2".into(),
                baton_resource: false,
            }),
            ..Default::default()
        }
    );
    let ent_blob = blob(
        &conn,
        "SELECT data FROM v1_entitlements WHERE external_id = ?1",
        "group:g1:member",
    );
    // The entitlement as the SDK's grant.NewGrant embeds it: its id and its
    // whole resource; the rest is in its own row.
    let whole = proto::Entitlement::decode(ent_blob.as_slice()).unwrap();
    assert_eq!(whole.grantable_to[0].display_name, "User");
    let e = g.entitlement.unwrap();
    assert_eq!(
        e,
        proto::Entitlement {
            resource: whole.resource,
            id: whole.id,
            ..Default::default()
        }
    );
    let owner = blob(
        &conn,
        "SELECT data FROM v1_resources WHERE external_id = ?1",
        "group:g1",
    );
    assert_eq!(e.resource.unwrap().encode_to_vec(), owner);
    // The user's record is whole in v1_resources.
    let user = proto::Resource::decode(
        blob(
            &conn,
            "SELECT data FROM v1_resources WHERE external_id = ?1",
            "user:u2",
        )
        .as_slice(),
    )
    .unwrap();
    let ut: proto::UserTrait =
        proto::find_annotation(&user.annotations, proto::USER_TRAIT_URL).unwrap();
    assert_eq!(ut.login, "u2@x.com");
    assert_eq!(ut.created_at, user.created_at);
    assert_eq!(ut.profile, user.profile);
}

#[test]
fn records_pushed_out_of_the_cache_are_embedded_from_the_database() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.c1z");
    let mut doc = sample(&["u1", "u2"], &[]);
    doc.resources.push(group("g2", "Sales"));
    doc.entitlements.push(member("g2", "Sales"));
    doc.grants = vec![grant("g1", "u1"), grant("g2", "u1"), grant("g1", "u2")];
    let opts = Options {
        cache_entries: 1,
        ..Options::default()
    };
    let mut sink = C1zSink::start(&path, opts).unwrap();
    feed(&mut sink, &doc, 1).unwrap();
    let f = Box::new(sink).finish(run_stats(&doc)).unwrap();
    assert_eq!(f.orphans, 0);

    let (_d, conn) = open(&path);
    for g in ["g1", "g2"] {
        let owner = blob(
            &conn,
            "SELECT data FROM v1_resources WHERE external_id = ?1",
            &format!("group:{g}"),
        );
        let ent = blob(
            &conn,
            "SELECT data FROM v1_entitlements WHERE external_id = ?1",
            &format!("group:{g}:member"),
        );
        let e = proto::Entitlement::decode(ent.as_slice()).unwrap();
        assert_eq!(e.resource.unwrap().encode_to_vec(), owner, "{g}");
        assert!(!e.grantable_to.is_empty());
    }
    let mut stmt = conn
        .prepare("SELECT g.data, e.data FROM v1_grants g JOIN v1_entitlements e ON e.external_id = g.entitlement_id")
        .unwrap();
    let rows: Vec<(Vec<u8>, Vec<u8>)> = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(rows.len(), 3);
    for (g, e) in rows {
        let g = proto::Grant::decode(g.as_slice()).unwrap();
        let e = proto::Entitlement::decode(e.as_slice()).unwrap();
        assert_eq!(
            g.entitlement.unwrap(),
            proto::Entitlement {
                resource: e.resource,
                id: e.id,
                ..Default::default()
            }
        );
    }
}

#[test]
fn unlisted_entitlements_and_resources_are_embedded_by_id_and_counted() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.c1z");
    let mut doc = sample(&["u1"], &["u1"]);
    doc.entitlements.push(member("gone", "Gone"));
    doc.grants.push(grant("never", "u1"));
    doc.grants.push(grant("never", "u2"));
    let mut sink = sink(&path).unwrap();
    feed(sink.as_mut(), &doc, 10).unwrap();
    let f = sink.finish(run_stats(&doc)).unwrap();
    assert_eq!(f.orphans, 3, "one entitlement, two grants");
    let (_d, conn) = open(&path);
    let e = proto::Entitlement::decode(
        blob(
            &conn,
            "SELECT data FROM v1_entitlements WHERE external_id = ?1",
            "group:gone:member",
        )
        .as_slice(),
    )
    .unwrap();
    assert_eq!(e.display_name, "Gone Group Member");
    assert_eq!(e.resource.unwrap(), encode::bare_resource("group", "gone"));
    let (rt, rid_, data): (String, String, Vec<u8>) = conn
        .query_row(
            "SELECT resource_type_id, resource_id, data FROM v1_grants WHERE external_id = ?1",
            ["group:never:member:user:u2"],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap();
    assert_eq!((rt.as_str(), rid_.as_str()), ("group", "never"));
    let g = proto::Grant::decode(data.as_slice()).unwrap();
    let e = g.entitlement.unwrap();
    assert_eq!(e.id, "group:never:member");
    assert_eq!(e.resource.unwrap(), encode::bare_resource("group", "never"));
}

#[test]
fn the_two_newest_previous_syncs_are_kept() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.c1z");
    let written: Vec<Finished> = (0..4)
        .map(|_| write_doc(&path, &sample(&["u1", "u2"], &["u1", "u2"])))
        .collect();
    let counts: Vec<(usize, usize)> = written.iter().map(|f| (f.kept, f.dropped)).collect();
    assert_eq!(counts, [(0, 0), (1, 0), (2, 0), (2, 1)]);
    assert_eq!(entries(dir.path()), ["s.c1z"]);
    let ids: Vec<String> = written.into_iter().map(|f| f.sync_id.unwrap()).collect();
    let (_d, conn) = open(&path);
    for table in schema::TABLES {
        let mut stmt = conn
            .prepare(&format!(
                "SELECT DISTINCT sync_id FROM {table} ORDER BY sync_id"
            ))
            .unwrap();
        let got: Vec<String> = stmt
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        if matches!(table, "v1_assets" | "v1_connector_sessions") {
            assert!(got.is_empty());
            continue;
        }
        let mut want = ids[1..].to_vec();
        want.sort();
        assert_eq!(got, want, "{table}");
    }
    // The lookup indexes were dropped for the load and built again.
    let indexes: i64 = conn
        .query_row(
            "SELECT count(*) FROM sqlite_master WHERE type='index' AND sql IS NOT NULL",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(indexes, 13);
    let c = C1z::open(&path).unwrap();
    let newest: Vec<String> = c
        .finished()
        .unwrap()
        .into_iter()
        .map(|s| s.sync_id)
        .collect();
    assert_eq!(newest, [ids[3].clone(), ids[2].clone(), ids[1].clone()]);
}

#[test]
fn a_sink_dropped_midway_leaves_the_previous_file_and_no_temp_dir() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.c1z");
    let doc = sample(&["u1", "u2"], &["u1"]);
    write_doc(&path, &doc);
    let before = std::fs::read(&path).unwrap();
    {
        let mut sink = sink(&path).unwrap();
        assert_eq!(entries(dir.path()).len(), 2, "its temp directory");
        feed(sink.as_mut(), &sample(&["u3"], &["u3"]), 1).unwrap();
    }
    assert_eq!(std::fs::read(&path).unwrap(), before);
    assert_eq!(entries(dir.path()), ["s.c1z"]);

    // A new target is not created at all.
    let fresh = dir.path().join("new.c1z");
    drop(sink(&fresh).unwrap());
    assert_eq!(entries(dir.path()), ["s.c1z"]);
}

#[test]
fn a_failed_writer_says_why_at_the_next_call_and_leaves_the_target() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.c1z");
    let doc = sample(&["u1"], &["u1"]);
    write_doc(&path, &doc);
    let before = std::fs::read(&path).unwrap();
    // A disk that fills up: the database may not grow past a few pages.
    let opts = Options {
        max_pages: Some(60),
        ..Options::default()
    };
    let mut sink = C1zSink::start(&path, opts).unwrap();
    sink.begin(&doc.connector, &doc.resource_types).unwrap();
    let users: Vec<String> = (0..2000).map(|i| format!("user-{i:06}")).collect();
    let names: Vec<&str> = users.iter().map(String::as_str).collect();
    let big = sample(&names, &[]);
    let mut first_error = None;
    for rows in big.resources.chunks(100) {
        if let Err(e) = sink.resources(rows.to_vec()) {
            first_error = Some(format!("{e:#}"));
            break;
        }
    }
    let err = match first_error {
        Some(e) => e,
        None => format!("{:#}", Box::new(sink).finish(run_stats(&doc)).unwrap_err()),
    };
    assert!(
        err.contains("cannot write resources to the c1z database") && err.contains("full"),
        "{err}"
    );
    assert_eq!(std::fs::read(&path).unwrap(), before);
    assert_eq!(entries(dir.path()), ["s.c1z"]);
}

#[test]
fn after_a_failure_every_call_repeats_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.c1z");
    let opts = Options {
        max_pages: Some(40),
        ..Options::default()
    };
    let mut sink = C1zSink::start(&path, opts).unwrap();
    let users: Vec<String> = (0..5000).map(|i| format!("user-{i:06}")).collect();
    let names: Vec<&str> = users.iter().map(String::as_str).collect();
    let big = sample(&names, &[]);
    let mut errors = Vec::new();
    for rows in big.resources.chunks(50) {
        if let Err(e) = sink.resources(rows.to_vec()) {
            errors.push(format!("{e:#}"));
        }
    }
    assert!(errors.len() >= 2, "{errors:?}");
    assert!(errors.iter().all(|e| e == &errors[0]), "{errors:?}");
    let last = format!(
        "{:#}",
        Box::new(sink).finish(RunStats::default()).unwrap_err()
    );
    assert_eq!(last, errors[0]);
    assert!(!path.exists());
    assert_eq!(entries(dir.path()), Vec::<String>::new());
}

#[test]
fn a_file_that_is_not_a_c1z_is_refused_up_front_and_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.c1z");
    std::fs::write(&path, "notes").unwrap();
    let e = sink(&path).err().unwrap();
    assert!(e.to_string().contains("not a c1z"), "{e}");
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "notes");
    assert_eq!(entries(dir.path()), ["s.c1z"]);

    // The right magic on a stream that is not zstd: refused too.
    std::fs::write(&path, b"C1ZF\0garbage").unwrap();
    let e = sink(&path).err().unwrap();
    assert!(format!("{e:#}").contains("not a valid c1z"), "{e:#}");
    assert_eq!(std::fs::read(&path).unwrap(), b"C1ZF\0garbage");
    assert_eq!(entries(dir.path()), ["s.c1z"]);
}

#[cfg(unix)]
#[test]
fn temp_databases_are_private() {
    use std::os::unix::fs::PermissionsExt as _;
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.c1z");
    // A new database, and an existing file's unpacked copy.
    for existing in [false, true] {
        let store = super::writer::Store::open(&path, &Options::default()).unwrap();
        let db = store.db_path();
        assert_eq!(mode(db.parent().unwrap()), 0o700, "existing: {existing}");
        assert_eq!(mode(db), 0o600, "existing: {existing}");
        drop(store);
        write_doc(&path, &sample(&["u1"], &[]));
    }
    assert_eq!(mode(&path), 0o600, "the packed output");

    // The compact copy: VACUUM INTO an empty private file keeps its mode.
    let (_d, conn) = open(&path);
    let compact = dir.path().join("compact.db");
    crate::atomic::create_private(&compact).unwrap();
    conn.execute("VACUUM INTO ?1", [compact.to_str().unwrap()])
        .unwrap();
    assert!(std::fs::metadata(&compact).unwrap().len() > 0);
    assert_eq!(mode(&compact), 0o600);
}

#[test]
fn an_existing_file_over_the_cap_is_refused_and_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.c1z");
    write_doc(&path, &sample(&["u1"], &["u1"]));
    let before = std::fs::read(&path).unwrap();
    let limits = Limits {
        max_decoded_bytes: 4096,
        ..Limits::default()
    };
    let e = sink_with(&path, limits).err().unwrap();
    assert!(
        matches!(
            e.downcast_ref::<C1zError>(),
            Some(C1zError::TooLarge { cap: 4096, .. })
        ),
        "{e:#}"
    );
    assert_eq!(std::fs::read(&path).unwrap(), before);
    assert_eq!(entries(dir.path()), ["s.c1z"], "no temp directory is left");
}

fn policy(origin: &str) -> ResumePolicy {
    ResumePolicy {
        fresh: false,
        max_age: std::time::Duration::from_secs(3600),
        origin: origin.into(),
    }
}

#[test]
fn a_resumable_sync_stopped_after_a_checkpoint_continues_with_its_rows() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.c1z");
    let old = sample(&["u0"], &[]);
    write_doc(&path, &old);
    let before = std::fs::read(&path).unwrap();
    let doc = sample(&["u1", "u2", "u3"], &["u1", "u2"]);

    // First process: types and two users, a checkpoint, a third user not
    // checkpointed, then it stops.
    let (mut sink, start) = resumable_sink(&path, Limits::default(), &policy("a")).unwrap();
    assert_eq!(start, Start::New);
    assert_eq!(sink.resumed(), None);
    sink.begin(&doc.connector, &doc.resource_types).unwrap();
    sink.resources(doc.resources[..2].to_vec()).unwrap();
    sink.checkpoint("after two").unwrap();
    sink.resources(doc.resources[2..3].to_vec()).unwrap();
    drop(sink);
    assert_eq!(std::fs::read(&path).unwrap(), before, "target untouched");
    assert_eq!(entries(dir.path()), [".s.c1z.partial", "s.c1z"]);

    let Some(Pending::Stopped(u)) = pending(&path).unwrap() else {
        panic!("an unfinished sync")
    };
    assert_eq!(
        (u.resources, u.grants, u.state.as_str()),
        (2, 0, "after two")
    );

    // Another origin would start over; a second process continues.
    let (mut sink, start) = resumable_sink(&path, Limits::default(), &policy("a")).unwrap();
    let Start::Resumed(r) = start else {
        panic!("{start:?}")
    };
    assert_eq!((r.state.as_str(), r.rows), ("after two", 2));
    assert_eq!(sink.resumed(), Some("after two"));
    assert_eq!(pending(&path).unwrap(), Some(Pending::Running));
    // While it holds the directory, no other sync to the target starts.
    let busy = resumable_sink(&path, Limits::default(), &policy("a"))
        .err()
        .unwrap()
        .to_string();
    assert!(busy.contains("another sync"), "{busy}");
    sink.begin(&doc.connector, &doc.resource_types).unwrap();
    // From the checkpoint on, the first user again (a duplicate) and the rest.
    sink.resources(doc.resources[..1].to_vec()).unwrap();
    sink.resources(doc.resources[2..].to_vec()).unwrap();
    sink.entitlements(doc.entitlements.clone()).unwrap();
    sink.grants(doc.grants.clone()).unwrap();
    let f = sink.finish(run_stats(&doc)).unwrap();
    assert_eq!(f.kept, 1, "the previous sync stays");
    assert_eq!(entries(dir.path()), ["s.c1z"], "the partial directory goes");
    assert_eq!(pending(&path).unwrap(), None);
    let file = C1z::open(&path).unwrap();
    let latest = file.finished().unwrap()[0].clone();
    assert_eq!(Some(&latest.sync_id), f.sync_id.as_ref());
    let got = file.load(&latest).unwrap();
    assert_eq!(got.resources, doc.resources);
    assert_eq!(got.entitlements, doc.entitlements);
    assert_eq!(got.grants, doc.grants);
    assert_eq!(f.stats.resources.values().sum::<u64>(), 4);
    assert_eq!(f.stats.duplicates_skipped, 1);
    let (_d, conn) = open(&path);
    let mode: String = conn
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "delete", "packed with a rollback journal");
}

#[test]
fn a_partial_sync_of_another_origin_or_asked_fresh_starts_over() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.c1z");
    let doc = sample(&["u1", "u2"], &[]);
    let stopped = |origin: &str| {
        let (mut sink, _) = resumable_sink(&path, Limits::default(), &policy(origin)).unwrap();
        sink.begin(&doc.connector, &doc.resource_types).unwrap();
        sink.resources(doc.resources[..1].to_vec()).unwrap();
        sink.checkpoint("x").unwrap();
    };
    stopped("a");
    let (sink, start) = resumable_sink(&path, Limits::default(), &policy("b")).unwrap();
    assert_eq!(start, Start::StartedOver(StartOver::OtherOrigin));
    assert_eq!(sink.resumed(), None);
    drop(sink);
    assert_eq!(entries(dir.path()), Vec::<String>::new(), "nothing kept");

    stopped("a");
    let fresh = ResumePolicy {
        fresh: true,
        ..policy("a")
    };
    let (mut sink, start) = resumable_sink(&path, Limits::default(), &fresh).unwrap();
    assert_eq!(start, Start::StartedOver(StartOver::Fresh));
    feed(sink.as_mut(), &doc, 1).unwrap();
    let f = sink.finish(run_stats(&doc)).unwrap();
    assert_eq!(f.stats.duplicates_skipped, 0, "nothing of the old one");
    assert_eq!(entries(dir.path()), ["s.c1z"]);
}

#[test]
fn a_sync_stopped_before_any_checkpoint_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.c1z");
    let doc = sample(&["u1"], &[]);
    let (mut sink, _) = resumable_sink(&path, Limits::default(), &policy("a")).unwrap();
    feed(sink.as_mut(), &doc, 1).unwrap();
    drop(sink);
    assert_eq!(entries(dir.path()), Vec::<String>::new());
}

#[test]
fn after_another_boot_a_partial_sync_is_checked_and_continued_when_whole() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.c1z");
    let doc = sample(&["u1", "u2"], &[]);
    {
        let (mut sink, _) = resumable_sink(&path, Limits::default(), &policy("a")).unwrap();
        sink.begin(&doc.connector, &doc.resource_types).unwrap();
        sink.resources(doc.resources[..1].to_vec()).unwrap();
        sink.checkpoint("x").unwrap();
    }
    // As if the machine had restarted since: another boot id saved.
    let db = partial_dir(&path).join("sync.db");
    let conn = Connection::open(&db).unwrap();
    let token: String = conn
        .query_row("SELECT sync_token FROM v1_sync_runs", [], |r| r.get(0))
        .unwrap();
    let mut saved: serde_json::Value = serde_json::from_str(&token).unwrap();
    saved["boot"] = "another-boot".into();
    conn.execute(
        "UPDATE v1_sync_runs SET sync_token = ?1",
        [saved.to_string()],
    )
    .unwrap();
    drop(conn);
    let (_sink, start) = resumable_sink(&path, Limits::default(), &policy("a")).unwrap();
    assert!(matches!(start, Start::Resumed(_)), "{start:?}");
}

#[test]
fn a_resumable_sync_keeps_the_two_newest_previous_syncs() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.c1z");
    let mut ids = Vec::new();
    for (i, user) in ["u1", "u2", "u3", "u4"].into_iter().enumerate() {
        let doc = sample(&[user], &[]);
        let (mut sink, _) = resumable_sink(&path, Limits::default(), &policy("a")).unwrap();
        feed(sink.as_mut(), &doc, 1).unwrap();
        sink.checkpoint("x").unwrap();
        let f = sink.finish(run_stats(&doc)).unwrap();
        assert_eq!((f.kept, f.dropped), (i.min(2), usize::from(i == 3)));
        ids.push(f.sync_id.unwrap());
    }
    let file = C1z::open(&path).unwrap();
    let left: Vec<String> = file
        .finished()
        .unwrap()
        .into_iter()
        .map(|s| s.sync_id)
        .collect();
    assert_eq!(left, [ids[3].clone(), ids[2].clone(), ids[1].clone()]);
    assert_eq!(entries(dir.path()), ["s.c1z"]);
}

#[test]
fn a_sync_finished_but_not_written_is_written_by_the_next_call() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.c1z");
    let doc = sample(&["u1", "u2"], &["u1"]);
    let (mut sink, _) = resumable_sink(&path, Limits::default(), &policy("a")).unwrap();
    feed(sink.as_mut(), &doc, 1).unwrap();
    let f = sink.finish(run_stats(&doc)).unwrap();
    assert!(write_finished(&path, Limits::default()).unwrap().is_none());

    // As if killed after the database was finished, before the rename:
    // the finished database and its marker in the partial directory.
    let partial = partial_dir(&path);
    std::fs::create_dir(&partial).unwrap();
    unpack(&path, &partial.join("sync.db")).unwrap();
    let id = f.sync_id.clone().unwrap();
    std::fs::write(partial.join("finished"), format!("{id}\nsync.db\n")).unwrap();
    std::fs::remove_file(&path).unwrap();

    let done = write_finished(&path, Limits::default()).unwrap().unwrap();
    assert_eq!(done.sync_id, f.sync_id);
    assert_eq!(done.stats.grants, 1);
    assert_eq!(entries(dir.path()), ["s.c1z"], "the partial directory goes");
    let file = C1z::open(&path).unwrap();
    let latest = file.finished().unwrap()[0].clone();
    assert_eq!(latest.sync_id, id);
    assert_eq!(file.load(&latest).unwrap().grants, doc.grants);
}

#[test]
fn a_sync_marked_finished_but_killed_before_its_ending_commit_is_continued() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.c1z");
    let doc = sample(&["u1", "u2"], &["u1"]);
    {
        let (mut sink, _) = resumable_sink(&path, Limits::default(), &policy("a")).unwrap();
        feed(sink.as_mut(), &doc, 1).unwrap();
        sink.checkpoint("the end").unwrap();
    }
    // As if killed after the marker, before the commit that ends the run:
    // the database still holds the unfinished sync.
    let Some(Pending::Stopped(u)) = pending(&path).unwrap() else {
        panic!("an unfinished sync")
    };
    let partial = partial_dir(&path);
    std::fs::write(
        partial.join("finished"),
        format!("{}\nsync.db\n", u.sync_id),
    )
    .unwrap();

    assert!(write_finished(&path, Limits::default()).unwrap().is_none());
    assert!(!partial.join("finished").exists(), "the marker goes");
    let (mut sink, start) = resumable_sink(&path, Limits::default(), &policy("a")).unwrap();
    let Start::Resumed(r) = start else {
        panic!("{start:?}")
    };
    assert_eq!(
        (r.sync_id.as_str(), r.state.as_str()),
        (u.sync_id.as_str(), "the end")
    );
    sink.begin(&doc.connector, &doc.resource_types).unwrap();
    let f = sink.finish(run_stats(&doc)).unwrap();
    assert_eq!(f.sync_id.as_deref(), Some(u.sync_id.as_str()));
    assert_eq!(entries(dir.path()), ["s.c1z"]);
    let file = C1z::open(&path).unwrap();
    let latest = file.finished().unwrap()[0].clone();
    assert_eq!(file.load(&latest).unwrap().grants, doc.grants);
}
