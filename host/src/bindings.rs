//! Host-side bindings of the connector contract. Only the exports are bound:
//! the imports (`wasi:http`, `wasi:config`, the WASI basics) come from the
//! wasmtime-wasi crates, added to the linker in `runtime.rs`.

wasmtime::component::bindgen!({
    path: "../wit",
    world: "connector-exports",
    exports: { default: async },
});

pub use exports::idgov::connector::types::{
    AccountStatus, ConfigField, ConnectorError, ConnectorMetadata as Metadata, Entitlement, Grant,
    Purpose, Resource, ResourceId, ResourceTrait, ResourceType,
};

/// The WIT package version this host speaks.
pub const CONTRACT_VERSION: &str = "0.1.0";
