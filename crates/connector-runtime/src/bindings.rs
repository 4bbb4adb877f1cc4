//! Host-side bindings of every contract version this runtime runs. Only the
//! exports are bound: the imports (`wasi:http`, `wasi:config`, the WASI
//! basics) come from the wasmtime-wasi crates, added to the linker in
//! `engine.rs`. Each version's types become the neutral ones of `types.rs`
//! in `convert.rs`, once.

/// `idgov:connector@0.1.0`: one `list-entitlements` and one `list-grants`
/// call per resource.
pub mod v0_1 {
    wasmtime::component::bindgen!({
        path: "../../wit/v0.1.0",
        world: "connector-exports",
        exports: { default: async },
    });
}

/// `idgov:connector@0.2.0`: per-type hints and entitlements and grants
/// carried in bulk on resource pages.
pub mod v0_2 {
    wasmtime::component::bindgen!({
        path: "../../wit/v0.2.0",
        world: "connector-exports",
        exports: { default: async },
    });
}

/// `idgov:connector@0.3.0`: rate budgets declared in the metadata, enforced
/// by the host.
pub mod v0_3 {
    wasmtime::component::bindgen!({
        path: "../../wit/v0.3.0",
        world: "connector-exports",
        exports: { default: async },
    });
}
