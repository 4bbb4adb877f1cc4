//! The tenants a `serve` process runs: one named `default` configured as the
//! one-shot commands are, or those of a tenants file (TOML).
//!
//! A secret is never written in the file: each names the environment
//! variable or the file (how Kubernetes mounts a Secret) it is read from,
//! at every sync, so a rotated Secret is picked up without a restart.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context as _};
use serde::Deserialize;

/// One tenant: whose connector, how often, and where its settings come from.
#[derive(Clone, Debug, PartialEq)]
pub struct Tenant {
    pub id: String,
    /// The component; `None` is the process's default component.
    pub component: Option<PathBuf>,
    pub interval: Duration,
    pub provisioning: bool,
    pub settings: Settings,
    /// The tenant's lowering of the connector's rate budgets, on top of
    /// the command line's `--rate-budget`.
    pub rate_budgets: Vec<connector_runtime::Lowering>,
}

/// Where a tenant's settings come from.
#[derive(Clone, Debug, PartialEq)]
pub enum Settings {
    /// The command line's `--config` flags and the environment under a
    /// prefix, as the one-shot commands read them.
    CommandLine {
        flags: Vec<String>,
        prefix: Option<String>,
    },
    /// A tenants file's plain settings and secret references.
    File {
        plain: BTreeMap<String, String>,
        secrets: BTreeMap<String, SecretRef>,
    },
}

/// Where one secret is read from.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase", deny_unknown_fields)]
pub enum SecretRef {
    /// An environment variable of the serve process.
    Env(String),
    /// A file (its content, without the trailing line ending).
    File(PathBuf),
}

/// The tenants file, as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileDoc {
    #[serde(default)]
    tenant: Vec<FileTenant>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileTenant {
    id: String,
    component: Option<PathBuf>,
    interval: Option<String>,
    #[serde(default)]
    provisioning: bool,
    #[serde(default)]
    settings: BTreeMap<String, toml::Value>,
    #[serde(default)]
    secrets: BTreeMap<String, SecretRef>,
    /// `["users=300/1m"]`: see `--rate-budget`.
    #[serde(default, rename = "rate-budgets")]
    rate_budgets: Vec<String>,
}

/// The longest tenant id: it names a directory, a metrics label and a URL
/// path segment, so it is short and plain.
const MAX_ID: usize = 63;

/// The most tenants one file may hold.
const MAX_TENANTS: usize = 100_000;

/// The shortest interval: a sync every few seconds would only hammer the
/// application.
pub const MIN_INTERVAL: Duration = Duration::from_secs(1);

/// Checks a tenant id: lower-case letters, digits and `-`, not starting or
/// ending with `-`, at most 63 characters (a DNS label: it is safe in a
/// path, a URL and a label).
pub fn check_id(id: &str) -> anyhow::Result<()> {
    let plain = id
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if id.is_empty() || id.len() > MAX_ID || !plain || id.starts_with('-') || id.ends_with('-') {
        bail!(
            "tenant id {:?} is not usable: use 1 to {MAX_ID} lower-case letters, digits and '-', not at either end",
            crate::terminal::escape(&id.chars().take(80).collect::<String>())
        );
    }
    Ok(())
}

/// Reads and checks a tenants file; `default_interval` applies to a tenant
/// that gives none. Every problem is one line naming the tenant.
pub fn read_file(path: &Path, default_interval: Duration) -> anyhow::Result<Vec<Tenant>> {
    // A tenants file is small; one far larger is a mistake, not a file to
    // hold in memory.
    const MAX_BYTES: u64 = 64 << 20;
    let len = std::fs::metadata(path)
        .with_context(|| format!("cannot read the tenants file {}", path.display()))?
        .len();
    if len > MAX_BYTES {
        bail!(
            "the tenants file {} is {len} bytes; the most is {MAX_BYTES}",
            path.display()
        );
    }
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the tenants file {}", path.display()))?;
    parse(&text, default_interval).with_context(|| format!("tenants file {}", path.display()))
}

/// Parses a tenants file's text.
pub fn parse(text: &str, default_interval: Duration) -> anyhow::Result<Vec<Tenant>> {
    let doc: FileDoc = toml::from_str(text).map_err(|e| {
        // toml's message spans several lines with a caret drawing: the
        // first line names the place and the problem.
        let msg = e.to_string();
        let first = msg.lines().next().unwrap_or("").to_string();
        anyhow::anyhow!("{}: {}", first, e.message())
    })?;
    if doc.tenant.len() > MAX_TENANTS {
        bail!(
            "{} tenants; one process takes at most {MAX_TENANTS}",
            doc.tenant.len()
        );
    }
    let mut seen = std::collections::BTreeSet::new();
    let mut out = Vec::with_capacity(doc.tenant.len());
    for t in doc.tenant {
        check_id(&t.id)?;
        if !seen.insert(t.id.clone()) {
            bail!("tenant {} is listed twice", t.id);
        }
        let interval = match &t.interval {
            Some(s) => humantime::parse_duration(s)
                .map_err(|e| anyhow::anyhow!("tenant {}: interval {s:?}: {e}", t.id))?,
            None => default_interval,
        };
        if interval < MIN_INTERVAL {
            bail!("tenant {}: the interval is under {MIN_INTERVAL:?}", t.id);
        }
        let mut plain = BTreeMap::new();
        for (name, value) in t.settings {
            let value = match value {
                toml::Value::String(s) => s,
                toml::Value::Integer(i) => i.to_string(),
                toml::Value::Boolean(b) => b.to_string(),
                toml::Value::Float(f) => f.to_string(),
                _ => bail!(
                    "tenant {}: setting {name} must be a string, number or boolean",
                    t.id
                ),
            };
            plain.insert(name, value);
        }
        for name in t.secrets.keys() {
            if plain.contains_key(name) {
                bail!(
                    "tenant {}: {name} is given both as a setting and as a secret; keep the secret",
                    t.id
                );
            }
        }
        let rate_budgets = t
            .rate_budgets
            .iter()
            .map(|l| {
                l.parse()
                    .map_err(|e| anyhow::anyhow!("tenant {}: rate-budgets: {e}", t.id))
            })
            .collect::<anyhow::Result<Vec<connector_runtime::Lowering>>>()?;
        out.push(Tenant {
            rate_budgets,
            id: t.id,
            component: t.component,
            interval,
            provisioning: t.provisioning,
            settings: Settings::File {
                plain,
                secrets: t.secrets,
            },
        });
    }
    Ok(out)
}

/// A tenant's settings as `--config` flags and an environment, ready for
/// [`connector_runtime::config::resolve`]: plain settings as `NAME=VALUE`,
/// file secrets as `NAME=@FILE`, environment secrets through a lookup
/// that answers only for the variables this tenant names.
pub struct Resolvable {
    pub flags: Vec<String>,
    /// The prefix the lookup answers under.
    pub prefix: Option<String>,
    /// Variable name under the prefix → the process variable it reads.
    pub env: BTreeMap<String, String>,
}

/// The prefix a tenants file's environment secrets are looked up under; no
/// variable of the process is ever read under it, only those named.
const FILE_PREFIX: &str = "TENANT_SECRET_";

impl Resolvable {
    /// Builds the flags for `tenant`, refusing a plain setting that the
    /// connector's `schema` calls secret.
    pub fn of(
        tenant: &Tenant,
        schema: &[connector_runtime::ConfigField],
    ) -> anyhow::Result<Resolvable> {
        match &tenant.settings {
            Settings::CommandLine { flags, prefix } => Ok(Resolvable {
                flags: flags.clone(),
                prefix: prefix.clone(),
                env: BTreeMap::new(),
            }),
            Settings::File { plain, secrets } => {
                // Said in the file's terms: resolve's own hint names flags
                // and variables this tenant does not use.
                let missing: Vec<String> = schema
                    .iter()
                    .filter(|f| f.required && f.default.is_none())
                    .filter(|f| !plain.contains_key(&f.name) && !secrets.contains_key(&f.name))
                    .map(|f| {
                        let table = if f.secret { "secrets" } else { "settings" };
                        format!("{} (under [tenant.{table}]: {})", f.name, f.description)
                    })
                    .collect();
                if !missing.is_empty() {
                    bail!("missing setting {}", missing.join("; "));
                }
                let mut flags = Vec::new();
                for (name, value) in plain {
                    match schema.iter().find(|f| &f.name == name) {
                        Some(f) if f.secret => bail!(
                            "setting {name} is a secret: give it under [tenant.secrets] as {{ env = \"VAR\" }} or {{ file = \"PATH\" }}, never inline"
                        ),
                        _ => flags.push(format!("{name}={value}")),
                    }
                }
                let mut env = BTreeMap::new();
                for (name, source) in secrets {
                    match source {
                        SecretRef::File(path) => flags.push(format!("{name}=@{}", path.display())),
                        SecretRef::Env(var) => {
                            if std::env::var_os(var).is_none() {
                                bail!("secret {name}: the environment variable {var} is not set");
                            }
                            env.insert(
                                connector_runtime::config::env_name(FILE_PREFIX, name),
                                var.clone(),
                            );
                        }
                    }
                }
                Ok(Resolvable {
                    flags,
                    prefix: Some(FILE_PREFIX.into()),
                    env,
                })
            }
        }
    }

    /// Looks a variable up: under the file prefix, only the variables this
    /// tenant names; otherwise the process environment.
    pub fn lookup(&self, key: &str) -> Option<String> {
        if self.prefix.as_deref() == Some(FILE_PREFIX) {
            return self.env.get(key).and_then(|var| std::env::var(var).ok());
        }
        std::env::var(key).ok()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic)]
    use super::*;

    const HOUR: Duration = Duration::from_secs(3600);

    #[test]
    fn a_file_with_settings_and_secret_references_parses() {
        let t = parse(
            r#"
            [[tenant]]
            id = "acme"
            interval = "15m"
            provisioning = true
            [tenant.settings]
            environment = "production"
            page-size = 500
            [tenant.secrets]
            ic-client-secret = { file = "/etc/s/acme" }
            ic-client-id = { env = "ACME_ID" }

            [[tenant]]
            id = "globex"
            "#,
            HOUR,
        )
        .unwrap();
        assert_eq!(t.len(), 2);
        assert_eq!(t[0].id, "acme");
        assert_eq!(t[0].interval, Duration::from_secs(900));
        assert!(t[0].provisioning);
        let Settings::File { plain, secrets } = &t[0].settings else {
            panic!("file settings")
        };
        assert_eq!(plain["page-size"], "500");
        assert_eq!(
            secrets["ic-client-secret"],
            SecretRef::File("/etc/s/acme".into())
        );
        assert_eq!(secrets["ic-client-id"], SecretRef::Env("ACME_ID".into()));
        assert_eq!(t[1].interval, HOUR);
        assert!(!t[1].provisioning);
    }

    #[test]
    fn bad_files_say_what_is_wrong_in_one_line() {
        let cases = [
            ("[[tenant]]\nid = \"Acme\"", "is not usable"),
            ("[[tenant]]\nid = \"-a\"", "is not usable"),
            ("[[tenant]]\nid = \"a/b\"", "is not usable"),
            ("[[tenant]]\nid = \"a\"\n[[tenant]]\nid = \"a\"", "listed twice"),
            ("[[tenant]]\nid = \"a\"\ninterval = \"soon\"", "interval"),
            ("[[tenant]]\nid = \"a\"\ninterval = \"10ms\"", "under"),
            ("[[tenant]]\nid = \"a\"\ncolour = 1", "unknown field"),
            (
                "[[tenant]]\nid = \"a\"\n[tenant.secrets]\nx = \"inline\"",
                "expected `env` or `file`",
            ),
            (
                "[[tenant]]\nid = \"a\"\n[tenant.settings]\nx = \"1\"\n[tenant.secrets]\nx = { env = \"X\" }",
                "both",
            ),
            ("[[tenant]]\nid = \"a\"\n[tenant.settings]\nx = [1]", "string"),
            ("tenant = 3", "invalid type"),
        ];
        for (text, want) in cases {
            let e = format!("{:#}", parse(text, HOUR).unwrap_err());
            assert!(e.contains(want), "{text:?}: {e}");
            assert!(!e.contains('\n'), "{text:?}: more than a line: {e}");
        }
    }

    #[test]
    fn a_secret_given_inline_is_refused_by_the_schema() {
        let t = parse(
            "[[tenant]]\nid = \"a\"\n[tenant.settings]\nic-client-secret = \"s3cr3t-value\"",
            HOUR,
        )
        .unwrap();
        let schema = vec![connector_runtime::ConfigField {
            name: "ic-client-secret".into(),
            description: String::new(),
            required: true,
            secret: true,
            default: None,
            allowed_values: vec![],
            kind: connector_runtime::FieldKind::Text,
        }];
        let e = format!("{:#}", Resolvable::of(&t[0], &schema).err().unwrap());
        assert!(e.contains("is a secret"), "{e}");
        assert!(!e.contains("s3cr3t"), "{e}");
    }

    /// The marketplace manifest's example tenants file is one this parser
    /// takes: the documentation stays true.
    #[test]
    fn the_kubernetes_example_parses() {
        let manifest = include_str!("../../../deploy/kubernetes/statefulset.yaml");
        let (_, rest) = manifest.split_once("tenants.toml: |\n").unwrap();
        let text: String = rest
            .lines()
            .take_while(|l| l.is_empty() || l.starts_with("    "))
            .map(|l| format!("{}\n", l.get(4..).unwrap_or("")))
            .collect();
        let tenants = parse(&text, HOUR).unwrap();
        assert!(tenants.len() >= 2, "{text}");
        for t in &tenants {
            let Settings::File { secrets, .. } = &t.settings else {
                panic!("file settings")
            };
            assert!(secrets.contains_key("ic-client-secret"), "{}", t.id);
        }
    }

    #[test]
    fn environment_secrets_read_only_the_variables_named() {
        let t = parse(
            "[[tenant]]\nid = \"a\"\n[tenant.secrets]\nic-client-secret = { env = \"PATH\" }",
            HOUR,
        )
        .unwrap();
        let r = Resolvable::of(&t[0], &[]).unwrap();
        assert_eq!(
            r.lookup("TENANT_SECRET_IC_CLIENT_SECRET"),
            std::env::var("PATH").ok()
        );
        assert_eq!(r.lookup("TENANT_SECRET_OTHER"), None);
        assert_eq!(r.lookup("PATH"), None);
    }
}
