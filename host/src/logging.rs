//! Log lines on stderr: text for people or JSON for collectors, at a level
//! from `--log-level` / `BATON_LOG_LEVEL` or `RUST_LOG`, coloured only where
//! that helps, and always through the secrets' scrubber.

use std::sync::Arc;

use crate::{redact, terminal};

/// `--log-format`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Text,
    Json,
}

/// `--color`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Color {
    Auto,
    Always,
    Never,
}

/// What every JSON line carries.
pub struct Context {
    /// The one tenant of a one-shot command; `None` for `serve`, whose
    /// lines name their tenant through the span of the sync they belong to.
    pub tenant: Option<String>,
    pub component: String,
}

const LEVELS: [&str; 5] = ["error", "warn", "info", "debug", "trace"];

/// `--log-level`'s parser: a level, or tracing directives that parse; an
/// unknown word is a usage error rather than silently `info`.
pub fn parse_level(s: &str) -> Result<String, String> {
    let s = s.trim();
    if LEVELS.contains(&s.to_ascii_lowercase().as_str()) {
        return Ok(s.to_ascii_lowercase());
    }
    if (s.contains('=') || s.contains(',')) && tracing_subscriber::EnvFilter::try_new(s).is_ok() {
        return Ok(s.to_string());
    }
    Err(format!(
        "unknown log level {s:?}: use error, warn, info, debug or trace (or tracing directives such as connector_host=debug)"
    ))
}

/// The filter: a plain level applies to the host's own crates, the
/// runtime's dependencies staying at warn (at trace they dump guest
/// arguments and results, configuration values among them); directives are
/// taken as given. Without a level, `RUST_LOG` if it parses, else info.
fn filter(level: Option<&str>) -> tracing_subscriber::EnvFilter {
    let ours = |l: &str| format!("warn,connector_host={l},connector_runtime={l},sync_store={l}");
    let directives = match level {
        Some(l) if LEVELS.contains(&l) => ours(l),
        Some(d) => d.to_string(),
        None => match std::env::var("RUST_LOG") {
            Ok(d) if tracing_subscriber::EnvFilter::try_new(&d).is_ok() => d,
            _ => ours("info"),
        },
    };
    tracing_subscriber::EnvFilter::try_new(&directives)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(ours("info")))
}

fn ansi(color: Color) -> bool {
    match color {
        Color::Always => true,
        Color::Never => false,
        Color::Auto => {
            let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
            !no_color && std::io::IsTerminal::is_terminal(&std::io::stderr())
        }
    }
}

pub fn init(level: Option<&str>, format: Format, color: Color, ctx: &Context) {
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter(level))
        .with_target(false);
    match format {
        Format::Text => builder
            .with_writer(redact::ScrubbedStderr)
            .fmt_fields(terminal::EscapedFields)
            .with_ansi(ansi(color))
            .init(),
        Format::Json => {
            // The tenant and component hold for the whole process, so they
            // go on as each line is written: spans would not follow the
            // work onto the writer and blocking threads.
            let mut fields = serde_json::Map::new();
            if let Some(t) = &ctx.tenant {
                fields.insert("tenant".into(), t.clone().into());
            }
            fields.insert("component".into(), ctx.component.clone().into());
            let prefix = serde_json::Value::Object(fields).to_string();
            let prefix: Arc<str> = format!("{},", prefix.trim_end_matches('}')).into();
            builder
                .json()
                .flatten_event(true)
                .with_current_span(ctx.tenant.is_none())
                .with_span_list(false)
                .with_ansi(false)
                .with_writer(move || WithContext {
                    prefix: prefix.clone(),
                })
                .init()
        }
    }
}

/// A JSON line's writer: `{` becomes `{"tenant":…,"component":…,`, then
/// the scrubber.
struct WithContext {
    prefix: Arc<str>,
}

impl std::io::Write for WithContext {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match buf.strip_prefix(b"{") {
            Some(rest) => {
                let mut line = Vec::with_capacity(self.prefix.len() + rest.len());
                line.extend_from_slice(self.prefix.as_bytes());
                line.extend_from_slice(rest);
                redact::ScrubbedStderr.write_all(&line)?;
            }
            None => redact::ScrubbedStderr.write_all(buf)?,
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        redact::ScrubbedStderr.flush()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn levels_and_directives_parse_and_unknown_words_do_not() {
        assert_eq!(parse_level("DEBUG").unwrap(), "debug");
        assert_eq!(
            parse_level("connector_host=trace,warn").unwrap(),
            "connector_host=trace,warn"
        );
        let e = parse_level("loud").unwrap_err();
        assert!(e.contains(r#"unknown log level "loud""#), "{e}");
    }
}
