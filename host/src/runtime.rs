//! The wasmtime side: one engine, one compiled component, and fresh sandboxed
//! instances of it. Each instance gets an empty WASI context (no environment,
//! no files, no sockets), its configuration through `wasi:config`, outbound
//! HTTP through `OutboundPolicy`, a memory cap and a deadline per call.

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context as _};
use wasmtime::component::{Component, Linker, ResourceTable};
use wasmtime::{Config, Engine, Store, StoreLimits, StoreLimitsBuilder};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_config::{WasiConfig, WasiConfigVariables};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

use crate::allow_list::Policy;
use crate::bindings::{ConnectorExports, ConnectorExportsPre};
use crate::outbound::{Outbound, Timeouts};

/// How often the epoch ticks; deadlines are counted in these.
const EPOCH_TICK: Duration = Duration::from_millis(10);

#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub memory_bytes: usize,
    /// Bound on one call into the component, guest CPU and HTTP waits alike.
    pub call_timeout: Duration,
    pub http: Timeouts,
    pub max_response_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            memory_bytes: 256 << 20,
            call_timeout: Duration::from_secs(300),
            http: Timeouts::default(),
            max_response_bytes: 64 << 20,
        }
    }
}

pub struct HostState {
    wasi: WasiCtx,
    table: ResourceTable,
    http: WasiHttpCtx,
    outbound: Outbound,
    config: WasiConfigVariables,
    limits: StoreLimits,
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for HostState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: &mut self.outbound,
        }
    }
}

pub struct Runtime {
    engine: Engine,
    pre: ConnectorExportsPre<HostState>,
    limits: Limits,
    /// Outbound requests made by every instance of this runtime.
    pub requests: Arc<AtomicU64>,
    _ticker: EpochTicker,
}

/// A thread that advances the engine's epoch; stops when dropped.
struct EpochTicker {
    stop: Arc<std::sync::atomic::AtomicBool>,
}

impl EpochTicker {
    fn start(engine: &Engine) -> EpochTicker {
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (engine, flag) = (engine.clone(), stop.clone());
        std::thread::spawn(move || {
            while !flag.load(std::sync::atomic::Ordering::Relaxed) {
                std::thread::sleep(EPOCH_TICK);
                engine.increment_epoch();
            }
        });
        EpochTicker { stop }
    }
}

impl Drop for EpochTicker {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

impl Runtime {
    pub fn load(path: &Path, limits: Limits) -> anyhow::Result<Runtime> {
        let bytes = std::fs::read(path)
            .with_context(|| format!("cannot read the component {}", path.display()))?;
        check_component_header(path, &bytes)?;

        let mut config = Config::new();
        config.wasm_component_model(true);
        config.epoch_interruption(true);
        let engine = Engine::new(&config)?;

        let started = std::time::Instant::now();
        let component = Component::new(&engine, &bytes)
            .map_err(anyhow::Error::from)
            .with_context(|| format!("{} is not a valid component", path.display()))?;
        tracing::debug!(
            elapsed_ms = started.elapsed().as_millis() as u64,
            "compiled component"
        );

        check_contract(
            path,
            &component
                .component_type()
                .exports(&engine)
                .map(|(n, _)| n.to_string())
                .collect::<Vec<_>>(),
        )?;

        let mut linker: Linker<HostState> = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
        wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker)?;
        wasmtime_wasi_config::add_to_linker(&mut linker, |s: &mut HostState| {
            WasiConfig::from(&s.config)
        })?;
        let instance_pre = linker.instantiate_pre(&component).map_err(|e| {
            anyhow::anyhow!(
                "{} cannot run here: {e:#}. It must be a component of the idgov:connector world",
                path.display()
            )
        })?;
        let pre = ConnectorExportsPre::new(instance_pre).map_err(|e| {
            anyhow::anyhow!(
                "{} does not export the idgov:connector@{} interfaces: {e:#}",
                path.display(),
                crate::bindings::CONTRACT_VERSION
            )
        })?;
        let ticker = EpochTicker::start(&engine);
        Ok(Runtime {
            engine,
            pre,
            limits,
            requests: Arc::default(),
            _ticker: ticker,
        })
    }

    /// A fresh instance with this configuration and an outbound policy that
    /// denies everything until `Instance::allow` is called.
    pub async fn instantiate(
        &self,
        config: impl IntoIterator<Item = (String, String)>,
    ) -> anyhow::Result<Instance> {
        let mut wasi = WasiCtx::builder();
        wasi.allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false);
        let state = HostState {
            wasi: wasi.build(),
            table: ResourceTable::new(),
            http: WasiHttpCtx::new(),
            outbound: Outbound::new(
                Policy::deny_all(),
                crate::outbound::Limits {
                    timeouts: self.limits.http,
                    max_body_bytes: self.limits.max_response_bytes,
                },
                self.requests.clone(),
            ),
            config: config.into_iter().collect(),
            limits: StoreLimitsBuilder::new()
                .memory_size(self.limits.memory_bytes)
                .trap_on_grow_failure(true)
                .build(),
        };
        let mut store = Store::new(&self.engine, state);
        store.limiter(|s| &mut s.limits);
        store.epoch_deadline_trap();
        store.set_epoch_deadline(ticks(self.limits.call_timeout));
        let bindings = self
            .pre
            .instantiate_async(&mut store)
            .await
            .map_err(anyhow::Error::from)
            .context("the component failed to start")?;
        Ok(Instance {
            store,
            bindings,
            call_timeout: self.limits.call_timeout,
            poisoned: false,
        })
    }
}

fn ticks(d: Duration) -> u64 {
    (d.as_millis() / EPOCH_TICK.as_millis()).max(1) as u64 + 1
}

/// Tells a core module or garbage apart from a component before wasmtime
/// gives its own, less direct, message.
fn check_component_header(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    match bytes.get(0..8) {
        Some([0, b'a', b's', b'm', 0x0d, 0x00, 0x01, 0x00]) => Ok(()),
        Some([0, b'a', b's', b'm', 0x01, 0x00, 0x00, 0x00]) => bail!(
            "{} is a core WebAssembly module, not a component: build the connector for wasm32-wasip2 (or wrap it with `wasm-tools component new`)",
            path.display()
        ),
        Some([0, b'a', b's', b'm', ..]) => bail!(
            "{} is a WebAssembly binary of an unsupported encoding version: rebuild it with a current toolchain",
            path.display()
        ),
        _ => bail!(
            "{} is not a WebAssembly component (no \\0asm header)",
            path.display()
        ),
    }
}

/// Tells apart, before instantiating, a component of another world and one
/// built against an incompatible version of this contract.
fn check_contract(path: &Path, exports: &[String]) -> anyhow::Result<()> {
    const PACKAGE: &str = "idgov:connector/";
    let ours: Vec<&String> = exports.iter().filter(|e| e.starts_with(PACKAGE)).collect();
    if ours.is_empty() {
        bail!(
            "{} is not a connector: it exports {} but not the idgov:connector interfaces (build it against wit/connector.wit)",
            path.display(),
            if exports.is_empty() { "nothing".to_string() } else { exports.join(", ") }
        );
    }
    let supported = crate::bindings::CONTRACT_VERSION;
    let major_minor = |v: &str| v.split('.').take(2).collect::<Vec<_>>().join(".");
    for export in ours {
        let version = export.rsplit_once('@').map(|(_, v)| v).unwrap_or("");
        if major_minor(version) != major_minor(supported) {
            bail!(
                "{} was built for idgov:connector@{version}; this host speaks idgov:connector@{supported}: rebuild the connector against this host's wit/ (or use a host of its version)",
                path.display()
            );
        }
    }
    Ok(())
}

/// One live instance. After a trap or a timeout it refuses further calls:
/// a trapped store may be in any state.
pub struct Instance {
    store: Store<HostState>,
    bindings: ConnectorExports,
    call_timeout: Duration,
    poisoned: bool,
}

impl Instance {
    pub fn set_policy(&mut self, policy: Policy) {
        self.store.data_mut().outbound.set_policy(policy);
    }

    /// Runs one export under the per-call deadline (guest CPU through the
    /// epoch, waits on HTTP through the tokio timeout).
    pub async fn call<R>(
        &mut self,
        name: &str,
        f: impl AsyncFnOnce(&ConnectorExports, &mut Store<HostState>) -> wasmtime::Result<R>,
    ) -> anyhow::Result<R> {
        if self.poisoned {
            bail!(
                "the component instance was stopped after an earlier failure; not calling {name}"
            );
        }
        self.store.set_epoch_deadline(ticks(self.call_timeout));
        let outcome =
            tokio::time::timeout(self.call_timeout, f(&self.bindings, &mut self.store)).await;
        match outcome {
            Ok(Ok(r)) => Ok(r),
            Ok(Err(trap)) => {
                self.poisoned = true;
                Err(describe_trap(name, &trap, self.call_timeout))
            }
            Err(_) => {
                self.poisoned = true;
                bail!(
                    "the component's {name} call did not finish within {:?}: stopped it (raise --call-timeout-secs if the application is just slow)",
                    self.call_timeout
                )
            }
        }
    }
}

fn describe_trap(name: &str, err: &wasmtime::Error, timeout: Duration) -> anyhow::Error {
    if let Some(trap) = err.downcast_ref::<wasmtime::Trap>() {
        return match trap {
            wasmtime::Trap::Interrupt => anyhow::anyhow!(
                "the component's {name} call ran past its {timeout:?} deadline and was stopped (a bug in the component, or raise --call-timeout-secs)"
            ),
            wasmtime::Trap::UnreachableCodeReached => anyhow::anyhow!(
                "the component crashed (panicked) in {name}: report it to the connector's authors"
            ),
            wasmtime::Trap::AllocationTooLarge | wasmtime::Trap::HeapMisaligned => anyhow::anyhow!(
                "the component ran out of its memory limit in {name} (raise --memory-mb if the tenant is very large)"
            ),
            other => anyhow::anyhow!("the component trapped in {name}: {other}"),
        };
    }
    let text = format!("{err:#}");
    if text.contains("memory") && (text.contains("limit") || text.contains("grow")) {
        anyhow::anyhow!(
            "the component ran out of its memory limit in {name} (raise --memory-mb if the tenant is very large)"
        )
    } else {
        anyhow::anyhow!("the component failed in {name}: {}", first_line(&text))
    }
}

fn first_line(s: &str) -> &str {
    s.lines().next().unwrap_or(s)
}

/// Where `make build` leaves the Ironclad component, relative to this binary:
/// beside it (an installed layout), or in the cargo target tree.
pub fn default_component_path() -> Option<PathBuf> {
    const NAME: &str = "ironclad_connector.wasm";
    let exe = std::env::current_exe().ok()?;
    let dir = exe.parent()?;
    let candidates = [
        dir.join(NAME),
        dir.join("../wasm32-wasip2/release").join(NAME),
        dir.join("../../wasm32-wasip2/release").join(NAME),
    ];
    candidates.into_iter().find(|p| p.is_file())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn other_worlds_and_versions_are_named() {
        let p = Path::new("c.wasm");
        let ok = [
            "idgov:connector/types@0.1.0".to_string(),
            "idgov:connector/sync@0.1.0".to_string(),
        ];
        assert!(check_contract(p, &ok).is_ok());
        let proxy = ["wasi:http/incoming-handler@0.2.0".to_string()];
        let msg = check_contract(p, &proxy).unwrap_err().to_string();
        assert!(
            msg.contains("not a connector") && msg.contains("wasi:http/incoming-handler"),
            "{msg}"
        );
        let newer = ["idgov:connector/sync@0.2.0".to_string()];
        let msg = check_contract(p, &newer).unwrap_err().to_string();
        assert!(msg.contains("built for idgov:connector@0.2.0"), "{msg}");
        assert!(check_contract(p, &[])
            .unwrap_err()
            .to_string()
            .contains("exports nothing"));
    }

    #[test]
    fn headers_are_told_apart() {
        let p = Path::new("x.wasm");
        assert!(check_component_header(p, b"\0asm\x0d\x00\x01\x00rest").is_ok());
        let core = check_component_header(p, b"\0asm\x01\x00\x00\x00").unwrap_err();
        assert!(core.to_string().contains("core WebAssembly module"));
        let junk = check_component_header(p, b"<html>").unwrap_err();
        assert!(junk.to_string().contains("not a WebAssembly component"));
    }
}
