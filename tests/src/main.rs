//! `ironclad-sim`: the simulator as a process, for `make demo` and
//! `make bench`. Prints one ready line, runs until SIGINT/SIGTERM, then
//! reports the request and connection counts on stderr.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context as _;
use clap::Parser;
use ironclad_sim::{Faults, SimConfig, Simulator, TenantSpec, TlsIdentity, DEFAULT_CLIENT_SECRET};

#[derive(Parser, Debug)]
#[command(
    name = "ironclad-sim",
    about = "A loopback Ironclad OAuth + SCIM simulator"
)]
struct Args {
    #[arg(long, default_value_t = 50)]
    users: usize,
    #[arg(long, default_value_t = 5)]
    groups: usize,
    #[arg(long, default_value_t = 120)]
    memberships: usize,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// 0 picks a free port.
    #[arg(long, default_value_t = 0)]
    port: u16,
    #[arg(long, default_value_t = 0)]
    latency_ms: u64,
    /// Every Nth SCIM request answers 429.
    #[arg(long)]
    rate_limit_every: Option<u64>,
    /// Send `Retry-After: N` with 429s (none by default).
    #[arg(long)]
    retry_after_secs: Option<u64>,
    /// Every Nth SCIM request answers --server-error-status.
    #[arg(long)]
    server_error_every: Option<u64>,
    #[arg(long, default_value_t = 503)]
    server_error_status: u16,
    /// PATCH /Groups/{id} answers 204 instead of 200 with the group.
    #[arg(long)]
    patch_returns_204: bool,
    #[arg(long, default_value_t = 21_600)]
    token_lifetime_secs: u64,
    #[arg(long, default_value = DEFAULT_CLIENT_SECRET)]
    client_secret: String,
    /// Written with the base URL (temp file + rename) once listening.
    #[arg(long)]
    ready_file: Option<PathBuf>,

    /// The company signs in through SAML: new users need no password.
    #[arg(long)]
    saml: bool,

    /// Display names with terminal escapes, user and group ids with ':' and '\'.
    #[arg(long)]
    hostile_names: bool,

    /// POST /Users and PATCH /Users/{id} answer 400 with a SCIM error whose
    /// detail quotes the request body as received (secrets in it included).
    #[arg(long)]
    echo_body_in_errors: bool,

    /// User and group listings never end: every page is full of fresh ids
    /// past the real tenant, and totalResults stays the tenant's real size.
    #[arg(long)]
    endless_pages: bool,

    /// GET /Users pages answer as if the tenant had churned (one early user
    /// deleted, two made) once per page before the one asked; the tenant
    /// itself never changes, so a page asked again gets the same answer.
    #[arg(long)]
    page_churn: bool,

    /// Serve HTTPS with this certificate chain (PEM: the leaf, then any
    /// intermediates). Needs --tls-key.
    #[arg(long, value_name = "PATH", requires = "tls_key")]
    tls_cert: Option<PathBuf>,

    /// The private key of --tls-cert (PEM: PKCS#8, PKCS#1 or SEC1).
    #[arg(long, value_name = "PATH", requires = "tls_cert")]
    tls_key: Option<PathBuf>,

    /// The host name in the base URL instead of 127.0.0.1 (e.g. ironclad.test,
    /// the name in --tls-cert); clients map it to 127.0.0.1 themselves
    /// (`--resolve NAME:PORT:127.0.0.1`).
    #[arg(long, value_name = "NAME")]
    public_host: Option<String>,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let tls = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => Some(TlsIdentity::from_files(cert, key)?),
        _ => None,
    };
    let cfg = SimConfig {
        tenant: TenantSpec {
            users: args.users,
            groups: args.groups,
            memberships: args.memberships,
            seed: args.seed,
        },
        client_secret: args.client_secret.clone(),
        token_lifetime: Duration::from_secs(args.token_lifetime_secs),
        faults: Faults {
            latency: Duration::from_millis(args.latency_ms),
            rate_limit_every: args.rate_limit_every,
            retry_after_secs: args.retry_after_secs,
            server_error_every: args.server_error_every,
            server_error_status: args.server_error_status,
            patch_returns_204: args.patch_returns_204,
            hostile: None,
            churn: false,
            page_churn: args.page_churn,
            echo_body_in_errors: args.echo_body_in_errors,
            endless_pages: args.endless_pages,
        },
        saml: args.saml,
        hostile_names: args.hostile_names,
        tls,
        public_host: args.public_host.clone(),
        ..SimConfig::default()
    };
    let sim = Simulator::start_on(cfg, args.port)?;
    let tenant = sim.tenant();
    {
        let mut out = std::io::stdout().lock();
        writeln!(
            out,
            "ironclad-sim listening on {} client_id={} as_user_email={} users={} groups={} memberships={}",
            sim.base_url(),
            sim.client_id(),
            sim.admin_email(),
            tenant.users.len(),
            tenant.groups.len(),
            tenant.memberships()
        )?;
        out.flush()?;
    }
    drop(tenant);
    if let Some(path) = &args.ready_file {
        write_atomically(path, &sim.base_url())?;
    }

    wait_for_signal()?;

    let mut err = std::io::stderr().lock();
    writeln!(err, "ironclad-sim: {} requests", sim.total_requests())?;
    for (endpoint, n) in sim.requests() {
        writeln!(err, "  {n:>8}  {endpoint}")?;
    }
    // A line of its own: scripts match the requests line exactly.
    if args.tls_cert.is_some() {
        writeln!(
            err,
            "ironclad-sim: {} connections, {} failed TLS handshakes",
            sim.connections(),
            sim.tls_failures()
        )?;
    } else {
        writeln!(err, "ironclad-sim: {} connections", sim.connections())?;
    }
    drop(sim);
    Ok(())
}

/// Readers polling for the file never see it half written.
fn write_atomically(path: &Path, contents: &str) -> anyhow::Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    std::fs::write(&tmp, contents).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("renaming to {}", path.display()))?;
    Ok(())
}

fn wait_for_signal() -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        tokio::select! {
            r = tokio::signal::ctrl_c() => r?,
            _ = term.recv() => {}
        }
        Ok(())
    })
}
