//! A configured connector instance with typed calls: each returns the
//! connector's own error as `CallError` inside, and a trap or timeout of the
//! sandbox as the outer error.

use anyhow::Context as _;

use crate::allow_list::{AllowList, Origin, Policy};
use crate::bindings::exports::idgov::connector::types::{
    AccountInfo, CreateAccountOutcome, CredentialOption, EntitlementPage, EntitlementRef, Grant,
    GrantOutcome, GrantPage, ResourcePage, RevokeOutcome,
};
use crate::bindings::{Metadata, ResourceId, ResourceType};
use crate::errors::CallError;
use crate::runtime::{Instance, Runtime};

pub type CallResult<T> = anyhow::Result<Result<T, CallError>>;

pub struct Connector {
    inst: Instance,
}

/// The connector's static description, from an instance with no
/// configuration and no network.
pub async fn metadata(runtime: &Runtime) -> anyhow::Result<(Metadata, Vec<ResourceType>)> {
    let mut inst = runtime.instantiate(Vec::new()).await?;
    let meta = inst
        .call("metadata", async |b, s| {
            b.idgov_connector_sync().call_metadata(s).await
        })
        .await?;
    let types = inst
        .call("resource-types", async |b, s| {
            b.idgov_connector_sync().call_resource_types(s).await
        })
        .await?
        .map_err(CallError)
        .context("the connector could not list its resource types")?;
    Ok((meta, types))
}

impl Connector {
    /// Instantiates with `config`, asks the connector which origins this
    /// configuration needs (with the network still closed), and opens those.
    pub async fn open(
        runtime: &Runtime,
        config: impl IntoIterator<Item = (String, String)>,
        operator: Option<AllowList>,
    ) -> anyhow::Result<Connector> {
        let mut inst = runtime.instantiate(config).await?;
        let declared = inst
            .call("outbound-origins", async |b, s| {
                b.idgov_connector_sync().call_outbound_origins(s).await
            })
            .await?
            .map_err(CallError)?;
        let mut origins = Vec::new();
        for text in &declared {
            let origin = Origin::declared(text)
                .with_context(|| format!("the connector declared an unusable origin {text:?}"))?;
            if origin.scheme == "http" && !origin.is_loopback() {
                anyhow::bail!(
                    "the connector asks for plain http to {origin}; only https is allowed beyond loopback: use an https base URL"
                );
            }
            origins.push(origin);
        }
        let policy = Policy::new(origins, operator);
        if policy.allowed().is_empty() && !declared.is_empty() {
            anyhow::bail!(
                "none of the origins this configuration needs ({}) is in --allow-host: add them or drop --allow-host",
                declared.join(", ")
            );
        }
        tracing::debug!(allowed = ?policy.allowed(), "outbound allow-list");
        inst.set_policy(policy);
        Ok(Connector { inst })
    }

    pub async fn validate(&mut self) -> CallResult<String> {
        Ok(self
            .inst
            .call("validate", async |b, s| {
                b.idgov_connector_sync().call_validate(s).await
            })
            .await?
            .map_err(CallError))
    }

    pub async fn resource_types(&mut self) -> CallResult<Vec<ResourceType>> {
        Ok(self
            .inst
            .call("resource-types", async |b, s| {
                b.idgov_connector_sync().call_resource_types(s).await
            })
            .await?
            .map_err(CallError))
    }

    pub async fn list_resources(
        &mut self,
        resource_type: &str,
        parent: Option<&ResourceId>,
        token: Option<&str>,
    ) -> CallResult<ResourcePage> {
        Ok(self
            .inst
            .call("list-resources", async |b, s| {
                b.idgov_connector_sync()
                    .call_list_resources(s, resource_type, parent, token)
                    .await
            })
            .await?
            .map_err(CallError))
    }

    pub async fn list_entitlements(
        &mut self,
        resource: &ResourceId,
        token: Option<&str>,
    ) -> CallResult<EntitlementPage> {
        Ok(self
            .inst
            .call("list-entitlements", async |b, s| {
                b.idgov_connector_sync()
                    .call_list_entitlements(s, resource, token)
                    .await
            })
            .await?
            .map_err(CallError))
    }

    pub async fn list_grants(
        &mut self,
        resource: &ResourceId,
        token: Option<&str>,
    ) -> CallResult<GrantPage> {
        Ok(self
            .inst
            .call("list-grants", async |b, s| {
                b.idgov_connector_sync()
                    .call_list_grants(s, resource, token)
                    .await
            })
            .await?
            .map_err(CallError))
    }
}

/// Provisioning calls; the host checks the operator's switch before any.
impl Connector {
    pub async fn grant(
        &mut self,
        principal: &ResourceId,
        entitlement: &EntitlementRef,
    ) -> CallResult<GrantOutcome> {
        Ok(self
            .inst
            .call("grant", async |b, s| {
                b.idgov_connector_provisioning()
                    .call_grant(s, principal, entitlement)
                    .await
            })
            .await?
            .map_err(CallError))
    }

    pub async fn revoke(&mut self, grant: &Grant) -> CallResult<RevokeOutcome> {
        Ok(self
            .inst
            .call("revoke", async |b, s| {
                b.idgov_connector_provisioning().call_revoke(s, grant).await
            })
            .await?
            .map_err(CallError))
    }

    pub async fn create_account(
        &mut self,
        info: &AccountInfo,
        credential: CredentialOption,
    ) -> CallResult<CreateAccountOutcome> {
        Ok(self
            .inst
            .call("create-account", async move |b, s| {
                b.idgov_connector_provisioning()
                    .call_create_account(s, info, credential)
                    .await
            })
            .await?
            .map_err(CallError))
    }

    pub async fn delete_resource(&mut self, id: &ResourceId) -> CallResult<()> {
        Ok(self
            .inst
            .call("delete-resource", async |b, s| {
                b.idgov_connector_provisioning()
                    .call_delete_resource(s, id)
                    .await
            })
            .await?
            .map_err(CallError))
    }
}
