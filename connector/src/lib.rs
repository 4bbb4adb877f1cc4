//! The Ironclad connector: a WebAssembly component that reads Ironclad's users, groups and group
//! memberships through its SCIM API and hands them to a host in the shapes of contract
//! idgov:connector@0.3.0 (`wit/v0.3.0/connector.wit`); it also grants and revokes group membership
//! and creates accounts (with a generated password when the company does not sign in through
//! SAML). It never deletes users.
//!
//! Boundary: it knows Ironclad and nothing of the host. Settings come only from
//! `wasi:config/store`, the network only through `wasi:http/outgoing-handler` (via `waki`), and
//! every failure leaves as a `connector-error` — never a trap. Everything that needs no request
//! (config parsing, mapping, paging, error wording, token timing) lives in plain modules so it is
//! tested natively.

wit_bindgen::generate!({
    path: "../wit/v0.3.0",
    world: "connector",
    // Our world imports wasi:http (for waki, which carries its own bindings of the same
    // interfaces); the generated copies here go unused and add nothing to the component.
    generate_all,
});

mod ahead;
mod client;
mod config;
mod errors;
/// Everything that reads an Ironclad answer, in one call, for `connector/fuzz`.
#[cfg(any(test, feature = "fuzzing"))]
pub mod fuzzing;
mod http;
mod included;
mod mapping;
mod metadata;
mod oauth;
mod paging;
mod password;
mod provisioning;
mod redact;
mod scim;
mod state;
mod sync;

/// The WIT data model, shortened for the modules that build it.
pub(crate) use exports::idgov::connector::types as wit;

use exports::idgov::connector::provisioning::Guest as ProvisioningGuest;
use exports::idgov::connector::sync::Guest as SyncGuest;
use wit::{
    AccountInfo, ConnectorError, ConnectorMetadata, CreateAccountOutcome, CredentialOption,
    EntitlementPage, EntitlementRef, Grant, GrantOutcome, GrantPage, ResourceId, ResourcePage,
    ResourceType, RevokeOutcome,
};

struct Component;

impl SyncGuest for Component {
    fn metadata() -> ConnectorMetadata {
        metadata::metadata()
    }

    fn outbound_origins() -> Result<Vec<String>, ConnectorError> {
        sync::outbound_origins()
    }

    fn validate() -> Result<String, ConnectorError> {
        sync::validate()
    }

    fn resource_types() -> Result<Vec<ResourceType>, ConnectorError> {
        Ok(metadata::resource_types())
    }

    fn list_resources(
        resource_type: String,
        parent: Option<ResourceId>,
        page_token: Option<String>,
    ) -> Result<ResourcePage, ConnectorError> {
        sync::list_resources(&resource_type, parent.as_ref(), page_token.as_deref())
    }

    fn list_entitlements(
        resource: ResourceId,
        page_token: Option<String>,
    ) -> Result<EntitlementPage, ConnectorError> {
        sync::list_entitlements(&resource, page_token.as_deref())
    }

    fn list_grants(
        resource: ResourceId,
        page_token: Option<String>,
    ) -> Result<GrantPage, ConnectorError> {
        sync::list_grants(&resource, page_token.as_deref())
    }
}

impl ProvisioningGuest for Component {
    fn grant(
        principal: ResourceId,
        entitlement: EntitlementRef,
    ) -> Result<GrantOutcome, ConnectorError> {
        provisioning::grant(&principal, &entitlement)
    }

    fn revoke(grant: Grant) -> Result<RevokeOutcome, ConnectorError> {
        provisioning::revoke(&grant)
    }

    fn create_account(
        info: AccountInfo,
        credential: CredentialOption,
    ) -> Result<CreateAccountOutcome, ConnectorError> {
        provisioning::create_account(&info, &credential)
    }

    fn delete_resource(id: ResourceId) -> Result<(), ConnectorError> {
        Err(provisioning::delete_resource(&id))
    }
}

// Only the wasm build exports: native builds (unit tests) would otherwise put the component's
// export names, which no native linker accepts, into the test library.
#[cfg(target_arch = "wasm32")]
export!(Component);
