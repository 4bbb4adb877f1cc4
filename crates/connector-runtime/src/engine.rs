//! One wasmtime engine per process, and the components loaded into it.
//!
//! The engine owns what every instance shares: the compiler settings, the
//! pooling allocator (instances come from preallocated slots, so a fresh
//! sandbox per job costs microseconds), one thread that advances the epoch
//! for every deadline, and the cache of compiled components. A [`Component`]
//! is compiled (or taken from the cache), checked against the contract, and
//! linked once; every connector instance is then instantiated from it.

use sha2::{Digest as _, Sha256};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use wasmtime::component::Linker;
use wasmtime::{Config, InstanceAllocationStrategy, PoolingAllocationConfig};
use wasmtime_wasi_config::WasiConfig;

use crate::bindings::{v0_1, v0_2, v0_3};
use crate::cache::Cache;
use crate::errors::LoadError;
use crate::instance::HostState;
use crate::types::ContractVersion;

/// How often the epoch ticks; deadlines are counted in these.
pub(crate) const EPOCH_TICK: Duration = Duration::from_millis(10);

/// Settings of the process-wide engine.
#[derive(Clone, Debug)]
pub struct EngineConfig {
    /// The most linear memory any one instance may have, in bytes (each
    /// instance's own limit is at most this).
    pub max_memory_bytes: usize,
    /// Instances that may be alive at once (pooling allocator slots).
    pub max_instances: u32,
    /// Where compiled components are cached; `None` compiles every time.
    pub cache_dir: Option<PathBuf>,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            max_memory_bytes: 4 << 30,
            max_instances: 16,
            cache_dir: crate::cache::default_dir(),
        }
    }
}

/// The process's WebAssembly engine; cheap to clone (shared inside).
#[derive(Clone)]
pub struct Engine {
    pub(crate) engine: wasmtime::Engine,
    /// What `engine` was made with, for the engines that compile.
    wasmtime_config: Config,
    cache: Option<Cache>,
    _ticker: Arc<EpochTicker>,
}

impl Engine {
    /// Sets up the engine: pooling allocator sized by `config`, epoch
    /// interruption, and the compiled-component cache when its directory can
    /// be trusted.
    pub fn new(config: &EngineConfig) -> Result<Engine, LoadError> {
        let pooled = wasmtime_config(config, true);
        let (engine, wasmtime_config) = match wasmtime::Engine::new(&pooled) {
            Ok(e) => (e, pooled),
            Err(e) => {
                // A machine that will not reserve the pool's address space
                // (a tight `ulimit -v`) still runs, allocating on demand.
                tracing::debug!("pooling allocator unavailable ({e:#}); allocating on demand");
                let plain = wasmtime_config(config, false);
                let engine = wasmtime::Engine::new(&plain)
                    .map_err(|e| LoadError::Engine(format!("{e:#}")))?;
                (engine, plain)
            }
        };
        let cache = config.cache_dir.as_deref().and_then(Cache::open);
        let ticker = EpochTicker::start(&engine);
        Ok(Engine {
            engine,
            wasmtime_config,
            cache,
            _ticker: Arc::new(ticker),
        })
    }

    /// Compiles `bytes` in an engine of the same configuration made for it
    /// and dropped at once: a compiler keeps its working memory for reuse
    /// while its engine lives (6 MiB of heap after compiling the Ironclad
    /// component), which in the long-lived engine would be for the whole
    /// life of the process. This engine compiles when another cannot be
    /// made.
    fn compile(&self, bytes: &[u8]) -> wasmtime::Result<Vec<u8>> {
        match wasmtime::Engine::new(&self.wasmtime_config) {
            Ok(once) => once.precompile_component(bytes),
            Err(e) => {
                tracing::debug!("compiling in the shared engine: {e:#}");
                self.engine.precompile_component(bytes)
            }
        }
    }

    /// Reads, compiles (or takes from the cache), checks and links a
    /// connector component.
    pub fn load(&self, path: &Path) -> Result<Component, LoadError> {
        let bytes = std::fs::read(path).map_err(|source| LoadError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        self.load_bytes(path, &bytes)
    }

    /// As [`Engine::load`], from bytes already in memory; `path` names the
    /// component in messages.
    pub fn load_bytes(&self, path: &Path, bytes: &[u8]) -> Result<Component, LoadError> {
        check_header(path, bytes)?;
        let started = std::time::Instant::now();
        let invalid = |e: wasmtime::Error| {
            let text = format!("{e:#}");
            let message = first_line(&text);
            // The pool checks the shapes the component declares when it is
            // linked, before any instance: the budget's refusal, said early.
            const POOL: &str = "does not fit in pooling allocator requirements: ";
            match message.split_once(POOL) {
                Some((_, what)) => LoadError::TooBig {
                    path: path.to_path_buf(),
                    message: what.to_string(),
                },
                None => LoadError::Invalid {
                    path: path.to_path_buf(),
                    message: message.to_string(),
                },
            }
        };
        let (component, cached) = match &self.cache {
            Some(cache) => cache
                .load_or_compile(&self.engine, bytes, |b| self.compile(b))
                .map_err(invalid)?,
            None => {
                let code = self.compile(bytes).map_err(invalid)?;
                // SAFETY: `code` was produced by `precompile_component` just
                // above, in memory, by an engine of this one's configuration;
                // wasmtime checks its version and settings once more.
                let c = unsafe { wasmtime::component::Component::deserialize(&self.engine, &code) };
                (c.map_err(invalid)?, false)
            }
        };
        tracing::debug!(
            elapsed_ms = started.elapsed().as_millis() as u64,
            cached,
            "component ready"
        );
        let exports: Vec<String> = component
            .component_type()
            .exports(&self.engine)
            .map(|(n, _)| n.to_string())
            .collect();
        let version = contract_version(path, &exports)?;

        let mut linker: Linker<HostState> = Linker::new(&self.engine);
        let link = |e: wasmtime::Error| LoadError::Link {
            path: path.to_path_buf(),
            message: format!("{e:#}"),
        };
        wasmtime_wasi::p2::add_to_linker_async(&mut linker).map_err(link)?;
        wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker).map_err(link)?;
        crate::bounds::add_to_linker(&mut linker).map_err(link)?;
        wasmtime_wasi_config::add_to_linker(&mut linker, |s: &mut HostState| {
            WasiConfig::from(&s.config)
        })
        .map_err(link)?;
        let instance_pre = linker
            .instantiate_pre(&component)
            .map_err(|e| LoadError::Link {
                path: path.to_path_buf(),
                message: format!(
                    "{}. It must be a component of the idgov:connector world",
                    first_line(&format!("{e:#}"))
                ),
            })?;
        let unfit = |e: wasmtime::Error| LoadError::Link {
            path: path.to_path_buf(),
            message: format!(
                "it does not export the idgov:connector@{version} interfaces: {}",
                first_line(&format!("{e:#}"))
            ),
        };
        let pre = match version {
            ContractVersion::V0_1 => {
                Pre::V0_1(v0_1::ConnectorExportsPre::new(instance_pre).map_err(unfit)?)
            }
            ContractVersion::V0_2 => {
                Pre::V0_2(v0_2::ConnectorExportsPre::new(instance_pre).map_err(unfit)?)
            }
            ContractVersion::V0_3 => {
                Pre::V0_3(v0_3::ConnectorExportsPre::new(instance_pre).map_err(unfit)?)
            }
        };
        Ok(Component {
            engine: self.clone(),
            pre,
            version,
            path: path.to_path_buf(),
            cached,
            digest: Sha256::digest(bytes).into(),
        })
    }
}

fn wasmtime_config(config: &EngineConfig, pooling: bool) -> Config {
    let mut c = Config::new();
    c.wasm_component_model(true);
    c.epoch_interruption(true);
    if pooling {
        let mut pool = PoolingAllocationConfig::new();
        let n = config.max_instances.max(1);
        // A connector component holds a handful of core instances (its own
        // code and the WASI adapter's); anything far beyond is not one.
        // The pool's per-instance shapes are the budget's caps, so the
        // budget (which counts before the pool allocates) is what refuses,
        // with its own words, whichever allocator runs.
        let caps = crate::budget::Caps::default();
        let per = |c: usize| u32::try_from(c).unwrap_or(u32::MAX);
        pool.total_component_instances(n)
            .total_core_instances(n * per(caps.core_instances))
            .total_memories(n * per(caps.memories))
            .total_tables(n * per(caps.tables))
            .total_stacks(n)
            .max_core_instances_per_component(per(caps.core_instances))
            .max_memories_per_component(per(caps.memories))
            .max_memories_per_module(per(caps.memories))
            .max_tables_per_component(per(caps.tables))
            .max_tables_per_module(per(caps.tables))
            .table_elements(caps.table_elements)
            .max_memory_size(config.max_memory_bytes);
        c.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    }
    c
}

/// A compiled, checked and linked connector component; instances of it are
/// created with [`Component::metadata`] and [`crate::Connector::open`].
#[derive(Clone)]
pub struct Component {
    pub(crate) engine: Engine,
    pub(crate) pre: Pre,
    version: ContractVersion,
    path: PathBuf,
    cached: bool,
    digest: [u8; 32],
}

/// The linked component, for the contract version it was built for.
#[derive(Clone)]
pub(crate) enum Pre {
    V0_1(v0_1::ConnectorExportsPre<HostState>),
    V0_2(v0_2::ConnectorExportsPre<HostState>),
    V0_3(v0_3::ConnectorExportsPre<HostState>),
}

impl Component {
    /// The contract version the component was built for.
    pub fn contract_version(&self) -> ContractVersion {
        self.version
    }

    /// The file it came from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The SHA-256 of its bytes: what names this exact component.
    pub fn digest(&self) -> [u8; 32] {
        self.digest
    }

    /// Whether its compiled code came from the cache (no compilation).
    pub fn from_cache(&self) -> bool {
        self.cached
    }
}

/// Tells a core module or garbage apart from a component before wasmtime
/// gives its own, less direct, message.
fn check_header(path: &Path, bytes: &[u8]) -> Result<(), LoadError> {
    let path = path.to_path_buf();
    match bytes.get(0..8) {
        Some([0, b'a', b's', b'm', 0x0d, 0x00, 0x01, 0x00]) => Ok(()),
        Some([0, b'a', b's', b'm', 0x01, 0x00, 0x00, 0x00]) => Err(LoadError::CoreModule { path }),
        Some([0, b'a', b's', b'm', ..]) => Err(LoadError::UnknownEncoding { path }),
        _ => Err(LoadError::NotWasm { path }),
    }
}

/// The contract version a component's exports name; a component of another
/// world, or of a version this runtime does not run, is told apart before
/// instantiating.
fn contract_version(path: &Path, exports: &[String]) -> Result<ContractVersion, LoadError> {
    const PACKAGE: &str = "idgov:connector/";
    let ours: Vec<&String> = exports.iter().filter(|e| e.starts_with(PACKAGE)).collect();
    if ours.is_empty() {
        return Err(LoadError::NotAConnector {
            path: path.to_path_buf(),
            exports: if exports.is_empty() {
                "nothing".to_string()
            } else {
                exports.join(", ")
            },
        });
    }
    let unsupported = |text: &str| LoadError::UnsupportedVersion {
        path: path.to_path_buf(),
        found: if text.is_empty() { "?" } else { text }.to_string(),
        supported: ContractVersion::listed(),
    };
    // Every export must name the same supported version.
    let texts: Vec<&str> = ours
        .iter()
        .map(|e| e.rsplit_once('@').map_or("", |(_, v)| v))
        .collect();
    let first = texts.first().copied().unwrap_or_default();
    let version = ContractVersion::of_package_version(first).ok_or_else(|| unsupported(first))?;
    match texts
        .iter()
        .find(|t| ContractVersion::of_package_version(t) != Some(version))
    {
        Some(other) => Err(unsupported(other)),
        None => Ok(version),
    }
}

pub(crate) fn first_line(s: &str) -> &str {
    s.lines().next().unwrap_or(s)
}

/// A thread that advances the engine's epoch; stops when dropped.
struct EpochTicker {
    stop: Arc<AtomicBool>,
}

impl EpochTicker {
    fn start(engine: &wasmtime::Engine) -> EpochTicker {
        let stop = Arc::new(AtomicBool::new(false));
        let (engine, flag) = (engine.clone(), stop.clone());
        std::thread::spawn(move || {
            while !flag.load(Ordering::Relaxed) {
                std::thread::sleep(EPOCH_TICK);
                engine.increment_epoch();
            }
        });
        EpochTicker { stop }
    }
}

impl Drop for EpochTicker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn other_worlds_and_versions_are_named() {
        let p = Path::new("c.wasm");
        let v1 = [
            "idgov:connector/types@0.1.0".to_string(),
            "idgov:connector/sync@0.1.0".to_string(),
        ];
        assert_eq!(contract_version(p, &v1).unwrap(), ContractVersion::V0_1);
        let v2 = ["idgov:connector/sync@0.2.0".to_string()];
        assert_eq!(contract_version(p, &v2).unwrap(), ContractVersion::V0_2);
        let proxy = ["wasi:http/incoming-handler@0.2.0".to_string()];
        let msg = contract_version(p, &proxy).unwrap_err().to_string();
        assert!(
            msg.contains("not a connector") && msg.contains("wasi:http/incoming-handler"),
            "{msg}"
        );
        let v3 = ["idgov:connector/sync@0.3.0".to_string()];
        assert_eq!(contract_version(p, &v3).unwrap(), ContractVersion::V0_3);
        let newer = ["idgov:connector/sync@0.4.0".to_string()];
        let msg = contract_version(p, &newer).unwrap_err().to_string();
        assert!(
            msg.contains("built for idgov:connector@0.4.0")
                && msg.contains("0.1.0, 0.2.0 and 0.3.0"),
            "{msg}"
        );
        let mixed = [
            "idgov:connector/types@0.1.0".to_string(),
            "idgov:connector/sync@0.2.0".to_string(),
        ];
        assert!(contract_version(p, &mixed).is_err());
        assert!(contract_version(p, &[])
            .unwrap_err()
            .to_string()
            .contains("exports nothing"));
    }

    #[test]
    fn headers_are_told_apart() {
        let p = Path::new("x.wasm");
        assert!(check_header(p, b"\0asm\x0d\x00\x01\x00rest").is_ok());
        let core = check_header(p, b"\0asm\x01\x00\x00\x00").unwrap_err();
        assert!(core.to_string().contains("core WebAssembly module"));
        let junk = check_header(p, b"<html>").unwrap_err();
        assert!(junk.to_string().contains("not a WebAssembly component"));
    }
}
