//! The log writer: every line the host logs goes through the configured
//! secrets' scrubber, so a secret a component quotes in an error that is
//! logged (a retried page, a refused request) never reaches stderr either.
//! `serve` scrubs every line of every tenant's secrets, at a cost per line
//! that does not grow with the tenants ([`SecretPool`]).

use std::sync::{LazyLock, RwLock};

use connector_runtime::config::Secrets;
use connector_runtime::secrets::SecretPool;

/// Filled as configurations are resolved; logs before that carry no secret
/// the host knows of.
static POOL: LazyLock<RwLock<SecretPool>> = LazyLock::new(Default::default);

/// The owner of a one-shot command's secrets (a tenant id is never empty).
const PROCESS: &str = "";

/// Scrubs every log line from now on of `secrets` (a one-shot command's).
pub fn install(secrets: &Secrets) {
    set(PROCESS, secrets);
}

/// Scrubs every log line from now on of `owner`'s `secrets` (a tenant's),
/// in place of what it had; unchanged secrets cost a comparison.
pub fn set(owner: &str, secrets: &Secrets) {
    if let Ok(mut pool) = POOL.write() {
        pool.set(owner, secrets);
    }
}

/// Stops scrubbing `owner`'s secrets (a tenant gone).
pub fn remove(owner: &str) {
    if let Ok(mut pool) = POOL.write() {
        pool.remove(owner);
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
        let scrubbed = POOL
            .read()
            .ok()
            .filter(|pool| !pool.is_empty())
            .map(|pool| pool.scrub(&String::from_utf8_lossy(buf)));
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
