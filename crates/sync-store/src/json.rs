//! The JSON output: one [`SyncOutput`](crate::SyncOutput) document (see
//! the README), written atomically when the sync finishes. Rows are
//! appended to spool files in a private temp directory beside the target as
//! they arrive, and `finish` streams the spools into the document, so the
//! file is byte for byte what `serde_json::to_writer(&sync_output)` and a
//! newline give for the same rows in the same order, without the document
//! ever being in memory.

use std::collections::hash_map::RandomState;
use std::collections::HashSet;
use std::fs::File;
use std::hash::{BuildHasher, Hash};
use std::io::{BufWriter, Seek as _, Write};
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use serde::Serialize;

use crate::atomic::{work_dir, write_atomically};
use crate::model::{ConnectorInfo, Entitlement, Grant, Resource, ResourceType};
use crate::sink::{Counts, Finished, RunStats, SyncSink};

/// A sink that writes the JSON document to `path` when the sync finishes.
/// Fails now if its temp directory (beside `path`) cannot be made; dropped
/// without `finish`, it leaves `path` as it was and removes that directory.
pub fn sink(path: &Path) -> anyhow::Result<Box<dyn SyncSink>> {
    let work = work_dir(path)?;
    let spool = |name: &str| Spool::create(&work.path().join(name));
    Ok(Box::new(JsonSink {
        target: path.to_path_buf(),
        connector: ConnectorInfo {
            display_name: String::new(),
            version: String::new(),
        },
        types: Vec::new(),
        resources: spool("resources")?,
        entitlements: spool("entitlements")?,
        grants: spool("grants")?,
        seen: Seen::default(),
        counts: Counts::default(),
        _work: work,
    }))
}

struct JsonSink {
    target: PathBuf,
    connector: ConnectorInfo,
    types: Vec<ResourceType>,
    resources: Spool,
    entitlements: Spool,
    grants: Spool,
    seen: Seen,
    counts: Counts,
    /// Last, so the spools are closed before their directory goes.
    _work: tempfile::TempDir,
}

/// The ids seen so far, as 128-bit hashes (two independently keyed
/// SipHashes): a collision is vanishingly unlikely, and the duplicate check
/// costs 16 bytes a row (the JSON output is not the memory-bounded one).
#[derive(Default)]
struct Seen {
    keys: (RandomState, RandomState),
    resources: HashSet<u128>,
    entitlements: HashSet<u128>,
    grants: HashSet<u128>,
}

impl Seen {
    fn hash(&self, key: impl Hash + Copy) -> u128 {
        (u128::from(self.keys.0.hash_one(key)) << 64) | u128::from(self.keys.1.hash_one(key))
    }
}

/// One array's rows, comma-separated JSON, in a file.
struct Spool {
    path: PathBuf,
    file: BufWriter<File>,
    rows: u64,
}

impl Spool {
    fn create(path: &Path) -> anyhow::Result<Spool> {
        let file = File::options()
            .read(true)
            .write(true)
            .create_new(true)
            .open(path)
            .with_context(|| format!("cannot create {}", path.display()))?;
        Ok(Spool {
            path: path.to_path_buf(),
            file: BufWriter::with_capacity(256 << 10, file),
            rows: 0,
        })
    }

    fn push(&mut self, row: &impl Serialize) -> anyhow::Result<()> {
        if self.rows > 0 {
            self.file.write_all(b",")?;
        }
        serde_json::to_writer(&mut self.file, row).context("cannot encode the output")?;
        self.rows += 1;
        Ok(())
    }

    /// `[`, the rows, `]` into `w`.
    fn copy_array(&mut self, w: &mut dyn Write) -> anyhow::Result<()> {
        let name = self.path.display();
        self.file
            .flush()
            .with_context(|| format!("cannot write {name}"))?;
        let file = self.file.get_mut();
        file.rewind()
            .with_context(|| format!("cannot read {name}"))?;
        w.write_all(b"[")?;
        std::io::copy(file, w).with_context(|| format!("cannot copy {name}"))?;
        w.write_all(b"]")?;
        Ok(())
    }
}

impl JsonSink {
    fn write_document(&mut self, stats: &crate::model::Stats) -> anyhow::Result<()> {
        // The fields of `SyncOutput`, in its order; a test holds the two
        // to the same bytes.
        let JsonSink {
            target,
            connector,
            types,
            resources,
            entitlements,
            grants,
            ..
        } = self;
        write_atomically(target, |w| {
            w.write_all(b"{\"connector\":")?;
            serde_json::to_writer(&mut *w, connector)?;
            w.write_all(b",\"resource_types\":")?;
            serde_json::to_writer(&mut *w, types)?;
            w.write_all(b",\"resources\":")?;
            resources.copy_array(w)?;
            w.write_all(b",\"entitlements\":")?;
            entitlements.copy_array(w)?;
            w.write_all(b",\"grants\":")?;
            grants.copy_array(w)?;
            w.write_all(b",\"stats\":")?;
            serde_json::to_writer(&mut *w, stats)?;
            w.write_all(b"}\n")?;
            Ok(())
        })
    }
}

impl SyncSink for JsonSink {
    fn begin(&mut self, connector: &ConnectorInfo, types: &[ResourceType]) -> anyhow::Result<()> {
        self.connector = connector.clone();
        self.types = types.to_vec();
        Ok(())
    }

    fn resources(&mut self, rows: Vec<Resource>) -> anyhow::Result<()> {
        for r in &rows {
            let key = self.seen.hash((&r.id.resource_type, &r.id.resource));
            if !self.seen.resources.insert(key) {
                self.counts.duplicates += 1;
                continue;
            }
            self.resources.push(r)?;
            self.counts.resource(&r.id.resource_type);
        }
        Ok(())
    }

    fn entitlements(&mut self, rows: Vec<Entitlement>) -> anyhow::Result<()> {
        for e in &rows {
            // The host rebuilt the id from its parts (see `ids`).
            if !self.seen.entitlements.insert(self.seen.hash(&e.id)) {
                self.counts.duplicates += 1;
                continue;
            }
            self.entitlements.push(e)?;
            self.counts.entitlements += 1;
            let owner = self
                .seen
                .hash((&e.resource.resource_type, &e.resource.resource));
            if !self.seen.resources.contains(&owner) {
                self.counts.orphans += 1;
            }
        }
        Ok(())
    }

    fn grants(&mut self, rows: Vec<Grant>) -> anyhow::Result<()> {
        for g in &rows {
            // Who holds which entitlement, not the string joining them.
            let key = self.seen.hash((
                &g.entitlement,
                &g.principal.resource_type,
                &g.principal.resource,
            ));
            if !self.seen.grants.insert(key) {
                self.counts.duplicates += 1;
                continue;
            }
            self.grants.push(g)?;
            self.counts.grants += 1;
            if !self
                .seen
                .entitlements
                .contains(&self.seen.hash(&g.entitlement))
            {
                self.counts.orphans += 1;
            }
        }
        Ok(())
    }

    fn finish(mut self: Box<Self>, run: RunStats) -> anyhow::Result<Finished> {
        let stats = self.counts.stats(run);
        self.write_document(&stats)?;
        tracing::info!(path = %self.target.display(), "JSON output written");
        Ok(Finished {
            stats,
            sync_id: None,
            kept: 0,
            dropped: 0,
            orphans: self.counts.orphans,
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::model::SyncOutput;
    use crate::testing::{feed, sample};

    fn names(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn the_file_is_the_serialized_document_of_the_rows_kept() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.json");
        let mut doc = sample(&["u1", "u2", "u3"], &["u1", "u3"]);
        doc.resources[1].description = Some("Quote \" and ünïcode".into());
        let mut sink = sink(&path).unwrap();
        feed(sink.as_mut(), &doc, 2).unwrap();
        // Repeats across pages and kinds count once; the first one wins.
        let mut again = doc.resources[0].clone();
        again.display_name = "Someone else".into();
        sink.resources(vec![again]).unwrap();
        sink.entitlements(doc.entitlements.clone()).unwrap();
        sink.grants(vec![doc.grants[0].clone()]).unwrap();
        let run = RunStats {
            started_at: doc.stats.started_at.clone(),
            http_requests: 3,
            retries: 0,
            duplicates_skipped: 1,
            fetch_ms: 55,
            totals_moved: [(
                "user".to_string(),
                crate::model::TotalMoved { first: 3, last: 4 },
            )]
            .into(),
        };
        let f = sink.finish(run).unwrap();
        assert_eq!(f.stats.duplicates_skipped, 4);
        assert_eq!((f.sync_id, f.orphans), (None, 0));

        let want = SyncOutput {
            stats: f.stats.clone(),
            ..doc
        };
        let mut bytes = serde_json::to_string(&want).unwrap();
        bytes.push('\n');
        assert_eq!(std::fs::read_to_string(&path).unwrap(), bytes);
        assert_eq!(names(dir.path()), ["out.json"]);
    }

    #[test]
    fn an_empty_sync_is_an_empty_document() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.json");
        let f = sink(&path).unwrap().finish(RunStats::default()).unwrap();
        let want = SyncOutput {
            connector: ConnectorInfo {
                display_name: String::new(),
                version: String::new(),
            },
            resource_types: vec![],
            resources: vec![],
            entitlements: vec![],
            grants: vec![],
            stats: f.stats,
        };
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            serde_json::to_string(&want).unwrap() + "\n"
        );
    }

    #[test]
    fn rows_that_name_unlisted_records_are_counted() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.json");
        let mut doc = sample(&["u1"], &["u1"]);
        doc.grants[0].entitlement = "group:never:member".into();
        doc.entitlements[0].resource.resource = "gone".into();
        let mut sink = sink(&path).unwrap();
        feed(sink.as_mut(), &doc, 5).unwrap();
        assert_eq!(sink.finish(RunStats::default()).unwrap().orphans, 2);
    }

    #[test]
    fn a_sink_dropped_midway_leaves_the_previous_file_and_no_temp_dir() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.json");
        std::fs::write(&path, "previous").unwrap();
        {
            let mut sink = sink(&path).unwrap();
            feed(sink.as_mut(), &sample(&["u1"], &["u1"]), 1).unwrap();
            assert_eq!(names(dir.path()).len(), 2);
        }
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "previous");
        assert_eq!(names(dir.path()), ["out.json"]);
    }
}
