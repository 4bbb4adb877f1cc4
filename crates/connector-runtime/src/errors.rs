//! Typed errors at the runtime's boundary: loading a component, and a call
//! into one. Each message is one line that says what to do.

use std::path::PathBuf;
use std::time::Duration;

use crate::types::ConnectorError;

/// Why a component could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The file could not be read.
    #[error("cannot read the component {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// A core module where a component was expected.
    #[error("{path} is a core WebAssembly module, not a component: build the connector for wasm32-wasip2 (or wrap it with `wasm-tools component new`)")]
    CoreModule {
        /// The file.
        path: PathBuf,
    },
    /// A WebAssembly binary of an encoding this runtime does not know.
    #[error("{path} is a WebAssembly binary of an unsupported encoding version: rebuild it with a current toolchain")]
    UnknownEncoding {
        /// The file.
        path: PathBuf,
    },
    /// Not WebAssembly at all.
    #[error("{path} is not a WebAssembly component (no \\0asm header)")]
    NotWasm {
        /// The file.
        path: PathBuf,
    },
    /// wasmtime refused to compile it.
    #[error("{path} is not a valid component: {message}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// wasmtime's words.
        message: String,
    },
    /// It declares more memories, tables or table entries, or larger ones,
    /// than the host gives one instance (the pooling allocator's check).
    #[error("{path} asks for more than the host gives one instance ({message}): not a component this host runs (--memory-mb raises the memory)")]
    TooBig {
        /// The file.
        path: PathBuf,
        /// wasmtime's words on what did not fit.
        message: String,
    },
    /// A component of another world.
    #[error("{path} is not a connector: it exports {exports} but not the idgov:connector interfaces (build it against wit/v0.2.0/connector.wit)")]
    NotAConnector {
        /// The file.
        path: PathBuf,
        /// What it exports instead.
        exports: String,
    },
    /// A connector built for a contract version this runtime does not run.
    #[error("{path} was built for idgov:connector@{found}; this host runs idgov:connector@{supported}: rebuild the connector against one of those (wit/) or use a host of its version")]
    UnsupportedVersion {
        /// The file.
        path: PathBuf,
        /// The version it was built for.
        found: String,
        /// The versions this runtime runs.
        supported: String,
    },
    /// Its imports or exports do not fit the contract it names.
    #[error("{path} cannot run here: {message}")]
    Link {
        /// The file.
        path: PathBuf,
        /// What does not fit.
        message: String,
    },
    /// The engine could not be set up.
    #[error("cannot set up the WebAssembly engine: {0}")]
    Engine(String),
}

/// Why a call into a component did not give an answer.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    /// The connector answered with its own error.
    #[error(transparent)]
    Connector(#[from] ConnectorError),
    /// The call ran past its deadline (guest CPU or waiting on HTTP).
    #[error("the component's {call} call ran past its {timeout:?} deadline and was stopped (a bug in the component, or raise --call-timeout-secs if the application is just slow)")]
    Timeout {
        /// The export called.
        call: &'static str,
        /// The deadline.
        timeout: Duration,
    },
    /// The component panicked.
    #[error("the component crashed (panicked) in {call}: report it to the connector's authors")]
    Crashed {
        /// The export called.
        call: &'static str,
    },
    /// The component hit its memory limit.
    #[error("the component ran out of its memory limit in {call} (raise --memory-mb if the tenant is very large)")]
    OutOfMemory {
        /// The export called.
        call: &'static str,
    },
    /// The component went past a bound on what the host holds for it.
    #[error("the component was stopped in {call} for going past the host's limit of {limit}: a bug in the component (report it to its authors), or raise that limit")]
    LimitExceeded {
        /// The export called.
        call: &'static str,
        /// Which bound.
        limit: crate::bounds::Exceeded,
    },
    /// The component called `wasi:cli/exit`.
    #[error("the component called exit({status}) in {call} instead of returning an error: report it to the connector's authors")]
    Exited {
        /// The export called.
        call: &'static str,
        /// The status it gave.
        status: i32,
    },
    /// Instantiation failed: refused by the memory budget, or the
    /// component's start code trapped.
    #[error("the component could not start: {message}")]
    Start {
        /// What happened, one line.
        message: String,
    },
    /// Any other trap or host failure.
    #[error("the component failed in {call}: {message}")]
    Trapped {
        /// The export called.
        call: &'static str,
        /// What happened, one line.
        message: String,
    },
    /// An earlier failure stopped this instance.
    #[error("the component instance was stopped after an earlier failure; not calling {call}")]
    Poisoned {
        /// The export not called.
        call: &'static str,
    },
}

impl CallError {
    /// Rate limits and outages are worth another try; the rest is not.
    pub fn retry_hint(&self) -> Option<Option<Duration>> {
        match self {
            CallError::Connector(e) => e.retry_hint(),
            _ => None,
        }
    }
}
