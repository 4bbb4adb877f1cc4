//! The sync data, with no WebAssembly runtime: the typed model a connector's
//! answers become, the [`SyncSink`] a sync streams into, the c1z and JSON
//! outputs (streaming writers and reader), the diff of two syncs, and the
//! baton id formats. A platform that only reads c1z files depends on this
//! crate alone.
//!
//! A sync streams into a sink page by page ([`c1z::sink`], [`json::sink`]):
//! memory stays flat whatever the tenant's size, and a sync that fails or is
//! interrupted leaves the previous file as it was.
//!
//! ```no_run
//! # fn main() -> anyhow::Result<()> {
//! let file = sync_store::c1z::C1z::open(std::path::Path::new("sync.c1z"))?;
//! if let Some(latest) = file.finished()?.first() {
//!     let sync = file.load(latest)?;
//!     println!("{} grants", sync.grants.len());
//! }
//! # Ok(())
//! # }
//! ```

#![warn(missing_docs)]

pub mod atomic;
pub mod c1z;
pub mod diff;
pub mod ids;
pub mod json;
pub mod model;
pub mod sink;
#[cfg(test)]
mod testing;

pub use model::SyncOutput;
pub use sink::{Finished, RunStats, SyncSink};
