//! `connector-host`: the command line over `connector-runtime` (the wasmtime
//! sandbox and the sync driver) and `sync-store` (the c1z and JSON outputs).
//! It owns every flag name, the one-line hints and what is printed; the
//! libraries know nothing of the command line.

mod inspect;
mod logging;
mod memory;
mod process;
mod progress;
mod provision;
mod redact;
mod serve;
mod terminal;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use clap::{Parser, Subcommand};

use connector_runtime::config::{self, Secrets};
use connector_runtime::{
    allow_list, egress, outbound, sync, AccountInfo, AccountProfile, Bounds, Connector,
    CreateAccountOutcome, CredentialOption, Engine, EngineConfig, GrantOutcome, Limits, Metadata,
    OperatorEgress, RandomPassword, RetryPolicy, RevokeOutcome, TypeInfo,
};
use sync_store::c1z;
use sync_store::ids;
use sync_store::model::Email;

#[derive(Parser)]
#[command(
    name = "connector-host",
    version,
    about = "Run an identity-governance connector component in a sandbox"
)]
struct Cli {
    /// The connector component (.wasm). Default: the Ironclad component that `make build` produced.
    #[arg(long, global = true, env = "CONNECTOR_COMPONENT")]
    component: Option<PathBuf>,

    /// Environment variables the component is configured from: PREFIX<NAME> (upper case, - as _).
    /// Default: BATON_ for the built-in Ironclad component (no --component), none for a component
    /// given by path, so one never reads variables meant for another.
    #[arg(
        long,
        global = true,
        env = "CONNECTOR_ENV_PREFIX",
        value_name = "PREFIX"
    )]
    env_prefix: Option<String>,

    /// A connector setting, NAME=VALUE or NAME=@FILE (repeatable). Also read from the environment
    /// under --env-prefix (BATON_<NAME> for the built-in Ironclad component).
    /// A secret setting is refused as a literal value here: use its variable or NAME=@FILE.
    #[arg(long = "config", short = 'c', global = true, value_name = "NAME=VALUE")]
    config: Vec<String>,

    /// Log level for stderr: error, warn, info, debug or trace (the host's own events; the runtime
    /// crates stay at warn), or tracing directives (a=debug,b=trace). Without it: RUST_LOG's
    /// directives if set, else info.
    #[arg(long, global = true, env = "BATON_LOG_LEVEL", value_parser = logging::parse_level)]
    log_level: Option<String>,

    /// Log line format on stderr: text for people, json for log collectors (one object per line,
    /// with the tenant and the component on each).
    #[arg(long, global = true, env = "BATON_LOG_FORMAT", value_enum, default_value_t = logging::Format::Text)]
    log_format: logging::Format,

    /// Colour in text logs: auto (when stderr is a terminal and NO_COLOR is unset), always or never.
    #[arg(long, global = true, value_enum, default_value_t = logging::Color::Auto)]
    color: logging::Color,

    /// A sync stops past this many pages of one listing (an application or component that never
    /// stops paging).
    #[arg(long, global = true, default_value_t = 100_000, value_name = "N")]
    max_pages: u64,

    /// A sync stops past this many rows (resources, entitlements and grants in all).
    #[arg(long, global = true, default_value_t = 100_000_000, value_name = "N")]
    max_rows: u64,

    /// A sync stops past this many MiB of row text lifted from the component.
    #[arg(long, global = true, default_value_t = 65_536, value_name = "MIB")]
    max_sync_mb: u64,

    /// A sync stops when it has run this long (e.g. 90m, 24h); nothing is written.
    #[arg(long, global = true, default_value = "24h", value_parser = humantime::parse_duration, value_name = "DURATION")]
    sync_timeout: Duration,

    /// The most a c1z read by the host may unpack to, in GiB (an untrusted file may decode to far
    /// more than its size).
    #[arg(long, global = true, default_value_t = 10, value_name = "GIB")]
    max_c1z_gb: u64,

    /// Memory the component may use, in MiB: all its linear memories and tables together.
    #[arg(long, global = true, default_value_t = 256)]
    memory_mb: usize,

    /// Bound on one call into the component (guest CPU and HTTP waits), in seconds.
    #[arg(long, global = true, default_value_t = 300)]
    call_timeout_secs: u64,

    /// Outbound connect timeout, in seconds.
    #[arg(long, global = true, default_value_t = 10)]
    connect_timeout_secs: u64,

    /// Outbound timeout to the first byte of a response, in seconds.
    #[arg(long, global = true, default_value_t = 60)]
    first_byte_timeout_secs: u64,

    /// Outbound timeout between bytes of a response, in seconds.
    #[arg(long, global = true, default_value_t = 30)]
    between_bytes_timeout_secs: u64,

    /// Largest response body the component may read, in MiB.
    #[arg(long, global = true, default_value_t = 64)]
    max_response_mb: u64,

    /// Live WASI resources (handles) the component may hold at once.
    #[arg(long, global = true, default_value_t = 1024, value_parser = clap::value_parser!(u64).range(1..))]
    max_resources: u64,

    /// Size of one set of HTTP header fields the component builds, in KiB.
    #[arg(long, global = true, default_value_t = 32, value_parser = clap::value_parser!(u64).range(1..))]
    max_field_kb: u64,

    /// Outgoing requests the component may have in flight at once.
    #[arg(long, global = true, default_value_t = 16, value_parser = clap::value_parser!(u64).range(1..))]
    max_concurrent_requests: u64,

    /// Pages a listing may keep in flight ahead of the one being read (the component is told;
    /// --max-concurrent-requests still caps what it may have outstanding) [default: 4, or
    /// --max-concurrent-requests when lower].
    #[arg(long, global = true, value_parser = clap::value_parser!(u64).range(1..=64))]
    max_in_flight: Option<u64>,

    /// Memory the host may hold for the component (header fields, request body buffers), in MiB.
    #[arg(long, global = true, default_value_t = 16, value_parser = clap::value_parser!(u64).range(1..))]
    max_host_mb: u64,

    /// Grant the component an origin, scheme://host[:port] or https://*.domain (repeatable), on top
    /// of its static patterns and origin settings. A loopback or private address is reachable only
    /// when an entry (or an origin setting) names it literally.
    #[arg(long = "allow-host", global = true, value_name = "ORIGIN")]
    allow_host: Vec<String>,

    /// Grant only the --allow-host origins: ignore the component's patterns and origin settings.
    #[arg(long, global = true)]
    allow_host_only: bool,

    /// Also trust the certificate authorities in this PEM file (repeatable): a private deployment's
    /// CA, or an inspecting proxy's. The bundled web PKI roots stay trusted.
    #[arg(long = "ca-file", global = true, value_name = "PATH")]
    ca_file: Vec<PathBuf>,

    /// Connect to HOST:PORT at ADDR instead of what DNS says, as curl's --resolve (repeatable;
    /// ADDR may be a comma-separated list). The certificate is still checked for HOST.
    #[arg(long, global = true, value_name = "HOST:PORT:ADDR")]
    resolve: Vec<String>,

    /// Send every request through this HTTP proxy (CONNECT tunnels), http://[user:pass@]host:port;
    /// `direct` ignores HTTPS_PROXY, HTTP_PROXY and ALL_PROXY. Without it those variables (and
    /// NO_PROXY) are honoured.
    #[arg(long, global = true, value_name = "URL")]
    proxy: Option<String>,

    /// With --proxy: origins that go direct, in NO_PROXY's syntax (names, .domain suffixes,
    /// addresses, CIDR blocks).
    #[arg(long, global = true, value_name = "LIST", requires = "proxy")]
    no_proxy: Option<String>,

    /// Lower one of the connector's rate budgets (repeatable): NAME=LIMIT keeps its window,
    /// NAME=LIMIT/WINDOW sets another (users=5/1s). A budget may only be lowered; `metadata`
    /// lists the budgets.
    #[arg(
        long = "rate-budget",
        global = true,
        value_name = "NAME=LIMIT[/WINDOW]"
    )]
    rate_budget: Vec<connector_runtime::Lowering>,

    /// Retries of a rate-limited or unavailable page.
    #[arg(long, global = true, default_value_t = 6)]
    max_retries: u32,

    /// First backoff step between retries, in milliseconds (doubles each retry, with jitter).
    #[arg(long, global = true, default_value_t = 500)]
    retry_base_ms: u64,

    /// Total time one page may wait between retries, in seconds.
    #[arg(long, global = true, default_value_t = 120)]
    max_retry_wait_secs: u64,

    /// Directory of compiled components (default: the user's cache directory, connector-host/).
    #[arg(long, global = true, env = "CONNECTOR_CACHE_DIR", value_name = "DIR")]
    cache_dir: Option<PathBuf>,

    /// Compile the component afresh and leave the cache alone.
    #[arg(long, global = true)]
    no_cache: bool,

    /// Allow commands that change the application (grant, revoke, create-account, delete-resource).
    /// A value must follow `=` (`--provisioning=false`), so the flag never takes the subcommand's name.
    #[arg(long, global = true, env = "BATON_PROVISIONING", value_parser = clap::builder::BoolishValueParser::new(), default_value_t = false, num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    provisioning: bool,

    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Print the connector's metadata, configuration schema and resource types as JSON.
    Metadata,
    /// Check the configuration and credentials against the application.
    Validate,
    /// Give an entitlement to a principal (needs --provisioning).
    Grant {
        /// The entitlement id, TYPE:ID:SLUG (e.g. group:<group id>:member); a ':' or '\' inside a part as '\:' or '\\'.
        #[arg(long)]
        entitlement: String,
        /// The principal, TYPE:ID (e.g. user:<user id>).
        #[arg(long)]
        principal: String,
    },
    /// Take a grant away (needs --provisioning).
    Revoke {
        /// The grant id, TYPE:ID:SLUG:PRINCIPAL_TYPE:PRINCIPAL_ID; a ':' or '\' inside a part as '\:' or '\\'.
        #[arg(long)]
        grant: String,
    },
    /// Create an account (needs --provisioning). A generated password goes only to a vault.
    CreateAccount {
        /// The new account's email address, also its login.
        #[arg(long)]
        email: String,
        /// First name.
        #[arg(long)]
        given_name: String,
        /// Last name.
        #[arg(long)]
        family_name: String,
        /// Job title, if the application keeps one.
        #[arg(long)]
        title: Option<String>,
        /// Department, if the application keeps one.
        #[arg(long)]
        department: Option<String>,
        /// Set no password (SSO tenants).
        #[arg(long)]
        no_password: bool,
        /// Length of the generated password.
        #[arg(long, default_value_t = 24)]
        password_length: u32,
        /// Write the credential to this new file (mode 0600; never overwritten).
        #[arg(long, value_name = "PATH")]
        credentials_out: Option<PathBuf>,
        /// Encrypt the credential to this age public key (age1…): into --credentials-out, or to stdout.
        #[arg(long, value_name = "AGE_PUBLIC_KEY")]
        age_recipient: Option<String>,
    },
    /// Delete a resource (needs --provisioning), e.g. user:<id>.
    DeleteResource {
        /// The resource, TYPE:ID.
        #[arg(long)]
        resource: String,
    },
    /// Sync every resource, entitlement and grant into a file.
    Sync {
        /// Output file, written atomically: a c1z (keeping the file's two previous syncs), or JSON for a `.json` name.
        #[arg(
            short = 'f',
            long = "file",
            default_value = "sync.c1z",
            env = "BATON_FILE"
        )]
        file: PathBuf,
        /// Start over, throwing away an unfinished sync to the same file (a c1z sync otherwise
        /// continues one left by a killed or failed run).
        #[arg(long)]
        fresh: bool,
        /// An unfinished sync that started longer ago than this (e.g. 90m, 24h) starts over.
        #[arg(long, default_value = "24h", value_parser = humantime::parse_duration, value_name = "DURATION")]
        resume_max_age: Duration,
    },
    /// Read a sync output (c1z or JSON): resources, entitlements, grants, stats, syncs, diff.
    Inspect(inspect::InspectArgs),
    /// Run as a service: sync one or many tenants on schedule, serve health, metrics and an API.
    Serve(serve::ServeArgs),
    /// Print a shell completion script: `source <(connector-host completion bash)`.
    Completion {
        /// The shell.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Command::Completion { shell } = cli.command {
        let mut cmd = <Cli as clap::CommandFactory>::command();
        clap_complete::generate(shell, &mut cmd, "connector-host", &mut std::io::stdout());
        return ExitCode::SUCCESS;
    }
    // Before any thread starts (the log writer's included).
    memory::tune_allocator(matches!(cli.command, Command::Serve(_)));
    logging::init(
        cli.log_level.as_deref(),
        cli.log_format,
        cli.color,
        &logging::Context {
            tenant: (!matches!(cli.command, Command::Serve(_))).then(|| "default".into()),
            component: component_name(cli.component.as_deref()),
        },
    );
    process::harden();
    let rt = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut secrets = Secrets::default();
    let log_format = cli.log_format;
    let mut signalled = None;
    let sync_target = match &cli.command {
        Command::Sync { file, .. } => Some(file.clone()),
        _ => None,
    };
    let outcome = rt.block_on(async {
        // The service handles its signals itself: it lets running syncs
        // finish first.
        if matches!(cli.command, Command::Serve(_)) {
            return run(cli, &mut secrets).await;
        }
        tokio::select! {
            r = run(cli, &mut secrets) => r,
            signal = shutdown_signal() => {
                signalled = Some(signal);
                Err(anyhow::anyhow!(
                    "interrupted: stopped before finishing; any previous output file is untouched"
                ))
            }
        }
    });
    // The runtime may hold a component mid-call; don't wait for it.
    rt.shutdown_timeout(Duration::from_millis(100));
    inspect::clean_up();
    // A sync stopped by a signal may have committed progress: say so.
    let outcome = match (outcome, &sync_target) {
        (Err(_), Some(file)) if signalled.is_some() && c1z::partial_dir(file).exists() => {
            Err(anyhow::anyhow!(
                "interrupted: stopped before finishing; any previous output file is untouched, and the sync's progress is kept: the next sync to {} continues it (--fresh starts over)",
                file.display()
            ))
        }
        (outcome, _) => outcome,
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // Scrubbed raw (secrets are raw), then escaped: one line
            // whatever the application put in the message.
            let text = secrets.scrub(&format!("{e:#}"));
            match log_format {
                // A collector reads JSON lines only: the failure is one too
                // (JSON-escaped, scrubbed by the log writer as well).
                logging::Format::Json => tracing::error!("{text}"),
                logging::Format::Text => eprintln!("error: {}", terminal::escape(&text)),
            }
            // The shell's convention: 128 + the signal's number.
            signalled.map_or(ExitCode::FAILURE, |s| ExitCode::from(128 + s))
        }
    }
}

/// Waits for SIGINT or SIGTERM; answers its number.
async fn shutdown_signal() -> u8 {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match (
            signal(SignalKind::interrupt()),
            signal(SignalKind::terminate()),
        ) {
            (Ok(mut int), Ok(mut term)) => {
                tokio::select! {
                    _ = int.recv() => 2,
                    _ = term.recv() => 15,
                }
            }
            _ => std::future::pending::<u8>().await,
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
        2
    }
}

/// The component's file stem, for log lines.
fn component_name(path: Option<&std::path::Path>) -> String {
    path.and_then(|p| p.file_stem())
        .map_or(BUILT_IN.trim_end_matches(".wasm").into(), |s| {
            s.to_string_lossy().into_owned()
        })
}

async fn run(cli: Cli, secrets: &mut Secrets) -> anyhow::Result<()> {
    // The summary's time is the whole run's: loading and validating count.
    let started = Instant::now();
    // Reading a file needs no component and no credentials.
    let c1z_limits = c1z::Limits {
        max_decoded_bytes: cli.max_c1z_gb.saturating_mul(1 << 30),
        ..c1z::Limits::default()
    };
    if let Command::Inspect(args) = cli.command {
        // On a thread of its own, so a signal stops the run while it
        // unpacks or queries (main then removes what it unpacked).
        return tokio::task::spawn_blocking(move || inspect::run(&args, &c1z_limits))
            .await
            .context("inspect stopped unexpectedly")?;
    }
    let path = match &cli.component {
        Some(p) => p.clone(),
        None => default_component_path().context(
            "no --component given and no built Ironclad component found: run `make build` or pass --component PATH",
        )?,
    };
    let limits = limits_of(&cli);
    if let Some(n) = cli
        .max_in_flight
        .filter(|n| *n > cli.max_concurrent_requests)
    {
        anyhow::bail!(
            "--max-in-flight {n} is more than --max-concurrent-requests {}: lower the first or raise the second",
            cli.max_concurrent_requests
        );
    }
    let egress = OperatorEgress {
        allow: allow_list::AllowList::parse(&cli.allow_host)?,
        pinned: cli.allow_host_only,
        writes: cli.provisioning,
        network: network_of(&cli)?,
        rate_budgets: cli.rate_budget.clone(),
        rates: Default::default(),
    };
    let vault = preflight(&cli)?;
    let engine_config = EngineConfig {
        max_memory_bytes: limits.memory_bytes,
        // One-shot commands run one instance at a time (two at most: the
        // metadata instance is dropped before the configured one).
        max_instances: 4,
        cache_dir: if cli.no_cache {
            None
        } else {
            cli.cache_dir
                .clone()
                .or_else(connector_runtime::cache::default_dir)
        },
    };
    let prefix = match (&cli.env_prefix, &cli.component) {
        (Some(p), _) => Some(p.as_str()),
        // The built-in component reads BATON_* as the existing connector's
        // Kubernetes Secret sets them.
        (None, None) => Some("BATON_"),
        (None, Some(_)) => None,
    };
    let retry = retry_of(&cli);
    let caps = caps_of(&cli);
    if let Command::Serve(args) = cli.command {
        let common = serve::Common {
            limits,
            retry,
            caps,
            egress,
            c1z_limits,
            resume_max_age: Duration::ZERO,
            data_dir: PathBuf::new(),
            default_component: path,
        };
        let default = serve::DefaultTenant {
            component: None,
            flags: cli.config.clone(),
            prefix: prefix.map(String::from),
            provisioning: cli.provisioning,
        };
        return serve::run(args, common, engine_config, default).await;
    }
    let engine = Engine::new(&engine_config)?;
    let component = engine.load(&path)?;
    let (meta, types) = component.metadata(&limits).await?;
    let lookup = |k: &str| std::env::var(k).ok();
    let env = match prefix {
        Some(p) => config::Environment::bound(p, &lookup)?,
        None => config::Environment::none(),
    };

    if let Command::Metadata = cli.command {
        // What the component may reach with the settings given so far,
        // complete or not.
        let settings = config::partial(&meta.config_schema, &cli.config, &env);
        let policy = egress::Policy::plan(&meta, &settings, &egress)?;
        let doc = metadata_json(&meta, &types, &policy, &env);
        emit(&serde_json::to_string_pretty(&doc)?);
        return Ok(());
    }

    let resolved = config::resolve(&meta.config_schema, &cli.config, &env)?;
    // What names the tenant for a resumed sync (secrets are left out by the
    // schema's word).
    let origin_values = resolved.values.clone();
    *secrets = resolved.secrets.clone();
    redact::install(secrets);
    let mut conn = Connector::open(&component, &limits, resolved.values, &egress).await?;

    match cli.command {
        Command::Metadata
        | Command::Inspect(_)
        | Command::Completion { .. }
        | Command::Serve(_) => Ok(()),
        Command::Grant {
            entitlement,
            principal,
        } => {
            let entitlement = ids::parse_entitlement_id(&entitlement)?;
            let principal = ids::parse_resource_id(&principal)?;
            let line = match conn.grant(&principal, &entitlement).await? {
                GrantOutcome::Granted(g) => format!("granted {}", g.id),
                GrantOutcome::AlreadyGranted => {
                    let id = ids::grant_id(&entitlement.resource, &entitlement.slug, &principal);
                    format!("already granted {id}")
                }
            };
            terminal::say(&line);
            Ok(())
        }
        Command::Revoke { grant } => {
            let grant = ids::parse_grant_id(&grant)?;
            let line = match conn.revoke(&grant).await? {
                RevokeOutcome::Revoked => format!("revoked {}", grant.id),
                RevokeOutcome::AlreadyRevoked => format!("already revoked {}", grant.id),
            };
            terminal::say(&line);
            Ok(())
        }
        Command::DeleteResource { resource } => {
            let id = ids::parse_resource_id(&resource)?;
            conn.delete_resource(&id).await?;
            terminal::say(&format!("deleted {resource}"));
            Ok(())
        }
        Command::CreateAccount {
            email,
            given_name,
            family_name,
            title,
            department,
            no_password,
            password_length,
            ..
        } => {
            let info = AccountInfo {
                login: email.clone(),
                emails: vec![Email {
                    address: email,
                    primary: true,
                }],
                profile: AccountProfile {
                    given_name: Some(given_name),
                    family_name: Some(family_name),
                    title,
                    department,
                },
            };
            let credential = if no_password {
                CredentialOption::NoPassword
            } else {
                CredentialOption::RandomPassword(RandomPassword {
                    length: password_length,
                    min_lower: 1,
                    min_upper: 1,
                    min_digits: 1,
                    min_special: 1,
                })
            };
            let outcome = match conn.create_account(&info, credential).await {
                Ok(o) => o,
                Err(e) => {
                    discard(vault);
                    return Err(e.into());
                }
            };
            match outcome {
                CreateAccountOutcome::Created(resource, credential) => {
                    // The password is a secret from now on, in every form,
                    // in whatever is printed or logged next.
                    if let Some(c) = &credential {
                        *secrets = secrets.with(c.password.as_str());
                        redact::install(secrets);
                    }
                    let mut line = format!("created {}", resource.id);
                    match (credential, vault) {
                        // The ciphertext is all of stdout (so it pipes into `age -d`); the
                        // report goes to stderr.
                        (Some(c), Some(v @ provision::Vault::Stdout(_))) => {
                            line += &format!(" ({})", v.store(&c)?);
                            eprintln!("{}", terminal::escape(&line));
                            return Ok(());
                        }
                        (Some(c), Some(v)) => line += &format!(" ({})", v.store(&c)?),
                        (Some(_), None) => anyhow::bail!(
                            "the connector returned a password that has nowhere safe to go; it was not shown: reset it in the application"
                        ),
                        (None, v) => discard(v),
                    }
                    terminal::say(&line);
                }
                CreateAccountOutcome::AlreadyExists(r) => {
                    discard(vault);
                    terminal::say(&format!("already exists {}", r.id));
                }
                CreateAccountOutcome::ActionRequired(msg) => {
                    discard(vault);
                    terminal::say(&format!("action required: {msg}"));
                }
            }
            Ok(())
        }
        Command::Validate => {
            let who = conn.validate().await?;
            terminal::say(&format!("ok: {who}"));
            Ok(())
        }
        Command::Sync {
            file,
            fresh,
            resume_max_age,
        } => {
            let policy = retry;
            let mut resumed = false;
            let sink = match c1z::OutputFormat::for_path(&file) {
                c1z::OutputFormat::Json => sync_store::json::sink(&file)?,
                c1z::OutputFormat::C1z => {
                    // A run killed while it wrote the file had finished
                    // the sync: writing it is all that was left.
                    if let Some(done) = c1z::write_finished(&file, c1z_limits.clone())? {
                        tracing::info!(
                            "resuming sync {} from the end of its listings: it had finished, and is written now",
                            done.sync_id.as_deref().unwrap_or("")
                        );
                        print_summary(&meta, &done, &file, started.elapsed(), Duration::ZERO, true);
                        return Ok(());
                    }
                    let resume = c1z::ResumePolicy {
                        fresh,
                        max_age: resume_max_age,
                        origin: connector_runtime::checkpoint::origin(
                            &component,
                            &meta.config_schema,
                            &origin_values,
                        ),
                    };
                    let (sink, start) = c1z::resumable_sink(&file, c1z_limits, &resume)?;
                    say_start(&start);
                    resumed = matches!(start, c1z::Start::Resumed(_));
                    sink
                }
            };
            let draw = cli.log_format == logging::Format::Text
                && std::io::IsTerminal::is_terminal(&std::io::stderr());
            let (sink, write_time) = progress::Progress::wrap(sink, draw);
            let done = match sync::run_with(&mut conn, &meta, &policy, &caps, sink).await {
                Ok(done) => done,
                // The partial directory outlives a sync stopped with
                // progress committed: say what the next run will do.
                Err(e) if c1z::partial_dir(&file).exists() => {
                    return Err(e.context(
                        "sync failed; its progress is kept and the next sync to this file continues it (--fresh starts over)",
                    ))
                }
                Err(e) => return Err(e.context("sync failed")),
            };
            print_summary(
                &meta,
                &done,
                &file,
                started.elapsed(),
                write_time.get(),
                resumed,
            );
            Ok(())
        }
    }
}

/// How requests reach the network, from the flags and the proxy
/// variables; logged once.
fn network_of(cli: &Cli) -> anyhow::Result<connector_runtime::Network> {
    use connector_runtime::{Network, ProxyChoice};
    let mut b = Network::builder();
    for path in &cli.ca_file {
        b = b.ca_file(path)?;
    }
    for rule in &cli.resolve {
        b = b.resolve(rule)?;
    }
    let proxy = match cli.proxy.as_deref() {
        None => ProxyChoice::Environment,
        Some("direct") => ProxyChoice::Direct,
        Some(url) => ProxyChoice::Url {
            url: url.to_string(),
            no_proxy: cli.no_proxy.clone(),
        },
    };
    let network = b.proxy(&proxy)?.build();
    for line in network.describe() {
        tracing::info!("network: {line}");
    }
    Ok(network)
}

/// What one instance may use, from the flags.
fn limits_of(cli: &Cli) -> Limits {
    Limits {
        memory_bytes: cli.memory_mb.saturating_mul(1 << 20),
        caps: connector_runtime::Caps::default(),
        call_timeout: Duration::from_secs(cli.call_timeout_secs),
        http: outbound::Timeouts {
            connect: Duration::from_secs(cli.connect_timeout_secs),
            first_byte: Duration::from_secs(cli.first_byte_timeout_secs),
            between_bytes: Duration::from_secs(cli.between_bytes_timeout_secs),
        },
        max_response_bytes: cli.max_response_mb.saturating_mul(1 << 20),
        bounds: Bounds {
            max_resources: usize_of(cli.max_resources),
            max_field_bytes: usize_of(cli.max_field_kb).saturating_mul(1 << 10),
            max_concurrent_requests: usize_of(cli.max_concurrent_requests),
            max_host_bytes: usize_of(cli.max_host_mb).saturating_mul(1 << 20),
        },
        // The runtime's default, unless the cap on requests is lower.
        max_in_flight: cli.max_in_flight.map_or_else(
            || {
                Limits::default()
                    .max_in_flight
                    .min(usize_of(cli.max_concurrent_requests))
            },
            usize_of,
        ),
    }
}

fn retry_of(cli: &Cli) -> RetryPolicy {
    RetryPolicy {
        max_retries: cli.max_retries,
        base_delay: Duration::from_millis(cli.retry_base_ms),
        max_delay: Duration::from_secs(30),
        max_total_wait: Duration::from_secs(cli.max_retry_wait_secs),
    }
}

fn caps_of(cli: &Cli) -> connector_runtime::SyncCaps {
    connector_runtime::SyncCaps {
        max_pages_per_listing: cli.max_pages,
        max_rows: cli.max_rows,
        max_bytes: cli.max_sync_mb.saturating_mul(1 << 20),
        deadline: cli.sync_timeout,
    }
}

/// One line on how a c1z sync began when it did not simply start.
pub(crate) fn say_start(start: &c1z::Start) {
    let line = match start {
        c1z::Start::New => return,
        c1z::Start::Resumed(r) => {
            let at = connector_runtime::checkpoint::describe_state(&r.state);
            format!(
                "resuming sync {} from {at}, {} rows kept",
                r.sync_id, r.rows
            )
        }
        c1z::Start::StartedOver(why) => {
            let hint = match why {
                c1z::StartOver::Fresh => " (--fresh)",
                c1z::StartOver::TooOld { .. } => " (--resume-max-age)",
                _ => "",
            };
            format!("starting the sync over: {why}{hint}")
        }
    };
    // Through the log, which escapes it (the position names the
    // component's resource types) and keeps JSON logs one object a line.
    match start {
        c1z::Start::StartedOver(_) => tracing::warn!("{line}"),
        _ => tracing::info!("{line}"),
    }
}

fn usize_of(n: u64) -> usize {
    usize::try_from(n).unwrap_or(usize::MAX)
}

/// Checks made before the component is even loaded: the provisioning switch,
/// and for account creation a safe place for the password.
fn preflight(cli: &Cli) -> anyhow::Result<Option<provision::Vault>> {
    let writes = matches!(
        cli.command,
        Command::Grant { .. }
            | Command::Revoke { .. }
            | Command::CreateAccount { .. }
            | Command::DeleteResource { .. }
    );
    if writes && !cli.provisioning {
        anyhow::bail!(
            "provisioning is off: pass --provisioning or set BATON_PROVISIONING=true to let this command change the application"
        );
    }
    if let Command::CreateAccount {
        no_password,
        credentials_out,
        age_recipient,
        ..
    } = &cli.command
    {
        let vault = provision::Vault::open(credentials_out.as_deref(), age_recipient.as_deref())?;
        if !no_password && vault.is_none() {
            anyhow::bail!(
                "create-account would generate a password with nowhere safe to put it: pass --credentials-out PATH and/or --age-recipient KEY (or --no-password for SSO tenants)"
            );
        }
        return Ok(vault);
    }
    Ok(None)
}

/// A vault opened for an account that was not created goes away unused.
fn discard(vault: Option<provision::Vault>) {
    if let Some(v) = vault {
        v.discard();
    }
}

/// Prints JSON on stdout, exact; a closed pipe (`| head`) is not an error.
fn emit(text: &str) {
    use std::io::Write as _;
    let _ = writeln!(std::io::stdout().lock(), "{text}");
}

fn metadata_json(
    meta: &Metadata,
    types: &[TypeInfo],
    policy: &egress::Policy,
    env: &config::Environment<'_>,
) -> serde_json::Value {
    use serde_json::json;
    json!({
        "display_name": meta.display_name,
        "description": meta.description,
        "version": meta.version,
        "contract": format!("idgov:connector@{}", meta.contract),
        "config_schema": meta.config_schema.iter().map(|f| json!({
            "name": f.name,
            "env": env.var_name(&f.name),
            "description": f.description,
            "required": f.required,
            "secret": f.secret,
            "default": f.default,
            "allowed_values": f.allowed_values,
            "kind": f.kind.name(),
        })).collect::<Vec<_>>(),
        "outbound_hosts": meta.outbound_hosts,
        "egress": {
            "granted": policy.rules().iter().map(|r| json!({
                "origin": r.entry(),
                "why": r.why().to_string(),
            })).collect::<Vec<_>>(),
            "unused_patterns": policy.unused().iter().map(|u| json!({
                "pattern": u.pattern,
                "reason": u.reason,
            })).collect::<Vec<_>>(),
            "origin_settings": meta.config_schema.iter()
                .filter(|f| f.kind == connector_runtime::FieldKind::Origin)
                .map(|f| f.name.as_str()).collect::<Vec<_>>(),
            "writes": policy.writes(),
            "read_only_requests": meta.read_only_requests,
        },
        "rate_budgets": meta.rate_budgets.iter().map(|b| json!({
            "name": b.name,
            "requests": b.requests,
            "limit": b.limit,
            "window_ms": u64::try_from(b.window.as_millis()).unwrap_or(u64::MAX),
            "limit_setting": b.limit_setting,
        })).collect::<Vec<_>>(),
        "capabilities": meta.capabilities.iter().map(|(t, c)| {
            json!({"resource_type": t, "capabilities": c.names()})
        }).collect::<Vec<_>>(),
        "resource_types": types.iter().map(|t| json!({
            "id": t.resource_type.id,
            "display_name": t.resource_type.display_name,
            "traits": t.resource_type.traits,
            "description": t.resource_type.description,
            "has_entitlements": t.has_entitlements,
            "has_grants": t.has_grants,
        })).collect::<Vec<_>>(),
    })
}

/// The summary's first line: the parts add up to the whole, starting
/// (loading, validating) being what the run spent outside fetching and
/// writing.
fn summary_head(
    meta: &Metadata,
    s: &sync_store::model::Stats,
    file: &std::path::Path,
    elapsed: Duration,
    writing: Duration,
) {
    let total = elapsed.as_secs_f64();
    let fetching = s.elapsed_ms as f64 / 1000.0;
    let writing = writing.as_secs_f64();
    terminal::say(&format!(
        "synced {} {} into {} in {:.2} s (starting {:.2} s, fetching {:.2} s, writing {:.2} s)",
        meta.display_name,
        meta.version,
        file.display(),
        total,
        (total - fetching - writing).max(0.0),
        fetching,
        writing
    ));
}

fn print_summary(
    meta: &Metadata,
    done: &sync_store::Finished,
    file: &std::path::Path,
    elapsed: Duration,
    writing: Duration,
    resumed: bool,
) {
    use terminal::say;
    let s = &done.stats;
    if resumed {
        // The stored fetching time counts every run of the sync; this one
        // took the rest.
        say(&format!(
            "synced {} {} into {} in {:.2} s, continuing an earlier run (fetching {:.2} s over all runs, writing {:.2} s)",
            meta.display_name,
            meta.version,
            file.display(),
            elapsed.as_secs_f64(),
            s.elapsed_ms as f64 / 1000.0,
            writing.as_secs_f64()
        ));
    } else {
        summary_head(meta, s, file, elapsed, writing);
    }
    for (t, n) in &s.resources {
        say(&format!("  {t:<14} {n:>9} resources"));
    }
    say(&format!("  {:<14} {:>9}", "entitlements", s.entitlements));
    say(&format!("  {:<14} {:>9}", "grants", s.grants));
    say(&format!(
        "  {:<14} {:>9}   (retries {}, duplicates skipped {})",
        "http requests", s.http_requests, s.retries, s.duplicates_skipped
    ));
    for (t, m) in &s.totals_moved {
        say(&format!(
            "  note: the {t} count moved from {} to {} during the sync; run it again to catch up",
            m.first, m.last
        ));
    }
    if let Some(id) = &done.sync_id {
        say(&format!(
            "  {:<14} {}   (previous syncs kept {}, dropped {})",
            "sync id", id, done.kept, done.dropped
        ));
    }
}

/// The built-in Ironclad component's file name.
const BUILT_IN: &str = "ironclad_connector.wasm";

/// Where `make build` leaves the Ironclad component, relative to this binary:
/// beside it (an installed layout), or in the cargo target tree.
fn default_component_path() -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    let dir = exe.parent()?;
    let candidates = [
        dir.join(BUILT_IN),
        dir.join("../wasm32-wasip2/release").join(BUILT_IN),
        dir.join("../../wasm32-wasip2/release").join(BUILT_IN),
    ];
    candidates.into_iter().find(|p| p.is_file())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every flag and argument of every command says what it is for.
    #[test]
    fn every_flag_has_help_text() {
        fn walk(cmd: &clap::Command, path: &str, missing: &mut Vec<String>) {
            for arg in cmd.get_arguments() {
                let id = arg.get_id().as_str();
                if arg.get_help().is_none() && !matches!(id, "help" | "version") {
                    missing.push(format!("{path} {id}"));
                }
            }
            for sub in cmd.get_subcommands() {
                if sub.get_about().is_none() && sub.get_name() != "help" {
                    missing.push(format!("{path} {} (no about)", sub.get_name()));
                }
                walk(sub, &format!("{path} {}", sub.get_name()), missing);
            }
        }
        let mut missing = Vec::new();
        walk(
            &<Cli as clap::CommandFactory>::command(),
            "connector-host",
            &mut missing,
        );
        assert!(missing.is_empty(), "without help: {missing:?}");
    }
}
