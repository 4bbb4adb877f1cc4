//! Runs identity-governance connector components, written by others, in a
//! wasmtime sandbox, and streams their syncs into a [`SyncSink`].
//!
//! The runtime knows the `idgov:connector` contract (versions 0.1.0, 0.2.0
//! and 0.3.0) and nothing of any application. One [`Engine`] per process
//! compiles (or takes from its cache) and checks each [`Component`]; every
//! job gets a fresh [`Connector`] instance with an empty WASI context, its
//! settings through `wasi:config`, and HTTP only to the origins the
//! operator granted ([`egress`]): nothing the component says widens them.
//!
//! ```no_run
//! use connector_runtime::{Connector, Engine, EngineConfig, Limits, RetryPolicy};
//! # async fn demo() -> anyhow::Result<()> {
//! let engine = Engine::new(&EngineConfig::default())?;
//! let component = engine.load(std::path::Path::new("ironclad_connector.wasm"))?;
//! let limits = Limits::default();
//! let (meta, _types) = component.metadata(&limits).await?;
//! let settings = [("ic-client-id".to_string(), "…".to_string())];
//! let egress = connector_runtime::OperatorEgress::default();
//! let mut conn = Connector::open(&component, &limits, settings, &egress).await?;
//! let sink = sync_store::c1z::sink(std::path::Path::new("sync.c1z"))?;
//! let done = connector_runtime::sync::run(&mut conn, &meta, &RetryPolicy::default(), sink).await?;
//! println!("{} grants", done.stats.grants);
//! # Ok(())
//! # }
//! ```

pub mod allow_list;
mod bindings;
pub mod bounds;
pub mod budget;
pub mod cache;
mod caps;
pub mod checkpoint;
mod client;
pub mod config;
mod connector;
mod convert;
pub mod egress;
mod engine;
mod errors;
mod instance;
pub mod network;
pub mod outbound;
pub mod rate;
mod retry;
pub mod secrets;
mod stdio;
pub mod sync;
mod types;

pub use bounds::Bounds;
pub use budget::Caps;
pub use caps::SyncCaps;
pub use connector::{Connector, OpenError};
pub use egress::OperatorEgress;
pub use engine::{Component, Engine, EngineConfig};
pub use errors::{CallError, LoadError};
pub use instance::{Limits, MAX_IN_FLIGHT_KEY};
pub use network::{Network, NetworkError, ProxyChoice};
pub use rate::{Lowering, RateError, RateLedger};
pub use retry::RetryPolicy;
pub use sync_store;
pub use types::*;
