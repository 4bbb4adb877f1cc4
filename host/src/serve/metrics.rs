//! What `GET /metrics` shows, in the Prometheus (OpenMetrics) text format.
//!
//! Labels carry the tenant id (checked plain when the tenants were read)
//! and resource type names, which a component chose: those are cut down to
//! a safe alphabet and length first. No setting, secret or token is ever a
//! label.

use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TenantLabel {
    pub tenant: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabels {
    pub tenant: String,
    pub outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HeapLabel {
    /// `in_use` or `free`.
    pub state: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TypeLabels {
    pub tenant: String,
    pub resource_type: String,
}

/// The service's metrics; cheap to share (each family is shared inside).
pub struct Metrics {
    registry: Registry,
    syncs: Family<OutcomeLabels, Counter>,
    duration: Histogram,
    last_success: Family<TenantLabel, Gauge<f64, AtomicU64>>,
    requests: Family<TenantLabel, Counter>,
    retries: Family<TenantLabel, Counter>,
    resources: Family<TypeLabels, Gauge>,
    grants: Family<TenantLabel, Gauge>,
    running: Gauge,
    /// The allocator's live and free bytes, read at each scrape.
    heap: Family<HeapLabel, Gauge>,
    /// The resource types each tenant's gauges have, so a type its last
    /// sync no longer had, or a tenant gone, can be dropped.
    types: std::sync::Mutex<std::collections::BTreeMap<String, Vec<String>>>,
}

/// Every outcome a sync can have.
pub const OUTCOMES: [&str; 3] = ["success", "failure", "cancelled"];

/// How a finished sync went, for the metrics.
pub struct Outcome<'a> {
    pub tenant: &'a str,
    /// `success`, `failure` or `cancelled`.
    pub outcome: &'static str,
    pub seconds: f64,
    pub http_requests: u64,
    pub retries: u64,
    /// On success: the resources by type and the grants.
    pub counts: Option<(&'a std::collections::BTreeMap<String, u64>, u64)>,
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = Registry::default();
        let syncs = Family::<OutcomeLabels, Counter>::default();
        // 0.5 s to about 2.3 h: a small tenant's sync to a large one's.
        let duration = Histogram::new(exponential_buckets(0.5, 2.0, 15));
        let last_success = Family::<TenantLabel, Gauge<f64, AtomicU64>>::default();
        let requests = Family::<TenantLabel, Counter>::default();
        let retries = Family::<TenantLabel, Counter>::default();
        let resources = Family::<TypeLabels, Gauge>::default();
        let grants = Family::<TenantLabel, Gauge>::default();
        let running = Gauge::default();
        let heap = Family::<HeapLabel, Gauge>::default();
        registry.register(
            "connector_syncs",
            "Syncs ended, by tenant and outcome (success, failure, cancelled)",
            syncs.clone(),
        );
        registry.register(
            "connector_sync_duration_seconds",
            "How long syncs took, from start to the file written or the failure",
            duration.clone(),
        );
        registry.register(
            "connector_last_success_timestamp_seconds",
            "When the tenant's last successful sync finished, in Unix seconds",
            last_success.clone(),
        );
        registry.register(
            "connector_http_requests",
            "HTTP requests the tenant's connector made",
            requests.clone(),
        );
        registry.register(
            "connector_http_retries",
            "Requests retried (rate limits, unavailable)",
            retries.clone(),
        );
        registry.register(
            "connector_resources",
            "Resources in the tenant's last successful sync, by type",
            resources.clone(),
        );
        registry.register(
            "connector_grants",
            "Grants in the tenant's last successful sync",
            grants.clone(),
        );
        registry.register(
            "connector_syncs_running",
            "Syncs running now",
            running.clone(),
        );
        registry.register(
            "connector_heap_bytes",
            "The process's heap as its allocator counts it: live allocations (in_use) and freed memory it keeps (free)",
            heap.clone(),
        );
        Metrics {
            registry,
            syncs,
            duration,
            last_success,
            requests,
            retries,
            resources,
            grants,
            running,
            heap,
            types: std::sync::Mutex::default(),
        }
    }

    /// A sync starts (`true`) or ends.
    pub fn running(&self, started: bool) {
        if started {
            self.running.inc();
        } else {
            self.running.dec();
        }
    }

    pub fn record(&self, o: &Outcome<'_>) {
        let tenant = TenantLabel {
            tenant: o.tenant.to_string(),
        };
        self.syncs
            .get_or_create(&OutcomeLabels {
                tenant: o.tenant.to_string(),
                outcome: o.outcome.to_string(),
            })
            .inc();
        self.duration.observe(o.seconds);
        self.requests.get_or_create(&tenant).inc_by(o.http_requests);
        self.retries.get_or_create(&tenant).inc_by(o.retries);
        if let Some((by_type, grants)) = o.counts {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0.0, |d| d.as_secs_f64());
            self.last_success.get_or_create(&tenant).set(now);
            let mut names = Vec::with_capacity(by_type.len());
            for (t, n) in by_type {
                let resource_type = label_value(t);
                self.resources
                    .get_or_create(&TypeLabels {
                        tenant: o.tenant.to_string(),
                        resource_type: resource_type.clone(),
                    })
                    .set(i64::try_from(*n).unwrap_or(i64::MAX));
                names.push(resource_type);
            }
            // Types the last sync no longer had are dropped, not left at
            // their old count. The others keep their entries: a service
            // runs thousands of syncs, and an entry made again each time
            // is a long-lived allocation placed among a job's short ones.
            let mut types = self.types_of();
            for gone in types.get(o.tenant).into_iter().flatten() {
                if !names.contains(gone) {
                    self.resources.remove(&TypeLabels {
                        tenant: o.tenant.to_string(),
                        resource_type: gone.clone(),
                    });
                }
            }
            types.insert(o.tenant.to_string(), names);
            drop(types);
            self.grants
                .get_or_create(&tenant)
                .set(i64::try_from(grants).unwrap_or(i64::MAX));
        }
    }

    /// Forgets a tenant that left the tenants file.
    pub fn forget(&self, tenant: &str) {
        for outcome in OUTCOMES {
            self.syncs.remove(&OutcomeLabels {
                tenant: tenant.to_string(),
                outcome: outcome.to_string(),
            });
        }
        let label = TenantLabel {
            tenant: tenant.to_string(),
        };
        self.last_success.remove(&label);
        self.requests.remove(&label);
        self.retries.remove(&label);
        self.grants.remove(&label);
        self.forget_types(tenant);
    }

    fn forget_types(&self, tenant: &str) {
        for resource_type in self.types_of().remove(tenant).unwrap_or_default() {
            self.resources.remove(&TypeLabels {
                tenant: tenant.to_string(),
                resource_type,
            });
        }
    }

    fn types_of(
        &self,
    ) -> std::sync::MutexGuard<'_, std::collections::BTreeMap<String, Vec<String>>> {
        self.types
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The text a scrape gets.
    pub fn encode(&self) -> String {
        if let Some((in_use, free)) = crate::memory::heap_bytes() {
            let gauge = |state, bytes: u64| {
                self.heap
                    .get_or_create(&HeapLabel { state })
                    .set(i64::try_from(bytes).unwrap_or(i64::MAX));
            };
            gauge("in_use", in_use);
            gauge("free", free);
        }
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

/// A label value from a component: letters, digits, `_`, `-` and `.`,
/// at most 64 characters; anything else becomes `_`.
fn label_value(text: &str) -> String {
    text.chars()
        .take(64)
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.') {
                c
            } else {
                '_'
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic)]
    use super::*;

    #[test]
    fn a_success_and_a_failure_show_with_their_labels() {
        let m = Metrics::new();
        let mut types = std::collections::BTreeMap::new();
        types.insert("user".to_string(), 3);
        types.insert("gr\"oup\n{x}".to_string(), 2);
        m.record(&Outcome {
            tenant: "acme",
            outcome: "success",
            seconds: 1.5,
            http_requests: 7,
            retries: 1,
            counts: Some((&types, 4)),
        });
        m.record(&Outcome {
            tenant: "globex",
            outcome: "failure",
            seconds: 0.2,
            http_requests: 1,
            retries: 0,
            counts: None,
        });
        let text = m.encode();
        for want in [
            "connector_syncs_total{tenant=\"acme\",outcome=\"success\"} 1",
            "connector_syncs_total{tenant=\"globex\",outcome=\"failure\"} 1",
            "connector_http_requests_total{tenant=\"acme\"} 7",
            "connector_http_retries_total{tenant=\"acme\"} 1",
            "connector_resources{tenant=\"acme\",resource_type=\"user\"} 3",
            "connector_resources{tenant=\"acme\",resource_type=\"gr_oup__x_\"} 2",
            "connector_grants{tenant=\"acme\"} 4",
            "connector_sync_duration_seconds_count 2",
            "connector_last_success_timestamp_seconds{tenant=\"acme\"}",
        ] {
            assert!(text.contains(want), "{want} not in\n{text}");
        }
        assert!(!text.contains("last_success_timestamp_seconds{tenant=\"globex\"}"));
        // A later sync without a type drops its gauge and keeps the others.
        types.remove("gr\"oup\n{x}");
        m.record(&Outcome {
            tenant: "acme",
            outcome: "success",
            seconds: 1.0,
            http_requests: 2,
            retries: 0,
            counts: Some((&types, 4)),
        });
        let text = m.encode();
        assert!(text.contains("connector_resources{tenant=\"acme\",resource_type=\"user\"} 3"));
        assert!(!text.contains("gr_oup__x_"), "{text}");
        if cfg!(all(target_os = "linux", target_env = "gnu")) {
            assert!(
                text.contains("connector_heap_bytes{state=\"in_use\"}"),
                "{text}"
            );
        }
        m.forget("acme");
        assert!(!m.encode().contains("tenant=\"acme\""));
    }
}
