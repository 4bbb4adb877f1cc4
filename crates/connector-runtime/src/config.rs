//! Resolves a connector's configuration from `--config NAME=VALUE` flags and
//! `BATON_*` environment variables against the schema the connector
//! publishes, before any call that could reach the network.

use std::collections::BTreeMap;

use anyhow::bail;

use crate::types::ConfigField;

/// The environment variable that carries a field: `BATON_` + the name upper
/// cased with `-` as `_`, the names the existing connectors' deployments use.
pub fn env_name(field: &str) -> String {
    format!("BATON_{}", field.to_ascii_uppercase().replace('-', "_"))
}

/// Configuration values ready for `wasi:config`, and the secrets among them
/// so the host can keep them out of everything it prints.
#[derive(Debug, Default)]
pub struct Resolved {
    pub values: BTreeMap<String, String>,
    pub secrets: Secrets,
}

/// Secret values, held only to scrub them from text the host shows.
#[derive(Clone, Default)]
pub struct Secrets(Vec<String>);

impl std::fmt::Debug for Secrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Secrets({} hidden)", self.0.len())
    }
}

impl Secrets {
    pub fn scrub(&self, text: &str) -> String {
        let mut out = text.to_string();
        for s in &self.0 {
            // Short values would scrub ordinary words; a secret that short is
            // not worth hiding from the logs and would ruin every message.
            if s.len() >= 4 {
                out = out.replace(s.as_str(), "[redacted]");
            }
        }
        out
    }
}

/// `flags` are the `NAME=VALUE` strings given on the command line; `env`
/// looks a variable up (the process environment in production).
pub fn resolve(
    schema: &[ConfigField],
    flags: &[String],
    env: impl Fn(&str) -> Option<String>,
) -> anyhow::Result<Resolved> {
    let mut given: BTreeMap<String, String> = BTreeMap::new();
    for flag in flags {
        let Some((name, value)) = flag.split_once('=') else {
            bail!("--config {flag:?} is not NAME=VALUE");
        };
        let name = name.trim();
        if !schema.iter().any(|f| f.name == name) {
            let known: Vec<&str> = schema.iter().map(|f| f.name.as_str()).collect();
            bail!(
                "--config {name}: this connector has no such setting (it knows: {})",
                known.join(", ")
            );
        }
        given.insert(name.to_string(), value.to_string());
    }

    let mut resolved = Resolved::default();
    for field in schema {
        let value = given
            .remove(&field.name)
            .or_else(|| env(&env_name(&field.name)).filter(|v| !v.is_empty()))
            .or_else(|| field.default.clone());
        let Some(value) = value else {
            if field.required {
                bail!(
                    "missing setting {}: pass --config {}=… or set {} ({})",
                    field.name,
                    field.name,
                    env_name(&field.name),
                    field.description
                );
            }
            continue;
        };
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
        if field.secret {
            resolved.secrets.0.push(value.clone());
        }
        resolved.values.insert(field.name.clone(), value);
    }
    Ok(resolved)
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
        assert_eq!(env_name("ic-client-id"), "BATON_IC_CLIENT_ID");
        assert_eq!(env_name("as-user-email"), "BATON_AS_USER_EMAIL");
    }

    #[test]
    fn flags_win_over_env_and_defaults_fill_in() {
        let env = |k: &str| match k {
            "BATON_IC_CLIENT_ID" => Some("from-env".to_string()),
            "BATON_IC_CLIENT_SECRET" => Some("s3cret-value".to_string()),
            _ => None,
        };
        let r = resolve(&schema(), &["ic-client-id=from-flag".into()], env).unwrap();
        assert_eq!(r.values["ic-client-id"], "from-flag");
        assert_eq!(r.values["environment"], "na1");
        assert_eq!(r.secrets.scrub("x s3cret-value y"), "x [redacted] y");
    }

    #[test]
    fn a_missing_required_field_is_named_with_its_variable() {
        let err = resolve(&schema(), &["ic-client-id=a".into()], |_| None).unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains("ic-client-secret") && msg.contains("BATON_IC_CLIENT_SECRET"),
            "{msg}"
        );
    }

    #[test]
    fn values_outside_the_allowed_set_are_refused() {
        let flags = [
            "ic-client-id=a".into(),
            "ic-client-secret=b".into(),
            "environment=mars".into(),
        ];
        let msg = resolve(&schema(), &flags, |_| None)
            .unwrap_err()
            .to_string();
        assert!(
            msg.contains("mars") && msg.contains("na1, eu1, demo"),
            "{msg}"
        );
    }

    #[test]
    fn unknown_flags_are_refused() {
        let msg = resolve(&schema(), &["colour=red".into()], |_| None)
            .unwrap_err()
            .to_string();
        assert!(msg.contains("no such setting"), "{msg}");
    }

    #[test]
    fn secrets_are_not_echoed_in_errors() {
        let mut s = schema();
        s[1].allowed_values = vec!["x".into()];
        let flags = [
            "ic-client-id=a".into(),
            "ic-client-secret=topsecretvalue".into(),
        ];
        let msg = resolve(&s, &flags, |_| None).unwrap_err().to_string();
        assert!(!msg.contains("topsecretvalue"), "{msg}");
    }
}
