//! Resolves a connector's configuration from `--config NAME=VALUE` flags and
//! environment variables against the schema the connector publishes, before
//! any call that could reach the network.
//!
//! The environment is the operator's to bind, not the component's to pick:
//! a component sees variables only under the prefix its operator named for
//! it ([`Environment`]; `BATON_` for the Ironclad connector, as its
//! Kubernetes Secret sets them), so declaring a setting named like another
//! connector's credential reaches nothing. And every value read from the
//! environment or a file is scrubbed from what the host shows, whatever the
//! component's schema says of its secrecy.

use std::collections::BTreeMap;

use anyhow::bail;
use zeroize::Zeroizing;

use crate::types::ConfigField;

/// The environment variable that carries a field under `prefix`: the name
/// upper cased with `-` as `_` (`BATON_IC_CLIENT_ID`), the names the existing
/// connectors' deployments use.
pub fn env_name(prefix: &str, field: &str) -> String {
    format!("{prefix}{}", field.to_ascii_uppercase().replace('-', "_"))
}

/// The environment variables one component may be configured from: those
/// under the prefix its operator bound to it, or none.
pub struct Environment<'a> {
    prefix: Option<&'a str>,
    lookup: &'a dyn Fn(&str) -> Option<String>,
}

impl<'a> Environment<'a> {
    /// No variable reaches the component.
    pub fn none() -> Environment<'static> {
        Environment {
            prefix: None,
            lookup: &|_| None,
        }
    }

    /// Variables named `prefix` + the setting's name, read with `lookup`
    /// (`std::env::var` in production). The prefix is upper-case letters,
    /// digits and `_`, ending in `_` (`BATON_`).
    pub fn bound(
        prefix: &'a str,
        lookup: &'a dyn Fn(&str) -> Option<String>,
    ) -> anyhow::Result<Environment<'a>> {
        let plain = prefix
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_');
        if !plain || !prefix.ends_with('_') || prefix.len() < 2 {
            bail!("--env-prefix {prefix:?}: use upper-case letters, digits and '_', ending in '_' (BATON_)");
        }
        Ok(Environment {
            prefix: Some(prefix),
            lookup,
        })
    }

    /// The variable that would carry `field`, when any does.
    pub fn var_name(&self, field: &str) -> Option<String> {
        self.prefix.map(|p| env_name(p, field))
    }

    fn get(&self, field: &str) -> Option<String> {
        (self.lookup)(&self.var_name(field)?).filter(|v| !v.is_empty())
    }

    /// How to give `field` a value, for a hint.
    fn how_to_set(&self, field: &str, secret: bool) -> String {
        let flag = format!("--config {field}={}", if secret { "@FILE" } else { "…" });
        match self.var_name(field) {
            Some(var) => format!("set {var} or pass {flag}"),
            None => format!("pass {flag}"),
        }
    }
}

/// Where a value came from: flags are visible to every local user and so
/// hold nothing private; the environment and files may.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Source {
    Flag,
    Private,
    Default,
}

/// Configuration values ready for `wasi:config`, and the secrets among them
/// so the host can keep them out of everything it prints.
#[derive(Debug, Default)]
pub struct Resolved {
    pub values: BTreeMap<String, String>,
    pub secrets: Secrets,
}

pub use crate::secrets::Secrets;

/// `flags` are the `NAME=VALUE` strings given on the command line; `env`
/// looks a variable up (the process environment in production).
///
/// A secret is never taken as a literal flag value: every local user can read
/// a process's command line. It comes from its variable, or from a file
/// named as `NAME=@FILE` (how Kubernetes mounts a Secret), which any setting
/// may use.
pub fn resolve(
    schema: &[ConfigField],
    flags: &[String],
    env: &Environment<'_>,
) -> anyhow::Result<Resolved> {
    let mut given: BTreeMap<String, (String, Source)> = BTreeMap::new();
    for flag in flags {
        let Some((name, value)) = flag.split_once('=') else {
            // Not echoed: a flag without `=` may be a value pasted alone.
            bail!("a --config flag has no '=': write it as NAME=VALUE (or NAME=@FILE)");
        };
        let name = name.trim();
        let Some(field) = schema.iter().find(|f| f.name == name) else {
            let known: Vec<&str> = schema.iter().map(|f| f.name.as_str()).collect();
            bail!(
                "--config {name}: this connector has no such setting (it knows: {})",
                known.join(", ")
            );
        };
        let value = match value.strip_prefix('@') {
            Some(path) => (read_value_file(name, path)?, Source::Private),
            None if field.secret => bail!(
                "--config {name}: a secret is not taken on the command line, where every local user can read it: {}",
                env.how_to_set(name, true)
            ),
            None => (value.to_string(), Source::Flag),
        };
        given.insert(name.to_string(), value);
    }

    let mut resolved = Resolved::default();
    let mut secret_values = Vec::new();
    // Every value looked up once; every missing setting named in one
    // message, not one per run.
    let mut found = Vec::new();
    let mut missing = Vec::new();
    for field in schema {
        match value_of(field, &mut given, env) {
            Some(value) => found.push((field, value)),
            None if field.required => missing.push(format!(
                "{}: {} ({})",
                field.name,
                env.how_to_set(&field.name, field.secret),
                field.description
            )),
            None => {}
        }
    }
    match missing.as_slice() {
        [] => {}
        [one] => bail!("missing setting {one}"),
        many => bail!("missing settings {}", many.join("; ")),
    }
    for (field, (value, source)) in found {
        if !field.allowed_values.is_empty() && !field.allowed_values.contains(&value) {
            let shown = if field.secret {
                "[redacted]"
            } else {
                value.as_str()
            };
            bail!(
                "setting {} is {shown:?}; it must be one of: {}",
                field.name,
                field.allowed_values.join(", ")
            );
        }
        if field.secret || (source == Source::Private && may_be_private(field, &value)) {
            secret_values.push(Zeroizing::new(value.clone()));
        }
        resolved.values.insert(field.name.clone(), value);
    }
    let companions = schema
        .iter()
        .filter(|f| !f.secret)
        .filter_map(|f| resolved.values.get(&f.name).map(String::as_str));
    resolved.secrets = Secrets::new(secret_values.iter().map(|s| s.as_str()), companions);
    Ok(resolved)
}

/// A field's value and where it came from: its flag, else its variable,
/// else its default.
fn value_of(
    field: &ConfigField,
    given: &mut BTreeMap<String, (String, Source)>,
    env: &Environment<'_>,
) -> Option<(String, Source)> {
    given
        .remove(&field.name)
        .or_else(|| env.get(&field.name).map(|v| (v, Source::Private)))
        .or_else(|| field.default.clone().map(|v| (v, Source::Default)))
}

/// Whether a value read from the environment or a file that the component
/// calls public is scrubbed all the same. Not when it cannot be private: one
/// of the field's published allowed values, an origin the host logs as a
/// grant anyway, or shorter than a scrubbed run (it would hide ordinary
/// words, and a credential that short protects nothing).
fn may_be_private(field: &ConfigField, value: &str) -> bool {
    let listed = field.allowed_values.iter().any(|v| v == value);
    let origin = field.kind == crate::types::FieldKind::Origin
        && crate::allow_list::Origin::of_url(value).is_ok();
    !listed && !origin && value.chars().count() >= crate::secrets::MIN_RUN
}

/// The non-secret settings given so far, over the defaults, from a
/// configuration that may not be complete or valid yet: what `metadata`
/// needs to show what they would grant. Flags that [`resolve`] would refuse
/// are left out rather than reported.
pub fn partial(
    schema: &[ConfigField],
    flags: &[String],
    env: &Environment<'_>,
) -> BTreeMap<String, String> {
    let mut given: BTreeMap<String, (String, Source)> = flags
        .iter()
        .filter_map(|flag| {
            let (name, value) = flag.split_once('=')?;
            let value = match value.strip_prefix('@') {
                Some(path) => (read_value_file(name.trim(), path).ok()?, Source::Private),
                None => (value.to_string(), Source::Flag),
            };
            Some((name.trim().to_string(), value))
        })
        .collect();
    schema
        .iter()
        .filter(|f| !f.secret)
        .filter_map(|f| Some((f.name.clone(), value_of(f, &mut given, env)?.0)))
        .collect()
}

/// The value of `NAME=@FILE`: the file's content without the line ending an
/// editor or `echo` leaves.
fn read_value_file(name: &str, path: &str) -> anyhow::Result<String> {
    if path.is_empty() {
        bail!("--config {name}=@: name the file after the @ (--config {name}=@/path/to/file)");
    }
    let bytes = Zeroizing::new(std::fs::read(path).map_err(|e| {
        anyhow::anyhow!(
            "--config {name}=@{path}: cannot read the file ({e}); check the path and its permissions"
        )
    })?);
    let text = std::str::from_utf8(&bytes).map_err(|_| {
        anyhow::anyhow!(
            "--config {name}=@{path}: the file is not UTF-8 text; write the value as plain text"
        )
    })?;
    let value = text.trim_end_matches(['\n', '\r']);
    if value.is_empty() {
        bail!("--config {name}=@{path}: the file is empty; write the value into it");
    }
    Ok(value.to_string())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn field(
        name: &str,
        required: bool,
        secret: bool,
        default: Option<&str>,
        allowed: &[&str],
    ) -> ConfigField {
        ConfigField {
            name: name.into(),
            description: format!("the {name}"),
            required,
            secret,
            default: default.map(Into::into),
            allowed_values: allowed.iter().map(|s| s.to_string()).collect(),
            kind: crate::types::FieldKind::Text,
        }
    }

    #[test]
    fn partial_settings_need_no_complete_configuration_and_leave_secrets_out() {
        let flags = vec![
            "environment=eu1".to_string(),
            "ic-client-secret=hunter2hunter2".to_string(),
        ];
        let got = partial(&schema(), &flags, &Environment::none());
        assert_eq!(got.get("environment").map(String::as_str), Some("eu1"));
        assert!(!got.contains_key("ic-client-secret"));
        assert!(!got.contains_key("ic-client-id"), "missing, not an error");
        let env = |k: &str| (k == "BATON_IC_CLIENT_ID").then(|| "from-env".to_string());
        let got = partial(&schema(), &[], &baton(&env));
        assert_eq!(
            got.get("ic-client-id").map(String::as_str),
            Some("from-env")
        );
        assert_eq!(got.get("environment").map(String::as_str), Some("na1"));
    }

    fn schema() -> Vec<ConfigField> {
        vec![
            field("ic-client-id", true, false, None, &[]),
            field("ic-client-secret", true, true, None, &[]),
            field(
                "environment",
                false,
                false,
                Some("na1"),
                &["na1", "eu1", "demo"],
            ),
        ]
    }

    #[test]
    fn env_names_follow_the_baton_convention() {
        assert_eq!(env_name("BATON_", "ic-client-id"), "BATON_IC_CLIENT_ID");
        assert_eq!(env_name("BATON_", "as-user-email"), "BATON_AS_USER_EMAIL");
    }

    #[test]
    fn flags_win_over_env_and_defaults_fill_in() {
        let env = |k: &str| match k {
            "BATON_IC_CLIENT_ID" => Some("from-env".to_string()),
            "BATON_IC_CLIENT_SECRET" => Some("s3cret-value".to_string()),
            _ => None,
        };
        let r = resolve(&schema(), &["ic-client-id=from-flag".into()], &baton(&env)).unwrap();
        assert_eq!(r.values["ic-client-id"], "from-flag");
        assert_eq!(r.values["environment"], "na1");
        assert_eq!(r.secrets.scrub("x s3cret-value y"), "x [redacted] y");
    }

    #[test]
    fn a_missing_required_field_is_named_with_its_variable() {
        let err = resolve(&schema(), &["ic-client-id=a".into()], &baton(&|_| None)).unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains("ic-client-secret") && msg.contains("BATON_IC_CLIENT_SECRET"),
            "{msg}"
        );
    }

    #[test]
    fn values_outside_the_allowed_set_are_refused() {
        let flags = ["ic-client-id=a".into(), "environment=mars".into()];
        let msg = resolve(&schema(), &flags, &baton(&secret_in_env))
            .unwrap_err()
            .to_string();
        assert!(
            msg.contains("mars") && msg.contains("na1, eu1, demo"),
            "{msg}"
        );
    }

    #[test]
    fn unknown_flags_are_refused() {
        let msg = resolve(&schema(), &["colour=red".into()], &Environment::none())
            .unwrap_err()
            .to_string();
        assert!(msg.contains("no such setting"), "{msg}");
    }

    #[test]
    fn secrets_are_not_echoed_in_errors() {
        let mut s = schema();
        s[1].allowed_values = vec!["x".into()];
        let msg = resolve(&s, &["ic-client-id=a".into()], &baton(&secret_in_env))
            .unwrap_err()
            .to_string();
        assert!(!msg.contains("s3cret-value"), "{msg}");
    }

    fn baton<'a>(lookup: &'a dyn Fn(&str) -> Option<String>) -> Environment<'a> {
        Environment::bound("BATON_", lookup).unwrap()
    }

    #[test]
    fn only_variables_under_the_bound_prefix_reach_the_component() {
        let env = |k: &str| match k {
            "BATON_IC_CLIENT_ID" => Some("baton-id".to_string()),
            "ACME_IC_CLIENT_ID" => Some("acme-id".to_string()),
            "ACME_IC_CLIENT_SECRET" => Some("acme-secret-value".to_string()),
            _ => None,
        };
        let acme = Environment::bound("ACME_", &env).unwrap();
        let r = resolve(&schema(), &[], &acme).unwrap();
        assert_eq!(r.values["ic-client-id"], "acme-id");
        let msg = resolve(&schema(), &[], &Environment::none())
            .unwrap_err()
            .to_string();
        assert!(
            msg.starts_with("missing settings ic-client-id: pass --config ic-client-id=… (the ic-client-id); ic-client-secret: pass --config ic-client-secret=@FILE"),
            "{msg}"
        );
        for bad in ["", "_", "baton_", "BATON", "BA-TON_"] {
            assert!(Environment::bound(bad, &env).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn values_from_the_environment_are_scrubbed_whatever_the_schema_says() {
        let env = |k: &str| match k {
            "BATON_IC_CLIENT_ID" => Some("plain-but-private-id".to_string()),
            "BATON_IC_CLIENT_SECRET" => Some("s3cret-value".to_string()),
            "BATON_ENVIRONMENT" => Some("eu1".to_string()),
            _ => None,
        };
        let r = resolve(&schema(), &[], &baton(&env)).unwrap();
        assert_eq!(
            r.secrets.scrub("id plain-but-private-id in eu1"),
            "id [redacted] in eu1",
            "a listed value is public"
        );
        // The same value given as a flag is the operator's public word.
        let flags = ["ic-client-id=plain-but-private-id".to_string()];
        let r = resolve(&schema(), &flags, &baton(&env)).unwrap();
        assert_eq!(
            r.secrets.scrub("id plain-but-private-id"),
            "id plain-but-private-id"
        );
    }

    fn secret_in_env(k: &str) -> Option<String> {
        (k == "BATON_IC_CLIENT_SECRET").then(|| "s3cret-value".to_string())
    }

    #[test]
    fn a_secret_on_the_command_line_is_refused_with_both_ways_to_give_it() {
        let flags = [
            "ic-client-id=a".into(),
            "ic-client-secret=hunter2hunter2".into(),
        ];
        let msg = resolve(&schema(), &flags, &baton(&|_| None))
            .unwrap_err()
            .to_string();
        assert!(
            msg.contains("BATON_IC_CLIENT_SECRET") && msg.contains("ic-client-secret=@FILE"),
            "{msg}"
        );
        assert!(!msg.contains("hunter2"), "{msg}");
        assert!(!msg.contains('\n'), "{msg}");
    }

    #[test]
    fn a_flag_without_equals_is_not_echoed() {
        let msg = resolve(&schema(), &["hunter2hunter2".into()], &Environment::none())
            .unwrap_err()
            .to_string();
        assert!(
            !msg.contains("hunter2") && msg.contains("NAME=@FILE"),
            "{msg}"
        );
    }

    #[test]
    fn at_file_reads_the_value_without_its_line_ending() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secret");
        std::fs::write(&path, "from-a-mounted-file\n").unwrap();
        let flags = [
            "ic-client-id=a".into(),
            format!("ic-client-secret=@{}", path.display()),
        ];
        let r = resolve(&schema(), &flags, &Environment::none()).unwrap();
        assert_eq!(r.values["ic-client-secret"], "from-a-mounted-file");
        assert_eq!(r.secrets.scrub("from-a-mounted-file"), "[redacted]");
        // Not only secrets: any setting may come from a file.
        std::fs::write(&path, "eu1").unwrap();
        let flags = [format!("environment=@{}", path.display())];
        let r = resolve(&schema(), &flags, &baton(&secret_in_env_and_id)).unwrap();
        assert_eq!(r.values["environment"], "eu1");
    }

    fn secret_in_env_and_id(k: &str) -> Option<String> {
        secret_in_env(k).or_else(|| (k == "BATON_IC_CLIENT_ID").then(|| "id".to_string()))
    }

    #[test]
    fn an_unreadable_or_empty_file_is_one_line_naming_the_setting() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope");
        let flags = [format!("ic-client-secret=@{}", missing.display())];
        let msg = resolve(&schema(), &flags, &Environment::none())
            .unwrap_err()
            .to_string();
        assert!(
            msg.contains("ic-client-secret") && msg.contains("cannot read") && !msg.contains('\n'),
            "{msg}"
        );
        let empty = dir.path().join("empty");
        std::fs::write(&empty, "\n").unwrap();
        let flags = [format!("ic-client-secret=@{}", empty.display())];
        let msg = resolve(&schema(), &flags, &Environment::none())
            .unwrap_err()
            .to_string();
        assert!(msg.contains("empty"), "{msg}");
    }

    #[test]
    fn secrets_are_hidden_in_their_basic_auth_pairing_with_other_settings() {
        use base64::Engine as _;
        let r = resolve(
            &schema(),
            &["ic-client-id=client-42".into()],
            &baton(&secret_in_env),
        )
        .unwrap();
        let basic = base64::engine::general_purpose::STANDARD.encode("client-42:s3cret-value");
        assert_eq!(r.secrets.scrub(&basic), "[redacted]");
    }
}
