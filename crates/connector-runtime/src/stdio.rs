//! The component's stdout and stderr, which Rust's standard library imports
//! (`wasi:cli/stdout`, `wasi:cli/stderr`) whatever world the component
//! declares: each line becomes a host log event tagged with the component,
//! rather than being lost or reaching the host's own stdout, where it would
//! corrupt a command's output.

use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use tokio::io::AsyncWrite;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};

/// A line is cut here: a component printing without newlines must not make
/// the host buffer without bound.
const MAX_LINE: usize = 4096;

/// Which of the two streams.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Stream {
    Stdout,
    Stderr,
}

/// One stream of one instance. Every handle the component opens shares the
/// same line buffer (the standard library opens a fresh one per write).
#[derive(Clone)]
pub(crate) struct ComponentLog {
    lines: Arc<Mutex<Lines>>,
}

struct Lines {
    component: Arc<str>,
    stream: Stream,
    /// Configuration values, kept out of the log: the instance cannot tell
    /// the component's secrets from its other settings.
    scrub: Arc<[String]>,
    partial: Vec<u8>,
}

impl ComponentLog {
    pub(crate) fn new(component: Arc<str>, stream: Stream, scrub: Arc<[String]>) -> Self {
        ComponentLog {
            lines: Arc::new(Mutex::new(Lines {
                component,
                stream,
                scrub,
                partial: Vec::new(),
            })),
        }
    }
}

impl Lines {
    fn feed(&mut self, mut bytes: &[u8]) {
        while !bytes.is_empty() {
            let room = MAX_LINE - self.partial.len();
            match bytes.iter().take(room).position(|&b| b == b'\n') {
                Some(i) => {
                    self.partial.extend_from_slice(&bytes[..i]);
                    bytes = &bytes[i + 1..];
                    self.emit();
                }
                None => {
                    let n = room.min(bytes.len());
                    self.partial.extend_from_slice(&bytes[..n]);
                    bytes = &bytes[n..];
                    if self.partial.len() >= MAX_LINE {
                        self.emit();
                    }
                }
            }
        }
    }

    fn emit(&mut self) {
        let raw = std::mem::take(&mut self.partial);
        // Control characters (terminal escapes among them) would let a
        // component restyle or rewrite the operator's terminal.
        let mut line: String = String::from_utf8_lossy(&raw)
            .trim_end_matches('\r')
            .chars()
            .map(|c| {
                if c.is_control() && c != '\t' {
                    '\u{fffd}'
                } else {
                    c
                }
            })
            .collect();
        // The standard library's panic hint names a variable the component
        // cannot see (its environment is empty): noise in the host's log.
        if line.starts_with("note: run with `RUST_BACKTRACE=1`") {
            return;
        }
        for value in self.scrub.iter() {
            line = line.replace(value.as_str(), "[redacted]");
        }
        let component = &*self.component;
        match self.stream {
            Stream::Stdout => tracing::info!(component, stream = "stdout", "{line}"),
            Stream::Stderr => tracing::warn!(component, stream = "stderr", "{line}"),
        }
    }
}

impl Drop for Lines {
    fn drop(&mut self) {
        if !self.partial.is_empty() {
            self.emit();
        }
    }
}

impl IsTerminal for ComponentLog {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for ComponentLog {
    fn async_stream(&self) -> Box<dyn AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

impl AsyncWrite for ComponentLog {
    fn poll_write(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.lines.lock() {
            Ok(mut lines) => lines.feed(buf),
            // A panic while logging poisoned it; the line is lost, not the call.
            Err(poisoned) => poisoned.into_inner().feed(buf),
        }
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines() -> Lines {
        Lines {
            component: "c".into(),
            stream: Stream::Stdout,
            scrub: Arc::from(vec!["hunter22".to_string()]),
            partial: Vec::new(),
        }
    }

    #[test]
    fn a_line_without_newline_is_cut_at_the_cap() {
        let mut l = lines();
        l.feed(&vec![b'x'; MAX_LINE * 2 + 10]);
        assert_eq!(l.partial.len(), 10, "two full lines went out");
        l.feed(b"y\nz");
        assert_eq!(l.partial, b"z");
    }

    #[test]
    fn lines_split_across_writes_join() {
        let mut l = lines();
        l.feed(b"hel");
        l.feed(b"lo\nwor");
        assert_eq!(l.partial, b"wor");
    }
}
