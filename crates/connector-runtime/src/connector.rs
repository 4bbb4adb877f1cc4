//! A configured connector instance with typed calls in neutral types, for
//! whichever contract version the component was built for.

use std::collections::BTreeMap;
use std::sync::Arc;

use sync_store::ids::{EntitlementId, GrantId};
use sync_store::model::ResourceId;

use crate::allow_list::Origin;
use crate::convert::{v0_1, v0_2, v0_3};
use crate::egress::{EgressError, OperatorEgress, Policy};
use crate::engine::Component;
use crate::errors::CallError;
use crate::instance::{Bindings, Instance, Limits};
use crate::rate::{Budgets, RateError};
use crate::types::*;

/// Calls one export on either contract version: `$call` names the export's
/// method on the interface accessor `$iface`, `$args` are the arguments
/// (built per version by the closure `$prep`), and `$map` turns the answer
/// into neutral types.
macro_rules! dispatch {
    ($inst:expr, $name:literal, $iface:ident, $call:ident, |$c:ident| ($($arg:expr),*), $map:ident) => {
        $inst
            .call($name, async |b, s| match b {
                Bindings::V0_1(x) => {
                    #[allow(unused_imports)]
                    use v0_1 as $c;
                    Ok(x.$iface().$call(s, $($arg),*).await?.map($c::$map).map_err($c::error))
                }
                Bindings::V0_2(x) => {
                    #[allow(unused_imports)]
                    use v0_2 as $c;
                    Ok(x.$iface().$call(s, $($arg),*).await?.map($c::$map).map_err($c::error))
                }
                Bindings::V0_3(x) => {
                    #[allow(unused_imports)]
                    use v0_3 as $c;
                    Ok(x.$iface().$call(s, $($arg),*).await?.map($c::$map).map_err($c::error))
                }
            })
            .await
    };
}

impl Component {
    /// The connector's static description and resource types, from an
    /// instance with no configuration and no network.
    pub async fn metadata(&self, limits: &Limits) -> Result<(Metadata, Vec<TypeInfo>), CallError> {
        let mut inst = Instance::new(self, limits, Vec::new()).await?;
        let meta = metadata(&mut inst, self.contract_version()).await?;
        let types = resource_types(&mut inst).await?;
        Ok((meta, types))
    }
}

async fn metadata(inst: &mut Instance, version: ContractVersion) -> Result<Metadata, CallError> {
    inst.call("metadata", async |b, s| match b {
        Bindings::V0_1(x) => Ok(Ok(v0_1::metadata(
            x.idgov_connector_sync().call_metadata(s).await?,
            version,
        ))),
        Bindings::V0_2(x) => Ok(Ok(v0_2::metadata(
            x.idgov_connector_sync().call_metadata(s).await?,
            version,
        ))),
        Bindings::V0_3(x) => Ok(Ok(v0_3::metadata(
            x.idgov_connector_sync().call_metadata(s).await?,
            version,
        ))),
    })
    .await
}

async fn resource_types(inst: &mut Instance) -> Result<Vec<TypeInfo>, CallError> {
    dispatch!(
        inst,
        "resource-types",
        idgov_connector_sync,
        call_resource_types,
        |c| (),
        type_infos
    )
}

/// A configured connector: one sandboxed instance whose egress policy is
/// fixed when it opens, from what the operator gave (see [`crate::egress`]).
pub struct Connector {
    inst: Instance,
    /// Shared with the instance's outbound layer, which enforces it.
    policy: Arc<Policy>,
}

/// Why a connector could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// The call that asks for the origins failed.
    #[error(transparent)]
    Call(#[from] CallError),
    /// The operator's settings or list make no usable policy.
    #[error(transparent)]
    Egress(#[from] EgressError),
    /// The connector's rate budgets, or the operator's lowering of them,
    /// are unusable.
    #[error(transparent)]
    Rate(#[from] RateError),
    /// The connector declared something that is not an origin.
    #[error("the connector declared an unusable origin {origin:?}: {reason}")]
    BadOrigin {
        /// What it declared.
        origin: String,
        /// Why it is unusable.
        reason: String,
    },
    /// The configuration needs an origin the operator has not granted.
    #[error("this configuration needs {origin}, which the operator has not granted the component: grant it with --allow-host {origin}, or set the connector's origin setting")]
    NotGranted {
        /// The origin, as an allow-list entry.
        origin: String,
    },
}

impl Connector {
    /// Instantiates `component` with `config` and fixes its egress policy:
    /// the component's static patterns filled with `config`, the origin
    /// settings in `config`, and `egress` (see [`crate::egress`]). The
    /// origins the connector says this configuration needs (asked with the
    /// network still closed) must lie within that policy; they never
    /// widen it.
    pub async fn open(
        component: &Component,
        limits: &Limits,
        config: impl IntoIterator<Item = (String, String)>,
        egress: &OperatorEgress,
    ) -> Result<Connector, OpenError> {
        let config: BTreeMap<String, String> = config.into_iter().collect();
        let mut inst = Instance::new(component, limits, config.clone()).await?;
        let meta = metadata(&mut inst, component.contract_version()).await?;
        let policy = Policy::plan(&meta, &config, egress)?;
        let budgets = Budgets::plan(
            &meta.rate_budgets,
            &config,
            &meta.config_schema,
            &egress.rate_budgets,
            &egress.rates,
        )?;
        let declared: Vec<String> = dispatch!(
            inst,
            "outbound-origins",
            idgov_connector_sync,
            call_outbound_origins,
            |c| (),
            identity
        )?;
        for text in &declared {
            let origin = Origin::declared(text).map_err(|e| OpenError::BadOrigin {
                origin: text.clone(),
                reason: format!("{e:#}"),
            })?;
            if policy.check(&origin).is_err() {
                return Err(OpenError::NotGranted {
                    origin: origin.as_entry(),
                });
            }
        }
        for line in policy.describe() {
            tracing::info!("egress: {line}");
        }
        for line in budgets.describe() {
            tracing::info!("rate budget {line}");
        }
        let policy = Arc::new(policy);
        inst.set_policy(policy.clone(), &egress.network, Arc::new(budgets));
        Ok(Connector { inst, policy })
    }

    /// What this connector may reach, and why.
    pub fn egress(&self) -> &Policy {
        &self.policy
    }

    /// Whether the page tokens this connector returns are good in another
    /// instance of it with the same configuration, in this process or
    /// another (contract 0.2.0 promises so; 0.1.0 did not): a sync
    /// continued after a restart resumes its listing from one.
    pub fn page_tokens_outlive_instance(&self) -> bool {
        self.inst.contract_version() >= crate::types::ContractVersion::V0_2
    }

    /// Outbound requests made so far by this connector.
    pub fn http_requests(&self) -> u64 {
        self.inst.requests()
    }

    /// Bytes of memory and tables the component holds now: its peak, as
    /// a component's memory never shrinks.
    pub fn memory_bytes(&self) -> usize {
        self.inst.memory_bytes()
    }

    /// Checks the configuration and credentials; says whom it acts as.
    pub async fn validate(&mut self) -> Result<String, CallError> {
        dispatch!(
            self.inst,
            "validate",
            idgov_connector_sync,
            call_validate,
            |c| (),
            identity
        )
    }

    /// The resource types, with what a sync must ask of each.
    pub async fn resource_types(&mut self) -> Result<Vec<TypeInfo>, CallError> {
        resource_types(&mut self.inst).await
    }

    /// One page of resources of a type.
    pub async fn list_resources(
        &mut self,
        resource_type: &str,
        parent: Option<&ResourceId>,
        token: Option<&str>,
    ) -> Result<ResourcePage, CallError> {
        dispatch!(
            self.inst,
            "list-resources",
            idgov_connector_sync,
            call_list_resources,
            |c| (resource_type, parent.map(c::wit_id).as_ref(), token),
            resource_page
        )
    }

    /// One page of a resource's entitlements.
    pub async fn list_entitlements(
        &mut self,
        resource: &ResourceId,
        token: Option<&str>,
    ) -> Result<EntitlementPage, CallError> {
        dispatch!(
            self.inst,
            "list-entitlements",
            idgov_connector_sync,
            call_list_entitlements,
            |c| (&c::wit_id(resource), token),
            entitlement_page
        )
    }

    /// One page of the grants on a resource's entitlements.
    pub async fn list_grants(
        &mut self,
        resource: &ResourceId,
        token: Option<&str>,
    ) -> Result<GrantPage, CallError> {
        dispatch!(
            self.inst,
            "list-grants",
            idgov_connector_sync,
            call_list_grants,
            |c| (&c::wit_id(resource), token),
            grant_page
        )
    }
}

/// Provisioning: the caller checks the operator's switch before any.
impl Connector {
    /// Gives `entitlement` to `principal`.
    pub async fn grant(
        &mut self,
        principal: &ResourceId,
        entitlement: &EntitlementId,
    ) -> Result<GrantOutcome, CallError> {
        dispatch!(
            self.inst,
            "grant",
            idgov_connector_provisioning,
            call_grant,
            |c| (&c::wit_id(principal), &c::entitlement_ref(entitlement)),
            grant_outcome
        )
    }

    /// Takes a grant away.
    pub async fn revoke(&mut self, grant: &GrantId) -> Result<RevokeOutcome, CallError> {
        dispatch!(
            self.inst,
            "revoke",
            idgov_connector_provisioning,
            call_revoke,
            |c| (&c::grant_record(grant)),
            revoke_outcome
        )
    }

    /// Creates an account; a generated password comes back in the outcome.
    pub async fn create_account(
        &mut self,
        info: &AccountInfo,
        credential: CredentialOption,
    ) -> Result<CreateAccountOutcome, CallError> {
        dispatch!(
            self.inst,
            "create-account",
            idgov_connector_provisioning,
            call_create_account,
            |c| (&c::account_info(info), c::credential_option(credential)),
            create_account_outcome
        )
    }

    /// Deletes a resource.
    pub async fn delete_resource(&mut self, id: &ResourceId) -> Result<(), CallError> {
        dispatch!(
            self.inst,
            "delete-resource",
            idgov_connector_provisioning,
            call_delete_resource,
            |c| (&c::wit_id(id)),
            identity
        )
    }
}
