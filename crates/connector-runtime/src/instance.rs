//! One sandboxed instance: an empty WASI context (no environment, no files,
//! no sockets), its configuration through `wasi:config`, outbound HTTP
//! through [`Outbound`], a memory cap and a deadline per call, bounds on
//! what the host holds for it ([`Bounds`]), and its stdout and stderr as log
//! lines. After a trap or a timeout it refuses further calls: a trapped
//! store may be in any state.

use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Duration;

use wasmtime::component::ResourceTable;
use wasmtime::Store;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_config::WasiConfigVariables;
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

use crate::bindings::{v0_1, v0_2, v0_3};
use crate::bounds::{Bounded as _, BoundedHooks, Bounds};
use crate::budget::{self, Budget, Caps};
use crate::egress::Policy;
use crate::engine::{first_line, Component, Pre, EPOCH_TICK};
use crate::errors::CallError;
use crate::outbound::{Outbound, Timeouts};
use crate::stdio::{ComponentLog, Stream};
use crate::types::ConnectorError;

/// What one instance may use.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Every linear memory and table of the instance together, in bytes
    /// (no one memory above the engine's `max_memory_bytes`).
    pub memory_bytes: usize,
    /// How many memories, tables and core instances it may have.
    pub caps: Caps,
    /// Bound on one call into the component, guest CPU and HTTP waits alike.
    pub call_timeout: Duration,
    /// Outbound timeouts.
    pub http: Timeouts,
    /// Largest response body the component may read.
    pub max_response_bytes: u64,
    /// What the host may hold for the instance beyond its linear memory.
    pub bounds: Bounds,
    /// Pages a listing may keep in flight ahead of the one being read, told
    /// to the component as `wasi:config`'s [`MAX_IN_FLIGHT_KEY`]. A hint the
    /// component follows: what binds it is `bounds.max_concurrent_requests`.
    pub max_in_flight: usize,
}

/// The `wasi:config` key that tells a component how many pages a listing
/// may keep in flight (contract 0.3.0). Keys with a `:` are the host's: a
/// setting of the component's own so named is not passed.
pub const MAX_IN_FLIGHT_KEY: &str = "host:max-in-flight";

impl Default for Limits {
    fn default() -> Self {
        Limits {
            memory_bytes: 256 << 20,
            caps: Caps::default(),
            call_timeout: Duration::from_secs(300),
            http: Timeouts::default(),
            max_response_bytes: 64 << 20,
            bounds: Bounds::default(),
            // At 50 ms a round trip, enough to keep the host busy with the
            // page it reads (the bench's 100,000-user sync: 0.93x to 0.96x
            // of a plain client's time for the same pages one by one).
            max_in_flight: 4,
        }
    }
}

/// A store's host side.
pub struct HostState {
    wasi: WasiCtx,
    pub(crate) table: ResourceTable,
    http: WasiHttpCtx,
    outbound: BoundedHooks<Outbound>,
    pub(crate) config: WasiConfigVariables,
    budget: Budget,
    pub(crate) bounds: Bounds,
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

/// The instance's exports, for the contract version it was built for.
pub(crate) enum Bindings {
    V0_1(v0_1::ConnectorExports),
    V0_2(v0_2::ConnectorExports),
    V0_3(v0_3::ConnectorExports),
}

/// One live instance.
pub(crate) struct Instance {
    store: Store<HostState>,
    bindings: Bindings,
    call_timeout: Duration,
    bounds: Bounds,
    poisoned: bool,
    requests: Arc<AtomicU64>,
}

impl Instance {
    /// The contract version of the instance's exports.
    pub(crate) fn contract_version(&self) -> crate::types::ContractVersion {
        match self.bindings {
            Bindings::V0_1(_) => crate::types::ContractVersion::V0_1,
            Bindings::V0_2(_) => crate::types::ContractVersion::V0_2,
            Bindings::V0_3(_) => crate::types::ContractVersion::V0_3,
        }
    }

    /// A fresh instance with this configuration and an outbound policy that
    /// denies everything until [`Instance::set_policy`].
    pub(crate) async fn new(
        component: &Component,
        limits: &Limits,
        config: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Instance, CallError> {
        let config: Vec<(String, String)> = config.into_iter().collect();
        // No environment, arguments or stdin (the builder's defaults: empty,
        // and a stdin at end of file); stdout and stderr become log lines.
        let scrub: Arc<[String]> = config
            .iter()
            .map(|(_, v)| v.clone())
            .filter(|v| v.len() >= 8)
            .collect();
        let config: WasiConfigVariables = config
            .into_iter()
            .filter(|(k, _)| !k.contains(':'))
            .chain([(
                MAX_IN_FLIGHT_KEY.to_string(),
                limits.max_in_flight.to_string(),
            )])
            .collect();
        let name: Arc<str> = component
            .path()
            .file_stem()
            .map_or("component".into(), |s| s.to_string_lossy())
            .into();
        let mut wasi = WasiCtx::builder();
        wasi.allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .stdout(ComponentLog::new(
                name.clone(),
                Stream::Stdout,
                scrub.clone(),
            ))
            .stderr(ComponentLog::new(name, Stream::Stderr, scrub));
        let mut table = ResourceTable::new();
        table.set_max_capacity(limits.bounds.max_resources);
        let mut http = WasiHttpCtx::new();
        http.set_field_size_limit(limits.bounds.max_field_bytes);
        let requests = Arc::new(AtomicU64::new(0));
        let state = HostState {
            wasi: wasi.build(),
            table,
            http,
            outbound: Outbound::new(
                Policy::deny_all(),
                crate::outbound::Limits {
                    timeouts: limits.http,
                    max_body_bytes: limits.max_response_bytes,
                },
                requests.clone(),
            )
            .bounded(&limits.bounds),
            config,
            budget: Budget::new(limits.memory_bytes, limits.caps),
            bounds: limits.bounds,
        };
        let mut store = Store::new(&component.engine.engine, state);
        store.limiter(|s| &mut s.budget);
        store.epoch_deadline_trap();
        store.set_epoch_deadline(ticks(limits.call_timeout));
        let started = |e: wasmtime::Error| CallError::Start {
            message: match budget::exceeded(&e) {
                Some(refused) => refused.to_string(),
                None => first_line(&format!("{e:#}")).to_string(),
            },
        };
        let bindings = match &component.pre {
            Pre::V0_1(pre) => {
                Bindings::V0_1(pre.instantiate_async(&mut store).await.map_err(started)?)
            }
            Pre::V0_2(pre) => {
                Bindings::V0_2(pre.instantiate_async(&mut store).await.map_err(started)?)
            }
            Pre::V0_3(pre) => {
                Bindings::V0_3(pre.instantiate_async(&mut store).await.map_err(started)?)
            }
        };
        Ok(Instance {
            store,
            bindings,
            call_timeout: limits.call_timeout,
            bounds: limits.bounds,
            poisoned: false,
            requests,
        })
    }

    pub(crate) fn set_policy(
        &mut self,
        policy: Arc<Policy>,
        network: &crate::network::Network,
        budgets: Arc<crate::rate::Budgets>,
    ) {
        self.store
            .data_mut()
            .outbound
            .inner
            .set_policy(policy, network, budgets);
    }

    /// Outbound requests this instance has made.
    pub(crate) fn requests(&self) -> u64 {
        self.requests.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Bytes of linear memory and tables the instance holds now (its
    /// memory never shrinks, so this is also its peak).
    pub(crate) fn memory_bytes(&self) -> usize {
        self.store.data().budget.used()
    }

    /// Runs one export under the per-call deadline (guest CPU through the
    /// epoch, waits on HTTP through the tokio timeout). The closure answers
    /// the connector's own result, already in neutral types.
    pub(crate) async fn call<R>(
        &mut self,
        name: &'static str,
        f: impl AsyncFnOnce(
            &Bindings,
            &mut Store<HostState>,
        ) -> wasmtime::Result<Result<R, ConnectorError>>,
    ) -> Result<R, CallError> {
        if self.poisoned {
            return Err(CallError::Poisoned { call: name });
        }
        self.store.set_epoch_deadline(ticks(self.call_timeout));
        let outcome =
            tokio::time::timeout(self.call_timeout, f(&self.bindings, &mut self.store)).await;
        match outcome {
            Ok(Ok(r)) => r.map_err(CallError::Connector),
            Ok(Err(trap)) => {
                self.poisoned = true;
                Err(describe_trap(name, &trap, self.call_timeout, &self.bounds))
            }
            Err(_) => {
                self.poisoned = true;
                Err(CallError::Timeout {
                    call: name,
                    timeout: self.call_timeout,
                })
            }
        }
    }
}

fn ticks(d: Duration) -> u64 {
    (d.as_millis() / EPOCH_TICK.as_millis()).max(1) as u64 + 1
}

fn describe_trap(
    name: &'static str,
    err: &wasmtime::Error,
    timeout: Duration,
    bounds: &Bounds,
) -> CallError {
    if let Some(limit) = bounds.exceeded_by(err) {
        return CallError::LimitExceeded { call: name, limit };
    }
    if budget::exceeded(err).is_some() {
        return CallError::OutOfMemory { call: name };
    }
    if let Some(exit) = err.downcast_ref::<wasmtime_wasi::I32Exit>() {
        return CallError::Exited {
            call: name,
            status: exit.0,
        };
    }
    if let Some(trap) = err.downcast_ref::<wasmtime::Trap>() {
        return match trap {
            wasmtime::Trap::Interrupt => CallError::Timeout {
                call: name,
                timeout,
            },
            wasmtime::Trap::UnreachableCodeReached => CallError::Crashed { call: name },
            wasmtime::Trap::AllocationTooLarge | wasmtime::Trap::HeapMisaligned => {
                CallError::OutOfMemory { call: name }
            }
            other => CallError::Trapped {
                call: name,
                message: other.to_string(),
            },
        };
    }
    let text = format!("{err:#}");
    if text.contains("memory") && (text.contains("limit") || text.contains("grow")) {
        CallError::OutOfMemory { call: name }
    } else {
        CallError::Trapped {
            call: name,
            message: first_line(&text).to_string(),
        }
    }
}
