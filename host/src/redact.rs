//! The log writer: every line the host logs goes through the configured
//! secrets' scrubber, so a secret a component quotes in an error that is
//! logged (a retried page, a refused request) never reaches stderr either.

use std::sync::RwLock;

use connector_runtime::config::Secrets;

/// Set once the configuration is resolved; logs before that carry no secret
/// the host knows of.
static SECRETS: RwLock<Option<Secrets>> = RwLock::new(None);

/// Scrubs every log line from now on.
pub fn install(secrets: &Secrets) {
    if let Ok(mut slot) = SECRETS.write() {
        *slot = Some(secrets.clone());
    }
}

/// `tracing`'s writer: stderr, scrubbed.
pub struct ScrubbedStderr;

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for ScrubbedStderr {
    type Writer = ScrubbedStderr;

    fn make_writer(&'a self) -> Self::Writer {
        ScrubbedStderr
    }
}

impl std::io::Write for ScrubbedStderr {
    // The formatter hands over each event whole in one write, so a secret is
    // never split across two calls.
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let scrubbed = SECRETS
            .read()
            .ok()
            .and_then(|s| s.as_ref().map(|s| s.scrub(&String::from_utf8_lossy(buf))));
        crate::progress::suspend(|| {
            let mut err = std::io::stderr().lock();
            match scrubbed {
                Some(text) => err.write_all(text.as_bytes()),
                None => err.write_all(buf),
            }
        })?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}
