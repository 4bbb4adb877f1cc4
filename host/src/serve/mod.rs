//! `connector-host serve`: a long-running process that syncs many tenants'
//! connectors on schedule, each in its own sandboxed instance, and answers
//! health, readiness, metrics and an operator API over HTTP.

mod api;
mod metrics;
mod service;
pub mod shard;
pub mod tenants;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use connector_runtime::{Engine, EngineConfig};

pub use service::Common;
use shard::Shard;
use tenants::Tenant;

#[derive(clap::Args)]
pub struct ServeArgs {
    /// Tenants file (TOML): any number of tenants, each with its settings and secret references.
    /// Without it, one tenant named `default`, configured as the one-shot commands are.
    #[arg(long, env = "CONNECTOR_TENANTS", value_name = "FILE")]
    tenants: Option<PathBuf>,

    /// Where each tenant's sync file goes: DIR/<tenant>/sync.c1z.
    #[arg(
        long,
        env = "CONNECTOR_DATA_DIR",
        default_value = "data",
        value_name = "DIR"
    )]
    data_dir: PathBuf,

    /// Address of the HTTP API (health, readiness, metrics, /v1).
    #[arg(
        long,
        env = "CONNECTOR_LISTEN",
        default_value = "127.0.0.1:8080",
        value_name = "ADDR"
    )]
    listen: SocketAddr,

    /// File holding the bearer token that /v1 requires (its first line). Without it /v1 answers 403.
    #[arg(long, env = "CONNECTOR_API_TOKEN_FILE", value_name = "FILE")]
    api_token_file: Option<PathBuf>,

    /// Syncs running at once, over all tenants (default: the number of cores).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..=1024))]
    max_concurrent_syncs: Option<u64>,

    /// How often each tenant syncs (a tenants file may give each its own), e.g. 15m, 1h.
    #[arg(long, default_value = "1h", value_parser = parse_interval, value_name = "DURATION")]
    interval: Duration,

    /// On SIGTERM or SIGINT, how long running syncs may go on before they are cancelled.
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration, value_name = "DURATION")]
    shutdown_grace: Duration,

    /// Run only this replica's share of the tenants, INDEX/COUNT (e.g. 0/3).
    #[arg(long, value_parser = Shard::parse, value_name = "INDEX/COUNT", conflicts_with = "shards")]
    shard: Option<Shard>,

    /// Run this replica's share of COUNT, its index taken from the pod name (a StatefulSet's
    /// pod-N, from HOSTNAME).
    #[arg(long, value_name = "COUNT")]
    shards: Option<u32>,

    /// An unfinished sync that started longer ago than this starts over.
    #[arg(long, default_value = "24h", value_parser = humantime::parse_duration, value_name = "DURATION")]
    resume_max_age: Duration,
}

fn parse_interval(s: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(s).map_err(|e| e.to_string())?;
    if d < tenants::MIN_INTERVAL {
        return Err(format!("at least {:?}", tenants::MIN_INTERVAL));
    }
    Ok(d)
}

/// What the command line gives the `default` tenant.
pub struct DefaultTenant {
    pub component: Option<PathBuf>,
    pub flags: Vec<String>,
    pub prefix: Option<String>,
    pub provisioning: bool,
}

/// Runs the service until SIGTERM or SIGINT.
pub async fn run(
    args: ServeArgs,
    mut common: Common,
    engine_config: EngineConfig,
    default: DefaultTenant,
) -> anyhow::Result<()> {
    let token = args
        .api_token_file
        .as_deref()
        .map(api::read_token)
        .transpose()?;
    let shard = match (args.shard, args.shards) {
        (Some(s), _) => s,
        (None, Some(count)) => Shard::from_pod_name(&pod_name(), count)?,
        (None, None) => Shard::ALL,
    };
    let read_tenants = |path: &std::path::Path| -> anyhow::Result<Vec<Tenant>> {
        let all = tenants::read_file(path, args.interval)?;
        let total = all.len();
        let mine: Vec<Tenant> = all.into_iter().filter(|t| shard.owns(&t.id)).collect();
        tracing::info!(
            "tenants file {}: running {} of its {total} tenants (shard {}/{})",
            path.display(),
            mine.len(),
            shard.index,
            shard.count
        );
        Ok(mine)
    };
    let initial = match &args.tenants {
        Some(path) => read_tenants(path)?,
        None => vec![Tenant {
            id: "default".into(),
            component: default.component.clone(),
            interval: args.interval,
            provisioning: default.provisioning,
            rate_budgets: Vec::new(),
            settings: tenants::Settings::CommandLine {
                flags: default.flags.clone(),
                prefix: default.prefix.clone(),
            },
        }],
    };
    let max = args.max_concurrent_syncs.map_or_else(
        || std::thread::available_parallelism().map_or(2, |n| n.get()),
        |n| usize::try_from(n).unwrap_or(1),
    );
    common.data_dir = args.data_dir.clone();
    common.resume_max_age = args.resume_max_age;
    std::fs::create_dir_all(&common.data_dir).with_context(|| {
        format!(
            "cannot create the data directory {}: pass --data-dir DIR",
            common.data_dir.display()
        )
    })?;
    let engine = Engine::new(&EngineConfig {
        // A sync holds one instance; loading a component's metadata one more.
        max_instances: u32::try_from(max.saturating_mul(2).saturating_add(4)).unwrap_or(u32::MAX),
        ..engine_config
    })?;
    let service = service::Service::new(common, engine, max);

    // The environment alone configures one tenant: what is wrong with it
    // is wrong with the whole service, said now rather than at each sync.
    if args.tenants.is_none() {
        for t in &initial {
            service.preflight(t).await?;
        }
    }

    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}: pick another --listen", args.listen))?;
    tracing::info!(
        "serving on http://{} (API {}), {max} syncs at once",
        listener.local_addr().unwrap_or(args.listen),
        if token.is_some() {
            "on"
        } else {
            "off: no --api-token-file"
        }
    );
    let server_stop = tokio_util::sync::CancellationToken::new();
    let app = api::router(api::Api {
        service: service.clone(),
        token: token.map(Arc::new),
    });
    let stop = server_stop.clone();
    let server = tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async move { stop.cancelled().await })
            .await
    });

    service.apply(initial).await;

    wait_for_stop(&service, args.tenants.as_deref(), &read_tenants).await;
    service.shut_down(args.shutdown_grace).await;
    server_stop.cancel();
    let _ = tokio::time::timeout(Duration::from_secs(5), server).await;
    tracing::info!("stopped");
    Ok(())
}

/// Waits for SIGTERM or SIGINT; on SIGHUP reads the tenants file again,
/// keeping the old set when the new file is bad.
async fn wait_for_stop(
    service: &Arc<service::Service>,
    tenants_file: Option<&std::path::Path>,
    read_tenants: &dyn Fn(&std::path::Path) -> anyhow::Result<Vec<Tenant>>,
) {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut int), Ok(mut hup)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
        signal(SignalKind::hangup()),
    ) else {
        tracing::error!("cannot watch for signals; stopping");
        return;
    };
    loop {
        tokio::select! {
            _ = term.recv() => break,
            _ = int.recv() => break,
            _ = hup.recv() => {
                match tenants_file {
                    None => tracing::info!("SIGHUP: no --tenants file to read again"),
                    Some(path) => match read_tenants(path) {
                        Ok(t) => service.apply(t).await,
                        Err(e) => tracing::error!("SIGHUP: {e:#}; keeping the tenants as they were"),
                    },
                }
                // Reading the file touched free pages a job had given back
                // (the parse's garbage, about 1 MiB for 200 tenants): given
                // back again, or each reload would leave them resident.
                crate::memory::release_free();
            }
        }
    }
    tracing::info!("stopping: no new syncs start");
}

/// This pod's name: Kubernetes sets HOSTNAME to it.
fn pod_name() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/proc/sys/kernel/hostname").ok())
        .unwrap_or_default()
        .trim()
        .to_string()
}
