//! Bounds on what the host holds for one instance. The memory limit covers
//! the component's linear memory only; `wasi:http` resources live in the
//! host, and wasmtime's defaults (a million table entries, 128 KiB of
//! header fields each) let a component grow the host to about 128 GB.
//!
//! - live WASI resources: the resource table's capacity;
//! - header fields: wasmtime's per-`fields` size limit;
//! - bytes the host holds for the component: wasmtime has no hook, so the
//!   `wasi:http/types` functions that make the host hold more (building or
//!   cloning header fields, opening an outgoing body) are shadowed in the
//!   linker by versions that first add up what the instance's table holds;
//! - concurrent outgoing requests: [`BoundedHooks`] around the outbound
//!   policy takes a permit per request, held until its connection closes.
//!
//! Going past the first three traps the instance ([`Exceeded`]); a request
//! past the fourth fails inside the component with `ConnectionLimitReached`
//! and the host logs the limit.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use http::{HeaderMap, HeaderName, HeaderValue};
use tokio::sync::Semaphore;
use wasmtime::component::{Linker, Resource, ResourceTable};
use wasmtime_wasi_http::p2::bindings::http::types::{self as wit, HostFields};
use wasmtime_wasi_http::p2::body::HostOutgoingBody;
use wasmtime_wasi_http::p2::types::HostOutgoingRequest;
use wasmtime_wasi_http::p2::HeaderResult;
use wasmtime_wasi_http::{
    Error as HttpError, FieldMap, ForbiddenHeaderFilter, RequestOptions, WasiBody, WasiHttpHooks,
    WasiHttpView,
};

use crate::instance::HostState;

/// What the host may hold for one instance, beyond its linear memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Bounds {
    /// Live WASI resources (handles: header fields, requests, streams,
    /// pollables, …) at once.
    pub max_resources: usize,
    /// Size of one set of header fields, in bytes of wasmtime's accounting
    /// (names and values plus their in-memory bookkeeping).
    pub max_field_bytes: usize,
    /// Outgoing requests in flight at once (sent, connection still open).
    pub max_concurrent_requests: usize,
    /// Bytes the host holds for the component: header fields it built and
    /// the buffers of its outgoing bodies.
    pub max_host_bytes: usize,
}

impl Default for Bounds {
    fn default() -> Self {
        // A connector makes one request at a time and keeps a handful of
        // handles per request; these leave it room by an order of magnitude.
        Bounds {
            max_resources: 1024,
            max_field_bytes: 32 << 10,
            max_concurrent_requests: 16,
            max_host_bytes: 16 << 20,
        }
    }
}

/// The bound a component went past; it traps the instance.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Exceeded {
    #[error("{0} live WASI resources (--max-resources)")]
    Resources(usize),
    #[error("{} KiB of HTTP header fields in one set (--max-field-kb)", .0 >> 10)]
    FieldBytes(usize),
    #[error("{} MiB held by the host for it, in header fields and request body buffers (--max-host-mb)", .0 >> 20)]
    HostBytes(usize),
}

impl Bounds {
    /// Which bound a trap stands for, if any: wasmtime's own errors for a
    /// full table and an oversized field set, ours for the byte budget.
    pub(crate) fn exceeded_by(&self, err: &wasmtime::Error) -> Option<Exceeded> {
        for cause in err.chain() {
            if let Some(e) = cause.downcast_ref::<Exceeded>() {
                return Some(*e);
            }
            if let Some(wasmtime::component::ResourceTableError::Full) = cause.downcast_ref() {
                return Some(Exceeded::Resources(self.max_resources));
            }
            if let Some(wasmtime_wasi_http::FieldMapError::TotalSizeTooBig) = cause.downcast_ref() {
                return Some(Exceeded::FieldBytes(self.max_field_bytes));
            }
        }
        None
    }
}

/// Outgoing body writes are cut into chunks of this size, one chunk
/// buffered: a body holds at most two of them in the host.
const BODY_CHUNK: usize = 64 << 10;
const BODY_BUFFER_CHUNKS: usize = 1;
const BODY_RESERVE: usize = BODY_CHUNK * (BODY_BUFFER_CHUNKS + 1);

/// The instance of `wasi:http/types` that wasmtime-wasi-http =48.0.8 adds to
/// the linker (components importing any 0.2.x reach it by semver).
const HTTP_TYPES: &str = "wasi:http/types@0.2.12";

/// Replaces, after wasmtime-wasi-http has linked `wasi:http/types`, the
/// functions through which a component makes the host hold more bytes with
/// versions that check the instance's budget first and then call
/// wasmtime's own implementation.
pub(crate) fn add_to_linker(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    linker.allow_shadowing(true);
    let mut types = linker.instance(HTTP_TYPES)?;
    types.func_wrap(
        "[static]fields.from-list",
        |mut store, (entries,): (Vec<(String, Vec<u8>)>,)| {
            let asked = entries
                .iter()
                .map(|(n, v)| name_bytes(n.len()) + value_bytes(v.len()))
                .sum();
            let state = store.data_mut();
            state.charge(asked)?;
            header_result(HostFields::from_list(&mut state.http(), entries))
        },
    )?;
    types.func_wrap(
        "[method]fields.set",
        |mut store, (fields, name, values): (Resource<FieldMap>, String, Vec<Vec<u8>>)| {
            let asked =
                name_bytes(name.len()) + values.iter().map(|v| value_bytes(v.len())).sum::<usize>();
            let state = store.data_mut();
            state.charge(asked)?;
            header_result(HostFields::set(&mut state.http(), fields, name, values))
        },
    )?;
    types.func_wrap(
        "[method]fields.append",
        |mut store, (fields, name, value): (Resource<FieldMap>, String, Vec<u8>)| {
            let state = store.data_mut();
            state.charge(name_bytes(name.len()) + value_bytes(value.len()))?;
            header_result(HostFields::append(&mut state.http(), fields, name, value))
        },
    )?;
    types.func_wrap(
        "[method]fields.clone",
        |mut store, (fields,): (Resource<FieldMap>,)| {
            let state = store.data_mut();
            let asked = field_bytes(state.table.get(&fields)?);
            state.charge(asked)?;
            Ok((HostFields::clone(&mut state.http(), fields)?,))
        },
    )?;
    types.func_wrap(
        "[method]outgoing-request.body",
        |mut store, (request,): (Resource<HostOutgoingRequest>,)| {
            let state = store.data_mut();
            state.charge(BODY_RESERVE)?;
            Ok((wit::HostOutgoingRequest::body(&mut state.http(), request)?,))
        },
    )?;
    linker.allow_shadowing(false);
    Ok(())
}

impl HostState {
    /// Traps when holding `asked` more bytes would pass the budget.
    fn charge(&mut self, asked: usize) -> wasmtime::Result<()> {
        let limit = self.bounds.max_host_bytes;
        if held(&mut self.table).saturating_add(asked) > limit {
            return Err(wasmtime::Error::new(Exceeded::HostBytes(limit)));
        }
        Ok(())
    }
}

/// What the table holds that the component chose the size of. Counted
/// afresh each time (the table is at most `max_resources` long), so nothing
/// can drift: a resource dropped or handed to a request is simply gone.
fn held(table: &mut ResourceTable) -> usize {
    table
        .iter_mut()
        .map(|entry| {
            if let Some(f) = entry.downcast_ref::<FieldMap>() {
                field_bytes(f)
            } else if let Some(r) = entry.downcast_ref::<HostOutgoingRequest>() {
                field_bytes(&r.headers)
            } else if entry.is::<HostOutgoingBody>() {
                BODY_RESERVE
            } else {
                0
            }
        })
        .sum()
}

/// wasmtime's accounting of a header map (`field_map.rs`): every name and
/// value costs its bytes plus its in-memory struct.
fn field_bytes(map: &HeaderMap) -> usize {
    map.keys()
        .map(|k| name_bytes(k.as_str().len()))
        .sum::<usize>()
        + map.values().map(|v| value_bytes(v.len())).sum::<usize>()
}

fn name_bytes(len: usize) -> usize {
    len + size_of::<HeaderName>()
}

fn value_bytes(len: usize) -> usize {
    len + size_of::<HeaderValue>()
}

/// A `HeaderResult` as the function's WIT result: a header error goes back
/// to the component, a trap stays a trap.
fn header_result<T>(r: HeaderResult<T>) -> wasmtime::Result<(Result<T, wit::HeaderError>,)> {
    match r {
        Ok(v) => Ok((Ok(v),)),
        Err(e) => Ok((Err(e.downcast()?),)),
    }
}

type IoFuture = Box<dyn Future<Output = Result<(), HttpError>> + Send>;
type SendFuture =
    Box<dyn Future<Output = Result<(http::Response<WasiBody>, IoFuture), HttpError>> + Send>;

/// The store's `WasiHttpHooks`: `inner` (the outbound policy) with a cap on
/// requests in flight and on outgoing body buffers. Every other hook is
/// passed through, so the policy may override any of them.
pub(crate) struct BoundedHooks<H> {
    pub(crate) inner: H,
    in_flight: Arc<Semaphore>,
    limit: usize,
    warned: AtomicBool,
}

/// `hooks.bounded(&bounds)` wraps any hooks in [`BoundedHooks`].
pub(crate) trait Bounded: Sized {
    fn bounded(self, bounds: &Bounds) -> BoundedHooks<Self>;
}

impl<H: WasiHttpHooks> Bounded for H {
    fn bounded(self, bounds: &Bounds) -> BoundedHooks<Self> {
        BoundedHooks {
            inner: self,
            in_flight: Arc::new(Semaphore::new(bounds.max_concurrent_requests)),
            limit: bounds.max_concurrent_requests,
            warned: AtomicBool::new(false),
        }
    }
}

impl<H: WasiHttpHooks> WasiHttpHooks for BoundedHooks<H> {
    fn send_request(
        &mut self,
        request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        fut: IoFuture,
    ) -> SendFuture {
        // Taken when the component sends, so a burst is refused at once
        // rather than queued in the host.
        let Ok(permit) = self.in_flight.clone().try_acquire_owned() else {
            let limit = self.limit;
            if !self.warned.swap(true, Ordering::Relaxed) {
                tracing::warn!(
                    "refused an outbound request: the component has {limit} requests in flight already, the host's limit (--max-concurrent-requests)"
                );
            } else {
                tracing::debug!("refused another outbound request past --max-concurrent-requests");
            }
            return Box::new(async { Err(HttpError::ConnectionLimitReached) });
        };
        let send = Pin::from(self.inner.send_request(request, options, fut));
        Box::new(async move {
            let (response, io) = send.await?;
            // The connection is open until its driver ends (the body read
            // or dropped): the permit goes with it.
            let io = Pin::from(io);
            let io: IoFuture = Box::new(async move {
                let _permit = permit;
                io.await
            });
            Ok((response, io))
        })
    }

    fn is_forbidden_header(&mut self, name: &HeaderName) -> bool {
        self.inner.is_forbidden_header(name)
    }

    fn forbidden_header_filter(&mut self) -> ForbiddenHeaderFilter {
        self.inner.forbidden_header_filter()
    }

    fn is_supported_scheme(&mut self, scheme: &http::uri::Scheme) -> bool {
        self.inner.is_supported_scheme(scheme)
    }

    fn set_host_header(&mut self) -> bool {
        self.inner.set_host_header()
    }

    fn default_scheme(&mut self) -> Option<http::uri::Scheme> {
        self.inner.default_scheme()
    }

    fn p2_outgoing_body_buffer_chunks(&mut self) -> usize {
        self.inner
            .p2_outgoing_body_buffer_chunks()
            .clamp(1, BODY_BUFFER_CHUNKS)
    }

    fn p2_outgoing_body_chunk_size(&mut self) -> usize {
        self.inner.p2_outgoing_body_chunk_size().min(BODY_CHUNK)
    }

    fn p2_error_from_hyper(&mut self, err: &hyper::Error) -> wit::ErrorCode {
        self.inner.p2_error_from_hyper(err)
    }

    fn p2_error_from_connect(&mut self, err: &std::io::Error) -> wit::ErrorCode {
        self.inner.p2_error_from_connect(err)
    }

    fn p2_error_from_tls(&mut self, err: &std::io::Error) -> wit::ErrorCode {
        self.inner.p2_error_from_tls(err)
    }

    fn p2_error_from_dns(&mut self, err: &rustls_pki_types::InvalidDnsNameError) -> wit::ErrorCode {
        self.inner.p2_error_from_dns(err)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// The shadowed functions must land in the instance wasmtime-wasi-http
    /// defines: a wrong name would open a fresh, unused instance instead.
    #[test]
    fn the_shadowed_instance_is_the_one_wasmtime_links() {
        let mut config = wasmtime::Config::new();
        config.wasm_component_model(true);
        let engine = wasmtime::Engine::new(&config).unwrap();
        let mut linker: Linker<HostState> = Linker::new(&engine);
        let mut types = linker.instance(HTTP_TYPES).unwrap();
        let fresh = types.func_wrap("[method]fields.append", |_s, (): ()| Ok(()));
        assert!(fresh.is_ok(), "nothing is defined before wasmtime links");

        let mut linker: Linker<HostState> = Linker::new(&engine);
        wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker).unwrap();
        let mut types = linker.instance(HTTP_TYPES).unwrap();
        let again = types.func_wrap("[method]fields.append", |_s, (): ()| Ok(()));
        assert!(again.is_err(), "wasmtime defines {HTTP_TYPES}");
        add_to_linker(&mut linker).unwrap();
    }

    #[test]
    fn the_traps_name_their_bound() {
        let b = Bounds::default();
        let full = wasmtime::Error::new(wasmtime::component::ResourceTableError::Full)
            .context("[new_fields] pushing fields");
        assert_eq!(b.exceeded_by(&full), Some(Exceeded::Resources(1024)));
        let big = wasmtime::Error::new(wasmtime_wasi_http::FieldMapError::TotalSizeTooBig);
        assert_eq!(b.exceeded_by(&big), Some(Exceeded::FieldBytes(32 << 10)));
        assert_eq!(
            Exceeded::HostBytes(16 << 20).to_string(),
            "16 MiB held by the host for it, in header fields and request body buffers (--max-host-mb)"
        );
        assert_eq!(b.exceeded_by(&wasmtime::format_err!("other")), None);
    }

    #[test]
    fn header_bytes_count_as_wasmtime_counts_them() {
        let mut map = HeaderMap::new();
        map.append("x-a", HeaderValue::from_static("12345"));
        map.append("x-a", HeaderValue::from_static("6"));
        assert_eq!(
            field_bytes(&map),
            name_bytes(3) + value_bytes(5) + value_bytes(1)
        );
    }
}
