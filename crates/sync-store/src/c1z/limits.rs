//! What a c1z file from disk may cost the host, and the typed errors for a
//! file that would cost more. A c1z is untrusted input: anyone who can
//! write the file (or hand it over for `inspect`) chooses its size and its
//! SQLite schema, so the reader and the writer (which keeps an existing
//! file's previous syncs) unpack it under a size cap, refuse a schema that
//! is not exactly the one this crate writes, and stop a statement that runs
//! past a time budget.

use std::path::{Path, PathBuf};
use std::time::Duration;

/// The caps applied to a c1z read from disk ([`C1z::open_with`],
/// [`sink_with`]). `Limits::default()` is what [`C1z::open`] and [`sink`]
/// use; change a field of it to raise one.
///
/// [`C1z::open_with`]: super::C1z::open_with
/// [`C1z::open`]: super::C1z::open
/// [`sink_with`]: super::sink_with
/// [`sink`]: super::sink
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limits {
    /// The most bytes a c1z may decode to, checked against the size its
    /// zstd frame declares before anything is written, then counted while
    /// it is unpacked. Default [`MAX_DECODED_BYTES`](super::MAX_DECODED_BYTES),
    /// 10 GiB.
    pub max_decoded_bytes: u64,
    /// The wall time one statement on the file may take, from its start to
    /// its last row; the reader's checks of the file's schema count as one
    /// statement. The writer applies it to those checks only: the rest of
    /// its work on the previous syncs (dropping old ones, building the
    /// indexes, the compact copy) is its own SQL over a schema it has
    /// checked, and grows with the file, which the size cap bounds.
    /// Default [`STATEMENT_BUDGET`].
    pub statement_budget: Duration,
}

/// The default [`Limits::statement_budget`], 60 s: a full scan of a
/// database at the 10 GiB cap, read from disk, takes tens of seconds,
/// and a statement that runs longer than that on a file whose schema
/// passed the checks is stuck, not slow.
pub const STATEMENT_BUDGET: Duration = Duration::from_secs(60);

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_decoded_bytes: super::MAX_DECODED_BYTES,
            statement_budget: STATEMENT_BUDGET,
        }
    }
}

/// Why a c1z from disk was refused, for a caller that words it its own way
/// (`anyhow::Error::downcast_ref::<C1zError>()`); the message says what to
/// do on one line.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum C1zError {
    /// The file decodes, or says in its zstd frame that it decodes, to more
    /// than [`Limits::max_decoded_bytes`]; nothing of it is left on disk.
    TooLarge {
        /// The c1z.
        file: PathBuf,
        /// The cap, in bytes.
        cap: u64,
        /// The size the frame declares, when it declares one over the cap
        /// (refused before unpacking); `None` when the count passed the cap
        /// while unpacking.
        declared: Option<u64>,
    },
    /// The file's database is not exactly the schema this crate writes: a
    /// view, a trigger, a table, index or column of its own, or one
    /// declared differently. Nothing in it was queried.
    Untrusted {
        /// The c1z.
        file: PathBuf,
        /// What was found, e.g. `it has a view "x" (views and triggers are
        /// refused)`; names are quoted and cut to 64 characters.
        why: String,
    },
    /// A statement on the file ran past [`Limits::statement_budget`] and
    /// was interrupted.
    TooSlow {
        /// The c1z.
        file: PathBuf,
        /// The budget it ran past.
        budget: Duration,
    },
}

impl std::fmt::Display for C1zError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            C1zError::TooLarge {
                file,
                cap,
                declared: Some(n),
            } => write!(
                f,
                "{} declares {} of data, over the {} cap on an unpacked c1z; refused before unpacking (if you trust the file, raise the cap: --max-c1z-gb)",
                file.display(),
                size(*n),
                size(*cap)
            ),
            C1zError::TooLarge {
                file,
                cap,
                declared: None,
            } => write!(
                f,
                "{} decodes to more than the {} cap on an unpacked c1z; unpacking stopped and the partial copy was removed (if you trust the file, raise the cap: --max-c1z-gb)",
                file.display(),
                size(*cap)
            ),
            C1zError::Untrusted { file, why } => write!(
                f,
                "{} is not a c1z this host wrote or can trust: {why}; sync again to a new file",
                file.display()
            ),
            C1zError::TooSlow { file, budget } => write!(
                f,
                "a query on {} ran past its {} budget and was stopped: the file is crafted to stall readers or too large for the budget; sync again to a new file",
                file.display(),
                humantime::format_duration(*budget)
            ),
        }
    }
}

impl std::error::Error for C1zError {}

impl C1zError {
    pub(super) fn untrusted(file: &Path, why: String) -> C1zError {
        C1zError::Untrusted {
            file: file.to_path_buf(),
            why,
        }
    }
}

/// `n` bytes, in GiB when it is a whole number of them (the caps people
/// set), else in bytes.
fn size(n: u64) -> String {
    const GIB: u64 = 1 << 30;
    if n >= GIB && n & (GIB - 1) == 0 {
        format!("{} GiB", n / GIB)
    } else {
        format!("{n} bytes")
    }
}

/// A name from the file, for a message: quoted (so control characters are
/// escaped) and cut to 64 characters.
pub(super) fn shown(name: &str) -> String {
    const MAX: usize = 64;
    let mut cut: String = name.chars().take(MAX).collect();
    if cut.len() < name.len() {
        cut.push('…');
    }
    format!("{cut:?}")
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn messages_are_one_line_and_say_what_to_do() {
        let file = PathBuf::from("s.c1z");
        let e = C1zError::TooLarge {
            file: file.clone(),
            cap: 10 << 30,
            declared: Some(3 << 30),
        };
        assert_eq!(
            e.to_string(),
            "s.c1z declares 3 GiB of data, over the 10 GiB cap on an unpacked c1z; refused before unpacking (if you trust the file, raise the cap: --max-c1z-gb)"
        );
        let e = C1zError::TooSlow {
            file: file.clone(),
            budget: Duration::from_secs(60),
        };
        assert!(e.to_string().contains("its 1m budget"), "{e}");
        let e = C1zError::untrusted(&file, format!("it has a view {}", shown("v\nx")));
        assert!(!e.to_string().contains('\n'), "{e}");
        assert!(e.to_string().contains(r#"view "v\nx""#), "{e}");
    }

    #[test]
    fn names_are_cut() {
        let long = "é".repeat(100);
        let s = shown(&long);
        assert_eq!(s.chars().count(), 64 + 3, "64, the ellipsis and the quotes");
        assert_eq!(shown("v1_grants"), "\"v1_grants\"");
    }
}
