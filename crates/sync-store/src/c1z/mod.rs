//! The c1z file, version 1: the magic `C1ZF\0`, then one zstd frame whose
//! content is an SQLite database of syncs (MODEL.md). This is what the
//! `baton` CLI and governance platforms read, so the sync writes it by
//! default. Packing and unpacking live here, with the caps every reader
//! applies (10 GiB decoded by default, a 128 MiB zstd window), so a hostile
//! or broken file cannot exhaust the disk or memory. A file from disk is
//! untrusted input throughout ([`Limits`], [`C1zError`]).

mod encode;
mod guard;
mod limits;
mod proto;
mod read;
mod recent;
mod resume;
mod schema;
#[cfg(test)]
mod sink_tests;
mod stream;
mod trust;
mod writer;

use std::fs::File;
use std::io::{BufRead as _, Read, Write};
use std::path::Path;

use anyhow::{bail, Context as _};

pub use limits::{C1zError, Limits, STATEMENT_BUDGET};
pub use read::{C1z, SyncInfo};
pub use resume::{
    partial_dir, pending, Pending, ResumePolicy, Resumed, Start, StartOver, Unfinished,
};

/// A sink that streams a sync into the c1z at `path`: rows go into a temp
/// database beside it as pages arrive (on a writer thread, a few pages
/// behind), and [`finish`](crate::SyncSink::finish) packs it over `path`
/// atomically, keeping the file's two newest previous finished syncs.
/// Memory stays flat whatever the tenant's size; the disk beside `path`
/// needs room for the database (about 1 KB a grant) while the sync runs.
///
/// Fails now, before any row, if `path` exists and is not a c1z v1 file,
/// or is one this crate cannot trust (a [`C1zError`]: over the size cap,
/// or a schema other than the one this crate writes), or if the temp
/// directory cannot be made; an existing file is unpacked and checked
/// now too. Dropped without `finish`, the sink leaves `path` as it was and
/// removes its temp directory.
pub fn sink(path: &Path) -> anyhow::Result<Box<dyn crate::sink::SyncSink>> {
    sink_with(path, Limits::default())
}

/// [`sink`], with `limits` (the size cap, and the time budget of the
/// schema check) on the existing file at `path` whose previous syncs the
/// new file keeps.
pub fn sink_with(path: &Path, limits: Limits) -> anyhow::Result<Box<dyn crate::sink::SyncSink>> {
    Ok(Box::new(stream::C1zSink::start(
        path,
        writer::Options {
            limits,
            ..writer::Options::default()
        },
    )?))
}

/// [`sink_with`], resumable: the sync's database lives in the target's
/// partial directory ([`partial_dir`]), each [`checkpoint`] commits the
/// rows so far with the driver's position, and a sync that stops part way
/// (an error, or the process killed) leaves it there. The next resumable
/// sink to the same target continues it when `policy` allows (its
/// [`resumed`] state is the driver's), else starts over; the returned
/// [`Start`] says which, and why. The target is replaced only when the
/// sync finishes, and the directory is then removed. Two resumable syncs
/// to one target at once are refused (the directory is locked).
///
/// [`checkpoint`]: crate::SyncSink::checkpoint
/// [`resumed`]: crate::SyncSink::resumed
pub fn resumable_sink(
    path: &Path,
    limits: Limits,
    policy: &ResumePolicy,
) -> anyhow::Result<(Box<dyn crate::sink::SyncSink>, Start)> {
    let (sink, start) = stream::C1zSink::start_resumable(
        path,
        writer::Options {
            limits,
            ..writer::Options::default()
        },
        policy,
    )?;
    Ok((Box::new(sink), start))
}

/// Writes over `path` a sync that a killed process had finished but not
/// yet written (it stopped while packing the file), and says what was
/// written; `None` when there is none. Call it before [`resumable_sink`]:
/// the sync is then done, and a new one would start from scratch.
pub fn write_finished(path: &Path, limits: Limits) -> anyhow::Result<Option<crate::Finished>> {
    writer::write_finished(
        path,
        &writer::Options {
            limits,
            ..writer::Options::default()
        },
    )
}

/// The c1z file's first five bytes, `C1ZF\0`.
pub const MAGIC: &[u8; 5] = b"C1ZF\0";
const MAGIC_V3: &[u8; 5] = b"C1Z3\0";
/// The default cap on a c1z's decoded size ([`Limits::max_decoded_bytes`]),
/// 10 GiB: a file keeps three syncs at about 1 KB a grant, so this fits
/// tenants of some three million grants, while a crafted file of a few KB
/// (zstd turns 100 KB into gigabytes of zeros) costs at most this much
/// temp disk before it is refused. An absolute cap rather than a ratio to
/// the compressed size: a real database's ratio varies too much with its
/// content to tell a bomb from a big tenant.
pub const MAX_DECODED_BYTES: u64 = 10 << 30;
/// 2^27 = 128 MiB, the window readers allow: no long-window modes.
const WINDOW_LOG_MAX: u32 = 27;
/// zstd's fastest regular level, and its window stays at a few MiB. On the
/// bench's databases it also packs smaller than the default level 3 (the
/// 100,000-user c1z: 51.5 MB against 54.1 MB, in two thirds of the CPU;
/// examples/write_bench.rs).
const LEVEL: i32 = 1;
/// Input a zstd worker compresses at a time.
const JOB_SIZE: u32 = 1 << 20;

/// What `sync -f FILE` writes, from the file name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OutputFormat {
    /// The JSON document ([`crate::SyncOutput`]).
    Json,
    /// A c1z v1 file.
    C1z,
}

impl OutputFormat {
    /// `.json` keeps the JSON document; every other name (`.c1z` or none)
    /// gets a c1z, the format the governance tooling reads.
    pub fn for_path(path: &Path) -> OutputFormat {
        match path.extension().and_then(|e| e.to_str()) {
            Some(ext) if ext.eq_ignore_ascii_case("json") => OutputFormat::Json,
            _ => OutputFormat::C1z,
        }
    }

    /// Refuses, before any work, to overwrite a file that is not of this
    /// format: a c1z target keeps the file's previous syncs, and anything
    /// else there was not ours to replace.
    pub fn check_target(self, path: &Path) -> anyhow::Result<()> {
        if self != OutputFormat::C1z {
            return Ok(());
        }
        match sniff(path)? {
            None | Some(Kind::C1zV1) => Ok(()),
            Some(kind) => bail!(
                "{} exists and is not a c1z v1 file ({}); refusing to replace it: remove it or choose another -f",
                path.display(),
                kind.describe()
            ),
        }
    }
}

/// What a file holds, as far as its first bytes tell ([`sniff`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A c1z v1 (`C1ZF\0`): SQLite in zstd, what this crate reads and writes.
    C1zV1,
    /// A c1z v3 (`C1Z3\0`): the SDK's Pebble store, which this crate does not read.
    C1zV3,
    /// Text starting with `{`.
    Json,
    /// Anything else.
    Other,
}

impl Kind {
    fn describe(self) -> &'static str {
        match self {
            Kind::C1zV1 => "c1z v1",
            Kind::C1zV3 => "c1z v3, a Pebble store this host does not read",
            Kind::Json => "it looks like JSON",
            Kind::Other => "it does not start with C1ZF",
        }
    }
}

/// What a file holds, from its first bytes; `None` if it does not exist.
pub fn sniff(path: &Path) -> anyhow::Result<Option<Kind>> {
    let mut f = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("cannot open {}", path.display())),
    };
    let mut head = [0u8; 5];
    let mut n = 0;
    while n < head.len() {
        match f.read(&mut head[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
        }
    }
    let head = &head[..n];
    Ok(Some(if head == MAGIC {
        Kind::C1zV1
    } else if head == MAGIC_V3 {
        Kind::C1zV3
    } else if head.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{') {
        Kind::Json
    } else {
        Kind::Other
    }))
}

/// Decompresses the c1z at `src` into the SQLite file `dst`, which must not
/// exist yet; it is created readable by its owner only (0600). The decoded
/// size is capped at [`MAX_DECODED_BYTES`] ([`C1zError::TooLarge`]); on any
/// error `dst` is removed.
pub fn unpack(src: &Path, dst: &Path) -> anyhow::Result<()> {
    unpack_capped(src, dst, MAX_DECODED_BYTES)
}

/// [`unpack`] under `cap` decoded bytes: refused before writing anything if
/// the zstd frame declares more, stopped as soon as the count passes it.
fn unpack_capped(src: &Path, dst: &Path, cap: u64) -> anyhow::Result<()> {
    let name = src.display();
    let too_large = |declared| C1zError::TooLarge {
        file: src.to_path_buf(),
        cap,
        declared,
    };
    let mut f =
        std::io::BufReader::new(File::open(src).with_context(|| format!("cannot open {name}"))?);
    let mut head = [0u8; 5];
    f.read_exact(&mut head)
        .with_context(|| format!("{name} is not a c1z file: too short"))?;
    if &head != MAGIC {
        let kind = if &head == MAGIC_V3 {
            Kind::C1zV3
        } else {
            Kind::Other
        };
        bail!("{name} is not a c1z v1 file ({})", kind.describe());
    }
    // The frame header (at most 18 bytes, in the buffer now) may declare
    // the content size; this crate's packer always does. A frame that does
    // not, or further frames, are held to the cap by the count below.
    let frame = f
        .fill_buf()
        .with_context(|| format!("cannot read {name}"))?;
    if let Ok(Some(declared)) = zstd::zstd_safe::get_frame_content_size(frame) {
        if declared > cap {
            return Err(too_large(Some(declared)).into());
        }
    }
    let mut dec = zstd::stream::read::Decoder::with_buffer(f)
        .with_context(|| format!("{name}: cannot start zstd"))?;
    dec.window_log_max(WINDOW_LOG_MAX)
        .with_context(|| format!("{name}: cannot set the zstd window cap"))?;
    let mut out = std::io::BufWriter::new(crate::atomic::create_private(dst)?);
    let copied = (|| {
        // One byte past the cap is how the count knows it was passed.
        let n = std::io::copy(&mut dec.take(cap.saturating_add(1)), &mut out)
            .with_context(|| format!("{name} is not a valid c1z file: its zstd stream does not decode (or needs a window over 128 MiB)"))?;
        if n > cap {
            return Err(too_large(None).into());
        }
        out.flush()
            .with_context(|| format!("cannot write {}", dst.display()))
    })();
    if copied.is_err() {
        // Nothing partial is left behind: a refused file takes no disk.
        drop(out);
        let _ = std::fs::remove_file(dst);
    }
    copied
}

/// Packs the SQLite file `db` into a c1z at `target`, atomically: a temp
/// file beside the target, flushed, then renamed over it.
pub fn pack(db: &Path, target: &Path) -> anyhow::Result<()> {
    pack_via(db, target, None)
}

/// [`pack`] with the temp file in `tmp_dir` (beside the target if `None`).
fn pack_via(db: &Path, target: &Path, tmp_dir: Option<&Path>) -> anyhow::Result<()> {
    let size = std::fs::metadata(db)
        .with_context(|| format!("cannot read {}", db.display()))?
        .len();
    let mut src = File::open(db).with_context(|| format!("cannot read {}", db.display()))?;
    let write = |w: &mut dyn Write| {
        w.write_all(MAGIC)?;
        let mut enc = zstd::stream::write::Encoder::new(w, LEVEL).context("cannot start zstd")?;
        // The size in the frame header lets readers (and `zstd -l`) size
        // their buffers; the checksum catches a damaged copy.
        enc.set_pledged_src_size(Some(size))?;
        enc.include_contentsize(true)?;
        enc.include_checksum(true)?;
        // Worker threads still write one frame; a bench-sized database is
        // about 550 MB per sync kept, so packing is worth every core.
        let workers = std::thread::available_parallelism().map_or(1, |n| n.get().min(8));
        if workers > 1 {
            enc.multithread(workers as u32)?;
            // Each job buffers its input and output; zstd's default job
            // (4 windows, 8 MiB at this level) costs ~45 MiB with two
            // workers, 1 MiB jobs ~5 MiB, for the same speed and size.
            enc.set_parameter(zstd::zstd_safe::CParameter::JobSize(JOB_SIZE))?;
        }
        // Large reads: the database is hundreds of MB.
        let mut buf = vec![0u8; 1 << 20];
        loop {
            let n = match src.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e).context("cannot read the database"),
            };
            enc.write_all(&buf[..n])
                .context("cannot compress the database")?;
        }
        enc.finish().context("cannot finish the zstd stream")?;
        Ok(())
    };
    match tmp_dir {
        Some(dir) => crate::atomic::write_atomically_via(target, dir, write),
        None => crate::atomic::write_atomically(target, write),
    }
}

/// A KSUID (what the SDK names syncs with): 4 bytes of seconds since
/// 2014-05-13 16:53:20 UTC, then 16 random bytes, in base62 as 27
/// characters. Ids sort by their second; the writer orders syncs by
/// `ended_at`, which has nanoseconds.
pub fn new_sync_id() -> String {
    const EPOCH: u64 = 1_400_000_000;
    const ALPHABET: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
        .saturating_sub(EPOCH) as u32;
    let mut n = [0u8; 20];
    n[..4].copy_from_slice(&secs.to_be_bytes());
    n[4..].copy_from_slice(&rand::random::<[u8; 16]>());
    // Long division of the 160-bit number by 62, 27 times.
    let mut out = [b'0'; 27];
    for slot in out.iter_mut().rev() {
        let mut rem = 0u32;
        for byte in n.iter_mut() {
            let acc = (rem << 8) | u32::from(*byte);
            *byte = (acc / 62) as u8;
            rem = acc % 62;
        }
        *slot = ALPHABET[rem as usize];
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn json_names_keep_json_and_everything_else_is_c1z() {
        assert_eq!(
            OutputFormat::for_path(Path::new("a.json")),
            OutputFormat::Json
        );
        assert_eq!(
            OutputFormat::for_path(Path::new("a.JSON")),
            OutputFormat::Json
        );
        assert_eq!(
            OutputFormat::for_path(Path::new("a.c1z")),
            OutputFormat::C1z
        );
        assert_eq!(OutputFormat::for_path(Path::new("sync")), OutputFormat::C1z);
        assert_eq!(
            OutputFormat::for_path(Path::new("a.txt")),
            OutputFormat::C1z
        );
    }

    #[test]
    fn pack_and_unpack_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("db");
        let content: Vec<u8> = (0..300_000u32)
            .flat_map(|i| (i % 251).to_le_bytes())
            .collect();
        std::fs::write(&db, &content).unwrap();
        let c1z = dir.path().join("x.c1z");
        pack(&db, &c1z).unwrap();
        let packed = std::fs::read(&c1z).unwrap();
        assert_eq!(&packed[..5], MAGIC);
        assert!(packed.len() < content.len() / 10, "compressed");
        let back = dir.path().join("back");
        unpack(&c1z, &back).unwrap();
        assert_eq!(std::fs::read(&back).unwrap(), content);
        assert_eq!(sniff(&c1z).unwrap(), Some(Kind::C1zV1));
        OutputFormat::C1z.check_target(&c1z).unwrap();
    }

    #[test]
    fn the_decoded_size_is_capped() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("db");
        std::fs::write(&db, vec![0u8; 10_000]).unwrap();
        let c1z = dir.path().join("x.c1z");
        pack(&db, &c1z).unwrap();
        let back = dir.path().join("back");
        let e = unpack_capped(&c1z, &back, 9_999).unwrap_err();
        assert_eq!(
            e.downcast_ref::<C1zError>(),
            Some(&C1zError::TooLarge {
                file: c1z.clone(),
                cap: 9_999,
                declared: Some(10_000)
            }),
            "refused from the frame header: {e}"
        );
        assert!(e.to_string().contains("declares 10000 bytes"), "{e}");
        assert!(e.to_string().contains("9999 bytes cap"), "{e}");
        assert!(!back.exists(), "nothing was written");
        unpack_capped(&c1z, &back, 10_000).unwrap();
    }

    #[test]
    fn a_bomb_that_hides_its_size_is_stopped_at_the_cap() {
        // 64 MiB of zeros in a few KB, the size left out of the header.
        let dir = tempfile::tempdir().unwrap();
        let mut enc = zstd::stream::write::Encoder::new(Vec::new(), 19).unwrap();
        enc.include_contentsize(false).unwrap();
        let zeros = vec![0u8; 1 << 20];
        for _ in 0..64 {
            enc.write_all(&zeros).unwrap();
        }
        let mut file = MAGIC.to_vec();
        file.extend(enc.finish().unwrap());
        assert!(file.len() < 16 * 1024, "{} bytes", file.len());
        let c1z = dir.path().join("bomb.c1z");
        std::fs::write(&c1z, &file).unwrap();
        let frame = &file[MAGIC.len()..];
        assert!(matches!(
            zstd::zstd_safe::get_frame_content_size(frame),
            Ok(None)
        ));

        let back = dir.path().join("back");
        let e = unpack_capped(&c1z, &back, 1 << 20).unwrap_err();
        assert_eq!(
            e.downcast_ref::<C1zError>(),
            Some(&C1zError::TooLarge {
                file: c1z.clone(),
                cap: 1 << 20,
                declared: None
            })
        );
        assert!(
            e.to_string().contains("the partial copy was removed"),
            "{e}"
        );
        assert!(!back.exists(), "the partial copy is removed");
        let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(left.len(), 1, "only the bomb");
    }

    #[test]
    fn a_long_window_stream_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let content: Vec<u8> = (0..1_000_000u32).flat_map(|i| i.to_le_bytes()).collect();
        let mut enc = zstd::stream::write::Encoder::new(Vec::new(), 1).unwrap();
        enc.window_log(28).unwrap();
        enc.write_all(&content).unwrap();
        let mut file = MAGIC.to_vec();
        file.extend(enc.finish().unwrap());
        let c1z = dir.path().join("long.c1z");
        std::fs::write(&c1z, file).unwrap();
        let e = unpack(&c1z, &dir.path().join("back")).unwrap_err();
        assert!(format!("{e:#}").contains("window"), "{e:#}");
    }

    #[test]
    fn other_files_are_named_for_what_they_are() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.c1z");
        assert_eq!(sniff(&p).unwrap(), None);
        OutputFormat::C1z.check_target(&p).unwrap();
        std::fs::write(&p, " {\"a\":1}").unwrap();
        assert_eq!(sniff(&p).unwrap(), Some(Kind::Json));
        let e = OutputFormat::C1z.check_target(&p).unwrap_err().to_string();
        assert!(e.contains("not a c1z") && e.contains("JSON"), "{e}");
        std::fs::write(&p, b"C1Z3\0pebble").unwrap();
        let e = unpack(&p, &dir.path().join("b")).unwrap_err().to_string();
        assert!(e.contains("v3"), "{e}");
        std::fs::write(&p, b"hi").unwrap();
        assert_eq!(sniff(&p).unwrap(), Some(Kind::Other));
        OutputFormat::Json.check_target(&p).unwrap();
    }

    #[test]
    fn sync_ids_are_27_base62_characters_and_unique() {
        let a = new_sync_id();
        let b = new_sync_id();
        assert_eq!(a.len(), 27);
        assert!(a.bytes().all(|c| c.is_ascii_alphanumeric()));
        assert_ne!(a, b);
        // Same second, so the 4-byte time prefix sorts them together with
        // today's ids: well above the KSUID epoch's "000000…".
        assert!(a.as_str() > "0a");
    }
}
